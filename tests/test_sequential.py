"""Sequential certification at target threats (SPEC.md §7): valid at the threshold, naive stopping is not, the same
votes as fixed n where it does not stop, independent of batch size, resumable, and refused where unsound.

Validity is checked where it is tightest: points whose class probability is exactly at a target's threshold (the
largest p_A at which the target is not certified). There every certificate is an error, so over many independent
points the share certified must stay within α (binomial tolerance). Clopper–Pearson at α after every round — the
naive procedure — fails the same test, which shows the test can fail.
"""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
import torch
from scipy.stats import norm

import hiersmooth
from hiersmooth import Threat, from_config
from hiersmooth.certify.bounds import clopper_pearson_lower, clopper_pearson_upper
from hiersmooth.certify.certificates import Certificate
from hiersmooth.certify.confidence_sequences import BetaBinomialSequence, Procedure, ScheduledClopperPearson
from hiersmooth.certify.sequential import CERTIFIED, DEFAULT_PROCEDURE, OPEN, SequentialTest
from hiersmooth.certify.votes import load_votes
from hiersmooth.cli import main

SMOOTHING = {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "gaussian", "sigma": 0.25}}
TARGET = Threat(rows=1, l2=0.2)


class NaivePerLook(Procedure):
    """Clopper–Pearson at α after every block, as if each look were the only one: invalid under optional stopping."""

    name = "naive"

    def looks(self, n_max, block_size):
        return [*range(block_size, n_max, block_size), n_max]

    def lower(self, k, n, alpha, looks):
        return clopper_pearson_lower(k, n, alpha)

    def upper(self, k, n, alpha, looks):
        return clopper_pearson_upper(k, n, alpha)

    def to_record(self):
        return {"procedure": self.name}


def threshold(smoothing, certificate: str, target: Threat) -> float:
    """The largest p_A (with p_B = 1 − p_A) at which ``target`` is not certified, by bisection on the engine."""
    low, high = 0.0, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        bounds = (np.array([middle]), None if certificate == "binary" else np.array([1 - middle]))
        if Certificate(certificate, smoothing, *bounds).certified(target)[0]:
            high = middle
        else:
            low = middle
    return low


def simulate(test: SequentialTest, probabilities, points: int, seed: int) -> np.ndarray:
    """The decisions of ``points`` independent sequential runs whose samples vote class k with probability
    ``probabilities[k]`` (class A = 0), drawn look by look; a point leaves once decided, as in a run."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((points, len(probabilities)), dtype=np.int64)
    states = np.zeros((points, 2, len(test.targets)), dtype=np.int8)
    running, previous = np.ones(points, dtype=bool), 0
    for look in test.looks:
        at = np.flatnonzero(running)
        if not at.size:
            break
        counts[at] += rng.multinomial(look - previous, probabilities, size=at.size)
        states[at] = test.decide(counts[at], look, np.zeros(at.size, dtype=np.int64), states[at])
        running[at] = (states[at] == OPEN).any(axis=(1, 2))
        previous = look
    return states


ALPHA, POINTS = 0.05, 2000
TOLERANCE = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / POINTS)


@pytest.mark.parametrize("certificate", ["binary", "multiclass"])
@pytest.mark.parametrize("procedure", [ScheduledClopperPearson(), BetaBinomialSequence()], ids=lambda p: p.name)
def test_at_the_threshold_the_share_certified_stays_within_alpha(certificate, procedure):
    smoothing = from_config(SMOOTHING)
    p = threshold(smoothing, certificate, TARGET)
    assert 0.6 < p < 0.99  # a threshold the samples can straddle
    test = SequentialTest(smoothing, (TARGET,), procedure, ALPHA, 10_000, 100, 2)
    states = simulate(test, [p, 1 - p], POINTS, seed=1)
    share = (states[:, ["binary", "multiclass"].index(certificate), 0] == CERTIFIED).mean()
    assert share <= TOLERANCE, f"{procedure.name}: {share:.4f} of points at the threshold certified (α = {ALPHA})"


@pytest.mark.parametrize(
    "procedure",
    [ScheduledClopperPearson(), ScheduledClopperPearson(first=10, growth=1.1), BetaBinomialSequence(a=0.01, b=0.01)],
    ids=["default", "dense-looks", "u-shaped-mixture"],
)
def test_no_point_is_certified_before_the_all_a_floor(procedure):
    """Even when every vote is for A, no valid procedure certifies target T before m = ⌈ln α / ln t⌉ samples, t the
    binary threshold: at p_A = t (the rest on one class, where T is not certified) the all-A path has probability
    t^m > α below it. An independent check of every bound the decisions use, and that they do certify later."""
    smoothing, alpha = from_config(SMOOTHING), 0.01
    targets = [Threat(rows=1, l2=0.1), Threat(rows=1, l2=0.4), Threat(rows=2, l2=0.3)]
    floors = [math.ceil(math.log(alpha) / math.log(threshold(smoothing, "binary", t))) for t in targets]
    assert 20 < min(floors) and max(floors) < 5_000
    test = SequentialTest.of(smoothing, targets, procedure, alpha, n_max=20_000, block_size=10, classes=3)
    states = np.zeros((1, 2, len(targets)), dtype=np.int8)
    first = np.full((2, len(targets)), -1)
    for n in test.looks:
        states = test.decide(np.array([[n, 0, 0]]), n, np.array([0]), states)
        first[(states[0] == CERTIFIED) & (first < 0)] = n
    assert (first > 0).all(), first  # every target certified by 20,000 votes for A ...
    assert (first >= np.array(floors)).all(), (first, floors)  # ... none before its floor


def test_clopper_pearson_after_every_round_is_not_valid():
    """The same test fails the naive procedure: optional stopping inflates its error far beyond α."""
    smoothing = from_config(SMOOTHING)
    p = threshold(smoothing, "binary", TARGET)
    test = SequentialTest(smoothing, (TARGET,), NaivePerLook(), ALPHA, 10_000, 100, 2)
    share = (simulate(test, [p, 1 - p], POINTS, seed=1)[:, 0, 0] == CERTIFIED).mean()
    assert share > TOLERANCE, share


def test_points_far_from_the_threshold_stop_early_and_decide_like_fixed_n():
    """Far above a target's threshold both fixed n and the sequential run certify it, far below neither does; the
    sequential run needs a fraction of the samples for that (end to end, both procedures, both runner-up rules)."""
    p = threshold(from_config(SMOOTHING), "binary", TARGET)
    images = images_at([0.999, 0.998, 0.997, p - 0.15, p - 0.2])
    fixed = _classifier().certify_dataset(images, 100, 10_000, 0.01, 2000, progress=False)
    expected = np.array([True, True, True, False, False])
    for name in ("binary", "multiclass"):
        np.testing.assert_array_equal(getattr(fixed, name).certified(TARGET), expected)
    for procedure in ("scheduled-clopper-pearson", "beta-binomial"):
        for runner_up in ("sound", "selection"):
            run = _classifier().certify_dataset(
                images,
                100,
                10_000,
                0.01,
                2000,
                targets=[TARGET],
                procedure=procedure,
                runner_up=runner_up,
                progress=False,
            )
            for name in ("binary", "multiclass"):
                np.testing.assert_array_equal(run.certified[name][:, 0], expected, err_msg=f"{procedure} {name}")
            assert run.samples.max() <= 2000, (procedure, run.samples)


def _mixture_lower_end_mpmath(k: int, n: int, alpha: float, a: float, b: float) -> mpmath.mpf:
    """The exact lower end of {p : M_n(p) < 1/α} in 50 digits (bisection on [0, k/n])."""
    mpmath.mp.dps = 50

    def log_m(p):
        mixture = mpmath.log(mpmath.beta(a + k, b + n - k)) - mpmath.log(mpmath.beta(a, b))
        return mixture - k * mpmath.log(p) - (n - k) * mpmath.log(1 - p) - mpmath.log(1 / mpmath.mpf(alpha))

    low, high = mpmath.mpf(0), mpmath.mpf(k) / n
    for _ in range(170):
        middle = (low + high) / 2
        low, high = (middle, high) if log_m(middle) > 0 else (low, middle)
    return low


@pytest.mark.parametrize(
    "k, n, alpha",
    [(1, 1, 0.01), (95, 100, 0.01), (990, 1000, 1e-4), (10**6 - 1, 10**6, 0.001), (10**9, 10**9, 0.05), (3, 7, 0.3)],
)
def test_the_confidence_sequence_bounds_are_sound_and_tight_against_mpmath(k, n, alpha):
    sequence = BetaBinomialSequence()
    exact = _mixture_lower_end_mpmath(k, n, alpha, 0.5, 0.5)
    lower = float(sequence.lower(k, n, alpha, 1))
    assert mpmath.mpf(lower) <= exact and float(exact) - lower <= 1e-9 * max(1.0, float(exact))
    upper_exact = 1 - _mixture_lower_end_mpmath(n - k, n, alpha, 0.5, 0.5)
    upper = float(sequence.upper(k, n, alpha, 1))
    assert mpmath.mpf(upper) >= upper_exact and upper - float(upper_exact) <= 1e-9


def test_the_schedule_is_whole_blocks_ending_at_n_max():
    assert ScheduledClopperPearson().looks(10_000, 100) == [
        100,
        200,
        300,
        400,
        600,
        800,
        1200,
        1800,
        2600,
        3900,
        5800,
        8700,
        10_000,
    ]  # 100 × 1.5^j in whole blocks
    assert ScheduledClopperPearson(growth=2).looks(10_000, 100) == [100, 200, 400, 800, 1600, 3200, 6400, 10_000]
    assert ScheduledClopperPearson(first=10, growth=1.5).looks(100, 4) == [12, 16, 24, 36, 52, 76, 100]
    assert BetaBinomialSequence().looks(250, 100) == [100, 200, 250]
    with pytest.raises(ValueError, match="growth"):
        ScheduledClopperPearson(growth=1.0)


# ---------------------------------------------------------------------------------------------------- end to end
class PixelThreshold(torch.nn.Module):
    """Class 1 iff the first pixel of the sample exceeds ``cut``: under gaussian noise on a selected pixel its
    probability is known exactly, p_1 = s·Φ((x − cut)/σ) + (1 − s)·[x > cut]."""

    def __init__(self, cut: float = 0.2):
        super().__init__()
        self.cut = cut
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z):
        value = z[:, 0, 0, 0]
        return torch.stack([self.cut - value, value - self.cut], dim=1)


def pixel_for(probability: float, selected: float = 0.8, sigma: float = 0.25, cut: float = 0.2) -> np.float32:
    """The pixel value (float32, rounded toward a lower probability) at which p_1 = ``probability`` (x > cut)."""
    value = np.float32(cut - sigma * norm.ppf((1 - probability) / selected))
    return np.nextafter(value, np.float32(0))


def images_at(probabilities) -> torch.Tensor:
    pixels = np.full((len(probabilities), 1, 2, 2), 0.25, dtype=np.float32)
    pixels[:, 0, 0, 0] = [pixel_for(p) for p in probabilities]
    return torch.from_numpy(pixels)


def _classifier(**options):
    return hiersmooth.SmoothedClassifier(PixelThreshold(), {**SMOOTHING, "indicator": True}, 2, **options)


def test_end_to_end_at_the_threshold_the_share_certified_stays_within_alpha():
    """Through the classifier, sampler and scheduler: 400 images at the binary threshold of the target."""
    smoothing = from_config(SMOOTHING)
    p = threshold(smoothing, "binary", TARGET)
    points, alpha = 400, 0.1
    images = images_at([p] * points)
    result = _classifier(block_size=50).certify_dataset(
        images, 20, 1000, alpha, 1000, labels=np.ones(points, dtype=int), targets=[TARGET], progress=False
    )
    share = result.certified["binary"][:, 0].mean()
    assert share <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / points), share
    assert result.samples.mean() < 1000  # points below the threshold are given up before n


def test_a_single_look_reproduces_fixed_n_votes_and_decisions():
    images = images_at([0.999, 0.97, 0.9, 0.8, 0.6])
    labels = np.ones(5, dtype=int)
    targets = [Threat(rows=1, l2=0.1), Threat(rows=1, l2=0.4), Threat(rows=2, l2=0.2)]
    fixed = _classifier().certify_dataset(images, 50, 700, 0.01, 300, labels=labels, progress=False)
    one_look = ScheduledClopperPearson(first=700)  # L = 1: Clopper–Pearson at α itself, at n
    sequential = _classifier().certify_dataset(
        images, 50, 700, 0.01, 300, labels=labels, targets=targets, procedure=one_look, progress=False
    )
    np.testing.assert_array_equal(sequential.votes, fixed.votes)
    np.testing.assert_array_equal(sequential.pre_votes, fixed.pre_votes)
    assert (sequential.samples == 700).all()
    for name in ("binary", "multiclass"):
        expected = np.stack([getattr(fixed, name).certified(t) for t in targets], axis=1)
        np.testing.assert_array_equal(sequential.certified[name], expected)


DOUBLING = ScheduledClopperPearson(growth=2)  # looks 100, 200, 400, …: some of these points run to n


def test_results_do_not_depend_on_the_batch_size_and_match_single_point_certify():
    # the last point lies just above eps = 0.3's binary threshold (p_A ≈ 0.9485): it stays open to n
    images = images_at([0.999, 0.95, 0.9, 0.85, 0.7, 0.99, 0.955])
    targets = ["r=1,eps=0.1", "r=1,eps=0.3"]
    runs = [
        _classifier(seed=4).certify_dataset(
            images, 30, 3000, 0.01, batch, targets=targets, procedure=DOUBLING, progress=False
        )
        for batch in (100, 350, 2000)
    ]
    for run in runs[1:]:
        for field in ("votes", "samples", "states", "pre_votes"):
            np.testing.assert_array_equal(getattr(run, field), getattr(runs[0], field), err_msg=field)
    assert runs[0].samples.min() < 3000 and runs[0].samples.max() == 3000
    one = _classifier(seed=4).certify(images[2], 30, 3000, 0.01, 500, point=2, targets=targets, procedure=DOUBLING)
    np.testing.assert_array_equal(one.votes[0], runs[0].votes[2])
    np.testing.assert_array_equal(one.states[0], runs[0].states[2])


def test_points_at_a_look_are_decided_together_not_once_per_pass(monkeypatch):
    """Points that reach a look wait while the others fill the passes, then are decided in one call per sample
    count: a few calls per look, however many passes (the decisions are those of the batch-size test above)."""
    calls = []
    decide = SequentialTest.decide
    monkeypatch.setattr(
        SequentialTest, "decide", lambda self, counts, n, *a, **k: calls.append(n) or decide(self, counts, n, *a, **k)
    )
    images = images_at(np.linspace(0.85, 0.999, 60))
    run = _classifier().certify_dataset(images, 30, 3200, 0.01, 200, targets=["r=1,eps=0.3"], progress=False)
    looks = ScheduledClopperPearson().looks(3200, 100)
    passes = int(run.samples.sum()) // 200
    assert passes > 10 * len(looks)  # many passes ...
    assert len(calls) <= 2 * len(looks), calls  # ... few decisions: each look's points together
    assert set(calls) <= set(looks)


def test_a_point_stopped_early_holds_the_fixed_n_votes_of_its_first_samples():
    images = images_at([0.999, 0.9, 0.8])
    run = _classifier().certify_dataset(images, 30, 6400, 0.01, 1000, targets=["r=1,eps=0.1"], progress=False)
    for point, used in enumerate(run.samples):
        prefix = _classifier().count(images[point], "estimation", int(used), 1000, point=point)
        np.testing.assert_array_equal(run.votes[point], prefix)


class _Recorder(torch.nn.Module):
    """Keeps every batch it classifies; class 0 for all."""

    def __init__(self):
        super().__init__()
        self.batches = []
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z):
        self.batches.append(z.clone())
        return torch.zeros(z.shape[0], 2)


def test_a_sequential_batch_draws_the_samples_of_count_also_for_an_input_that_requires_grad():
    """``count_blocks`` (what a sequential run fills its passes with) and ``count`` draw the same block alike; at
    σ = 0.3 the two constructions of the gaussian draw round differently, so an input that requires grad must not
    switch one of them to the other (both draw without autograd)."""
    smoothing = {**SMOOTHING, "noise": {"kind": "gaussian", "sigma": 0.3}, "indicator": True}
    image = torch.rand(1, 5, 5, generator=torch.Generator().manual_seed(3)).requires_grad_()
    by_count, by_blocks = _Recorder(), _Recorder()
    hiersmooth.SmoothedClassifier(by_count, smoothing, 2).count(image, "estimation", 200, 200, point=4)
    blocked = hiersmooth.SmoothedClassifier(by_blocks, smoothing, 2)
    sampler, token = blocked.image_sampler(image)
    blocked.count_blocks([(sampler, token, 4, 0, 100), (sampler, token, 4, 1, 100)], "estimation", 200)
    assert torch.equal(torch.cat(by_count.batches), torch.cat(by_blocks.batches))


def test_a_killed_sequential_run_resumes_to_the_same_result(tmp_path, fail_after):
    images = images_at([0.999, 0.95, 0.9, 0.85, 0.7])
    options = dict(targets=["r=1,eps=0.1", "r=1,eps=0.3"], progress=False)
    classifier = _classifier()
    passes = []
    counter = classifier.model.register_forward_pre_hook(lambda module, inputs: passes.append(1))
    reference = classifier.certify_dataset(images, 30, 3000, 0.01, 200, **options)
    counter.remove()
    assert len(passes) > 5 + 4  # 5 selection passes, then several estimation passes
    hook = fail_after(classifier.model, 1 + 5 + (len(passes) - 5) // 2)  # the class-count pass, then half-way
    with pytest.raises(KeyboardInterrupt):
        classifier.certify_dataset(images, 30, 3000, 0.01, 200, out=tmp_path, checkpoint_seconds=0, **options)
    hook.remove()
    with np.load(tmp_path / "progress.npz") as saved:
        assert 0 < saved["state_samples"].sum() < reference.samples.sum()
    resumed = _classifier().certify_dataset(images, 30, 3000, 0.01, 700, out=tmp_path, **options)
    for field in ("votes", "samples", "states", "pre_votes"):
        np.testing.assert_array_equal(getattr(resumed, field), getattr(reference, field), err_msg=field)
    # another target set is another run: its checkpoint is refused
    with pytest.raises(ValueError, match=r"differs in sequential"):
        _classifier().certify_dataset(
            images, 30, 3000, 0.01, 200, out=tmp_path, targets=["r=2,eps=0.1"], progress=False
        )


@pytest.mark.parametrize("calls", [2, 4, 8])  # model calls of the estimation stage before the interrupt (even: whole
# passes also where a pass runs as two halves side by side); after 2 the first pass's points wait at their look
def test_an_interrupted_sequential_run_keeps_every_pass_counted(tmp_path, fail_after, calls):
    """Interrupted between passes, with points waiting at a look and no checkpoint due: the waiting are decided and
    the last checkpoint holds every estimation pass that was counted — and resumes to the uninterrupted result."""
    images = images_at([0.999, 0.95, 0.9, 0.85, 0.7])
    options = dict(targets=["r=1,eps=0.1", "r=1,eps=0.3"], progress=False)
    reference = _classifier().certify_dataset(images, 30, 3000, 0.01, 200, **options)
    classifier = _classifier()
    sizes = []
    recorder = classifier.model.register_forward_hook(lambda module, inputs, output: sizes.append(len(output)))
    hook = fail_after(classifier.model, 1 + 5 + calls)  # the class-count pass and 5 selection passes first
    with pytest.raises(KeyboardInterrupt):
        classifier.certify_dataset(images, 30, 3000, 0.01, 200, out=tmp_path, checkpoint_seconds=3600, **options)
    hook.remove(), recorder.remove()
    with np.load(tmp_path / "progress.npz") as saved:
        assert saved["state_samples"].sum() == sum(sizes[6:]) > 0  # every counted estimation sample
        np.testing.assert_array_equal(saved["votes"].sum(axis=1), saved["state_samples"])
        at_first_look = saved["state_samples"] == 100  # decided once, from OPEN: the states a look there gives
        test = classifier.sequential_test(options["targets"], DEFAULT_PROCEDURE, 0.01, 3000, "sound", graph=False)
        decided = test.decide(
            saved["votes"][at_first_look],
            100,
            reference.pre_votes[at_first_look].argmax(axis=1),
            np.full(saved["state_states"][at_first_look].shape, OPEN),
            reference.pre_votes[at_first_look],
        )
        assert (at_first_look.any() or calls > 2) and np.array_equal(saved["state_states"][at_first_look], decided)
    resumed = _classifier().certify_dataset(images, 30, 3000, 0.01, 200, out=tmp_path, **options)
    for field in ("votes", "samples", "states"):
        np.testing.assert_array_equal(getattr(resumed, field), getattr(reference, field), err_msg=field)


def test_a_graph_samples_while_any_node_is_open_and_decided_nodes_stop_counting():
    from hiersmooth.models.graphs import GCN

    rng = np.random.default_rng(5)
    nodes = 40
    features = torch.from_numpy((rng.random((nodes, 12)) < 0.3).astype(np.float32)).to_sparse_csr()
    edges = torch.from_numpy(rng.integers(0, nodes, (2, 120)))
    torch.manual_seed(1)
    smoothing = {
        "selection": {"kind": "bernoulli", "p": 0.8},
        "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.5},
        "indicator": True,
    }
    classifier = hiersmooth.SmoothedClassifier(GCN(13, 3), smoothing, 3, seed=2)
    targets = ["r=1,ra=0,rd=1", "r=1,ra=1,rd=0"]
    run = classifier.certify_dataset(features, 20, 400, 0.05, 16, edge_index=edges, targets=targets, progress=False)
    again = classifier.certify_dataset(features, 20, 400, 0.05, 48, edge_index=edges, targets=targets, progress=False)
    np.testing.assert_array_equal(run.votes, again.votes)
    np.testing.assert_array_equal(run.states, again.states)
    assert len(set(run.samples.tolist())) > 1  # nodes stopped at different looks
    for used in sorted(set(run.samples.tolist())):
        fixed = classifier.count(features, "estimation", used, 16, edge_index=edges)
        at = run.samples == used
        np.testing.assert_array_equal(run.votes[at], fixed[at])


def test_the_command_writes_samples_and_decisions_and_certify_votes_refuses_them(tmp_path):
    images = images_at([0.999, 0.9, 0.7])
    np.savez(tmp_path / "d.npz", images=images.numpy(), labels=np.ones(3, dtype=int))
    (tmp_path / "s.yaml").write_text(json.dumps({**SMOOTHING, "indicator": True}))
    torch.save(PixelThreshold().state_dict(), tmp_path / "w.pt")
    argv = [
        "certify",
        "--model",
        "test_sequential:build",
        "--weights",
        str(tmp_path / "w.pt"),
        "--num-classes",
        "2",
        "--data",
        str(tmp_path / "d.npz"),
        "--smoothing",
        str(tmp_path / "s.yaml"),
        "--n0",
        "30",
        "--n",
        "3000",
        "--no-progress",
        "--out",
        str(tmp_path / "out"),
        "--target",
        "r=1,eps=0.1",
        "--target",
        "r=2,eps=0.3",
    ]
    assert main(argv) == 0
    out = tmp_path / "out"
    table = (out / "certified_accuracy.csv").read_text().splitlines()
    assert table[0] == "certificate,r,eps,certified_accuracy,certified_ratio" and len(table) == 5
    header = (out / "certified_accuracy.points.csv").read_text().splitlines()[0].split(",")
    assert "samples" in header and "binary_r1_eps0.1" in header and "multiclass_r2_eps0.3" in header
    sidecar = json.loads((out / "certified_accuracy.json").read_text())
    assert sidecar["sequential"] is True and sidecar["procedure"]["procedure"] == "scheduled-clopper-pearson"
    assert sidecar["samples"]["total"] == np.load(out / "certified_accuracy.points.npz")["samples"].sum()
    with pytest.raises(ValueError, match="gathered sequentially"):
        load_votes(out / "votes.npz")
    assert (
        main(
            [
                "certify-votes",
                str(out / "votes.npz"),
                "--smoothing",
                str(tmp_path / "s.yaml"),
                "--out",
                str(tmp_path / "x.csv"),
            ]
        )
        == 2
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(targets=["r=1,ra=0,rd=1"]), "does not fit gaussian noise"),
        (dict(targets=[]), "at least one target"),
        (dict(targets=["r=1,eps=x"]), "is not a number"),
        (dict(targets=[{"r": 1, "budget": 2}]), "give r and eps"),
        (dict(targets=["r=1,eps=0.1"], eps="0,0.1"), "sequential run"),
        (dict(targets=["r=1,eps=0.1"], procedure="fast"), "procedure='fast'"),
    ],
)
def test_bad_targets_are_refused_in_one_line(options, message):
    with pytest.raises(ValueError, match=message):
        _classifier().certify_dataset(images_at([0.9]), 10, 100, 0.01, 100, progress=False, **options)


def build(input_width: int, num_classes: int) -> torch.nn.Module:
    """The --model factory of the command-line test."""
    return PixelThreshold()
