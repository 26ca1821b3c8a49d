"""The report of an experiment folder: Pareto fronts, certified-accuracy curves and tables.

Reads only the files the experiment runner writes — ``experiment.yaml`` (the config), ``results.csv`` (one
row per cell × certificate × threat) and, if present, ``cells.csv`` (one row per cell with its status) — and
writes PNG figures, Markdown and CSV tables, and a ``summary.md`` that collects them.

A *setting* is one method with one parameter setting; its cells (one per seed) are averaged: clean and
certified accuracy are the means over seeds, shown ± the sample standard deviation (ddof = 1) where there are
at least two seeds. A setting is *non-dominated* in a set of settings when no other setting of the set has
clean and certified accuracy both at least as high and one of them strictly higher. The key figure of the
paper (SPEC.md §5) plots, at one threat, certified against clean accuracy for a grid of settings: the
non-dominated settings of a method form its Pareto front.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config_files import read_yaml
from ..results import LOCK, atomic_file, check_output, output_lock, write_csv

CERTIFICATES = ("binary", "multiclass")
_TAILS = {
    "eps": ["r", "eps", "certified_accuracy", "clean_accuracy"],
    "bits": ["r", "ra", "rd", "certified_accuracy", "clean_accuracy"],
    "rows": ["r", "certified_accuracy", "clean_accuracy"],
}
_SHORT_NAMES = {"selection.p": "$p$", "selection.size": "$k$", "noise.sigma": r"$\sigma$", "noise.p_plus": "$p_+$", "noise.p_minus": "$p_-$"}
_THREAT_ALIASES = {"r": "rows", "rows": "rows", "eps": "eps", "l2": "eps", "ra": "added", "added": "added", "rd": "deleted", "deleted": "deleted"}
_MARKERS = "osD^vPX*"


@dataclass(frozen=True)
class Setting:
    """One method with one parameter setting: the cells of all its seeds share it."""

    method: str
    params: tuple[tuple[str, float | str], ...]

    def describe(self) -> str:
        """The parameters in full, e.g. ``selection.p=0.85, noise.sigma=0.25``."""
        return ", ".join(f"{name}={_number_text(value)}" for name, value in self.params) or "-"

    def short(self) -> str:
        """The parameters for a plot label (matplotlib mathtext), e.g. ``$p$=.85 $\\sigma$=.25``."""
        return " ".join(f"{_SHORT_NAMES.get(name, name.rsplit('.', 1)[-1])}={_number_text(value, short=True)}" for name, value in self.params)


@dataclass
class Results:
    """The seed-level results of one experiment folder, for one certificate.

    ``clean[setting][seed]`` is a cell's smoothed (clean) accuracy; ``certified[setting][key][seed]`` its
    certified accuracy at the threat ``key`` = (r, ε) for gaussian-type results (``kind == "eps"``),
    (r, ra, rd) for sparse/graph results (``kind == "bits"``) or (r,) where every method is an ablation and
    the threat is the number of changed rows alone (``kind == "rows"``).
    """

    directory: Path
    config: dict
    certificate: str
    kind: str
    param_columns: tuple[str, ...]
    methods: list[str]
    clean: dict[Setting, dict[str, float]]
    certified: dict[Setting, dict[tuple, dict[str, float]]]
    statuses: Counter

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.directory.name))

    def threat_keys(self) -> list[tuple]:
        """Every threat key present in the results, sorted."""
        return sorted({key for by_threat in self.certified.values() for key in by_threat})


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


def load_results(results_dir) -> Results:
    """Read ``experiment.yaml``, ``results.csv`` and (if present) ``cells.csv`` of an experiment folder.

    Keeps the rows of the certificate named by ``certify.certificate`` (multiclass if absent). Raises
    ValueError naming the file and what is wrong for a missing file or malformed content.
    """
    directory = Path(results_dir)
    if not directory.is_dir():
        raise ValueError(f"results folder {directory} does not exist")
    config = _read_config(directory / "experiment.yaml")
    certify = config.get("certify") or {}
    certificate = certify.get("certificate", "multiclass") if isinstance(certify, dict) else None
    if certificate not in CERTIFICATES:
        raise ValueError(f"{directory / 'experiment.yaml'}: certify.certificate={certificate!r}; allowed: {', '.join(CERTIFICATES)}")
    path = directory / "results.csv"
    header, rows = _read_csv(path)
    kind, params = _parse_header(path, header)
    clean: dict[Setting, dict[str, float]] = {}
    certified: dict[Setting, dict[tuple, dict[str, float]]] = {}
    cells: dict[str, tuple[Setting, str, float]] = {}
    order: list[str] = []
    for line, row in rows:
        if row["certificate"] not in CERTIFICATES:
            raise ValueError(f"{path} line {line}: certificate={row['certificate']!r}; allowed: {', '.join(CERTIFICATES)}")
        if row["certificate"] != certificate:
            continue
        setting = Setting(row["method"], tuple((name, _param_value(row[name])) for name in params if row[name] != ""))
        seed, accuracy = row["seed"], _accuracy(path, line, row, "clean_accuracy")
        if row["cell"] not in cells:
            if seed in clean.get(setting, {}):
                raise ValueError(f"{path} line {line}: cell {row['cell']} repeats method {setting.method} ({setting.describe()}) with seed {seed}")
            cells[row["cell"]] = (setting, seed, accuracy)
            clean.setdefault(setting, {})[seed] = accuracy
            if setting.method not in order:
                order.append(setting.method)
        elif cells[row["cell"]] != (setting, seed, accuracy):
            raise ValueError(f"{path} line {line}: cell {row['cell']} changes its method, parameters, seed or clean_accuracy between rows")
        key = _row_key(path, line, row, kind)
        by_seed = certified.setdefault(setting, {}).setdefault(key, {})
        if seed in by_seed:
            raise ValueError(f"{path} line {line}: cell {row['cell']} has threat {_threat_text(key)} twice")
        by_seed[seed] = _accuracy(path, line, row, "certified_accuracy")
    if not cells:
        raise ValueError(f"{path}: no rows for the {certificate} certificate (certify.certificate in experiment.yaml)")
    configured = list(config.get("methods") or {}) if isinstance(config.get("methods"), dict) else []
    methods = [method for method in configured if method in order] + [method for method in order if method not in configured]
    return Results(directory, config, certificate, kind, tuple(params), methods, clean, certified, _read_statuses(directory / "cells.csv"))


def parse_threat(text: str) -> dict:
    """A threat dict from command-line text: ``r=2,eps=0.25`` → {rows: 2, eps: 0.25}; ``r=1,ra=0,rd=5`` →
    {rows: 1, added: 0, deleted: 5} (also accepted: rows, l2, added, deleted)."""
    threat: dict = {}
    for part in text.replace(" ", "").split(","):
        name, _, value = part.partition("=")
        if name not in _THREAT_ALIASES or not value:
            raise ValueError(f"threat {text!r}: expected r=R,eps=E or r=R,ra=A,rd=D (got {part!r})")
        key = _THREAT_ALIASES[name]
        try:
            threat[key] = float(value) if key == "eps" else int(value)
        except ValueError:
            raise ValueError(f"threat {text!r}: {name}={value!r} is not a number") from None
    return threat


def threat_key(threat: dict, kind: str) -> tuple:
    """The results key of a threat dict: (rows, eps) for ``kind == "eps"``, (rows, added, deleted) for
    ``kind == "bits"`` (a missing one of added/deleted counts as 0, as in ``Threat``), (rows,) for
    ``kind == "rows"``. The short names r, l2, ra, rd are accepted too."""
    if not isinstance(threat, dict) or not set(threat) <= set(_THREAT_ALIASES):
        raise ValueError(f"threat {threat!r}: give rows and eps, or rows, added and deleted")
    threat = {_THREAT_ALIASES[name]: value for name, value in threat.items()}
    axes = {"eps": {"eps"}, "bits": {"added", "deleted"}, "rows": set()}[kind]
    given = set(threat) - {"rows"}
    if "rows" not in threat or not given <= axes or (axes and not given):
        columns = ", ".join(_AXIS_NAMES[kind])
        raise ValueError(f"threat {threat!r}: these results have threat columns {columns}; give {' and '.join(['rows', *sorted(axes)])}")
    try:
        if kind == "eps":
            return int(threat["rows"]), round(float(threat["eps"]), 9)
        if kind == "bits":
            return int(threat["rows"]), int(threat.get("added", 0)), int(threat.get("deleted", 0))
        return (int(threat["rows"]),)
    except (TypeError, ValueError):
        raise ValueError(f"threat {threat!r}: rows, added, deleted must be integers and eps a number") from None


def non_dominated(clean: np.ndarray, certified: np.ndarray) -> np.ndarray:
    """For each point, whether no other point has both coordinates ≥ its own and one strictly greater."""
    x, y = np.asarray(clean, dtype=float), np.asarray(certified, dtype=float)
    geq = (x[None, :] >= x[:, None]) & (y[None, :] >= y[:, None])
    greater = (x[None, :] > x[:, None]) | (y[None, :] > y[:, None])
    return ~np.any(geq & greater, axis=1)


def pareto_points(results: Results, threat: dict) -> list[ParetoPoint]:
    """Every setting at ``threat``, seed-averaged, with its non-dominated flags within its method and overall.

    Sorted by method (config order) and then by decreasing clean accuracy. Raises ValueError if no setting
    has the threat.
    """
    key = threat_key(threat, results.kind)
    summaries = []
    for setting, by_threat in results.certified.items():
        by_seed = by_threat.get(key)
        if by_seed:
            clean = [results.clean[setting][seed] for seed in by_seed]
            summaries.append((setting, len(by_seed), *_mean_std(clean), *_mean_std(list(by_seed.values()))))
    if not summaries:
        raise ValueError(f"threat {_threat_text(key)} is not in {results.directory / 'results.csv'} ({_available(results)})")
    summaries.sort(key=lambda item: (results.methods.index(item[0].method), -item[2]))
    clean_means, certified_means = np.array([item[2] for item in summaries]), np.array([item[4] for item in summaries])
    overall = non_dominated(clean_means, certified_means)
    front = np.zeros(len(summaries), dtype=bool)
    for method in results.methods:
        mine = np.array([item[0].method == method for item in summaries])
        front[mine] = non_dominated(clean_means[mine], certified_means[mine])
    return [ParetoPoint(*item, bool(f), bool(o)) for item, f, o in zip(summaries, front, overall)]


def default_threats(results: Results) -> list[dict]:
    """The threats to report: ``pareto`` of experiment.yaml, else one mid-grid threat at the smallest r > 0.

    The pick is the smallest positive r with the lower-middle positive ε (gaussian-type), or with the smallest
    ra and the lower-middle positive rd (sparse/graph), or alone (rows-only results).
    """
    configured = results.config.get("pareto")
    if configured:
        if not isinstance(configured, list):
            raise ValueError(f"{results.directory / 'experiment.yaml'}: pareto must be a list of threats, got {configured!r}")
        return configured
    keys = results.threat_keys()
    rows = min((key[0] for key in keys if key[0] > 0), default=keys[0][0])
    if results.kind == "rows":
        return [{"rows": rows}]
    if results.kind == "eps":
        eps = sorted({key[1] for key in keys if key[0] == rows and key[1] > 0}) or [0.0]
        return [{"rows": rows, "eps": eps[(len(eps) - 1) // 2]}]
    added = min(key[1] for key in keys if key[0] == rows)
    deleted = sorted({key[2] for key in keys if key[0] == rows and key[1] == added and key[2] > 0}) or [0]
    return [{"rows": rows, "added": added, "deleted": deleted[(len(deleted) - 1) // 2]}]


def make_report(results_dir, threats: list[dict] | None = None, out=None, force: bool = False) -> list[Path]:
    """Write the report of an experiment folder into ``out`` (default ``results_dir/report``).

    For each threat (default: :func:`default_threats`): ``pareto_<threat>.png`` (clean against certified
    accuracy, one point per setting, each method's front joined), ``pareto_<threat>.md`` and ``.csv``; the
    certified-accuracy curves ``curves_eps.png`` (gaussian-type) or ``curves_rd.png`` / ``curves_ra.png``
    (sparse/graph; an axis with a single value is skipped); and ``summary.md`` collecting all of them.
    Returns the written paths. Raises ValueError for missing or malformed files and unknown threats, and for an
    ``out`` that would replace an input or a file hiersmooth did not write (unless ``force``;
    :func:`hiersmooth.results.check_output`), before writing anything; holds ``out``'s lock while writing.
    """
    results = load_results(results_dir)
    out = Path(results_dir) / "report" if out is None else Path(out)
    threats = default_threats(results) if threats is None else list(threats)
    if not threats:
        raise ValueError("no threat to report: give at least one")
    tables = [(threat_key(threat, results.kind), pareto_points(results, threat)) for threat in threats]
    planned = [f"pareto_{_threat_slug(key)}.{suffix}" for key, _ in tables for suffix in ("png", "md", "csv")]
    planned += [f"curves_{axis}.png" for axis, _, _ in _curve_axes(results)] + ["summary.md"]
    inputs = [Path(results_dir) / name for name in ("experiment.yaml", "results.csv", "cells.csv")]
    check_output(out, inputs, force, files=planned)
    with output_lock(out / LOCK):
        return _write_report(results, out, tables)


def _write_report(results: Results, out: Path, tables: list) -> list[Path]:
    written: list[Path] = []
    sections = []
    for key, points in tables:
        # Built by name, not with_suffix: the stem itself holds a dot (pareto_r2_eps0.25).
        png, table, table_csv = (out / f"pareto_{_threat_slug(key)}.{suffix}" for suffix in ("png", "md", "csv"))
        _plot_pareto(results, key, points, png)
        markdown = _markdown_table(results, points)
        _write_text(table, f"# {results.name}: Pareto table at {_threat_text(key)}, {results.certificate} certificate\n\n{_TABLE_NOTE}\n\n{markdown}")
        write_csv(table_csv, _csv_rows(results, points))
        written += [png, table, table_csv]
        sections.append(f"## Pareto front at {_threat_text(key)}\n\n![Pareto front at {_threat_text(key)}]({png.name})\n\n{markdown}")
    for axis, index, fixed in _curve_axes(results):
        path = out / f"curves_{axis}.png"
        _plot_curves(results, axis, index, fixed, path)
        written.append(path)
        where = "".join(f", {_AXIS_NAMES[results.kind][i]}={value:g}" for i, value in fixed.items())
        sections.append(f"## Certified accuracy against {_AXIS_SYMBOLS[axis]}{where}\n\n![certified accuracy against {axis}]({path.name})")
    summary = out / "summary.md"
    _write_text(summary, f"# Report: {results.name}\n\n{_overview(results)}\n\n{_TABLE_NOTE}\n\n" + "\n\n".join(sections))
    return written + [summary]


_TABLE_NOTE = (
    "Accuracies are means over seeds (± sample standard deviation where there are at least two seeds). "
    "*method front*: no other setting of the same method has clean and certified accuracy both at least as high "
    "and one higher; *overall front*: the same among all settings."
)
_AXIS_NAMES = {"eps": ("r", "eps"), "bits": ("r", "ra", "rd"), "rows": ("r",)}
_AXIS_SYMBOLS = {"eps": "ε", "ra": "ra", "rd": "rd", "r": "r"}
_AXIS_LABELS = {"eps": "ε (ℓ2 budget)", "ra": "ra (bits added)", "rd": "rd (bits deleted)", "r": "r (changed rows)"}


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"{path}: file not found (the experiment config the runner writes)")
    config = read_yaml(path, "experiment")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: must be a mapping (name, certify, methods, ...), got {type(config).__name__}")
    return config


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    if not path.is_file():
        raise ValueError(f"{path}: file not found (the tidy results the runner writes)")
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: empty file")
        rows = []
        for line, values in enumerate(reader, start=2):
            if len(values) != len(header):
                raise ValueError(f"{path} line {line}: {len(values)} values for {len(header)} columns")
            rows.append((line, dict(zip(header, values))))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return header, rows


def _parse_header(path: Path, header: list[str]) -> tuple[str, list[str]]:
    """The result kind ("eps" or "bits") and the parameter columns, checking the column order."""
    if header[:3] != ["cell", "method", "seed"] or "certificate" not in header:
        raise ValueError(f"{path}: columns must be cell, method, seed, <parameters>, certificate, r, ...; found {', '.join(header)}")
    split = header.index("certificate")
    for kind, tail in _TAILS.items():
        if header[split + 1:] == tail:
            return kind, header[3:split]
    raise ValueError(f"{path}: columns after certificate must be {' | '.join(', '.join(tail) for tail in _TAILS.values())}; found {', '.join(header[split + 1:])}")


def _number(path: Path, line: int, row: dict, column: str) -> float:
    try:
        value = float(row[column])
    except ValueError:
        raise ValueError(f"{path} line {line}: {column}={row[column]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{path} line {line}: {column}={row[column]!r} is not finite")
    return value


def _accuracy(path: Path, line: int, row: dict, column: str) -> float:
    value = _number(path, line, row, column)
    if not 0 <= value <= 1:
        raise ValueError(f"{path} line {line}: {column}={row[column]!r} must lie in [0, 1]")
    return value


def _count(path: Path, line: int, row: dict, column: str) -> int:
    value = _number(path, line, row, column)
    if value != int(value) or value < 0:
        raise ValueError(f"{path} line {line}: {column}={row[column]!r} must be a non-negative integer")
    return int(value)


def _row_key(path: Path, line: int, row: dict, kind: str) -> tuple:
    rows = _count(path, line, row, "r")
    if kind == "eps":
        return rows, round(_number(path, line, row, "eps"), 9)
    if kind == "bits":
        return rows, _count(path, line, row, "ra"), _count(path, line, row, "rd")
    return (rows,)


def _param_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _read_statuses(path: Path) -> Counter:
    """How many cells of ``cells.csv`` have each status (empty if the file is absent)."""
    if not path.is_file():
        return Counter()
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if "status" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: missing column 'status'")
        return Counter(row["status"] for row in reader)


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if array.size >= 2 else math.nan


def _number_text(value: float | str, short: bool = False) -> str:
    if isinstance(value, str):
        return value
    text = f"{value:g}"
    return text[1:] if short and text.startswith("0.") else text


def _threat_text(key: tuple) -> str:
    if len(key) == 1:
        return f"r={key[0]}"
    if len(key) == 2:
        return f"r={key[0]}, ε={key[1]:g}"
    return f"r={key[0]}, ra={key[1]}, rd={key[2]}"


def _threat_slug(key: tuple) -> str:
    if len(key) == 1:
        return f"r{key[0]}"
    if len(key) == 2:
        return f"r{key[0]}_eps{key[1]:g}"
    return f"r{key[0]}_ra{key[1]}_rd{key[2]}"


def _available(results: Results) -> str:
    keys = results.threat_keys()
    return "; ".join(f"{name} in {{{', '.join(f'{value:g}' for value in sorted({key[i] for key in keys}))}}}" for i, name in enumerate(_AXIS_NAMES[results.kind]))


def _mean_text(mean: float, std: float) -> str:
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _markdown_table(results: Results, points: list[ParetoPoint]) -> str:
    lines = [
        "| method | parameters | seeds | clean accuracy | certified accuracy | method front | overall front |",
        "|---|---|---:|---:|---:|:---:|:---:|",
    ]
    for point in points:
        lines.append(
            f"| {point.setting.method} | {point.setting.describe()} | {point.seeds} | {_mean_text(point.clean_mean, point.clean_std)} "
            f"| {_mean_text(point.certified_mean, point.certified_std)} | {'yes' if point.method_front else 'no'} | {'yes' if point.overall_front else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _csv_rows(results: Results, points: list[ParetoPoint]) -> list[dict]:
    rows = []
    for point in points:
        params = dict(point.setting.params)
        rows.append({
            "method": point.setting.method,
            **{name: _number_text(params[name]) if name in params else "" for name in results.param_columns},
            "seeds": point.seeds,
            "clean_accuracy_mean": repr(point.clean_mean),
            "clean_accuracy_std": "" if math.isnan(point.clean_std) else repr(point.clean_std),
            "certified_accuracy_mean": repr(point.certified_mean),
            "certified_accuracy_std": "" if math.isnan(point.certified_std) else repr(point.certified_std),
            "method_front": point.method_front,
            "overall_front": point.overall_front,
        })
    return rows


def _overview(results: Results) -> str:
    config = results.config
    data, model = (config.get(part) or {} for part in ("data", "model"))
    seeds = sorted({seed for by_seed in results.clean.values() for seed in by_seed})
    parts = [
        f"Data: {data.get('name', '?') if isinstance(data, dict) else data}; model: {model.get('name', '?') if isinstance(model, dict) else model}; "
        f"certificate: {results.certificate}; seeds: {', '.join(seeds)}.",
        f"Settings: {', '.join(f'{method} {sum(s.method == method for s in results.clean)}' for method in results.methods)}.",
    ]
    if results.statuses:
        parts.append(f"Cells (cells.csv): {', '.join(f'{count} {status}' for status, count in sorted(results.statuses.items()))}.")
    return "\n".join(parts)


def _write_text(path: Path, text: str) -> None:
    with atomic_file(path) as file:
        file.write(text)


def _figure(width: float, height: float):
    """A matplotlib figure on its own Agg canvas (no pyplot, no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=130)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> None:
    with atomic_file(path, "wb") as file:
        figure.savefig(file, format="png", bbox_inches="tight")


def _style(results: Results) -> dict[str, tuple[str, str]]:
    """Colour and marker of each method."""
    from matplotlib import colormaps

    colours = colormaps["tab10"].colors
    return {method: (colours[i % len(colours)], _MARKERS[i % len(_MARKERS)]) for i, method in enumerate(results.methods)}


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
        # The staircase is the boundary of the region the front attains: no corner above a point's accuracy.
        axes.step([p.clean_mean for p in front], [p.certified_mean for p in front], where="pre", color=colour, linewidth=1.8, zorder=2)
        axes.scatter([p.clean_mean for p in front], [p.certified_mean for p in front], color=colour, marker=marker, s=55, zorder=3, edgecolor="black", linewidth=0.5)
        axes.scatter([p.clean_mean for p in faint], [p.certified_mean for p in faint], color=colour, marker=marker, s=40, zorder=3, alpha=0.3)
        handles.append(Line2D([], [], color=colour, marker=marker, markeredgecolor="black", markeredgewidth=0.5, linewidth=1.8, label=f"{method} ({len(front)} of {len(mine)} on front)"))
    handles.append(Line2D([], [], color="grey", marker="o", linestyle="none", alpha=0.3, label="dominated within its method"))
    axes.set_xlabel("clean accuracy (smoothed, no attack)", fontsize=11)
    axes.set_ylabel(f"certified accuracy at {_threat_text(key)}", fontsize=11)
    axes.set_title(f"{results.name}: Pareto front at {_threat_text(key)}\n({results.certificate} certificate, mean over seeds)", fontsize=12)
    axes.grid(alpha=0.3)
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9, frameon=False)
    _place_labels(axes, [(p.clean_mean, p.certified_mean, p.setting.short(), style[p.setting.method][0], p.method_front) for p in points if p.setting.params])
    _save(figure, path)


def _place_labels(axes, labels: list[tuple[float, float, str, str, bool]]) -> None:
    """Write each label next to its point at the first of a few offsets where it overlaps no point, no
    earlier label and stays inside the axes; front labels (last tuple entry true) are placed first and always
    shown, other labels are left out where nothing fits."""
    from matplotlib.transforms import Bbox

    renderer = axes.figure.canvas.get_renderer()
    inside = axes.get_window_extent(renderer)
    taken = []
    for x, y, *_ in labels:
        px, py = axes.transData.transform((x, y))
        taken.append(Bbox.from_extents(px - 5, py - 5, px + 5, py + 5))
    offsets = [(7, 4, "left", "bottom"), (7, -4, "left", "top"), (-7, 4, "right", "bottom"), (-7, -4, "right", "top"), (0, 9, "center", "bottom"), (0, -9, "center", "top")]
    for x, y, text, colour, front in sorted(labels, key=lambda label: not label[4]):
        for dx, dy, ha, va in offsets:
            label = axes.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8, color=colour, alpha=1.0 if front else 0.55)
            box = label.get_window_extent(renderer)
            inside_axes = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
            if inside_axes and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            label.remove()
        else:
            if front:
                dx, dy, ha, va = offsets[0]
                axes.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8, color=colour)


def _curve_axes(results: Results) -> list[tuple[str, int, dict[int, float]]]:
    """The curve figures: (axis name, index in the threat key, fixed key entries) with ≥ 2 values on the axis.

    Gaussian-type: against ε. Sparse/graph: against rd at the smallest ra, and against ra at the smallest rd.
    Rows-only: against r.
    """
    keys = results.threat_keys()
    if results.kind == "rows":
        candidates = [("r", 0, {})]
    elif results.kind == "eps":
        candidates = [("eps", 1, {})]
    else:
        candidates = [("rd", 2, {1: min(key[1] for key in keys)}), ("ra", 1, {2: min(key[2] for key in keys)})]
    return [(axis, index, fixed) for axis, index, fixed in candidates if len(_axis_values(keys, index, fixed)) >= 2]


def _axis_values(keys: list[tuple], index: int, fixed: dict[int, float]) -> list[float]:
    return sorted({key[index] for key in keys if all(key[i] == value for i, value in fixed.items())})


def _curve(results: Results, setting: Setting, rows: int | None, index: int, fixed: dict[int, float]) -> tuple[list[float], list[float]]:
    """Seed-mean certified accuracy of one setting against one threat coordinate at ``rows`` changed rows
    (any r when ``rows`` is None: the curve against r itself)."""
    points = sorted(
        (key[index], float(np.mean(list(by_seed.values()))))
        for key, by_seed in results.certified[setting].items()
        if rows in (None, key[0]) and all(key[i] == value for i, value in fixed.items())
    )
    return [point[0] for point in points], [point[1] for point in points]


def _plot_curves(results: Results, axis: str, index: int, fixed: dict[int, float], path: Path) -> None:
    """Certified accuracy against one threat coordinate, one panel per r (one panel against r itself): a thin
    line per setting, and per method the best setting at each value (the envelope) in bold."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    keys = results.threat_keys()
    panels = [None] if index == 0 else sorted({key[0] for key in keys if key[0] > 0}) or [0]
    columns = len(panels) if len(panels) <= 3 else math.ceil(math.sqrt(len(panels)))
    rows = math.ceil(len(panels) / columns)
    height = 3.4 * rows + 0.6
    figure = _figure(4.2 * columns if columns > 1 else 6.0, height)
    grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    style = _style(results)
    for number, ax in enumerate(grid.flat):
        if number >= len(panels):
            ax.set_visible(False)
            continue
        for method in results.methods:
            colour, marker = style[method]
            envelope: dict[float, float] = {}
            for setting in (setting for setting in results.certified if setting.method == method):
                xs, ys = _curve(results, setting, panels[number], index, fixed)
                ax.plot(xs, ys, color=colour, linewidth=0.9, alpha=0.35)
                for x, y in zip(xs, ys):
                    envelope[x] = max(y, envelope.get(x, -1.0))
            ax.plot(sorted(envelope), [envelope[x] for x in sorted(envelope)], color=colour, marker=marker, markersize=4, linewidth=2.2)
        if panels[number] is not None:
            ax.set_title(f"r = {panels[number]}", fontsize=11)
        ax.set_xlabel(_AXIS_LABELS[axis], fontsize=10)
        ax.set_ylim(0, 1.02)
        if axis != "eps":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if number % columns == 0:
            ax.set_ylabel("certified accuracy", fontsize=10)
    where = "".join(f", {_AXIS_NAMES[results.kind][i]} = {value:g}" for i, value in fixed.items())
    figure.suptitle(f"{results.name}: certified accuracy against {_AXIS_SYMBOLS[axis]}{where} ({results.certificate} certificate, mean over seeds)", fontsize=12)
    handles = [Line2D([], [], color=style[method][0], marker=style[method][1], linewidth=2.2, label=f"{method}: best setting at each {_AXIS_SYMBOLS[axis]}") for method in results.methods]
    handles.append(Line2D([], [], color="grey", linewidth=0.9, alpha=0.5, label="single setting"))
    legend_columns = min(len(handles), 2 if columns == 1 else 3)
    figure.legend(handles=handles, loc="lower center", ncol=legend_columns, fontsize=9, frameon=False)
    # Room below the panels for the legend: about 0.22 inch per legend row.
    figure.tight_layout(rect=(0, (0.15 + 0.22 * math.ceil(len(handles) / legend_columns)) / height, 1, 1))
    _save(figure, path)
