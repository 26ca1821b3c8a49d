"""Cora-ML through PyTorch Geometric: the largest connected component, binary features and the inductive split,
checked against an independent computation from the raw arrays with SciPy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from hiersmooth.data.graphs import inductive_split, load_graph
from hiersmooth.shared_data import shared_dir


@pytest.fixture(scope="module")
def raw_cora():
    path = shared_dir() / "data" / "cora_ml.npz"
    assert path.exists(), f"Cora-ML raw file missing: looked for {path}"
    return path


@pytest.fixture(scope="module")
def cora(tmp_path_factory, raw_cora):
    root = tmp_path_factory.mktemp("pyg")
    (root / "cora_ml" / "raw").mkdir(parents=True)
    shutil.copyfile(raw_cora, root / "cora_ml" / "raw" / "cora_ml.npz")
    return load_graph("cora_ml", root, seed=0, download=False)


def _raw_lcc(path):
    """The raw graph's largest connected component computed with SciPy alone: (features rows, labels)."""
    with np.load(path, allow_pickle=False) as raw:
        adjacency = sp.csr_matrix(
            (raw["adj_data"], raw["adj_indices"], raw["adj_indptr"]), shape=tuple(raw["adj_shape"])
        )
        features = sp.csr_matrix(
            (raw["attr_data"], raw["attr_indices"], raw["attr_indptr"]), shape=tuple(raw["attr_shape"])
        )
        labels = raw["labels"]
    _, component = connected_components(adjacency + adjacency.T, directed=False)
    largest = np.argmax(np.bincount(component))
    keep = np.flatnonzero(component == largest)
    return (features[keep] > 0).astype(np.float32), labels[keep], (adjacency + adjacency.T)[keep][:, keep]


def test_cora_ml_is_the_largest_connected_component_with_binary_features(cora, raw_cora):
    graph = cora.graph
    assert tuple(graph.features.shape) == (2810, 2879)
    assert cora.num_classes == 7
    values = graph.features.values()
    assert torch.all(values == 1), "features must be binarised"
    features, labels, adjacency = _raw_lcc(raw_cora)
    assert features.shape == (2810, 2879)
    # the same nodes, in the same order (both keep the original order of the component's nodes)
    np.testing.assert_array_equal(graph.labels, labels)
    np.testing.assert_array_equal(graph.features.to_dense().numpy(), features.toarray())
    ours = sp.coo_matrix((np.ones(graph.edge_index.shape[1]), graph.edge_index.numpy()), shape=(2810, 2810)).tocsr()
    assert (ours != ours.T).nnz == 0, "the graph must be undirected"
    assert ((ours > 0) != (adjacency > 0)).nnz == 0
    assert connected_components(ours, directed=False)[0] == 1


def test_inductive_split_follows_the_paper(cora):
    labels = cora.graph.labels
    train, val, test = cora.train, cora.val, cora.test
    for part in (train, val):
        np.testing.assert_array_equal(np.bincount(labels[part], minlength=7), np.full(7, 20))
    assert len(np.intersect1d(train, val)) == len(np.intersect1d(train, test)) == len(np.intersect1d(val, test)) == 0
    assert len(test) == round(0.1 * (2810 - 280)) == 253
    np.testing.assert_array_equal(cora.test_graph().nodes, test)


def test_split_is_reproducible_by_seed_and_changes_with_it(cora):
    again = inductive_split(cora.graph.labels, seed=0)
    for mine, theirs in zip((cora.train, cora.val, cora.test), again):
        np.testing.assert_array_equal(mine, theirs)
    other = inductive_split(cora.graph.labels, seed=1)
    assert not np.array_equal(other[2], cora.test)


@pytest.mark.parametrize("which", ["training", "validation"])
def test_training_and_validation_graphs_drop_the_held_out_nodes(cora, which):
    graph = cora.graph
    if which == "training":
        sub, targets = cora.training_graph()
        removed, wanted = np.concatenate([cora.val, cora.test]), cora.train
    else:
        sub, targets = cora.validation_graph()
        removed, wanted = cora.test, cora.val
    kept = np.setdiff1d(np.arange(2810), removed)
    assert sub.features.shape[0] == len(kept) == len(sub.labels)
    np.testing.assert_array_equal(sub.features.to_dense().numpy(), graph.features.to_dense().numpy()[kept])
    np.testing.assert_array_equal(sub.labels[targets], graph.labels[wanted])
    # every edge of the subgraph is an edge of the graph between kept nodes, and all such edges are there
    full = {tuple(e) for e in graph.edge_index.T.tolist() if not (set(e) & set(removed.tolist()))}
    mapped = {(int(kept[a]), int(kept[b])) for a, b in sub.edge_index.T.tolist()}
    assert mapped == full


def test_missing_dataset_files_without_download_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"citeseer.*missing.*downloading is off"):
        load_graph("citeseer", tmp_path, download=False)


def test_corrupt_raw_file_is_one_clear_error(tmp_path):
    raw = tmp_path / "cora_ml" / "raw"
    raw.mkdir(parents=True)
    (raw / "cora_ml.npz").write_bytes(b"not an npz archive")
    with pytest.raises(ValueError, match=r"cannot load cora_ml"):
        load_graph("cora_ml", tmp_path, download=False)


def test_unknown_graph_dataset_names_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match=r"data.name='cora'.*cora_ml, citeseer, pubmed"):
        load_graph("cora", tmp_path)
