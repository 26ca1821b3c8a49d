"""Overhead of smoothing: ``SmoothedClassifier.count`` against the bare model on already-noised inputs.

For each case and batch size (samples per forward pass), on one thread and on two (``torch.set_num_threads``;
with two, ``count`` runs graphs' forward passes two side by side, one thread each, and images' one at a time on
both threads: ``SmoothedClassifier._workers``), this prints, best of 3 repeats each
(bare and smoothed repeats alternate):
- bare: samples/s of ``model(batch)`` alone (model.eval(), torch.inference_mode) on noisy batches drawn once
  beforehand by the same sampler, in the layout the smoothed path feeds the model;
- smoothed: samples/s of ``SmoothedClassifier.count(x, "estimation", n, batch_size)`` (seeded draws, forward
  passes, vote counting);
- overhead = bare / smoothed − 1 (certify time / bare forward time − 1), against the target: < 10 % for images,
  < 25 % for graphs;
- others: the share of the machine other processes used meanwhile (a busy neighbour voids the figures).

``--floor`` adds, for the images on one thread, the overhead over the bare model of forward passes fed by only what
any exact draw of this seed plan must do (module function ``floor``): a lower bound on what ``count`` can reach.

``--stages`` adds, on one thread, where the time of ``count`` goes per sample: draw (each forward pass's seeded
blocks, drawn together by ``Sampler.draw_blocks`` into one batch), assemble (the union edge indices of a batch),
forward (the model on those batches) and count (the rest of ``count``: argmax, votes, checks, bookkeeping =
smoothed − draw − assemble − forward). count also holds what draws and forward passes cost each other when they
alternate, which the stages timed apart do not pay: the caches each one leaves cold for the other (for small
images ``count`` draws several passes ahead to avoid it).

Cases (random weights; throughput does not depend on them):
(a) SmallCNN on a 1×28×28 image, bernoulli p = 1 − 150/784, gaussian σ = 0.25, indicator;
(b) SmallCNN on a scikit-learn digit (8×8, in [0, 1]), bernoulli p = 0.8, gaussian σ = 0.25, indicator;
(c) GCN and (d) GAT on Cora-ML, configs/smoothing/cora_ml_hierarchical_sparse.yaml (all 2,810 nodes per sample).

Run: ``.venv/bin/python benchmarks/smoothing_overhead.py [--quick] [--stages] [--profile] [--threads 1 2]``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass

import torch
from contention import OtherProcesses
from cora_ml import CLASSES, SMOOTHING, load_cora_ml
from sklearn.datasets import load_digits

from hiersmooth.classifier import SmoothedClassifier, _passes_per_round
from hiersmooth.models.graphs import GAT, GCN
from hiersmooth.models.images import SmallCNN

REPEATS = 3
IMAGE_TARGET, GRAPH_TARGET = 0.10, 0.25


@dataclass
class Case:
    name: str
    classifier: SmoothedClassifier
    x: torch.Tensor
    edge_index: torch.Tensor | None
    batch_sizes: tuple[int, ...]
    samples: int
    target: float

    @property
    def graph(self) -> bool:
        return self.edge_index is not None


def image_smoothing(p: float) -> dict:
    return {"selection": {"kind": "bernoulli", "p": p}, "noise": {"kind": "gaussian", "sigma": 0.25}, "indicator": True}


def image_cases(batch_sizes: tuple[int, ...], samples: int) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    mnist_like = torch.rand(1, 28, 28, generator=generator)
    digit = torch.tensor(load_digits().images[0] / 16.0, dtype=torch.float32).unsqueeze(0)
    cases = []
    for name, x, p in [("(a) SmallCNN 1x28x28", mnist_like, 1 - 150 / 784), ("(b) SmallCNN digits 8x8", digit, 0.8)]:
        torch.manual_seed(0)
        classifier = SmoothedClassifier(SmallCNN(2, 10), image_smoothing(p), 10, seed=0, device="cpu")
        cases.append(Case(name, classifier, x, None, batch_sizes, samples, IMAGE_TARGET))
    return cases


def graph_cases(batch_sizes: tuple[int, ...], samples: int) -> list[Case]:
    features, edge_index, _ = load_cora_ml()
    cases = []
    for name, model in [("(c) GCN Cora-ML", GCN), ("(d) GAT Cora-ML", GAT)]:
        torch.manual_seed(0)
        classifier = SmoothedClassifier(model(features.shape[1] + 1, CLASSES), SMOOTHING, CLASSES, seed=0, device="cpu")
        cases.append(Case(name, classifier, features, edge_index, batch_sizes, samples, GRAPH_TARGET))
    return cases


def best_rates(functions, samples: int) -> list[float]:
    """Samples/s of each function: the fastest of ``REPEATS`` timed calls after one untimed warm-up call each.

    The calls of the functions alternate, so a slow spell of the machine falls on all of them alike.
    """
    for function in functions:
        function()
    best = [math.inf] * len(functions)
    for _ in range(REPEATS):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[index] = min(best[index], time.perf_counter() - start)
    return [samples / seconds for seconds in best]


def union_edges(edge_index: torch.Tensor, nodes: int, copies: int) -> torch.Tensor:
    """Edge index of ``copies`` disjoint copies of the graph, copy k's nodes offset by k·N."""
    offsets = torch.arange(copies).repeat_interleave(edge_index.shape[1]) * nodes
    return edge_index.repeat(1, copies) + offsets


def drawn_inputs(case: Case, batch_size: int) -> list[tuple]:
    """The model's arguments for the ``case.samples`` noisy samples, drawn once beforehand in batches."""
    assert case.samples % batch_size == 0, f"{case.samples} samples do not split into batches of {batch_size}"
    sampler = case.classifier.smoothing.sampler(case.x)
    generator = torch.Generator().manual_seed(1)
    edges = (union_edges(case.edge_index, case.x.shape[0], batch_size),) if case.graph else ()
    return [(sampler.draw(batch_size, generator), *edges) for _ in range(case.samples // batch_size)]


def forward_passes(model, inputs: list[tuple]):
    """A function running ``model(*arguments)`` for each of ``inputs`` (eval mode, ``torch.inference_mode``)."""
    model.eval()

    def forwards():
        with torch.inference_mode():
            for arguments in inputs:
                model(*arguments)

    return forwards


def bare_forwards(case: Case, batch_size: int):
    """Forward passes only, over the ``case.samples`` noisy samples drawn once beforehand in batches."""
    return forward_passes(case.classifier.model, drawn_inputs(case, batch_size))


def smoothed_count(case: Case, batch_size: int):
    def count():
        case.classifier.count(case.x, "estimation", case.samples, batch_size, edge_index=case.edge_index)

    return count


def report(case: Case, threads: int) -> None:
    for batch_size in case.batch_sizes:
        with OtherProcesses() as others:
            bare, smoothed = best_rates(
                [bare_forwards(case, batch_size), smoothed_count(case, batch_size)], case.samples
            )
        overhead = bare / smoothed - 1
        verdict = "meets" if overhead < case.target else "MISSES"
        print(
            f"{case.name:<24} {threads:>7} {batch_size:>6} {bare:>12,.0f} {smoothed:>12,.0f} {overhead:>9.1%}  "
            f"< {case.target:.0%} {verdict:<6} {others!s:>7}",
            flush=True,
        )


def best_seconds(function) -> float:
    """The fastest of ``REPEATS`` timed calls after one untimed warm-up call."""
    function()
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def stages(case: Case, batch_size: int) -> None:
    """Milliseconds per sample of each stage of ``count`` (module docstring), timed apart on the same blocks."""
    classifier = case.classifier
    sampler = classifier.smoothing.sampler(case.x)
    plan = classifier.seed_plan(case.graph)
    sizes = plan.blocks(case.samples)
    group = max(1, batch_size // plan.block_size)

    passes = [range(start, min(start + group, len(sizes))) for start in range(0, len(sizes), group)]

    def draw_blocks():
        """Each pass's blocks, drawn together as count draws them (``Sampler.draw_blocks``)."""
        return [
            sampler.draw_blocks([sizes[b] for b in chosen], [plan.generator(0, "estimation", b) for b in chosen])
            for chosen in passes
        ]

    batches = draw_blocks()
    entities = case.x.shape[0]

    def assemble():
        if not case.graph:
            return [(batch,) for batch in batches]
        return [(batch, union_edges(case.edge_index, entities, batch.shape[0] // entities)) for batch in batches]

    forwards = forward_passes(classifier.model, assemble())
    seconds = {
        name: best_seconds(f) for name, f in [("draw", draw_blocks), ("assemble", assemble), ("forward", forwards)]
    }
    smoothed = best_seconds(smoothed_count(case, batch_size))
    seconds["count"] = smoothed - sum(seconds.values())
    per_sample = {name: 1e3 * value / case.samples for name, value in seconds.items()}
    forward = per_sample["forward"]
    print(
        f"{case.name:<24} {batch_size:>6} "
        + " ".join(f"{per_sample[name]:>9.4f} ({per_sample[name] / forward:>5.0%})" for name in per_sample)
        + f" {1e3 * smoothed / case.samples:>9.4f} ms",
        flush=True,
    )


def floor(case: Case, batch_size: int) -> None:
    """Overhead over the bare model of forward passes whose samples cost only what an exact draw cannot avoid.

    Per block of the seed plan: its generator (``SeedPlan.block_seeds``, NumPy's SeedSequence, for all blocks before
    the passes, as ``count`` does, then a ``torch.Generator``), one 63-bit word per four selection trials and one
    normal per value (torch's CPU generators, the cheapest here), and a copy of samples drawn beforehand (the memory
    a draw writes), in ``count``'s rounds of passes (the draws of a round, then its passes). "plain seeds": the same
    with a ``torch.Generator`` seeded directly, which shows the share of the SeedSequence. The passes' logits are
    counted (argmax, bincount) without checks.
    """
    classifier = case.classifier
    plan = classifier.seed_plan(False)
    arguments = drawn_inputs(case, batch_size)
    inputs, passes = [batch for (batch,) in arguments], len(arguments)
    per_round = _passes_per_round(case.x, batch_size, passes, 1)
    blocks, pixels = batch_size // plan.block_size, case.x.shape[1] * case.x.shape[2]
    model = classifier.model.eval()

    def least_draw(index: int, seeds: list[int] | None) -> torch.Tensor:
        for block in range(index * blocks, (index + 1) * blocks):
            stream = torch.Generator().manual_seed(block if seeds is None else seeds[block])
            torch.empty(-(-plan.block_size * pixels // 4), dtype=torch.int64).random_(generator=stream)
            torch.randn(plan.block_size, case.x.shape[0], pixels, generator=stream)
        return inputs[index].clone()

    def rounds(seeded: bool):
        def run():
            seeds = plan.block_seeds(0, "estimation", range(passes * blocks)) if seeded else None  # as count does
            with torch.inference_mode():
                for first in range(0, passes, per_round):
                    batches = [least_draw(i, seeds) for i in range(first, min(passes, first + per_round))]
                    for batch in batches:
                        torch.bincount(model(batch).argmax(1), minlength=classifier.num_classes)

        return run

    bare = forward_passes(model, arguments)
    bare_rate, seeded_rate, plain_rate = best_rates([bare, rounds(True), rounds(False)], case.samples)
    print(
        f"{case.name:<24} {batch_size:>6} {bare_rate / seeded_rate - 1:>12.1%} {bare_rate / plain_rate - 1:>12.1%}",
        flush=True,
    )


def profile(case: Case) -> None:
    """Top operators (self CPU time) of one smoothed ``count`` at the largest batch size."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as trace:
        case.classifier.count(case.x, "estimation", case.samples, max(case.batch_sizes), edge_index=case.edge_index)
    print(f"\nprofile of the smoothed path, {case.name}, batch {max(case.batch_sizes)}:")
    print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test (< 1 minute)")
    parser.add_argument("--stages", action="store_true", help="also the time per sample of each stage (one thread)")
    parser.add_argument("--floor", action="store_true", help="also the least overhead of an exact draw (images)")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators per case")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to run on (1 2)")
    args = parser.parse_args()
    if args.quick:
        cases = image_cases((20, 100), 200) + graph_cases((4,), 8)
    else:
        cases = image_cases((100, 1000), 5000) + graph_cases((4, 16), 96)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, best of "
        f"{REPEATS}; samples per timing: images {cases[0].samples}, graphs {cases[-1].samples}"
    )
    print(
        f"{'case':<24} {'threads':>7} {'batch':>6} {'bare/s':>12} {'smoothed/s':>12} {'overhead':>9}  "
        f"{'target':<13} {'others':>7}"
    )
    for threads in args.threads:
        torch.set_num_threads(threads)
        for case in cases:
            report(case, threads)
    if args.stages:
        torch.set_num_threads(1)
        print("\nms per sample, one thread (share of the forward pass):")
        print(f"{'case':<24} {'batch':>6} {'draw':>17} {'assemble':>17} {'forward':>17} {'count':>17} {'total':>12}")
        for case in cases:
            for batch_size in case.batch_sizes:
                stages(case, batch_size)
    if args.floor:
        torch.set_num_threads(1)
        print("\nleast overhead of an exact draw, one thread (function floor):")
        print(f"{'case':<24} {'batch':>6} {'seed plan':>12} {'plain seeds':>12}")
        for case in cases:
            for batch_size in case.batch_sizes if not case.graph else ():
                floor(case, batch_size)
    if args.profile:
        for case in cases:
            profile(case)


if __name__ == "__main__":
    main()
