"""Datasets from plain ``.npz`` arrays (read with ``allow_pickle=False``).

- images: ``images`` (P, C, H, W) with values in [0, 1] (uint8 is divided by 255) and ``labels`` (P,);
- a graph: ``edge_index`` (2, E), ``labels`` (N,), node features either dense ``features`` (N, D) or the CSR
  arrays ``features_data``, ``features_indices``, ``features_indptr``, ``features_shape``; optionally ``nodes``,
  the target nodes to certify, as integer indices or a boolean mask of length N (default: all).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..certify.votes import read_npz_arrays


@dataclass
class ImageSet:
    images: torch.Tensor
    labels: np.ndarray

    @property
    def points(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])


@dataclass
class Graph:
    features: torch.Tensor
    edge_index: torch.Tensor
    labels: np.ndarray
    nodes: np.ndarray

    def __post_init__(self):
        """``nodes`` as int64 indices: integer indices as given, a boolean mask of length N as its True entries."""
        from ..classifier import node_indices

        self.nodes = node_indices(self.nodes, self.features.shape[0])

    @property
    def points(self) -> int:
        return len(self.nodes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.features.shape)


MAX_CLASSES = 100_000  # a label names a class; the votes and the model's output are that wide
MAX_FEATURES = 10**7  # columns of a sparse feature matrix (the model's input width)


def _labels(path, value) -> np.ndarray:
    """Integer class labels (-1: unknown) below ``MAX_CLASSES``; fractions, NaN and huge values are refused, never cast."""
    labels = np.asarray(value)
    if labels.ndim != 1:
        raise ValueError(f"--data {path}: labels must be a 1-d array (one per point), got shape {labels.shape}")
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.float64)
    elif labels.dtype.kind not in "iu":
        raise ValueError(f"--data {path}: labels must be integer class indices, got {labels.dtype} values"
                         + (" that are not whole numbers" if labels.dtype.kind == "f" else ""))
    if labels.size and (labels.min() < -1 or labels.max() >= MAX_CLASSES):
        bad = labels.min() if labels.min() < -1 else labels.max()
        raise ValueError(f"--data {path}: labels must be class indices in [0, {MAX_CLASSES - 1}] (or -1: unknown), found {bad:g}")
    return labels.astype(np.int64)


def _check_edges(path, value, nodes: int) -> None:
    """``edge_index`` must be (2, E) integers naming nodes 0..N-1."""
    edges = np.asarray(value)
    if edges.ndim != 2 or edges.shape[0] != 2 or edges.dtype.kind not in "iu":
        raise ValueError(f"--data {path}: edge_index must be a (2, E) integer array, got shape {edges.shape} of {edges.dtype}")
    if edges.size and (edges.min() < 0 or edges.max() >= nodes):
        bad = edges.min() if edges.min() < 0 else edges.max()
        raise ValueError(f"--data {path}: edge_index names node {bad}; the graph has nodes 0..{nodes - 1}")


def load_arrays(path) -> ImageSet | Graph:
    """Read an image set or a graph from ``path`` (see the module docstring for the arrays)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = read_npz_arrays(data, data.files, f"--data {path}")
    except FileNotFoundError:
        raise ValueError(f"--data {path}: no such file") from None
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError, AttributeError) as error:
        raise ValueError(f"--data {path}: not a readable .npz archive ({error})") from None
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(f"--data {path}: holds pickled objects; hiersmooth never unpickles files") from None
        if str(error).startswith(f"--data {path}:"):
            raise
        raise ValueError(f"--data {path}: not a readable .npz archive ({error})") from None
    if "labels" not in arrays:
        raise ValueError(f"--data {path}: missing the array 'labels'")
    labels = _labels(path, arrays["labels"])
    if "images" in arrays:
        images = np.asarray(arrays["images"])
        if images.dtype.kind not in "biuf":
            raise ValueError(f"--data {path}: images must hold real numbers, got {images.dtype} values")
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"--data {path}: images must be (points, C, H, W) with one label each; got {images.shape} and {labels.shape}")
        images = images / 255.0 if images.dtype == np.uint8 else images
        if not np.all(np.isfinite(images)):
            raise ValueError(f"--data {path}: images hold NaN or infinite values; pixel values must be finite, in [0, 1]")
        if images.size and (images.min() < 0 or images.max() > 1):
            raise ValueError(f"--data {path}: image values must lie in [0, 1]")
        return ImageSet(torch.as_tensor(images, dtype=torch.float32), labels)
    if "edge_index" not in arrays:
        raise ValueError(f"--data {path}: needs 'images' (an image set) or 'edge_index' and features (a graph)")
    if "features" in arrays:
        if np.asarray(arrays["features"]).dtype.kind not in "biuf":
            raise ValueError(f"--data {path}: features must hold real numbers, got {np.asarray(arrays['features']).dtype} values")
        features = torch.as_tensor(np.asarray(arrays["features"]), dtype=torch.float32)
    elif "features_indptr" in arrays:
        shape = np.asarray(arrays.get("features_shape", []))
        if shape.shape != (2,) or shape.dtype.kind not in "iu" or shape.min() < 0 or shape[1] > MAX_FEATURES:
            raise ValueError(f"--data {path}: features_shape must be two integers (N, D) with D <= {MAX_FEATURES}, got {shape.tolist()}")
        try:
            features = torch.sparse_csr_tensor(
                torch.as_tensor(arrays["features_indptr"], dtype=torch.long),
                torch.as_tensor(arrays["features_indices"], dtype=torch.long),
                torch.as_tensor(arrays["features_data"], dtype=torch.float32),
                size=tuple(int(v) for v in arrays["features_shape"]),
                check_invariants=True,
            )
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise ValueError(f"--data {path}: the features_* arrays are not a valid CSR matrix ({str(error).splitlines()[0]})") from None
    else:
        raise ValueError(f"--data {path}: a graph needs 'features' or features_data/indices/indptr/shape")
    if features.dim() != 2 or features.shape[0] != len(labels):
        raise ValueError(f"--data {path}: features must be (N, D) with one label per node; got {tuple(features.shape)} and {labels.shape}")
    values = features.values() if features.layout == torch.sparse_csr else features
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"--data {path}: features hold NaN or infinite values (or values beyond float32); they must be finite")
    _check_edges(path, arrays["edge_index"], len(labels))
    edge_index = torch.as_tensor(np.asarray(arrays["edge_index"]), dtype=torch.long)
    try:  # target node indices, or a boolean mask of length N
        return Graph(features, edge_index, labels, arrays.get("nodes", np.arange(len(labels))))
    except ValueError as error:
        raise ValueError(f"--data {path}: {error}") from None
