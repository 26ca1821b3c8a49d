"""No silent wrong answer with the user's own objects (issue 16): node masks, edge caches, tensor layouts, modules
on the command line, class counts, weights, the α default, discoverability, graph signatures, model outputs."""

import inspect
import os
import pydoc
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import hiersmooth as hs
from hiersmooth import SmoothedClassifier
from hiersmooth import classifier as classifier_module
from hiersmooth.certify.certification import certify_votes
from hiersmooth.cli import build_parser, main
from hiersmooth.inputs import Graph, load_arrays
from hiersmooth.models.graphs import GCN

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

GAUSSIAN = {
    "selection": {"kind": "bernoulli", "p": 0.7},
    "noise": {"kind": "gaussian", "sigma": 0.25},
    "indicator": True,
}
SPARSE = {
    "selection": {"kind": "bernoulli", "p": 0.8},
    "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.6},
    "indicator": True,
}
GAUSSIAN_FILE = "configs/smoothing/cifar10_hierarchical_gaussian.yaml"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_graph(seed=0, nodes=12, width=6):
    rng = np.random.default_rng(seed)
    x = torch.as_tensor((rng.random((nodes, width)) < 0.3).astype(np.float32))
    edges = torch.as_tensor(rng.integers(0, nodes, (2, 30)))
    return x.to_sparse_csr(), edges


def gcn(width=7, classes=3, seed=0):
    torch.manual_seed(seed)
    return GCN(width, classes)


# 1. masks are masks ---------------------------------------------------------------------------------------------
def test_a_boolean_node_mask_selects_those_nodes():
    x, edges = small_graph()
    mask = torch.zeros(12, dtype=torch.bool)
    mask[[2, 5, 7]] = True
    classifier = SmoothedClassifier(gcn(), SPARSE, 3)
    by_index = classifier.certify(x, 8, 20, batch_size=8, edge_index=edges, nodes=torch.tensor([2, 5, 7]))
    for given in (mask, mask.numpy()):
        by_mask = classifier.certify(x, 8, 20, batch_size=8, edge_index=edges, nodes=given)
        assert by_mask.votes.shape == (3, 3)
        np.testing.assert_array_equal(by_mask.votes, by_index.votes)
        np.testing.assert_array_equal(by_mask.pre_votes, by_index.pre_votes)
    prediction = classifier.predict(x, 20, batch_size=8, edge_index=edges, nodes=mask)
    assert prediction.shape == (3,)


@pytest.mark.parametrize(
    "nodes, message",
    [
        (torch.ones(12), "float32"),
        (np.ones(12, dtype=np.float64), "float64"),
        (torch.ones(11, dtype=torch.bool), "length 11"),
        (np.ones(13, dtype=bool), "length 13"),
        ([], "no target nodes"),
        (np.zeros(12, dtype=bool), "the boolean mask selects no node"),
        ([3, 1, 3], "node 3 is given 2 times"),
    ],
)
def test_other_node_selections_are_refused_in_one_line(nodes, message):
    x, edges = small_graph()
    classifier = SmoothedClassifier(gcn(), SPARSE, 3)
    with pytest.raises(ValueError, match="nodes") as error:
        classifier.certify(x, 4, 4, batch_size=4, edge_index=edges, nodes=nodes)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_graph_files_and_graph_objects_read_masks_as_masks(tmp_path):
    x, edges = small_graph()
    mask = np.zeros(12, dtype=bool)
    mask[[1, 4]] = True
    np.savez(
        tmp_path / "mask.npz",
        features=x.to_dense().numpy(),
        edge_index=edges.numpy(),
        labels=np.zeros(12, int),
        nodes=mask,
    )
    assert load_arrays(tmp_path / "mask.npz").nodes.tolist() == [1, 4]
    assert Graph(x, edges, np.zeros(12, int), mask).nodes.tolist() == [1, 4]
    np.savez(
        tmp_path / "float.npz",
        features=x.to_dense().numpy(),
        edge_index=edges.numpy(),
        labels=np.zeros(12, int),
        nodes=mask.astype(float),
    )
    with pytest.raises(ValueError, match="nodes.*float64"):
        load_arrays(tmp_path / "float.npz")
    with pytest.raises(ValueError, match="length 3"):
        Graph(x, edges, np.zeros(12, int), mask[:3])


# 2. the union-edge cache cannot be fooled by recycled memory ------------------------------------------------------
def test_edge_cache_follows_the_edges_not_their_address():
    x, _ = small_graph()
    model = gcn()
    classifier = SmoothedClassifier(model, SPARSE, 3)
    rng = np.random.default_rng(1)
    edges = torch.as_tensor(rng.integers(0, 12, (2, 30)))
    classifier.count(x, "estimation", 16, 8, edge_index=edges)
    edges.copy_(torch.as_tensor(rng.integers(0, 12, (2, 30))))  # same tensor, same address, other edges
    fresh = SmoothedClassifier(model, SPARSE, 3)
    np.testing.assert_array_equal(
        classifier.count(x, "estimation", 16, 8, edge_index=edges),
        fresh.count(x, "estimation", 16, 8, edge_index=edges),
    )
    for _ in range(5):  # freed and reallocated tensors of the same shape (often at the same address)
        del edges
        edges = torch.as_tensor(rng.integers(0, 12, (2, 30)))
        fresh = SmoothedClassifier(model, SPARSE, 3)
        np.testing.assert_array_equal(
            classifier.count(x, "estimation", 16, 8, edge_index=edges),
            fresh.count(x, "estimation", 16, 8, edge_index=edges),
        )


# 3. samples are contiguous NCHW -----------------------------------------------------------------------------------
class Flat(torch.nn.Module):
    """A model that flattens with ``view``, which needs a contiguous input."""

    def __init__(self, channels=2, size=4, classes=3):
        super().__init__()
        self.linear = torch.nn.Linear(channels * size * size, classes)

    def forward(self, z):
        return self.linear(z.view(z.shape[0], -1))


def test_a_view_based_model_trains_and_certifies():
    smoothing = hs.from_config(GAUSSIAN)
    images = torch.rand(5, 1, 4, 4)
    noisy = smoothing.sample_each(images, torch.Generator().manual_seed(0))
    assert noisy.shape == (5, 2, 4, 4) and noisy.is_contiguous()
    model = Flat()
    model(noisy).sum().backward()
    assert smoothing.sampler(images[0]).draw(3, torch.Generator().manual_seed(0)).is_contiguous()
    result = SmoothedClassifier(model, smoothing, 3).certify(images[0], 10, 30, batch_size=7)
    assert result.votes.sum() == 30


@pytest.mark.parametrize(
    "image",
    [
        torch.rand(4, 4, 3).permute(2, 0, 1),  # channels last in memory: the pixels are not value-major rows
        torch.tensor([[[-0.0, 0.5, 0.25, 1.0]] * 4]),  # −0 takes the draw's other construction (torch.where)
    ],
    ids=["strided image", "negative zero"],
)
def test_images_drawn_the_other_ways_are_contiguous_too(image):
    smoothing = hs.from_config(GAUSSIAN)
    assert smoothing.sampler(image).draw(3, torch.Generator().manual_seed(0)).is_contiguous()
    result = SmoothedClassifier(Flat(image.shape[0] + 1), smoothing, 3).certify(image, 10, 30, batch_size=7)
    assert result.votes.sum() == 30


# 4.-6. the command line: modules from the working directory, the class count, weights ---------------------------
@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", images=rng.random((2, 1, 4, 4)).astype(np.float32), labels=np.array([0, 1]))
    (tmp_path / "usermodels16.py").write_text(
        "from hiersmooth.models.images import SmallCNN\n"
        "def make(width, classes):\n    return SmallCNN(width, classes)\n"
        "def make_four(width, classes):\n    return SmallCNN(width, 4)\n"
        "def one_argument(width):\n    return SmallCNN(width, 3)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", REPO, os.getcwd())])
    sys.modules.pop("usermodels16", None)
    yield tmp_path
    sys.modules.pop("usermodels16", None)


def certify_args(model, *extra):
    return [
        "certify",
        "--smoothing",
        os.path.join(REPO, GAUSSIAN_FILE),
        "--model",
        model,
        "--data",
        "images.npz",
        "--n0",
        "4",
        "--n",
        "8",
        "--no-progress",
        "--rows",
        "1",
        "--eps",
        "0",
        "--out",
        "out",
        *extra,
    ]


def one_line_error(capsys):
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error
    return error


def test_the_cli_imports_a_module_from_the_working_directory(user_folder, capsys):
    assert main(certify_args("usermodels16:make", "--num-classes", "3", "--random-weights")) == 0, (
        capsys.readouterr().err
    )
    assert (user_folder / "out" / "votes.npz").exists()


def test_a_failed_import_names_the_directory_and_pythonpath(user_folder, capsys):
    assert main(certify_args("nosuchmodule16:make", "--num-classes", "3", "--random-weights")) == 2
    error = one_line_error(capsys)
    assert str(user_folder) in error and "PYTHONPATH" in error


def test_a_factory_with_the_wrong_signature_is_named(user_folder, capsys):
    assert main(certify_args("usermodels16:one_argument", "--num-classes", "3", "--random-weights")) == 2
    error = one_line_error(capsys)
    assert "usermodels16:one_argument" in error and "(input_width, num_classes)" in error


def test_the_class_count_is_never_taken_from_the_labels(user_folder, capsys):
    assert main(certify_args("usermodels16:make", "--random-weights")) == 2  # labels 0-1 must not build 2 classes
    assert "--num-classes" in one_line_error(capsys)


def test_a_class_count_mismatch_names_all_sources(user_folder, capsys):
    assert main(certify_args("usermodels16:make_four", "--num-classes", "3", "--random-weights")) == 2
    error = one_line_error(capsys)
    assert "--num-classes 3" in error and "model output 4" in error and "checkpoint" in error


def test_certifying_without_weights_needs_random_weights(user_folder, capsys):
    assert main(certify_args("usermodels16:make", "--num-classes", "3")) == 2
    error = one_line_error(capsys)
    assert "--weights" in error and "--random-weights" in error
    assert not (user_folder / "out" / "votes.npz").exists()


# 7. one α default -------------------------------------------------------------------------------------------------
def test_one_alpha_default_everywhere():
    from hiersmooth.defaults import DEFAULT_ALPHA

    assert DEFAULT_ALPHA == 0.01
    for function in (SmoothedClassifier.certify, SmoothedClassifier.predict, certify_votes):
        assert inspect.signature(function).parameters["alpha"].default == DEFAULT_ALPHA, function
    parser = build_parser()
    assert parser.parse_args(["certify", "--out", "x"]).alpha == DEFAULT_ALPHA
    assert parser.parse_args(["certify-votes", "v.npz", "--smoothing", "s", "--out", "x"]).alpha == DEFAULT_ALPHA


# 8. discoverability -----------------------------------------------------------------------------------------------
def test_dir_and_help_list_every_public_name_without_importing_torch():
    code = (
        "import sys, hiersmooth; names = dir(hiersmooth); "
        "assert 'torch' not in sys.modules, 'import/dir imported torch'; "
        "assert set(hiersmooth.__all__) <= set(names), set(hiersmooth.__all__) - set(names); "
        "assert 'SmoothedClassifier' in hiersmooth.__all__; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    text = pydoc.render_doc(hs, renderer=pydoc.plaintext)
    for name in hs.__all__:
        assert name in text, name


def test_public_names_have_numpy_docstrings_with_arguments_and_the_guarantee():
    assert "Initialize self" not in pydoc.render_doc(SmoothedClassifier.__init__, renderer=pydoc.plaintext)
    init = inspect.getdoc(SmoothedClassifier.__init__) or ""
    for argument in ("model", "smoothing", "num_classes", "seed", "block_size", "device", "autocast", "progress"):
        assert argument in init, argument
    for method, arguments in (
        (
            SmoothedClassifier.certify,
            (
                "x",
                "n0",
                "n",
                "alpha",
                "batch_size",
                "label",
                "point",
                "edge_index",
                "edge_weight",
                "nodes",
                "runner_up",
            ),
        ),
        (SmoothedClassifier.predict, ("x", "n", "alpha", "batch_size", "point", "edge_index", "nodes")),
    ):
        doc = inspect.getdoc(method)
        assert "Parameters\n----------" in doc and "Returns\n-------" in doc, method
        assert "1 − α" in doc and "probability" in doc, method
        for argument in arguments:
            assert f"\n{argument} :" in doc, (method, argument)
        assert "seed" in doc  # point: which seed stream
    for name in ("count", "block_votes", "seed_plan", "output_width"):
        assert "Parameters\n----------" in inspect.getdoc(getattr(SmoothedClassifier, name)), name
    for name in hs.__all__:
        assert inspect.getdoc(getattr(hs, name)), name


# 9. graph models: edge weights, signatures, dense features --------------------------------------------------------
class WeightedDegree(torch.nn.Module):
    """Class 1 for a node whose incoming edge weights sum to more than 1.5, else class 0 (ignores the noise)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))
        self.weights_seen = []

    def forward(self, x, edge_index, edge_weight=None):
        weight = torch.ones(edge_index.shape[1]) if edge_weight is None else edge_weight
        self.weights_seen.append(weight)
        degree = torch.zeros(x.shape[0]).index_add_(0, edge_index[1], weight)
        return torch.nn.functional.one_hot((degree > 1.5).long(), 2).float()


def test_edge_weights_are_passed_through_the_union():
    x, edges = small_graph()
    weight = torch.linspace(0.1, 1.0, edges.shape[1])
    model = WeightedDegree()
    result = SmoothedClassifier(model, SPARSE, 2).certify(x, 4, 12, batch_size=8, edge_index=edges, edge_weight=weight)
    degree = torch.zeros(12).index_add_(0, edges[1], weight)
    expected = np.zeros((12, 2), dtype=int)
    expected[np.arange(12), (degree > 1.5).long().numpy()] = 12
    np.testing.assert_array_equal(result.votes, expected)
    assert all(
        seen.shape[0] % edges.shape[1] == 0 and torch.equal(seen, weight.repeat(seen.shape[0] // edges.shape[1]))
        for seen in model.weights_seen
    )
    with pytest.raises(ValueError, match="edge_weight"):
        SmoothedClassifier(model, SPARSE, 2).certify(x, 4, 4, edge_index=edges, edge_weight=weight[:-1])
    nan = weight.clone()
    nan[3] = float("nan")
    with pytest.raises(ValueError, match=r"edge_weight: must be finite numbers \(found NaN or infinity\)"):
        SmoothedClassifier(model, SPARSE, 2).certify(x, 4, 4, edge_index=edges, edge_weight=nan)
    unweighted = gcn()  # forward(x, edge_index): the weights would be a fourth positional argument
    with pytest.raises(ValueError, match=r"edge_weight: GCN.forward\(x, edge_index\) takes no edge weights"):
        SmoothedClassifier(unweighted, SPARSE, 3).certify(x, 4, 4, edge_index=edges, edge_weight=weight)


class TakesData(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(7, 3)

    def forward(self, data):
        return self.linear(data.x)


def test_a_forward_data_model_is_told_the_expected_signature():
    x, edges = small_graph()
    with pytest.raises(ValueError, match=r"TakesData.*forward\(x, edge_index"):
        SmoothedClassifier(TakesData(), SPARSE, 3).certify(x, 4, 4, edge_index=edges)


def test_dense_graph_features_work_with_a_one_time_notice(monkeypatch):
    monkeypatch.setattr(classifier_module, "_dense_notice_given", False)
    x, edges = small_graph()
    classifier = SmoothedClassifier(gcn(), SPARSE, 3)
    with pytest.warns(UserWarning, match=r"sparse CSR.*faster") as caught:
        dense = classifier.count(x.to_dense(), "estimation", 8, 8, edge_index=edges)
        classifier.count(x.to_dense(), "estimation", 8, 8, edge_index=edges)
    assert sum("sparse CSR" in str(w.message) for w in caught) == 1
    assert dense.sum() == 12 * 8


# 10. model outputs are checked ------------------------------------------------------------------------------------
class NaNModel(Flat):
    def forward(self, z):
        return super().forward(z) * float("nan")


class TupleModel(Flat):
    def forward(self, z):
        return super().forward(z), None


def test_non_finite_logits_are_refused_naming_the_model_and_batch():
    with pytest.raises(ValueError, match="NaNModel.*non-finite.*batch") as error:
        SmoothedClassifier(NaNModel(), GAUSSIAN, 3).certify(torch.rand(1, 4, 4), 4, 4)
    assert "\n" not in str(error.value)


def test_an_output_that_is_not_a_logits_tensor_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"TupleModel.*tuple.*expected a \(4, 3\)") as error:
        SmoothedClassifier(TupleModel(), GAUSSIAN, 3).certify(torch.rand(1, 4, 4), 4, 4)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"expected a \(4, 2\)"):
        SmoothedClassifier(Flat(), GAUSSIAN, 2).certify(torch.rand(1, 4, 4), 4, 4)
    x, edges = small_graph()
    with pytest.raises(ValueError, match=r"GCN.*expected a \(\d+, 4\)"):
        SmoothedClassifier(gcn(), SPARSE, 4).certify(x, 4, 4, edge_index=edges)
