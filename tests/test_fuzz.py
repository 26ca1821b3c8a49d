"""Fuzzing the command line: mutated votes files, mutated YAML configs and mutated argument lists.

Every call ends in success (status 0) or in exactly one stderr line ``hiersmooth: error: ...`` with status 2 —
never a traceback — and never changes its input files. Only fast commands run in-process (certify-votes on a
3-point file, ``run --dry-run``, config parsing); a mutated argument list that could start real work runs in a
subprocess with a timeout, so a hang fails the test instead of stalling it.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiersmooth.cli import main
from hiersmooth.shared_data import shared_dir

REPOSITORY = Path(__file__).resolve().parents[1]
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GAUSSIAN = "selection: {kind: bernoulli, p: 0.8}\nnoise: {kind: gaussian, sigma: 0.25}\nindicator: true\n"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_outcome(status: int, err: str) -> None:
    assert "Traceback" not in err, err
    if status == 0:
        return
    assert status == 2, (status, err)
    assert err.startswith("hiersmooth: error: ") and err.count("\n") == 1, err


def _call(capsys, argv, inputs) -> None:
    before = {path: _digest(path) for path in inputs}
    status = main([str(a) for a in argv])
    _check_outcome(status, capsys.readouterr().err)
    assert {path: _digest(path) for path in inputs} == before, "an input file was changed"


def _mutate(data: bytes, edits) -> bytes:
    """Flip, overwrite, insert or delete bytes at the drawn positions, or truncate."""
    data = bytearray(data)
    for kind, position, value in edits:
        if not data:
            break
        at = position % len(data)
        if kind == "flip":
            data[at] ^= 1 << (value % 8)
        elif kind == "set":
            data[at] = value
        elif kind == "insert":
            data.insert(at, value)
        elif kind == "delete":
            del data[at]
        else:
            del data[at:]
    return bytes(data)


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), st.integers(0, 1 << 30), st.integers(0, 255)
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    smoothing = folder / "smoothing.yaml"
    smoothing.write_text(GAUSSIAN)
    pre = np.array([[90, 5, 5], [10, 80, 10], [30, 30, 40]])
    votes = folder / "votes.npz"
    np.savez(votes, pre_votes=pre, votes=pre * 10, labels=np.array([0, 1, 2]))
    return folder, smoothing, votes


@pytest.fixture(scope="module", autouse=True)
def inside_workspace(workspace):
    """A mutated argument list may name a relative ``--out`` (``,``): it lands in the workspace, never the checkout."""
    old = Path.cwd()
    os.chdir(workspace[0])
    yield
    os.chdir(old)


def test_the_fuzz_inputs_are_there():
    reference = shared_dir() / "reference"  # raises, saying where it looked, when the shared folder is missing
    assert sorted(reference.glob("*votes.npz")), f"no reference votes in {reference}"
    assert sorted((REPOSITORY / "configs" / "smoothing").glob("*.yaml")), (
        f"no smoothing configs in {REPOSITORY}/configs"
    )
    assert sorted((REPOSITORY / "experiments").glob("*.yaml")), f"no experiments in {REPOSITORY}/experiments"


@FUZZ
@given(edits=EDITS)
def test_mutated_votes_files(workspace, capsys, edits):
    folder, smoothing, votes = workspace
    hostile = folder / "mutated.npz"
    hostile.write_bytes(_mutate(votes.read_bytes(), edits))
    _call(
        capsys,
        [
            "certify-votes",
            hostile,
            "--smoothing",
            smoothing,
            "--out",
            folder / "out" / "c.csv",
            "--rows",
            "1-2",
            "--eps",
            "0,0.5",
            "--force",
        ],
        [hostile, smoothing],
    )


@FUZZ
@given(edits=EDITS, which=st.integers(0, 1))
def test_mutated_reference_votes_headers(workspace, capsys, edits, which):
    """The shared reference votes, damaged within their first kilobyte (zip and .npy headers)."""
    folder, _, _ = workspace
    references = sorted((shared_dir() / "reference").glob("*votes.npz"))
    source = references[which % len(references)]
    config = (
        REPOSITORY
        / "configs"
        / "smoothing"
        / ("cifar10_hierarchical_gaussian.yaml" if "gaussian" in source.name else "cora_ml_hierarchical_sparse.yaml")
    )
    data = source.read_bytes()
    hostile = folder / "reference_mutated.npz"
    hostile.write_bytes(_mutate(data[:1024], [(k, p % 1024, v) for k, p, v in edits]) + data[1024:])
    threat = ["--eps", "0,0.25"] if "gaussian" in source.name else ["--added", "0,1", "--deleted", "0,1"]
    _call(
        capsys,
        [
            "certify-votes",
            hostile,
            "--smoothing",
            config,
            "--out",
            folder / "ref" / "c.csv",
            "--rows",
            "1",
            *threat,
            "--force",
        ],
        [hostile, config],
    )


SMOOTHING_CONFIGS = sorted((REPOSITORY / "configs" / "smoothing").glob("*.yaml"))
TEXT_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
        st.integers(0, 1 << 30),
        st.sampled_from(list(b" :-[]{},&*!|>'\"#\n0123456789.eE+nain")),
    ),
    min_size=1,
    max_size=5,
)


@FUZZ
@given(which=st.integers(0, 100), edits=TEXT_EDITS)
def test_mutated_smoothing_configs(workspace, capsys, which, edits):
    folder, _, votes = workspace
    config = folder / "mutated_smoothing.yaml"
    config.write_bytes(_mutate(SMOOTHING_CONFIGS[which % len(SMOOTHING_CONFIGS)].read_bytes(), edits))
    _call(
        capsys,
        ["certify-votes", votes, "--smoothing", config, "--out", folder / "s" / "c.csv", "--rows", "1-2", "--force"],
        [votes, config],
    )


RUN_CONFIGS = sorted((REPOSITORY / "experiments").glob("*.yaml")) + sorted(
    (REPOSITORY / "configs" / "train").glob("*.yaml")
)


@FUZZ
@given(which=st.integers(0, 100), edits=TEXT_EDITS)
def test_mutated_experiments_and_run_configs(workspace, capsys, which, edits):
    """``run --dry-run`` parses an experiment (and each run config in it) and lists its cells: nothing is trained."""
    folder, _, _ = workspace
    config = folder / "mutated_experiment.yaml"
    config.write_bytes(_mutate(RUN_CONFIGS[which % len(RUN_CONFIGS)].read_bytes(), edits))
    _call(capsys, ["run", config, "--dry-run", "--out", folder / "results"], [config])
    from hiersmooth.run_config import load_run_config

    try:
        load_run_config(config)
    except ValueError as error:
        assert "\n" not in str(error)


ARGUMENT = st.one_of(
    st.sampled_from(
        [
            "--rows",
            "--eps",
            "--added",
            "--deleted",
            "--alpha",
            "--runner-up",
            "--out",
            "--smoothing",
            "--force",
            "1-4",
            "0:1:0.05",
            "0:1e308:1e300",
            "0:1:1e-9",
            "0-100000",
            "99999999999999999999",
            "nan",
            "inf",
            "-1",
            "1e400",
            "sound",
            "selection",
            "",
            ",",
            "1,,2",
            "3-1",
            "0x10",
            "1_000",
        ]
    ),
    st.text(alphabet="0123456789-:.,e", max_size=12),
)


@FUZZ
@given(extra=st.lists(ARGUMENT, max_size=6))
def test_mutated_certify_votes_arguments(workspace, capsys, extra):
    folder, smoothing, votes = workspace
    argv = ["certify-votes", votes, "--smoothing", smoothing, "--out", folder / "args" / "c.csv", "--force", *extra]
    _call(capsys, argv, [votes, smoothing])


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extra=st.lists(
        st.sampled_from(
            [
                "--n",
                "--n0",
                "--batch-size",
                "--seed",
                "--num-classes",
                "--device",
                "--block-size",
                "0",
                "-3",
                "10**12",
                "1000000000000",
                "99999999999999999999",
                "cuda",
                "bogus",
                "nan",
                "--rows",
                "0-100000",
                "--eps",
                "0:1:1e-9",
            ]
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_certify_arguments_in_a_subprocess(workspace, extra):
    """``certify`` might start sampling, so it runs in a subprocess under a timeout: a hang fails, never stalls."""
    folder, smoothing, _ = workspace
    images = folder / "images.npz"
    if not images.exists():
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
        folder / "certify",
        "--n0",
        "4",
        "--n",
        "8",
        "--no-progress",
        "--force",
        *extra,
    ]
    before = {path: _digest(path) for path in (images, smoothing)}
    done = subprocess.run(
        [sys.executable, "-m", "hiersmooth", *map(str, argv)], capture_output=True, text=True, timeout=120, cwd=folder
    )
    _check_outcome(done.returncode, done.stderr)
    assert {path: _digest(path) for path in (images, smoothing)} == before
