"""The report of an experiment folder: Pareto fronts, certified-accuracy curves and tables.

Reads only the files the experiment runner writes — ``experiment.yaml`` (the config), ``results.csv`` (one
row per cell × certificate × threat) and, if present, ``cells.csv`` (one row per cell with its status) — and
writes PNG figures, Markdown and CSV tables, and a ``summary.md`` that collects them.

The parts: ``reading`` (the folder's files, checked, as :class:`Results`), ``threats`` (threat text and
keys), ``pareto`` (seed-averaged settings at a threat, their fronts and the Pareto figure), ``curves`` (the
certified-accuracy curves), ``tables`` (the Markdown/CSV tables and the overview) and ``plotting`` (what the
figures share). matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path

from ...results import LOCK, atomic_file, check_output, output_lock, write_csv
from ...threat import SPELLINGS, Threat
from ...threat import parse_threat_text as parse_threat
from .curves import _curve_axes, _plot_curves
from .pareto import ParetoPoint, _plot_pareto, default_threats, non_dominated, pareto_points
from .reading import CERTIFICATES, Results, Setting, load_results
from .tables import _TABLE_NOTE, _csv_rows, _markdown_table, _overview
from .threats import _threat_slug, _threat_text, symbol, threat_key

__all__ = [
    "CERTIFICATES",
    "ParetoPoint",
    "Results",
    "Setting",
    "default_threats",
    "load_results",
    "make_report",
    "non_dominated",
    "pareto_points",
    "parse_threat",
    "threat_key",
]


def make_report(
    results_dir, threats: list[dict | str | Threat] | None = None, out=None, force: bool = False
) -> list[Path]:
    """``hiersmooth report``: write the report of an experiment folder into ``out`` (default ``results_dir/report``).

    ``threats`` are the Pareto threats, as text (``"r=2,eps=0.25"``, ``"r=1,ra=0,rd=5"``, ``"r=1,l1=0.5"``), as
    :func:`parse_threat` mappings or as :class:`~hiersmooth.threat.Threat` objects; each must have the threat
    columns of results.csv (r, then eps | ra, rd | l1 | nothing).

    For each threat (default: :func:`default_threats`): ``pareto_<threat>.png`` (clean against certified
    accuracy, one point per setting, each method's front joined), ``pareto_<threat>.md`` and ``.csv``; the
    certified-accuracy curves ``curves_eps.png`` (gaussian-type), ``curves_l1.png`` (uniform-type) or
    ``curves_rd.png`` / ``curves_ra.png`` (sparse/graph; an axis with a single value is skipped); and
    ``summary.md`` collecting all of them.
    Returns the written paths. Raises ValueError for missing or malformed files and unknown threats, and for an
    ``out`` that would replace an input or a file hiersmooth did not write (unless ``force``;
    :func:`hiersmooth.results.check_output`), before writing anything; holds ``out``'s lock while writing.
    """
    results = load_results(results_dir)
    out = Path(results_dir) / "report" if out is None else Path(out)
    threats = (
        default_threats(results)
        if threats is None
        else [parse_threat(threat) if isinstance(threat, str) else threat for threat in threats]
    )
    if not threats:
        raise ValueError("no threat to report: give at least one")
    tables = [(threat_key(threat, results.axes), pareto_points(results, threat)) for threat in threats]
    planned = [
        f"pareto_{_threat_slug(key, results.axes)}.{suffix}" for key, _ in tables for suffix in ("png", "md", "csv")
    ]
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
        png, table, table_csv = (
            out / f"pareto_{_threat_slug(key, results.axes)}.{suffix}" for suffix in ("png", "md", "csv")
        )
        text = _threat_text(key, results.axes)
        _plot_pareto(results, key, points, png)
        markdown = _markdown_table(results, points)
        title = f"# {results.name}: Pareto table at {text}, {results.certificate} certificate"
        _write_text(table, f"{title}\n\n{_TABLE_NOTE}\n\n{markdown}")
        write_csv(table_csv, _csv_rows(results, points))
        written += [png, table, table_csv]
        sections.append(f"## Pareto front at {text}\n\n![Pareto front at {text}]({png.name})\n\n{markdown}")
    for axis, index, fixed in _curve_axes(results):
        path = out / f"curves_{axis}.png"
        _plot_curves(results, axis, index, fixed, path)
        written.append(path)
        where = "".join(f", {results.columns[i]}={value:g}" for i, value in fixed.items())
        sections.append(
            f"## Certified accuracy against {symbol(SPELLINGS[axis])}{where}\n\n"
            f"![certified accuracy against {axis}]({path.name})"
        )
    summary = out / "summary.md"
    head = f"# Report: {results.name}\n\n{_overview(results)}\n\n{_TABLE_NOTE}\n\n"
    _write_text(summary, head + "\n\n".join(sections))
    return written + [summary]


def _write_text(path: Path, text: str) -> None:
    with atomic_file(path) as file:
        file.write(text)
