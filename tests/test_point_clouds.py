"""Point clouds (SPEC.md §1): MNIST digits as clouds of points drawn from their lit pixels, ModelNet40's HDF5
files, PointNet (shapes, permutation invariance, ablated points left out of the pooling, learning), the sampler
on (N, d) clouds, each cloud one point of the seed plan, and a tiny ``hiersmooth run`` end to end."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy import stats

from hiersmooth import SmoothedClassifier, from_config
from hiersmooth.cli import main
from hiersmooth.data.datasets import load_dataset
from hiersmooth.data.mnist_5k import load_mnist_5k
from hiersmooth.data.point_clouds import LIT, image_points, load_mnist_points, load_modelnet40
from hiersmooth.experiments.grid import load_experiment
from hiersmooth.inputs import PointCloudSet, as_dataset, load_arrays
from hiersmooth.models.factory import named_model
from hiersmooth.models.point_clouds import PointNet
from hiersmooth.run_config import load_run_config

REPOSITORY = Path(__file__).resolve().parents[1]
HIERARCHICAL = {
    "selection": {"kind": "bernoulli", "p": 0.8},
    "noise": {"kind": "gaussian", "sigma": 0.25},
    "indicator": True,
}
ABLATION = {"selection": {"kind": "bernoulli", "p": 0.5}, "noise": {"kind": "ablation"}, "indicator": True}


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: one intra-op thread (conftest.py)


@pytest.fixture(scope="module")
def mnist_points():
    return load_mnist_points(seed=0)


def pixels_of(points: np.ndarray, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each point (x, y) = (column, side − 1 − row) / (side − 1), computed back from the definition."""
    columns = np.rint(points[..., 0] * (side - 1)).astype(int)
    rows = side - 1 - np.rint(points[..., 1] * (side - 1)).astype(int)
    return rows, columns


# ----------------------------------------------------------------------------------------------------------------
# mnist_points


def test_mnist_points_come_from_lit_pixels_of_the_same_image(mnist_points):
    train, test = mnist_points
    images = load_mnist_5k(seed=0)
    assert train.clouds.shape == (4000, 128, 2) and test.clouds.shape == (1000, 128, 2)
    assert train.input_shape == (128, 2) and train.clouds.dtype == torch.float32
    for clouds, source in zip((train, test), images):
        assert np.array_equal(clouds.labels, source.labels)  # the clouds keep the images' split and labels
        points = clouds.clouds.numpy()
        assert points.min() >= 0 and points.max() <= 1
        rows, columns = pixels_of(points)
        np.testing.assert_allclose(points[..., 0], columns / 27, atol=1e-6)  # on the pixel grid
        intensity = source.images[:, 0].numpy()[np.arange(len(points))[:, None], rows, columns]
        assert np.all(intensity > LIT), "every point is a lit pixel of its own image"
        lit = (source.images[:, 0].numpy() > LIT).reshape(len(points), -1).sum(1)
        distinct = np.array([len(set(zip(r, c))) for r, c in zip(rows, columns)])
        assert np.all(distinct[lit >= 128] == 128), "images with enough lit pixels give 128 distinct ones"
        assert np.all(distinct <= np.minimum(lit, 128))
        assert np.all(distinct[lit < 128] > 0.4 * lit[lit < 128]), "with replacement, most lit pixels appear"


def test_mnist_points_are_determined_by_the_seed(mnist_points):
    again = load_mnist_points(seed=0)
    assert torch.equal(again[1].clouds, mnist_points[1].clouds)
    other = load_mnist_points(seed=1)[1]
    same = np.array_equal(other.labels, mnist_points[1].labels) and torch.equal(other.clouds, mnist_points[1].clouds)
    assert not same, "another seed gives another split or other points"
    fewer = load_mnist_points(points=16, seed=0)[1]
    assert fewer.clouds.shape == (1000, 16, 2)


def test_image_points_sample_uniformly_with_and_without_replacement():
    image = np.zeros((1, 5, 5))
    image[0, 1, 1:4] = 0.9  # three lit pixels, one at 0.5 exactly (not lit), the rest dark
    image[0, 3, 3] = 0.5
    generator = np.random.default_rng(0)
    points = image_points(np.repeat(image, 2000, axis=0), 30, generator)  # 30 > 3: with replacement
    rows, columns = pixels_of(points, 5)
    assert np.all(rows == 1) and set(columns.ravel()) == {1, 2, 3}
    counts = np.bincount(columns.ravel(), minlength=4)[1:]
    assert stats.chisquare(counts).pvalue > 1e-6, f"lit pixels drawn uniformly: {counts}"
    two = image_points(np.repeat(image, 3000, axis=0), 2, np.random.default_rng(1))  # 2 <= 3: without replacement
    rows, columns = pixels_of(two, 5)
    assert np.all(columns[:, 0] != columns[:, 1])
    pairs = np.bincount(np.sort(columns, axis=1) @ [4, 1], minlength=16)[[6, 7, 11]]  # {1,2}, {1,3}, {2,3}
    assert stats.chisquare(pairs).pvalue > 1e-6, f"every pair of lit pixels equally likely: {pairs}"
    dark = np.zeros((1, 4, 4))
    dark[0, 2, 0] = 0.3  # no lit pixel: the brightest one
    rows, columns = pixels_of(image_points(dark, 5, np.random.default_rng(0)), 4)
    assert np.all(rows == 2) and np.all(columns == 0)


def test_mnist_points_from_full_mnist_when_a_root_is_given(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": (rng.random((6, 28, 28)) > 0.7).astype(np.uint8) * 255,
        "y_train": np.arange(6, dtype=np.uint8),
        "x_test": (rng.random((3, 28, 28)) > 0.7).astype(np.uint8) * 200,
        "y_test": np.arange(3, dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    split = load_dataset("mnist_points", root=tmp_path, download=False)
    train, test = split.train, split.test
    assert train.clouds.shape == (6, 128, 2) and test.clouds.shape == (3, 128, 2)
    assert test.labels.tolist() == [0, 1, 2]
    rows, columns = pixels_of(test.clouds.numpy())
    assert np.all(arrays["x_test"][np.arange(3)[:, None], rows, columns] == 200)


# ----------------------------------------------------------------------------------------------------------------
# ModelNet40's HDF5 files


def write_h5(path: Path, data, label) -> None:
    import h5py

    with h5py.File(path, "w") as file:
        if data is not None:
            file.create_dataset("data", data=data)
        if label is not None:
            file.create_dataset("label", data=label)


def test_modelnet40_reads_the_hdf5_files_in_numerical_order(tmp_path):
    folder = tmp_path / "modelnet40_ply_hdf5_2048"
    folder.mkdir()
    rng = np.random.default_rng(0)
    parts = {
        name: (rng.normal(size=(count, 10, 3)).astype(np.float32), rng.integers(0, 40, (count, 1)).astype(np.uint8))
        for name, count in (("train2", 3), ("train10", 2), ("test0", 4))
    }
    for name, (data, label) in parts.items():
        write_h5(folder / f"ply_data_{name}.h5", data, label)
    (folder / "shape_names.txt").write_text("airplane\n")
    train, test = load_modelnet40(tmp_path)
    assert torch.equal(train.clouds, torch.from_numpy(np.concatenate([parts["train2"][0], parts["train10"][0]])))
    assert train.labels.tolist() == np.concatenate([parts["train2"][1], parts["train10"][1]]).ravel().tolist()
    assert torch.equal(test.clouds, torch.from_numpy(parts["test0"][0])) and test.labels.dtype == np.int64
    first = load_modelnet40(folder, points=4)[1]  # the folder itself works too
    assert torch.equal(first.clouds, torch.from_numpy(parts["test0"][0][:, :4]))
    split = load_dataset("modelnet40", root=tmp_path)
    assert split.input_shape == (10, 3) and split.num_classes == max(train.labels.max(), test.labels.max()) + 1


@pytest.mark.parametrize(
    "files, message",
    [
        ({}, r"no HDF5 files in .*looked for ply_data_train\*\.h5 and ply_data_test\*\.h5.*does not download"),
        (
            {"train0": (np.zeros((2, 5, 3)), None), "test0": (np.zeros((2, 5, 3)), np.zeros(2, int))},
            r"train0.h5: missing the dataset label",
        ),
        (
            {"train0": (np.zeros((2, 5)), np.zeros(2, int)), "test0": (np.zeros((2, 5, 3)), np.zeros(2, int))},
            r"train0.h5: data must be a real \(clouds, points, dimensions\) array",
        ),
        (
            {"train0": (np.zeros((2, 5, 3)), np.zeros(3, int)), "test0": (np.zeros((2, 5, 3)), np.zeros(2, int))},
            r"train0.h5: label must hold one integer class per cloud",
        ),
        (
            {
                "train0": (np.zeros((2, 5, 3)), np.zeros(2, int)),
                "test0": (np.full((2, 5, 3), np.nan), np.zeros(2, int)),
            },
            r"point clouds: coordinates hold NaN",
        ),
    ],
)
def test_bad_modelnet40_files_fail_with_one_line(tmp_path, files, message):
    for name, (data, label) in files.items():
        write_h5(tmp_path / f"ply_data_{name}.h5", data, label)
    with pytest.raises(ValueError, match=message) as error:
        load_modelnet40(tmp_path)
    assert "\n" not in str(error.value)


def test_modelnet40_without_h5py_names_the_extra(tmp_path, monkeypatch):
    write_h5(tmp_path / "ply_data_train0.h5", np.zeros((1, 2, 3)), np.zeros(1, int))
    write_h5(tmp_path / "ply_data_test0.h5", np.zeros((1, 2, 3)), np.zeros(1, int))
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(ValueError, match=r"needs h5py; pip install hiersmooth\[pointclouds\]"):
        load_modelnet40(tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# point clouds as data


def test_point_cloud_sets_are_checked_and_read_from_npz(tmp_path):
    clouds = np.random.default_rng(0).normal(size=(4, 6, 3))
    np.savez(tmp_path / "clouds.npz", points=clouds, labels=np.arange(4))
    loaded = load_arrays(tmp_path / "clouds.npz")
    assert isinstance(loaded, PointCloudSet) and loaded.input_shape == (6, 3) and loaded.points == 4
    assert as_dataset(loaded) is loaded
    for points, labels, message in [
        (clouds[0], np.arange(4), r"must be \(clouds, points, dimensions\)"),
        (clouds, np.arange(3), "one label per cloud"),
        (np.full((2, 3, 2), np.inf), [0, 1], "NaN or infinite"),
        (clouds.astype(str), np.arange(4), "must be real numbers"),
    ]:
        with pytest.raises(ValueError, match=message):
            PointCloudSet(points, labels)
    np.savez(tmp_path / "bad.npz", points=clouds[0], labels=np.arange(6))
    with pytest.raises(ValueError, match=r"--data .*bad.npz: point clouds: must be"):
        load_arrays(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match=r"a PointCloudSet, or 'points' in a --data file"):
        as_dataset(torch.rand(4, 6, 3))


# ----------------------------------------------------------------------------------------------------------------
# PointNet


@pytest.mark.parametrize("features", [2, 3, 4])
def test_pointnet_shapes_and_permutation_invariance(features):
    model = PointNet(features, 7, widths=[8, 16], hidden=8).eval()
    z = torch.rand(5, 20, features)
    logits = model(z)
    assert logits.shape == (5, 7)
    torch.testing.assert_close(model(z[:, torch.randperm(20)]), logits)
    with pytest.raises(ValueError, match=rf"PointNet: input must be \(batch, points, {features}\)"):
        model(torch.rand(5, 20, features + 1))


def test_pointnet_leaves_ablated_points_out_of_the_pooling():
    model = PointNet(3, 4, widths=[8, 16], hidden=8, mask_selected=True).eval()
    z = torch.rand(6, 30, 3)
    z[..., -1] = (torch.rand(6, 30) < 0.5).float()
    z[0, :, -1] = 0  # nothing ablated in the first cloud
    changed = z.clone()
    changed[..., :2] = torch.where(z[..., -1:] > 0, torch.randn(6, 30, 2) * 100, z[..., :2])  # ablated points anywhere
    torch.testing.assert_close(model(changed), model(z))
    for k in range(6):  # the output is the model's on the kept points alone
        kept = z[k][z[k, :, -1] == 0][None]
        torch.testing.assert_close(model(kept), model(z[k : k + 1]))
    plain = PointNet(3, 4, widths=[8, 16], hidden=8).eval()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(changed), plain(z)), "without masking the ablated points' values matter"


def test_factory_builds_pointnet_for_each_smoothing():
    smoothing = from_config(ABLATION)
    model = named_model("pointnet", {"widths": [8]}, 3, 10, data="mnist_points", smoothing=smoothing)
    assert model.mask_selected and model.in_features == 3
    hierarchical = named_model("pointnet", {}, 3, 10, data="mnist_points", smoothing=from_config(HIERARCHICAL))
    assert not hierarchical.mask_selected
    levine_feizi = {**ABLATION, "noise": {"kind": "ablation", "encoding": "levine_feizi"}}
    for config, message in [
        ({**ABLATION, "indicator": False}, "ablation of points needs encoding: token and"),
        (levine_feizi, "needs encoding: token"),
    ]:
        with pytest.raises(ValueError, match=message):
            named_model("pointnet", {}, 3, 10, data="mnist_points", smoothing=from_config(config))
    for options, message in [
        ({"depth": 3}, r"unknown option depth for pointnet \(allowed: hidden, widths\)"),
        ({"widths": []}, r"model.widths=\[\]: must be a list of one or more integers"),
        ({"hidden": 0}, r"model.hidden=0: must be an integer >= 1"),
        ({"mask_selected": True}, "unknown option mask_selected"),
    ]:
        with pytest.raises(ValueError, match=message):
            named_model("pointnet", options, 3, 10, data="mnist_points", smoothing=smoothing)


def test_pointnet_learns_mnist_points_under_hierarchical_noise(mnist_points):
    from hiersmooth.run_config import TrainingConfig
    from hiersmooth.train import train_images

    train, test = mnist_points
    subset = PointCloudSet(train.clouds[:2000], train.labels[:2000])
    smoothing = from_config(HIERARCHICAL | {"noise": {"kind": "gaussian", "sigma": 0.05}})
    torch.manual_seed(0)
    model = PointNet(3, 10, widths=[32, 64], hidden=32)
    history = train_images(model, smoothing, subset, TrainingConfig(epochs=5, batch_size=32, lr=3e-3), progress=False)
    with torch.no_grad():
        noisy = smoothing.sample_each(test.clouds[:500], torch.Generator().manual_seed(1))
        accuracy = (model(noisy).argmax(1).numpy() == test.labels[:500]).mean()
    assert accuracy > 0.5, f"noisy test accuracy {accuracy:.3f} after 5 short epochs (chance is 0.1)"
    assert history[-1]["loss"] < history[0]["loss"]


# ----------------------------------------------------------------------------------------------------------------
# sampling and certifying clouds


def test_sampler_on_a_cloud_noises_selected_points_only():
    cloud = torch.rand(64, 2)
    sigma = 0.3
    samples = from_config(HIERARCHICAL | {"noise": {"kind": "gaussian", "sigma": sigma}}).sample(
        cloud, 4000, torch.Generator().manual_seed(0)
    )
    assert samples.shape == (4000, 64, 3)
    tau = samples[..., -1].bool()
    assert torch.equal(samples[..., :2][~tau], cloud.expand(4000, -1, -1)[~tau]), "unselected points bit-identical"
    selected = tau.sum().item()
    assert abs(selected - 0.8 * tau.numel()) < 5 * np.sqrt(tau.numel() * 0.16), "each point selected with p = 0.8"
    noise = (samples[..., :2] - cloud)[tau].double()
    se = sigma / np.sqrt(noise.numel())
    assert abs(noise.mean()) < 5 * se and abs(noise.var() - sigma**2) < 5 * sigma**2 * np.sqrt(2 / noise.numel())
    assert abs(np.corrcoef(noise[:, 0], noise[:, 1])[0, 1]) < 5 / np.sqrt(len(noise)), "coordinates independent"
    ablated = from_config(ABLATION).sample(cloud, 50, torch.Generator().manual_seed(1))
    tau = ablated[..., -1].bool()
    assert torch.all(ablated[..., :2][tau] == 0) and torch.equal(ablated[..., :2][~tau], cloud.expand(50, -1, -1)[~tau])


def test_each_cloud_is_one_point_of_the_seed_plan(tmp_path):
    torch.manual_seed(0)
    model = PointNet(3, 3, widths=[8], hidden=8)
    clouds = PointCloudSet(torch.rand(3, 16, 2), [0, 1, 2])
    classifier = SmoothedClassifier(model, HIERARCHICAL, 3, seed=5)
    result = classifier.certify_dataset(
        clouds, n0=10, n=150, batch_size=40, out=tmp_path / "run", rows=[1], eps=[0.1], progress=False
    )
    for k in range(3):
        alone = classifier.certify(clouds.clouds[k], n0=10, n=150, batch_size=150, point=k)
        assert np.array_equal(alone.votes[0], result.votes[k])
        assert np.array_equal(alone.pre_votes[0], result.pre_votes[k])
    assert classifier.predict(clouds.clouds[0], n=50) in (-1, 0, 1, 2)
    with pytest.raises(ValueError, match=r"x: an image must be a dense \(C, H, W\) tensor and a point cloud a dense"):
        classifier.count(torch.rand(1, 2, 16, 2), "estimation", 4, 4)


def test_tiny_run_on_mnist_points_end_to_end(tmp_path):
    experiment = {
        "name": "tiny_points",
        "data": {"name": "mnist_points"},
        "model": {"name": "pointnet", "widths": [16], "hidden": 16},
        "training": {"epochs": 1, "batch_size": 256},
        "certify": {"n0": 4, "n": 12, "alpha": 0.05, "batch_size": 400},
        "seeds": [0],
        "threats": {"rows": [1, 4], "eps": [0.0, 0.1]},
        "pareto": [{"rows": 1, "eps": 0.1}],
        "methods": {"hierarchical_gaussian": {"smoothing": HIERARCHICAL}, "ablation": {"smoothing": ABLATION}},
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    assert main(["run", str(path), "--out", str(tmp_path / "results"), "--no-progress"]) == 0
    with open(tmp_path / "results" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["method"] for row in rows} == {"hierarchical_gaussian", "ablation"} and len(rows) == 2 * 2 * 2 * 2
    for cell in {row["cell"] for row in rows}:
        folder = tmp_path / "results" / "cells" / cell
        with np.load(folder / "certify" / "votes.npz", allow_pickle=False) as votes:
            assert votes["votes"].shape == (1000, 10) and votes["votes"].sum(1).tolist() == [12] * 1000
        assert json.loads((folder / "model" / "model.json").read_text())["input_shape"] == [128, 2]
    assert main(["report", str(tmp_path / "results")]) == 0


def test_mnist_points_experiment_lists_its_cells(tmp_path, capsys):
    experiment = load_experiment(REPOSITORY / "experiments" / "mnist_points.yaml")
    assert {cell.method for cell in experiment.cells} == {"hierarchical_gaussian", "gaussian", "ablation"}
    assert experiment.threats["rows"][0] == 1 and experiment.threats["rows"][-1] == 16
    assert all(cell.run.model.name == "pointnet" and cell.run.data.name == "mnist_points" for cell in experiment.cells)
    path = REPOSITORY / "experiments" / "mnist_points.yaml"
    assert main(["run", str(path), "--out", str(tmp_path / "results"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ")[1] for line in lines[: len(experiment.cells)]] == [cell.name for cell in experiment.cells]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"name": "lenet"}}, r"model.name='lenet': not a model for mnist_points \(allowed: pointnet\)"),
        ({"data": {"name": "mnist_5k"}}, r"model.name='pointnet': not a model for mnist_5k"),
        ({"data": {"name": "mnist_points", "points": 0}}, r"data.points=0: the points per cloud of mnist_points"),
        ({"data": {"name": "mnist_5k", "points": 64}}, r"data.points=64: the points per cloud of mnist_points"),
        (
            {"data": {"name": "shapenet"}},
            r"data.name='shapenet': unknown dataset \(allowed: .*mnist_points, modelnet40\)",
        ),
    ],
)
def test_bad_point_cloud_configs_fail_with_one_line(tmp_path, capsys, change, message):
    config = {
        "data": {"name": "mnist_points"},
        "model": {"name": "pointnet"},
        "smoothing": HIERARCHICAL,
        "training": {"epochs": 1},
        **change,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and re.search(message, error), error


def test_point_cloud_data_takes_pointnet():
    config = load_run_config(
        {"data": {"name": "mnist_points"}, "model": {"name": "pointnet"}, "smoothing": HIERARCHICAL}
    )
    assert config.data.models == ("pointnet",) and not config.data.graph and config.training.epochs == 30


def test_the_number_of_points_is_a_run_config_option():
    from hiersmooth.data.datasets import load_dataset

    config = load_run_config(
        {
            "data": {"name": "mnist_points", "points": 64},
            "model": {"name": "pointnet"},
            "smoothing": {"selection": {"kind": "all"}, "noise": {"kind": "gaussian", "sigma": 0.01}},
        }
    )
    assert config.data.points == 64 and load_run_config(config.to_dict()) == config
    split = load_dataset(config.data.name, config.data.root, config.data.seed, config.data.download, config.data.points)
    assert split.test.images.shape[1:] == (64, 2) and split.train.images.shape[1:] == (64, 2)
    plain = load_run_config({**config.to_dict(), "data": {"name": "mnist_points"}})
    assert "points" not in plain.to_dict()["data"]  # configs without the option keep their form (checkpoint reuse)
