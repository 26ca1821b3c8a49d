"""Pareto fronts: at one threat, the trade-off between clean and certified accuracy over a grid of settings.

A *setting* is one method with one parameter setting; its cells (one per seed) are averaged: clean and
certified accuracy are the means over the seeds that have the threat, with the sample standard deviation
(ddof = 1) where there are at least two seeds. A setting is *non-dominated* in a set of settings when no other
setting of the set has clean and certified accuracy both at least as high and one of them strictly higher;
each setting is flagged non-dominated within its own method (its method's front) and among all settings
(the overall front).

The figure (``pareto_<threat>.png``, the key figure of the paper, SPEC.md §5): x is the clean accuracy (the
smoothed classifier's accuracy without attack), y the certified accuracy at the threat, both seed means. Every
setting that has the threat is a point, in its method's colour and marker; the points of a method's front are
drawn solid, edged in black and joined by a staircase — the boundary of the region the front attains, with no
corner above a point's accuracy — and the points dominated within their method are drawn faint. Each point
with parameters is labelled with them where a label fits (front labels always); the legend counts, per method,
the settings on its front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...threat import Threat
from .plotting import _figure, _place_labels, _save, _style
from .reading import Results, Setting
from .threats import _available, _threat_text, axis_value, threat_key


@dataclass(frozen=True)
class ParetoPoint:
    """One setting at one threat, averaged over the seeds that have the threat."""

    setting: Setting
    seeds: int
    clean_mean: float
    clean_std: float
    certified_mean: float
    certified_std: float
    method_front: bool
    overall_front: bool


def non_dominated(clean: np.ndarray, certified: np.ndarray) -> np.ndarray:
    """For each point, whether no other point has both coordinates ≥ its own and one strictly greater."""
    x, y = np.asarray(clean, dtype=float), np.asarray(certified, dtype=float)
    geq = (x[None, :] >= x[:, None]) & (y[None, :] >= y[:, None])
    greater = (x[None, :] > x[:, None]) | (y[None, :] > y[:, None])
    return ~np.any(geq & greater, axis=1)


def pareto_points(results: Results, threat: dict | Threat) -> list[ParetoPoint]:
    """Every setting at ``threat``, seed-averaged, with its non-dominated flags within its method and overall.

    Sorted by method (config order) and then by decreasing clean accuracy. Raises ValueError if no setting
    has the threat.
    """
    key = threat_key(threat, results.axes)
    summaries = []
    for setting, by_threat in results.certified.items():
        by_seed = by_threat.get(key)
        if by_seed:
            clean = [results.clean[setting][seed] for seed in by_seed]
            summaries.append((setting, len(by_seed), *_mean_std(clean), *_mean_std(list(by_seed.values()))))
    if not summaries:
        raise ValueError(
            f"threat {_threat_text(key, results.axes)} is not in {results.directory / 'results.csv'} "
            f"({_available(results)})"
        )
    summaries.sort(key=lambda item: (results.methods.index(item[0].method), -item[2]))
    clean_means = np.array([item[2] for item in summaries])
    certified_means = np.array([item[4] for item in summaries])
    overall = non_dominated(clean_means, certified_means)
    front = np.zeros(len(summaries), dtype=bool)
    for method in results.methods:
        mine = np.array([item[0].method == method for item in summaries])
        front[mine] = non_dominated(clean_means[mine], certified_means[mine])
    return [ParetoPoint(*item, bool(f), bool(o)) for item, f, o in zip(summaries, front, overall)]


def default_threats(results: Results) -> list[dict]:
    """The threats to report: ``pareto`` of experiment.yaml, else one mid-grid threat at the smallest r > 0.

    The pick is the smallest positive r; on each budget axis but the last its smallest value there, and on the
    last the lower-middle positive value there (0 if none): the lower-middle positive ε (gaussian-type) or ℓ1
    (uniform-type), the smallest ra and the lower-middle positive rd (sparse/graph), r alone (rows-only results).
    """
    configured = results.config.get("pareto")
    if configured:
        if not isinstance(configured, list):
            raise ValueError(
                f"{results.directory / 'experiment.yaml'}: pareto must be a list of threats, got {configured!r}"
            )
        return configured
    keys = results.threat_keys()
    threat = {"rows": min((key[0] for key in keys if key[0] > 0), default=keys[0][0])}
    for index, axis in enumerate(results.axes[1:], start=1):
        keys = [key for key in keys if key[index - 1] == threat[results.axes[index - 1]]]
        if index < len(results.axes) - 1:
            threat[axis] = min(key[index] for key in keys)
        else:
            positive = sorted({key[index] for key in keys if key[index] > 0}) or [axis_value(axis, 0)]
            threat[axis] = positive[(len(positive) - 1) // 2]
    return [threat]


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if array.size >= 2 else math.nan


def _plot_pareto(results: Results, key: tuple, points: list[ParetoPoint], path: Path) -> None:
    """Certified against clean accuracy, one point per setting; each method's front as a staircase."""
    from matplotlib.lines import Line2D

    figure = _figure(7.5, 5.5)
    axes = figure.add_subplot()
    style = _style(results)
    x = np.array([point.clean_mean for point in points])
    y = np.array([point.certified_mean for point in points])
    pad_x, pad_y = max(0.02, 0.12 * np.ptp(x)), max(0.02, 0.12 * np.ptp(y))
    axes.set_xlim(x.min() - pad_x, x.max() + pad_x)
    axes.set_ylim(y.min() - pad_y, y.max() + pad_y)
    handles = []
    for method in results.methods:
        colour, marker = style[method]
        mine = [point for point in points if point.setting.method == method]
        if not mine:
            continue
        front = sorted((point for point in mine if point.method_front), key=lambda point: point.clean_mean)
        faint = [point for point in mine if not point.method_front]
        front_x, front_y = [p.clean_mean for p in front], [p.certified_mean for p in front]
        # The staircase is the boundary of the region the front attains: no corner above a point's accuracy.
        axes.step(front_x, front_y, where="pre", color=colour, linewidth=1.8, zorder=2)
        axes.scatter(front_x, front_y, color=colour, marker=marker, s=55, zorder=3, edgecolor="black", linewidth=0.5)
        axes.scatter(
            [p.clean_mean for p in faint],
            [p.certified_mean for p in faint],
            color=colour,
            marker=marker,
            s=40,
            zorder=3,
            alpha=0.3,
        )
        handles.append(
            Line2D(
                [],
                [],
                color=colour,
                marker=marker,
                markeredgecolor="black",
                markeredgewidth=0.5,
                linewidth=1.8,
                label=f"{method} ({len(front)} of {len(mine)} on front)",
            )
        )
    handles.append(
        Line2D([], [], color="grey", marker="o", linestyle="none", alpha=0.3, label="dominated within its method")
    )
    axes.set_xlabel("clean accuracy (smoothed, no attack)", fontsize=11)
    text = _threat_text(key, results.axes)
    axes.set_ylabel(f"certified accuracy at {text}", fontsize=11)
    axes.set_title(
        f"{results.name}: Pareto front at {text}\n({results.certificate} certificate, mean over seeds)",
        fontsize=12,
    )
    axes.grid(alpha=0.3)
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9, frameon=False)
    _place_labels(
        axes,
        [
            (p.clean_mean, p.certified_mean, p.setting.short(), style[p.setting.method][0], p.method_front)
            for p in points
            if p.setting.params
        ],
    )
    _save(figure, path)
