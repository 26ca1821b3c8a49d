"""Datasets from plain ``.npz`` arrays (read with ``allow_pickle=False``).

- images: ``images`` (P, C, H, W) with values in [0, 1] (uint8 is divided by 255) and ``labels`` (P,);
- a graph: ``edge_index`` (2, E), ``labels`` (N,), node features either dense ``features`` (N, D) or the CSR
  arrays ``features_data``, ``features_indices``, ``features_indptr``, ``features_shape``; optionally ``nodes``,
  the target nodes to certify (default: all).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


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

    @property
    def points(self) -> int:
        return len(self.nodes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.features.shape)


def load_arrays(path) -> ImageSet | Graph:
    """Read an image set or a graph from ``path`` (see the module docstring for the arrays)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ValueError(f"--data {path}: no such file") from None
    except (zipfile.BadZipFile, EOFError, OSError, AttributeError) as error:
        raise ValueError(f"--data {path}: not a readable .npz archive ({error})") from None
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(f"--data {path}: holds pickled objects; hiersmooth never unpickles files") from None
        raise ValueError(f"--data {path}: not a readable .npz archive ({error})") from None
    if "labels" not in arrays:
        raise ValueError(f"--data {path}: missing the array 'labels'")
    labels = np.asarray(arrays["labels"]).astype(np.int64)
    if "images" in arrays:
        images = np.asarray(arrays["images"])
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"--data {path}: images must be (points, C, H, W) with one label each; got {images.shape} and {labels.shape}")
        images = images / 255.0 if images.dtype == np.uint8 else images
        if images.min() < 0 or images.max() > 1:
            raise ValueError(f"--data {path}: image values must lie in [0, 1]")
        return ImageSet(torch.as_tensor(images, dtype=torch.float32), labels)
    if "edge_index" not in arrays:
        raise ValueError(f"--data {path}: needs 'images' (an image set) or 'edge_index' and features (a graph)")
    if "features" in arrays:
        features = torch.as_tensor(np.asarray(arrays["features"]), dtype=torch.float32)
    elif "features_indptr" in arrays:
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
    edge_index = torch.as_tensor(np.asarray(arrays["edge_index"]), dtype=torch.long)
    nodes = np.asarray(arrays.get("nodes", np.arange(len(labels)))).astype(np.int64)
    return Graph(features, edge_index, labels, nodes)
