"""``hiersmooth certify-votes`` end to end on the paper's published votes: files, columns, grid coverage."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hiersmooth
from hiersmooth.certify.certification import certify_votes
from hiersmooth.certify.votes import load_votes
from hiersmooth.cli import main
from hiersmooth.shared_data import shared_dir

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "smoothing"


@pytest.fixture(scope="module")
def reference():
    return shared_dir() / "reference"


def _read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _run(reference, votes, config, out, *options):
    assert (
        main(
            ["certify-votes", str(reference / votes), "--smoothing", str(CONFIGS / config), "--out", str(out), *options]
        )
        == 0
    )
    return _read_csv(out)


def test_sparse_outputs_and_reference_figures(reference, tmp_path, capsys):
    table = _run(
        reference,
        "cora_ml_gat_hierarchical_sparse_votes.npz",
        "cora_ml_hierarchical_sparse.yaml",
        tmp_path / "cora.csv",
        "--runner-up",
        "selection",
    )
    assert list(table[0]) == ["certificate", "r", "ra", "rd", "certified_accuracy", "certified_ratio"]
    cell = {
        (row["certificate"], int(row["r"]), int(row["ra"]), int(row["rd"])): float(row["certified_accuracy"])
        for row in table
    }
    assert round(cell[("multiclass", 1, 0, 1)], 3) == 0.664 and round(cell[("multiclass", 1, 0, 4)], 3) == 0.549
    # The default grid reaches one step past the last threat at which either certificate certifies a point.
    for axis in ("ra", "rd"):
        last = max(int(row[axis]) for row in table)
        assert max(float(row["certified_ratio"]) for row in table if int(row[axis]) == last) == 0
        assert max(float(row["certified_ratio"]) for row in table if int(row[axis]) == last - 1) > 0
    result = certify_votes(
        load_votes(reference / "cora_ml_gat_hierarchical_sparse_votes.npz"),
        hiersmooth.from_config(CONFIGS / "cora_ml_hierarchical_sparse.yaml"),
    )
    last_r = max(int(row["r"]) for row in table)
    beyond = [hiersmooth.Threat(last_r + 1, added=a, deleted=last_r + 1 - a) for a in range(last_r + 2)]
    assert not any(cert.certified(t).any() for cert in result.certificates for t in beyond)

    sidecar = json.loads((tmp_path / "cora.json").read_text())
    assert sidecar["smoothing"] == {
        "selection": {"kind": "bernoulli", "p": 0.81},
        "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8},
        "indicator": True,
    }
    assert (
        sidecar["alpha"],
        sidecar["runner_up"],
        sidecar["n0"],
        sidecar["n"],
        sidecar["points"],
        sidecar["classes"],
    ) == (0.01, "selection", 1000, 10000, 253, 7)
    assert round(sidecar["summary"]["accuracy_of_selected_class"], 4) == 0.8617
    assert sidecar["seconds"] > 0 and "numpy" in sidecar["versions"] and len(sidecar["inputs"]["votes_sha256"]) == 64
    points = _read_csv(tmp_path / "cora.points.csv")
    assert len(points) == 253 and {"p_lower_binary", "p_upper_multiclass", "abstain_multiclass"} <= set(points[0])
    with np.load(tmp_path / "cora.points.npz", allow_pickle=False) as arrays:
        grid = arrays["certified_multiclass"]
        assert grid.shape == (253, len(arrays["rows"]), len(arrays["added"]), len(arrays["deleted"]))
        row, added, deleted = (list(arrays[axis]).index(v) for axis, v in (("rows", 1), ("added", 0), ("deleted", 1)))
        assert np.mean(grid[:, row, added, deleted] & arrays["correct"]) == cell[("multiclass", 1, 0, 1)]
    assert "wrote" in capsys.readouterr().out


def test_gaussian_radii_file_and_explicit_grid(reference, tmp_path):
    table = _run(
        reference,
        "cifar10_resnet50_hierarchical_gaussian_votes.npz",
        "cifar10_hierarchical_gaussian.yaml",
        tmp_path / "c.csv",
        "--rows",
        "1-2",
        "--eps",
        "0.25,0.5,0:0.1:0.05",
    )
    assert list(table[0]) == ["certificate", "r", "eps", "certified_accuracy", "certified_ratio"]
    assert {(int(row["r"]), float(row["eps"])) for row in table} == {
        (r, e) for r in (1, 2) for e in (0.0, 0.05, 0.1, 0.25, 0.5)
    }
    cell = {(row["certificate"], int(row["r"]), float(row["eps"])): float(row["certified_accuracy"]) for row in table}
    assert cell[("binary", 1, 0.25)] == 0.779 and cell[("binary", 1, 0.5)] == 0.686
    points = _read_csv(tmp_path / "c.points.csv")
    radius = np.array([float(p["radius_binary_r1"]) for p in points])
    correct = np.array([p["correct"] == "True" for p in points])
    assert np.mean((radius > 0.25) & correct) == 0.779


def test_ablation_rows_table(reference, tmp_path):
    table = _run(
        reference,
        "cifar10_resnet50_hierarchical_gaussian_votes.npz",
        "cifar10_ablation_levine_feizi.yaml",
        tmp_path / "lf.csv",
    )
    assert list(table[0]) == ["certificate", "r", "certified_accuracy", "certified_ratio"]
    accuracy = [float(row["certified_accuracy"]) for row in table if row["certificate"] == "binary"]
    assert accuracy[-1] == 0 and accuracy[-2] > 0 and all(np.diff(accuracy) <= 0)


def test_certify_votes_path_does_not_import_torch_or_matplotlib(reference, tmp_path):
    code = (
        "import sys; from hiersmooth.cli import main; "
        f"main(['certify-votes', {str(reference / 'cora_ml_gat_hierarchical_sparse_votes.npz')!r}, '--smoothing', "
        f"{str(CONFIGS / 'cora_ml_hierarchical_sparse.yaml')!r}, '--out', {str(tmp_path / 'o.csv')!r}]); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'tqdm') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_one_threat_text_for_the_cli_the_report_and_the_csv(tmp_path, reference):
    from hiersmooth.threat import TEXT_NAMES, parse_threat_text

    assert parse_threat_text("r=2,eps=0.25") == parse_threat_text("rows=2,l2=0.25") == {"rows": 2, "eps": 0.25}
    assert parse_threat_text("r=1,ra=0,rd=8") == {"rows": 1, "added": 0, "deleted": 8}
    assert parse_threat_text("r=1,l1=0.5") == {"rows": 1, "l1": 0.5}
    votes = reference / "cora_ml_gat_hierarchical_sparse_votes.npz"
    smoothing = CONFIGS / "cora_ml_hierarchical_sparse.yaml"
    short, long = tmp_path / "short" / "c.csv", tmp_path / "long" / "c.csv"
    common = ["certify-votes", str(votes), "--smoothing", str(smoothing)]
    assert main([*common, "--out", str(short), "--r", "1-2", "--ra", "0,1", "--rd", "0-3"]) == 0
    assert main([*common, "--out", str(long), "--rows", "1-2", "--added", "0,1", "--deleted", "0-3"]) == 0
    assert short.read_text() == long.read_text()
    header = short.read_text().splitlines()[0].split(",")
    assert header[1:4] == [TEXT_NAMES[axis] for axis in ("rows", "added", "deleted")]  # the CSV says r, ra, rd
