"""Cora-ML for the benchmarks, through the library's PyG loader (``hiersmooth.data.graphs.load_graph``).

The largest connected component (2,810 nodes × 2,879 binary features, 7 classes) as a sparse CSR float tensor,
its (2, E) edge index and the labels. PyG's processed files go to a temporary folder; the raw file comes from the
shared folder (``shared/data/cora_ml.npz``).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from hiersmooth.data.graphs import load_graph

NODES, FEATURES, CLASSES = 2810, 2879, 7
SMOOTHING = Path(__file__).resolve().parents[1] / "configs" / "smoothing" / "cora_ml_hierarchical_sparse.yaml"

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def load_cora_ml() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(features (N, D) sparse CSR float, edge_index (2, E) long, labels (N,)) of the largest component."""
    with tempfile.TemporaryDirectory() as root:
        try:
            graph = load_graph("cora_ml", root, download=False).graph
        except ValueError as error:
            raise SystemExit(
                f"Cora-ML: {error}; set HIERSMOOTH_SHARED to the shared folder holding data/cora_ml.npz"
            ) from None
    assert tuple(graph.features.shape) == (NODES, FEATURES), f"largest component is {tuple(graph.features.shape)}"
    return graph.features, graph.edge_index, graph.labels
