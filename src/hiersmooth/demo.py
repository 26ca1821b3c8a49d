"""``make demo``: certify the paper's published votes (shared/reference) and print certified accuracy.

Runs ``hiersmooth certify-votes`` on the CIFAR-10 / ResNet-50 hierarchical-gaussian votes and the Cora-ML / GAT
hierarchical-sparse votes with the reference settings (SPEC.md §6), writing results under ``out/demo``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import main as cli_main
from .shared_data import shared_dir

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "smoothing"

RUNS = [
    ("cifar10_resnet50_hierarchical_gaussian_votes.npz", "cifar10_hierarchical_gaussian.yaml", ["--rows", "1-4"]),
    ("cora_ml_gat_hierarchical_sparse_votes.npz", "cora_ml_hierarchical_sparse.yaml", ["--rows", "1-4"]),
]


def main(out: Path = Path("out/demo")) -> int:
    reference = shared_dir() / "reference"
    for votes, config, options in RUNS:
        print(f"\n== {votes} with {config}")
        status = cli_main(["certify-votes", str(reference / votes), "--smoothing", str(CONFIGS / config),
                           "--out", str(out / votes.replace("_votes.npz", ".csv")), *options])
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
