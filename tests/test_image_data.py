"""Image datasets: digits split, MNIST from IDX / mnist.npz, CIFAR-10 python batches read without running code.

Every file is written here in its real format (IDX headers, Keras npz, pickled CIFAR dicts, the CIFAR tarball)
into tmp_path; downloads are served by a stubbed ``urlopen``, so no test touches the network.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

from hiersmooth.data import images as image_data
from hiersmooth.data.images import CHANNEL_STATS, DATASETS, load_cifar10, load_digits, load_images, load_mnist, read_idx

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0x0000, type 0x08, ndim, big-endian uint32 sizes, the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 5, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }


def write_idx_files(root, arrays, gz) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, key, compressed in zip(MNIST_NAMES, ("x_train", "y_train", "x_test", "y_test"), gz):
        data = idx_bytes(arrays[key])
        (root / (name + ".gz" if compressed else name)).write_bytes(gzip.compress(data) if compressed else data)


def assert_mnist(loaded, arrays) -> None:
    train, test = loaded
    for split, images, labels in ((train, "x_train", "y_train"), (test, "x_test", "y_test")):
        assert split.images.dtype == torch.float32 and split.images.shape == (len(arrays[images]), 1, 28, 28)
        assert torch.equal(split.images[:, 0] * 255, torch.from_numpy(arrays[images].astype(np.float32)))
        assert split.labels.dtype == np.int64 and np.array_equal(split.labels, arrays[labels])


# --- MNIST -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [(False,) * 4, (True,) * 4, (True, False, False, True)])
def test_mnist_idx_files_round_trip(tmp_path, gz):
    arrays = mnist_arrays()
    write_idx_files(tmp_path, arrays, gz)
    assert_mnist(load_mnist(tmp_path, download=False), arrays)


def test_mnist_npz_round_trip(tmp_path):
    arrays = mnist_arrays(1)
    np.savez(tmp_path / "mnist.npz", **arrays)
    assert_mnist(load_mnist(tmp_path, download=False), arrays)
    assert_mnist(load_images("mnist", root=tmp_path, download=False), arrays)


def test_mnist_npz_that_is_not_an_archive_or_lacks_an_array(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match="mnist.npz: not a readable mnist.npz"):
        load_mnist(tmp_path, download=False)
    arrays = mnist_arrays()
    np.savez(tmp_path / "mnist.npz", **{key: value for key, value in arrays.items() if key != "y_test"})
    with pytest.raises(ValueError, match="mnist.npz: missing the array y_test \\(needs x_train"):
        load_mnist(tmp_path, download=False)
    np.savez(tmp_path / "mnist.npz", **{**arrays, "x_test": arrays["x_test"].astype(np.float32)})
    with pytest.raises(ValueError, match="mnist.npz: x_test must be a 3-d uint8 array, got 3-d float32"):
        load_mnist(tmp_path, download=False)


def test_mnist_npz_with_pickled_objects_is_refused(tmp_path):
    arrays = {**mnist_arrays(), "y_test": np.array([1, 2, 3], dtype=object)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(ValueError, match="mnist.npz: not a readable mnist.npz"):
        load_mnist(tmp_path, download=False)


def test_read_idx_is_generic_in_the_image_size(tmp_path):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    (tmp_path / "small").write_bytes(idx_bytes(array))
    assert np.array_equal(read_idx(tmp_path / "small", 3), array)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda data: b"\x00\x00\x08\x01" + data[4:], "not an IDX file of 3-d uint8 data"),  # labels' magic on images
        (lambda data: b"\x00\x00\x0d\x03" + data[4:], "not an IDX file"),  # float data
        (lambda data: data[:-1], "IDX header says"),
        (lambda data: data[:10], "truncated IDX header"),
        (lambda data: data + b"\x00", "IDX header says"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_idx_file_is_a_value_error_naming_it(tmp_path, corrupt, message, gz):
    arrays = mnist_arrays()
    write_idx_files(tmp_path, arrays, (gz,) * 4)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    data = corrupt(idx_bytes(arrays["x_train"]))
    (tmp_path / name).write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=f"{name}: .*{message}"):
        load_mnist(tmp_path, download=False)


def test_broken_gzip_and_mismatched_counts_are_value_errors(tmp_path):
    arrays = mnist_arrays()
    write_idx_files(tmp_path, arrays, (True,) * 4)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: not a readable IDX file"):
        load_mnist(tmp_path, download=False)
    damaged = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8))))
    damaged[15:25] = bytes(10)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: not a readable IDX file"):
        load_mnist(tmp_path, download=False)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4, dtype=np.uint8))))
    with pytest.raises(ValueError, match="3 images but 4 labels"):
        load_mnist(tmp_path, download=False)


def test_missing_mnist_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(ValueError) as error:
        load_mnist(tmp_path / "nowhere", download=False)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message and "download=False" in message
    assert all(name in message for name in MNIST_NAMES) and "mnist.npz" in message


class FakeResponse(io.BytesIO):
    headers = {}


def serve(monkeypatch, files: dict[str, bytes]) -> list[str]:
    """Stub ``urlopen``: the URLs in ``files`` answer with their bytes, others fail; returns the URLs asked for."""
    requested = []

    def urlopen(url, timeout=None):
        requested.append(url)
        if url not in files:
            raise urllib.error.URLError(f"no route to {url}")
        return FakeResponse(files[url])

    monkeypatch.setattr(image_data.urllib.request, "urlopen", urlopen)
    return requested


def test_mnist_download_tries_the_mirrors_checks_md5_and_keeps_present_files(tmp_path, monkeypatch):
    arrays = mnist_arrays(2)
    write_idx_files(tmp_path / "all", arrays, (True,) * 4)
    served = {name + ".gz": (tmp_path / "all" / (name + ".gz")).read_bytes() for name in MNIST_NAMES}
    monkeypatch.setattr(
        image_data, "MNIST_FILES", {name: hashlib.md5(served[name + ".gz"]).hexdigest() for name in MNIST_NAMES}
    )
    root = tmp_path / "root"
    write_idx_files(root, arrays, (False,) * 4)
    (root / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setattr(image_data, "MNIST_MIRRORS", ("https://down.example/broken/", "https://mirror.example/mnist/"))
    requested = serve(monkeypatch, {"https://mirror.example/mnist/" + name: data for name, data in served.items()})
    assert_mnist(load_mnist(root), arrays)
    assert requested == [
        "https://down.example/broken/t10k-labels-idx1-ubyte.gz",
        "https://mirror.example/mnist/t10k-labels-idx1-ubyte.gz",
    ]
    assert sorted(path.name for path in root.iterdir()) == sorted(MNIST_NAMES[:3] + ("t10k-labels-idx1-ubyte.gz",))


def test_mnist_download_failure_is_one_line_naming_dir_files_and_failure(tmp_path, monkeypatch):
    serve(
        monkeypatch, {mirror + name + ".gz": b"tampered" for mirror in image_data.MNIST_MIRRORS for name in MNIST_NAMES}
    )  # wrong MD5 on every mirror
    with pytest.raises(ValueError) as error:
        load_mnist(tmp_path / "data")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "data") in message and "mnist.npz" in message
    assert (
        "download failed" in message and "MD5" in message and "ossci-datasets" in message and "cvdf-datasets" in message
    )
    assert list((tmp_path / "data").iterdir()) == []  # no partial download left behind


# --- CIFAR-10 ----------------------------------------------------------------------------------------------


def cifar_batch(rng, points: int) -> dict:
    """A batch dict laid out like the real ones (keys are bytes as read with encoding='bytes')."""
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in rng.integers(0, 10, points)],
        b"data": rng.integers(0, 256, (points, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(points)],
    }


def write_cifar(folder, protocol: int, seed: int = 0) -> dict[str, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {
        name: cifar_batch(rng, 2 + i)
        for i, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"])
    }
    for name, batch in batches.items():
        with open(folder / name, "wb") as stream:
            pickle.dump(batch, stream, protocol=protocol)
    return batches


def assert_cifar(loaded, batches) -> None:
    train, test = loaded
    train_batches = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    for split, parts in ((train, train_batches), (test, [batches["test_batch"]])):
        data = np.concatenate([part[b"data"] for part in parts])
        assert split.images.dtype == torch.float32 and split.images.shape == (len(data), 3, 32, 32)
        assert np.array_equal(split.labels, sum((part[b"labels"] for part in parts), []))
        assert split.labels.dtype == np.int64
        p, c, y, x = 1, 2, 5, 7  # channel c is the c-th block of 1024 values, row-major within it
        assert split.images[p, c, y, x].item() == np.float32(data[p, c * 1024 + y * 32 + x]) / np.float32(255)
        assert torch.equal(split.images * 255, torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32)))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_cifar_batches_round_trip_from_folder_or_parent(tmp_path, protocol):
    batches = write_cifar(tmp_path / "cifar-10-batches-py", protocol)
    assert_cifar(load_cifar10(tmp_path, download=False), batches)
    assert_cifar(load_cifar10(tmp_path / "cifar-10-batches-py", download=False), batches)
    assert_cifar(load_images("cifar10", root=tmp_path, download=False), batches)


def python2_batch_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled as Python 2 with numpy 1.x wrote the real files (protocol 2): str keys and raw data as
    BINSTRING, the array through numpy.core.multiarray._reconstruct and its dtype state tuple."""

    def string(value: bytes) -> bytes:
        return (b"U" + bytes([len(value)]) if len(value) < 256 else b"T" + struct.pack("<i", len(value))) + value

    def integer(value: int) -> bytes:
        return b"K" + bytes([value]) if value < 256 else b"M" + struct.pack("<H", value)

    dtype = (
        b"cnumpy\ndtype\n"
        + string(b"u1")
        + integer(0)
        + integer(1)
        + b"\x87R("
        + integer(3)
        + string(b"|")
        + b"NNNJ"
        + struct.pack("<i", -1)
        + b"J"
        + struct.pack("<i", -1)
        + integer(0)
        + b"tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + integer(0)
        + b"\x85"
        + string(b"b")
        + b"\x87R("
        + integer(1)
        + integer(data.shape[0])
        + integer(data.shape[1])
        + b"\x86"
        + dtype
        + b"\x89"
        + string(data.tobytes())
        + b"tb"
    )
    items = string(b"data") + array + string(b"labels") + b"](" + b"".join(integer(v) for v in labels) + b"e"
    return b"\x80\x02}(" + items + b"u."


def test_cifar_batches_pickled_by_python2_as_the_real_files_are(tmp_path):
    batches = write_cifar(tmp_path, 4)
    for name, batch in batches.items():
        (tmp_path / name).write_bytes(python2_batch_pickle(batch[b"data"], batch[b"labels"]))
    assert_cifar(load_cifar10(tmp_path, download=False), batches)


class RunsCode:
    """Pickles to ``callable(*args)``: what a malicious file makes an unrestricted unpickler run."""

    def __init__(self, call):
        self.call = call

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("attack", ["system", "exec", "numpy_call"])
def test_malicious_cifar_pickle_is_refused_and_not_run(tmp_path, protocol, attack):
    batches = write_cifar(tmp_path / "cifar-10-batches-py", protocol)
    marker = tmp_path / "pwned"
    payload = {
        "system": RunsCode((os.system, (f"touch {marker}",))),
        "exec": RunsCode((exec, (f"open({str(marker)!r}, 'w').close()",))),
        "numpy_call": RunsCode((np.array, ([RunsCode((os.system, (f"touch {marker}",)))],))),
    }[attack]
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as stream:
        pickle.dump({**batches["data_batch_3"], b"labels": payload}, stream, protocol=protocol)
    with pytest.raises(ValueError, match=r"data_batch_3: refers to .*(system|exec|array).*never runs code") as error:
        load_cifar10(tmp_path, download=False)
    assert "\n" not in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "batch, message",
    [
        ({b"data": np.zeros((2, 3072), dtype=object), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 3072), dtype=np.float32), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 1024), dtype=np.uint8), b"labels": [0, 1]}, r"\(P, 3072\)"),
        ({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0]}, "list of 2 class indices"),
        ({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 10]}, "class indices in 0..9"),
        ({b"images": np.zeros((2, 3072), dtype=np.uint8)}, "needs a dict with b'data' and b'labels'"),
        ([1, 2, 3], "needs a dict"),
    ],
)
def test_wrong_cifar_batch_contents_are_value_errors(tmp_path, batch, message):
    write_cifar(tmp_path, 2)
    with open(tmp_path / "test_batch", "wb") as stream:
        pickle.dump(batch, stream, protocol=2)
    with pytest.raises(ValueError, match=f"test_batch: .*{message}"):
        load_cifar10(tmp_path, download=False)


RECONSTRUCT = np.empty(0).__reduce__()[0]


@pytest.mark.parametrize(
    "data, message",
    [
        (
            RunsCode((RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (2, 3072), np.dtype(np.uint8), False, b"short"))),
            "ValueError",
        ),
        (RunsCode((codecs.encode, ("abc", "rot13"))), "only latin1"),
    ],
)
def test_damaged_array_in_a_cifar_batch_is_a_value_error_naming_the_file(tmp_path, data, message):
    write_cifar(tmp_path, 2)
    with open(tmp_path / "data_batch_2", "wb") as stream:
        pickle.dump({b"data": data, b"labels": [0, 1]}, stream, protocol=2)
    with pytest.raises(ValueError, match=f"data_batch_2: not a readable CIFAR-10 batch .*{message}"):
        load_cifar10(tmp_path, download=False)


def test_truncated_cifar_batch_and_missing_folder_are_value_errors(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py", 2)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_5"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="data_batch_5: not a readable CIFAR-10 batch"):
        load_cifar10(tmp_path, download=False)
    with pytest.raises(ValueError) as error:
        load_cifar10(tmp_path / "empty", download=False)
    assert str(tmp_path / "empty" / "cifar-10-batches-py") in str(error.value) and "test_batch" in str(error.value)
    assert "download=False" in str(error.value) and "\n" not in str(error.value)


def cifar_tarball(batches_folder, escape: bool) -> bytes:
    """The batches packed like cifar-10-python.tar.gz, plus a symbolic link and a file beside the folder (neither
    is extracted) and, with ``escape``, a member whose path leaves the destination."""
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w:gz") as tar:
        tar.add(batches_folder, arcname="cifar-10-batches-py")
        link = tarfile.TarInfo("cifar-10-batches-py/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        for name in ["readme.html"] + ["cifar-10-batches-py/../../escaped"] * escape:
            member = tarfile.TarInfo(name)
            member.size = 4
            tar.addfile(member, io.BytesIO(b"evil"))
    return stream.getvalue()


def test_cifar_download_checks_md5_and_extracts_only_the_batches(tmp_path, monkeypatch):
    batches = write_cifar(tmp_path / "source" / "cifar-10-batches-py", 4)
    archive = cifar_tarball(tmp_path / "source" / "cifar-10-batches-py", escape=False)
    serve(monkeypatch, {image_data.CIFAR10_URL: archive})
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=f"no CIFAR-10 batches in {root}.*download failed: .*MD5"):
        load_cifar10(root)
    monkeypatch.setattr(image_data, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    assert_cifar(load_cifar10(root), batches)
    assert sorted(path.name for path in root.iterdir()) == ["cifar-10-batches-py"]  # the archive is removed
    assert sorted(path.name for path in (root / "cifar-10-batches-py").iterdir()) == sorted(batches)


def test_cifar_archive_with_a_path_leaving_the_destination_is_refused(tmp_path, monkeypatch):
    write_cifar(tmp_path / "source" / "cifar-10-batches-py", 4)
    archive = cifar_tarball(tmp_path / "source" / "cifar-10-batches-py", escape=True)
    serve(monkeypatch, {image_data.CIFAR10_URL: archive})
    monkeypatch.setattr(image_data, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    root = tmp_path / "deep" / "root"
    with pytest.raises(ValueError, match="download failed: .*escaped.*outside the destination"):
        load_cifar10(root)
    assert not (tmp_path / "deep" / "escaped").exists() and not (tmp_path / "escaped").exists()


# --- digits and the dispatcher -----------------------------------------------------------------------------


def test_digits_shapes_range_and_partition():
    train, test = load_digits(seed=3)
    full = sklearn_digits()
    assert train.images.dtype == test.images.dtype == torch.float32
    assert train.images.shape[1:] == test.images.shape[1:] == (1, 8, 8)
    assert train.points + test.points == 1797 and test.points == 450
    for split in (train, test):
        assert split.images.min() >= 0 and split.images.max() <= 1 and split.labels.dtype == np.int64

    # train ∪ test is exactly the data set, each image once: the split is disjoint and complete
    def rows(images, labels):
        return Counter(
            zip(map(bytes, (np.asarray(images).reshape(len(labels), -1) * 16).round().astype(np.uint8)), labels)
        )

    assert rows(train.images, train.labels) + rows(test.images, test.labels) == rows(full.images / 16, full.target)
    # stratified: each class has its share of the test set, up to rounding
    for label in range(10):
        share = 0.25 * np.sum(full.target == label)
        assert abs(np.sum(test.labels == label) - share) <= 1


def test_digits_split_is_reproducible_by_seed():
    first, second, other = load_digits(seed=7)[1], load_digits(seed=7)[1], load_digits(seed=8)[1]
    assert torch.equal(first.images, second.images) and np.array_equal(first.labels, second.labels)
    assert not torch.equal(first.images, other.images)
    train, test = load_images("digits", seed=7)
    assert torch.equal(test.images, first.images) and train.points == 1347
    assert load_digits(seed=0, test_fraction=0.5)[1].points in (898, 899)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": -1}, "seed=-1"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"seed": True}, "seed=True"),
        ({"test_fraction": 0}, "test_fraction=0"),
        ({"test_fraction": 1.0}, "test_fraction=1.0"),
        ({"test_fraction": "0.2"}, "test_fraction='0.2'"),
    ],
)
def test_digits_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_digits(**kwargs)


def test_unknown_dataset_names_the_allowed_ones():
    with pytest.raises(ValueError, match="dataset 'imagenet': unknown \\(allowed: digits, mnist, cifar10\\)"):
        load_images("imagenet")


def test_channel_stats_cover_every_dataset_and_match_digits():
    assert set(CHANNEL_STATS) == set(DATASETS)
    assert [len(CHANNEL_STATS[name][0]) for name in DATASETS] == [1, 1, 3]
    images = sklearn_digits().images / 16
    mean, std = CHANNEL_STATS["digits"]
    assert mean[0] == pytest.approx(images.mean(), abs=1e-4) and std[0] == pytest.approx(images.std(), abs=1e-4)
