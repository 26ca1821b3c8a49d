"""1 against 2 processes (1 thread each) for ``hiersmooth certify``: digits images and Cora-ML graph sampling.

Each case runs ``python -m hiersmooth certify`` once as a single process and once under
``torchrun --nproc_per_node=2`` (gloo), both with OMP_NUM_THREADS=1, checks that the votes are identical, and
prints the wall times, the speedup and the seconds rank 0 spent in collectives (all-reduce and barriers).

    python benchmarks/distributed_speedup.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hiersmooth.data.graphs import load_graph  # noqa: E402
from hiersmooth.data.images import load_digits  # noqa: E402
from hiersmooth.models.graphs import GCN  # noqa: E402
from hiersmooth.models.images import SmallCNN  # noqa: E402


def write_digits(folder: Path, points: int) -> list[str]:
    _, test = load_digits()
    np.savez(folder / "digits.npz", images=test.images[:points].numpy(), labels=test.labels[:points])
    torch.manual_seed(0)
    torch.save(SmallCNN(2, 10).state_dict(), folder / "cnn.pt")
    return [
        "--smoothing",
        str(REPO / "configs/smoothing/cifar10_hierarchical_gaussian.yaml"),
        "--model",
        "hiersmooth.models.images:SmallCNN",
        "--weights",
        str(folder / "cnn.pt"),
        "--data",
        str(folder / "digits.npz"),
        "--num-classes",
        "10",
        "--batch-size",
        "1000",
        "--rows",
        "1",
        "--eps",
        "0",
    ]


def write_cora(folder: Path) -> list[str]:
    split = load_graph("cora_ml", folder / "pyg")
    features = split.graph.features
    np.savez(
        folder / "cora.npz",
        features_data=features.values().numpy(),
        features_indices=features.col_indices().numpy(),
        features_indptr=features.crow_indices().numpy(),
        features_shape=np.array(features.shape),
        edge_index=split.graph.edge_index.numpy(),
        labels=split.graph.labels,
    )
    torch.manual_seed(0)
    torch.save(GCN(features.shape[1] + 1, split.num_classes).state_dict(), folder / "gcn.pt")
    return [
        "--smoothing",
        str(REPO / "configs/smoothing/cora_ml_hierarchical_sparse.yaml"),
        "--model",
        "hiersmooth.models.graphs:GCN",
        "--weights",
        str(folder / "gcn.pt"),
        "--data",
        str(folder / "cora.npz"),
        "--num-classes",
        str(split.num_classes),
        "--batch-size",
        "4",
        "--rows",
        "1",
        "--added",
        "0",
        "--deleted",
        "0",
    ]


def timed(command: list[str], out: Path) -> tuple[float, float, float]:
    """Wall seconds of ``command``, and rank 0's counting and communication seconds from the sidecar."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    started = time.perf_counter()
    subprocess.run(
        command + ["--out", str(out), "--no-progress"], check=True, env=environment, stdout=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - started
    sidecar = json.loads((out / "certified_accuracy.json").read_text())
    return seconds, sidecar["counting_seconds_this_run"], sidecar.get("communication_seconds_rank0", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer points and samples")
    quick = parser.parse_args().quick
    single = [sys.executable, "-m", "hiersmooth", "certify"]
    double = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "hiersmooth",
        "certify",
    ]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        cases = {
            "digits (SmallCNN, images dealt across ranks)": write_digits(folder, 20 if quick else 100)
            + ["--n0", "100", "--num-samples", "1000" if quick else "5000"],
            "Cora-ML (GCN, sample blocks dealt across ranks)": write_cora(folder)
            + ["--n0", "40", "--num-samples", "200" if quick else "1000"],
        }
        print(
            f"{'case':<50}{'1 process':>11}{'2 processes':>13}{'speedup':>9}{'counting 1 / 2':>17}{'speedup':>9}"
            f"{'comm.+wait':>12}"
        )
        for index, (name, options) in enumerate(cases.items()):
            one, counting_one, _ = timed(single + options, folder / f"one{index}")
            two, counting_two, communication = timed(double + options, folder / f"two{index}")
            with np.load(folder / f"one{index}" / "votes.npz") as a, np.load(folder / f"two{index}" / "votes.npz") as b:
                identical = all(np.array_equal(a[k], b[k]) for k in a.files)
            print(
                f"{name:<50}{one:>10.1f}s{two:>12.1f}s{one / two:>8.2f}x{counting_one:>8.1f}s /{counting_two:>5.1f}s"
                f"{counting_one / counting_two:>8.2f}x{communication:>11.2f}s{'' if identical else '   VOTES DIFFER'}"
            )
    print(
        "wall: whole command incl. start-up (torchrun adds its rendezvous); counting: rank 0's sampling + forward "
        "passes incl. the all-reduce; comm.+wait: rank 0 in collectives, incl. waiting for the slower rank. "
        "Votes are identical unless flagged."
    )


if __name__ == "__main__":
    main()
