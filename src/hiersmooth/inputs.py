"""What a certification runs on: image sets, point clouds and graphs — from the objects a user has
(:func:`as_dataset`: tensors, arrays, a ``Dataset``, a PyG ``Data``) or from plain ``.npz`` arrays
(:func:`load_arrays`, read with ``allow_pickle=False``), each checked the same way:

- images: ``images`` (P, C, H, W) with values in [0, 1] (uint8 is divided by 255) and ``labels`` (P,);
- point clouds: ``points`` (P, N, d), P clouds of N points in R^d with finite coordinates, and ``labels`` (P,);
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

from .certify.votes import not_loadable, read_npz_arrays
from .checks import error_line


def node_indices(nodes, entities: int, name: str = "nodes") -> np.ndarray:
    """The target nodes as int64 indices: integer indices as given, or the ``True`` entries of a boolean mask.

    Parameters
    ----------
    nodes : array-like or torch.Tensor
        Integer node indices in [0, entities), or a boolean mask of length ``entities`` (PyG's ``data.test_mask``).
    entities : int
        The number of nodes N of the graph.
    name : str, default "nodes"
        The parameter named in errors.

    Returns
    -------
    numpy.ndarray
        (M,) int64 node indices (M ≥ 1), distinct. Any other dtype, no node, a mask of another length, an index out
        of range or a repeated index is refused with a one-line ``ValueError``.
    """
    array = nodes.detach().cpu().numpy() if isinstance(nodes, torch.Tensor) else np.asarray(nodes)
    if array.size == 0:
        raise ValueError(f"{name}: no target nodes; give node indices in [0, {entities - 1}] or a boolean mask")
    if array.dtype == np.bool_:
        if array.ndim != 1 or len(array) != entities:
            raise ValueError(
                f"{name}: a boolean mask must have one entry per node, length {entities}; got length "
                f"{array.shape[0] if array.ndim == 1 else tuple(array.shape)}"
            )
        array = np.flatnonzero(array)
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64).reshape(-1)
    else:
        raise ValueError(
            f"{name}: must be integer node indices or a boolean mask of length {entities}, got dtype {array.dtype}"
        )
    if array.size == 0:
        raise ValueError(f"{name}: the boolean mask selects no node; give at least one target node")
    if array.min() < 0 or array.max() >= entities:
        raise ValueError(f"{name}: must be a non-empty list of node indices in [0, {entities - 1}] (or a boolean mask)")
    values, counts = np.unique(array, return_counts=True)
    if counts.max() > 1:
        raise ValueError(
            f"{name}: node {values[counts.argmax()]} is given {counts.max()} times; each target node is one point "
            "(a repeated one would count twice in the certified accuracy)"
        )
    return array


@dataclass
class ImageSet:
    """Inputs certified one at a time, each one point of the seed plan: ``images`` (P, C, H, W) and ``labels``."""

    images: torch.Tensor
    labels: np.ndarray

    @property
    def points(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])


class PointCloudSet(ImageSet):
    """P point clouds of N points in R^d, held as a float32 (P, N, d) tensor in ``images``, with their labels.

    A cloud is an (N, d) matrix whose rows (entities) are its points (SPEC.md §1): selection, noise, the indicator
    and the certificates apply to it as to any feature matrix, and each cloud is one point of the seed plan, as an
    image is. Built from anything ``torch.as_tensor`` takes; the shape, finite coordinates and one label per
    cloud are checked (a one-line ValueError otherwise)."""

    def __init__(self, points, labels):
        labels = _labels("point clouds", _array(labels))
        clouds = _array(points)
        if clouds.dtype.kind not in "biuf":
            raise ValueError(f"point clouds: coordinates must be real numbers, got {clouds.dtype} values")
        if clouds.ndim != 3 or len(clouds) != len(labels) or 0 in clouds.shape[1:]:
            raise ValueError(
                f"point clouds: must be (clouds, points, dimensions) with one label per cloud; got "
                f"{clouds.shape} and {labels.shape}"
            )
        clouds = torch.as_tensor(clouds, dtype=torch.float32)
        if not bool(torch.isfinite(clouds).all()):
            raise ValueError("point clouds: coordinates hold NaN or infinite values (or values beyond float32)")
        super().__init__(clouds, labels)

    @property
    def clouds(self) -> torch.Tensor:
        """The (P, N, d) coordinates."""
        return self.images


@dataclass
class Graph:
    features: torch.Tensor
    edge_index: torch.Tensor
    labels: np.ndarray
    nodes: np.ndarray

    def __post_init__(self):
        """``nodes`` as int64 indices: integer indices as given, a boolean mask of length N as its True entries."""
        self.nodes = node_indices(self.nodes, self.features.shape[0])

    @property
    def points(self) -> int:
        return len(self.nodes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.features.shape)


MAX_CLASSES = 100_000  # a label names a class; the votes and the model's output are that wide
MAX_FEATURES = 10**7  # columns of a sparse feature matrix (the model's input width)


def _labels(where: str, value) -> np.ndarray:
    """Integer class labels (-1: unknown) below ``MAX_CLASSES``; fractions, NaN and huge values are refused, never
    cast."""
    labels = np.asarray(value)
    if labels.ndim != 1:
        raise ValueError(f"{where}: labels must be a 1-d array (one per point), got shape {labels.shape}")
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.float64)
    elif labels.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: labels must be integer class indices, got {labels.dtype} values"
            + (" that are not whole numbers" if labels.dtype.kind == "f" else "")
        )
    if labels.size and (labels.min() < -1 or labels.max() >= MAX_CLASSES):
        bad = labels.min() if labels.min() < -1 else labels.max()
        raise ValueError(
            f"{where}: labels must be class indices in [0, {MAX_CLASSES - 1}] (or -1: unknown), found {bad:g}"
        )
    return labels.astype(np.int64)


def _check_edges(where: str, value, nodes: int) -> None:
    """``edge_index`` must be (2, E) integers naming nodes 0..N-1."""
    edges = np.asarray(value)
    if edges.ndim != 2 or edges.shape[0] != 2 or edges.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: edge_index must be a (2, E) integer array, got shape {edges.shape} of {edges.dtype}"
        )
    if edges.size and (edges.min() < 0 or edges.max() >= nodes):
        bad = edges.min() if edges.min() < 0 else edges.max()
        raise ValueError(f"{where}: edge_index names node {bad}; the graph has nodes 0..{nodes - 1}")


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
            raise ValueError(f"--data {path}: {not_loadable(path)}") from None
        if str(error).startswith(f"--data {path}:"):
            raise
        raise ValueError(f"--data {path}: not a readable .npz archive ({error})") from None
    return dataset_from_arrays(arrays, f"--data {path}")


def dataset_from_arrays(arrays: dict, where: str) -> ImageSet | Graph:
    """An image set (``images``, ``labels``) or a graph (``edge_index``, ``features`` or its CSR arrays, ``labels``,
    optional ``nodes``) from arrays, each checked; errors start with ``where``."""
    if "labels" not in arrays:
        raise ValueError(f"{where}: missing the array 'labels'")
    labels = _labels(where, arrays["labels"])
    if "images" in arrays:
        return ImageSet(_images(where, arrays["images"], labels), labels)
    if "points" in arrays:
        try:
            return PointCloudSet(arrays["points"], labels)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    if "edge_index" not in arrays:
        raise ValueError(
            f"{where}: needs 'images' (an image set), 'points' (point clouds) or 'edge_index' and features (a graph)"
        )
    if "features" in arrays:
        features = arrays["features"]
    elif "features_indptr" in arrays:
        shape = np.asarray(arrays.get("features_shape", []))
        if shape.shape != (2,) or shape.dtype.kind not in "iu" or shape.min() < 0 or shape[1] > MAX_FEATURES:
            raise ValueError(
                f"{where}: features_shape must be two integers (N, D) with D <= {MAX_FEATURES}, got {shape.tolist()}"
            )
        try:
            features = torch.sparse_csr_tensor(
                torch.as_tensor(arrays["features_indptr"], dtype=torch.long),
                torch.as_tensor(arrays["features_indices"], dtype=torch.long),
                torch.as_tensor(arrays["features_data"], dtype=torch.float32),
                size=tuple(int(v) for v in arrays["features_shape"]),
                check_invariants=True,
            )
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise ValueError(
                f"{where}: the features_* arrays are not a valid CSR matrix ({error_line(error)})"
            ) from None
    else:
        raise ValueError(f"{where}: a graph needs 'features' or features_data/indices/indptr/shape")
    return _graph(where, features, arrays["edge_index"], labels, arrays.get("nodes"))


def _images(where: str, images, labels: np.ndarray) -> torch.Tensor:
    """(P, C, H, W) float32 pixel values in [0, 1] (uint8 divided by 255), one per label."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if images.dtype.kind not in "biuf":
        raise ValueError(f"{where}: images must hold real numbers, got {images.dtype} values")
    if images.ndim != 4 or len(images) != len(labels):
        hint = " (point clouds (P, N, d): a PointCloudSet, or 'points' in a --data file)" if images.ndim == 3 else ""
        raise ValueError(
            f"{where}: images must be (points, C, H, W) with one label each; got {images.shape} and "
            f"{labels.shape}{hint}"
        )
    images = images / 255.0 if images.dtype == np.uint8 else images
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{where}: images hold NaN or infinite values; pixel values must be finite, in [0, 1]")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"{where}: image values must lie in [0, 1]")
    return torch.as_tensor(images, dtype=torch.float32)


def _graph(where: str, features, edge_index, labels: np.ndarray, nodes) -> Graph:
    """A graph of (N, D) finite features (dense, or sparse CSR), (2, E) edges, N labels and target ``nodes``."""
    if isinstance(features, torch.Tensor) and features.layout == torch.sparse_coo:
        features = features.to_sparse_csr()
    if not (isinstance(features, torch.Tensor) and features.layout == torch.sparse_csr):
        array = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{where}: features must hold real numbers, got {array.dtype} values")
        features = torch.as_tensor(array, dtype=torch.float32)
    elif features.dtype != torch.float32:
        features = features.to(torch.float32)
    if features.dim() != 2 or features.shape[0] != len(labels):
        raise ValueError(
            f"{where}: features must be (N, D) with one label per node; got {tuple(features.shape)} and {labels.shape}"
        )
    values = features.values() if features.layout == torch.sparse_csr else features
    if not bool(torch.isfinite(values).all()):
        raise ValueError(
            f"{where}: features hold NaN or infinite values (or values beyond float32); they must be finite"
        )
    edges = edge_index.detach().cpu().numpy() if isinstance(edge_index, torch.Tensor) else np.asarray(edge_index)
    _check_edges(where, edges, len(labels))
    edge_index = torch.as_tensor(edges, dtype=torch.long)
    try:  # target node indices, or a boolean mask of length N
        return Graph(features, edge_index, labels, np.arange(len(labels)) if nodes is None else nodes)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def as_dataset(data, *, labels=None, edge_index=None, nodes=None) -> ImageSet | Graph:
    """The objects a user already has, as the :class:`ImageSet` or :class:`Graph` a certification runs on.

    ``data`` is an :class:`ImageSet` / :class:`Graph`; an image tensor or array (P, C, H, W) with values in
    [0, 1]; a ``torch.utils.data.Dataset`` of (image, label) pairs; a PyTorch Geometric ``Data`` graph
    (``x``, ``edge_index``, ``y``; its ``test_mask`` gives the target nodes unless ``nodes`` does); or node
    features (N, D), dense or sparse, with ``edge_index``. ``labels`` (one per image or node; −1 = unknown,
    the default) and ``nodes`` (indices or a boolean mask) complete what ``data`` lacks. Everything is checked
    as a ``--data`` file is (finite values, pixel range, edge ends, label range)."""
    if isinstance(data, (str, bytes, Path)):
        raise ValueError(
            f"data: must be images (P, C, H, W), a Dataset, a PyG Data graph or node features, got "
            f"{type(data).__name__}; read a --data file with hiersmooth.inputs.load_arrays"
        )
    if isinstance(data, (ImageSet, Graph)):
        if labels is not None or edge_index is not None or (nodes is not None and isinstance(data, ImageSet)):
            raise ValueError(
                "data: an ImageSet or Graph carries its own labels and edges; give labels/edge_index only with raw "
                "arrays"
            )
        return data if nodes is None else Graph(data.features, data.edge_index, data.labels, nodes)
    if _is_pyg_graph(data):
        if edge_index is not None:
            raise ValueError("data: a PyG Data graph carries its edge_index; do not pass edge_index as well")
        features, edge_index = data.x, data.edge_index
        labels = data.y if labels is None else labels
        if nodes is None:
            nodes = getattr(data, "test_mask", None)
        if features is None or labels is None:
            raise ValueError("data: a PyG Data graph needs x (node features) and y (labels, or pass labels=)")
        return _graph("data", features, edge_index, _labels("labels", _array(labels)), nodes)
    if edge_index is not None:
        count = data.shape[0] if hasattr(data, "shape") and len(data.shape) else 0
        labels = np.full(count, -1) if labels is None else labels
        return _graph("data", data, edge_index, _labels("labels", _array(labels)), nodes)
    if nodes is not None:
        raise ValueError("nodes: target nodes need a graph (a PyG Data, or features with edge_index)")
    if isinstance(data, (torch.Tensor, np.ndarray)):
        count = data.shape[0] if data.ndim else 0
        labels = np.full(count, -1) if labels is None else labels
        labels = _labels("labels", _array(labels))
        return ImageSet(_images("data", data, labels), labels)
    if isinstance(data, torch.utils.data.Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return _from_pairs(data, labels)
    raise ValueError(
        f"data: must be images (P, C, H, W), a Dataset of (image, label) pairs, a PyG Data graph or node "
        f"features with edge_index; got {type(data).__name__}"
    )


def _array(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _is_pyg_graph(data) -> bool:
    """A PyTorch Geometric ``Data`` object (recognised without importing PyG)."""
    return any(cls.__module__.startswith("torch_geometric") and cls.__name__ == "Data" for cls in type(data).__mro__)


def _from_pairs(dataset, labels) -> ImageSet:
    """Stack a dataset of (image, label) pairs (or images alone, with ``labels``)."""
    images, found = [], []
    for index in range(len(dataset)):
        item = dataset[index]
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError(f"data[{index}]: a Dataset must yield (image, label) pairs, got {len(item)} items")
            image, label = item
            label = _array(label)
            if label.size != 1:
                raise ValueError(f"data[{index}]: the label must be one class index, got shape {label.shape}")
            found.append(label.reshape(-1)[0])
        else:
            image = item
        images.append(_array(image))
    if not images:
        raise ValueError("data: the Dataset is empty")
    if labels is None:
        labels = found if len(found) == len(images) else np.full(len(images), -1)
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(
            f"data: the Dataset's images differ in shape ({', '.join(map(str, sorted(shapes)[:3]))}); they must agree"
        )
    labels = _labels("labels", _array(labels))
    return ImageSet(_images("data", np.stack(images), labels), labels)
