"""SmoothedClassifier: vote counting, seed streams, graphs as disjoint unions, certify/predict, bad input.

Expected votes come from independent computations: binomial laws of models that read the indicator, per-copy
forward passes of the graph, the closed-form radius of SPEC.md §3, and scipy's binomial test.
"""

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import beta, binomtest, norm

import hiersmooth as hs
from hiersmooth import SmoothedClassifier
from hiersmooth.classifier import ABSTAIN
from hiersmooth.models.graphs import GCN
from hiersmooth.models.images import SmallCNN

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

HIERARCHICAL_GAUSSIAN = {
    "selection": {"kind": "bernoulli", "p": 0.7},
    "noise": {"kind": "gaussian", "sigma": 0.25},
    "indicator": True,
}
HIERARCHICAL_SPARSE = {
    "selection": {"kind": "bernoulli", "p": 0.8},
    "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.6},
    "indicator": True,
}


class IndicatorOfPixel(torch.nn.Module):
    """Class 1 iff pixel (0, 0) was selected (τ channel), else class 0; plus an unused parameter."""

    def __init__(self, classes=3):
        super().__init__()
        self.classes = classes
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z):
        predicted = z[:, -1, 0, 0].long()
        return torch.nn.functional.one_hot(predicted, self.classes).float()


class IndicatorOfNode(torch.nn.Module):
    """Per node: class 1 iff the node was selected (last feature column), else class 0."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, edge_index):
        x = x.to_dense() if x.layout != torch.strided else x
        return torch.nn.functional.one_hot(x[:, -1].long(), 2).float()


class Constant(torch.nn.Module):
    def __init__(self, label, classes):
        super().__init__()
        self.label, self.classes = label, classes
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z):
        return torch.nn.functional.one_hot(torch.full((z.shape[0],), self.label), self.classes).float()


def small_graph(seed=0, nodes=25, features=12):
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.random((nodes, features)) < 0.2, dtype=torch.float32)
    edges = torch.as_tensor(rng.integers(0, nodes, (2, 3 * nodes)))
    return x, torch.cat([edges, edges.flip(0)], dim=1)


def test_image_votes_follow_the_selection_probability():
    classifier = SmoothedClassifier(IndicatorOfPixel(), HIERARCHICAL_GAUSSIAN, 3, seed=3)
    n = 4000
    counts = classifier.count(torch.rand(1, 6, 6), "estimation", n, batch_size=256)
    assert counts.sum() == n and counts[2] == 0
    assert abs(counts[1] - 0.7 * n) < 5 * np.sqrt(n * 0.7 * 0.3)


def test_graph_votes_follow_the_selection_probability_per_node():
    x, edges = small_graph()
    n = 2000
    classifier = SmoothedClassifier(IndicatorOfNode(), HIERARCHICAL_SPARSE, 2, seed=5)
    for features in (x, x.to_sparse_csr()):
        counts = classifier.count(features, "estimation", n, batch_size=16, edge_index=edges, nodes=[0, 3, 24])
        assert counts.shape == (3, 2) and np.all(counts.sum(axis=1) == n)
        assert np.all(np.abs(counts[:, 1] - 0.8 * n) < 5 * np.sqrt(n * 0.8 * 0.2))


@pytest.mark.parametrize("block_size", [None, 7])
def test_votes_do_not_depend_on_the_batch_size(block_size):
    torch.manual_seed(0)
    model = SmallCNN(2, 4)
    image = torch.rand(1, 8, 8)
    votes = [
        SmoothedClassifier(model, HIERARCHICAL_GAUSSIAN, 4, seed=11, block_size=block_size).count(
            image, "estimation", 530, batch
        )
        for batch in (1, 64, 530, 1000)
    ]
    for other in votes[1:]:
        np.testing.assert_array_equal(votes[0], other)


def test_graph_votes_do_not_depend_on_batch_size_or_layout():
    x, edges = small_graph(1)
    torch.manual_seed(1)
    model = GCN(13, 3)
    votes = [
        SmoothedClassifier(model, HIERARCHICAL_SPARSE, 3, seed=2).count(
            features, "estimation", 103, batch, edge_index=edges
        )
        for features in (x, x.to_sparse_csr(), x.to_sparse_coo())
        for batch in (1, 4, 9, 200)
    ]
    for other in votes[1:]:
        np.testing.assert_array_equal(votes[0], other)


def test_votes_do_not_depend_on_the_worker_threads(monkeypatch):
    """Forward passes on 1, 2 or 3 CPU worker threads give the same votes — graphs, and images under the costly
    sparse noise (binary pixels), through ``count`` and ``count_blocks`` — while the cheap gaussian draws keep to
    one worker on two threads; torch's thread count is restored."""
    from hiersmooth import classifier as classifier_module

    x, edges = small_graph(3)
    torch.manual_seed(3)
    gcn, cnn, image = GCN(13, 3), SmallCNN(2, 4), torch.rand(1, 8, 8)
    binary_image = (image > 0.5).float()
    threads = torch.get_num_threads()
    votes, pools = [], []
    monkeypatch.setattr(classifier_module, "ThreadPoolExecutor", _counting_pool(pools))
    try:
        torch.set_num_threads(3)
        for workers in (1, 2, 3):
            monkeypatch.setattr(classifier_module, "CPU_WORKERS", workers)
            sparse_images = SmoothedClassifier(cnn, HIERARCHICAL_SPARSE, 4, seed=6, block_size=10)
            sampler, token = sparse_images.image_sampler(binary_image)
            pools_before = len(pools)
            torch.set_num_threads(2)
            gaussian = SmoothedClassifier(cnn, HIERARCHICAL_GAUSSIAN, 4, seed=6, block_size=10).count(
                image, "estimation", 95, 20
            )
            torch.set_num_threads(3)
            assert len(pools) == pools_before, "cheap gaussian draws started a worker pool on two threads"
            gaussian_on_three = SmoothedClassifier(cnn, HIERARCHICAL_GAUSSIAN, 4, seed=6, block_size=10).count(
                image, "estimation", 95, 20
            )
            votes.append(
                (
                    SmoothedClassifier(gcn, HIERARCHICAL_SPARSE, 3, seed=6).count(
                        x.to_sparse_csr(), "estimation", 50, 8, edge_index=edges
                    ),
                    gaussian,
                    gaussian_on_three,
                    sparse_images.count(binary_image, "estimation", 95, 20),
                    sparse_images.count_blocks([(sampler, token, 0, b, 10) for b in range(6)], "estimation", 20),
                )
            )
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    # gaussian on three threads, graph, sparse image, its blocks: on the workers asked for
    assert pools == [2, 2, 2, 2, 3, 3, 3, 3], pools
    for other in votes:
        np.testing.assert_array_equal(other[1], other[2])  # two threads or three: the same gaussian votes
    for other in votes[1:]:
        for got, expected in zip(other, votes[0]):
            np.testing.assert_array_equal(got, expected)


def _counting_pool(pools: list):
    """A ThreadPoolExecutor that records the worker count of each pool started."""
    from concurrent.futures import ThreadPoolExecutor

    def pool(workers, *arguments, **options):
        pools.append(workers)
        return ThreadPoolExecutor(workers, *arguments, **options)

    return pool


class CountsPasses(torch.nn.Module):
    """Wraps a model and counts its forward passes (a plain int, also from two worker threads at once)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.passes = inner, 0

    def forward(self, *inputs):
        self.passes += 1
        return self.inner(*inputs)


def test_rounds_of_passes_change_no_votes_and_one_worker_yields_after_each_pass(monkeypatch):
    """Passes drawn ahead in rounds of 1, 3 or 8 give the same (next block, counts) sequence on 1 or 2 workers, and
    one worker still yields each pass's counts right after its forward pass (what a checkpoint records)."""
    from hiersmooth import classifier as classifier_module

    x, edges = small_graph(5)
    torch.manual_seed(5)
    gcn, cnn, image = CountsPasses(GCN(13, 3)), CountsPasses(SmallCNN(2, 4)), torch.rand(1, 8, 8)
    graph = SmoothedClassifier(gcn, HIERARCHICAL_SPARSE, 3, seed=4)
    images = SmoothedClassifier(cnn, HIERARCHICAL_GAUSSIAN, 4, seed=4, block_size=10)

    def passes(model, classifier, **arguments):
        model.passes, seen = 0, []
        for stop, counts in classifier.block_votes(batch_size=20, **arguments):
            seen.append((stop, counts.tolist()))
            if classifier_module.CPU_WORKERS == 1:
                assert model.passes == len(seen), "counts held back until the round's last pass"
        return seen

    results = []
    for workers, round_passes in [(1, 1), (1, 3), (1, 8), (2, 3), (2, 8)]:
        monkeypatch.setattr(classifier_module, "CPU_WORKERS", workers)
        monkeypatch.setattr(classifier_module, "ROUND_PASSES", round_passes)
        results.append(
            (
                passes(gcn, graph, x=x.to_sparse_csr(), stage="estimation", n=90, edge_index=edges),
                passes(cnn, images, x=image, stage="selection", n=170, share=(1, 2), first_block=2),
            )
        )
    # graph: 23 blocks of 4, 5 a pass; image: share 1 of 2 from its 3rd block on, 6 blocks of 10, 2 a pass
    assert len(results[0][0]) == 5 and len(results[0][1]) == 3
    for other in results[1:]:
        assert other == results[0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_one_non_finite_logit_anywhere_is_refused(bad, monkeypatch):
    """A single NaN or ±inf logit of one sample, in a later pass of a round, is refused (images and graphs)."""
    from hiersmooth import classifier as classifier_module

    monkeypatch.setattr(classifier_module, "CPU_WORKERS", 1)  # passes in order: the third is the one spoilt

    class Spoils(torch.nn.Module):
        def __init__(self, inner, at_pass):
            super().__init__()
            self.inner, self.at_pass, self.passes = inner, at_pass, 0

        def forward(self, *inputs):
            logits = self.inner(*inputs).clone()
            self.passes += 1
            if self.passes == self.at_pass:
                logits[logits.shape[0] // 2 + 1, 1] = bad
            return logits

    torch.manual_seed(2)
    x, edges = small_graph(2)
    with pytest.raises(ValueError, match=r"Spoils returned non-finite logits .*\(estimation blocks 4-5 of point 0\)"):
        SmoothedClassifier(Spoils(GCN(13, 3), 3), HIERARCHICAL_SPARSE, 3).count(
            x.to_sparse_csr(), "estimation", 40, 8, edge_index=edges
        )
    with pytest.raises(ValueError, match=r"Spoils returned non-finite logits .*\(estimation blocks 2-2 of point 3\)"):
        SmoothedClassifier(Spoils(SmallCNN(2, 4), 3), HIERARCHICAL_GAUSSIAN, 4, block_size=10).count(
            torch.rand(1, 8, 8), "estimation", 50, 10, point=3
        )


def test_seeds_points_and_stages_give_independent_streams():
    torch.manual_seed(0)
    model, image = SmallCNN(2, 4), torch.rand(1, 8, 8)

    def samples(seed, point, stage):
        classifier = SmoothedClassifier(model, HIERARCHICAL_GAUSSIAN, 4, seed=seed)
        plan = classifier.seed_plan(graph=False)
        return classifier.smoothing.sample(image, 5, plan.generator(point, stage, 0))

    reference = samples(1, 0, "selection")
    assert torch.equal(reference, samples(1, 0, "selection"))
    for other in (samples(2, 0, "selection"), samples(1, 1, "selection"), samples(1, 0, "estimation")):
        assert not torch.equal(reference, other)


@pytest.mark.parametrize("seed, point", [(0, 0), (7, 3), (2**70 + 5, 2**40)])
def test_block_seeds_are_numpys_seed_sequence_of_the_block(seed, point):
    """The seed plan's formula (``hiersmooth.seeds``), computed here with NumPy alone: the first 64-bit word of
    SeedSequence([seed, point, stage, block]) cut to 63 bits — for blocks asked together, in any order."""
    plan = SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 3, seed=seed).seed_plan(graph=False)
    blocks = [5, 0, 2**33, 5]
    for stage, number in {"selection": 0, "estimation": 1, "prediction": 2}.items():
        expected = [
            int(np.random.SeedSequence([seed, point, number, b]).generate_state(1, np.uint64)[0]) % 2**63
            for b in blocks
        ]
        assert plan.block_seeds(point, stage, blocks) == expected
        generator = plan.generator(point, stage, 2**33)
        reference = torch.Generator().manual_seed(expected[2])
        assert torch.equal(torch.rand(4, generator=generator), torch.rand(4, generator=reference))


def test_disjoint_union_equals_one_forward_pass_per_copy():
    """Votes of the batched union equal votes counted copy by copy on the same samples."""
    x, edges = small_graph(2)
    torch.manual_seed(2)
    model = GCN(13, 3).eval()
    classifier = SmoothedClassifier(model, HIERARCHICAL_SPARSE, 3, seed=4, block_size=6)
    plan = classifier.seed_plan(graph=True)
    expected = np.zeros((x.shape[0], 3), dtype=np.int64)
    for block, size in enumerate(plan.blocks(18)):
        samples = classifier.smoothing.sample(x, size, plan.generator(0, "estimation", block))
        for copy in samples:
            with torch.no_grad():
                predicted = model(copy, edges).argmax(1).numpy()
            expected[np.arange(x.shape[0]), predicted] += 1
    counted = classifier.count(x, "estimation", 18, batch_size=18, edge_index=edges)
    np.testing.assert_array_equal(counted, expected)


def test_certify_constant_model_gives_the_closed_form_radius():
    n0, n, alpha, sigma, p = 50, 1000, 0.01, 0.25, 0.7
    result = SmoothedClassifier(Constant(2, 3), HIERARCHICAL_GAUSSIAN, 3).certify(
        torch.rand(1, 5, 5), n0, n, alpha, 128, label=2
    )
    np.testing.assert_array_equal(result.pre_votes, [[0, 0, n0]])
    np.testing.assert_array_equal(result.votes, [[0, 0, n]])
    assert result.selected.tolist() == [2] and result.correct.tolist() == [True]
    p_a = beta.ppf(alpha, n, 1)  # one-sided Clopper–Pearson lower bound with all n votes for A
    assert result.binary.p_lower[0] == pytest.approx(p_a, rel=1e-9)
    for r in (1, 2):
        delta = 1 - p**r
        expected = (
            sigma * (norm.ppf((p_a - delta) / (1 - delta)) - norm.ppf(1 / (2 * (1 - delta)))) if 1 - delta > 0.5 else 0
        )
        assert result.binary.largest_l2([r])[0, 0] == pytest.approx(max(expected, 0), abs=1e-9)


def test_predict_matches_scipy_binomial_test_and_abstains_on_a_coin():
    image = torch.rand(1, 6, 6)
    assert SmoothedClassifier(Constant(1, 3), HIERARCHICAL_GAUSSIAN, 3).predict(image, 30, 0.01, 10) == 1
    coin = {"selection": {"kind": "bernoulli", "p": 0.5}, "noise": {"kind": "ablation"}, "indicator": True}
    classifier = SmoothedClassifier(IndicatorOfPixel(), coin, 3, seed=8)
    counts = classifier.count(image, "prediction", 200, 50)
    top, second = sorted(counts, reverse=True)[:2]
    significant = binomtest(int(top), int(top + second), 0.5).pvalue <= 0.05
    prediction = classifier.predict(image, 200, 0.05, 50)
    assert prediction == (int(np.argmax(counts)) if significant else ABSTAIN)
    skewed = {"selection": {"kind": "bernoulli", "p": 0.95}, "noise": {"kind": "ablation"}, "indicator": True}
    assert SmoothedClassifier(IndicatorOfPixel(), skewed, 3, seed=8).predict(image, 200, 0.01, 50) == 1


def test_learnable_ablation_token_of_the_model_is_used():
    class SeesToken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ablation_token = torch.nn.Parameter(torch.tensor([0.375]))

        def forward(self, z):  # class 1 iff pixel (0, 0) holds the token value
            return torch.nn.functional.one_hot((z[:, 0, 0, 0] == 0.375).long(), 2).float()

    config = {"selection": {"kind": "bernoulli", "p": 0.6}, "noise": {"kind": "ablation"}, "indicator": True}
    n = 2000
    counts = SmoothedClassifier(SeesToken(), config, 2, seed=1).count(torch.zeros(1, 4, 4), "estimation", n, 500)
    assert abs(counts[1] - 0.6 * n) < 5 * np.sqrt(n * 0.6 * 0.4)


def test_a_learnable_token_with_sparse_features_is_refused_not_ignored():
    from hiersmooth.models.graphs import GCN

    model = GCN(5, 2, token_width=4)
    config = {"selection": {"kind": "bernoulli", "p": 0.5}, "noise": {"kind": "ablation"}, "indicator": True}
    features = (torch.rand(6, 4) < 0.5).float()
    edges = torch.tensor([[0, 1, 2], [1, 2, 3]])
    classifier = SmoothedClassifier(model, config, 2)
    with pytest.raises(ValueError, match="learnable ablation_token, which needs dense features"):
        classifier.count(features.to_sparse_csr(), "estimation", 4, 4, edge_index=edges)
    assert classifier.count(features, "estimation", 4, 4, edge_index=edges).sum() == 6 * 4


def test_model_mode_is_restored_and_no_gradients_are_kept():
    model = SmallCNN(2, 3).train()
    SmoothedClassifier(model, HIERARCHICAL_GAUSSIAN, 3).count(torch.rand(1, 8, 8), "estimation", 20, 10)
    assert model.training
    assert all(parameter.grad is None for parameter in model.parameters())


class Recorder(torch.nn.Module):
    """Keeps a copy of every batch it is given; class 0 for all."""

    def __init__(self, classes=3):
        super().__init__()
        self.classes, self.batches = classes, []
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z):
        self.batches.append(z.clone())
        return torch.zeros(z.shape[0], self.classes)


def test_an_input_that_requires_grad_gets_the_same_samples_and_the_caller_keeps_its_mode():
    """σ = 0.3: x + σ·ε rounds differently when autograd records the draw (the two constructions of the gaussian
    draw); count draws without autograd, so the samples are those of the same x without requires_grad, bit for bit."""
    smoothing = {**HIERARCHICAL_GAUSSIAN, "noise": {"kind": "gaussian", "sigma": 0.3}}
    image = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(2))
    recorded = []
    for x in (image, image.clone().requires_grad_()):
        model = Recorder()
        classifier = SmoothedClassifier(model, smoothing, 3, seed=4)
        for _ in classifier.block_votes(x, "estimation", 300, 100):
            assert not torch.is_inference_mode_enabled()  # the draws' inference mode ends before each yield
        recorded.append(torch.cat(model.batches))
    assert recorded[0].shape == (300, 2, 6, 6)
    assert torch.equal(recorded[0], recorded[1])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c, x, e: c.count(x[None], "estimation", 10, 5), r"x: an image must be a dense \(C, H, W\) tensor"),
        (lambda c, x, e: c.count(x, "estimation", 0, 5), "n=0: must be an integer >= 1"),
        (lambda c, x, e: c.count(x, "estimation", 10, 0), "batch_size=0: must be an integer >= 1"),
        (lambda c, x, e: c.count(x, "estimation", 10, 5, nodes=[1]), "nodes: only a graph"),
    ],
)
def test_bad_image_input(call, message):
    classifier = SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 3)
    with pytest.raises(ValueError, match=message):
        call(classifier, torch.rand(1, 6, 6), None)


class Returns(torch.nn.Module):
    """Returns ``make(batch)`` whatever the input."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def forward(self, z, *edges):
        return self.make(z.shape[0])


@pytest.mark.parametrize(
    "make, described",
    [
        (lambda b: torch.ones(b, 3, dtype=torch.bool), r"a bool tensor of shape \([14], 3\)"),
        (lambda b: torch.ones(b, 3).to_sparse(), r"a sparse tensor of shape \([14], 3\)"),
        (lambda b: torch.ones(b, 3, device="meta"), r"a meta tensor of shape \([14], 3\)"),
        (lambda b: torch.nested.nested_tensor([torch.ones(3)] * b), "a nested tensor"),
        (lambda b: torch.ones(b, 3).numpy(), "a ndarray"),
    ],
    ids=["bool", "sparse", "meta", "nested", "numpy"],
)
def test_logits_that_are_not_a_dense_real_tensor_are_refused_in_one_line(make, described):
    classifier = SmoothedClassifier(Returns(make), HIERARCHICAL_GAUSSIAN, 3)
    expected = rf"model: Returns returned {described} for 4 samples .*expected a \(4, 3\) tensor of real logits"
    with pytest.raises(ValueError, match=expected):
        classifier.count(torch.rand(1, 4, 4), "estimation", 4, 4)
    with pytest.raises(ValueError, match=rf"model: Returns returned {described}; expected a \(batch, classes\)"):
        classifier.output_width(torch.rand(1, 4, 4))


class MustNotRun(torch.nn.Module):
    """A model that fails the test if it is ever called."""

    def forward(self, z):
        raise AssertionError("a sample was classified before the options were checked")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c, x: c.certify(x, 0, 10), "n0=0: must be an integer >= 1"),
        (lambda c, x: c.certify(x, 10, 10, alpha=1.5), r"alpha=1.5: must be in \(0, 1\)"),
        (lambda c, x: c.certify(x, 10, 10, runner_up="second"), "runner_up='second': must be one of"),
        (lambda c, x: c.certify_dataset(x[None], 0, 10), "n0=0: must be an integer >= 1"),
        (lambda c, x: c.certify_dataset(x[None], 10, 10, alpha=0), r"alpha=0: must be in \(0, 1\)"),
        (lambda c, x: c.certify_dataset(x[None], 10, 10, batch_size=0), "batch_size=0: must be an integer >= 1"),
        (lambda c, x: c.certify_dataset(x[None], 10, 10, eps=[0.5]), "eps: the threat grid of the files written"),
        (lambda c, x: c.certify_dataset(x[None], 10, 10, out="unused", rows="1-x"), "--rows='1-x': must be a"),
        (lambda c, x: c.certify_dataset(x[None], 10, 10, out="unused", epsilon=[1]), "--epsilon is no threat axis"),
        (lambda c, x: c.certify_dataset(x[None], 10, 10, out="unused", eps=[-1]), "eps: values must be finite"),
    ],
)
def test_certify_options_are_checked_before_a_sample_is_drawn(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    classifier = SmoothedClassifier(MustNotRun(), HIERARCHICAL_GAUSSIAN, 3)
    with pytest.raises(ValueError, match=message):
        call(classifier, torch.rand(1, 4, 4))
    assert not (tmp_path / "unused").exists()


def test_bad_graph_input_and_models():
    x, edges = small_graph()
    classifier = SmoothedClassifier(GCN(13, 3), HIERARCHICAL_SPARSE, 3)
    with pytest.raises(ValueError, match=r"edge_index: node indices must lie in \[0, 24\]"):
        classifier.count(x, "estimation", 4, 4, edge_index=edges + 1)
    with pytest.raises(ValueError, match=r"nodes: must be a non-empty list of node indices in \[0, 24\]"):
        classifier.count(x, "estimation", 4, 4, edge_index=edges, nodes=[25])
    with pytest.raises(ValueError, match="sparse noise needs binary features"):
        classifier.count(x * 0.5, "estimation", 4, 4, edge_index=edges)
    with pytest.raises(
        ValueError,
        match=r"model: Constant returned a tensor of shape \(4, 2\) for 4 samples .*expected a \(4, 3\)",
    ):
        SmoothedClassifier(Constant(0, 2), HIERARCHICAL_GAUSSIAN, 3).count(torch.rand(1, 4, 4), "estimation", 4, 4)

    class Complex(torch.nn.Module):
        def forward(self, x):
            return torch.ones(x.shape[0], 3, dtype=torch.complex64)

    with pytest.raises(
        ValueError, match=r"model: Complex returned a complex tensor of shape \(4, 3\) .*tensor of real logits"
    ):
        SmoothedClassifier(Complex(), HIERARCHICAL_GAUSSIAN, 3).count(torch.rand(1, 4, 4), "estimation", 4, 4)
    with pytest.raises(ValueError, match="model: must be a torch.nn.Module"):
        SmoothedClassifier(lambda z: z, HIERARCHICAL_GAUSSIAN, 3)
    with pytest.raises(ValueError, match="num_classes=1: must be >= 2"):
        SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 1)
    with pytest.raises(ValueError, match="seed=-1"):
        SmoothedClassifier(SmallCNN(2, 3), hs.from_config(HIERARCHICAL_GAUSSIAN), 3, seed=-1)
    with pytest.raises(ValueError, match="autocast='no': must be True or False"):
        SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 3, autocast="no")
    with pytest.raises(ValueError, match="progress=1: must be True or False"):
        SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 3, progress=1)
    with pytest.raises(ValueError, match="block_size=0: must be an integer >= 1"):
        SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 3, block_size=0)
    with pytest.raises(ValueError, match="device='tpu': not a torch device"):
        SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 3, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda:1': CUDA is not available on this machine"):
            SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 3, device="cuda:1")
    classifier = SmoothedClassifier(SmallCNN(2, 3), HIERARCHICAL_GAUSSIAN, 3)
    for call, message in [
        (lambda: classifier.count(torch.rand(1, 4, 4), "estimate", 4, 4), "stage='estimate': must be one of selection"),
        (lambda: classifier.count(torch.rand(1, 4, 4), "estimation", 4, 4, point=-1), "point=-1: must be an integer"),
        (lambda: classifier.predict(torch.rand(1, 4, 4), 4, point=1.5), "point=1.5: must be an integer >= 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
