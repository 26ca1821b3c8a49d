"""Certify a whole dataset with checkpoints: a run killed part-way resumes where it stopped, with the same votes.

The unit of progress is a block of samples (``hiersmooth.seeds``): the checkpoint holds the votes counted so far
and, per work unit (an image; the one graph), the next block of each stage. Blocks have their own random
streams, so resuming — even with another batch size — gives exactly the votes of an uninterrupted run.
The checkpoint also records a fingerprint of everything that fixes the votes; a mismatching one is refused.
Under torchrun every rank keeps its own checkpoint of its share of the work (``checkpoint_path``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .certify.votes import Votes
from .classifier import SmoothedClassifier, progress_bar
from .data.arrays import Graph, ImageSet
from .distributed import Ranks
from .results import atomic_file

STAGE_ORDER = ("selection", "estimation")


def checkpoint_path(out: Path, ranks: Ranks) -> Path:
    """``progress.npz``, or ``progress.rank{r}of{K}.npz`` for rank r of K processes."""
    return Path(out) / ("progress.npz" if not ranks.distributed else f"progress.rank{ranks.rank}of{ranks.world_size}.npz")


class Checkpoint:
    """The progress file: ``pre_votes``, ``votes`` (points × K), ``cursor`` (units × 2) and the fingerprint."""

    def __init__(self, path: Path, fingerprint: dict, points: int, units: int, classes: int):
        self.path = Path(path)
        self.fingerprint = json.dumps(fingerprint, sort_keys=True)
        self.counts = {stage: np.zeros((points, classes), dtype=np.int64) for stage in STAGE_ORDER}
        self.cursor = np.zeros((units, len(STAGE_ORDER)), dtype=np.int64)
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                stored = {key: data[key] for key in data.files}
        except Exception as error:  # a truncated or foreign file: say so, never guess
            raise ValueError(f"checkpoint {self.path}: unreadable ({error}); delete it to start over") from None
        if str(stored.get("fingerprint")) != self.fingerprint:
            old, new = json.loads(str(stored.get("fingerprint", "{}"))), json.loads(self.fingerprint)
            differing = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
            raise ValueError(
                f"checkpoint {self.path}: written by a different run (differs in {', '.join(differing)}); "
                "use another --out or delete it"
            )
        self.counts = {"selection": stored["pre_votes"], "estimation": stored["votes"]}
        self.cursor = stored["cursor"]

    def save(self) -> None:
        """Write atomically: a kill during the write leaves the previous checkpoint intact (the temporary name is
        unique per process, so two runs never write into each other's partial file)."""
        with atomic_file(self.path, "wb") as handle:
            np.savez(handle, pre_votes=self.counts["selection"], votes=self.counts["estimation"], cursor=self.cursor,
                     fingerprint=np.array(self.fingerprint))
            handle.flush()
            os.fsync(handle.fileno())


def certify_dataset(classifier: SmoothedClassifier, dataset: ImageSet | Graph, n0: int, n: int, batch_size: int,
                    checkpoint: Checkpoint, checkpoint_seconds: float = 10.0, progress: bool = True,
                    ranks: Ranks | None = None) -> Votes:
    """Count n₀ selection and n estimation votes for every point, resuming from and saving to ``checkpoint``.

    Under torchrun (``ranks``) each process counts its share — images k with k mod K = rank, or a graph's blocks b
    with b mod K = rank — into its own checkpoint, and the returned votes are the sum over all ranks.
    """
    ranks = ranks or Ranks()
    graph = isinstance(dataset, Graph)
    plan = classifier.seed_plan(graph)
    totals = {"selection": n0, "estimation": n}
    share = (ranks.rank, ranks.world_size) if graph else (0, 1)
    # samples in this rank's first k blocks of each stage, k = 0 .. its number of blocks
    before = {stage: np.cumsum([0] + [plan.blocks(totals[stage])[b] for b in plan.share(totals[stage], *share)])
              for stage in STAGE_ORDER}
    units = [0] if graph else [unit for unit in range(dataset.points) if ranks.mine(unit)]

    def samples_before(block: int, stage: str) -> int:
        return int(before[stage][block])

    bar = progress_bar(progress, len(units) * sum(int(before[stage][-1]) for stage in STAGE_ORDER), "certify")
    bar.update(sum(samples_before(int(block), stage) for unit in units for block, stage in zip(checkpoint.cursor[unit], STAGE_ORDER)))
    last_save = time.monotonic()
    consistent = True  # False only between adding a pass's counts and advancing its cursor
    try:
        for unit in units:
            for s, stage in enumerate(STAGE_ORDER):
                if checkpoint.cursor[unit, s] >= len(before[stage]) - 1:
                    continue
                if graph:
                    passes = classifier.block_votes(dataset.features, stage, totals[stage], batch_size, edge_index=dataset.edge_index,
                                                    nodes=dataset.nodes, first_block=int(checkpoint.cursor[unit, s]), share=share)
                else:
                    passes = classifier.block_votes(dataset.images[unit], stage, totals[stage], batch_size, point=unit,
                                                    first_block=int(checkpoint.cursor[unit, s]))
                for stop, counts in passes:
                    consistent = False
                    if graph:
                        checkpoint.counts[stage] += counts.numpy()
                    else:
                        checkpoint.counts[stage][unit] += counts.numpy()
                    start, checkpoint.cursor[unit, s] = checkpoint.cursor[unit, s], stop
                    consistent = True
                    bar.update(samples_before(stop, stage) - samples_before(int(start), stage))
                    if time.monotonic() - last_save >= checkpoint_seconds:
                        checkpoint.save()
                        last_save = time.monotonic()
    finally:
        if consistent:  # also on Ctrl-C or an error: nothing counted is lost
            checkpoint.save()
        bar.close()
    labels = dataset.labels[dataset.nodes] if graph else dataset.labels
    return Votes(ranks.sum(checkpoint.counts["selection"]), ranks.sum(checkpoint.counts["estimation"]), labels)
