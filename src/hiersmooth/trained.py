"""Trained-model checkpoints: what ``hiersmooth train`` writes and ``hiersmooth certify --checkpoint`` reads.

A checkpoint is a folder:

- ``model.pt`` — the state dict (``torch.save``; read back with ``weights_only=True``);
- ``config.yaml`` — the run config it was trained with (``hiersmooth train DIR/config.yaml --out NEW`` retrains it;
  never into DIR itself, whose config.yaml is then an input);
- ``model.json`` — the input shape, sample width and classes the model was built for, the training
  metrics of the kept state (the last epoch, or the restored one under early stopping), timings and library versions;
- ``training.csv`` — one row per epoch.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from .data.datasets import ImageSplit, load_dataset
from .data.graphs import GraphSplit
from .models.factory import input_width, named_model
from .results import atomic_file, library_versions, write_csv, write_json
from .run_config import RunConfig, load_run_config
from .train import train_graph, train_images


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
            raise ValueError(f"--checkpoint {self.path}: trained on inputs of shape {self.input_shape} with "
                             f"{self.num_classes} classes; the data has shape {tuple(input_shape)} with {num_classes}")


def config_model(config: RunConfig, input_shape: tuple[int, ...], classes: int) -> tuple[torch.nn.Module, int]:
    """The config's model for inputs of ``input_shape`` and ``classes`` classes, and its sample width."""
    width = input_width(config.smoothing, input_shape, config.data.graph)
    model = named_model(config.model.name, config.model.options, width, classes, data=config.data.name, smoothing=config.smoothing)
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
    dataset = load_dataset(config.data.name, config.data.root, config.data.seed, config.data.download)
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
    write_json(out / "model.json", {"input_shape": list(input_shape), "num_classes": classes, "epochs_run": len(history),
                                    "final": next((row for row in history if row.get("restored")), history[-1]), "seconds": round(time.perf_counter() - started, 3),
                                    "versions": library_versions(), "outputs": {name: str(out / name) for name in TRAINED_FILES}})
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
    model, width = config_model(config, input_shape, classes)
    load_state(model, path / "model.pt", f"{config.model.name} with input width {width} and {classes} classes", "--checkpoint")
    model.eval()
    return TrainedModel(model, config, input_shape, classes, path)
