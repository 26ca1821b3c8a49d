"""``hiersmooth run``: a tiny two-cell experiment end to end, resuming and reuse, and bad experiment configs."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import yaml

from hiersmooth.cli import main
from hiersmooth.experiments.grid import load_experiment

TINY = {
    "name": "tiny",
    "data": {"name": "digits"},
    "model": {"name": "small_cnn", "width": 8},
    "training": {"epochs": 1, "batch_size": 128},
    "certify": {"n0": 4, "n": 12, "alpha": 0.05, "batch_size": 500},
    "seeds": [0],
    "threats": {"rows": [1, 2], "eps": [0.0, 0.25]},
    "pareto": [{"rows": 1, "eps": 0.25}],
    "methods": {
        "hierarchical": {
            "smoothing": {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "gaussian", "sigma": 0.25}},
            "grid": {"noise.sigma": [0.25]},
        },
        "ablation": {
            "smoothing": {
                "selection": {"kind": "bernoulli", "p": 0.5},
                "noise": {"kind": "ablation", "encoding": "levine_feizi"},
                "indicator": False,
            }
        },
    },
}


def _write(tmp_path, experiment) -> str:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return str(path)


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    assert main(["run", _write(folder, TINY), "--out", str(folder / "results"), "--no-progress"]) == 0
    return folder / "results"


def test_tiny_experiment_writes_every_cell_and_threat(tiny_results):
    cells = _rows(tiny_results / "cells.csv")
    assert [c["method"] for c in cells] == ["hierarchical", "ablation"] and all(c["status"] == "done" for c in cells)
    rows = _rows(tiny_results / "results.csv")
    assert len(rows) == 2 * 2 * 2 * 2  # cells × certificates × r × eps
    assert list(rows[0])[:4] == ["cell", "method", "seed", "noise.sigma"]
    for cell in cells:
        folder = tiny_results / "cells" / cell["cell"]
        sidecar = json.loads((folder / "certify" / "certified_accuracy.json").read_text())
        with np.load(folder / "certify" / "votes.npz", allow_pickle=False) as votes:
            assert votes["votes"].sum(1).tolist() == [12] * 450 and votes["pre_votes"].sum(1).tolist() == [4] * 450
        mine = [r for r in rows if r["cell"] == cell["cell"]]
        for row in mine:
            assert float(row["clean_accuracy"]) == pytest.approx(
                sidecar["summary"][row["certificate"]]["clean_certified_accuracy"]
            )
            assert 0 <= float(row["certified_accuracy"]) <= float(row["clean_accuracy"]) + 1e-12
            if float(row["eps"]) == 0:  # no change at all: the certified accuracy is the clean accuracy
                assert float(row["certified_accuracy"]) == pytest.approx(float(row["clean_accuracy"]))
    ablation = [r for r in rows if r["method"] == "ablation"]
    for r in (1, 2):  # ablation certifies any change to r rows: the same value at every eps > 0
        assert (
            len(
                {
                    row["certified_accuracy"]
                    for row in ablation
                    if row["r"] == str(r) and float(row["eps"]) > 0 and row["certificate"] == "multiclass"
                }
            )
            == 1
        )


def test_a_sequential_experiment_certifies_at_its_pareto_threats(tmp_path):
    """``certify: {targets: pareto}``: each cell is certified sequentially at the Pareto threats (and the empty
    threat, for the clean accuracy); results.csv holds exactly those threats, and the report reads them."""
    experiment = {**TINY, "certify": {**TINY["certify"], "n": 400, "targets": "pareto"}}
    results = tmp_path / "results"
    assert main(["run", _write(tmp_path, experiment), "--out", str(results), "--no-progress"]) == 0
    rows = _rows(results / "results.csv")
    assert {(row["r"], row["eps"]) for row in rows} == {("0", "0"), ("1", "0.25")}
    for cell in _rows(results / "cells.csv"):
        sidecar = json.loads((results / "cells" / cell["cell"] / "certify" / "certified_accuracy.json").read_text())
        assert sidecar["sequential"] is True and sidecar["samples"]["max"] <= 400
        targets = sidecar["procedure"]["targets"]
        assert targets == (["r=0,eps=0", "r=1,eps=0.25"] if cell["method"] == "hierarchical" else ["r=0", "r=1"])
        mine = [row for row in rows if row["cell"] == cell["cell"]]
        clean = [row for row in mine if row["r"] == "0"]
        assert all(row["certified_accuracy"] == row["clean_accuracy"] for row in clean)
    assert main(["report", str(results), "--threat", "r=1,eps=0.25", "--out", str(tmp_path / "report")]) == 0


def test_rerun_skips_finished_cells_and_resumes_a_missing_one(tiny_results, capsys):
    before = (tiny_results / "results.csv").read_text()
    experiment = str(tiny_results / "experiment.yaml")
    assert main(["run", experiment, "--out", str(tiny_results), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("done before, skipped") == 2
    assert (tiny_results / "results.csv").read_text() == before
    # a cell whose certification was lost is certified again with its trained model reused, to the same votes
    cell = _rows(tiny_results / "cells.csv")[0]["cell"]
    shutil.rmtree(tiny_results / "cells" / cell / "certify")
    assert main(["run", experiment, "--out", str(tiny_results), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"{re.escape(cell)}: reused model, certified", out) and out.count("done before, skipped") == 1
    assert (tiny_results / "results.csv").read_text() == before


def test_dry_run_lists_cells_without_running(tmp_path, capsys):
    experiment = dict(TINY, seeds=[0, 1])
    assert main(["run", _write(tmp_path, experiment), "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "[1/4] hierarchical__noise.sigma=0.25__seed0",
        "[2/4] hierarchical__noise.sigma=0.25__seed1",
        "[3/4] ablation__default__seed0",
        "[4/4] ablation__default__seed1",
    ]
    assert not (tmp_path / "r").exists()


def test_grid_is_the_cartesian_product_of_its_values():
    experiment = dict(
        TINY,
        methods={
            "h": {
                "smoothing": TINY["methods"]["hierarchical"]["smoothing"],
                "grid": {"selection.p": [0.5, 0.7, 0.9], "noise.sigma": [0.1, 0.2]},
            }
        },
        seeds=[3],
    )
    cells = load_experiment(experiment).cells
    assert [(c.run.smoothing.selection.p, c.run.smoothing.noise.sigma) for c in cells] == [
        (p, s) for p in (0.5, 0.7, 0.9) for s in (0.1, 0.2)
    ]
    assert all(c.run.training.seed == 3 and c.seed == 3 for c in cells)


def test_a_folder_of_another_experiment_is_refused(tiny_results, tmp_path, capsys):
    other = dict(TINY, seeds=[5])
    assert main(["run", _write(tmp_path, other), "--out", str(tiny_results)]) == 2
    assert "holds another experiment" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"methods": {"h": {"smoothing": {"noise": {"kind": "laplace"}}}}},
            r"noise.kind='laplace': must be one of gaussian, sparse, ablation",
        ),
        (
            {
                "methods": {
                    "h": {"smoothing": {"noise": {"kind": "gaussian", "sigma": 0.5}}, "grid": {"noise.sigma": []}}
                }
            },
            r"methods.h.grid.noise.sigma: must be a non-empty list",
        ),
        ({"methods": {}}, r"experiment.methods: must name at least one method"),
        (
            {"threats": {"rows": [1], "added": [0], "deleted": [1]}},
            r"threats: has added, deleted, rows; the methods' noise needs exactly eps, rows",
        ),
        ({"threats": {"rows": [1], "eps": [-1.0]}}, r"threats.eps=\[-1.0\]: must be a non-empty list of numbers >= 0"),
        (
            {
                "methods": {
                    "h": {"smoothing": {"noise": {"kind": "gaussian", "sigma": 0.5}}, "grid": {"noise.scale": [1]}}
                }
            },
            r"noise: unknown option scale for kind 'gaussian'",
        ),
        (
            {
                "methods": {
                    "h": {"smoothing": {"noise": {"kind": "gaussian", "sigma": 0.5}}, "grid": {"noises.sigma": [1]}}
                }
            },
            r"'noises' is not a section",
        ),
        ({"colour": "red"}, r"experiment: unknown key colour"),
        (
            {"pareto": [{"rows": 1, "added": 3}]},
            r"experiment.pareto: .* must give one value for each threat axis \(rows, eps\)",
        ),
        ({"pareto": [{"rows": 1, "eps": 0.3}]}, r"experiment.pareto: .* has eps=0.3, not in experiment.threats"),
        ({"certify": {"n0": 0, "n": 12}}, r"experiment.certify.n0=0: must be an integer >= 1"),
        ({"certify": {"n0": 4, "n": 12.5}}, r"experiment.certify.n=12.5: must be an integer >= 1"),
        ({"certify": {"n0": 4, "n": 12, "alpha": 1}}, r"experiment.certify.alpha=1: must be a number in \(0, 1\)"),
        ({"seeds": [0, 0]}, r"two cells would share the folder hierarchical__noise.sigma=0.25__seed0"),
        (
            {"methods": {"h": {**TINY["methods"]["hierarchical"], "grid": {"noise.sigma": [0.5, 0.5]}}}},
            r"two cells would share the folder h__noise.sigma=0.5__seed0",
        ),
        (
            {"methods": {"a/b": TINY["methods"]["ablation"], "a-b": TINY["methods"]["ablation"]}},
            r"two cells would share the folder a-b__default__seed0 \(a/b",
        ),
    ],
)
def test_bad_experiments_fail_with_one_line(tmp_path, capsys, change, message):
    experiment = {**TINY, **change}
    assert main(["run", _write(tmp_path, experiment), "--out", str(tmp_path / "r"), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and re.search(message, error), error
