"""The report's tables: the Pareto table of a threat as Markdown and as CSV, and the experiment overview.

One row per setting at the threat, in the order of :func:`~.pareto.pareto_points` (method in config order,
then decreasing clean accuracy).

Markdown (``pareto_<threat>.md`` and in ``summary.md``) columns: *method*; *parameters* (``name=value, ...``,
``-`` for none); *seeds* (how many seeds have the threat); *clean accuracy* and *certified accuracy* (seed
mean to three decimals, ``± std`` — the sample standard deviation — where there are at least two seeds);
*method front* and *overall front* (``yes``/``no``: non-dominated within the method / among all settings).

CSV (``pareto_<threat>.csv``) columns: ``method``; one column per parameter column of results.csv (empty where
the setting has no such parameter); ``seeds``; ``clean_accuracy_mean``, ``clean_accuracy_std``,
``certified_accuracy_mean``, ``certified_accuracy_std`` (full precision, the std empty for a single seed);
``method_front`` and ``overall_front`` (True/False).

The overview (the head of ``summary.md``): data, model, certificate and seeds; the number of settings per
method; and, where ``cells.csv`` exists, how many cells have each status.
"""

from __future__ import annotations

import math

from .pareto import ParetoPoint
from .reading import Results, _number_text

_TABLE_NOTE = (
    "Accuracies are means over seeds (± sample standard deviation where there are at least two seeds). "
    "*method front*: no other setting of the same method has clean and certified accuracy both at least as high "
    "and one higher; *overall front*: the same among all settings."
)


def _mean_text(mean: float, std: float) -> str:
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _markdown_table(results: Results, points: list[ParetoPoint]) -> str:
    lines = [
        "| method | parameters | seeds | clean accuracy | certified accuracy | method front | overall front |",
        "|---|---|---:|---:|---:|:---:|:---:|",
    ]
    for point in points:
        lines.append(
            f"| {point.setting.method} | {point.setting.describe()} | {point.seeds} "
            f"| {_mean_text(point.clean_mean, point.clean_std)} "
            f"| {_mean_text(point.certified_mean, point.certified_std)} "
            f"| {'yes' if point.method_front else 'no'} | {'yes' if point.overall_front else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _csv_rows(results: Results, points: list[ParetoPoint]) -> list[dict]:
    rows = []
    for point in points:
        params = dict(point.setting.params)
        rows.append(
            {
                "method": point.setting.method,
                **{name: _number_text(params[name]) if name in params else "" for name in results.param_columns},
                "seeds": point.seeds,
                "clean_accuracy_mean": repr(point.clean_mean),
                "clean_accuracy_std": "" if math.isnan(point.clean_std) else repr(point.clean_std),
                "certified_accuracy_mean": repr(point.certified_mean),
                "certified_accuracy_std": "" if math.isnan(point.certified_std) else repr(point.certified_std),
                "method_front": point.method_front,
                "overall_front": point.overall_front,
            }
        )
    return rows


def _overview(results: Results) -> str:
    config = results.config
    data, model = (config.get(part) or {} for part in ("data", "model"))
    seeds = sorted({seed for by_seed in results.clean.values() for seed in by_seed})
    data_name = data.get("name", "?") if isinstance(data, dict) else data
    model_name = model.get("name", "?") if isinstance(model, dict) else model
    settings = ", ".join(f"{method} {sum(s.method == method for s in results.clean)}" for method in results.methods)
    parts = [
        f"Data: {data_name}; model: {model_name}; certificate: {results.certificate}; seeds: {', '.join(seeds)}.",
        f"Settings: {settings}.",
    ]
    if results.statuses:
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(results.statuses.items()))
        parts.append(f"Cells (cells.csv): {statuses}.")
    return "\n".join(parts)
