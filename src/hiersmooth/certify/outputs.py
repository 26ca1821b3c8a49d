"""The files of a certification: certified-accuracy table, per-point results, JSON sidecar, and a printed summary.

For ``OUT.csv``: ``OUT.csv`` (tidy, one row per certificate × threat), ``OUT.points.csv`` (one row per point:
label, selected class, bounds, abstentions, and the radius per r or largest certified r), ``OUT.points.npz``
(the same per-point certificates as arrays, including the full (r, ra, rd) grid for sparse noise) and
``OUT.json`` (inputs, config, α, sample counts, grid, timings, versions).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..results import library_versions, write_arrays, write_csv, write_json
from ..threat import INTEGER_AXES

if TYPE_CHECKING:
    from .certification import VoteCertificates


def output_paths(out_csv) -> dict[str, Path]:
    out_csv = Path(out_csv)
    stem = out_csv.with_suffix("") if out_csv.suffix == ".csv" else out_csv
    return {
        "table": out_csv,
        "points_csv": stem.with_name(stem.name + ".points.csv"),
        "points_npz": stem.with_name(stem.name + ".points.npz"),
        "sidecar": stem.with_name(stem.name + ".json"),
    }


def per_point(result: VoteCertificates, axes: dict[str, list]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Per-point rows (scalars) and arrays (the family's certificate for every point)."""
    noise, points = result.smoothing.noise, result.points
    rows = np.asarray(axes["rows"])
    arrays = {
        "labels": result.labels,
        "selected": result.selected,
        "runner_up": result.runner_up_class,
        "correct": result.correct,
    }
    for cert in result.certificates:
        arrays[f"abstain_{cert.name}"] = cert.abstain
        arrays[f"p_lower_{cert.name}"] = cert.p_lower
        if cert.p_upper is not None:
            arrays[f"p_upper_{cert.name}"] = cert.p_upper
        for name, values in noise.point_certificate(cert, axes).items():
            arrays[f"{name}_{cert.name}"] = values
    columns = {"point": np.arange(points)}
    for name, values in arrays.items():
        if values.ndim == 1:
            columns[name] = values
        elif values.ndim == 2:  # radius per r
            columns.update({f"{name}_r{r}": values[:, k] for k, r in enumerate(rows)})
    arrays.update({axis: np.asarray(values) for axis, values in axes.items() if axis in INTEGER_AXES})  # grid indices
    table = [{name: values[i].item() for name, values in columns.items()} for i in range(points)]
    return table, arrays


def summary(result: VoteCertificates) -> dict:
    """Headline numbers: accuracy of the selected class, and clean certified accuracy / abstentions per certificate."""
    record = {"accuracy_of_selected_class": float(result.correct.mean())}
    for cert in result.certificates:
        record[cert.name] = {
            "clean_certified_accuracy": float((~cert.abstain & result.correct).mean()),
            "abstain_rate": float(cert.abstain.mean()),
        }
    return record


def write_outputs(
    result: VoteCertificates,
    table: list[dict],
    axes: dict[str, list],
    out_csv,
    inputs: dict,
    started: float,
    extra: dict | None = None,
) -> dict[str, Path]:
    """Write the table, per-point files and sidecar (with ``extra`` records, e.g. the seed plan); return their
    paths."""
    paths = output_paths(out_csv)
    point_rows, point_arrays = per_point(result, axes)
    write_csv(paths["table"], table)
    write_csv(paths["points_csv"], point_rows)
    write_arrays(paths["points_npz"], **point_arrays)
    write_json(
        paths["sidecar"],
        {
            "inputs": inputs,
            "smoothing": result.smoothing.to_config(),
            "alpha": result.alpha,
            "runner_up": result.runner_up,
            "points": result.points,
            "classes": result.classes,
            "n0": result.n0,
            "n": result.n,
            "threat_grid": axes,
            **(extra or {}),
            "summary": summary(result),
            "outputs": {name: str(path) for name, path in paths.items()},
            "seconds": round(time.perf_counter() - started, 4),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(),
        },
    )
    return paths


def format_table(
    result: VoteCertificates, table: list[dict], axes: dict[str, list], max_columns: int = 8, max_lines: int = 50
) -> str:
    """Certified accuracy as aligned text: a line per (certificate, r) (every k-th r past ``max_lines``), up to
    ``max_columns`` threats as columns.

    The views are the noise family's (``Noise.views``): e.g. a sparse grid along its two edges, deletions only
    (ra = 0), then additions only (rd = 0).
    """
    views = result.smoothing.noise.views(axes)
    lines = []
    for title, fixed, key, values in views:  # one pass over the table per view and certificate: linear in the grid
        shown = list(values)[:: max(1, -(-len(values) // max_columns))]
        lines.append(f"{'certified accuracy, ' + title:<34}" + "".join(f"{v:>8g}" for v in shown))
        for cert in result.certificates:
            found, all_rows = {}, set()
            for row in table:
                if row["certificate"] == cert.name:
                    all_rows.add(row["r"])
                    if all(row[column] == value for column, value in fixed.items()):
                        found.setdefault((None if key == "r" else row["r"], row[key]), row["certified_accuracy"])
            rows = [None] if key == "r" else sorted(all_rows)
            for r in rows[:: max(1, -(-len(rows) // max_lines))]:
                cells = [found.get((r, v)) for v in shown]
                label = f"  {cert.name}" + ("" if r is None else f", r={r}")
                lines.append(f"{label:<34}" + "".join("       -" if c is None else f"{c:>8.3f}" for c in cells))
    return "\n".join(lines)
