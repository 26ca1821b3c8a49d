"""Dense vs sparse CSR node features on Cora-ML: ``SmoothedClassifier.count`` with a GCN, same samples.

The ratio printed (dense seconds / sparse seconds, measured in one run) is the factor quoted by the one-time
notice ``SmoothedClassifier`` gives when a graph's features are dense.

Run: ``.venv/bin/python benchmarks/dense_vs_sparse_graph.py [--n 200] [--batch-size 20]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from cora_ml import CLASSES, FEATURES, SMOOTHING, load_cora_ml

from hiersmooth.classifier import SmoothedClassifier
from hiersmooth.models.graphs import GCN


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=20)
    args = parser.parse_args()
    features, edge_index, _ = load_cora_ml()
    torch.manual_seed(0)
    classifier = SmoothedClassifier(GCN(FEATURES + 1, CLASSES), SMOOTHING, CLASSES, seed=0, device="cpu")
    warnings.simplefilter("ignore")
    seconds = {}
    for name, x in (("sparse", features), ("dense", features.to_dense())):
        classifier.count(x, "estimation", args.batch_size, args.batch_size, edge_index=edge_index)  # warm-up
        start = time.perf_counter()
        classifier.count(x, "estimation", args.n, args.batch_size, edge_index=edge_index)
        seconds[name] = time.perf_counter() - start
        print(f"{name:6s}: {seconds[name]:.2f} s for {args.n} samples ({args.n / seconds[name]:.1f} samples/s)")
    print(f"dense / sparse: {seconds['dense'] / seconds['sparse']:.1f}x")


if __name__ == "__main__":
    main()
