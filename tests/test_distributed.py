"""torchrun: two CPU processes (gloo) give bit-for-bit the votes of one process, for images and for a graph; a rank
that dies fails the whole run without presenting partial output, and the rerun resumes to the same votes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hiersmooth.cli import main
from hiersmooth.models.graphs import GCN
from hiersmooth.models.images import SmallCNN

REPO = Path(__file__).resolve().parents[1]
GAUSSIAN = REPO / "configs" / "smoothing" / "cifar10_hierarchical_gaussian.yaml"
SPARSE = REPO / "configs" / "smoothing" / "cora_ml_hierarchical_sparse.yaml"
OUTPUTS = ("votes.npz", "certified_accuracy.csv", "certified_accuracy.points.csv")


def torchrun(args: list[str], processes: int = 2, **env) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=K -m hiersmooth ARGS`` (1 thread each)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "hiersmooth",
        *args,
    ]
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        **env,
    }
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)


def assert_same_outputs(single: Path, distributed: Path) -> None:
    with np.load(single / "votes.npz") as a, np.load(distributed / "votes.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for name in OUTPUTS[1:]:
        assert (single / name).read_text() == (distributed / name).read_text(), name


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    np.savez(folder / "images.npz", images=rng.random((5, 1, 8, 8)).astype(np.float32), labels=rng.integers(0, 3, 5))
    torch.manual_seed(0)
    torch.save(SmallCNN(2, 3).state_dict(), folder / "cnn.pt")
    args = [
        "certify",
        "--smoothing",
        str(GAUSSIAN),
        "--weights",
        str(folder / "cnn.pt"),
        "--data",
        str(folder / "images.npz"),
        "--n0",
        "40",
        "--num-samples",
        "300",
        "--num-classes",
        "3",
        "--no-progress",
        "--rows",
        "1,2",
        "--eps",
        "0,0.1",
    ]
    single = folder / "single"
    assert (
        main(args + ["--model", "hiersmooth.models.images:SmallCNN", "--out", str(single), "--batch-size", "100"]) == 0
    )
    return folder, args, single


def test_two_processes_certify_images_exactly_like_one(images):
    folder, args, single = images
    out = folder / "two"
    done = torchrun(args + ["--model", "hiersmooth.models.images:SmallCNN", "--out", str(out), "--batch-size", "64"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_outputs(single, out)
    assert sorted(p.name for p in out.glob("progress*")) == ["progress.rank0of2.npz", "progress.rank1of2.npz"]
    # each rank counted only its own images (k mod 2 = rank)
    for rank in (0, 1):
        with np.load(out / f"progress.rank{rank}of2.npz") as progress:
            counted = progress["votes"].sum(1) > 0
        np.testing.assert_array_equal(counted, np.arange(5) % 2 == rank)


def test_two_processes_certify_a_graph_exactly_like_one(tmp_path):
    rng = np.random.default_rng(3)
    nodes, features = 30, 16
    np.savez(
        tmp_path / "graph.npz",
        features=(rng.random((nodes, features)) < 0.2).astype(np.float32),
        edge_index=rng.integers(0, nodes, (2, 90)),
        labels=rng.integers(0, 3, nodes),
        nodes=np.arange(0, nodes, 3),
    )
    torch.manual_seed(3)
    torch.save(GCN(features + 1, 3).state_dict(), tmp_path / "gcn.pt")
    args = [
        "certify",
        "--smoothing",
        str(SPARSE),
        "--model",
        "hiersmooth.models.graphs:GCN",
        "--weights",
        str(tmp_path / "gcn.pt"),
        "--data",
        str(tmp_path / "graph.npz"),
        "--n0",
        "12",
        "--num-samples",
        "44",
        "--num-classes",
        "3",
        "--no-progress",
        "--rows",
        "1",
        "--added",
        "0",
        "--deleted",
        "0,1",
    ]
    assert main(args + ["--out", str(tmp_path / "single"), "--batch-size", "8"]) == 0
    done = torchrun(args + ["--out", str(tmp_path / "two"), "--batch-size", "4"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_outputs(tmp_path / "single", tmp_path / "two")
    # the 11 estimation blocks of 4 samples are dealt round-robin: rank 0 counted 6 blocks, rank 1 five
    for rank, blocks in ((0, 6), (1, 5)):
        with np.load(tmp_path / "two" / f"progress.rank{rank}of2.npz") as progress:
            assert progress["cursor"].tolist() == [[(3 + 1 - rank) // 2, blocks]]
            assert int(progress["votes"].sum()) == len(range(0, nodes, 3)) * 4 * blocks


def test_two_processes_certify_sequentially_exactly_like_one(images, tmp_path):
    """--target: images stop on their own in each rank; a graph's ranks sum each interval's counts at every look
    and so take the same decisions — the files are those of one process."""
    folder, args, _ = images
    sequential = [a for a in args if a not in ("--rows", "1,2", "--eps", "0,0.1")]
    sequential += ["--target", "r=1,eps=0.1", "--target", "r=2,eps=0.3", "--num-samples", "800"]
    model = ["--model", "hiersmooth.models.images:SmallCNN"]
    assert main(sequential + model + ["--out", str(tmp_path / "one"), "--batch-size", "300"]) == 0
    done = torchrun(sequential + model + ["--out", str(tmp_path / "two"), "--batch-size", "100"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_outputs(tmp_path / "one", tmp_path / "two")

    rng = np.random.default_rng(3)
    nodes = 30
    np.savez(
        tmp_path / "graph.npz",
        features=(rng.random((nodes, 16)) < 0.2).astype(np.float32),
        edge_index=rng.integers(0, nodes, (2, 90)),
        labels=rng.integers(0, 3, nodes),
    )
    torch.manual_seed(3)
    torch.save(GCN(17, 3).state_dict(), tmp_path / "gcn.pt")
    graph = ["certify", "--smoothing", str(SPARSE), "--model", "hiersmooth.models.graphs:GCN", "--weights"]
    graph += [str(tmp_path / "gcn.pt"), "--data", str(tmp_path / "graph.npz"), "--n0", "12", "--num-samples"]
    graph += ["200", "--num-classes", "3", "--no-progress", "--target", "r=1,ra=0,rd=1", "--target", "r=1,ra=1,rd=0"]
    assert main(graph + ["--out", str(tmp_path / "graph_one"), "--batch-size", "8"]) == 0
    done = torchrun(graph + ["--out", str(tmp_path / "graph_two"), "--batch-size", "4"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_outputs(tmp_path / "graph_one", tmp_path / "graph_two")


def test_a_dying_rank_fails_the_run_and_the_rerun_resumes(images):
    folder, args, single = images
    out = folder / "faulty"
    run = args + [
        "--model",
        "rank_models:FailsOnRank1",
        "--out",
        str(out),
        "--batch-size",
        "100",
        "--checkpoint-seconds",
        "0",
    ]
    failed = torchrun(run, HIERSMOOTH_TEST_FAIL="1")
    assert failed.returncode != 0
    assert "simulated failure of rank 1" in failed.stderr
    assert not any((out / name).exists() for name in OUTPUTS), "no output may be presented after a failed rank"
    assert (out / "progress.rank1of2.npz").exists()
    resumed = torchrun(run)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_outputs(single, out)
