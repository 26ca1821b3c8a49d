"""Bad input: every rule gives a ValueError naming the parameter, and the CLI prints that same message on one
line with exit status 2 and no traceback."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import yaml

import hiersmooth
from hiersmooth.certify.certification import certify_votes
from hiersmooth.certify.votes import Votes, load_votes
from hiersmooth.cli import main

GOOD_SMOOTHING = {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "gaussian", "sigma": 0.25}}


def _votes_arrays(points=6, classes=3, n0=100, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(classes) * 0.3, size=points)
    pre_votes = np.stack([rng.multinomial(n0, p) for p in probabilities])
    votes = np.stack([rng.multinomial(n, p) for p in probabilities])
    return {"pre_votes": pre_votes, "votes": votes, "labels": probabilities.argmax(axis=1)}


def _write(tmp_path, smoothing=GOOD_SMOOTHING, arrays=None, name="votes.npz"):
    config = tmp_path / "smoothing.yaml"
    config.write_text(yaml.safe_dump(smoothing))
    votes = tmp_path / name
    np.savez(votes, **(arrays if arrays is not None else _votes_arrays()))
    return config, votes


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hiersmooth: error: "), err
    assert "Traceback" not in err
    return err[len("hiersmooth: error: ") :].rstrip("\n")


@pytest.mark.parametrize(
    "smoothing, fragment",
    [
        (
            {"selection": {"kind": "bernoulli", "p": 0.0}, "noise": {"kind": "ablation"}},
            "selection.p=0.0: a selection probability must be in (0, 1]",
        ),
        ({"selection": {"kind": "bernoulli", "p": 1.2}, "noise": {"kind": "ablation"}}, "selection.p=1.2"),
        ({"selection": {"kind": "bernoulli", "p": [0.5, 1.5]}, "noise": {"kind": "ablation"}}, "selection.p[1]=1.5"),
        ({"selection": {"kind": "all"}, "noise": {"kind": "gaussian", "sigma": 0}}, "noise.sigma=0: must be > 0"),
        ({"selection": {"kind": "all"}, "noise": {"kind": "gaussian", "sigma": -1.0}}, "noise.sigma=-1.0"),
        (
            {"selection": {"kind": "all"}, "noise": {"kind": "sparse", "p_plus": 1.0, "p_minus": 0.0}},
            "noise.p_plus=1.0: must be in [0, 1)",
        ),
        (
            {"selection": {"kind": "all"}, "noise": {"kind": "sparse", "p_plus": 0.1, "p_minus": -0.1}},
            "noise.p_minus=-0.1: must be in [0, 1)",
        ),
        (
            {"selection": {"kind": "all"}, "noise": {"kind": "sparse", "p_plus": 0.3, "p_minus": 0.7}},
            "noise.p_plus + noise.p_minus = 1: must be < 1",
        ),
        (
            {"selection": {"kind": "all"}, "noise": {"kind": "sparse", "p_plus": 1e-308, "p_minus": 0.5}},
            "noise.p_plus=1e-308: must be 0 or at least 1e-300",
        ),
        (
            {"selection": {"kind": "subset", "size": 11, "entities": 10}, "noise": {"kind": "ablation"}},
            "selection.size=11: cannot select more rows than selection.entities=10",
        ),
        (
            {"selection": {"kind": "lottery"}, "noise": {"kind": "ablation"}},
            "selection.kind='lottery': must be one of bernoulli, subset, all",
        ),
        ({"selection": {"kind": "all"}, "noise": {"kind": "laplace"}}, "noise.kind='laplace'"),
        (
            {"selection": {"kind": "all"}, "noise": {"kind": "gaussian", "sigma": 0.1, "sgima": 1}},
            "noise: unknown option sgima",
        ),
        ({"selection": {"kind": "bernoulli"}, "noise": {"kind": "ablation"}}, "selection: kind 'bernoulli' needs p"),
        ({"selection": {"kind": "all"}}, "'noise' is missing"),
    ],
)
def test_bad_smoothing_configs(tmp_path, capsys, smoothing, fragment):
    with pytest.raises(ValueError) as error:
        hiersmooth.from_config(smoothing)
    assert fragment in str(error.value)
    config, votes = _write(tmp_path, smoothing)
    assert _cli_error(
        capsys, ["certify-votes", str(votes), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")]
    ) == str(error.value)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda a: a["votes"].__setitem__((0, 0), -1), "votes: counts must be non-negative"),
        (lambda a: a.__setitem__("votes", a["votes"] + 0.5), "votes: must hold integers"),
        (
            lambda a: a["votes"].__setitem__((2, 0), a["votes"][2, 0] + 1),
            "votes: every row must sum to the same number of samples; row 0 sums to 1000, row 2 to 1001",
        ),
        (
            lambda a: a["pre_votes"].__setitem__((1, 1), a["pre_votes"][1, 1] + 3),
            "pre_votes: every row must sum to the same number",
        ),
        (
            lambda a: a.__setitem__("pre_votes", a["pre_votes"][:, :2]),
            "votes has shape (6, 3) but pre_votes has shape (6, 2)",
        ),
        (lambda a: a.__setitem__("labels", a["labels"][:4]), "labels has 4 entries but votes has 6 points"),
        (lambda a: a.__setitem__("labels", a["labels"] + 5), "labels: values must be class indices in [0, 2]"),
        (lambda a: a.__setitem__("votes", a["votes"][0]), "votes: must be a 2-d array"),
        (lambda a: a.pop("labels"), "missing array(s) labels"),
    ],
)
def test_bad_votes(tmp_path, capsys, change, fragment):
    arrays = _votes_arrays()
    change(arrays)
    config, votes = _write(tmp_path, arrays=arrays)
    with pytest.raises(ValueError) as error:
        load_votes(votes)
    assert fragment in str(error.value)
    assert _cli_error(
        capsys, ["certify-votes", str(votes), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")]
    ) == str(error.value)
    if "missing" not in fragment:
        with pytest.raises(ValueError) as direct:
            Votes(**{k: np.load(votes)[k] for k in ("pre_votes", "votes", "labels")})
        assert str(direct.value) == str(error.value)


def test_pickled_and_corrupt_files_are_refused_without_unpickling(tmp_path, capsys):
    config, _ = _write(tmp_path)
    marker = tmp_path / "unpickled"
    pickled = tmp_path / "pickled.npz"
    arrays = _votes_arrays()
    np.savez(
        pickled,
        pre_votes=arrays["pre_votes"],
        votes=np.array([_Trap(str(marker))], dtype=object),
        labels=arrays["labels"],
    )
    with pytest.raises(ValueError, match="holds pickled objects; hiersmooth never unpickles"):
        load_votes(pickled)
    _cli_error(capsys, ["certify-votes", str(pickled), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")])
    assert not marker.exists(), "the pickle was executed"

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    assert "not a readable .npz file" in _cli_error(
        capsys, ["certify-votes", str(corrupt), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")]
    )
    single = tmp_path / "single.npy"
    np.save(single, arrays["votes"])
    assert "not an .npz archive" in _cli_error(
        capsys, ["certify-votes", str(single), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")]
    )
    assert "no such votes file" in _cli_error(
        capsys,
        ["certify-votes", str(tmp_path / "absent.npz"), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")],
    )
    whole_pickle = tmp_path / "whole.npz"  # a pickle file, not an archive holding one
    whole_pickle.write_bytes(pickle.dumps(_Trap(str(marker))))
    assert "holds pickled objects" in _cli_error(
        capsys, ["certify-votes", str(whole_pickle), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")]
    )
    assert not marker.exists(), "the pickle was executed"
    # the config given where the votes go: named as no archive, not as a pickle
    message = _cli_error(
        capsys, ["certify-votes", str(config), "--smoothing", str(config), "--out", str(tmp_path / "o.csv")]
    )
    assert "is not an .npz archive (it starts with" in message and "holds pickled" not in message


class _Trap:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("alpha", ["0", "1", "-0.5", "1.5"])
def test_alpha_outside_unit_interval(tmp_path, capsys, alpha):
    config, votes = _write(tmp_path)
    with pytest.raises(ValueError) as error:
        certify_votes(load_votes(votes), hiersmooth.from_config(GOOD_SMOOTHING), alpha=float(alpha))
    assert f"alpha={float(alpha)!r}: must be in (0, 1)" == str(error.value)
    assert _cli_error(
        capsys,
        ["certify-votes", str(votes), "--smoothing", str(config), "--alpha", alpha, "--out", str(tmp_path / "o.csv")],
    ) == str(error.value)


def test_cli_usage_errors_and_threats_that_do_not_fit(tmp_path, capsys):
    config, votes = _write(tmp_path)
    out = str(tmp_path / "o.csv")
    assert "--smoothing" in _cli_error(capsys, ["certify-votes", str(votes), "--out", out])
    assert "--added does not apply to gaussian noise" in _cli_error(
        capsys, ["certify-votes", str(votes), "--smoothing", str(config), "--out", out, "--added", "1"]
    )
    assert "--eps='a,b'" in _cli_error(
        capsys, ["certify-votes", str(votes), "--smoothing", str(config), "--out", out, "--eps", "a,b"]
    )
    assert "--rows='-1'" in _cli_error(
        capsys, ["certify-votes", str(votes), "--smoothing", str(config), "--out", out, "--rows=-1"]
    )
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("selection: [unclosed")
    assert "not valid YAML" in _cli_error(
        capsys, ["certify-votes", str(votes), "--smoothing", str(bad_yaml), "--out", out]
    )
    assert "cannot be read" in _cli_error(
        capsys, ["certify-votes", str(votes), "--smoothing", str(tmp_path / "none.yaml"), "--out", out]
    )
    subset = tmp_path / "subset.yaml"
    subset.write_text(yaml.safe_dump({"selection": {"kind": "subset", "size": 3}, "noise": {"kind": "ablation"}}))
    assert "selection.entities is missing" in _cli_error(
        capsys, ["certify-votes", str(votes), "--smoothing", str(subset), "--out", out]
    )
    with pytest.raises(ValueError, match="does not fit sparse noise"):
        hiersmooth.from_config({"noise": {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.1}}).lower_bound(
            0.9, hiersmooth.Threat(1, l2=0.5)
        )
    with pytest.raises(ValueError, match="rows=-1: must be a non-negative integer"):
        hiersmooth.Threat(rows=-1)
    with pytest.raises(ValueError, match="not both"):
        hiersmooth.Threat(rows=1, l2=0.5, added=1)


def test_installed_command_prints_one_line_and_exits_2(tmp_path):
    config, votes = _write(tmp_path, {"selection": {"kind": "bernoulli", "p": 2}, "noise": {"kind": "ablation"}})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hiersmooth",
            "certify-votes",
            str(votes),
            "--smoothing",
            str(config),
            "--out",
            str(tmp_path / "o.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == "hiersmooth: error: selection.p=2: a selection probability must be in (0, 1]\n"
    assert not (tmp_path / "o.csv").exists()
