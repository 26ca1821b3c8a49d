"""The run config (YAML) of ``hiersmooth train``: which data, which model, which smoothing, how to train.

    data:      {name: digits, seed: 0}          # digits | mnist | cifar10 | mnist_5k (images), mnist_points |
                                                 # modelnet40 (point clouds), cora_ml | citeseer | pubmed (graphs)
                                                 # (root: DIR, default ~/.cache/hiersmooth; download: true|false)
    model:     {name: small_cnn}                 # small_cnn | lenet | resnet18 | resnet50 (images), pointnet (point
                                                 # clouds), gcn | gat | appnp (graphs), plus the model's options
                                                 # (hidden, dropout, skip, learn_token, ...)
    smoothing: {selection: {kind: bernoulli, p: 0.8}, noise: {kind: gaussian, sigma: 0.25}, indicator: true}
    training:  {epochs: 30, batch_size: 128, optimizer: adam, lr: 0.001, weight_decay: 0.0, momentum: 0.9,
                schedule: cosine, patience: 50, seed: 0, device: cpu}
    out: runs/digits_hierarchical               # the checkpoint folder

Training defaults depend on the data: images and point clouds use Adam (lr 1e-3) with a cosine schedule for 30
epochs; graphs use the paper's Adam (lr 1e-3, weight decay 5e-4) for up to 1,000 epochs with early stopping
(patience 50).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from .checks import check_integer
from .config_files import build_dataclass, read_yaml
from .data.datasets import DATASETS, POINT_CLOUD_DATASETS
from .data.graphs import GRAPH_DATASETS
from .smoothing import Smoothing, from_config

IMAGE_MODELS = ("small_cnn", "resnet18", "resnet50", "lenet")
POINT_CLOUD_MODELS = ("pointnet",)
GRAPH_MODELS = ("gcn", "gat", "appnp")
SMALL_IMAGES = ("digits",)  # 8×8: too small for lenet's two valid 5×5 convolutions
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class DataConfig:
    name: str
    root: str | None = None
    seed: int = 0
    download: bool = True
    points: int | None = None  # points per cloud of mnist_points (default 128)

    @property
    def graph(self) -> bool:
        return self.name in GRAPH_DATASETS

    @property
    def models(self) -> tuple[str, ...]:
        """The built-in models that fit this data: graph models for graphs, pointnet for point clouds, the image
        models for images (lenet only from 16×16 pixels up)."""
        if self.graph:
            return GRAPH_MODELS
        if self.name in POINT_CLOUD_DATASETS:
            return POINT_CLOUD_MODELS
        return tuple(model for model in IMAGE_MODELS if not (model == "lenet" and self.name in SMALL_IMAGES))


@dataclass(frozen=True)
class ModelConfig:
    name: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"
    patience: int | None = None
    seed: int = 0
    device: str = "cpu"


IMAGE_TRAINING = {"epochs": 30}
GRAPH_TRAINING = {"epochs": 1000, "weight_decay": 5e-4, "schedule": "constant", "patience": 50}


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig
    smoothing: Smoothing
    training: TrainingConfig
    out: str | None = None

    def to_dict(self) -> dict:
        """The config as plain YAML-able values (what ``load_run_config`` reads back to an equal config)."""
        return {
            "data": {
                key: value
                for key, value in dataclasses.asdict(self.data).items()
                if key != "points" or value is not None
            },  # configs without points stay as they were
            "model": {"name": self.model.name, **self.model.options},
            "smoothing": self.smoothing.to_config(),
            "training": dataclasses.asdict(self.training),
            "out": self.out,
        }


def load_run_config(config) -> RunConfig:
    """Parse and check a run config (a mapping or a YAML file); every problem is one ValueError naming the key."""
    if isinstance(config, (str, Path)):
        config = read_yaml(config, "config")
    if not isinstance(config, dict):
        raise ValueError("config: must be a mapping with data, model, smoothing and training")
    unknown = sorted(set(config) - {"data", "model", "smoothing", "training", "out"})
    if unknown:
        raise ValueError(f"config: unknown key {', '.join(unknown)} (allowed: data, model, smoothing, training, out)")
    for key in ("data", "model", "smoothing"):
        if not isinstance(config.get(key), dict):
            raise ValueError(f"config.{key}: missing or not a mapping")
    data = build_dataclass("data", DataConfig, config["data"])
    if data.name not in DATASETS:
        raise ValueError(f"data.name={data.name!r}: unknown dataset (allowed: {', '.join(DATASETS)})")
    if data.points is not None and (
        data.name != "mnist_points"
        or isinstance(data.points, bool)
        or not isinstance(data.points, int)
        or not 1 <= data.points <= 100_000
    ):
        raise ValueError(
            f"data.points={data.points!r}: the points per cloud of mnist_points, an integer in [1, 100000]"
        )
    model_options = dict(config["model"])
    model = ModelConfig(model_options.pop("name", None), model_options)
    if model.name not in data.models:
        raise ValueError(f"model.name={model.name!r}: not a model for {data.name} (allowed: {', '.join(data.models)})")
    training_options = {**(GRAPH_TRAINING if data.graph else IMAGE_TRAINING), **(config.get("training") or {})}
    for name in ("lr", "weight_decay", "momentum"):  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(training_options.get(name), str):
            try:
                training_options[name] = float(training_options[name])
            except ValueError:
                raise ValueError(f"training.{name}={training_options[name]!r}: must be a number") from None
    training = build_dataclass("training", TrainingConfig, training_options)
    _check_training(training)
    out = config.get("out")
    return RunConfig(data, model, from_config(config["smoothing"]), training, None if out is None else str(out))


def _check_training(training: TrainingConfig) -> None:
    for name in ("epochs", "batch_size"):
        check_integer(f"training.{name}", getattr(training, name), 1)
    if training.patience is not None:
        check_integer("training.patience", training.patience, 1, rule="must be an integer >= 1 or null")
    check_integer("training.seed", training.seed, 0)
    for name in ("lr", "weight_decay", "momentum"):
        value = getattr(training, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
            or (name == "lr" and value == 0)
        ):
            raise ValueError(f"training.{name}={value!r}: must be a finite number {'> 0' if name == 'lr' else '>= 0'}")
    if not isinstance(training.device, str):
        raise ValueError(f"training.device={training.device!r}: must be a device name such as cpu or cuda")
    if training.optimizer not in OPTIMIZERS:
        raise ValueError(f"training.optimizer={training.optimizer!r}: must be one of {', '.join(OPTIMIZERS)}")
    if training.schedule not in SCHEDULES:
        raise ValueError(f"training.schedule={training.schedule!r}: must be one of {', '.join(SCHEDULES)}")
