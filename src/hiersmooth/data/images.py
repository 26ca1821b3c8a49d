"""Image datasets as :class:`~hiersmooth.inputs.ImageSet` pairs (train, test), pixels in [0, 1].

- ``digits``: scikit-learn's bundled 8×8 digits (1,797 images, 10 classes; values 0..16 divided by 16), split by
  a seeded stratified train/test split; needs no files and no network.
- ``mnist``: the four IDX files (plain or ``.gz``) or Keras' ``mnist.npz`` from a directory; downloaded from the
  usual mirrors (and checked against their MD5 sums) when missing.
- ``cifar10``: the python batches of ``cifar-10-batches-py``; downloaded and safely extracted when missing. The
  batches are pickles, so they are read by :class:`ArrayUnpickler`, which builds numpy arrays and nothing else.

``CHANNEL_STATS`` holds the per-channel (mean, std) that the models in :mod:`hiersmooth.models.images` take as
``normalization``: they normalise inside the model, after the smoothing noise is added in [0, 1] pixel space.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import math
import os
import pickle
import tarfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..checks import check_integer, error_line
from ..inputs import ImageSet

DATASETS = ("digits", "mnist", "cifar10")

CHANNEL_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "digits": ((0.3053,), (0.3760,)),  # computed over all 1,797 images divided by 16
    "mnist": ((0.1307,), (0.3081,)),  # the usual values over the 60,000 training images
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

DEFAULT_ROOT = Path("~/.cache/hiersmooth").expanduser()

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_FILES = {  # IDX file → MD5 of its .gz as served by the mirrors
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"


def load_digits(seed: int = 0, test_fraction: float = 0.25) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 8×8 digits as (P, 1, 8, 8) images in [0, 1], split into (train, test) by a stratified split
    drawn from ``seed``: the same seed gives the same split."""
    from sklearn.datasets import load_digits as sklearn_digits

    check_split(seed, test_fraction)
    digits = sklearn_digits()
    return stratified_split((digits.images / 16.0).astype(np.float32)[:, None], digits.target, seed, test_fraction)


def check_split(seed, test_fraction) -> None:
    """Refuse a split seed that is not an integer >= 0 or a test fraction outside (0, 1), naming the value."""
    check_integer("seed", seed, 0)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction!r}: must be a number strictly between 0 and 1")


def stratified_split(
    images: np.ndarray, labels: np.ndarray, seed: int, test_fraction: float
) -> tuple[ImageSet, ImageSet]:
    """(train, test) of float32 ``images`` in [0, 1] and their ``labels``: scikit-learn's ``train_test_split``
    stratified by label, drawn from ``seed`` (each class keeps its share of the test set, up to rounding)."""
    from sklearn.model_selection import train_test_split

    labels = labels.astype(np.int64)
    train, test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=int(seed), stratify=labels
    )
    return (
        ImageSet(torch.from_numpy(images[train]), labels[train]),
        ImageSet(torch.from_numpy(images[test]), labels[test]),
    )


def load_mnist(root, download: bool = True) -> tuple[ImageSet, ImageSet]:
    """MNIST as (train, test) of (P, 1, 28, 28) images in [0, 1] (uint8 / 255) from directory ``root``: the four IDX
    files (plain or ``.gz``) if all are there, else ``mnist.npz`` (x_train, y_train, x_test, y_test), else — when
    ``download`` — the ``.gz`` IDX files fetched from :data:`MNIST_MIRRORS` into ``root``."""
    root = Path(root).expanduser()
    found = {name: _find_idx(root, name) for name in MNIST_FILES}
    if all(found.values()):
        return _mnist_from_idx(found)
    if (root / "mnist.npz").is_file():
        return _mnist_from_npz(root / "mnist.npz")
    looked_for = f"{', '.join(f'{name}[.gz]' for name in MNIST_FILES)} or mnist.npz"
    if not download:
        raise ValueError(f"load_mnist: no MNIST in {root} (looked for {looked_for}); download=False")
    for name, path in found.items():
        if path is None:
            try:
                found[name] = _download_first(
                    [mirror + name + ".gz" for mirror in MNIST_MIRRORS], root / (name + ".gz"), MNIST_FILES[name]
                )
            except OSError as error:
                raise ValueError(
                    f"load_mnist: no MNIST in {root} (looked for {looked_for}); download failed: {error}"
                ) from None
    return _mnist_from_idx(found)


def load_cifar10(root, download: bool = True) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 as (train, test) of (P, 3, 32, 32) images in [0, 1] (uint8 / 255) from the python batches in
    ``root/cifar-10-batches-py`` (or ``root`` itself when it is that folder); when missing and ``download``, the
    archive is fetched from :data:`CIFAR10_URL`, checked against its MD5 and extracted with tar's 'data' filter.

    Each batch is a pickled dict {b'data': uint8 (P, 3072), b'labels': [P ints]}; a row holds the R, G and B
    planes of 32×32 pixels in row-major order. Batches are read by :class:`ArrayUnpickler` (no code runs)."""
    root = Path(root).expanduser()
    folder = root if root.name == CIFAR10_FOLDER or (root / CIFAR10_TEST).is_file() else root / CIFAR10_FOLDER
    names = (*CIFAR10_TRAIN, CIFAR10_TEST)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing and not download:
        raise ValueError(
            f"load_cifar10: no CIFAR-10 batches in {folder} (missing {', '.join(missing)}); download=False"
        )
    if missing:
        archive = folder.parent / "cifar-10-python.tar.gz"
        try:
            _download_first([CIFAR10_URL], archive, CIFAR10_MD5)
            _extract_cifar10(archive, folder.parent)
        except (OSError, tarfile.TarError) as error:
            raise ValueError(
                f"load_cifar10: no CIFAR-10 batches in {folder} (missing {', '.join(missing)}); "
                f"download failed: {error}"
            ) from None
        archive.unlink()
    train = [_read_cifar_batch(folder / name) for name in CIFAR10_TRAIN]
    return (
        ImageSet(torch.cat([batch.images for batch in train]), np.concatenate([batch.labels for batch in train])),
        _read_cifar_batch(folder / CIFAR10_TEST),
    )


def load_images(name: str, root=None, seed: int = 0, download: bool = True) -> tuple[ImageSet, ImageSet]:
    """(train, test) of dataset ``name`` (one of :data:`DATASETS`). ``root`` (MNIST, CIFAR-10) defaults to
    ``~/.cache/hiersmooth/<name>``; ``seed`` draws the digits split (MNIST and CIFAR-10 have fixed splits); digits
    are bundled with scikit-learn and use neither ``root`` nor ``download``."""
    if name == "digits":
        return load_digits(seed)
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r}: unknown (allowed: {', '.join(DATASETS)})")
    root = DEFAULT_ROOT / name if root is None else root
    return load_mnist(root, download) if name == "mnist" else load_cifar10(root, download)


# --- MNIST -------------------------------------------------------------------------------------------------


def _find_idx(root: Path, name: str) -> Path | None:
    for path in (root / name, root / (name + ".gz")):
        if path.is_file():
            return path
    return None


def read_idx(path, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file (plain or ``.gz``): magic 0x0000 08 ``ndim``, then ``ndim`` big-endian
    uint32 sizes, then the values; a wrong magic number or a size that does not match the file is a ValueError."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable IDX file ({error})") from None
    header = 4 + 4 * ndim
    magic = bytes([0, 0, 0x08, ndim])
    if raw[:4] != magic:
        raise ValueError(
            f"{path}: not an IDX file of {ndim}-d uint8 data (magic {raw[:4].hex()}, expected {magic.hex()})"
        )
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) != header + math.prod(shape):
        raise ValueError(
            f"{path}: IDX header says {shape} = {math.prod(shape)} values, the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _mnist_from_idx(paths: dict[str, Path]) -> tuple[ImageSet, ImageSet]:
    def split(prefix: str) -> ImageSet:
        images, labels = paths[f"{prefix}-images-idx3-ubyte"], paths[f"{prefix}-labels-idx1-ubyte"]
        return _image_set(read_idx(images, 3), read_idx(labels, 1), f"{images} and {labels.name}")

    return split("train"), split("t10k")


def _mnist_from_npz(path: Path) -> tuple[ImageSet, ImageSet]:
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in keys if key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable mnist.npz ({error_line(error)})") from None
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise ValueError(f"{path}: missing the array {', '.join(missing)} (needs {', '.join(keys)})")
    for key, ndim in zip(keys, (3, 1, 3, 1)):
        if arrays[key].dtype != np.uint8 or arrays[key].ndim != ndim:
            raise ValueError(
                f"{path}: {key} must be a {ndim}-d uint8 array, got {arrays[key].ndim}-d {arrays[key].dtype}"
            )
    return (
        _image_set(arrays["x_train"], arrays["y_train"], f"{path} x_train/y_train"),
        _image_set(arrays["x_test"], arrays["y_test"], f"{path} x_test/y_test"),
    )


def _image_set(images: np.ndarray, labels: np.ndarray, source: str) -> ImageSet:
    """uint8 (P, H, W) or (P, C, H, W) images and (P,) labels → an ImageSet with float32 pixels / 255."""
    if len(images) != len(labels):
        raise ValueError(f"{source}: {len(images)} images but {len(labels)} labels")
    if images.ndim == 3:
        images = images[:, None]
    return ImageSet(torch.from_numpy(images.astype(np.float32) / 255.0), labels.astype(np.int64))


# --- CIFAR-10 ----------------------------------------------------------------------------------------------


def _latin1_encode(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: only the latin1 codec."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}: only latin1 text is allowed")
    return codecs.encode(text, "latin1")


_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array reconstructor, wherever this numpy version keeps it
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickled by numpy 1.x (the real CIFAR files)
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickled by numpy 2.x
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class UnsafePickleError(ValueError):
    """A pickle referred to a global outside :class:`ArrayUnpickler`'s allow-list; nothing of it was run."""


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a pickled numpy array needs (``_reconstruct``, ``ndarray``,
    ``dtype`` and, for protocol 2, ``_codecs.encode`` of latin1 text); any other global — a function that a
    malicious file would call — is an :class:`UnsafePickleError` naming the file, raised before anything runs."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.path}: refers to {module}.{name}; a CIFAR-10 batch may hold only numpy arrays, "
                "lists and bytes (hiersmooth never runs code from a data file)"
            ) from None


def _read_cifar_batch(path: Path) -> ImageSet:
    """The images (P, 3, 32, 32) in [0, 1] and labels (P,) of one CIFAR-10 python batch."""
    try:
        with open(path, "rb") as stream:
            batch = ArrayUnpickler(stream, path).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # whatever a damaged pickle makes the unpickler or numpy raise
        raise ValueError(f"{path}: not a readable CIFAR-10 batch ({type(error).__name__}: {error})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 batch (needs a dict with b'data' and b'labels')")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: b'data' must be a uint8 array (P, 3072), got {getattr(data, 'dtype', type(data).__name__)} "
            f"{getattr(data, 'shape', '')}"
        )
    if (
        not isinstance(labels, list)
        or len(labels) != len(data)
        or not all(isinstance(v, int) and 0 <= v < 10 for v in labels)
    ):
        raise ValueError(f"{path}: b'labels' must be a list of {len(data)} class indices in 0..9")
    return _image_set(data.reshape(-1, 3, 32, 32), np.asarray(labels), str(path))


def _extract_cifar10(archive: Path, target: Path) -> None:
    """Extract the regular files under ``cifar-10-batches-py/`` of ``archive`` into ``target`` (tar 'data' filter:
    no absolute paths, no paths leaving ``target``, no links or devices)."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [
            member
            for member in tar.getmembers()
            if member.isfile() and Path(member.name).parts[:1] == (CIFAR10_FOLDER,)
        ]
        tar.extractall(target, members=members, filter="data")


# --- downloads ---------------------------------------------------------------------------------------------


def _download_first(urls: list[str], target: Path, md5: str) -> Path:
    """Download the first of ``urls`` that answers with content of MD5 ``md5`` into ``target`` (written to
    ``target.part`` and renamed, so an interrupted download leaves no partial file); OSError if none does."""
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    failures = []
    for url in urls:
        try:
            digest = hashlib.md5()
            with (
                urllib.request.urlopen(url, timeout=60) as response,
                open(partial, "wb") as out,
                tqdm(
                    total=int(response.headers.get("Content-Length") or 0) or None,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=target.name,
                ) as progress,
            ):
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    progress.update(len(block))
            if digest.hexdigest() != md5:
                raise OSError(f"MD5 {digest.hexdigest()} differs from the expected {md5}")
            os.replace(partial, target)
            return target
        except OSError as error:  # urllib's URLError and HTTPError are OSErrors
            failures.append(f"{url}: {error}")
        finally:
            partial.unlink(missing_ok=True)
    raise OSError("; ".join(failures))
