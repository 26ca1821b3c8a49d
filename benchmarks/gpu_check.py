"""``make gpu-check``: what only a run on the accelerator can check, in a few minutes (``--device cpu``: the same
checks at small sizes, run by the test suite so that the script cannot rot).

1. Sampler statistics on the device, for every noise kind (SPEC.md §2): gaussian (selection rate, noise mean and
   variance on selected rows, unselected rows exactly x, τ = selection), sparse on sparse CSR input (0 → 1 and
   1 → 0 rates of the selected rows, unselected rows unchanged, no column twice in a row), ablation with a learned
   token (selected rows are the token, the rest x), Levine–Feizi (exactly m rows selected, both halves zeroed),
   and the random-bit primitives of the sparse sampler (15-bit chunks uniform, Bernoulli-line counts).
   Each check is a z-test whose family error is 1e-6 under a correct sampler.
2. Votes of a certify on the device are identical across batch sizes (images and a graph).
3. ``autocast``: the votes of a model run under ``torch.autocast`` sum to n.
4. A one-process ``torchrun`` (nccl on CUDA, gloo on a CPU) joins the process group and all-reduces the votes.
5. Throughput: bare and smoothed samples/s and the overhead of ResNet-50 on 3×32×32 (random weights, batch 1,000)
   and GAT on Cora-ML (batch 16; a random sparse graph when Cora-ML is not found or with ``--small``).

Run: ``.venv/bin/python benchmarks/gpu_check.py [--device cuda] [--small]``; exits 1 if a check fails, 2 if the
device is missing.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
from scipy import stats

import hiersmooth as hs
from hiersmooth.classifier import SmoothedClassifier

FAMILY_ERROR = 1e-6
_failures: list[str] = []


def _check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        _failures.append(what)


def _rate(successes, trials, p, what: str, comparisons: int = 1) -> None:
    """successes ~ Binomial(trials, p) within the z band of the family error (exact where p is 0 or 1)."""
    successes, trials = float(successes), float(trials)
    z = float(stats.norm.isf(FAMILY_ERROR / (2 * comparisons)))
    se = math.sqrt(trials * p * (1 - p))
    _check(abs(successes - trials * p) <= z * se + 1e-9, f"{what}: {successes / trials:.5f} vs {p:.5f}")


def _generator(device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def sampler_statistics(device: torch.device, n: int) -> None:
    print(f"sampler statistics on {device} ({n} samples each)")
    from hiersmooth.smoothing.bit_flips import bernoulli_positions
    from hiersmooth.smoothing.random_bits import bernoulli_trials, random_chunks

    chunks = random_chunks(64 * n, _generator(device, 1), device).cpu().numpy()
    _check(chunks.min() >= 0 and chunks.max() < 2**15, "15-bit chunks in range")
    _rate(((chunks >> 14) & 1).sum(), chunks.size, 0.5, "top bit of the chunks")
    _rate((chunks & 1).sum(), chunks.size, 0.5, "low bit of the chunks")
    counts = [bernoulli_positions(4000, 0.05, _generator(device, 2 + k), device).numel() for k in range(50)]
    _rate(sum(counts), 50 * 4000, 0.05, "Bernoulli line: successes")
    for p in (0.05, 0.8, 2**-14 + 2**-40):  # the last ties a chunk one time in 2¹⁵ and reads on
        trials = bernoulli_trials(p, (64, n), _generator(device, 4), device)
        _check(trials.device.type == device.type, f"Bernoulli trials stay on {device}")
        _rate(int(trials.sum()), trials.numel(), p, f"Bernoulli({p:.3g}) trials")
    per_entry = bernoulli_trials([0.1, 0.5, 0.9], (64 * n, 3), _generator(device, 5), device).cpu()
    for column, p in enumerate((0.1, 0.5, 0.9)):
        _rate(int(per_entry[:, column].sum()), 64 * n, p, f"per-entry Bernoulli({p}) trials")

    gaussian = hs.from_config(
        {"selection": {"kind": "bernoulli", "p": 0.7}, "noise": {"kind": "gaussian", "sigma": 0.5}}
    )
    x = torch.rand(3, 6, 5, generator=_generator("cpu", 3)).to(device)
    z = gaussian.sample(x, n, _generator(device, 4))
    tau = z[:, -1].bool()
    _check(tuple(z.shape) == (n, 4, 6, 5) and z.is_contiguous() and z.device == x.device, "gaussian: NCHW on device")
    _rate(tau.sum().item(), tau.numel(), 0.7, "gaussian: selection rate")
    selected = tau.unsqueeze(1).expand(-1, 3, -1, -1)
    noise = (z[:, :3] - x)[selected].double()
    _check(abs(noise.mean().item()) < 6 * 0.5 / math.sqrt(noise.numel()), "gaussian: noise mean 0")
    _check(abs(noise.var().item() / 0.25 - 1) < 6 * math.sqrt(2 / noise.numel()), "gaussian: noise variance σ²")
    _check(bool(torch.equal(z[:, :3][~selected], x.expand(n, -1, -1, -1)[~selected])), "gaussian: unselected = x")

    bits = (torch.rand(40, 60, generator=_generator("cpu", 5)) < 0.2).float()
    sparse = hs.from_config(
        {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.6}}
    )
    z = sparse.sample(bits.to_sparse_csr().to(device), n, _generator(device, 6))
    crow, col = z.crow_indices().cpu().numpy(), z.col_indices().cpu().numpy()
    rows = [col[crow[r] : crow[r + 1]] for r in range(0, z.shape[0], 97)]
    _check(z.layout == torch.sparse_csr and all(len(set(r)) == len(r) for r in rows), "sparse: CSR, no repeats")
    dense = z.to_dense().view(n, 40, 61).cpu()
    tau, noisy, b = dense[..., -1].bool(), dense[..., :-1].bool(), bits.bool()
    _rate(tau.sum().item(), tau.numel(), 0.8, "sparse: selection rate")
    zeros, ones = tau.unsqueeze(-1) & ~b, tau.unsqueeze(-1) & b
    _rate((noisy & zeros).sum().item(), zeros.sum().item(), 0.05, "sparse: 0 → 1 rate", 2)
    _rate((~noisy & ones).sum().item(), ones.sum().item(), 0.6, "sparse: 1 → 0 rate", 2)
    _check(bool(torch.equal(noisy[~tau], b.expand(n, -1, -1)[~tau])), "sparse: unselected rows unchanged")

    ablation = hs.from_config({"selection": {"kind": "bernoulli", "p": 0.4}, "noise": {"kind": "ablation"}})
    rows_x = torch.rand(30, 4, generator=_generator("cpu", 7)).to(device) + 1
    token = torch.nn.Parameter(torch.full((4,), -2.0, device=device))
    z = ablation.sample(rows_x, n, _generator(device, 8), token=token.detach())
    tau = z[..., -1].bool()
    _rate(tau.sum().item(), tau.numel(), 0.4, "ablation: selection rate")
    _check(
        bool((z[..., :4][tau] == -2.0).all()) and bool(torch.equal(z[..., :4][~tau], rows_x.expand(n, -1, -1)[~tau])),
        "ablation: learned token on selected rows, x elsewhere",
    )

    levine = hs.from_config(
        {"selection": {"kind": "subset", "size": 7}, "noise": {"kind": "ablation", "encoding": "levine_feizi"}}
    )
    image = torch.rand(1, 4, 5, generator=_generator("cpu", 9)).to(device)
    z = levine.sample(image, n, _generator(device, 10))
    tau = z[:, -1].bool()
    _check(bool((tau.sum(dim=(1, 2)) == 7).all()), "levine-feizi: exactly m pixels selected")
    _rate(tau.sum(0).max().item(), n, 7 / 20, "levine-feizi: most selected pixel", 20)
    _rate(tau.sum(0).min().item(), n, 7 / 20, "levine-feizi: least selected pixel", 20)
    _check(bool((z[:, :2][tau.unsqueeze(1).expand(-1, 2, -1, -1)] == 0).all()), "levine-feizi: both halves zeroed")


class _GraphModel(torch.nn.Module):
    """A linear layer over features summed along edges: enough to exercise the graph path."""

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.linear = torch.nn.Linear(features, classes)

    def forward(self, x, edge_index):
        h = self.linear(x if x.layout == torch.strided else torch.sparse.mm(x, torch.eye(x.shape[1], device=x.device)))
        return h.index_add(0, edge_index[1], h.index_select(0, edge_index[0]))


def random_graph(nodes: int, features: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(nodes, features, generator=generator) < 0.02).float().to_sparse_csr()
    edges = torch.randint(0, nodes, (2, 4 * nodes), generator=generator)
    return x, torch.cat([edges, edges.flip(0)], dim=1)


def votes_and_autocast(device: torch.device, n: int) -> None:
    print(f"votes across batch sizes and autocast on {device}")
    from hiersmooth.models.images import SmallCNN

    torch.manual_seed(0)
    image = torch.rand(1, 12, 12)
    config = {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "gaussian", "sigma": 0.25}}
    classifier = SmoothedClassifier(SmallCNN(2, 10), config, 10, seed=3, device=device)
    votes = [classifier.count(image.to(device), "estimation", n, batch) for batch in (100, 300, n)]
    _check(all(np.array_equal(votes[0], v) for v in votes) and votes[0].sum() == n, "image votes equal, batches")
    autocast = SmoothedClassifier(classifier.model, config, 10, seed=3, device=device, autocast=True)
    mixed = autocast.count(image.to(device), "estimation", n, 100)
    _check(mixed.sum() == n and (mixed >= 0).all(), f"autocast votes sum to n (top class {mixed.argmax()})")

    x, edges = random_graph(200, 64, 11)
    sparse = {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.5}}
    graph = SmoothedClassifier(_GraphModel(65, 4), sparse, 4, seed=5, device=device)
    votes = [graph.count(x.to(device), "estimation", 24, batch, edge_index=edges.to(device)) for batch in (4, 8, 24)]
    _check(all(np.array_equal(votes[0], v) for v in votes) and (votes[0].sum(1) == 24).all(), "graph votes equal")


def torchrun_check(device: torch.device) -> None:
    print(f"one-process torchrun on {device} ({'nccl' if device.type == 'cuda' else 'gloo'})")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    command += [os.path.abspath(__file__), "--worker", "--device", str(device)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
    except subprocess.TimeoutExpired:
        _check(False, "torchrun finished within 240 s")
        return
    _check(
        done.returncode == 0 and "worker ok" in done.stdout,
        f"torchrun worker: {(done.stdout + done.stderr)[-300:]!r}"
        if done.returncode
        else "torchrun worker all-reduced the votes",
    )


def worker(device: torch.device) -> None:
    """Under torchrun: join the group (nccl or gloo), count, all-reduce the votes, compare with the local ones."""
    from hiersmooth.models.images import SmallCNN

    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend)
    torch.manual_seed(0)
    config = {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "gaussian", "sigma": 0.25}}
    classifier = SmoothedClassifier(SmallCNN(2, 10), config, 10, seed=3, device=device)
    votes = classifier.count(torch.rand(1, 8, 8).to(device), "estimation", 200, 100)
    reduced = torch.as_tensor(votes, device=device)
    torch.distributed.all_reduce(reduced)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    assert np.array_equal(reduced.cpu().numpy(), votes), "all-reduce in a world of one changed the votes"
    print("worker ok", flush=True)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(function, device, repeats: int = 3) -> float:
    function()
    _synchronize(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def throughput(device: torch.device, small: bool) -> None:
    print(f"throughput on {device} (bare: the model on samples drawn beforehand; overhead = bare / smoothed − 1)")
    from hiersmooth.models.graphs import GAT
    from hiersmooth.models.images import ResNet50

    batch, samples = (8, 16) if small else (1000, 5000)
    torch.manual_seed(0)
    config = {"selection": {"kind": "bernoulli", "p": 0.85}, "noise": {"kind": "gaussian", "sigma": 0.25}}
    classifier = SmoothedClassifier(ResNet50(4, 10), config, 10, seed=0, device=device, block_size=min(batch, 100))
    image = torch.rand(3, 32, 32, device=device)
    _compare(classifier, image, None, batch, samples, device, "ResNet-50 3x32x32")

    graph = None if small else _cora()
    x, edges = graph if graph is not None else random_graph(300, 200, 12)
    name = "GAT Cora-ML" if graph is not None else "GAT random graph"
    sparse = {
        "selection": {"kind": "bernoulli", "p": 0.81},
        "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8},
    }
    classifier = SmoothedClassifier(GAT(x.shape[1] + 1, 7), sparse, 7, seed=0, device=device)
    _compare(classifier, x.to(device), edges.to(device), 4 if small else 16, 8 if small else 96, device, name)


def _cora():
    try:
        import tempfile

        from hiersmooth.data.graphs import load_graph

        with tempfile.TemporaryDirectory() as root:
            graph = load_graph("cora_ml", root, download=False).graph
        return graph.features, graph.edge_index
    except Exception as error:  # noqa: BLE001 - any reason Cora-ML is missing: fall back to a random graph
        print(f"  (Cora-ML not loaded: {error}; a random sparse graph instead)")
        return None


def _compare(classifier, x, edge_index, batch: int, samples: int, device, name: str) -> None:
    sampler = classifier.smoothing.sampler(x)
    generator = _generator(device, 1)
    model = classifier.model.eval()
    if edge_index is None:
        inputs = [(sampler.draw(batch, generator),) for _ in range(samples // batch)]
    else:
        union = classifier._union_edges(edge_index, x.shape[0], batch)
        inputs = [(sampler.draw(batch, generator), *union) for _ in range(samples // batch)]

    def bare():
        with torch.inference_mode():
            for arguments in inputs:
                model(*arguments)

    def smoothed():
        classifier.count(x, "estimation", samples, batch, edge_index=edge_index)

    bare_rate, smoothed_rate = samples / _best(bare, device), samples / _best(smoothed, device)
    print(
        f"  {name:<22} batch {batch:>5}: bare {bare_rate:>10,.0f}/s, smoothed {smoothed_rate:>10,.0f}/s, "
        f"overhead {bare_rate / smoothed_rate - 1:>6.1%}",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--small", action="store_true", help="small sizes (the default with --device cpu)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu-check: CUDA is not available on this machine (run with --device cpu for the small CPU checks)")
        return 2
    if args.worker:
        worker(device)
        return 0
    small = args.small or device.type == "cpu"
    _failures.clear()
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"hiersmooth gpu-check on {device} ({name}), torch {torch.__version__}, {'small' if small else 'full'} sizes")
    sampler_statistics(device, 400 if small else 20_000)
    votes_and_autocast(device, 300 if small else 3_000)
    torchrun_check(device)
    throughput(device, small)
    print(
        f"{'FAILED: ' + '; '.join(_failures) if _failures else 'all checks passed'} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return 1 if _failures else 0


if __name__ == "__main__":
    sys.exit(main())
