"""Certify a whole dataset — the library call behind ``hiersmooth certify`` — with checkpoints: a run killed
part-way resumes where it stopped, with the same votes.

:func:`certify_dataset` takes a :class:`~hiersmooth.classifier.SmoothedClassifier` and the data a user has (an
image tensor, a ``Dataset``, a PyG ``Data`` graph, arrays); :func:`hiersmooth.trained.certify_checkpoint` does
the same for a folder written by ``hiersmooth train``. With ``out`` both write ``votes.npz``, the
certified-accuracy table, per-point files and sidecar (``hiersmooth certify``'s files) and checkpoint
``progress.npz`` as they go.

The unit of progress is a block of samples (``hiersmooth.seeds``): the checkpoint holds the votes counted so far
and, per work unit (an image; the one graph), the next block of each stage. Blocks have their own random
streams, so resuming — even with another batch size — gives exactly the votes of an uninterrupted run.
The checkpoint also records a fingerprint of everything that fixes the votes; a mismatching one is refused.
Under torchrun every rank keeps its own checkpoint of its share of the work (``checkpoint_path``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .certify.certification import VoteCertificates, certify_votes, check_certify_options
from .certify.sequential import SequentialCertificates, SequentialTest
from .certify.tables import given_axes
from .certify.votes import Votes, save_votes
from .checks import check_integer
from .defaults import DEFAULT_ALPHA, DEFAULT_PROCEDURE
from .distributed import Ranks
from .inputs import Graph, ImageSet
from .progress import progress_bar
from .results import atomic_file
from .sequential_run import count_sequential, sequential_state

if TYPE_CHECKING:
    from .classifier import SmoothedClassifier

STAGE_ORDER = ("selection", "estimation")


def checkpoint_path(out: Path, ranks: Ranks) -> Path:
    """``progress.npz``, or ``progress.rank{r}of{K}.npz`` for rank r of K processes."""
    return Path(out) / (
        "progress.npz" if not ranks.distributed else f"progress.rank{ranks.rank}of{ranks.world_size}.npz"
    )


class Checkpoint:
    """The progress file: ``pre_votes``, ``votes`` (points × K), ``cursor`` (units × 2), the fingerprint, and the
    arrays of ``state`` (a sequential run's decisions so far; saved as ``state_<name>``)."""

    def __init__(
        self,
        path: Path | None,
        fingerprint: dict,
        points: int,
        units: int,
        classes: int,
        state: dict[str, np.ndarray] | None = None,
    ):
        self.path = None if path is None else Path(path)
        self.fingerprint = json.dumps(fingerprint, sort_keys=True)
        self.counts = {stage: np.zeros((points, classes), dtype=np.int64) for stage in STAGE_ORDER}
        self.cursor = np.zeros((units, len(STAGE_ORDER)), dtype=np.int64)
        self.state = dict(state or {})
        if self.path is not None and self.path.exists():
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
        for name, initial in self.state.items():
            value = stored.get(f"state_{name}")
            if value is None or value.shape != initial.shape:
                raise ValueError(f"checkpoint {self.path}: its state {name!r} is missing or mis-shaped; delete it")
            self.state[name] = value

    def save(self) -> None:
        """Write atomically: a kill during the write leaves the previous checkpoint intact (the temporary name is
        unique per process, so two runs never write into each other's partial file). Without a path: nothing."""
        if self.path is None:
            return
        with atomic_file(self.path, "wb") as handle:
            np.savez(
                handle,
                pre_votes=self.counts["selection"],
                votes=self.counts["estimation"],
                cursor=self.cursor,
                fingerprint=np.array(self.fingerprint),
                **{f"state_{name}": value for name, value in self.state.items()},
            )
            handle.flush()
            os.fsync(handle.fileno())


def count_dataset_votes(
    classifier: SmoothedClassifier,
    dataset: ImageSet | Graph,
    n0: int,
    n: int,
    batch_size: int,
    checkpoint: Checkpoint,
    checkpoint_seconds: float = 10.0,
    progress: bool = True,
    ranks: Ranks | None = None,
    stages: tuple[str, ...] = STAGE_ORDER,
) -> Votes | None:
    """Count n₀ selection and n estimation votes for every point, resuming from and saving to ``checkpoint``;
    with ``stages=("selection",)`` only the selection votes (a sequential run counts its estimation votes itself)
    and return None.

    Under torchrun (``ranks``) each process counts its share — images k with k mod K = rank, or a graph's blocks b
    with b mod K = rank — into its own checkpoint, and the returned votes are the sum over all ranks.
    """
    ranks = ranks or Ranks()
    graph = isinstance(dataset, Graph)
    plan = classifier.seed_plan(graph)
    totals = {"selection": n0, "estimation": n}
    share = (ranks.rank, ranks.world_size) if graph else (0, 1)
    # samples in this rank's first k blocks of each stage, k = 0 .. its number of blocks
    before = {
        stage: np.cumsum([0] + [plan.blocks(totals[stage])[b] for b in plan.share(totals[stage], *share)])
        for stage in stages
    }
    units = [0] if graph else [unit for unit in range(dataset.points) if ranks.mine(unit)]

    def samples_before(block: int, stage: str) -> int:
        return int(before[stage][block])

    bar = progress_bar(progress, len(units) * sum(int(before[stage][-1]) for stage in stages), "certify")
    bar.update(
        sum(
            samples_before(int(block), stage)
            for unit in units
            for block, stage in zip(checkpoint.cursor[unit], STAGE_ORDER)
            if stage in stages
        )
    )
    last_save = time.monotonic()
    consistent = True  # False only between adding a pass's counts and advancing its cursor
    try:
        for unit in units:
            for s, stage in enumerate(STAGE_ORDER):
                if stage not in stages or checkpoint.cursor[unit, s] >= len(before[stage]) - 1:
                    continue
                if graph:
                    passes = classifier.block_votes(
                        dataset.features,
                        stage,
                        totals[stage],
                        batch_size,
                        edge_index=dataset.edge_index,
                        nodes=dataset.nodes,
                        first_block=int(checkpoint.cursor[unit, s]),
                        share=share,
                    )
                else:
                    passes = classifier.block_votes(
                        dataset.images[unit],
                        stage,
                        totals[stage],
                        batch_size,
                        point=unit,
                        first_block=int(checkpoint.cursor[unit, s]),
                    )
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
    if "estimation" not in stages:
        return None
    labels = dataset.labels[dataset.nodes] if graph else dataset.labels
    return Votes(ranks.sum(checkpoint.counts["selection"]), ranks.sum(checkpoint.counts["estimation"]), labels)


CERTIFY_FILES = (
    "votes.npz",
    "certified_accuracy.csv",
    "certified_accuracy.points.csv",
    "certified_accuracy.points.npz",
    "certified_accuracy.json",
)


def content_sha256(*tensors) -> str:
    """SHA-256 over the bytes, dtypes and shapes of ``tensors`` (dense or sparse CSR torch tensors, NumPy arrays):
    the identity of data or weights in a checkpoint's fingerprint, whatever file (if any) they came from."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.layout == torch.sparse_csr:
            parts = [tensor.crow_indices(), tensor.col_indices(), tensor.values()]
            digest.update(repr(tuple(tensor.shape)).encode())
        else:
            parts = [tensor]
        for part in parts:
            part = (
                part.detach().cpu().contiguous().reshape(-1)
                if isinstance(part, torch.Tensor)
                else torch.as_tensor(np.ascontiguousarray(part)).reshape(-1)
            )
            digest.update(f"{part.dtype}{tuple(part.shape)}".encode())
            digest.update(part.view(torch.uint8).numpy().tobytes() if part.numel() else b"")
    return digest.hexdigest()


def certify_dataset(
    classifier: SmoothedClassifier,
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
    runner_up: str = "sound",
    rows=None,
    force: bool = False,
    checkpoint_seconds: float = 10.0,
    progress: bool = True,
    inputs: dict | None = None,
    protect=(),
    targets=None,
    procedure=DEFAULT_PROCEDURE,
    **budget,
) -> VoteCertificates | SequentialCertificates:
    """Count n₀ selection and n estimation votes for every point of ``data`` and certify them (SPEC.md §3–§4).

    ``data``: anything :func:`hiersmooth.inputs.as_dataset` takes — images (P, C, H, W), a ``Dataset`` of
    (image, label) pairs, a PyG ``Data`` graph (its ``test_mask`` or ``nodes`` are the points), features with
    ``edge_index``; ``labels`` and ``nodes`` complete raw arrays. Each image is point k of the seed plan; a
    graph's target nodes are classified together, one forward pass per sample.

    With ``out`` (a folder) it does what ``hiersmooth certify`` does: refuses an output that is one of the files in
    ``protect`` or a foreign file (unless ``force``), holds a lock on the folder, checkpoints the counts to
    ``progress.npz`` at least every ``checkpoint_seconds`` (a killed run resumes to identical votes; a checkpoint of
    other data, weights, smoothing or counts is refused), and writes ``votes.npz`` and the certified-accuracy files
    for the threat grid ``rows`` and the noise's ``budget`` axes (``eps=``, ``added=``/``deleted=``, ``l1=``;
    default: wherever something is certified);
    ``inputs`` is recorded in the sidecar (default: content hashes). Under torchrun each rank counts its share.
    Returns the certificates (``.pre_votes``, ``.votes``, ``.selected``, ``.binary``, ``.multiclass``, ...).

    With ``targets`` (threats, or their text such as ``"r=1,eps=0.5"``) the run is sequential (SPEC.md §7): each
    point draws estimation samples only until its targets are decided, at most n, by ``procedure``
    (``"scheduled-clopper-pearson"``, the default, or ``"beta-binomial"``; :mod:`hiersmooth.certify.sequential`),
    and the result is a :class:`~hiersmooth.certify.sequential.SequentialCertificates` (the table at the targets,
    ``.samples`` per point); the files are the same, with a ``samples`` column and the decision per target.
    """
    from .distributed import init_ranks
    from .inputs import as_dataset
    from .results import LOCK, check_output, output_lock

    started = time.perf_counter()
    # every option checked before the first sample: a typo must not cost a count
    for name, value in (("n0", n0), ("n", n), ("batch_size", batch_size)):
        check_integer(name, value, 1)
    check_certify_options(alpha, runner_up)
    grid = given_axes(classifier.smoothing.noise, rows=rows, **budget)
    if out is None and targets is None and grid:
        raise ValueError(
            f"{', '.join(name for name in grid)}: the threat grid of the files written to out; without out, call "
            ".grid(...) on the result"
        )
    dataset = as_dataset(data, labels=labels, edge_index=edge_index, nodes=nodes)
    token = getattr(classifier.model, "ablation_token", None) is not None
    if isinstance(dataset, Graph) and (token or classifier.smoothing.noise.dense_input):
        # a learned ablation token is written into dense rows; dense noise makes dense samples anyway
        dataset = Graph(dataset.features.to_dense(), dataset.edge_index, dataset.labels, dataset.nodes)
    ranks = init_ranks(classifier.device.type)
    graph = isinstance(dataset, Graph)
    test = None
    if targets is not None:
        given = [name for name, value in {"rows": rows, **budget}.items() if value is not None]
        if given:
            raise ValueError(
                f"{', '.join('--' + name for name in given)}: a sequential run (--target) certifies at its targets, "
                "not on a threat grid; give the threats as targets"
            )
        test = classifier.sequential_test(targets, procedure, alpha, n, runner_up, graph)
    count = functools.partial(
        _count_and_certify, classifier, dataset, n0, n, alpha, batch_size, runner_up, test=test, ranks=ranks
    )
    if out is None:  # nothing to resume: the counts are kept in memory only
        return count(_checkpoint(classifier, dataset, n0, n, None, ranks, {}, test), checkpoint_seconds, progress)
    out = Path(out)
    check_output(out, protect, force, files=[*CERTIFY_FILES, checkpoint_path(out, ranks).name])
    with output_lock(out / LOCK) if ranks.writer else contextlib.nullcontext():  # rank 0 holds the folder
        _check_class_count(classifier, dataset)
        out.mkdir(parents=True, exist_ok=True)
        contents = {"data_sha256": _data_sha256(dataset), "weights_sha256": _weights_sha256(classifier.model)}
        checkpoint = _checkpoint(classifier, dataset, n0, n, checkpoint_path(out, ranks), ranks, contents, test)
        counting = time.perf_counter()
        result = count(checkpoint, checkpoint_seconds, progress and ranks.writer)
        counted = time.perf_counter() - counting
        written = result if test is not None else result.grid(rows, **budget)
        if ranks.writer:  # rank 0 writes the outputs of the whole run
            if test is None:
                save_votes(out / "votes.npz", result.counts)
            else:
                result.save_votes(out / "votes.npz")
            extra = {
                "seed_plan": classifier.seed_plan(graph).to_record(),
                "device": str(classifier.device),
                "batch_size": batch_size,
                "autocast": classifier.autocast,
                "counting_seconds_this_run": round(counted, 3),
                "world_size": ranks.world_size,
                "communication_seconds_rank0": round(ranks.communication_seconds, 3),
                **({"nodes": dataset.nodes.tolist()} if graph else {}),
            }
            in_memory = {"data": "in memory", "model": type(classifier.model).__qualname__, "smoothing": "in memory"}
            written.write(out / "certified_accuracy.csv", inputs or {**in_memory, **contents}, extra, started)
    return result


def _count_and_certify(
    classifier: SmoothedClassifier,
    dataset: ImageSet | Graph,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int,
    runner_up: str,
    checkpoint: Checkpoint,
    checkpoint_seconds: float,
    progress: bool,
    *,
    test: SequentialTest | None,
    ranks: Ranks,
) -> VoteCertificates | SequentialCertificates:
    """Fixed n: count both stages and certify (:func:`certify_votes`). Sequential (``test``): count the selection
    votes, then the estimation votes until each point's targets are decided (:func:`count_sequential`)."""
    if test is None:
        votes = count_dataset_votes(
            classifier, dataset, n0, n, batch_size, checkpoint, checkpoint_seconds, progress, ranks
        )
        return certify_votes(votes, classifier.smoothing, alpha, runner_up)
    count_dataset_votes(
        classifier, dataset, n0, n, batch_size, checkpoint, checkpoint_seconds, progress, ranks, stages=("selection",)
    )
    return count_sequential(classifier, dataset, test, batch_size, checkpoint, checkpoint_seconds, progress, ranks)


def _data_sha256(dataset: ImageSet | Graph) -> str:
    if isinstance(dataset, Graph):
        return content_sha256(dataset.features, dataset.edge_index, dataset.labels, dataset.nodes)
    return content_sha256(dataset.images, dataset.labels)


def _weights_sha256(model: torch.nn.Module) -> str:
    state = model.state_dict()
    return (
        content_sha256(*(state[name] for name in sorted(state)))
        + hashlib.sha256(repr(sorted(state)).encode()).hexdigest()[:16]
    )


def _checkpoint(
    classifier: SmoothedClassifier,
    dataset: ImageSet | Graph,
    n0: int,
    n: int,
    path: Path | None,
    ranks: Ranks,
    contents: dict,
    test: SequentialTest | None = None,
) -> Checkpoint:
    """The progress of a run, identified by the contents its votes depend on (``contents``: the data's and the
    weights' hashes; the smoothing, counts, seeds): another spelling of the same input paths, or a copied folder,
    resumes; anything else is refused."""
    graph = isinstance(dataset, Graph)
    fingerprint = {
        **contents,
        "config": classifier.smoothing.to_config(),
        "n0": n0,
        "n": n,
        "num_classes": classifier.num_classes,
        "seed_plan": classifier.seed_plan(graph).to_record(),
        "points": dataset.points,
        "rank": ranks.rank,
        "world_size": ranks.world_size,
        **({} if test is None else {"sequential": test.to_record()}),
    }
    state = None if test is None else sequential_state(dataset.points, test, classifier.num_classes)
    return Checkpoint(path, fingerprint, dataset.points, 1 if graph else dataset.points, classifier.num_classes, state)


def _check_class_count(classifier: SmoothedClassifier, dataset: ImageSet | Graph) -> None:
    """One forward pass on one sample of the first point: the model's output must be as wide as the class count, and
    the labels must be classes."""
    graph = isinstance(dataset, Graph)
    width = (
        classifier.output_width(dataset.features, edge_index=dataset.edge_index)
        if graph
        else classifier.output_width(dataset.images[0])
    )
    if width != classifier.num_classes:
        raise ValueError(
            f"class count: --num-classes {classifier.num_classes} (the classifier's num_classes, or a checkpoint's), "
            f"model output {width}; they must agree"
        )
    labels = dataset.labels[dataset.nodes] if graph else dataset.labels
    if labels.size and int(labels.max()) >= classifier.num_classes:
        raise ValueError(
            f"labels: hold class {int(labels.max())}, but the classifier has {classifier.num_classes} "
            f"classes (0..{classifier.num_classes - 1})"
        )
