"""``SmoothedClassifier``: Monte-Carlo predict and certify of any PyTorch classifier (SPEC.md §4; Cohen et al., 2019).

certify: n₀ samples pick class A (the most frequent), n fresh samples count the votes, and the certificate engine
bounds p_A (and p_B) and answers threats (``hiersmooth.certify.certificates``). predict: n samples, abstain
unless the two-sided binomial test of the top two counts rejects p = 1/2 at level α.

Images: ``model(z)`` maps a batch (b, C' [+1], H, W) to logits (b, K). Graphs: one forward pass classifies
every node; ``model(features, edge_index)`` maps the disjoint union of b noisy copies — features (b·N, D' [+1]),
dense or sparse CSR as the input was, and the edge index repeated with node offsets — to logits (b·N, K).
The samples come in seeded blocks (``hiersmooth.seeds``), so the votes do not depend on ``batch_size``, nor on
the worker threads that run forward passes side by side on a CPU (``in_order``).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import torch

from .certify.certificates import VoteCertificates, certify_votes
from .certify.votes import Votes
from .seeds import SeedPlan
from .smoothing import Ablation, Smoothing, from_config

ABSTAIN = -1
DEFAULT_BLOCK_SIZE = {"image": 100, "graph": 4}
CPU_WORKERS = 2  # forward passes run side by side on a CPU (``in_order``)


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: must be an integer >= 1")
    return int(value)


def concat_samples(samples: list[torch.Tensor]) -> torch.Tensor:
    """Stack sample blocks along the first axis (dense) or as more rows of one disjoint union (sparse CSR)."""
    if len(samples) == 1:
        return samples[0]
    if samples[0].layout != torch.sparse_csr:
        return torch.cat(samples)
    entries = [block.col_indices().numel() for block in samples]
    narrow = all(block.crow_indices().dtype == torch.int32 for block in samples) and sum(entries) < 2**31
    index = torch.int32 if narrow else torch.long  # the blocks' int32 indices while the union's still fit
    offsets = np.cumsum([0] + entries[:-1]).tolist()
    crows = [samples[0].crow_indices().to(index)] + [block.crow_indices()[1:].to(index) + offset
                                                     for block, offset in zip(samples[1:], offsets[1:])]
    rows = sum(block.shape[0] for block in samples)
    return torch.sparse_csr_tensor(
        torch.cat(crows),
        torch.cat([block.col_indices().to(index) for block in samples]),
        torch.cat([block.values() for block in samples]),
        size=(rows, samples[0].shape[1]),
        check_invariants=False,
    )


def split_samples(samples: torch.Tensor, size: int, rows_per_sample: int = 1):
    """Chunks of at most ``size`` samples (a sparse CSR union is cut between copies of ``rows_per_sample`` rows)."""
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
    """Two-sided p-value of the binomial test that the top count is Binomial(top + second, 1/2)."""
    from scipy.stats import binom

    return np.minimum(1.0, 2 * binom.cdf(second, top + second, 0.5))


class SmoothedClassifier:
    """g(x) = argmax_y P_{Z ~ Ψ_x}[model(Z) = y], estimated by Monte Carlo; certified by the engine.

    ``seed`` and ``block_size`` fix the random streams (a :class:`~hiersmooth.seeds.SeedPlan`; the default block
    size is 100 samples for images and 4 for graphs). ``device`` defaults to the model's; ``autocast`` runs the
    model under ``torch.autocast``. A learnable ablation token is taken from ``model.ablation_token`` when the
    model has one.
    """

    def __init__(self, model: torch.nn.Module, smoothing, num_classes: int, *, seed: int = 0, block_size: int | None = None,
                 device=None, autocast: bool = False, progress: bool = False):
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model: must be a torch.nn.Module, got {type(model).__name__}")
        self.smoothing: Smoothing = from_config(smoothing)
        self.num_classes = _positive("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes={num_classes}: must be >= 2")
        SeedPlan(seed, block_size or 1)  # validates both
        self.seed, self.block_size = int(seed), block_size
        parameter = next(model.parameters(), None)
        self.device = torch.device(device) if device is not None else parameter.device if parameter is not None else torch.device("cpu")
        self.model = model.to(self.device)
        self.autocast = bool(autocast)
        self.progress = progress
        self._edges: dict[tuple, torch.Tensor] = {}

    def seed_plan(self, graph: bool) -> SeedPlan:
        return SeedPlan(self.seed, self.block_size or DEFAULT_BLOCK_SIZE["graph" if graph else "image"])

    # ----------------------------------------------------------------------------------------------------------
    def block_votes(self, x, stage: str, n: int, batch_size: int, *, point: int = 0, edge_index=None, nodes=None,
                    first_block: int = 0, share: tuple[int, int] = (0, 1)):
        """Yield ``(next_block, counts)`` after each forward pass over the blocks of n samples of ``stage``.

        ``counts`` is (K,) for an image and (len(nodes), K) for a graph; summing them over all passes gives the
        votes. ``share=(rank, world_size)`` keeps only the blocks b with b mod world_size = rank (the other ranks
        count the rest); ``first_block`` and ``next_block`` count this share's blocks, so starting at
        ``first_block`` resumes a stage whose earlier blocks were already counted.
        """
        n, batch_size = _positive("n", n), _positive("batch_size", batch_size)
        graph = edge_index is not None
        x, edge_index, nodes = self._inputs(x, edge_index, nodes)
        plan = self.seed_plan(graph)
        sampler = self.smoothing.sampler(x)
        token = self._token(sampler)
        entities = x.shape[0] if graph else 1
        sizes, blocks = plan.blocks(n), plan.share(n, *share)
        group = max(1, batch_size // plan.block_size)

        def votes(start: int) -> tuple[int, torch.Tensor]:
            """Votes of the forward pass over the blocks from ``start`` on, each block drawn from its own generator."""
            stop = min(start + group, len(blocks))
            samples = concat_samples([sampler.draw(sizes[b], plan.generator(point, stage, b, self.device), token)
                                      for b in blocks[start:stop]])
            counts = torch.zeros((len(nodes), self.num_classes) if graph else (self.num_classes,), dtype=torch.long,
                                 device=self.device)
            for chunk in split_samples(samples, batch_size, entities if samples.layout == torch.sparse_csr else 1):
                counts += self._classify_graphs(chunk, edge_index, nodes, entities) if graph else self._classify_images(chunk)
            return stop, counts.cpu()

        workers = min(CPU_WORKERS, torch.get_num_threads()) if self.device.type == "cpu" else 1
        was_training = self.model.training
        self.model.eval()
        try:
            yield from in_order(votes, range(first_block, len(blocks), group), workers)
        finally:
            self.model.train(was_training)

    def count(self, x, stage: str, n: int, batch_size: int, *, point: int = 0, edge_index=None, nodes=None) -> np.ndarray:
        """Votes of n samples of ``stage``: (K,) for an image, (len(nodes), K) for a graph."""
        plan = self.seed_plan(edge_index is not None)
        bar = progress_bar(self.progress, n, f"{stage} point {point}")
        total = None
        for stop, counts in self.block_votes(x, stage, n, batch_size, point=point, edge_index=edge_index, nodes=nodes):
            total = counts if total is None else total + counts
            bar.update(min(stop * plan.block_size, n) - bar.n)
        bar.close()
        return total.numpy()

    def certify(self, x, n0: int, n: int, alpha: float = 0.001, batch_size: int = 100, *, label=None, point: int = 0,
                edge_index=None, nodes=None, runner_up: str = "sound") -> VoteCertificates:
        """Certify x (an image, or the target ``nodes`` of a graph): votes of n₀ + n samples → certificates.

        Returns the engine's :class:`~hiersmooth.certify.certificates.VoteCertificates`: ``.votes.pre_votes``,
        ``.votes.votes``, ``.selected`` (class A), and ``.binary`` / ``.multiclass`` with ``abstain``,
        ``largest_l2(rows)``, ``certified_bits(rows, added, deleted)``, ``largest_rows()``. ``label`` (a class or,
        for graphs, one per target node; unknown = -1) only feeds ``.correct``.
        """
        common = dict(point=point, edge_index=edge_index, nodes=nodes)
        pre_votes = self.count(x, "selection", n0, batch_size, **common)
        votes = self.count(x, "estimation", n, batch_size, **common)
        pre_votes, votes = np.atleast_2d(pre_votes), np.atleast_2d(votes)
        labels = np.full(votes.shape[0], ABSTAIN) if label is None else np.atleast_1d(np.asarray(label))
        return certify_votes(Votes(pre_votes, votes, labels), self.smoothing, alpha, runner_up)

    def predict(self, x, n: int, alpha: float = 0.001, batch_size: int = 100, *, point: int = 0, edge_index=None, nodes=None):
        """The top class of n samples, or ``ABSTAIN`` (-1) when the two-sided binomial test of the top two counts
        does not reject p = 1/2 at level α (Cohen et al., 2019, PREDICT). An int for an image, an array for nodes."""
        from .certify.bounds import check_alpha

        alpha = check_alpha(alpha)
        counts = np.atleast_2d(self.count(x, "prediction", n, batch_size, point=point, edge_index=edge_index, nodes=nodes))
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
            if x.dim() != 3 or x.layout != torch.strided:
                raise ValueError(f"x: an image must be a dense (C, H, W) tensor, got shape {tuple(x.shape)}; pass edge_index for a graph")
            return x, None, None
        if x.dim() != 2:
            raise ValueError(f"x: graph features must be an (N, D) matrix, got shape {tuple(x.shape)}")
        edge_index = torch.as_tensor(edge_index, device=self.device)
        entities = x.shape[0]
        if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"edge_index: must be an integer (2, E) tensor, got {edge_index.dtype} of shape {tuple(edge_index.shape)}")
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= entities):
            raise ValueError(f"edge_index: node indices must lie in [0, {entities - 1}] for {entities} nodes")
        nodes = torch.arange(entities, device=self.device) if nodes is None else torch.as_tensor(nodes, device=self.device).long().reshape(-1)
        if nodes.numel() == 0 or nodes.min() < 0 or nodes.max() >= entities:
            raise ValueError(f"nodes: must be a non-empty list of node indices in [0, {entities - 1}]")
        return x, edge_index, nodes

    def _token(self, sampler):
        """The model's learnable ablation token, when the smoothing ablates to a token; refused for sparse input,
        which can only ablate to zeros (the model would be certified under another distribution than it learned)."""
        noise = self.smoothing.noise
        token = getattr(self.model, "ablation_token", None)
        if not (isinstance(noise, Ablation) and noise.encoding == "token" and isinstance(token, torch.Tensor)):
            return None
        if sampler.sparse:
            raise ValueError("x: the model has a learnable ablation_token, which needs dense features; pass x.to_dense()")
        return token.detach()

    def _context(self):
        autocast = torch.autocast(self.device.type) if self.autocast else nullcontext()
        return torch.inference_mode(), autocast

    def _classify_images(self, batch: torch.Tensor) -> torch.Tensor:
        inference, autocast = self._context()
        with inference, autocast:
            logits = self.model(batch)
        if logits.dim() != 2 or logits.shape != (batch.shape[0], self.num_classes):
            raise ValueError(f"model: returned shape {tuple(logits.shape)} for {batch.shape[0]} inputs; expected ({batch.shape[0]}, {self.num_classes})")
        return torch.bincount(logits.argmax(dim=1), minlength=self.num_classes)

    def _union_edges(self, edge_index: torch.Tensor, entities: int, copies: int) -> torch.Tensor:
        """The edge index of ``copies`` disjoint copies of the graph (copy k's nodes offset by k·N); cached."""
        key = (edge_index.data_ptr(), edge_index.shape[1], entities, copies)
        edges = self._edges.get(key)  # one lookup: forward passes may run on several threads
        if edges is None:
            if len(self._edges) > 8:
                self._edges.clear()
            offsets = torch.arange(copies, device=edge_index.device).repeat_interleave(edge_index.shape[1]) * entities
            edges = self._edges[key] = edge_index.repeat(1, copies) + offsets
        return edges

    def _classify_graphs(self, features: torch.Tensor, edge_index: torch.Tensor, nodes: torch.Tensor, entities: int) -> torch.Tensor:
        if features.layout != torch.sparse_csr:
            features = features.reshape(-1, features.shape[-1])
        copies = features.shape[0] // entities
        inference, autocast = self._context()
        with inference, autocast:
            logits = self.model(features, self._union_edges(edge_index, entities, copies))
        if logits.shape != (features.shape[0], self.num_classes):
            raise ValueError(
                f"model: returned shape {tuple(logits.shape)} for {copies} copies of {entities} nodes; "
                f"expected ({features.shape[0]}, {self.num_classes})"
            )
        predicted = logits.argmax(dim=1).view(copies, entities)[:, nodes]
        slots = torch.arange(nodes.numel(), device=nodes.device) * self.num_classes + predicted
        return torch.bincount(slots.reshape(-1), minlength=nodes.numel() * self.num_classes).view(-1, self.num_classes)


def progress_bar(enabled: bool, total: int, description: str):
    """A tqdm bar with samples/s and ETA (a silent stand-in when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="sample", unit_scale=True, disable=not enabled, leave=False)
