"""One entry point for every named dataset of a run config: image sets (``images``) and graphs (``graphs``)."""

from __future__ import annotations

from dataclasses import dataclass

from .arrays import ImageSet
from .graphs import GRAPH_DATASETS, GraphSplit, load_graph


@dataclass
class ImageSplit:
    """An image dataset's training and test sets."""

    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape


def load_dataset(name: str, root=None, seed: int = 0, download: bool = True) -> ImageSplit | GraphSplit:
    """``digits``, ``mnist``, ``cifar10`` (→ :class:`ImageSplit`) or ``cora_ml``, ``citeseer``, ``pubmed``
    (→ :class:`~hiersmooth.data.graphs.GraphSplit`); ``root`` defaults to ``~/.cache/hiersmooth/<name>`` for
    images and ``~/.cache/hiersmooth`` for graphs; ``seed`` draws the digits split and the graph split."""
    from .images import DEFAULT_ROOT, load_images

    if name in GRAPH_DATASETS:
        return load_graph(name, DEFAULT_ROOT if root is None else root, seed, download)
    train, test = load_images(name, root, seed, download)
    return ImageSplit(name, train, test, int(max(train.labels.max(), test.labels.max())) + 1)
