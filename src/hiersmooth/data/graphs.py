"""Citation graphs through PyTorch Geometric's ``CitationFull`` and the paper's inductive split (SPEC.md §5).

``load_graph("cora_ml", root)`` reads ``<root>/cora_ml/raw/cora_ml.npz`` (PyG's native raw layout; online, PyG
downloads it there), binarises the features, keeps the largest connected component (Cora-ML: 2,810 nodes,
2,879 features, 7 classes) and draws the inductive split:

- 20 labelled nodes per class for training and 20 per class for validation, 10 % of the remaining nodes for
  testing, all drawn by ``numpy.random.default_rng(seed)``;
- the training graph has neither validation nor test nodes, the validation graph no test nodes; certification
  runs on the whole graph at the test nodes.

Offline, Cora-ML's raw file is also taken from the project's shared folder (``shared/data/cora_ml.npz``) when
``<root>`` lacks it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checks import error_line
from ..inputs import Graph

#: hiersmooth's dataset name → PyG ``CitationFull`` name
GRAPH_DATASETS = {"cora_ml": "Cora_ML", "citeseer": "CiteSeer", "pubmed": "PubMed"}


@dataclass
class GraphSplit:
    """A graph with the inductive split: node indices (into ``graph``) for training, validation and testing."""

    name: str
    graph: Graph
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    num_classes: int

    def training_graph(self) -> tuple[Graph, np.ndarray]:
        """The graph without validation and test nodes, and the training nodes' indices in it."""
        return self._without(np.concatenate([self.val, self.test]), self.train)

    def validation_graph(self) -> tuple[Graph, np.ndarray]:
        """The graph without test nodes, and the validation nodes' indices in it."""
        return self._without(self.test, self.val)

    def test_graph(self) -> Graph:
        """The whole graph whose target nodes are the test nodes."""
        return Graph(self.graph.features, self.graph.edge_index, self.graph.labels, self.test)

    def _without(self, removed: np.ndarray, targets: np.ndarray) -> tuple[Graph, np.ndarray]:
        from torch_geometric.utils import subgraph

        keep = np.ones(len(self.graph.labels), dtype=bool)
        keep[removed] = False
        kept = np.flatnonzero(keep)
        edge_index, _ = subgraph(
            torch.as_tensor(kept), self.graph.edge_index, relabel_nodes=True, num_nodes=len(self.graph.labels)
        )
        position = np.full(len(keep), -1)
        position[kept] = np.arange(len(kept))
        features = self.graph.features
        if features.layout == torch.sparse_csr:  # CSR has no index_select; COO does
            features = features.to_sparse_coo().index_select(0, torch.as_tensor(kept)).to_sparse_csr()
        else:
            features = features.index_select(0, torch.as_tensor(kept))
        targets = position[targets]
        return Graph(features, edge_index, self.graph.labels[kept], targets), targets


def inductive_split(labels: np.ndarray, seed: int = 0, per_class: int = 20, test_fraction: float = 0.1):
    """(train, val, test) node indices: ``per_class`` nodes of each class for training and again for validation,
    then ``test_fraction`` of the remaining nodes for testing; reproducible by ``seed``."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < 2 * per_class:
            raise ValueError(
                f"class {label} has {len(members)} nodes; the split needs {2 * per_class} (20 train + 20 validation)"
            )
        train.append(members[:per_class])
        val.append(members[per_class : 2 * per_class])
    train, val = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
    rest = np.setdiff1d(np.arange(len(labels)), np.concatenate([train, val]))
    test = np.sort(rng.choice(rest, size=int(round(test_fraction * len(rest))), replace=False))
    return train, val, test


def load_graph(name: str, root, seed: int = 0, download: bool = True) -> GraphSplit:
    """The largest connected component of a ``CitationFull`` graph with binary features and the inductive split."""
    from torch_geometric.datasets import CitationFull
    from torch_geometric.transforms import LargestConnectedComponents

    if name not in GRAPH_DATASETS:
        raise ValueError(f"data.name={name!r}: unknown graph dataset (allowed: {', '.join(GRAPH_DATASETS)})")
    root = Path(root)
    raw = root / name / "raw" / f"{name}.npz"
    if not raw.exists():
        _stage_shared_copy(name, raw)
    if not raw.exists() and not download:
        raise ValueError(f"data.root={root}: {raw} is missing and downloading is off")
    try:
        data = CitationFull(str(root), GRAPH_DATASETS[name])[0]
    except Exception as error:  # no network, a corrupt raw file, ...
        reason = error_line(error)
        raise ValueError(f"data.root={root}: cannot load {name} from {raw} nor download it ({reason})") from None
    data = LargestConnectedComponents()(data)
    features = (data.x > 0).float().to_sparse_csr()
    labels = data.y.numpy().astype(np.int64)
    train, val, test = inductive_split(labels, seed)
    graph = Graph(features, data.edge_index, labels, test)
    return GraphSplit(name, graph, train, val, test, int(labels.max()) + 1)


def _stage_shared_copy(name: str, raw: Path) -> None:
    """Copy ``shared/data/<name>.npz`` (the project's offline copy of PyG's raw file) to ``raw`` when it exists."""
    from ..shared_data import shared_dir

    try:
        source = shared_dir() / "data" / f"{name}.npz"
    except FileNotFoundError:
        return
    if source.exists():
        raw.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, raw)
