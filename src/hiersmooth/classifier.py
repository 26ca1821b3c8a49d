"""``SmoothedClassifier``: Monte-Carlo predict and certify of any PyTorch classifier (SPEC.md §4; Cohen et al., 2019).

certify: n₀ samples pick class A (the most frequent), n fresh samples count the votes, and the certificate engine
bounds p_A (and p_B) and answers threats (``hiersmooth.certify.certification``). predict: n samples, abstain
unless the two-sided binomial test of the top two counts rejects p = 1/2 at level α.

Images: ``model(z)`` maps a contiguous NCHW batch (b, C' [+1], H, W) to logits (b, K); point clouds (an (N, d)
matrix given without edges) likewise map (b, N, d [+1]) to (b, K). Graphs: one forward pass
classifies every node; ``model(features, edge_index[, edge_weight])`` maps the disjoint union of b noisy copies —
features (b·N, D' [+1]), dense or sparse CSR as the input was, the edge index repeated with node offsets (and
the weights repeated) — to logits (b·N, K). Outputs that are not finite (b, K) tensors are refused.
The samples come in seeded blocks (``hiersmooth.seeds``), so the votes do not depend on ``batch_size``, nor on
the worker threads that run forward passes side by side on a CPU (``in_order``).
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from .certify.certification import VoteCertificates, certify_votes, check_certify_options
from .certify.votes import Votes
from .checks import check_integer
from .defaults import DEFAULT_ALPHA, DEFAULT_PROCEDURE
from .devices import check_device
from .inputs import node_indices
from .progress import progress_bar
from .seeds import SeedPlan, seeded_generator
from .smoothing import Smoothing, from_config
from .smoothing.sampler import concat_samples

ABSTAIN = -1
DEFAULT_BLOCK_SIZE = {"image": 100, "graph": 4}
CPU_WORKERS = 2  # forward passes run side by side on a CPU where the draws are costly (``in_order``, ``_workers``)
# a round of ``block_votes``: the samples of up to ROUND_PASSES forward passes, drawn before the passes run, and at
# most about ROUND_BYTES of them (counted as copies of the input), so that they stay in a core's cache. Small passes
# gain: digits 8×8, batch 100: overhead over the bare model 40 % → 24 % on one thread, 68 % → 54 % on two; larger
# ones lose (digits batch 1,000 in rounds of 4 on two threads: 45 % → 59 %; Cora-ML GCN / GAT in rounds of 4 passes
# of 4 samples: 4 % / 10 % slower), so they keep rounds of one pass (benchmarks/smoothing_overhead.py)
ROUND_PASSES, ROUND_BYTES = 8, 2**18
# dense / sparse CSR seconds of the same samples, Cora-ML GCN on a CPU (benchmarks/dense_vs_sparse_graph.py)
DENSE_SLOWDOWN = 4
_dense_notice_given = False


def _positive(name: str, value) -> int:
    return check_integer(name, value, 1)


def split_samples(samples: torch.Tensor, size: int, rows_per_sample: int = 1):
    """Chunks of at most ``size`` samples, in order.

    Parameters
    ----------
    samples : torch.Tensor
        Dense (n, ...) samples, or a sparse CSR union of n copies of ``rows_per_sample`` rows each.
    size : int
        Samples per chunk (the last may be smaller).
    rows_per_sample : int, default 1
        Rows of one copy in a sparse CSR union (N for a graph); the union is cut between copies.

    Yields
    ------
    torch.Tensor
        Chunks of the same layout.
    """
    count = samples.shape[0] // rows_per_sample
    if count <= size:
        yield samples
        return
    for start in range(0, count, size):
        stop = min(start + size, count)
        if samples.layout != torch.sparse_csr:
            yield samples[start:stop]
            continue
        crow = samples.crow_indices()[start * rows_per_sample : stop * rows_per_sample + 1]
        first, last = int(crow[0]), int(crow[-1])
        yield torch.sparse_csr_tensor(
            crow - first,
            samples.col_indices()[first:last],
            samples.values()[first:last],
            size=((stop - start) * rows_per_sample, samples.shape[1]),
            check_invariants=False,
        )


def in_order(function, items, workers: int):
    """Yield ``function(item)`` for each item, in order.

    With ``workers`` > 1 the items run on that many threads at once (torch releases the GIL), which share torch's
    intra-op threads out among themselves: on a CPU, two forward passes (each with its draws) side by side keep the
    cores busier than one pass whose many small ops each wait for all threads. At most ``workers`` + 1 items are
    in flight.

    Parameters
    ----------
    function : callable
        Applied to each item.
    items : iterable
        The inputs.
    workers : int
        Threads; 1 or less runs in this thread.

    Yields
    ------
    object
        ``function(item)`` in the order of ``items``.
    """
    if workers <= 1:
        yield from map(function, items)
        return
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(max(1, threads // workers),))
    try:
        pending = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)
        torch.set_num_threads(threads)  # a worker's setting is also torch's default for threads started later


def binomial_two_sided_p(top: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two-sided p-value of the binomial test that the top count is Binomial(top + second, 1/2).

    Parameters
    ----------
    top, second : numpy.ndarray
        The largest and second-largest vote counts (same shape).

    Returns
    -------
    numpy.ndarray
        min(1, 2·P[Binomial(top + second, 1/2) ≤ second]), the test of Cohen et al.'s PREDICT.
    """
    from scipy.stats import binom

    return np.minimum(1.0, 2 * binom.cdf(second, top + second, 0.5))


class SmoothedClassifier:
    """The smoothed classifier g(x) = argmax_y P_{Z ~ Ψ_x}[model(Z) = y], estimated by Monte Carlo.

    ``predict``, ``certify`` and ``certify_dataset`` count the votes of ``model`` on samples of the smoothing
    distribution Ψ_x and certify them with the engine (:func:`hiersmooth.certify.certification.certify_votes`).

    What the model receives:

    - images: a contiguous float batch (b, C' [+1], H, W) (NCHW; C' = C, or 2C for the Levine–Feizi encoding, +1
      for the indicator channel τ); it must return logits (b, K);
    - point clouds, (N, d) matrices given without ``edge_index``: a batch (b, N, d [+1]) of b noisy copies, τ
      as the last column; it must return logits (b, K). Each cloud is one point of the seed plan, like an image;
    - graphs: ``model(x, edge_index)`` — or ``model(x, edge_index, edge_weight)`` when edge weights are given —
      PyG style, on the disjoint union of b noisy copies: x (b·N, D' [+1]) dense or sparse CSR as the input
      was, edge_index (2, b·E) with copy k's nodes offset by k·N; it must return logits (b·N, K).

    Seed plan: samples come in blocks of ``block_size``, and block b of stage s (``"selection"``, ``"estimation"``,
    ``"prediction"``) of point p is drawn from its own generator seeded from (``seed``, p, s, b)
    (:class:`~hiersmooth.seeds.SeedPlan`). Same seed, point and config → the same votes, whatever the batch size,
    the number of worker threads or processes. ``certify_dataset`` does this for every point of a dataset, with
    checkpoints and the command line's files.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        smoothing,
        num_classes: int,
        *,
        seed: int = 0,
        block_size: int | None = None,
        device=None,
        autocast: bool = False,
        progress: bool = False,
    ):
        """Wrap ``model`` with ``smoothing``.

        Parameters
        ----------
        model : torch.nn.Module
            The base classifier (moved to ``device``). Images: (b, C' [+1], H, W) → logits (b, K); graphs:
            ``forward(x, edge_index, edge_weight=None)`` → logits (b·N, K) (see the class docstring).
        smoothing : Smoothing, dict or path
            The smoothing distribution, or a config for :func:`hiersmooth.from_config`.
        num_classes : int
            K ≥ 2, the width of the model's logits.
        seed : int, default 0
            Seed of the random streams (the seed plan; see the class docstring).
        block_size : int, optional
            Samples per random stream; default 100 for images, 4 for graphs. Changes the votes, unlike ``batch_size``.
        device : str or torch.device, optional
            Default: the device of the model's parameters.
        autocast : bool, default False
            Run the model under ``torch.autocast``.
        progress : bool, default False
            Show a progress bar.
        """
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model: must be a torch.nn.Module, got {type(model).__name__}")
        self.smoothing: Smoothing = from_config(smoothing)
        self.num_classes = _positive("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes={num_classes}: must be >= 2")
        SeedPlan(seed, 1 if block_size is None else block_size)  # validates both
        self.seed, self.block_size = int(seed), None if block_size is None else int(block_size)
        parameter = next(model.parameters(), None)
        default = parameter.device if parameter is not None else torch.device("cpu")
        self.device = default if device is None else check_device(device)
        self.model = model.to(self.device)
        for name, flag in (("autocast", autocast), ("progress", progress)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"{name}={flag!r}: must be True or False")
        self.autocast, self.progress = bool(autocast), bool(progress)
        # union edges keyed on id(edge_index); each entry keeps the tensor itself, so its id and memory cannot be
        # recycled while cached, and its version counter, so an in-place change is a miss
        self._edges: dict[tuple, tuple] = {}

    def seed_plan(self, graph: bool) -> SeedPlan:
        """The seed plan of this classifier's samples.

        Parameters
        ----------
        graph : bool
            Whether the input is a graph (the default block size is 4 samples for graphs, 100 for images).

        Returns
        -------
        SeedPlan
            Block b of stage s of point p is drawn from a generator seeded from (``seed``, p, s, b).
        """
        return SeedPlan(self.seed, self.block_size or DEFAULT_BLOCK_SIZE["graph" if graph else "image"])

    # ----------------------------------------------------------------------------------------------------------
    def block_votes(
        self,
        x,
        stage: str,
        n: int,
        batch_size: int,
        *,
        point: int = 0,
        edge_index=None,
        nodes=None,
        first_block: int = 0,
        share: tuple[int, int] = (0, 1),
        edge_weight=None,
    ):
        """Yield ``(next_block, counts)`` after each forward pass over the blocks of n samples of ``stage``.

        The passes run in rounds: the samples of a few small passes (``ROUND_PASSES``, ``ROUND_BYTES``) are drawn,
        then classified one pass after the other; on several CPU worker threads each round runs on one of them.
        Summing ``counts`` over all passes gives the votes of :meth:`count`, whatever the rounds; the parameters are
        those of :meth:`count`, plus:

        Parameters
        ----------
        first_block : int, default 0
            The first of this share's blocks to count: starting there resumes a stage whose earlier blocks were
            already counted.
        share : (int, int), default (0, 1)
            ``(rank, world_size)``: keep only the blocks b with b mod world_size = rank (other ranks count the rest).

        Yields
        ------
        (int, torch.Tensor)
            The index of the next block of this share, and the counts of the pass: (K,) for an image,
            (len(nodes), K) for a graph.
        """
        n, batch_size = _positive("n", n), _positive("batch_size", batch_size)
        graph = edge_index is not None
        x, edge_index, nodes = self._inputs(x, edge_index, nodes)
        edge_weight = self._edge_weight(edge_weight, edge_index)
        plan = self.seed_plan(graph)
        sampler = self.smoothing.sampler(x)
        token = self._token(sampler)
        entities = x.shape[0] if graph else 1
        sizes, blocks = plan.blocks(n), plan.share(n, *share)
        group = max(1, batch_size // plan.block_size)
        passes = list(range(first_block, len(blocks), group))  # the first block of each forward pass
        workers = self._workers()
        per_round = _passes_per_round(x, group * plan.block_size, len(passes), workers)

        seeds = dict(zip(blocks[first_block:], plan.block_seeds(point, stage, blocks[first_block:])))

        def drawn(start: int) -> tuple[int, torch.Tensor]:
            """The end of the pass from block ``start`` on and its samples, each block drawn from its own generator."""
            stop = min(start + group, len(blocks))
            chosen = blocks[start:stop]
            generators = [seeded_generator(seeds[b], self.device) for b in chosen]
            return stop, sampler.draw_blocks([sizes[b] for b in chosen], generators, token)

        def round_votes(starts: list[int]):
            """Yield ``(next_block, counts)`` of the passes from ``starts``, in order: the samples of all of them are
            drawn first, then the passes run one after the other (each phase keeps its memory and code warm)."""
            with torch.inference_mode():  # (left before each yield: the caller's code runs in its own mode)
                drawn_round = [drawn(start) for start in starts]
            for start, (stop, samples) in zip(starts, drawn_round):
                where = f"{stage} blocks {blocks[start]}-{blocks[stop - 1]} of point {point}"
                chunks = split_samples(samples, batch_size, entities if samples.layout == torch.sparse_csr else 1)
                yield (
                    stop,
                    functools.reduce(
                        operator.add,
                        (
                            self._classify_graphs(chunk, edge_index, nodes, entities, edge_weight, where)
                            if graph
                            else self._classify_images(chunk, where)
                            for chunk in chunks
                        ),
                    ).cpu(),
                )

        rounds = [passes[i : i + per_round] for i in range(0, len(passes), per_round)]
        workers = min(workers, len(rounds))  # a single round runs here: no thread pool to start (0.2 ms)
        # one worker yields after each pass; several hand back whole rounds (a round runs on one thread)
        run = round_votes if workers <= 1 else lambda starts: list(round_votes(starts))
        with self._evaluating():
            for votes in in_order(run, rounds, workers):
                yield from votes

    def count(
        self, x, stage: str, n: int, batch_size: int, *, point: int = 0, edge_index=None, nodes=None, edge_weight=None
    ) -> np.ndarray:
        """Votes of the model on n samples of Ψ_x from the random streams of ``stage``.

        Parameters
        ----------
        x : torch.Tensor
            An image (C, H, W), a point cloud (N, d), or a graph's node features (N, D), dense or sparse (COO/CSR).
        stage : str
            The seed stream: ``"selection"`` (n₀ of certify), ``"estimation"`` (n of certify), ``"prediction"``.
        n : int
            Number of samples.
        batch_size : int
            Samples per forward pass (memory only: the votes do not depend on it).
        point : int, default 0
            The index of x in its dataset: it selects the seed stream (with ``seed`` and ``stage``), so every
            point of a dataset gets independent samples.
        edge_index : torch.Tensor, optional
            (2, E) integer edges; given, x is a graph.
        nodes : array-like, optional
            The target nodes: integer indices or a boolean mask of length N; default all nodes.
        edge_weight : torch.Tensor, optional
            (E,) edge weights, passed to ``model(x, edge_index, edge_weight)`` repeated for each copy.

        Returns
        -------
        numpy.ndarray
            int64 votes: (K,) for an image or a point cloud, (len(nodes), K) for a graph.
        """
        plan = self.seed_plan(edge_index is not None)
        bar = progress_bar(self.progress, n, f"{stage} point {point}")
        total = None
        for stop, counts in self.block_votes(
            x, stage, n, batch_size, point=point, edge_index=edge_index, nodes=nodes, edge_weight=edge_weight
        ):
            total = counts if total is None else total + counts
            bar.update(min(stop * plan.block_size, n) - bar.n)
        bar.close()
        return total.numpy()

    def sequential_test(self, targets, procedure, alpha: float, n: int, runner_up: str, graph: bool):
        """The :class:`~hiersmooth.certify.sequential.SequentialTest` of a run of this classifier at ``targets``
        (threats or their text) with at most n estimation samples per point, looked at in its seed-plan blocks."""
        from .certify.sequential import SequentialTest

        return SequentialTest.of(
            self.smoothing,
            targets,
            procedure,
            alpha,
            n_max=_positive("n", n),
            block_size=self.seed_plan(graph).block_size,
            classes=self.num_classes,
            runner_up=runner_up,
        )

    def image_sampler(self, x):
        """The sampler of Ψ_x for an image (C, H, W) or a point cloud (N, d), and the model's ablation token (or
        None): what :meth:`count_blocks` draws from."""
        x, _, _ = self._inputs(x, None, None)
        sampler = self.smoothing.sampler(x)
        return sampler, self._token(sampler)

    def count_blocks(self, blocks, stage: str, batch_size: int) -> np.ndarray:
        """Votes of each of several seed-plan blocks, of one or many images, from forward passes of at most
        ``batch_size`` samples: how a sequential run fills its batches with the points still running.

        Parameters
        ----------
        blocks : list of (sampler, token, point, block, size)
            A block b of ``size`` samples of point p, drawn by ``sampler`` (:meth:`image_sampler`) from the
            generator of (seed, p, ``stage``, b) — the same samples as in :meth:`count`.
        stage : str
            The seed stream, e.g. ``"estimation"``.
        batch_size : int
            Samples per forward pass.

        Returns
        -------
        numpy.ndarray
            int64 votes (len(blocks), K), one row per block.
        """
        batch_size = _positive("batch_size", batch_size)
        plan = self.seed_plan(False)
        where = f"{stage} blocks of points {sorted({point for _, _, point, _, _ in blocks})}"

        def votes(group: list) -> torch.Tensor:
            """Per-block votes of a group of blocks: drawn, classified in chunks of ``batch_size``, counted."""
            seeds = [plan.block_seeds(point, stage, [block])[0] for _, _, point, block, _ in group]
            with torch.inference_mode():  # as count draws: the same samples, also of an input that requires grad
                samples = concat_samples(
                    [
                        sampler.draw(size, seeded_generator(seed, self.device), token)
                        for (sampler, token, _, _, size), seed in zip(group, seeds)
                    ]
                )
            sizes = torch.tensor([size for *_, size in group], device=self.device)
            owner = torch.repeat_interleave(torch.arange(len(group), device=self.device), sizes)
            chunks = split_samples(samples, batch_size)
            predicted = torch.cat([self._predicted_images(chunk, where) for chunk in chunks])
            slots = owner * self.num_classes + predicted
            return torch.bincount(slots, minlength=len(group) * self.num_classes).view(len(group), -1).cpu()

        # where draws are costly, two halves side by side on a CPU, each with its own draws (as in ``block_votes``)
        workers = min(self._workers(), len(blocks))
        half = -(-len(blocks) // max(workers, 1))
        with self._evaluating():
            counts = list(in_order(votes, [blocks[i : i + half] for i in range(0, len(blocks), half)], workers))
        return torch.cat(counts).numpy()

    def _workers(self) -> int:
        """Worker threads for forward passes on a CPU: ``CPU_WORKERS`` (at most torch's threads), each drawing its
        own passes' samples — except for cheap draws on two threads or fewer, where one pass gets every thread.
        Measured on 2 cores, 2 threads (overhead over the bare model, 1 worker / 2 workers): digits CNN batch 1,000
        28 % / 44 %, 28×28 CNN batch 1,000 5 % / 10 %, batch 100 equal; GCN on Cora-ML batch 4 261 % / 149 %, GAT
        batch 16 82 % / 31 % (benchmarks/smoothing_overhead.py). On more threads one worker's draws, which are
        serial, would weigh more against a forward spread over more cores (not measured here)."""
        if self.device.type != "cpu":
            return 1
        threads = torch.get_num_threads()
        if threads <= 2 and not self.smoothing.noise.costly_draw:
            return 1
        return min(CPU_WORKERS, threads)

    @contextmanager
    def _evaluating(self):
        """The model in eval mode inside the block, in its former mode after."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    def certify(
        self,
        x,
        n0: int,
        n: int,
        alpha: float = DEFAULT_ALPHA,
        batch_size: int = 100,
        *,
        label=None,
        point: int = 0,
        edge_index=None,
        nodes=None,
        runner_up: str = "sound",
        edge_weight=None,
        targets=None,
        procedure=DEFAULT_PROCEDURE,
    ):
        """Certify x (an image, or the target ``nodes`` of a graph): votes of n₀ + n samples → certificates.

        n₀ samples (stage ``"selection"``) pick class A, the most frequent; n fresh samples (``"estimation"``)
        give the votes from which Clopper–Pearson bounds p_A (and p_B), and Theorem 1 turns them into
        certificates (Cohen et al., 2019, CERTIFY; SPEC.md §3–§4).

        Guarantee: with probability ≥ 1 − α over the samples, every certificate holds — wherever the result does
        not abstain, the smoothed classifier g predicts class A at x and at every input within a certified
        threat of x (a threat ``Threat(rows=r, ...)`` certified by ``.binary`` / ``.multiclass``).

        Parameters
        ----------
        x : torch.Tensor
            An image (C, H, W), a point cloud (N, d), or a graph's node features (N, D), dense or sparse (CSR is
            fastest).
        n0 : int
            Selection samples (to pick class A).
        n : int
            Estimation samples (to bound p_A).
        alpha : float, default DEFAULT_ALPHA (0.01)
            Significance level: the certificates hold with probability ≥ 1 − α.
        batch_size : int, default 100
            Samples per forward pass (memory only: the votes do not depend on it).
        label : int or array-like, optional
            The true class (for graphs one per target node; unknown = -1); only feeds ``.correct``.
        point : int, default 0
            The index of x in its dataset. With ``seed`` it chooses the seed stream: block b of stage s is drawn
            from a generator seeded from (seed, point, s, b), so distinct points get independent samples and the
            same point the same votes. Give each input of a dataset its own ``point``.
        edge_index : torch.Tensor, optional
            (2, E) integer edges; given, x is a graph and one forward pass classifies every node.
        nodes : array-like, optional
            The target nodes: integer indices, or a boolean mask of length N (e.g. PyG's ``data.test_mask``);
            default all nodes.
        runner_up : {"sound", "selection"}, default "sound"
            Class B of the multi-class certificate: the largest upper bound (sound), or the runner-up of the n₀
            selection votes (the reference code's choice).
        edge_weight : torch.Tensor, optional
            (E,) edge weights, passed as ``model(x, edge_index, edge_weight)`` (repeated for each copy).
        targets : list of Threat or str, optional
            Certify sequentially at these threats (SPEC.md §7): estimation samples are drawn only until every target
            is decided, at most n (:mod:`hiersmooth.certify.sequential`).
        procedure : str, default "scheduled-clopper-pearson"
            The anytime-valid bounds of a sequential run: ``"scheduled-clopper-pearson"`` or ``"beta-binomial"``.

        Returns
        -------
        VoteCertificates or SequentialCertificates
            ``.pre_votes`` and ``.votes`` (points × K; one point for an image, len(nodes) for a
            graph), ``.selected`` (class A), and ``.binary`` / ``.multiclass`` with ``abstain``,
            ``largest_l2(rows)``, ``certified_bits(rows, added, deleted)``, ``largest_rows()``. With ``targets``:
            a :class:`~hiersmooth.certify.sequential.SequentialCertificates` (``.certified[name]`` per target,
            ``.samples`` used).
        """
        n0, n = _positive("n0", n0), _positive("n", n)
        check_certify_options(alpha, runner_up)  # before a sample is drawn
        if targets is not None:
            from .sequential_run import certify_one

            if edge_weight is not None:
                raise ValueError("edge_weight: not supported with targets yet; certify with a fixed n instead")
            test = self.sequential_test(targets, procedure, alpha, n, runner_up, graph=edge_index is not None)
            return certify_one(
                self, x, n0, test, batch_size, label=label, point=point, edge_index=edge_index, nodes=nodes
            )
        common = dict(point=point, edge_index=edge_index, nodes=nodes, edge_weight=edge_weight)
        pre_votes = self.count(x, "selection", n0, batch_size, **common)
        votes = self.count(x, "estimation", n, batch_size, **common)
        pre_votes, votes = np.atleast_2d(pre_votes), np.atleast_2d(votes)
        labels = np.full(votes.shape[0], ABSTAIN) if label is None else np.atleast_1d(np.asarray(label))
        return certify_votes(Votes(pre_votes, votes, labels), self.smoothing, alpha, runner_up)

    def certify_dataset(
        self,
        data,
        n0: int,
        n: int,
        alpha: float = DEFAULT_ALPHA,
        batch_size: int = 100,
        *,
        out=None,
        labels=None,
        nodes=None,
        edge_index=None,
        **options,
    ) -> VoteCertificates:
        """Certify every point of a dataset — what ``hiersmooth certify`` does, from Python.

        Parameters
        ----------
        data : torch.Tensor, Dataset, torch_geometric.data.Data or array
            Images (P, C, H, W) in [0, 1]; a ``torch.utils.data.Dataset`` of (image, label) pairs; a PyG graph
            (``x``, ``edge_index``, ``y``; its ``test_mask`` gives the target nodes); or node features (N, D)
            with ``edge_index``.
        n0, n : int
            Selection and estimation samples per point.
        alpha : float, default DEFAULT_ALPHA (0.01)
            Significance level.
        batch_size : int, default 100
            Samples per forward pass (the votes do not depend on it).
        out : path, optional
            A folder: checkpoint ``progress.npz`` as the run goes (a killed run resumes to identical votes) and
            write ``votes.npz`` and the certified-accuracy files there, as the command line does.
        labels, nodes, edge_index : optional
            What raw arrays lack: labels (−1 = unknown), target nodes (indices or a boolean mask), edges.
        **options
            ``runner_up``, the threat grid ``rows``/``eps``/``added``/``deleted`` (lists or text such as
            ``"1-4"``), ``force``, ``checkpoint_seconds``, ``progress``
            (see :func:`hiersmooth.certify_run.certify_dataset`).

        Returns
        -------
        VoteCertificates
            ``.pre_votes`` and ``.votes`` (points × K), ``.labels``, ``.selected``, ``.correct``, and the
            ``.binary`` / ``.multiclass`` certificates; ``.grid(...)`` gives certified accuracy per threat.
        """
        from .certify_run import certify_dataset

        return certify_dataset(
            self, data, n0, n, alpha, batch_size, out=out, labels=labels, nodes=nodes, edge_index=edge_index, **options
        )

    def predict(
        self,
        x,
        n: int,
        alpha: float = DEFAULT_ALPHA,
        batch_size: int = 100,
        *,
        point: int = 0,
        edge_index=None,
        nodes=None,
        edge_weight=None,
    ):
        """The smoothed classifier's prediction g(x) from n samples, or ``ABSTAIN`` (-1).

        Returns the top class of the n votes unless the two-sided binomial test of the top two counts does not
        reject p = 1/2 at level α (Cohen et al., 2019, PREDICT). Guarantee: with probability ≥ 1 − α over the
        samples, a class returned (not ``ABSTAIN``) is g(x), the smoothed classifier's prediction.

        Parameters
        ----------
        x : torch.Tensor
            An image (C, H, W), a point cloud (N, d), or a graph's node features (N, D), dense or sparse.
        n : int
            Samples (stage ``"prediction"``).
        alpha : float, default DEFAULT_ALPHA (0.01)
            Significance level of the test: a wrong class is returned with probability at most α.
        batch_size : int, default 100
            Samples per forward pass (memory only).
        point : int, default 0
            The index of x in its dataset; selects the seed stream (see :meth:`certify`).
        edge_index : torch.Tensor, optional
            (2, E) integer edges; given, x is a graph.
        nodes : array-like, optional
            Target nodes: integer indices or a boolean mask of length N; default all.
        edge_weight : torch.Tensor, optional
            (E,) edge weights, passed as ``model(x, edge_index, edge_weight)``.

        Returns
        -------
        int or numpy.ndarray
            The class or ``ABSTAIN``: an int for an image or a point cloud, a (len(nodes),) array for a graph.
        """
        from .certify.bounds import check_alpha

        alpha = check_alpha(alpha)
        counts = np.atleast_2d(
            self.count(
                x, "prediction", n, batch_size, point=point, edge_index=edge_index, nodes=nodes, edge_weight=edge_weight
            )
        )
        order = np.argsort(-counts, axis=1, kind="stable")
        rows = np.arange(counts.shape[0])
        top, second = counts[rows, order[:, 0]], counts[rows, order[:, 1]]
        prediction = np.where(binomial_two_sided_p(top, second) <= alpha, order[:, 0], ABSTAIN)
        return int(prediction[0]) if edge_index is None else prediction

    # ----------------------------------------------------------------------------------------------------------
    def _inputs(self, x, edge_index, nodes):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x: must be a torch.Tensor, got {type(x).__name__}")
        x = x.to(self.device)
        if edge_index is None:
            if nodes is not None:
                raise ValueError("nodes: only a graph (given with edge_index) has target nodes")
            if x.dim() not in (2, 3) or x.layout != torch.strided:
                raise ValueError(
                    f"x: an image must be a dense (C, H, W) tensor and a point cloud a dense (N, d) "
                    f"one, got shape {tuple(x.shape)}; pass edge_index for a graph"
                )
            return x, None, None
        if x.dim() != 2:
            raise ValueError(f"x: graph features must be an (N, D) matrix, got shape {tuple(x.shape)}")
        edge_index = torch.as_tensor(edge_index, device=self.device)
        entities = x.shape[0]
        if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"edge_index: must be an integer (2, E) tensor, got {edge_index.dtype} of shape "
                f"{tuple(edge_index.shape)}"
            )
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= entities):
            raise ValueError(f"edge_index: node indices must lie in [0, {entities - 1}] for {entities} nodes")
        nodes = (
            torch.arange(entities, device=self.device)
            if nodes is None
            else torch.as_tensor(node_indices(nodes, entities), device=self.device)
        )
        self._check_graph_model()
        self._dense_notice(x)
        return x, edge_index, nodes

    def _edge_weight(self, edge_weight, edge_index):
        if edge_weight is None:
            return None
        if edge_index is None:
            raise ValueError("edge_weight: only a graph (given with edge_index) has edge weights")
        edge_weight = torch.as_tensor(edge_weight, device=self.device)
        if edge_weight.shape != (edge_index.shape[1],) or not torch.is_floating_point(edge_weight):
            raise ValueError(
                f"edge_weight: must be a floating (E,) tensor with one weight per edge, E = {edge_index.shape[1]}; "
                f"got {edge_weight.dtype} of shape {tuple(edge_weight.shape)}"
            )
        if not bool(torch.isfinite(edge_weight).all()):
            raise ValueError("edge_weight: must be finite numbers (found NaN or infinity)")
        self._check_graph_model(weighted=True)
        return edge_weight

    def _check_graph_model(self, weighted: bool = False) -> None:
        """Refuse a graph model that cannot take ``(x, edge_index)``, e.g. ``forward(self, data)``, or — where
        ``weighted`` — ``(x, edge_index, edge_weight)``."""
        try:
            parameters = inspect.signature(self.model.forward).parameters.values()
        except (TypeError, ValueError):  # no signature to read (a compiled or C++ module): let the call decide
            return
        if any(p.kind == p.VAR_POSITIONAL for p in parameters):
            return
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = ", ".join(p.name for p in positional)
        if weighted and len(positional) == 2:
            raise ValueError(
                f"edge_weight: {type(self.model).__name__}.forward({names}) takes no edge weights; give a model "
                "with forward(x, edge_index, edge_weight) or leave edge_weight out"
            )
        if len(positional) < 2:
            raise ValueError(
                f"model: {type(self.model).__name__}.forward({names}) cannot classify a graph; expected the PyG "
                f"signature forward(x, edge_index[, edge_weight]) returning logits (N, K) (wrap a forward(data) "
                f"model: lambda x, edge_index: model(Data(x=x, edge_index=edge_index)))"
            )

    def _dense_notice(self, x: torch.Tensor) -> None:
        """Once per process: dense binary features under bit-flip noise run several times slower than sparse CSR."""
        global _dense_notice_given
        if _dense_notice_given or x.layout != torch.strided or not self.smoothing.noise.binary_input:
            return
        _dense_notice_given = True
        warnings.warn(
            f"x: dense graph features; sparse CSR features (x.to_sparse_csr()) give the same votes about "
            f"{DENSE_SLOWDOWN}x faster (Cora-ML GCN, benchmarks/dense_vs_sparse_graph.py)",
            UserWarning,
            stacklevel=5,
        )

    def output_width(self, x, *, edge_index=None, edge_weight=None) -> int:
        """The number of classes the model outputs, from one forward pass on one sample of Ψ_x.

        Parameters
        ----------
        x : torch.Tensor
            An image (C, H, W), a point cloud (N, d) or a graph's node features (N, D).
        edge_index : torch.Tensor, optional
            (2, E) integer edges; given, x is a graph.
        edge_weight : torch.Tensor, optional
            (E,) edge weights.

        Returns
        -------
        int
            The width of the logits (the last dimension of the model's output).
        """
        graph = edge_index is not None
        x, edge_index, _ = self._inputs(x, edge_index, None)
        edge_weight = self._edge_weight(edge_weight, edge_index)
        sampler = self.smoothing.sampler(x)
        sample = sampler.draw(1, self.seed_plan(graph).generator(0, "selection", 0, self.device), self._token(sampler))
        inputs = (
            (sample.reshape(-1, sample.shape[-1]) if sample.layout != torch.sparse_csr else sample, edge_index)
            + (() if edge_weight is None else (edge_weight,))
            if graph
            else (sample,)
        )
        inference, autocast = self._context()
        with self._evaluating(), inference, autocast:
            logits = self.model(*inputs)
        if not _real_dense(logits) or logits.dim() != 2:
            raise ValueError(
                f"model: {type(self.model).__name__} returned {_described(logits)}; expected a (batch, classes) "
                "logits tensor"
            )
        return int(logits.shape[1])

    def _token(self, sampler):
        """The model's learnable ablation token, when the smoothing ablates to a token; refused for sparse input,
        which can only ablate to zeros (the model would be certified under another distribution than it learned)."""
        noise = self.smoothing.noise
        token = getattr(self.model, "ablation_token", None)
        if not (noise.takes_learned_token and isinstance(token, torch.Tensor)):
            return None
        if sampler.sparse:
            raise ValueError(
                "x: the model has a learnable ablation_token, which needs dense features; pass x.to_dense()"
            )
        return token.detach()

    def _context(self):
        autocast = torch.autocast(self.device.type) if self.autocast else nullcontext()
        return torch.inference_mode(), autocast

    def _checked_logits(self, logits, rows: int, where: str, what: str) -> torch.Tensor:
        """Refuse an output that is not a finite (rows, K) tensor, naming the model and the batch."""
        model = type(self.model).__name__
        if not _real_dense(logits) or logits.shape != (rows, self.num_classes):
            raise ValueError(
                f"model: {model} returned {_described(logits)} for {what} ({where}); expected a ({rows}, "
                f"{self.num_classes}) tensor of real logits (batch, num_classes={self.num_classes})"
            )
        if not all(map(math.isfinite, torch.aminmax(logits))):  # NaN or ±inf anywhere shows in the min or max
            raise ValueError(
                f"model: {model} returned non-finite logits (NaN or inf) for the batch of {what} ({where})"
            )
        return logits

    def _predicted_images(self, batch: torch.Tensor, where: str = "") -> torch.Tensor:
        """The model's class (b,) for each sample of a batch (b, C' [+1], H, W) or (b, N, d [+1])."""
        inference, autocast = self._context()
        with inference, autocast:
            logits = self.model(batch)
        return self._checked_logits(logits, batch.shape[0], where, f"{batch.shape[0]} samples").argmax(dim=1)

    def _classify_images(self, batch: torch.Tensor, where: str = "") -> torch.Tensor:
        return torch.bincount(self._predicted_images(batch, where), minlength=self.num_classes)

    def _union_edges(self, edge_index: torch.Tensor, entities: int, copies: int, edge_weight=None):
        """The edge index (and weights) of ``copies`` disjoint copies of the graph (copy k's nodes offset by k·N).

        Cached on the identity of the tensors: an entry holds them, so their ids cannot be reused while it lives,
        and their version counters, so an in-place change misses."""
        key = (
            id(edge_index),
            edge_index._version,
            id(edge_weight),
            edge_weight is not None and edge_weight._version,
            entities,
            copies,
        )
        entry = self._edges.get(key)  # one lookup: forward passes may run on several threads
        if entry is None or entry[0] is not edge_index or entry[1] is not edge_weight:
            if len(self._edges) > 8:
                self._edges.clear()
            offsets = torch.arange(copies, device=edge_index.device).repeat_interleave(edge_index.shape[1]) * entities
            union = (edge_index.repeat(1, copies) + offsets,) + (
                () if edge_weight is None else (edge_weight.repeat(copies),)
            )
            entry = self._edges[key] = (edge_index, edge_weight, union)
        return entry[2]

    def _classify_graphs(
        self,
        features: torch.Tensor,
        edge_index: torch.Tensor,
        nodes: torch.Tensor,
        entities: int,
        edge_weight=None,
        where: str = "",
    ) -> torch.Tensor:
        if features.layout != torch.sparse_csr:
            features = features.reshape(-1, features.shape[-1])
        copies = features.shape[0] // entities
        inference, autocast = self._context()
        with inference, autocast:
            logits = self.model(features, *self._union_edges(edge_index, entities, copies, edge_weight))
        logits = self._checked_logits(logits, features.shape[0], where, f"{copies} copies of {entities} nodes")
        predicted = logits.argmax(dim=1).view(copies, entities)[:, nodes]
        slots = torch.arange(nodes.numel(), device=nodes.device) * self.num_classes + predicted
        return torch.bincount(slots.reshape(-1), minlength=nodes.numel() * self.num_classes).view(-1, self.num_classes)


def _passes_per_round(x: torch.Tensor, samples_per_pass: int, passes: int, workers: int) -> int:
    """Forward passes per round of ``block_votes``: ``ROUND_PASSES``, fewer where a round's samples would hold more
    than ``ROUND_BYTES`` (a sample counted as the bytes of x, dense or its stored entries) or where the ``workers``
    would not all get a round; at least 1."""
    stored = x._nnz() * (x.element_size() + 8) if x.layout != torch.strided else x.numel() * x.element_size()
    return max(1, min(ROUND_PASSES, ROUND_BYTES // max(1, stored * samples_per_pass), -(-passes // workers)))


def _unfit_kind(output: torch.Tensor) -> str | None:
    """What keeps a tensor from being logits — ``"nested"``, ``"sparse"``, ``"meta"``, ``"complex"`` or
    ``"bool"`` — or None for a dense tensor of real numbers with data."""
    if output.is_nested:
        return "nested"
    if output.layout != torch.strided:
        return "sparse"
    if output.is_meta:
        return "meta"
    if output.is_complex():
        return "complex"
    return "bool" if output.dtype == torch.bool else None


def _real_dense(output) -> bool:
    """Whether ``output`` is what logits must be: a dense tensor of real numbers with data."""
    return isinstance(output, torch.Tensor) and _unfit_kind(output) is None


def _described(output) -> str:
    """``a tensor of shape (4, 3)``, ``a sparse tensor of shape (4, 3)``, ``a tuple`` ...: what a model returned, for
    errors."""
    if not isinstance(output, torch.Tensor):
        return f"a {type(output).__name__}"
    kind = _unfit_kind(output)
    if kind == "nested":  # (no shape to show)
        return "a nested tensor"
    return f"a {kind + ' ' if kind else ''}tensor of shape {tuple(output.shape)}"
