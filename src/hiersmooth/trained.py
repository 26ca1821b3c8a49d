"""Trained-model checkpoints: what ``hiersmooth train`` writes and ``hiersmooth certify --checkpoint`` reads.

A checkpoint is a folder:

- ``model.pt`` — the state dict (``torch.save``; read back with ``weights_only=True``);
- ``config.yaml`` — the run config it was trained with (``hiersmooth train DIR/config.yaml --out NEW`` retrains it;
  never into DIR itself, whose config.yaml is then an input);
- ``model.json`` — the input shape, sample width and classes the model was built for, the training
  metrics of the kept state (the last epoch, or the restored one under early stopping), timings and library versions;
- ``training.csv`` — one row per epoch.

:func:`train_run` writes one (``hiersmooth train``), :func:`load_trained` reads it back, and
:func:`certify_checkpoint` certifies it (``hiersmooth certify --checkpoint``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml

from .data.datasets import ImageSplit, load_dataset
from .data.graphs import GraphSplit
from .defaults import DEFAULT_ALPHA, DEFAULT_PROCEDURE
from .models.factory import input_width, named_model
from .results import atomic_file, library_versions, write_csv, write_json
from .run_config import RunConfig, load_run_config
from .train import train_graph, train_images

if TYPE_CHECKING:
    from .certify.certification import VoteCertificates
    from .certify.sequential import SequentialCertificates


@dataclass
class TrainedModel:
    """A model rebuilt from a checkpoint folder, with the config and shapes it was trained for."""

    model: torch.nn.Module
    config: RunConfig
    input_shape: tuple[int, ...]
    num_classes: int
    path: Path

    def check_data(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        """Refuse data of another shape or class count than the model was trained on."""
        if tuple(input_shape) != self.input_shape or num_classes > self.num_classes:
            raise ValueError(
                f"--checkpoint {self.path}: trained on inputs of shape {self.input_shape} with "
                f"{self.num_classes} classes; the data has shape {tuple(input_shape)} with {num_classes}"
            )


def config_model(config: RunConfig, input_shape: tuple[int, ...], classes: int) -> tuple[torch.nn.Module, int]:
    """The config's model for inputs of ``input_shape`` and ``classes`` classes, and its sample width."""
    width = input_width(config.smoothing, input_shape, config.data.graph)
    model = named_model(
        config.model.name, config.model.options, width, classes, data=config.data.name, smoothing=config.smoothing
    )
    return model, width


def build_for(config: RunConfig, dataset: ImageSplit | GraphSplit) -> tuple[torch.nn.Module, tuple[int, ...], int]:
    """The config's model for ``dataset``: (model, input shape, classes)."""
    input_shape = tuple(dataset.graph.features.shape) if isinstance(dataset, GraphSplit) else dataset.input_shape
    return config_model(config, input_shape, dataset.num_classes)[0], input_shape, dataset.num_classes


TRAINED_FILES = ("model.pt", "config.yaml", "training.csv", "model.json")


def checkpoint_folder(config: RunConfig, out=None) -> Path:
    """Where :func:`train_run` writes: ``out``, else the config's ``out``, else ``runs/<data>_<model>``."""
    return Path(out or config.out or "runs/" + f"{config.data.name}_{config.model.name}")


def train_run(config, out=None, progress: bool = True, force: bool = False) -> Path:
    """``hiersmooth train``: load the data, build and train the model under the config's smoothing (noise
    augmentation), and write the checkpoint folder ``out`` (default: the config's ``out``), each file atomically,
    ``model.json`` last; returns the folder.

    ``config`` is a :class:`RunConfig`, a mapping or a run-config YAML path. The folder is refused when it holds
    files hiersmooth did not write (unless ``force``) or the config file itself, and is locked while training."""
    from .results import LOCK, check_output, output_lock

    source = config if isinstance(config, (str, Path)) else None
    config = config if isinstance(config, RunConfig) else load_run_config(config)
    out = checkpoint_folder(config, out)
    check_output(out, [source], force, files=TRAINED_FILES)
    with output_lock(out / LOCK):
        return _train_into(config, out, progress)


def _train_into(config: RunConfig, out: Path, progress: bool) -> Path:
    """Train and write the checkpoint files (the folder is checked and locked)."""
    started = time.perf_counter()
    dataset = load_dataset(
        config.data.name, config.data.root, config.data.seed, config.data.download, config.data.points
    )
    torch.manual_seed(config.training.seed)  # the model's initial weights
    model, input_shape, classes = build_for(config, dataset)
    if isinstance(dataset, GraphSplit):
        history = train_graph(model, config.smoothing, dataset, config.training, progress)
    else:
        history = train_images(model, config.smoothing, dataset.train, config.training, progress)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "model.pt", "wb") as file:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, file)
    with atomic_file(out / "config.yaml") as file:
        yaml.safe_dump(config.to_dict(), file, sort_keys=False)
    write_csv(out / "training.csv", history)
    write_json(
        out / "model.json",
        {
            "input_shape": list(input_shape),
            "num_classes": classes,
            "epochs_run": len(history),
            "final": next((row for row in history if row.get("restored")), history[-1]),
            "seconds": round(time.perf_counter() - started, 3),
            "versions": library_versions(),
            "outputs": {name: str(out / name) for name in TRAINED_FILES},
        },
    )
    return out


def load_trained(path) -> TrainedModel:
    """Rebuild the model of checkpoint folder ``path`` and load its weights (``weights_only=True``)."""
    from .models.factory import load_state

    path = Path(path)
    for name in ("model.pt", "config.yaml", "model.json"):
        if not (path / name).is_file():
            raise ValueError(f"--checkpoint {path}: missing {name} (a checkpoint folder written by hiersmooth train)")
    config = load_run_config(path / "config.yaml")
    try:
        meta = json.loads((path / "model.json").read_text())
        input_shape, classes = tuple(int(v) for v in meta["input_shape"]), int(meta["num_classes"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--checkpoint {path}: model.json is not readable ({error})") from None
    if classes < 2 or not input_shape or min(input_shape) < 1:
        raise ValueError(
            f"--checkpoint {path}: model.json records num_classes={classes} and input_shape={input_shape}; a "
            "checkpoint has at least 2 classes and a positive size on every axis"
        )
    model, width = config_model(config, input_shape, classes)
    load_state(
        model, path / "model.pt", f"{config.model.name} with input width {width} and {classes} classes", "--checkpoint"
    )
    model.eval()
    return TrainedModel(model, config, input_shape, classes, path)


def certify_checkpoint(
    checkpoint,
    out=None,
    *,
    data=None,
    smoothing=None,
    n0: int = 1000,
    n: int = 10000,
    alpha: float = DEFAULT_ALPHA,
    batch_size: int = 100,
    seed: int = 0,
    block_size: int | None = None,
    device: str = "cpu",
    autocast: bool = False,
    num_classes: int | None = None,
    runner_up: str = "sound",
    rows=None,
    force: bool = False,
    checkpoint_seconds: float = 10.0,
    progress: bool = True,
    targets=None,
    procedure=DEFAULT_PROCEDURE,
    **budget,
) -> VoteCertificates | SequentialCertificates:
    """``hiersmooth certify --checkpoint``: certify the model of a folder written by ``hiersmooth train``.

    By default on its run config's test data (the image test set, or the graph at its test nodes) under the
    smoothing it was trained with; ``data`` (a ``--data`` ``.npz`` path or anything :func:`certify_dataset`
    takes) and ``smoothing`` (a config path, mapping or :class:`~hiersmooth.Smoothing`) override them. The data
    must have the shape the model was trained on and labels among its classes; ``num_classes``, when given, must be
    the checkpoint's (which it knows). Every other argument is
    :func:`~hiersmooth.certify_run.certify_dataset`'s (``seed`` and ``block_size`` choose the random streams,
    ``device`` the torch device; ``targets`` makes the run sequential)."""
    from .certify_run import certify_dataset
    from .classifier import SmoothedClassifier
    from .distributed import init_ranks
    from .inputs import Graph, as_dataset, load_arrays
    from .results import sha256
    from .smoothing import from_config

    ranks = init_ranks(device)
    trained = load_trained(checkpoint)
    if num_classes is not None and num_classes != trained.num_classes:
        raise ValueError(
            f"class count: checkpoint {trained.num_classes}, --num-classes {num_classes}; they must agree "
            "(leave out --num-classes: a checkpoint knows its class count)"
        )
    chosen = from_config(smoothing) if smoothing is not None else trained.config.smoothing
    widths = [
        input_width(c, trained.input_shape, trained.config.data.graph) for c in (chosen, trained.config.smoothing)
    ]
    if widths[0] != widths[1]:
        raise ValueError(
            f"--smoothing: gives samples of width {widths[0]} (channels or features, with τ and the encoding), but "
            f"the checkpoint's model takes {widths[1]}, as trained (indicator and encoding must match its smoothing)"
        )
    paths = {
        name: value for name, value in (("data", data), ("smoothing", smoothing)) if isinstance(value, (str, Path))
    }
    if data is None:
        dataset = _test_data(trained.config)
    else:
        dataset = load_arrays(data) if "data" in paths else as_dataset(data)
    labels = dataset.labels[dataset.nodes] if isinstance(dataset, Graph) else dataset.labels
    trained.check_data(
        dataset.input_shape, int(labels.max()) + 1 if labels.size else 0
    )  # the labels must fit its classes
    classifier = SmoothedClassifier(
        trained.model,
        chosen,
        trained.num_classes,
        seed=seed,
        block_size=block_size,
        device=ranks.device(device),
        autocast=autocast,
    )
    folder = Path(checkpoint)
    inputs = {
        "checkpoint": str(folder.resolve()),
        "weights_sha256": sha256(folder / "model.pt"),
        "data": str(Path(data).resolve())
        if "data" in paths
        else trained.config.data.name
        if data is None
        else "in memory",
        "data_sha256": sha256(data) if "data" in paths else None,
        "smoothing": str(Path(smoothing).resolve())
        if "smoothing" in paths
        else "checkpoint"
        if smoothing is None
        else "in memory",
    }
    protect = [folder, *(folder / name for name in ("model.pt", "config.yaml", "model.json")), *paths.values()]
    return certify_dataset(
        classifier,
        dataset,
        n0,
        n,
        alpha,
        batch_size,
        out=out,
        runner_up=runner_up,
        rows=rows,
        force=force,
        checkpoint_seconds=checkpoint_seconds,
        progress=progress,
        inputs=inputs,
        protect=protect,
        targets=targets,
        procedure=procedure,
        **budget,
    )


def _test_data(config: RunConfig):
    """The test data of a run config: the image test set, or the whole graph at its test nodes."""
    dataset = load_dataset(
        config.data.name, config.data.root, config.data.seed, config.data.download, config.data.points
    )
    return dataset.test_graph() if isinstance(dataset, GraphSplit) else dataset.test
