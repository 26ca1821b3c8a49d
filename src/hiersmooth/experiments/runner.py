"""``hiersmooth run EXPERIMENT.yaml``: train (or reuse) → certify → aggregate, cell by cell, resumably.

The results folder holds

- ``experiment.yaml`` — the experiment as given (a rerun into the same folder must give the same one);
- ``cells/<cell>/model/`` — the cell's checkpoint (reused when its config matches), ``cells/<cell>/certify/`` —
  votes, per-point results and the certified-accuracy table (``hiersmooth certify``), ``cells/<cell>/certify.log``;
- ``cells.csv`` — one row per cell with its status; ``results.csv`` — one row per cell × certificate × threat:
  cell, method, seed, the grid parameters, certificate, r, eps (or ra, rd; l1), certified_accuracy, clean_accuracy
  (a sequential experiment, ``certify.targets``: one row per target threat, the empty threat first).

A cell is finished when its certificate sidecar exists; finished cells are skipped, and a cell killed part-way
resumes its certification from the checkpointed vote counts.
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import yaml

from ..certify.tables import column_name
from ..config_files import read_yaml
from ..defaults import CERTIFICATES
from ..results import LOCK, atomic_file, check_output, output_lock, write_csv
from .grid import Cell, Experiment, load_experiment

SIDECAR = "certified_accuracy.json"
RESULTS_FILES = ("cells.csv", "results.csv")  # experiment.yaml is written only where absent


def cell_folder(results: Path, cell: Cell) -> Path:
    return Path(results) / "cells" / cell.name


def cell_done(results: Path, cell: Cell) -> bool:
    return (cell_folder(results, cell) / "certify" / SIDECAR).exists()


def results_folder(experiment: Experiment, out=None) -> Path:
    """Where an experiment's results go: ``out``, else ``results/<experiment name>``."""
    return Path(out or f"results/{experiment.name}")


def run_experiment(experiment, out=None, progress: bool = True, force: bool = False, log=print) -> Path:
    """``hiersmooth run``: run every unfinished cell of ``experiment`` (an :class:`Experiment`, a mapping or a YAML
    path) into the results folder ``out`` (default ``results/<name>``), write the aggregate tables and return the
    folder.

    A folder holding another experiment, or files hiersmooth did not write (unless ``force``), is refused; one run
    at a time holds it. Under torchrun, rank 0 trains each cell's model while the others wait; all ranks then
    certify it together, and rank 0 alone logs and writes.
    """
    from ..distributed import init_ranks

    source = experiment if isinstance(experiment, (str, Path)) else None
    experiment = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    results = results_folder(experiment, out)
    check_output(results, [source], force, files=RESULTS_FILES)
    ranks = init_ranks(experiment.cells[0].run.training.device)
    with output_lock(results / LOCK) if ranks.writer else contextlib.nullcontext():  # one run per results folder
        return _run_cells(experiment, results, ranks, progress, log)


def _run_cells(experiment: Experiment, results: Path, ranks, progress: bool, log) -> Path:
    if ranks.writer:
        _claim(results, experiment)
    ranks.barrier()
    log = log if ranks.writer else (lambda line: None)
    for index, cell in enumerate(experiment.cells, 1):
        prefix = f"[{index}/{len(experiment.cells)}] {cell.name}"
        if cell_done(results, cell):
            log(f"{prefix}: done before, skipped")
            continue
        folder = cell_folder(results, cell)
        model = folder / "model"
        trained = _reusable(model, cell)
        if not trained and ranks.writer:
            from ..trained import train_run

            train_run(cell.run, model, progress)
        ranks.barrier()
        _certify(experiment, cell, folder, progress and ranks.writer)
        ranks.barrier()
        summary = _summary(folder)
        log(
            f"{prefix}: {'reused model, ' if trained else 'trained, '}certified; clean accuracy "
            f"{summary[experiment.certify['certificate']]['clean_certified_accuracy']:.3f}"
        )
    if ranks.writer:
        aggregate(experiment, results)
    return results


def _claim(results: Path, experiment: Experiment) -> None:
    """Write ``experiment.yaml``, or check that the folder's one is this experiment (so cells are not mixed)."""
    path = results / "experiment.yaml"
    if path.exists():
        if read_yaml(path, "results folder:") != experiment.raw:
            raise ValueError(f"results folder {results}: holds another experiment ({path} differs); use another folder")
        return
    with atomic_file(path) as file:
        file.write(yaml.safe_dump(experiment.raw, sort_keys=False))


def _reusable(model: Path, cell: Cell) -> bool:
    """True when ``model`` is a finished checkpoint trained with exactly this cell's run config."""
    config = model / "config.yaml"
    if not (model / "model.pt").exists() or not config.exists():
        return False
    stored = read_yaml(config, "results folder:")
    if not isinstance(stored, dict):
        raise ValueError(f"results folder: {config} is damaged (not a run config); delete {model} to retrain the cell")
    wanted = cell.run.to_dict()
    stored.pop("out", None)
    wanted.pop("out", None)
    return stored == wanted


def _certify(experiment: Experiment, cell: Cell, folder: Path, progress: bool) -> None:
    """Certify the cell's checkpoint (:func:`hiersmooth.trained.certify_checkpoint`) at the experiment's threats;
    the printed summary is appended to ``certify.log``."""
    from ..trained import certify_checkpoint

    options = experiment.certify
    own = ("rows", *cell.run.smoothing.noise.axes)  # ablation has none: it certifies any change to r rows
    grid = {axis: values for axis, values in experiment.threats.items() if axis in own}
    sequential = {}
    if experiment.targets is not None:  # the targets on the cell's own axes (repeats are dropped)
        targets = [{axis: target[axis] for axis in own} for target in experiment.targets]
        sequential, grid = {"targets": targets, "procedure": options["procedure"]}, {}
    result = certify_checkpoint(
        folder / "model",
        folder / "certify",
        n0=options["n0"],
        n=options["n"],
        alpha=options["alpha"],
        batch_size=options["batch_size"],
        seed=cell.seed,
        device=cell.run.training.device,
        progress=progress,
        **grid,
        **sequential,
    )
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "certify.log", "a") as handle:
        print(result.format() if sequential else result.grid(**grid).format(), file=handle)


def _summary(folder: Path) -> dict:
    path = folder / "certify" / SIDECAR
    try:
        summary = json.loads(path.read_text())["summary"]
        if not isinstance(summary, dict):
            raise TypeError("summary is not a mapping")
        return summary
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"results folder: {path} is damaged ({type(error).__name__}: {error}); "
            f"delete {folder / 'certify'} to recertify the cell"
        ) from None


def aggregate(experiment: Experiment, results) -> tuple[Path, Path]:
    """Write ``cells.csv`` and ``results.csv`` from the finished cells' certificate files."""
    results = Path(results)
    parameters = experiment.parameters
    axes = [a for a in experiment.threats if a != "rows"]
    cells, rows = [], []
    for cell in experiment.cells:
        done = cell_done(results, cell)
        identity = {
            "cell": cell.name,
            "method": cell.method,
            "seed": cell.seed,
            **{p: cell.params.get(p, "") for p in parameters},
        }
        cells.append({**identity, "status": "done" if done else "pending"})
        if not done:
            continue
        summary = _summary(cell_folder(results, cell))
        table_path = cell_folder(results, cell) / "certify" / "certified_accuracy.csv"
        try:
            with open(table_path, newline="") as handle:
                table = list(csv.DictReader(handle))
            for certificate in CERTIFICATES:
                clean = summary[certificate]["clean_certified_accuracy"]
                own = [a for a in axes if a in cell.run.smoothing.noise.axes]  # the axes the cell's table has
                certified = {}
                for row in table:
                    if row["certificate"] == certificate:
                        key = (int(row["r"]),) + tuple(float(row[column_name(a)]) for a in own)
                        certified[key] = float(row["certified_accuracy"])
                for target in experiment.result_threats:
                    r, at = target["rows"], {a: target[a] for a in axes}
                    if len(own) < len(axes) and (r == 0 or (at and not any(at.values()))):
                        value = clean  # the empty threat: nothing changes (a table without that axis lacks it)
                    else:  # a table without some axis (ablation: rows only) holds for any value of it
                        value = certified[(r, *(float(at[a]) for a in own))]
                    rows.append(
                        {
                            **identity,
                            "certificate": certificate,
                            "r": r,
                            **{column_name(a): v for a, v in at.items()},
                            "certified_accuracy": value,
                            "clean_accuracy": clean,
                        }
                    )
        except (OSError, ValueError, KeyError, TypeError, csv.Error) as error:  # a damaged cell: name the file
            what = f"missing column or threat {error}" if isinstance(error, KeyError) else str(error)
            raise ValueError(
                f"results folder: {table_path} is damaged ({what}); delete {table_path.parent} to recertify the cell"
            ) from None
    write_csv(results / "cells.csv", cells)
    write_csv(results / "results.csv", rows)
    return results / "cells.csv", results / "results.csv"
