"""Certified-accuracy curves: certified accuracy against one threat coordinate, for every setting.

The curve axes are the budget axes of the results, each with the other budget axes at their smallest value,
the last axis first: ε for gaussian-type results (``curves_eps.png``); ℓ1 for uniform-type results
(``curves_l1.png``); rd at the smallest ra (``curves_rd.png``) and ra at the smallest rd (``curves_ra.png``)
for sparse/graph results; r itself for rows-only results (``curves_r.png``). The file is named by the axis's
name in threat text. An axis with fewer than two values is skipped.

The figure: one panel per r > 0 (a single panel when the axis is r itself; the r = 0 panel alone if there is
no r > 0), all with the same y-axis from 0 to 1.02. x is the threat coordinate, y the certified accuracy, the
mean over seeds. Each setting is a thin faint line in its method's colour; per method, the bold line with
markers is the envelope: at each x, the highest certified accuracy of any of the method's settings there.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...threat import INTEGER_AXES, SPELLINGS
from .plotting import _figure, _save, _style
from .reading import Results, Setting
from .threats import symbol

_AXIS_LABELS = {  # the x label of a curve against each threat axis
    "eps": "ε (ℓ2 budget)",
    "added": "ra (bits added)",
    "deleted": "rd (bits deleted)",
    "rows": "r (changed rows)",
    "l1": "l1 (ℓ1 budget)",
}


def _curve_axes(results: Results) -> list[tuple[str, int, dict[int, float]]]:
    """The curve figures: (axis name in threat text, index in the threat key, fixed key entries) with ≥ 2 values
    on the axis.

    Against each budget axis, the last first, with the other budget axes at their smallest value: gaussian-type
    against ε, uniform-type against ℓ1, sparse/graph against rd at the smallest ra and against ra at the
    smallest rd. Rows-only: against r.
    """
    keys = results.threat_keys()
    budget = range(len(results.axes) - 1, 0, -1)
    candidates = [
        (results.columns[index], index, {i: min(key[i] for key in keys) for i in budget if i != index})
        for index in budget
    ] or [(results.columns[0], 0, {})]
    return [(axis, index, fixed) for axis, index, fixed in candidates if len(_axis_values(keys, index, fixed)) >= 2]


def _axis_values(keys: list[tuple], index: int, fixed: dict[int, float]) -> list[float]:
    return sorted({key[index] for key in keys if all(key[i] == value for i, value in fixed.items())})


def _curve(
    results: Results, setting: Setting, rows: int | None, index: int, fixed: dict[int, float]
) -> tuple[list[float], list[float]]:
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
            ax.plot(
                sorted(envelope),
                [envelope[x] for x in sorted(envelope)],
                color=colour,
                marker=marker,
                markersize=4,
                linewidth=2.2,
            )
        if panels[number] is not None:
            ax.set_title(f"r = {panels[number]}", fontsize=11)
        ax.set_xlabel(_AXIS_LABELS.get(SPELLINGS[axis], axis), fontsize=10)
        ax.set_ylim(0, 1.02)
        if SPELLINGS[axis] in INTEGER_AXES:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if number % columns == 0:
            ax.set_ylabel("certified accuracy", fontsize=10)
    where = "".join(f", {results.columns[i]} = {value:g}" for i, value in fixed.items())
    figure.suptitle(
        f"{results.name}: certified accuracy against {symbol(SPELLINGS[axis])}{where} "
        f"({results.certificate} certificate, mean over seeds)",
        fontsize=12,
    )
    handles = [
        Line2D(
            [],
            [],
            color=style[method][0],
            marker=style[method][1],
            linewidth=2.2,
            label=f"{method}: best setting at each {symbol(SPELLINGS[axis])}",
        )
        for method in results.methods
    ]
    handles.append(Line2D([], [], color="grey", linewidth=0.9, alpha=0.5, label="single setting"))
    legend_columns = min(len(handles), 2 if columns == 1 else 3)
    figure.legend(handles=handles, loc="lower center", ncol=legend_columns, fontsize=9, frameon=False)
    # Room below the panels for the legend: about 0.22 inch per legend row.
    figure.tight_layout(rect=(0, (0.15 + 0.22 * math.ceil(len(handles) / legend_columns)) / height, 1, 1))
    _save(figure, path)
