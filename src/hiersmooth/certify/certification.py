"""Both certificates for every point of a set of vote counts, and their threat grid, tables and files (SPEC.md §3–§4).

From the votes, class A is the most frequent class among the n₀ selection samples (``pre_votes``); the n
estimation samples (``votes``) bound its probability by one-sided Clopper–Pearson bounds (:mod:`.bounds`):

- binary certificate: p_A = lower bound at α;
- multi-class certificate: p_A = lower bound at α/K, p_B = upper bound at α/K (Bonferroni over the K classes).
  B is, by default, the class with the largest upper bound among all classes other than A (sound: every such
  class is below p_B with the stated confidence). ``runner_up="selection"`` takes B = the runner-up of
  ``pre_votes`` as the paper's reference code does (NumPy ``argsort`` order), only for reproducing its figures.

:func:`certify_votes` is the library call behind ``hiersmooth certify-votes``: with ``out`` it writes the same
files (certified-accuracy table, per-point files, JSON sidecar), with the same checks and lock.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..defaults import DEFAULT_ALPHA, RUNNER_UP_CHOICES
from ..rounding import down
from ..smoothing.hierarchical import Smoothing, from_config
from .bounds import check_alpha, clopper_pearson_lower, clopper_pearson_upper
from .certificates import Certificate
from .outputs import format_table, output_paths, write_outputs
from .tables import certified_accuracy_table, grid_axes
from .votes import Votes, load_votes


@dataclass(frozen=True)
class CertifiedGrid:
    """Certified accuracy and ratio at every threat of a grid (``axes``: rows, then eps or added/deleted)."""

    result: VoteCertificates
    axes: dict[str, list]
    table: list[dict]

    def format(self) -> str:
        """The summary ``hiersmooth certify-votes`` prints: sample counts, accuracy, the table as aligned text."""
        result = self.result
        return "\n".join(
            [
                f"{result.points} points, {result.classes} classes, n0={result.n0}, n={result.n}, alpha={result.alpha}",
                f"accuracy of the selected class: {result.correct.mean():.4f}",
                format_table(result, self.table, self.axes),
            ]
        )

    def write(
        self, out, inputs: dict | None = None, extra: dict | None = None, started: float | None = None
    ) -> dict[str, Path]:
        """Write ``out`` (the table CSV), ``out.points.csv``, ``out.points.npz`` and ``out.json`` atomically; the
        sidecar records ``inputs`` (where the votes came from) and ``extra``. Returns the paths by kind."""
        return write_outputs(
            self.result, self.table, self.axes, out, inputs or {}, started or time.perf_counter(), extra
        )


@dataclass(frozen=True)
class VoteCertificates:
    """Both certificates for every point of a set of vote counts, with the selected class and its correctness.

    ``pre_votes`` and ``votes`` are the (points × classes) counts, ``labels`` the true classes (−1: unknown),
    ``selected`` the class A per point, ``binary`` and ``multiclass`` the two :class:`Certificate` objects."""

    counts: Votes
    smoothing: Smoothing
    alpha: float
    runner_up: str
    selected: np.ndarray
    runner_up_class: np.ndarray
    binary: Certificate
    multiclass: Certificate
    _grids: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # grid() by its axes

    @property
    def pre_votes(self) -> np.ndarray:
        return self.counts.pre_votes

    @property
    def votes(self) -> np.ndarray:
        return self.counts.votes

    @property
    def labels(self) -> np.ndarray:
        return self.counts.labels

    @property
    def points(self) -> int:
        return self.counts.points

    @property
    def classes(self) -> int:
        return self.counts.classes

    @property
    def n0(self) -> int:
        return self.counts.n0

    @property
    def n(self) -> int:
        return self.counts.n

    @property
    def correct(self) -> np.ndarray:
        """Whether the selected class A equals the label (the reference code's "smoothed accuracy")."""
        return self.selected == self.labels

    @property
    def certificates(self) -> tuple[Certificate, Certificate]:
        return self.binary, self.multiclass

    def grid(self, rows=None, **budget) -> CertifiedGrid:
        """Certified accuracy over a threat grid: ``rows`` and the noise's budget axes (``eps=``; ``added=``,
        ``deleted=``; ``l1=``) as given (lists, or text like ``1-4``, ``0:1:0.05``), the others by default every
        threat at which some point is certified (:func:`.tables.grid_axes`)."""
        axes = grid_axes(self, rows=rows, **budget)
        key = repr(sorted(axes.items()))
        if key not in self._grids:
            table = certified_accuracy_table(self, axes)
            self._grids[key] = CertifiedGrid(self, axes, table)
        return self._grids[key]


def _votes_of(votes) -> tuple[Votes, dict]:
    """``votes`` as :class:`Votes` (given as such, as a path to a votes ``.npz``, or as a mapping of the three
    arrays), and the sidecar's record of where they came from."""
    from ..results import sha256

    if isinstance(votes, (str, Path)):
        return load_votes(votes), {"votes": str(Path(votes).resolve()), "votes_sha256": sha256(votes)}
    if isinstance(votes, Mapping):
        missing = [key for key in ("pre_votes", "votes", "labels") if key not in votes]
        if missing:
            raise ValueError(f"votes: missing {', '.join(missing)}; give pre_votes, votes and labels")
        votes = Votes(votes["pre_votes"], votes["votes"], votes["labels"])
    if not isinstance(votes, Votes):
        raise ValueError(
            f"votes: must be a Votes object, a path to a votes .npz or a mapping of pre_votes, votes and "
            f"labels, got {type(votes).__name__}"
        )
    digest = hashlib.sha256(
        b"".join(np.ascontiguousarray(a).tobytes() for a in (votes.pre_votes, votes.votes, votes.labels))
    )
    return votes, {"votes": "in memory", "votes_sha256": digest.hexdigest()}


def certify_votes(
    votes,
    smoothing,
    alpha: float = DEFAULT_ALPHA,
    runner_up: str = "sound",
    *,
    out=None,
    force: bool = False,
    rows=None,
    **budget,
) -> VoteCertificates:
    """Bound p_A (and p_B) from ``votes`` and set up the binary and multi-class certificates (SPEC.md §3–§4).

    ``votes``: :class:`Votes`, a votes ``.npz`` path or a mapping of ``pre_votes``, ``votes``, ``labels``;
    ``smoothing``: a :class:`Smoothing`, a config mapping or a YAML path. With ``out`` (the table CSV) the
    threat grid (``rows`` and the budget axes such as ``eps``; see :meth:`VoteCertificates.grid`) is written as
    ``hiersmooth certify-votes`` writes it: never over an input, over a file hiersmooth did not write (unless
    ``force``), or beside another run into the same output (a lock)."""
    from ..results import check_output, output_lock

    started = time.perf_counter()
    inputs = [path for path in (votes, smoothing) if isinstance(path, (str, Path))]
    if out is not None:
        out = Path(out)
        lock = out.parent / f".{out.name}.lock"
        check_output(out.parent, inputs, force, files=[p.name for p in output_paths(out).values()], owner=lock)
    smoothing_record = str(Path(smoothing).resolve()) if isinstance(smoothing, (str, Path)) else "in memory"
    smoothing = from_config(smoothing)
    votes, record = _votes_of(votes)
    result = _certificates(votes, smoothing, alpha, runner_up)
    if out is not None:
        with output_lock(lock):
            result.grid(rows, **budget).write(out, {**record, "smoothing": smoothing_record}, started=started)
    return result


def check_certify_options(alpha, runner_up) -> float:
    """α as a float in (0, 1) and ``runner_up`` one of ``RUNNER_UP_CHOICES``, or a one-line ValueError naming the
    option: checked before any sample is drawn by the callers that count votes."""
    if runner_up not in RUNNER_UP_CHOICES:
        raise ValueError(f"runner_up={runner_up!r}: must be one of {', '.join(RUNNER_UP_CHOICES)}")
    return check_alpha(alpha)


def _certificates(votes: Votes, smoothing: Smoothing, alpha: float, runner_up: str) -> VoteCertificates:
    """Clopper–Pearson bounds on p_A (binary: at α; multi-class: at α/K, with p_B) for every point."""
    alpha = check_certify_options(alpha, runner_up)
    points, classes = votes.votes.shape
    index = np.arange(points)
    selected = votes.pre_votes.argmax(axis=1)
    second = runner_up_classes(votes.votes, selected, runner_up, votes.pre_votes)
    n = votes.n
    per_class = float(down(alpha / classes))  # Bonferroni's α/K, rounded toward the wider intervals
    binary = Certificate("binary", smoothing, clopper_pearson_lower(votes.votes[index, selected], n, alpha))
    multiclass = Certificate(
        "multiclass",
        smoothing,
        clopper_pearson_lower(votes.votes[index, selected], n, per_class),
        clopper_pearson_upper(votes.votes[index, second], n, per_class),
    )
    return VoteCertificates(votes, smoothing, alpha, runner_up, selected, second, binary, multiclass)


def runner_up_classes(counts: np.ndarray, selected: np.ndarray, runner_up: str, pre_votes: np.ndarray) -> np.ndarray:
    """Class B per point: ``"sound"`` — the top count of ``counts`` among classes ≠ A (the upper bound grows with
    the count, so its bound is the largest upper bound over classes ≠ A); ``"selection"`` — the runner-up of the
    selection votes ``pre_votes`` (NumPy ``argsort`` order, the reference code's choice)."""
    if runner_up == "sound":
        others = np.where(np.arange(counts.shape[1])[None, :] == selected[:, None], -1, counts)
        return others.argmax(axis=1)
    order = np.argsort(pre_votes, axis=1)
    return np.where(order[:, -2] == selected, order[:, -1], order[:, -2])
