"""Noise-augmented training: learning happens (digits CNN, Cora-ML GCN), checkpoints reload to identical
predictions, a learnable ablation token is trained, and bad configs fail with one clear line."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
import yaml

from hiersmooth.classifier import SmoothedClassifier
from hiersmooth.cli import main
from hiersmooth.data.datasets import load_dataset
from hiersmooth.run_config import load_run_config
from hiersmooth.shared_data import shared_dir
from hiersmooth.smoothing import from_config
from hiersmooth.trained import load_trained, train_run

HIERARCHICAL_GAUSSIAN = {
    "selection": {"kind": "bernoulli", "p": 0.8},
    "noise": {"kind": "gaussian", "sigma": 0.25},
    "indicator": True,
}
HIERARCHICAL_SPARSE = {
    "selection": {"kind": "bernoulli", "p": 0.81},
    "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8},
    "indicator": True,
}


@pytest.fixture(scope="module")
def graph_root(tmp_path_factory):
    raw = shared_dir() / "data" / "cora_ml.npz"
    assert raw.exists(), f"Cora-ML raw file missing: looked for {raw}"
    root = tmp_path_factory.mktemp("pyg")
    (root / "cora_ml" / "raw").mkdir(parents=True)
    shutil.copyfile(raw, root / "cora_ml" / "raw" / "cora_ml.npz")
    return root


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    config = load_run_config(
        {
            "data": {"name": "digits"},
            "model": {"name": "small_cnn"},
            "smoothing": HIERARCHICAL_GAUSSIAN,
            "training": {"epochs": 8, "batch_size": 64, "lr": "3e-3"},
        }
    )
    return train_run(config, tmp_path_factory.mktemp("digits"), progress=False)


@pytest.fixture(scope="module")
def cora_run(tmp_path_factory, graph_root):
    config = load_run_config(
        {
            "data": {"name": "cora_ml", "root": str(graph_root)},
            "model": {"name": "gcn"},
            "smoothing": HIERARCHICAL_SPARSE,
            "training": {"epochs": 300, "lr": 0.01, "patience": 30},
        }
    )
    return train_run(config, tmp_path_factory.mktemp("cora"), progress=False)


def test_digits_cnn_learns_under_hierarchical_gaussian_noise(digits_run):
    trained = load_trained(digits_run)
    test = load_dataset("digits").test
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        noisy = trained.config.smoothing.sample_each(test.images, generator)
        accuracy = (trained.model(noisy).argmax(1).numpy() == test.labels).mean()
    assert accuracy > 0.6, f"noisy test accuracy {accuracy:.3f} after 8 epochs (chance is 0.1)"
    history = json.loads((digits_run / "model.json").read_text())
    assert history["epochs_run"] == 8 and history["final"]["loss"] < 1.5


def test_gcn_on_cora_ml_beats_70_percent_on_test_nodes(cora_run, graph_root):
    trained = load_trained(cora_run)
    split = load_dataset("cora_ml", graph_root)
    classifier = SmoothedClassifier(trained.model, trained.config.smoothing, split.num_classes, seed=3)
    graph = split.test_graph()
    votes = classifier.count(graph.features, "prediction", 16, 16, edge_index=graph.edge_index, nodes=graph.nodes)
    accuracy = (votes.argmax(1) == graph.labels[graph.nodes]).mean()
    assert accuracy > 0.7, f"smoothed test accuracy {accuracy:.3f}"
    rows = (cora_run / "training.csv").read_text().splitlines()
    assert rows[0].split(",") == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "restored"]
    assert sum(row.endswith("True") for row in rows[1:]) == 1, "exactly one epoch's state is kept"


@pytest.mark.parametrize("run", ["digits_run", "cora_run"])
def test_checkpoint_reloads_to_identical_predictions(run, request, graph_root):
    folder = request.getfixturevalue(run)
    first, second = load_trained(folder), load_trained(folder)
    assert first.model is not second.model
    if first.config.data.graph:
        split = load_dataset("cora_ml", graph_root)
        x = first.config.smoothing.sample(split.graph.features, 1, torch.Generator().manual_seed(0))
        inputs = (x, split.graph.edge_index)
    else:
        inputs = (
            first.config.smoothing.sample_each(
                load_dataset("digits").test.images[:50], torch.Generator().manual_seed(0)
            ),
        )
    with torch.no_grad():
        assert torch.equal(first.model(*inputs), second.model(*inputs))
    state = torch.load(folder / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_learnable_ablation_token_is_trained(tmp_path, graph_root):
    smoothing = {"selection": {"kind": "bernoulli", "p": 0.5}, "noise": {"kind": "ablation"}, "indicator": True}
    config = load_run_config(
        {
            "data": {"name": "cora_ml", "root": str(graph_root)},
            "model": {"name": "gat", "learn_token": True},
            "smoothing": smoothing,
            "training": {"epochs": 3, "lr": 0.05},
        }
    )
    trained = load_trained(train_run(config, tmp_path / "gat", progress=False))
    token = trained.model.ablation_token
    assert token.shape == (2879,)
    assert torch.count_nonzero(token) > 100, "the token must move away from its zero start"


def test_sample_each_draws_one_independent_sample_per_image():
    smoothing = from_config(
        {
            "selection": {"kind": "subset", "size": 5, "entities": 16},
            "noise": {"kind": "gaussian", "sigma": 1.0},
            "indicator": True,
        }
    )
    images = torch.rand(300, 2, 4, 4)
    samples = smoothing.sample_each(images, torch.Generator().manual_seed(0))
    assert samples.shape == (300, 3, 4, 4)
    tau = samples[:, 2]
    assert torch.all(tau.sum((1, 2)) == 5), "a subset selection draws exactly m pixels of each image"
    kept = ~tau.bool().unsqueeze(1).expand(-1, 2, -1, -1)
    assert torch.equal(samples[:, :2][kept], images[kept]), "unselected pixels are the input's"
    noise = (samples[:, :2] - images)[~kept]
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05
    assert len({tuple(t.flatten().tolist()) for t in tau}) > 250, "masks differ between images"


def _write(tmp_path, config) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"data": {"name": "imagenet"}},
            r"data.name='imagenet': unknown dataset \(allowed: digits, mnist, cifar10, cora_ml",
        ),
        (
            {"model": {"name": "vgg"}},
            r"model.name='vgg': not a model for digits \(allowed: small_cnn, resnet18, resnet50\)",
        ),
        ({"model": {"name": "gcn"}}, r"model.name='gcn': not a model for digits"),
        ({"model": {"name": "small_cnn", "depth": 3}}, r"model: unknown option depth for small_cnn"),
        ({"training": {"epochs": 0}}, r"training.epochs=0: must be an integer >= 1"),
        ({"training": {"optimizer": "rmsprop"}}, r"training.optimizer='rmsprop': must be one of adam, sgd"),
        (
            {"smoothing": {"noise": {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.2}}},
            r"sparse noise needs binary features",
        ),
        ({"data": {"name": "mnist", "download": False}}, r"mnist"),
        ({"training": {"epochs": 1, "lr": float("nan")}}, r"training.lr=nan: must be a finite number > 0"),
        ({"training": {"epochs": 1, "lr": float("inf")}}, r"training.lr=inf: must be a finite number > 0"),
        ({"training": {"epochs": 1, "weight_decay": float("nan")}}, r"training.weight_decay=nan: must be a finite"),
        ({"training": {"epochs": 1, "seed": -1}}, r"training.seed=-1: must be an integer >= 0"),
        ({"training": {"epochs": 1, "device": 3}}, r"training.device=3: must be a device name"),
        ({"training": {"epochs": 1, "device": "tpu"}}, r"training.device='tpu': not a torch device"),
    ],
)
def test_bad_run_configs_fail_with_one_line(tmp_path, capsys, change, message):
    config = {
        "data": {"name": "digits"},
        "model": {"name": "small_cnn"},
        "smoothing": HIERARCHICAL_GAUSSIAN,
        "training": {"epochs": 1},
        "out": str(tmp_path / "out"),
    }
    config.update(change)
    if config["data"]["name"] == "mnist":
        config["data"]["root"] = str(tmp_path / "no_mnist_here")
    assert main(["train", _write(tmp_path, config), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("hiersmooth: error: ")
    assert re.search(message, error), error


def test_certify_accepts_a_checkpoint_and_refuses_data_of_another_shape(digits_run, tmp_path, capsys):
    out = tmp_path / "certified"
    assert (
        main(
            [
                "certify",
                "--checkpoint",
                str(digits_run),
                "--out",
                str(out),
                "--n0",
                "4",
                "--n",
                "8",
                "--no-progress",
                "--rows",
                "1",
                "--eps",
                "0",
            ]
        )
        == 0
    )
    with np.load(out / "votes.npz", allow_pickle=False) as votes:
        assert votes["votes"].shape == (len(load_dataset("digits").test.labels), 10)
        assert np.all(votes["votes"].sum(1) == 8)
    record = json.loads((out / "certified_accuracy.json").read_text())
    assert record["inputs"]["checkpoint"] == str(digits_run)
    data = tmp_path / "wide.npz"
    np.savez(data, images=np.zeros((3, 1, 10, 10), dtype=np.float32), labels=np.zeros(3, dtype=np.int64))
    assert (
        main(
            [
                "certify",
                "--checkpoint",
                str(digits_run),
                "--data",
                str(data),
                "--out",
                str(tmp_path / "x"),
                "--no-progress",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert "trained on inputs of shape (1, 8, 8)" in error and "(1, 10, 10)" in error and "\n" not in error


def test_a_checkpoint_refuses_a_smoothing_of_another_sample_width_and_a_damaged_class_count(
    digits_run, tmp_path, capsys
):
    no_indicator = tmp_path / "no_indicator.yaml"  # the digits run was trained with τ: two channels
    no_indicator.write_text(yaml.safe_dump({**HIERARCHICAL_GAUSSIAN, "indicator": False}))
    certify = ["certify", "--checkpoint", str(digits_run), "--out", str(tmp_path / "x"), "--n0", "4", "--n", "8"]
    assert main(certify + ["--smoothing", str(no_indicator), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert "--smoothing: gives samples of width 1" in error and "the checkpoint's model takes 2" in error
    damaged = tmp_path / "damaged"
    shutil.copytree(digits_run, damaged)
    meta = json.loads((damaged / "model.json").read_text())
    (damaged / "model.json").write_text(json.dumps({**meta, "num_classes": -1}))
    assert main(["certify", "--checkpoint", str(damaged), "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    assert "model.json records num_classes=-1" in capsys.readouterr().err


def test_certify_without_checkpoint_names_the_missing_options(tmp_path, capsys):
    assert main(["certify", "--out", str(tmp_path)]) == 2
    assert "certify needs --smoothing, --model, --data (or --checkpoint DIR" in capsys.readouterr().err
