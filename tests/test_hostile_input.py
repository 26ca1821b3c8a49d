"""Hostile input (red-team findings): integers exact or refused, garbage refused, resources bounded, and every CLI
error one line with status 2. Each test reproduces a finding that used to be accepted, hang or print a traceback."""

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hiersmooth import cli
from hiersmooth.certify.certification import certify_votes
from hiersmooth.certify.outputs import format_table
from hiersmooth.certify.tables import certified_accuracy_table
from hiersmooth.certify.votes import Votes, load_votes
from hiersmooth.cli import main
from hiersmooth.config_files import MAX_YAML_BYTES, read_yaml
from hiersmooth.devices import check_device
from hiersmooth.inputs import load_arrays
from hiersmooth.smoothing import from_config
from hiersmooth.threat import MAX_THREATS, parse_list

REPOSITORY = Path(__file__).resolve().parents[1]
GAUSSIAN = "selection: {kind: bernoulli, p: 0.8}\nnoise: {kind: gaussian, sigma: 0.25}\n"


def _one_line_error(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("hiersmooth: error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err


@pytest.fixture
def files(tmp_path):
    smoothing = tmp_path / "smoothing.yaml"
    smoothing.write_text(GAUSSIAN)
    votes = tmp_path / "votes.npz"
    pre = np.array([[90, 5, 5], [10, 80, 10], [30, 30, 40]])
    np.savez(votes, pre_votes=pre, votes=pre * 10, labels=np.array([0, 1, 2]))
    return smoothing, votes, tmp_path / "out" / "cert.csv"


# integers: exact or refused -----------------------------------------------------------------------------------------
def test_unsigned_votes_above_int64_are_refused_not_wrapped(files, capsys):
    smoothing, _, out = files
    huge = np.array([[2**63 + 5, 0], [2**63 + 5, 0]], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"pre_votes: values must fit in int64 .*9223372036854775813"):
        Votes(huge, huge, np.array([0, 0]))
    path = out.parent.parent / "u64.npz"
    np.savez(path, pre_votes=huge, votes=huge, labels=np.array([0, 0]))
    assert "fit in int64" in _one_line_error(capsys, ["certify-votes", path, "--smoothing", smoothing, "--out", out])
    small = np.array([[7, 3], [2, 8]], dtype=np.uint64)  # unsigned counts that fit stay accepted, exactly
    assert Votes(small, small, np.array([0, 1])).n == 10


def test_row_totals_that_overflow_int64_are_refused():
    counts = np.full((2, 3), 2**62, dtype=np.int64)  # each row sums to 3 * 2^62 > 2^63 - 1: int64 would wrap it
    with pytest.raises(ValueError, match=r"pre_votes: row 0 sums to 13835058055282163712 samples, beyond int64"):
        Votes(counts, counts, np.array([0, 0]))
    fits = np.array([[2**62, 2**62 - 1], [2**62 - 1, 2**62]], dtype=np.int64)  # 2^63 - 1 exactly: still exact
    assert Votes(fits, fits, np.array([0, 1])).n == 2**63 - 1


def test_float_votes_beyond_int64_are_refused():
    counts = np.array([[1e30, 0.0], [1e30, 0.0]])
    with pytest.raises(ValueError, match="pre_votes: values must fit in int64"):
        Votes(counts, counts, np.array([0, 0]))


def test_a_lying_npz_header_is_refused_before_allocation(files):
    _, votes, _ = files
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (9999999999, 3)})
    hostile = votes.with_name("lying.npz")  # 9999999999 x 3 int64 claimed (240 GB), 72 bytes held
    with zipfile.ZipFile(votes) as source, zipfile.ZipFile(hostile, "w") as archive:
        for name in source.namelist():
            data = source.read(name)
            archive.writestr(name, header.getvalue() + np.arange(9).tobytes() if name == "votes.npy" else data)
    with pytest.raises(
        ValueError, match=r"array 'votes' claims shape \(9999999999, 3\) of int64 \(239999999976 bytes\) but holds 72"
    ):
        load_votes(hostile)


# garbage refused -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(tmp_path, bad):
    images = np.full((2, 1, 4, 4), 0.5)
    images[1, 0, 2, 3] = bad
    np.savez(tmp_path / "images.npz", images=images, labels=np.array([0, 1]))
    with pytest.raises(ValueError, match="images hold NaN or infinite values"):
        load_arrays(tmp_path / "images.npz")


@pytest.mark.parametrize("sparse", [False, True])
def test_non_finite_graph_features_are_refused(tmp_path, sparse):
    features = np.ones((3, 2))
    features[1, 1] = np.nan
    graph = {"edge_index": np.array([[0, 1], [1, 2]]), "labels": np.array([0, 1, 0])}
    if sparse:
        graph.update(
            features_data=features.ravel(),
            features_indices=np.tile([0, 1], 3),
            features_indptr=np.array([0, 2, 4, 6]),
            features_shape=np.array([3, 2]),
        )
    else:
        graph["features"] = features
    np.savez(tmp_path / "graph.npz", **graph)
    with pytest.raises(ValueError, match="features hold NaN or infinite values"):
        load_arrays(tmp_path / "graph.npz")


def test_edges_naming_missing_nodes_are_refused(tmp_path):
    np.savez(
        tmp_path / "graph.npz",
        features=np.ones((3, 2)),
        edge_index=np.array([[0, 1], [1, 7]]),
        labels=np.array([0, 1, 0]),
    )
    with pytest.raises(ValueError, match="edge_index names node 7; the graph has nodes 0..2"):
        load_arrays(tmp_path / "graph.npz")


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0.5, 1.7]), "labels must be integer class indices, got float64 values that are not whole numbers"),
        (np.array([0.0, np.nan]), "labels must be integer class indices"),
        (np.array([0, 10**7]), r"labels must be class indices in \[0, 99999\] \(or -1: unknown\), found 1e\+07"),
        (np.array([0, -5]), "found -5"),
    ],
)
def test_bad_labels_are_refused_not_truncated(tmp_path, labels, message):
    np.savez(tmp_path / "images.npz", images=np.full((2, 1, 4, 4), 0.5), labels=labels)
    with pytest.raises(ValueError, match=message):
        load_arrays(tmp_path / "images.npz")
    np.savez(tmp_path / "whole.npz", images=np.full((2, 1, 4, 4), 0.5), labels=np.array([0.0, 2.0]))
    assert load_arrays(tmp_path / "whole.npz").labels.tolist() == [0, 2]  # whole floats are still read exactly


def test_huge_sparse_feature_width_is_refused(tmp_path):
    np.savez(
        tmp_path / "graph.npz",
        edge_index=np.array([[0], [1]]),
        labels=np.array([0, 1]),
        features_data=np.ones(1),
        features_indices=np.array([0]),
        features_indptr=np.array([0, 1, 1]),
        features_shape=np.array([2, 10**12]),
    )
    with pytest.raises(ValueError, match="features_shape must be two integers"):
        load_arrays(tmp_path / "graph.npz")


# YAML: bounded before expansion ---------------------------------------------------------------------------------------
def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]" for k in range(1, levels)]
    return "\n".join(lines) + f"\nname: *a{levels - 1}\n"


def test_alias_bomb_is_refused_before_it_is_expanded(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    experiment = (REPOSITORY / "experiments" / "digits.yaml").read_text().replace("name: digits", "name: *a8")
    path.write_text(_alias_bomb().replace("name: *a8\n", "") + experiment)
    with pytest.raises(ValueError, match=r"bomb.yaml: expands to more than 1000000 nodes"):
        read_yaml(path, "experiment")
    assert "expands to more than" in _one_line_error(capsys, ["run", path, "--dry-run"])


def test_deep_nesting_and_huge_files_and_huge_integers_are_refused(tmp_path, capsys):
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ValueError, match="deep.yaml: nests deeper than 50 levels"):
        read_yaml(deep, "smoothing config")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_YAML_BYTES + "\n")
    with pytest.raises(ValueError, match=f"big.yaml: larger than {MAX_YAML_BYTES} bytes"):
        read_yaml(big, "config")
    sigma = tmp_path / "sigma.yaml"
    sigma.write_text("selection: {kind: all}\nnoise: {kind: gaussian, sigma: " + "9" * 400 + "}\n")
    with pytest.raises(ValueError, match=r"the integer at line 2 \(400 digits\) is outside the int64 range"):
        from_config(sigma)
    for path in (deep, big, sigma):
        _one_line_error(capsys, ["certify-votes", "v.npz", "--smoothing", path, "--out", tmp_path / "o.csv"])
        _one_line_error(capsys, ["train", path])
        _one_line_error(capsys, ["run", path, "--dry-run"])


def test_modest_aliases_and_every_shipped_config_still_load(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("base: &b {kind: gaussian, sigma: 0.25}\nnoise: *b\nselection: {kind: all}\n")
    assert read_yaml(path, "smoothing config")["noise"] == {"kind": "gaussian", "sigma": 0.25}
    shipped = sorted((REPOSITORY / "configs").rglob("*.yaml")) + sorted((REPOSITORY / "experiments").glob("*.yaml"))
    assert len(shipped) >= 10, f"expected the shipped configs under {REPOSITORY}/configs and experiments"
    for config in shipped:
        assert read_yaml(config, "config") == yaml.safe_load(config.read_text()), config


@pytest.mark.parametrize(
    "noise, message",
    [
        ("{kind: [gaussian], sigma: 0.25}", r"noise.kind=\['gaussian'\]: must be one of"),
        ("{kind: gaussian, 1: 2}", "option names must be text, found 1"),
    ],
)
def test_unhashable_kinds_and_odd_keys_are_one_line_errors(tmp_path, capsys, noise, message):
    path = tmp_path / "smoothing.yaml"
    path.write_text(f"selection: {{kind: all}}\nnoise: {noise}\n")
    with pytest.raises(ValueError, match=message):
        from_config(path)
    _one_line_error(capsys, ["certify-votes", "v.npz", "--smoothing", path, "--out", tmp_path / "o.csv"])


# threat grids: capped before they are materialised, formatted in linear time ------------------------------------------
@pytest.mark.parametrize(
    "name, text, message",
    [
        ("eps", "0:1e308:1e300", "more than 1000000 values"),
        ("eps", "0:1:1e-9", "more than 1000000 values"),
        ("eps", "0:inf:1", "needs finite numbers"),
        ("eps", "nan", "values must be finite"),
        ("eps", "1e400", "values must be finite"),
        ("rows", "0-1000000000000000000", "more than 1000000 values"),
        ("rows", "99999999999999999999", "at most 2^63 - 1"),
        ("rows", "1-99999999999999999999", "integers in"),
        ("rows", "1" * 5000, "comma-separated list of integers"),
    ],
)
def test_parse_list_refuses_huge_or_non_finite_grids(name, text, message):
    with pytest.raises(ValueError, match=message.replace("^", r"\^")) as error:
        parse_list(name, text, integer=name == "rows")
    assert str(error.value).startswith(f"--{name}")


def test_parse_list_keeps_ordinary_ranges():
    assert parse_list("rows", "1-4,7", True) == [1, 2, 3, 4, 7]
    assert parse_list("eps", "0:1:0.25", False) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match="more than 1000000 values"):
        parse_list("eps", "0:1:0.000001", False)  # 1000001 values: one too many
    assert len(parse_list("rows", "0-999999", True)) == MAX_THREATS


def test_the_product_of_the_threat_axes_is_capped(files, capsys):
    smoothing, votes, out = files
    error = _one_line_error(
        capsys,
        [
            "certify-votes",
            votes,
            "--smoothing",
            smoothing,
            "--out",
            out,
            "--rows",
            "0-100000",
            "--eps",
            "0,1,2,3,4,5,6,7,8,9,10",
        ],
    )
    assert "100001 rows x 11 eps = 1100011 threats, more than 1000000" in error
    assert not out.exists()


class _CountingTable(list):
    passes = 0

    def __iter__(self):
        type(self).passes += 1
        return super().__iter__()


def test_format_table_reads_the_table_a_bounded_number_of_times(files):
    smoothing, votes, _ = files
    result = certify_votes(load_votes(votes), from_config(smoothing))
    axes = {"rows": list(range(1, 41)), "eps": [round(0.01 * k, 12) for k in range(200)]}
    table = _CountingTable(certified_accuracy_table(result, axes))
    text = format_table(result, table, axes)
    # one pass per certificate (and view), not one per printed cell (the old next() scan was quadratic)
    assert _CountingTable.passes <= 2 * len(result.certificates), _CountingTable.passes
    lines = text.splitlines()
    assert len(lines) == 1 + len(result.certificates) * 40
    row = next(r for r in table if r["certificate"] == result.certificates[0].name and r["r"] == 1 and r["eps"] == 0.0)
    assert lines[1].split()[2] == f"{row['certified_accuracy']:.3f}"


# sample counts, classes and devices -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--n", "1000000000000", r"argument --n/--num-samples: '1000000000000' must be an integer in \[1, 100000000\]"),
        ("--n0", "0", "argument --n0"),
        ("--n", "10**12", "is not an integer"),
        ("--batch-size", "-1", "argument --batch-size"),
        ("--num-classes", "10000000", "argument --num-classes"),
        ("--seed", "99999999999999999999", "argument --seed"),
        ("--checkpoint-seconds", "nan", "must be a finite number"),
        ("--alpha", "inf", "argument --alpha"),
        ("--device", "bogus", "--device='bogus': not a torch device"),
        ("--device", "cuda:99", "--device='cuda:99'"),
    ],
)
def test_certify_refuses_bad_counts_and_devices_in_one_line(files, capsys, option, value, message):
    smoothing, _, out = files
    images = out.parent.parent / "images.npz"
    np.savez(images, images=np.full((2, 1, 4, 4), 0.5), labels=np.array([0, 1]))
    argv = [
        "certify",
        "--model",
        "hiersmooth.models.images:SmallCNN",
        "--random-weights",
        "--num-classes",
        "2",
        "--data",
        images,
        "--smoothing",
        smoothing,
        "--out",
        out.parent,
        "--no-progress",
        "--n0",
        "2",
        "--n",
        "4",
        option,
        value,
    ]
    assert re.search(message, _one_line_error(capsys, argv))


def test_check_device():
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        check_device("gpu please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            check_device("cuda")
    else:
        assert check_device("cuda").type == "cuda"


# the CLI's last line of defence: errors from the environment, by category, in one line --------------------------------
@pytest.mark.parametrize(
    "error, fragment",
    [
        (OSError(28, "No space left on device", "out.csv"), "out.csv: No space left on device"),
        (MemoryError(), "out of memory"),
        (OverflowError("int too large to convert"), "a number is too large (int too large to convert)"),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
        (yaml.YAMLError("bad\nthing"), "YAMLError: bad thing"),
        (ValueError("first line\nsecond line"), "first line second line"),
    ],
)
def test_environment_errors_print_one_line(monkeypatch, capsys, error, fragment):
    def fail(argv):
        raise error

    monkeypatch.setattr(cli, "run_command", fail)
    assert fragment in _one_line_error(capsys, ["report", "x"])


def test_bugs_in_our_own_code_are_not_hidden(monkeypatch):
    def fail(argv):
        raise TypeError("a bug")

    monkeypatch.setattr(cli, "run_command", fail)
    with pytest.raises(TypeError, match="a bug"):
        main(["report", "x"])


@pytest.mark.parametrize(
    "argv",
    [
        ["certify-votes", "{votes}", "--smoothing", "{smoothing}", "--out", "{out}", "--alpha", "2"],
        ["certify-votes", "{votes}", "--smoothing", "{smoothing}", "--out", "{out}", "--alpha", "x"],
        ["certify-votes", "{votes}", "--smoothing", "{smoothing}", "--out", "{out}", "--runner-up", "best"],
        ["certify-votes", "{votes}", "--smoothing", "{smoothing}", "--out", "{out}", "--added", "0-3"],
        ["certify-votes", "{votes}", "--smoothing", "{smoothing}", "--out", "{out}", "--rows", "a-b"],
        ["certify-votes", "{votes}", "--smoothing", "{smoothing}", "--out", "{out}", "--eps", "-1"],
        ["certify-votes", "{smoothing}", "--smoothing", "{smoothing}", "--out", "{out}"],
        ["certify-votes", "{votes}", "--smoothing", "{votes}", "--out", "{out}"],
        ["certify-votes", "{votes}", "--smoothing", "{tmp}", "--out", "{out}"],
        ["certify-votes", "{votes}", "--smoothing", "{smoothing}", "--out", "/proc/no/such/dir/o.csv"],
        ["certify", "--out", "{tmp}/c"],
        ["certify", "--checkpoint", "{tmp}/nothing", "--out", "{tmp}/c"],
        [
            "certify",
            "--smoothing",
            "{smoothing}",
            "--model",
            "nope",
            "--data",
            "{votes}",
            "--out",
            "{tmp}/c",
            "--num-classes",
            "2",
        ],
        ["train", "{votes}"],
        ["train", "{tmp}/missing.yaml"],
        ["run", "{smoothing}", "--dry-run"],
        ["run", "{tmp}/missing.yaml"],
        ["report", "{tmp}/missing"],
        ["report", "{tmp}", "--threat", "r=x"],
        ["bogus-command"],
        [],
    ],
)
def test_every_command_refuses_bad_options_in_one_line(files, capsys, argv):
    smoothing, votes, out = files
    values = {"votes": votes, "smoothing": smoothing, "out": out, "tmp": out.parent.parent}
    before = {p: p.read_bytes() for p in (votes, smoothing)}
    _one_line_error(capsys, [a.format(**values) for a in argv])
    assert {p: p.read_bytes() for p in (votes, smoothing)} == before


def test_huge_r_in_a_sparse_grid_is_neither_allocated_nor_different_from_its_effective_r(tmp_path):
    """r = 10¹² with ra + rd = 2 bits can change only 2 rows: the same certificates as r = 2, without an O(r) array."""
    import csv

    from hiersmooth.cli import main
    from hiersmooth.shared_data import shared_dir

    votes = shared_dir() / "reference" / "cora_ml_gat_hierarchical_sparse_votes.npz"
    smoothing = Path(__file__).resolve().parents[1] / "configs" / "smoothing" / "cora_ml_hierarchical_sparse.yaml"
    rows = {}
    for r in ("1000000000000", "2"):
        out = tmp_path / f"r{r}.csv"
        assert (
            main(
                [
                    "certify-votes",
                    str(votes),
                    "--smoothing",
                    str(smoothing),
                    "--out",
                    str(out),
                    "--rows",
                    r,
                    "--added",
                    "1",
                    "--deleted",
                    "1",
                ]
            )
            == 0
        )
        with open(out) as file:
            rows[r] = [(row["certificate"], row["certified_accuracy"]) for row in csv.DictReader(file)]
    assert rows["1000000000000"] == rows["2"] and len(rows["2"]) == 2


@pytest.mark.parametrize("kind", ["smoothing", "train", "experiment"])
def test_option_names_that_are_not_text_get_one_line(tmp_path, capsys, kind):
    """``null:`` or ``3:`` as a key (found by the fuzz suite) is refused by the YAML reader, not a TypeError."""
    from hiersmooth.cli import main

    repo = Path(__file__).resolve().parents[1]
    source = {
        "smoothing": repo / "configs/smoothing/cora_ml_sparse.yaml",
        "train": repo / "configs/train/digits_hierarchical.yaml",
        "experiment": repo / "experiments/digits.yaml",
    }[kind]
    config = tmp_path / "config.yaml"
    config.write_text(source.read_text() + "\nnull: 3\n")
    argv = {
        "smoothing": ["certify-votes", str(config), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")],
        "train": ["train", str(config), "--out", str(tmp_path / "t")],
        "experiment": ["run", str(config), "--dry-run", "--out", str(tmp_path / "r")],
    }[kind]
    if kind == "smoothing":
        from hiersmooth.shared_data import shared_dir

        argv[1] = str(shared_dir() / "reference" / "cora_ml_gat_hierarchical_sparse_votes.npz")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "option names must be text, found None" in err[0], err


def test_error_line_quotes_the_first_line_or_the_type_of_an_empty_message():
    from hiersmooth.checks import error_line

    assert error_line(ValueError("first\nsecond")) == "first"
    assert error_line(EOFError()) == "EOFError"  # an empty message: was an IndexError inside the error handler
    assert error_line(OSError("  \n")) == "OSError"
