"""Certify a whole dataset with checkpoints: a run killed part-way resumes where it stopped, with the same votes.

The unit of progress is a block of samples (``hiersmooth.seeds``): the checkpoint holds the votes counted so far
and, per work unit (an image; the one graph), the next block of each stage. Blocks have their own random
streams, so resuming — even with another batch size — gives exactly the votes of an uninterrupted run.
The checkpoint also records a fingerprint of everything that fixes the votes; a mismatching one is refused.
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

STAGE_ORDER = ("selection", "estimation")


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
        """Write atomically: a kill during the write leaves the previous checkpoint intact."""
        partial = self.path.with_name(self.path.name + ".partial")
        with open(partial, "wb") as handle:
            np.savez(handle, pre_votes=self.counts["selection"], votes=self.counts["estimation"], cursor=self.cursor,
                     fingerprint=np.array(self.fingerprint))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)


def certify_dataset(classifier: SmoothedClassifier, dataset: ImageSet | Graph, n0: int, n: int, batch_size: int,
                    checkpoint: Checkpoint, checkpoint_seconds: float = 10.0, progress: bool = True) -> Votes:
    """Count n₀ selection and n estimation votes for every point, resuming from and saving to ``checkpoint``."""
    graph = isinstance(dataset, Graph)
    plan = classifier.seed_plan(graph)
    totals = {"selection": n0, "estimation": n}
    block_counts = [len(plan.blocks(totals[stage])) for stage in STAGE_ORDER]
    units = 1 if graph else dataset.points

    def samples_before(block: int, stage: str) -> int:
        return min(block * plan.block_size, totals[stage])

    bar = progress_bar(progress, units * (n0 + n), "certify")
    bar.update(sum(samples_before(int(block), stage) for cursor in checkpoint.cursor for block, stage in zip(cursor, STAGE_ORDER)))
    last_save = time.monotonic()
    consistent = True  # False only between adding a pass's counts and advancing its cursor
    try:
        for unit in range(units):
            for s, stage in enumerate(STAGE_ORDER):
                if checkpoint.cursor[unit, s] >= block_counts[s]:
                    continue
                if graph:
                    passes = classifier.block_votes(dataset.features, stage, totals[stage], batch_size, edge_index=dataset.edge_index,
                                                    nodes=dataset.nodes, first_block=int(checkpoint.cursor[unit, s]))
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
    return Votes(checkpoint.counts["selection"], checkpoint.counts["estimation"], labels)
