"""Count a sequential certification's votes (SPEC.md §7): each point stops once its targets are decided.

The samples are the seed plan's blocks, as in a fixed-n run (``hiersmooth.seeds``): block b of the estimation
stage of point p is the same block whether a run is sequential or not, so a sequential run that never stops early
counts exactly the fixed-n votes. A point is looked at only when its count reaches one of the procedure's looks
(whole blocks), and only its own blocks enter its decisions, so the results do not depend on the batch size, on
how blocks of several points share a forward pass, or on the number of processes.

- Images (and point clouds): every forward pass is filled with the next blocks of the points still running, up to
  each point's next look (nothing is drawn that a decision might make unnecessary); a point leaves when decided.
- Graphs: one forward pass classifies every node, so sampling goes on while any target node is open; a decided
  node stops counting (its votes and samples stay those of its last look). Under torchrun each rank counts its
  share of the blocks of each interval between looks, and the counts are summed at the look, so every rank takes
  the same decisions.

The checkpoint holds the counts, the cursor and the decisions so far (``state``): a killed run resumes to the same
result.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from .certify.sequential import OPEN, SequentialCertificates, SequentialTest
from .defaults import CERTIFICATES
from .distributed import Ranks
from .inputs import Graph, ImageSet
from .progress import progress_bar

if TYPE_CHECKING:
    from .certify_run import Checkpoint
    from .classifier import SmoothedClassifier


def sequential_state(points: int, test: SequentialTest, classes: int) -> dict[str, np.ndarray]:
    """The arrays a sequential run checkpoints beside the counts: decisions (points, certificates, targets),
    estimation samples used and whether each point stopped; for a graph also the counts since the last look
    (this rank's) and the index of the next look."""
    return {
        "states": np.zeros((points, len(CERTIFICATES), len(test.targets)), dtype=np.int8),
        "samples": np.zeros(points, dtype=np.int64),
        "stopped": np.zeros(points, dtype=bool),
        "interval": np.zeros((points, classes), dtype=np.int64),
        "next_look": np.zeros(1, dtype=np.int64),
    }


def count_sequential(
    classifier: SmoothedClassifier,
    dataset: ImageSet | Graph,
    test: SequentialTest,
    batch_size: int,
    checkpoint: Checkpoint,
    checkpoint_seconds: float = 10.0,
    progress: bool = True,
    ranks: Ranks | None = None,
    seed_points=None,
) -> SequentialCertificates:
    """The estimation votes of a sequential run, once the selection votes are in ``checkpoint`` (all ranks'
    selection counts are summed here, so every rank knows class A); ``seed_points[i]`` is the seed-plan point
    of image i (default i)."""
    ranks = ranks or Ranks()
    pre_votes = ranks.sum(checkpoint.counts["selection"])
    graph = isinstance(dataset, Graph)
    count = _count_graph if graph else _count_images
    saver = _Saver(checkpoint, checkpoint_seconds)
    try:
        count(classifier, dataset, test, batch_size, checkpoint, pre_votes, saver, progress, ranks, seed_points)
    finally:
        saver.final()
    state = checkpoint.state
    votes, samples, states = checkpoint.counts["estimation"], state["samples"], state["states"]
    if not graph:  # each rank holds its own images; a graph's counts are summed at every look already
        votes, samples, states = ranks.sum(votes), ranks.sum(samples), ranks.sum(states.astype(np.int64))
    labels = dataset.labels[dataset.nodes] if graph else dataset.labels
    return SequentialCertificates(pre_votes, votes, np.asarray(labels), samples, states.astype(np.int8), test)


class _Saver:
    """Checkpoint at least every ``seconds``, only at consistent moments (between passes), and once at the end
    unless interrupted mid-update (the previous checkpoint then stands)."""

    def __init__(self, checkpoint: Checkpoint, seconds: float):
        self.checkpoint, self.seconds, self.last, self.consistent = checkpoint, seconds, time.monotonic(), True

    def due(self) -> bool:
        """Whether the next :meth:`maybe` saves."""
        return time.monotonic() - self.last >= self.seconds

    def maybe(self) -> None:
        if self.due():
            self.checkpoint.save()
            self.last = time.monotonic()

    def final(self) -> None:
        if self.consistent:
            self.checkpoint.save()


def _stop_where_decided(state: dict, units, at_end: bool) -> np.ndarray:
    """Mark ``units`` stopped where every target of both certificates is decided (or at n_max); the ones marked."""
    units = np.asarray(units, dtype=np.int64)
    done = at_end | ~(state["states"][units] == OPEN).any(axis=(1, 2))
    state["stopped"][units[done]] = True
    return units[done]


def _count_images(classifier, dataset, test, batch_size, checkpoint, pre_votes, saver, progress, ranks, seed_points):
    """Fill every pass with the next blocks of the running points, each up to its next look; a point that reaches a
    look waits (its blocks leave the passes) until the points waiting are decided together — when the others
    cannot fill a pass, or before a checkpoint — so the decisions cost a few calls per look, not one per pass.
    A point's decision depends only on its own counts at the look, so waiting changes nothing."""
    plan = classifier.seed_plan(False)
    sizes = plan.blocks(test.n_max)
    ends = np.cumsum(sizes)
    look_blocks = [int(np.searchsorted(ends, look)) + 1 for look in test.looks]  # blocks counted at each look
    state, votes, cursor = checkpoint.state, checkpoint.counts["estimation"], checkpoint.cursor[:, 1]
    selected = pre_votes.argmax(axis=1)
    units = [unit for unit in range(dataset.points) if ranks.mine(unit)]
    seed_points = list(range(dataset.points)) if seed_points is None else list(seed_points)
    running = [unit for unit in units if not state["stopped"][unit]]
    waiting: set[int] = set()  # running points at a look, not decided there yet
    group = max(1, batch_size // plan.block_size)
    samplers: dict[int, tuple] = {}
    bar = progress_bar(progress, len(units) * test.n_max, "certify (sequential)")
    bar.update(sum(test.n_max if state["stopped"][unit] else int(state["samples"][unit]) for unit in units))

    counted = True  # the counts and decisions hold whole passes (False while a pass is added or the waiting decided)

    def decide_waiting() -> list[int]:
        nonlocal counted
        counted = False
        reached = sorted(waiting)
        for n in sorted({int(state["samples"][unit]) for unit in reached}):
            at = [unit for unit in reached if state["samples"][unit] == n]
            state["states"][at] = test.decide(votes[at], n, selected[at], state["states"][at], pre_votes[at])
            for unit in _stop_where_decided(state, at, n == test.n_max):
                samplers.pop(int(unit), None)
                bar.update(test.n_max - n)
        waiting.clear()
        counted = True
        return [unit for unit in running if not state["stopped"][unit]]

    try:
        while running:
            work, owners = [], []
            for unit in running:
                if len(work) >= group:
                    break
                if unit in waiting:
                    continue
                start = int(cursor[unit])
                boundary = next(blocks for blocks in look_blocks if blocks > start)
                if unit not in samplers:
                    samplers[unit] = classifier.image_sampler(dataset.images[unit])
                for block in range(start, min(boundary, start + group - len(work))):
                    work.append((*samplers[unit], seed_points[unit], block, sizes[block]))
                    owners.append(unit)
            if len(work) < group and waiting:  # the others cannot fill this pass: decide the waiting first
                running = decide_waiting()
                continue
            counts = classifier.count_blocks(work, "estimation", batch_size)
            counted = False
            for unit, (*_, block, size), row in zip(owners, work, counts):
                votes[unit] += row
                cursor[unit] = block + 1
                state["samples"][unit] += size
            waiting.update(unit for unit in owners if int(cursor[unit]) in look_blocks)
            counted = True
            bar.update(sum(size for *_, size in work))
            if saver.due():  # a checkpoint holds no point waiting at a look (a resumed run would skip it)
                running = decide_waiting()
                saver.maybe()
    finally:
        saver.consistent = False  # the final checkpoint: only of whole passes with no point waiting at a look
        if waiting and counted:  # stopped between passes: decide the waiting, so the last checkpoint keeps every pass
            decide_waiting()
        saver.consistent = counted and not waiting
        bar.close()


def _count_graph(classifier, dataset, test, batch_size, checkpoint, pre_votes, saver, progress, ranks, seed_points):
    state, votes = checkpoint.state, checkpoint.counts["estimation"]
    point = 0 if seed_points is None else int(seed_points[0])
    share = (ranks.rank, ranks.world_size)
    selected = pre_votes.argmax(axis=1)
    bar = progress_bar(progress, test.n_max, "certify (sequential)")
    bar.update(test.looks[int(state["next_look"][0]) - 1] if state["next_look"][0] else 0)
    try:
        while state["next_look"][0] < len(test.looks) and not state["stopped"].all():
            look = int(state["next_look"][0])
            n = test.looks[look]
            running = ~state["stopped"]
            for stop, counts in classifier.block_votes(
                dataset.features,
                "estimation",
                n,
                batch_size,
                edge_index=dataset.edge_index,
                nodes=dataset.nodes,
                point=point,
                first_block=int(checkpoint.cursor[0, 1]),
                share=share,
            ):
                saver.consistent = False
                state["interval"] += counts.numpy() * running[:, None]
                checkpoint.cursor[0, 1] = stop
                saver.consistent = True
                saver.maybe()
            saver.consistent = False
            votes += ranks.sum(state["interval"])
            state["interval"][:] = 0
            state["samples"][running] = n
            at = np.flatnonzero(running)
            state["states"][at] = test.decide(votes[at], n, selected[at], state["states"][at], pre_votes[at])
            _stop_where_decided(state, at, look == len(test.looks) - 1)
            state["next_look"][0] = look + 1
            saver.consistent = True
            saver.maybe()
            bar.update((test.n_max if state["stopped"].all() else n) - (test.looks[look - 1] if look else 0))
    finally:
        bar.close()


def certify_one(
    classifier: SmoothedClassifier,
    x,
    n0: int,
    test: SequentialTest,
    batch_size: int,
    *,
    label=None,
    point: int = 0,
    edge_index=None,
    nodes=None,
) -> SequentialCertificates:
    """:meth:`SmoothedClassifier.certify` with targets: one image (seed point ``point``) or a graph's ``nodes``,
    n₀ selection votes then the sequential estimation votes, in memory."""
    from .certify_run import Checkpoint
    from .classifier import ABSTAIN
    from .inputs import node_indices

    graph = edge_index is not None
    pre_votes = np.atleast_2d(
        classifier.count(x, "selection", n0, batch_size, point=point, edge_index=edge_index, nodes=nodes)
    )
    points, classes = pre_votes.shape
    labels = np.full(points, ABSTAIN) if label is None else np.atleast_1d(np.asarray(label))
    if graph:
        nodes = np.arange(x.shape[0]) if nodes is None else node_indices(nodes, x.shape[0])
        full = np.full(x.shape[0], ABSTAIN)
        full[nodes] = labels
        dataset = Graph(x, edge_index, full, nodes)
    else:
        dataset = ImageSet(x.unsqueeze(0), labels)
    checkpoint = Checkpoint(None, {}, points, 1, classes, sequential_state(points, test, classes))
    checkpoint.counts["selection"][:] = pre_votes
    return count_sequential(
        classifier, dataset, test, batch_size, checkpoint, progress=classifier.progress, seed_points=[point]
    )
