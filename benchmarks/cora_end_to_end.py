"""Cora-ML end to end: ``SmoothedClassifier.certify`` of all 2,810 nodes, n₀ = 1,000 and n = 10,000 samples.

Hierarchical sparse smoothing (configs/smoothing/cora_ml_hierarchical_sparse.yaml), random model weights
(throughput does not depend on them), α = 0.01. Each certify runs in a fresh process on one and on two threads
(``--threads``), so its peak memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: interpreter, torch, data and the
run, read before anything else is measured) is its own.

- GCN, the full 11,000 samples: wall time and samples/s; targets < 3 minutes and < 2 GB peak memory.
- GAT: by default a tenth of the samples (``--gat-fraction``), its time extrapolated linearly to 11,000 samples
  (every forward pass carries the same number of samples, so memory does not grow with the sample count).
- bare: in the same process afterwards, samples/s of the model alone on ``BARE_SAMPLES`` samples drawn beforehand
  by the same sampler in batches of the same size; overhead = bare / end-to-end samples/s − 1 (target < 25 %).
- The reference implementation's style, measured in the same run on the same GCN: one sample per forward pass,
  the noise drawn by NumPy as one dense uniform per bit of the selected rows, dense torch features. Printed:
  how many times more samples/s hiersmooth's batched sparse sampler delivers end to end.

Run: ``.venv/bin/python benchmarks/cora_end_to_end.py [--quick] [--batch-size B] [--gat-fraction F] [--threads T ...]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from contention import OtherProcesses
from cora_ml import CLASSES, FEATURES, NODES, SMOOTHING, load_cora_ml

import hiersmooth
from hiersmooth.classifier import SmoothedClassifier
from hiersmooth.models.graphs import GAT, GCN

MODELS = {"GCN": GCN, "GAT": GAT}
ALPHA = 0.01
TIME_TARGET_S, MEMORY_TARGET_GB = 180, 2.0


def build_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS[name](FEATURES + 1, CLASSES)


BARE_SAMPLES = 96
GRAPH_TARGET = 0.25


def certify(name: str, n0: int, n: int, batch_size: int, threads: int) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in GB of this process, bare samples/s of the model) of certifying every node with
    n₀ + n samples on ``threads`` torch threads."""
    torch.set_num_threads(threads)
    features, edge_index, labels = load_cora_ml()
    classifier = SmoothedClassifier(build_model(name), SMOOTHING, CLASSES, seed=0, device="cpu")
    start = time.perf_counter()
    result = classifier.certify(features, n0, n, ALPHA, batch_size, label=labels, edge_index=edge_index)
    wall = time.perf_counter() - start
    assert result.votes.shape == (NODES, CLASSES) and (result.votes.sum(axis=1) == n).all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return wall, peak, bare_rate(classifier, features, edge_index, batch_size)


def bare_rate(classifier, features, edge_index, batch_size: int) -> float:
    """Samples/s of the model alone on ``BARE_SAMPLES`` samples drawn beforehand, best of 3 after a warm-up."""
    sampler = classifier.smoothing.sampler(features)
    generator = torch.Generator().manual_seed(1)
    union = classifier._union_edges(edge_index, NODES, batch_size)
    inputs = [sampler.draw(batch_size, generator) for _ in range(max(1, BARE_SAMPLES // batch_size))]
    model = classifier.model.eval()
    best = float("inf")
    for repeat in range(4):
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in inputs:
                model(batch, *union)
        if repeat:
            best = min(best, time.perf_counter() - start)
    return len(inputs) * batch_size / best


def certify_in_fresh_process(name: str, n0: int, n: int, batch_size: int, threads: int):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        return executor.submit(certify, name, n0, n, batch_size, threads).result()


def reference_style_rate(samples: int) -> tuple[float, float]:
    """(samples/s, share of the time spent drawing noise) of one sample per GCN forward pass with NumPy's dense
    per-bit noise, timed after one warm-up sample.

    Per sample: a Bernoulli(p) selection mask over the nodes, one uniform per bit of the selected rows (a 1-bit
    survives with 1 − p₋, a 0-bit turns 1 with p₊), the indicator column, then dense torch features into the
    GCN and one vote per node.
    """
    features, edge_index, _ = load_cora_ml()
    smoothing = hiersmooth.from_config(SMOOTHING)
    p, p_plus, p_minus = smoothing.selection.p, smoothing.noise.p_plus, smoothing.noise.p_minus
    bits = features.to_dense().numpy() > 0
    model = build_model("GCN").eval()
    rng = np.random.default_rng(0)
    votes = np.zeros((NODES, CLASSES), dtype=np.int64)

    def one_sample() -> float:
        start = time.perf_counter()
        selected = rng.random(NODES) < p
        noisy = bits.copy()
        rows = bits[selected]
        uniform = rng.random(rows.shape)
        noisy[selected] = np.where(rows, uniform >= p_minus, uniform < p_plus)
        sample = torch.from_numpy(np.concatenate([noisy, selected[:, None]], axis=1).astype(np.float32))
        noise = time.perf_counter() - start
        with torch.inference_mode():
            predicted = model(sample, edge_index).argmax(dim=1).numpy()
        votes[np.arange(NODES), predicted] += 1
        return noise

    one_sample()
    start = time.perf_counter()
    noise = sum(one_sample() for _ in range(samples))
    wall = time.perf_counter() - start
    return samples / wall, noise / wall


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report_gcn(n0: int, n: int, batch_size: int, threads: int) -> float:
    """Certify with GCN on every sample; print the figures against the targets; return its samples/s."""
    with OtherProcesses() as others:
        wall, peak, bare = certify_in_fresh_process("GCN", n0, n, batch_size, threads)
    rate = (n0 + n) / wall
    print(
        f"GCN, {threads} thread(s): {wall:6.1f} s for {n0 + n:,} samples ({rate:5.1f} samples/s; bare {bare:5.1f}/s, "
        f"overhead {bare / rate - 1:6.1%} < {GRAPH_TARGET:.0%}: {verdict(bare / rate - 1 < GRAPH_TARGET)}), "
        f"peak RSS {peak:.2f} GB   targets < {TIME_TARGET_S} s: {verdict(wall < TIME_TARGET_S)}, "
        f"< {MEMORY_TARGET_GB:g} GB: {verdict(peak < MEMORY_TARGET_GB)}   [other processes: {others}]",
        flush=True,
    )
    return rate


def report_gat(n0: int, n: int, batch_size: int, fraction: float, threads: int) -> None:
    """Certify with GAT on ``fraction`` of the samples; print its time extrapolated to all of them."""
    part_n0, part_n = max(1, round(n0 * fraction)), max(1, round(n * fraction))
    with OtherProcesses() as others:
        wall, peak, bare = certify_in_fresh_process("GAT", part_n0, part_n, batch_size, threads)
    samples = part_n0 + part_n
    rate = samples / wall
    print(
        f"GAT, {threads} thread(s): {wall:6.1f} s for {samples:,} samples (n0 = {part_n0:,}, n = {part_n:,}; "
        f"{rate:5.1f} samples/s; bare {bare:5.1f}/s, overhead {bare / rate - 1:6.1%} < {GRAPH_TARGET:.0%}: "
        f"{verdict(bare / rate - 1 < GRAPH_TARGET)}), peak RSS {peak:.2f} GB; extrapolated to {n0 + n:,} samples: "
        f"{wall * (n0 + n) / samples:6.1f} s   [other processes: {others}]",
        flush=True,
    )


def report_reference_style(samples: int, total: int, hiersmooth_rate: float) -> None:
    with OtherProcesses() as others:
        rate, noise_share = reference_style_rate(samples)
    print(
        f"reference style (GCN, one sample per pass, NumPy dense per-bit noise), {samples} samples: {rate:5.2f} "
        f"samples/s ({noise_share:.0%} of it drawing noise) -> {total / rate:,.0f} s for {total:,} samples   "
        f"[other processes: {others}]"
    )
    print(f"hiersmooth GCN end to end delivers {hiersmooth_rate / rate:.1f}x the samples/s of the reference style")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sample counts, a smoke test (< 30 s)")
    parser.add_argument("--batch-size", type=int, default=4, help="samples per forward pass (default 4)")
    parser.add_argument("--gat-fraction", type=float, default=0.1, help="share of the samples GAT runs (default 0.1)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to run on (1 2)")
    args = parser.parse_args()
    n0, n, reference_samples = (8, 40, 2) if args.quick else (1000, 10000, 30)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"Cora-ML {NODES} nodes x {FEATURES} features, all nodes certified, n0 = {n0:,}, n = {n:,}, "
        f"batch size {args.batch_size} samples per forward pass"
    )
    rates = {threads: report_gcn(n0, n, args.batch_size, threads) for threads in args.threads}
    for threads in args.threads:
        report_gat(n0, n, args.batch_size, args.gat_fraction, threads)
    torch.set_num_threads(max(args.threads))
    report_reference_style(reference_samples, n0 + n, rates[max(args.threads)])


if __name__ == "__main__":
    main()
