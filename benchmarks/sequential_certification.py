"""Sequential certification at target threats (SPEC.md §7) against fixed n: samples spent, certified accuracy.

Measured in one run, side by side (α = 0.01, class A from n₀ separate selection samples, certified accuracy =
share of all points that are certified at the threat and whose class A is the label):

1. **Digits, a real run.** A SmallCNN trained here (experiments/digits.yaml: hierarchical gaussian, bernoulli
   p = 0.8, gaussian σ = 0.25, indicator, 15 epochs, seed 0; a temporary folder), every test image (450),
   n₀ = 1,000 (``--n0``), at the digits Pareto threats r=1,eps=0.3; r=1,eps=1.0; r=2,eps=0.5:
   (a) fixed n = 10,000; (b) sequential, at most 10,000, default procedure (scheduled Clopper–Pearson, looks
   100, 200, 300, 400, 600, … (×1.5) and n_max, α split over the looks); (c) sequential, at most 10,000, beta-binomial
   confidence sequence (a look after every block of 100); (d) sequential, at most 100,000, default procedure;
   then (e) other schedules ``ScheduledClopperPearson(first, growth)`` at most 10,000 (not with ``--quick``).
   Per run: certified accuracy at each threat (multi-class, the experiments' certificate; binary too), mean
   estimation samples per point, fixed n's samples ÷ the run's, wall time (selection + estimation + decisions).
2. **CIFAR-10, published votes, a SIMULATION.** Fixed n = 10,000: the published votes certified as they are.
   Sequential: each point's run is simulated by drawing multinomial counts, look by look, from its empirical class
   frequencies votes / 10,000 (class A = argmax of the published pre_votes), caps 10,000 and 100,000, both
   procedures; also a simulated fixed n = 10,000 (one draw of 10,000 from the same frequencies), the baseline the
   simulated sequential runs are comparable with. Threats r=1,eps=0.5 and r=2,eps=0.25 (paper_cifar10.yaml).
3. **Cora-ML, published GAT votes, a SIMULATION** (configs/smoothing/cora_ml_hierarchical_sparse.yaml, the 253
   test nodes). One forward pass classifies the whole graph, so sampling goes on while any node is open: the
   samples the graph needs are the largest stopping look over nodes (against 10,000); also the mean over nodes
   and the share of nodes decided by each look. Graph blocks are 4 samples, so the beta-binomial looks every 4.
   ``--cora`` adds a real run: the paper's GAT trained here (configs/train/cora_ml_gat_hierarchical.yaml, a
   temporary folder), all test nodes, n₀ = 1,000 (``--n0``), batch 4: (a) fixed n = 10,000, (b) the default and (c)
   the beta-binomial sequence at most 10,000 — samples per node, the most per node (= the graph's forward
   passes), wall time.

4. **What any valid sequential test needs**, per target, from each fixed-n run's votes (:func:`sample_floors`):
   m_min, the samples before which no procedure monotone in A's count can certify a point even if every vote is
   for A (exact); and the mean samples per point that keep the certified accuracy within 0.5 points of fixed
   n's, by Wald's bound on the expected sample size, with each point's class frequencies as its true ones (a
   plug-in estimate), at α and with A bounded at α/K as the multi-class certificate does. It tells how far a
   target of the issue is from what the data allow.

The issue's targets (digits, multi-class, at every Pareto threat): (T1) at most 10,000 samples: ≥ 10× fewer
samples than fixed n = 10,000 with certified accuracy within 0.5 points of it; (T2) at most 100,000: higher
certified accuracy than fixed n = 10,000 at ≤ 1/3 of its samples. Both are judged and the achieved factors printed.

Run: ``nice .venv/bin/python benchmarks/sequential_certification.py [--quick] [--mnist] [--n0 100]``
(default ≈ 3 min on 2 idle cores; ``--quick``: 80 digits,
fewer simulated points, no schedule sweep, < 2 min).
``--mnist`` adds (a)–(d) on mnist_5k with LeNet (experiments/mnist.yaml's hierarchical gaussian cell,
``--mnist-points`` test images; slow on CPU); ``--cora`` the real Cora-ML GAT run (item 3, ≈ 8 min).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from contention import OtherProcesses
from scipy.special import xlogy

import hiersmooth
from hiersmooth import Threat
from hiersmooth.certify.certificates import Certificate
from hiersmooth.certify.confidence_sequences import BetaBinomialSequence, ScheduledClopperPearson
from hiersmooth.certify.sequential import OPEN, SequentialTest
from hiersmooth.experiments.grid import load_experiment
from hiersmooth.inputs import ImageSet
from hiersmooth.shared_data import shared_dir
from hiersmooth.trained import _test_data, load_trained

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = shared_dir() / "reference"
ALPHA, FIXED_N = 0.01, 10_000
CERTS = ("multiclass", "binary")


def experiment_cell(name: str, params: dict):
    """The run config of experiments/<name>.yaml's hierarchical gaussian cell ``params`` (seed 0) and the
    experiment's Pareto threats as target texts: the benchmark trains and certifies what the experiment does."""
    experiment = load_experiment(ROOT / "experiments" / f"{name}.yaml")
    cell = next(
        cell
        for cell in experiment.cells
        if cell.method == "hierarchical_gaussian" and cell.params == params and cell.seed == 0
    )
    return cell.run, tuple(Threat(**threat).text for threat in experiment.pareto)


DIGITS, DIGITS_TARGETS = experiment_cell("digits", {"selection.p": 0.8, "noise.sigma": 0.25})
MNIST, MNIST_TARGETS = experiment_cell("mnist", {"selection.p": 0.9, "noise.sigma": 1.0})
CIFAR = (
    REFERENCE / "cifar10_resnet50_hierarchical_gaussian_votes.npz",
    ROOT / "configs/smoothing/cifar10_hierarchical_gaussian.yaml",
    ("r=1,eps=0.5", "r=2,eps=0.25"),
)
CORA = (
    REFERENCE / "cora_ml_gat_hierarchical_sparse_votes.npz",
    ROOT / "configs/smoothing/cora_ml_hierarchical_sparse.yaml",
    ("r=1,ra=0,rd=1", "r=1,ra=0,rd=8", "r=1,ra=1,rd=0"),
)
CORA_TRAIN = ROOT / "configs/train/cora_ml_gat_hierarchical.yaml"
SCHEDULES = ((100, 2.0), (100, 1.25))


# ------------------------------------------------------------------------------------------------------ helpers
def accuracies(certified: dict, correct: np.ndarray) -> dict[str, np.ndarray]:
    """Certified accuracy per certificate and target from (points, targets) booleans."""
    return {name: (certified[name] & correct[:, None]).mean(axis=0) for name in CERTS}


def fixed_certified(certificates, targets) -> dict[str, np.ndarray]:
    """(points, targets) booleans of a fixed-n VoteCertificates at the targets."""
    threats = [Threat.parse(t) for t in targets]
    return {name: np.stack([getattr(certificates, name).certified(t) for t in threats], axis=1) for name in CERTS}


def row(label, acc, samples, cap, seconds=None, extra="", others=None) -> dict:
    return {
        "run": label,
        "acc": acc,
        "samples": float(samples),
        "cap": cap,
        "seconds": seconds,
        "extra": extra,
        "others": others,
    }


def print_table(title: str, targets, rows: list[dict], fixed_samples: float = FIXED_N) -> None:
    print(f"\n{title}")
    width = max(len(r["run"]) for r in rows) + 2
    head = f"{'run':<{width}}" + "".join(f"{t:>15}" for t in targets)
    head += f"{'samples/pt':>12}{'fixed/run':>10}{'seconds':>9}{'others':>8}"
    for cert in CERTS:
        print(f"  certified accuracy, {cert}" + (" (the experiments' certificate)" if cert == "multiclass" else ""))
        print("  " + head)
        for r in rows:
            line = f"  {r['run']:<{width}}" + "".join(f"{a:>15.4f}" for a in r["acc"][cert])
            seconds = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
            others = "" if r["others"] is None else f"{r['others']:.0%}"
            line += f"{r['samples']:>12.0f}{fixed_samples / r['samples']:>9.1f}×{seconds:>9}{others:>8}"
            print(line + (f"  {r['extra']}" if r["extra"] else ""))


def schedule_name(procedure) -> str:
    if isinstance(procedure, BetaBinomialSequence):
        return "beta-binomial"
    return f"sched-CP({procedure.first},×{procedure.growth:g})"


# ------------------------------------------------------------------------------------------------------ real runs
def real_runs(config, targets, n0, points, plan, title, batch_size=1000):
    """Train the config's model (a temporary folder), then fixed n and the sequential runs of ``plan`` — (tag,
    cap, procedure) each — on its test images (the first ``points``) or its graph's test nodes; the rows."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        hiersmooth.train_run(config, folder, progress=False, force=True)
        trained = load_trained(folder)
        print(f"\n[{title}] trained {trained.config.model.name} in {time.perf_counter() - started:.1f} s")
        test = _test_data(trained.config)
    if points is not None and points < test.points:
        test = ImageSet(test.images[:points], test.labels[:points])
    classifier = hiersmooth.SmoothedClassifier(trained.model, trained.config.smoothing, trained.num_classes, seed=0)

    def run(n, procedure=None):
        started = time.perf_counter()
        options = {} if procedure is None else {"targets": list(targets), "procedure": procedure}
        with OtherProcesses() as others:
            result = classifier.certify_dataset(test, n0, n, ALPHA, batch_size, progress=False, **options)
        return result, time.perf_counter() - started, others.share

    fixed, seconds, others = run(FIXED_N)
    fixed_accuracy = accuracies(fixed_certified(fixed, targets), fixed.correct)
    rows, results = [row(f"(a) fixed n={FIXED_N:,}", fixed_accuracy, FIXED_N, FIXED_N, seconds, others=others)], {}
    for tag, cap, procedure in plan:
        result, seconds, others = run(cap, procedure)
        results[(tag, cap, schedule_name(procedure))] = result
        extra = f"{int((result.samples >= cap).sum())} pts at cap; most per point {int(result.samples.max()):,}"
        label = f"{tag} seq ≤{cap:,} {schedule_name(procedure)}"
        rows.append(
            row(label, accuracies(result.certified, result.correct), result.samples.mean(), cap, seconds, extra, others)
        )
    print(f"[{title}] {test.points} test points, n0={n0}, α={ALPHA}; accuracy of class A {fixed.correct.mean():.4f}")
    print_table(f"[{title}] real runs", targets, rows)
    floors = sample_floors(classifier.smoothing, targets, fixed, fixed_accuracy["multiclass"], 10 * FIXED_N)
    print(f"[{title}] what any valid sequential test needs, from the fixed-n votes:\n" + "\n".join(floors))
    return rows, results, floors


def image_plan(schedules) -> list[tuple]:
    """(b) default ≤ 10,000, (c) beta-binomial ≤ 10,000, (d) default ≤ 100,000, (e) the other ``schedules``."""
    plan = [
        ("(b)", FIXED_N, ScheduledClopperPearson()),
        ("(c)", FIXED_N, BetaBinomialSequence()),
        ("(d)", 10 * FIXED_N, ScheduledClopperPearson()),
    ]
    return plan + [("(e)", FIXED_N, ScheduledClopperPearson(first=f, growth=g)) for f, g in schedules]


def cora_config(root: str) -> dict:
    """The paper's Cora-ML GAT training config (configs/train/cora_ml_gat_hierarchical.yaml), data under ``root``."""
    config = yaml.safe_load(CORA_TRAIN.read_text())
    config.pop("out", None)
    config["data"]["root"] = root
    return config


# ------------------------------------------------------------------------------------------------- simulations
def simulate(test: SequentialTest, frequencies, selected, rng):
    """A sequential run per point, its counts drawn look by look from ``frequencies`` (points × K); a point leaves
    once decided. (states (points, certificates, targets), stopping look per point)."""
    points = frequencies.shape[0]
    counts = np.zeros(frequencies.shape, dtype=np.int64)
    states = np.zeros((points, 2, len(test.targets)), dtype=np.int8)
    stop = np.full(points, test.n_max, dtype=np.int64)
    running, previous = np.ones(points, dtype=bool), 0
    for look in test.looks:
        at = np.flatnonzero(running)
        if not at.size:
            break
        counts[at] += rng.multinomial(look - previous, frequencies[at])
        states[at] = test.decide(counts[at], look, selected[at], states[at])
        still = (states[at] == OPEN).any(axis=(1, 2))
        stop[at[~still]] = look
        running[at] = still
        previous = look
    return states, stop


def simulated_runs(votes_path, smoothing_path, targets, block_size, caps, rng, points=None):
    """Fixed n from the published votes, a simulated fixed-n draw and simulated sequential runs."""
    data = np.load(votes_path)
    pre_votes, votes, labels = data["pre_votes"], data["votes"].astype(np.int64), data["labels"]
    if points is not None:
        pre_votes, votes, labels = pre_votes[:points], votes[:points], labels[:points]
    n = int(votes[0].sum())
    frequencies = votes / votes.sum(axis=1, keepdims=True)
    selected = pre_votes.argmax(axis=1)
    correct = selected == labels
    smoothing = hiersmooth.from_config(smoothing_path)
    published = hiersmooth.certify_votes({"pre_votes": pre_votes, "votes": votes, "labels": labels}, smoothing)
    rows = [row(f"fixed n={n:,} (published votes)", accuracies(fixed_certified(published, targets), correct), n, n)]
    floors = sample_floors(smoothing, targets, published, rows[0]["acc"]["multiclass"], max(caps))
    drawn = rng.multinomial(FIXED_N, frequencies)
    redrawn = hiersmooth.certify_votes({"pre_votes": pre_votes, "votes": drawn, "labels": labels}, smoothing)
    rows.append(
        row(
            f"fixed n={FIXED_N:,} (simulated draw)",
            accuracies(fixed_certified(redrawn, targets), correct),
            FIXED_N,
            FIXED_N,
        )
    )
    stops = {}
    for cap in caps:
        for procedure in (ScheduledClopperPearson(), BetaBinomialSequence()):
            if isinstance(procedure, BetaBinomialSequence) and cap > FIXED_N and block_size < 100:
                continue  # a look every 4 samples to 100,000: ~2 min for the same answer (the graph needs the cap)
            started = time.perf_counter()
            test = SequentialTest.of(
                smoothing, targets, procedure, ALPHA, n_max=cap, block_size=block_size, classes=votes.shape[1]
            )
            states, stop = simulate(test, frequencies, selected, rng)
            certified = {name: states[:, c] == 1 for c, name in enumerate(("binary", "multiclass"))}
            label = f"sim seq ≤{cap:,} {schedule_name(procedure)}"
            rows.append(
                row(
                    label,
                    accuracies(certified, correct),
                    stop.mean(),
                    cap,
                    time.perf_counter() - started,
                    f"{int((stop >= cap).sum())} pts at cap",
                )
            )
            stops[(cap, procedure.name)] = (stop, test.looks)
    return rows, stops, len(labels), floors


# ---------------------------------------------------------------------------------- what any valid test needs
def last_uncertified(smoothing, threat: Threat, runner_up_share: np.ndarray) -> np.ndarray:
    """Per point, t = the largest p_A (from below, 60 bisection steps on exact probabilities) at which the
    multi-class certificate does not certify ``threat`` when the rest of the probability, 1 − p_A, lies in the
    point's proportions (a share ``runner_up_share`` of it on the runner-up). With share 1 this is the binary
    threshold, the same for every point."""
    low, high = np.zeros(runner_up_share.shape), np.ones(runner_up_share.shape)
    for _ in range(60):
        middle = (low + high) / 2
        certified = Certificate("multiclass", smoothing, middle, (1 - middle) * runner_up_share).certified(threat)
        low, high = np.where(certified, low, middle), np.where(certified, middle, high)
    return low


def wald_floor(p: np.ndarray, t: np.ndarray, alpha: float, need: float) -> float:
    """The least Σ_i E_i[N] of sequential tests at level α of p_i against t_i whose powers π_i sum to ``need``:
    E_i[N] ≥ (π ln(π/α) + (1 − π) ln((1 − π)/(1 − α))) / KL(p_i ‖ t_i) (Wald's bound on the expected sample size
    of any sequential test of two simple hypotheses), minimised over the powers: π_i = σ(λ·KL_i + logit α), λ by
    bisection. Points with p_i ≤ t_i count α each at no cost (they are not certifiable)."""
    usable = p > t
    need -= alpha * np.count_nonzero(~usable)
    p, t = p[usable], t[usable]
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p > 0, p * np.log(p / t), 0.0) + np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - t)), 0.0)
    if need <= alpha * p.size:
        return 0.0
    if need >= p.size:
        return math.inf
    logit = math.log(alpha / (1 - alpha))
    low, high = 0.0, 1e15
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (low, middle) if (1 / (1 + np.exp(-(middle * kl + logit)))).sum() >= need else (middle, high)
    power = 1 / (1 + np.exp(-(high * kl + logit)))
    return float(((xlogy(power, power / alpha) + xlogy(1 - power, (1 - power) / (1 - alpha))) / kl).sum())


def sample_floors(smoothing, targets, fixed, accuracy: np.ndarray, cap: int, slack: float = 0.005) -> list[str]:
    """What every valid sequential test needs, per target, from a fixed-n run's votes (lines to print):

    - m_min = ⌈ln α / ln t⌉, t the binary threshold: no procedure whose decisions are monotone in A's count (all
      of SPEC §7) certifies a point before m_min samples — not even when every vote is for A. Proof: it would
      then certify on the all-A path, whose probability is t^m > α when p_A = t and the rest of the probability
      lies on one class B, a distribution at which the target is not certified. Exact.
    - the mean estimation samples per point that keep the certified accuracy within ``slack`` of fixed n's:
      :func:`wald_floor` with p_i = the fixed-n frequency of class A (a PLUG-IN estimate: the true p_i are
      unknown), t_i from :func:`last_uncertified` with the point's own proportions of the rest (Kullback–Leibler
      divergence of the categorical distributions = that of p_A, as the rest keeps its proportions), at level α
      (any valid test) and at α/K (A bounded at α/K, as the multi-class certificate does)."""
    votes, selected, correct = fixed.votes.astype(float), fixed.selected, fixed.correct
    index, n = np.arange(len(selected)), votes.sum(axis=1)
    k_a = votes[index, selected]
    rest = votes.copy()
    rest[index, selected] = -1
    share = np.where(n > k_a, rest.max(axis=1) / np.maximum(n - k_a, 1), 1.0)
    p = k_a / n
    lines = []
    for text, achieved in zip(targets, accuracy):
        threat = Threat.parse(text)
        t_binary = float(last_uncertified(smoothing, threat, np.ones(1))[0])
        m_min = math.inf if t_binary >= 1 else math.ceil(math.log(ALPHA) / math.log(t_binary))
        t = last_uncertified(smoothing, threat, share)[correct]
        need = len(selected) * max(achieved - slack, 0.0)
        floors = [wald_floor(p[correct], t, alpha, need) / len(selected) for alpha in (ALPHA, ALPHA / votes.shape[1])]
        line = f"  {text:<14} m_min {m_min:>9,} samples (t = {t_binary:.7f})"
        if m_min > cap:
            line += f": no point can be certified within {cap:,}"
        if achieved - slack > 0:
            factors = [f"{FIXED_N / floor:.1f}×" if floor > 0 else "∞" for floor in floors]
            line += (
                f"; certified accuracy ≥ {achieved - slack:.4f} needs ≥ {floors[0]:,.0f} samples per point on average"
                f" (at most {factors[0]} fewer than {FIXED_N:,}), ≥ {floors[1]:,.0f} with A bounded at α/K"
                f" ({factors[1]})"
            )
        lines.append(line)
    return lines


# ------------------------------------------------------------------------------------------------------ verdicts
def judge(rows: list[dict]) -> list[str]:
    """The issue's two targets on the digits rows (multi-class, every Pareto threat)."""
    fixed = rows[0]
    base = fixed["acc"]["multiclass"]
    lines = []

    def deficit(r):  # worst shortfall against fixed, in accuracy points
        return float(np.max(base - r["acc"]["multiclass"])) * 100

    capped = [r for r in rows[1:] if r["cap"] == FIXED_N]
    for r in capped:
        factor = FIXED_N / r["samples"]
        met = factor >= 10 and deficit(r) <= 0.5
        lines.append(
            f"T1 {r['run']}: {factor:.1f}× fewer samples, worst shortfall {deficit(r):+.2f} points "
            f"→ {'MET' if met else 'NOT met'}"
        )
    within = [r for r in capped if deficit(r) <= 0.5]
    if within:
        best = max(within, key=lambda r: FIXED_N / r["samples"])
        lines.append(f"T1 fewest samples within 0.5 points: {best['run']} ({FIXED_N / best['samples']:.1f}×)")
    for r in [r for r in rows[1:] if r["cap"] > FIXED_N]:
        gain = (r["acc"]["multiclass"] - base) * 100
        share = r["samples"] / FIXED_N
        met = bool((gain > 0).all()) and share <= 1 / 3
        gains = " / ".join(f"{g:+.2f}" for g in gain)
        lines.append(
            f"T2 {r['run']}: certified accuracy {gains} points vs fixed, samples {share:.3f} of fixed "
            f"({1 / share:.1f}× fewer) → {'MET' if met else 'NOT met'}"
        )
    return lines


def graph_report(stops, looks_of_interest=(100, 200, 400, 800, 1600, 3200, 6400, 10_000, 100_000)) -> list[str]:
    lines = []
    for (cap, name), (stop, _looks) in stops.items():
        graph = int(stop.max())
        shares = "  ".join(f"≤{n:,}: {(stop <= n).mean():.0%}" for n in looks_of_interest if n <= cap)
        lines.append(
            f"  ≤{cap:>7,} {name:<26} graph samples (max over nodes) {graph:>7,} "
            f"({FIXED_N / graph:.2f}× fewer than 10,000)  mean over nodes {stop.mean():>8.0f}"
        )
        lines.append(f"  {'':>36}decided by: {shares}")
    return lines


# ---------------------------------------------------------------------------------------------------------- main
def summarise(name: str, rows: list[dict], floors: list[str] = (), source: str = "") -> None:
    """The summary lines of one dataset: each run's multi-class accuracies and samples, then its floors."""
    for r in rows:
        acc = " ".join(f"{a:.4f}" for a in r["acc"]["multiclass"])
        print(f"  {name:<7} {r['run']:<40} acc {acc}  samples {r['samples']:>7.0f} ({FIXED_N / r['samples']:.1f}×)")
    if floors:
        note = "what any valid test needs (the largest of the targets' bounds applies to the whole run):"
        print(f"  {' '.join(filter(None, (name, source)))} {note}\n" + "\n".join(floors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="80 digits, 200 CIFAR points, no sweep (< 2 min)")
    parser.add_argument("--n0", type=int, default=1000, help="selection samples per point (default 1000)")
    parser.add_argument("--points", type=int, default=None, help="digits test images (default all 450)")
    parser.add_argument("--mnist", action="store_true", help="also mnist_5k with LeNet (slow on CPU)")
    parser.add_argument("--mnist-points", type=int, default=200, help="mnist test images (default 200)")
    parser.add_argument("--cora", action="store_true", help="also a real run: GAT trained on Cora-ML (≈ 8 min)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulations' draws")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    points = args.points if args.points is not None else (80 if args.quick else None)
    print(f"threads: {torch.get_num_threads()}; α = {ALPHA}; n0 = {args.n0}; fixed n = {FIXED_N:,}")

    digits_plan = image_plan(() if args.quick else SCHEDULES)
    digits_rows, _, digits_floors = real_runs(DIGITS, DIGITS_TARGETS, args.n0, points, digits_plan, "digits")
    verdicts = judge(digits_rows)
    mnist_rows = None
    if args.mnist:
        mnist_rows, _, mnist_floors = real_runs(
            MNIST, MNIST_TARGETS, args.n0, args.mnist_points, image_plan(()), "mnist_5k"
        )

    cora_real = None
    if args.cora:
        cora_plan = [("(b)", FIXED_N, ScheduledClopperPearson()), ("(c)", FIXED_N, BetaBinomialSequence())]
        with tempfile.TemporaryDirectory() as root:
            cora_real = real_runs(cora_config(root), CORA[2], args.n0, None, cora_plan, "Cora-ML GAT", batch_size=4)

    rng = np.random.default_rng(args.seed)
    cifar_rows, _, cifar_points, cifar_floors = simulated_runs(
        CIFAR[0], CIFAR[1], CIFAR[2], 100, (FIXED_N, 10 * FIXED_N), rng, 200 if args.quick else None
    )
    print_table(
        f"[CIFAR-10] published votes, {cifar_points} points; sequential rows are a SIMULATION (multinomial "
        "draws from each point's votes/n)",
        CIFAR[2],
        cifar_rows,
    )
    cora_rows, cora_stops, cora_points, _ = simulated_runs(
        CORA[0], CORA[1], CORA[2], 4, (FIXED_N,) if args.quick else (FIXED_N, 10 * FIXED_N), rng
    )
    print_table(
        f"[Cora-ML GAT] published votes, {cora_points} test nodes; sequential rows are a SIMULATION", CORA[2], cora_rows
    )
    print("  samples per node are its stopping look; the graph samples while any node is open:")
    graph_lines = graph_report(cora_stops)
    print("\n".join(graph_lines))

    print("\n" + "=" * 100 + "\nSUMMARY (multi-class certified accuracy; samples = estimation samples per point)")
    summarise("digits", digits_rows)
    print("  " + "\n  ".join(verdicts))
    summarise("digits", [], digits_floors)
    if mnist_rows:
        summarise("mnist", mnist_rows, mnist_floors)
    summarise("cifar10", cifar_rows, cifar_floors, "(published votes)")
    if cora_real:
        summarise("cora_ml", cora_real[0], cora_real[2], "(real GAT)")
    print("  cora_ml (simulation):\n" + "\n".join(graph_lines))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
