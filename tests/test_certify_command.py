"""``hiersmooth certify`` over a dataset: outputs, agreement with the API, resuming a killed run, bad input."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hiersmooth import classifier as classifier_module
from hiersmooth.certify.votes import load_votes
from hiersmooth.certify_run import Checkpoint, count_dataset_votes
from hiersmooth.classifier import SmoothedClassifier
from hiersmooth.cli import main
from hiersmooth.inputs import load_arrays
from hiersmooth.models.graphs import GCN
from hiersmooth.models.images import SmallCNN

REPO = Path(__file__).resolve().parents[1]
GAUSSIAN = REPO / "configs" / "smoothing" / "cifar10_hierarchical_gaussian.yaml"
SPARSE = REPO / "configs" / "smoothing" / "cora_ml_hierarchical_sparse.yaml"


@pytest.fixture
def image_run(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "images.npz"
    np.savez(data, images=rng.random((5, 1, 8, 8)).astype(np.float32), labels=rng.integers(0, 3, 5))
    torch.manual_seed(0)
    weights = tmp_path / "cnn.pt"
    torch.save(SmallCNN(2, 3).state_dict(), weights)
    args = [
        "certify",
        "--smoothing",
        str(GAUSSIAN),
        "--model",
        "hiersmooth.models.images:SmallCNN",
        "--weights",
        str(weights),
        "--data",
        str(data),
        "--n0",
        "40",
        "--n",
        "300",
        "--num-classes",
        "3",
        "--no-progress",
        "--rows",
        "1,2",
        "--eps",
        "0,0.1",
    ]
    return tmp_path, args


def test_certify_writes_votes_that_match_the_api(image_run, capsys):
    tmp_path, args = image_run
    out = tmp_path / "out"
    assert main(args + ["--out", str(out), "--batch-size", "64"]) == 0
    votes = load_votes(out / "votes.npz")
    model = SmallCNN(2, 3)
    model.load_state_dict(torch.load(tmp_path / "cnn.pt", weights_only=True))
    dataset = load_arrays(tmp_path / "images.npz")
    classifier = SmoothedClassifier(model, GAUSSIAN, 3)
    for point in range(dataset.points):
        result = classifier.certify(dataset.images[point], 40, 300, 0.01, batch_size=17, point=point)
        np.testing.assert_array_equal(votes.pre_votes[point], result.pre_votes[0])
        np.testing.assert_array_equal(votes.votes[point], result.votes[0])
    np.testing.assert_array_equal(votes.labels, dataset.labels)
    sidecar = json.loads((out / "certified_accuracy.json").read_text())
    assert sidecar["seed_plan"]["seed"] == 0 and sidecar["seed_plan"]["block_size"] == 100
    assert sidecar["n0"] == 40 and sidecar["n"] == 300
    table = (out / "certified_accuracy.csv").read_text().splitlines()
    assert table[0].startswith("certificate") and len(table) == 1 + 2 * 2 * 2
    assert "certified accuracy" in capsys.readouterr().out


# A model factory for ``--model killswitch17:make``: SmallCNN (the very same state dict, so the same fingerprint) that
# counts the samples it classifies and, with $HIERSMOOTH_TEST_KILL_AT set, SIGKILLs its own process as forward pass
# number $HIERSMOOTH_TEST_KILL_AT begins — a real hard kill at a fixed point of the run, nothing flushed.
_KILLSWITCH = """
import os
import signal

import torch

from hiersmooth.models.images import SmallCNN

BUILT = []


class KillSwitch(SmallCNN):
    def __init__(self, width, classes, kill_at):
        super().__init__(width, classes)
        self.kill_at, self.passes, self.samples = kill_at, 0, 0  # plain ints: not in the state dict

    def forward(self, x):
        self.passes += 1
        if self.passes == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self.samples += x.shape[0]
        return super().forward(x)


def make(width, classes):
    kill_at = int(os.environ.get("HIERSMOOTH_TEST_KILL_AT", "0"))
    if kill_at:
        torch.set_num_threads(1)  # so one CPU worker runs the passes in order (classifier.CPU_WORKERS, in_order)
    BUILT.append(KillSwitch(width, classes, kill_at))
    return BUILT[-1]
"""


def test_a_killed_run_resumes_with_identical_votes(image_run, monkeypatch):
    tmp_path, args = image_run
    complete = tmp_path / "complete"
    assert main(args + ["--out", str(complete)]) == 0  # the library's own SmallCNN, never interrupted

    (tmp_path / "killswitch17.py").write_text(_KILLSWITCH)
    args = list(args)
    args[args.index("--model") + 1] = "killswitch17:make"
    killed = tmp_path / "killed"
    # forward passes: 1 class-count check of one sample, then per image 40 selection samples (one pass) and 3
    # estimation blocks of 100 (two passes of 50 each); pass 20 is the 2nd half of image 2's estimation block 1
    command = [
        sys.executable,
        "-m",
        "hiersmooth",
        *args,
        "--out",
        str(killed),
        "--checkpoint-seconds",
        "0",
        "--batch-size",
        "50",
    ]
    process = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HIERSMOOTH_TEST_KILL_AT": "20"},
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert not (killed / "votes.npz").exists()
    with np.load(killed / "progress.npz") as progress:
        cursor, counted = progress["cursor"], int(progress["pre_votes"].sum() + progress["votes"].sum())
    # every block before the kill was checkpointed (--checkpoint-seconds 0), the half-counted block 1 was not
    assert cursor.tolist() == [[1, 3], [1, 3], [1, 1], [0, 0], [0, 0]], cursor.tolist()
    assert counted == 2 * 340 + 40 + 100 < 5 * 340, "the checkpoint does not hold a strict part of the work"

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(REPO), os.getcwd())])
    monkeypatch.delenv("HIERSMOOTH_TEST_KILL_AT", raising=False)
    monkeypatch.delitem(sys.modules, "killswitch17", raising=False)
    fresh = tmp_path / "fresh"
    assert main(args + ["--out", str(fresh), "--batch-size", "300"]) == 0  # the same model, never interrupted
    assert main(args + ["--out", str(killed), "--batch-size", "300"]) == 0  # resume, with another batch size
    built = sys.modules.pop("killswitch17").BUILT
    assert [model.kill_at for model in built] == [0, 0]
    assert built[1].samples == built[0].samples - counted, "the resumed run did not start where the checkpoint stopped"
    for name in ("pre_votes", "votes", "labels"):
        np.testing.assert_array_equal(np.load(killed / "votes.npz")[name], np.load(complete / "votes.npz")[name])
        np.testing.assert_array_equal(np.load(fresh / "votes.npz")[name], np.load(complete / "votes.npz")[name])


def test_an_interrupted_graph_run_resumes_with_identical_votes(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    nodes, features = 30, 16
    x = torch.as_tensor(rng.random((nodes, features)) < 0.2, dtype=torch.float32)
    edges = rng.integers(0, nodes, (2, 90))
    path = tmp_path / "graph.npz"
    np.savez(path, features=x.numpy(), edge_index=edges, labels=rng.integers(0, 3, nodes), nodes=np.arange(0, nodes, 2))
    graph = load_arrays(path)
    torch.manual_seed(3)
    model = GCN(features + 1, 3)

    class FailsAfter(torch.nn.Module):
        def __init__(self, inner, calls):
            super().__init__()
            self.inner, self.calls, self.passes = inner, calls, []

        def forward(self, *inputs):
            self.passes.append(None)  # list.append: atomic, also from two worker threads at once
            if len(self.passes) > self.calls:
                raise RuntimeError("simulated crash")
            return self.inner(*inputs)

    def run(net, out, batch):
        checkpoint = Checkpoint(out / "progress.npz", {"test": 1}, graph.points, 1, 3)
        return count_dataset_votes(
            SmoothedClassifier(net, SPARSE, 3, seed=9), graph, 12, 60, batch, checkpoint, 0, progress=False
        )

    reference = run(model, tmp_path, 8)
    (tmp_path / "resumed").mkdir()
    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="simulated crash"):
        patch.setattr(classifier_module, "CPU_WORKERS", 1)  # passes in order, none in flight when one fails
        run(FailsAfter(model, 5), tmp_path / "resumed", 8)
    cursor = np.load(tmp_path / "resumed" / "progress.npz")["cursor"]
    # passes of 2 blocks of 4 samples: selection (3 blocks) took 2, so it is done; the crash (at the 6th forward
    # pass) stopped estimation part-way, after its first 3 passes (6 of its 15 blocks)
    assert cursor[0, 0] == 3 and 0 < cursor[0, 1] < 15 and cursor[0, 1] % 2 == 0, cursor.tolist()
    assert cursor.tolist() == [[3, 6]]
    counting = FailsAfter(model, 1000)
    resumed = run(counting, tmp_path / "resumed", 12)
    assert len(counting.passes) == 3, "the resumed run did not start where the checkpoint stopped"  # 9 blocks, 3 a pass
    np.testing.assert_array_equal(resumed.pre_votes, reference.pre_votes)
    np.testing.assert_array_equal(resumed.votes, reference.votes)


def test_graph_dataset_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(4)
    x = (rng.random((20, 10)) < 0.2).astype(np.float32)
    data = tmp_path / "graph.npz"
    indptr = np.concatenate([[0], np.cumsum((x != 0).sum(1))])
    np.savez(
        data,
        features_data=x[x != 0],
        features_indices=np.nonzero(x)[1],
        features_indptr=indptr,
        features_shape=x.shape,
        edge_index=rng.integers(0, 20, (2, 50)),
        labels=rng.integers(0, 3, 20),
    )
    weights = tmp_path / "gcn.pt"
    torch.save(GCN(11, 3).state_dict(), weights)
    out = tmp_path / "out"
    code = main(
        [
            "certify",
            "--smoothing",
            str(SPARSE),
            "--model",
            "hiersmooth.models.graphs:GCN",
            "--weights",
            str(weights),
            "--data",
            str(data),
            "--out",
            str(out),
            "--n0",
            "20",
            "--n",
            "100",
            "--num-classes",
            "3",
            "--no-progress",
            "--rows",
            "1",
            "--added",
            "0,1",
            "--deleted",
            "0-2",
        ]
    )
    assert code == 0
    votes = load_votes(out / "votes.npz")
    assert votes.pre_votes.shape == (20, 3) and votes.n == 100 and votes.n0 == 20
    assert json.loads((out / "certified_accuracy.json").read_text())["nodes"] == list(range(20))


def test_a_checkpoint_of_another_run_is_refused(image_run, capsys):
    tmp_path, args = image_run
    out = tmp_path / "out"
    assert main(args + ["--out", str(out)]) == 0
    assert main([a if a != "300" else "301" for a in args] + ["--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "written by a different run (differs in n)" in error


@pytest.mark.parametrize(
    "change, message",
    [
        (("--model", "SmallCNN"), "--model 'SmallCNN': must be MODULE:FACTORY"),
        (("--model", "hiersmooth.models.images:NoSuchNet"), "cannot import"),
        (("--model", "hiersmooth.models.graphs:GCN"), "--weights .*does not fit hiersmooth.models.graphs:GCN"),
        (("--data", "missing.npz"), "--data missing.npz: no such file"),
        (("--weights", "trap.pt"), "--weights trap.pt: holds pickled objects beyond tensors"),
        (("--weights", "empty.pt"), r"--weights empty.pt: not a state dict written by torch.save \(EOFError\)"),
        (("--weights", "notes.txt"), "--weights notes.txt: not a state dict written by torch.save"),
        (("--weights", "."), r"--weights \.: not a state dict written by torch.save \(IsADirectoryError"),
    ],
)
def test_bad_certify_input_is_one_line(image_run, capsys, monkeypatch, change, message):
    tmp_path, args = image_run
    monkeypatch.chdir(tmp_path)
    torch.save({"weights": object()}, tmp_path / "trap.pt")  # pickled object: refused by weights_only=True
    (tmp_path / "empty.pt").write_bytes(b"")  # a save killed before its first byte
    (tmp_path / "notes.txt").write_text("not weights")
    flag, value = change
    args = list(args)
    args[args.index(flag) + 1] = value
    assert main(args + ["--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert __import__("re").search(message, error), error
