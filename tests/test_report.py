"""``make_report`` on fixed result folders: the files written, seed means and standard deviations against
independent computations from results.csv, non-dominated flags against brute-force dominance, readable PNGs,
and clear errors for missing files, malformed content and threats not in the results."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from hiersmooth import Threat
from hiersmooth.cli import main
from hiersmooth.experiments.grid import load_experiment
from hiersmooth.experiments.report import load_results, make_report, parse_threat
from hiersmooth.experiments.runner import aggregate, cell_folder

FIXTURE = Path(__file__).parent / "data" / "report_fixture"
REPOSITORY = Path(__file__).parent.parent
GAUSSIAN_FILES = {
    "pareto_r1_eps0.5.png",
    "pareto_r1_eps0.5.md",
    "pareto_r1_eps0.5.csv",
    "pareto_r2_eps0.25.png",
    "pareto_r2_eps0.25.md",
    "pareto_r2_eps0.25.csv",
    "curves_eps.png",
    "summary.md",
}


def _rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _key(row):
    """(method, parameter values) of a row of results.csv or of a report table."""
    return (
        row["method"],
        tuple(
            float(row[name]) if row.get(name) else None
            for name in ("selection.p", "noise.sigma", "noise.p_minus", "noise.lam")
        ),
    )


def _independent_table(results_csv, certificate, match):
    """(method, params) → (clean per seed, certified per seed) at the threat rows for which ``match`` holds."""
    table = {}
    for row in _rows(results_csv):
        if row["certificate"] == certificate and match(row):
            clean, certified = table.setdefault(_key(row), ([], []))
            clean.append(float(row["clean_accuracy"]))
            certified.append(float(row["certified_accuracy"]))
    return table


def _brute_force_front(points):
    """Index → non-dominated, by checking every other point."""
    flags = []
    for i, (x, y) in enumerate(points):
        dominated = any(u >= x and v >= y and (u > x or v > y) for j, (u, v) in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def _check_table(out, stem, results_csv, certificate, match):
    expected = _independent_table(results_csv, certificate, match)
    table = _rows(out / f"{stem}.csv")
    assert {_key(row) for row in table} == set(expected) and len(table) == len(expected)
    for row in table:
        clean, certified = map(np.array, expected[_key(row)])
        assert int(row["seeds"]) == len(clean)
        assert float(row["clean_accuracy_mean"]) == pytest.approx(clean.mean(), abs=1e-12)
        assert float(row["certified_accuracy_mean"]) == pytest.approx(certified.mean(), abs=1e-12)
        if len(clean) >= 2:
            assert float(row["clean_accuracy_std"]) == pytest.approx(clean.std(ddof=1), abs=1e-12)
            assert float(row["certified_accuracy_std"]) == pytest.approx(certified.std(ddof=1), abs=1e-12)
        else:
            assert row["clean_accuracy_std"] == row["certified_accuracy_std"] == ""
    means = [(float(np.mean(expected[_key(row)][0])), float(np.mean(expected[_key(row)][1]))) for row in table]
    overall = _brute_force_front(means)
    assert [row["overall_front"] == "True" for row in table] == overall
    for method in {row["method"] for row in table}:
        mine = [i for i, row in enumerate(table) if row["method"] == method]
        assert [table[i]["method_front"] == "True" for i in mine] == _brute_force_front([means[i] for i in mine])
    # The markdown table shows the same settings with the same rounded means (± std) and flags.
    lines = [
        line
        for line in (out / f"{stem}.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| method")
    ]
    assert len(lines) == len(table)
    for line, row in zip(lines, table):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        clean, certified = map(np.array, expected[_key(row)])
        spread = (lambda values: f" ± {values.std(ddof=1):.3f}") if len(clean) >= 2 else (lambda values: "")
        assert cells[0] == row["method"] and cells[2] == row["seeds"]
        assert cells[3] == f"{clean.mean():.3f}{spread(clean)}"
        assert cells[4] == f"{certified.mean():.3f}{spread(certified)}"
        assert cells[5:] == [
            "yes" if row["method_front"] == "True" else "no",
            "yes" if row["overall_front"] == "True" else "no",
        ]
    return table


def _check_png(path):
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] >= 400 and image.shape[1] >= 600
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_gaussian_report_files_means_and_fronts(tmp_path):
    written = make_report(FIXTURE, out=tmp_path)
    # plus the folder's lock file (hiersmooth.results.output_lock), which marks the files as hiersmooth's own
    assert (
        {path.name for path in written}
        == GAUSSIAN_FILES
        == {path.name for path in tmp_path.iterdir()} - {".hiersmooth.lock"}
    )
    assert all(path.parent == tmp_path for path in written)
    results_csv = FIXTURE / "results.csv"
    # experiment.yaml asks for the binary certificate; the multiclass rows of the fixture differ.
    flags = []
    for stem, (r, eps) in (("pareto_r1_eps0.5", ("1", 0.5)), ("pareto_r2_eps0.25", ("2", 0.25))):
        table = _check_table(
            tmp_path, stem, results_csv, "binary", lambda row: row["r"] == r and float(row["eps"]) == eps
        )
        flags += [(row["method_front"], row["overall_front"]) for row in table]
    assert {flag for pair in flags for flag in pair} == {"True", "False"}  # the fixture has dominated and front points
    summary = (tmp_path / "summary.md").read_text()
    for name in GAUSSIAN_FILES - {"summary.md"}:
        if name.endswith(".png"):
            assert f"]({name})" in summary
            _check_png(tmp_path / name)


def test_default_output_folder_and_explicit_threat(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURE, folder)
    written = make_report(folder, threats=[parse_threat("r=1,eps=1")])
    assert {path.name for path in written} == {
        "pareto_r1_eps1.png",
        "pareto_r1_eps1.md",
        "pareto_r1_eps1.csv",
        "curves_eps.png",
        "summary.md",
    }
    assert all(path.parent == folder / "report" and path.is_file() for path in written)
    _check_table(
        folder / "report",
        "pareto_r1_eps1",
        folder / "results.csv",
        "binary",
        lambda row: row["r"] == "1" and float(row["eps"]) == 1.0,
    )


def _graph_folder(folder, pareto=True):
    """A sparse/graph results folder: two methods, one seed, r ∈ {1, 2}, ra ∈ {0, 1}, rd ∈ {0, …, 3}; no
    certificate in the config (multiclass by default)."""
    rng = np.random.default_rng(3)
    folder.mkdir()
    config = {
        "name": "tiny_graph",
        "data": {"name": "cora_ml"},
        "model": {"name": "gat"},
        "certify": {"n0": 10, "n": 100},
        "methods": {
            "hierarchical_sparse": {"grid": {"selection.p": [0.81, 0.9]}},
            "sparse": {"grid": {"noise.p_minus": [0.6, 0.8]}},
        },
    }
    if pareto:
        config["pareto"] = [{"rows": 1, "added": 0, "deleted": 2}]
    (folder / "experiment.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = [
        [
            "cell",
            "method",
            "seed",
            "selection.p",
            "noise.p_minus",
            "certificate",
            "r",
            "ra",
            "rd",
            "certified_accuracy",
            "clean_accuracy",
        ]
    ]
    settings = [
        ("hierarchical_sparse", "0.81", ""),
        ("hierarchical_sparse", "0.9", ""),
        ("sparse", "", "0.6"),
        ("sparse", "", "0.8"),
    ]
    for number, (method, p, p_minus) in enumerate(settings):
        for certificate in ("binary", "multiclass"):
            clean = round(rng.uniform(0.7, 0.9), 3)
            for r in (1, 2):
                for ra in (0, 1):
                    for rd in range(4):
                        certified = clean if ra + rd == 0 else round(clean * rng.uniform(0.2, 0.9) / (ra + rd), 3)
                        rows.append([f"g{number}", method, 0, p, p_minus, certificate, r, ra, rd, certified, clean])
    with open(folder / "results.csv", "w", newline="") as file:
        csv.writer(file).writerows(rows)
    return folder


def test_graph_report(tmp_path):
    folder = _graph_folder(tmp_path / "graph")
    written = make_report(folder, out=tmp_path / "out")
    assert {path.name for path in written} == {
        "pareto_r1_ra0_rd2.png",
        "pareto_r1_ra0_rd2.md",
        "pareto_r1_ra0_rd2.csv",
        "curves_rd.png",
        "curves_ra.png",
        "summary.md",
    }
    _check_table(
        tmp_path / "out",
        "pareto_r1_ra0_rd2",
        folder / "results.csv",
        "multiclass",
        lambda row: (row["r"], row["ra"], row["rd"]) == ("1", "0", "2"),
    )
    for name in ("pareto_r1_ra0_rd2.png", "curves_rd.png", "curves_ra.png"):
        _check_png(tmp_path / "out" / name)


def test_default_threat_without_pareto_in_config(tmp_path):
    folder = _graph_folder(tmp_path / "graph", pareto=False)
    # Smallest r > 0, smallest ra, the lower middle of the positive rd values {1, 2, 3}.
    assert {path.name for path in make_report(folder)} >= {"pareto_r1_ra0_rd2.png", "pareto_r1_ra0_rd2.csv"}


def test_rows_only_report(tmp_path):
    """Ablation-only experiments certify r changed rows with any values: results.csv has r and no budget."""
    folder = tmp_path / "ablation"
    folder.mkdir()
    (folder / "experiment.yaml").write_text(
        "name: ablation_only\npareto: [{rows: 2}]\nmethods: {ablation: {grid: {selection.p: [0.5, 0.7, 0.9]}}}\n"
    )
    rows = [["cell", "method", "seed", "selection.p", "certificate", "r", "certified_accuracy", "clean_accuracy"]]
    for number, p in enumerate((0.5, 0.7, 0.9)):
        for seed in (0, 1):
            clean = round(0.5 + 0.4 * p + 0.01 * seed, 3)
            rows += [
                [f"a{number}{seed}", "ablation", seed, p, "multiclass", r, round(clean * p ** (2 * r), 3), clean]
                for r in (0, 1, 2, 3)
            ]
    with open(folder / "results.csv", "w", newline="") as file:
        csv.writer(file).writerows(rows)
    written = make_report(folder, out=tmp_path / "out")
    assert {path.name for path in written} == {
        "pareto_r2.png",
        "pareto_r2.md",
        "pareto_r2.csv",
        "curves_r.png",
        "summary.md",
    }
    _check_table(tmp_path / "out", "pareto_r2", folder / "results.csv", "multiclass", lambda row: row["r"] == "2")
    _check_png(tmp_path / "out" / "curves_r.png")
    with pytest.raises(ValueError, match="threat columns r; give rows"):
        make_report(folder, threats=[{"rows": 1, "eps": 0.5}], out=tmp_path / "out")


def _l1_folder(folder):
    """The results folder of experiments/digits_l1.yaml (uniform noise, threat columns r, l1) on a smaller threat
    grid, each cell certified by the real ``hiersmooth certify-votes`` from synthetic votes with the cell's own
    smoothing config, and results.csv written by the runner's own ``aggregate``."""
    raw = yaml.safe_load((REPOSITORY / "experiments" / "digits_l1.yaml").read_text())
    raw["threats"] = {"rows": [0, 1, 2], "l1": [0.0, 0.1, 0.25, 0.5, 1.0]}
    raw["pareto"] = [{"rows": 1, "l1": 0.5}]
    experiment = load_experiment(raw)
    folder.mkdir()
    (folder / "experiment.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    rng = np.random.default_rng(5)
    for number, cell in enumerate(experiment.cells):
        certify = cell_folder(folder, cell) / "certify"
        certify.mkdir(parents=True)
        labels = rng.integers(0, 10, size=40)
        top = np.where(rng.random(40) < 0.6 + 0.05 * number, labels, (labels + 1) % 10)  # the class voted for
        share = rng.uniform(0.5, 1.0, size=40)  # of the votes the top class gets
        counts = {}
        for name, samples in (("pre_votes", 100), ("votes", 1000)):
            counts[name] = np.zeros((40, 10), dtype=int)
            counts[name][np.arange(40), top] = np.round(share * samples).astype(int)
            counts[name][np.arange(40), (top + 3) % 10] += samples - counts[name][np.arange(40), top]
        np.savez(certify / "votes.npz", labels=labels, **counts)
        (certify / "smoothing.yaml").write_text(yaml.safe_dump(cell.run.smoothing.to_config()))
        command = ["certify-votes", str(certify / "votes.npz"), "--smoothing", str(certify / "smoothing.yaml")]
        command += ["--out", str(certify / "certified_accuracy.csv"), "--rows", "0-2", "--l1", "0,0.1,0.25,0.5,1"]
        assert main(command) == 0
    aggregate(experiment, folder)
    return folder


def test_l1_report(tmp_path, capsys):
    """A uniform-noise (ℓ1) experiment is reported like the others: threat columns r, l1 in results.csv, the
    Pareto tables at ℓ1 threats, the curves against l1, by make_report and by ``hiersmooth report --threat``."""
    folder = _l1_folder(tmp_path / "digits_l1")
    results_csv = folder / "results.csv"
    assert results_csv.read_text().splitlines()[0] == (
        "cell,method,seed,selection.p,noise.lam,certificate,r,l1,certified_accuracy,clean_accuracy"
    )
    results = load_results(folder)
    assert results.axes == ("rows", "l1") and results.columns == ("r", "l1")
    written = make_report(folder, out=tmp_path / "out")  # the config's pareto threat: r=1, l1=0.5
    assert {path.name for path in written} == {
        "pareto_r1_l1_0.5.png",
        "pareto_r1_l1_0.5.md",
        "pareto_r1_l1_0.5.csv",
        "curves_l1.png",
        "summary.md",
    }
    table = _check_table(
        tmp_path / "out",
        "pareto_r1_l1_0.5",
        results_csv,
        "multiclass",
        lambda row: row["r"] == "1" and float(row["l1"]) == 0.5,
    )
    assert {row["method"] for row in table} == {"hierarchical_uniform", "uniform"} and len(table) == 6
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## Pareto front at r=1, l1=0.5\n" in summary and "## Certified accuracy against l1\n" in summary
    assert (
        (tmp_path / "out" / "pareto_r1_l1_0.5.md")
        .read_text()
        .startswith("# digits_l1: Pareto table at r=1, l1=0.5, multiclass certificate")
    )
    for name in ("pareto_r1_l1_0.5.png", "curves_l1.png"):
        _check_png(tmp_path / "out" / name)
    # The command line, with threats as text and as Threat objects in the library call.
    assert main(["report", str(folder), "--threat", "r=2,l1=1", "--out", str(tmp_path / "cli")]) == 0
    assert "pareto_r2_l1_1.csv" in capsys.readouterr().out
    _check_table(
        tmp_path / "cli",
        "pareto_r2_l1_1",
        results_csv,
        "multiclass",
        lambda row: row["r"] == "2" and float(row["l1"]) == 1.0,
    )
    again = make_report(folder, threats=[Threat(r=2, l1=1.0)], out=tmp_path / "again", force=True)
    assert (tmp_path / "again" / "pareto_r2_l1_1.csv").read_bytes() == (
        tmp_path / "cli" / "pareto_r2_l1_1.csv"
    ).read_bytes()
    assert {path.name for path in again} >= {"pareto_r2_l1_1.csv", "curves_l1.png"}
    with pytest.raises(ValueError, match="these results have threat columns r, l1; give rows and l1"):
        make_report(folder, threats=["r=1,eps=0.5"], out=tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"threat r=1, l1=0\.3 is not in .*l1 in \{0, 0\.1, 0\.25, 0\.5, 1\}"):
        make_report(folder, threats=[{"r": 1, "l1": 0.3}], out=tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_parse_threat():
    assert parse_threat("r=2,eps=0.25") == {"rows": 2, "eps": 0.25}
    assert parse_threat("rows=1, ra=0, rd=5") == {"rows": 1, "added": 0, "deleted": 5}
    with pytest.raises(ValueError, match="sigma"):
        parse_threat("r=1,sigma=0.5")
    with pytest.raises(ValueError, match="rd='x'"):
        parse_threat("r=1,rd=x")


def _copy(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURE, folder)
    return folder


def test_missing_files(tmp_path):
    folder = _copy(tmp_path)
    (folder / "results.csv").unlink()
    with pytest.raises(ValueError, match=r"results\.csv: file not found"):
        make_report(folder)
    (folder / "experiment.yaml").unlink()
    with pytest.raises(ValueError, match=r"experiment\.yaml: file not found"):
        make_report(folder)
    with pytest.raises(ValueError, match="does not exist"):
        make_report(tmp_path / "nowhere")
    assert not (folder / "report").exists()


def test_threat_not_in_results(tmp_path):
    with pytest.raises(ValueError, match=r"threat r=1, ε=0\.3 is not in .*results\.csv.*eps in \{0, 0\.25, 0\.5, 1\}"):
        make_report(FIXTURE, threats=[{"rows": 1, "eps": 0.3}], out=tmp_path)
    with pytest.raises(ValueError, match="these results have threat columns r, eps; give rows and eps"):
        make_report(FIXTURE, threats=[{"rows": 1, "added": 0, "deleted": 1}], out=tmp_path)
    with pytest.raises(ValueError, match="give rows and eps"):
        make_report(FIXTURE, threats=[{"eps": 0.5}], out=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written before the threats are checked


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda text: text.replace("certified_accuracy,clean_accuracy", "certified,clean_accuracy", 1),
            "columns after certificate must be",
        ),
        (lambda text: text.replace(",binary,1,0.25,", ",binary,1,abc,", 1), r"line \d+: eps='abc' is not a number"),
        (
            lambda text: text.replace(",binary,1,0.25,", ",binary,1.5,0.25,", 1),
            r"r='1.5' must be a non-negative integer",
        ),
        (lambda text: text.replace(",binary,", ",ternary,", 1), "certificate='ternary'"),
        (lambda text: "\n".join(text.splitlines()[:1]) + "\n", "no rows"),
        (lambda text: text.replace(",0.0,", ",0.0,0.5,", 1), "11 values for 10 columns"),
        (lambda text: text.replace("\n", '\n"', 1) + "x" * 200_000, r"results.csv: not a readable CSV file \(field"),
        (lambda text: text + "\udcff", r"results.csv: not a readable CSV file \('utf-8' codec"),
    ],
)
def test_malformed_results(tmp_path, edit, message):
    folder = _copy(tmp_path)
    path = folder / "results.csv"
    path.write_bytes(edit(path.read_text()).encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match=message):
        make_report(folder)


def test_a_cells_file_that_is_not_text_is_refused_in_one_line(tmp_path):
    folder = _copy(tmp_path)
    (folder / "cells.csv").write_bytes(b"\xff\xfe status")
    with pytest.raises(ValueError, match=r"cells.csv: not a readable CSV file \('utf-8' codec"):
        make_report(folder)


def test_malformed_config(tmp_path):
    folder = _copy(tmp_path)
    (folder / "experiment.yaml").write_text("certify: {certificate: triple}\n")
    with pytest.raises(ValueError, match="certify.certificate='triple'"):
        load_results(folder)
    (folder / "experiment.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_results(folder)
