"""Cora-ML for the benchmarks: the largest connected component of ``shared/data/cora_ml.npz`` (SPEC.md §5).

Binarised bag-of-words features (2,810 nodes × 2,879 features) as a torch sparse CSR float tensor, the
symmetrised adjacency as a (2, E) edge index, and the labels (7 classes).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from hiersmooth.shared_data import shared_dir

NODES, FEATURES, CLASSES = 2810, 2879, 7
SMOOTHING = Path(__file__).resolve().parents[1] / "configs" / "smoothing" / "cora_ml_hierarchical_sparse.yaml"

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def cora_ml_path() -> Path:
    """``data/cora_ml.npz`` in the shared folder; a clear error naming where it looked when missing."""
    try:
        path = shared_dir() / "data" / "cora_ml.npz"
    except FileNotFoundError as error:
        raise SystemExit(f"Cora-ML: {error}") from None
    if not path.is_file():
        raise SystemExit(f"Cora-ML: {path} not found; set HIERSMOOTH_SHARED to the shared folder holding data/cora_ml.npz")
    return path


def _csr(data, prefix: str) -> sp.csr_matrix:
    shape = tuple(int(v) for v in data[f"{prefix}_shape"])
    return sp.csr_matrix((data[f"{prefix}_data"], data[f"{prefix}_indices"], data[f"{prefix}_indptr"]), shape=shape)


def load_cora_ml() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(features (N, D) sparse CSR float, edge_index (2, E) long, labels (N,)) of the largest component."""
    with np.load(cora_ml_path(), allow_pickle=False) as data:
        adjacency, attributes, labels = _csr(data, "adj"), _csr(data, "attr"), data["labels"]
    _, component = connected_components(adjacency)
    keep = np.flatnonzero(component == np.bincount(component).argmax())
    adjacency = adjacency[keep][:, keep]
    adjacency = ((adjacency + adjacency.T) > 0).tocoo()
    attributes = (attributes[keep] > 0).astype(np.float32).tocsr()
    assert attributes.shape == (NODES, FEATURES), f"largest component is {attributes.shape}, expected {(NODES, FEATURES)}"
    edge_index = torch.from_numpy(np.vstack([adjacency.row, adjacency.col]).astype(np.int64))
    features = torch.sparse_csr_tensor(
        torch.from_numpy(attributes.indptr.astype(np.int64)),
        torch.from_numpy(attributes.indices.astype(np.int64)),
        torch.from_numpy(attributes.data),
        size=attributes.shape,
    )
    return features, edge_index, labels[keep]
