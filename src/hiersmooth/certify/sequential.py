"""Sequential certification at target threats: the decision at each look, and the result (SPEC.md §7).

Fixed-n certification answers every threat from n samples per point. When the question is "certified at these
target threats?", a point can stop as soon as its answer is known. :class:`SequentialTest` holds what fixes the
answers — the smoothing, the targets, the procedure (:mod:`.confidence_sequences`), α and n_max — and decides
at each look, from the estimation counts so far and the class A picked by the n₀ separate selection samples:

- binary certificate: target T certified once p̲(ℓ, T) > 1/2, ℓ the procedure's lower bound on p_A at α
  (valid over all looks at once);
- multi-class certificate: certified once p̲(ℓ_A, T) > p̄(u_B, T) with ℓ_A for A and u_B for every other class
  B, each at α/K (the largest of those is the top other count's: the bounds grow with the count).

A target is given up once even the most favourable outcome of the remaining samples could not certify it at
n_max: the n_max − n samples still to come voting A at the rate u_A (the upper bound on p_A) and B at the rate
ℓ_B, bounded as at the last look (giving up needs no error control: not certifying is always sound). So a target
out of reach of n_max samples — even if every sample voted A — is given up at the first look.

p̲ and p̄ are the engine's sound bounds (:class:`.certificates.Certificate`), so a target decided certified is
certified in exact arithmetic for the bounds given. A point stops when every target of both certificates is
decided or it has used n_max samples; a target still open then is not certified.

:class:`SequentialCertificates` is the result: counts, estimation samples per point, the decision per point,
certificate and target, the certified-accuracy table at the targets and its files.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..defaults import CERTIFICATES, DEFAULT_ALPHA, DEFAULT_PROCEDURE, RUNNER_UP_CHOICES, SEQUENTIAL_PROCEDURES
from ..rounding import down
from ..smoothing.hierarchical import Smoothing
from ..threat import TEXT_NAMES, Threat
from .bounds import check_alpha
from .certificates import Certificate
from .certification import runner_up_classes
from .confidence_sequences import BetaBinomialSequence, Procedure, ScheduledClopperPearson

OPEN, CERTIFIED, GIVEN_UP = 0, 1, 2
"""The state of a (point, certificate, target): undecided so far, certified, given up."""
DECISION_NAMES = {OPEN: "undecided", CERTIFIED: "certified", GIVEN_UP: "given up"}
PROCEDURES = dict(zip(SEQUENTIAL_PROCEDURES, (ScheduledClopperPearson, BetaBinomialSequence)))
MAX_TARGETS = 1000


def as_procedure(procedure) -> Procedure:
    """A :class:`Procedure` from itself, its name, or a mapping ``{"procedure": name, **parameters}``."""
    if isinstance(procedure, Procedure):
        return procedure
    given = procedure
    if isinstance(procedure, str):
        procedure = {"procedure": procedure}
    if not isinstance(procedure, dict) or procedure.get("procedure") not in PROCEDURES:
        raise ValueError(f"procedure={given!r}: must be one of {', '.join(PROCEDURES)} (or a Procedure)")
    parameters = {key: value for key, value in procedure.items() if key != "procedure"}
    try:
        return PROCEDURES[procedure["procedure"]](**parameters)
    except TypeError:
        raise ValueError(f"procedure={procedure!r}: unknown parameter(s) {', '.join(parameters)}") from None


def as_targets(targets, smoothing: Smoothing) -> tuple[Threat, ...]:
    """The target threats, each a :class:`Threat`, its text (``r=1,eps=0.5``) or a mapping (``{"r": 1, "eps": 0.5}``),
    checked against the noise."""
    if isinstance(targets, (str, Threat)):
        targets = [targets]
    try:
        targets = list(targets)
    except TypeError:
        raise ValueError(f"targets={targets!r}: must be a list of threats such as r=1,eps=0.5") from None
    if not targets:
        raise ValueError("targets: give at least one target threat (e.g. r=1,eps=0.5)")
    if len(targets) > MAX_TARGETS:
        raise ValueError(f"targets: {len(targets)} given, at most {MAX_TARGETS}")
    parsed = []
    for target in targets:
        if isinstance(target, str):
            threat = Threat.parse(target)
        elif isinstance(target, Mapping):
            try:
                threat = Threat(**target)
            except TypeError:
                raise ValueError(
                    f"target {dict(target)!r}: give r and eps (or ra, rd; l1), e.g. {{'r': 1, 'eps': 0.5}}"
                ) from None
        else:
            threat = target
        smoothing.noise.check_threat(threat)
        if threat not in parsed:
            parsed.append(threat)
    return tuple(parsed)


@dataclass(frozen=True)
class SequentialTest:
    """Everything that fixes a sequential run's decisions (recorded in its sidecar and checkpoint)."""

    smoothing: Smoothing
    targets: tuple[Threat, ...]
    procedure: Procedure
    alpha: float
    n_max: int
    block_size: int
    classes: int
    runner_up: str = "sound"
    looks: tuple[int, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        if self.runner_up not in RUNNER_UP_CHOICES:
            raise ValueError(f"runner_up={self.runner_up!r}: must be one of {', '.join(RUNNER_UP_CHOICES)}")
        object.__setattr__(self, "looks", tuple(self.procedure.looks(self.n_max, self.block_size)))

    @classmethod
    def of(
        cls,
        smoothing,
        targets,
        procedure=DEFAULT_PROCEDURE,
        alpha=DEFAULT_ALPHA,
        *,
        n_max,
        block_size,
        classes,
        runner_up="sound",
    ) -> SequentialTest:
        """The test of ``targets`` (threats or their text) with ``procedure`` (a name or a :class:`Procedure`)."""
        return cls(
            smoothing,
            as_targets(targets, smoothing),
            as_procedure(procedure),
            alpha,
            n_max,
            block_size,
            classes,
            runner_up,
        )

    def bounds(self, counts: np.ndarray, n: int, selected: np.ndarray, pre_votes: np.ndarray | None = None) -> dict:
        """Per certificate, the bounds that certify at this look of n samples — (ℓ_A, u_B) — and the most
        favourable bounds that n_max samples could still give — from the counts so far plus the remaining
        n_max − n samples voting A at the rate u_A and B at the rate ℓ_B. A target those cannot certify is given up
        (giving up needs no error control; at n_max both are the same). ``pre_votes`` serves
        ``runner_up="selection"``."""
        index, classes = np.arange(counts.shape[0]), counts.shape[1]
        k_a = counts[index, selected]
        k_b = counts[index, runner_up_classes(counts, selected, self.runner_up, pre_votes)]
        looks, procedure, n_max = self.looks, self.procedure, self.n_max
        remaining = n_max - n

        def best_a(alpha):  # A's count at n_max if the rest voted A at the rate of its upper bound
            return np.minimum(k_a + np.ceil(remaining * procedure.upper(k_a, n, alpha, looks)), n_max).astype(np.int64)

        binary, per_class = self.alpha, float(down(self.alpha / classes))
        most_a = best_a(per_class)
        least_b = k_b + np.floor(remaining * procedure.lower(k_b, n, per_class, looks))  # ... and B at its lower bound
        return {
            "binary": (
                (procedure.lower(k_a, n, binary, looks), None),
                (procedure.lower(best_a(binary), n_max, binary, looks), None),
            ),
            "multiclass": (
                (procedure.lower(k_a, n, per_class, looks), procedure.upper(k_b, n, per_class, looks)),
                (
                    procedure.lower(most_a, n_max, per_class, looks),
                    procedure.upper(np.minimum(least_b, n_max - most_a).astype(np.int64), n_max, per_class, looks),
                ),
            ),
        }

    def decide(self, counts, n: int, selected, states, pre_votes=None) -> np.ndarray:
        """The states (points, certificates, targets) after a look at ``counts`` (points × K, n samples each):
        open entries become certified or given up where their bounds say so (SPEC.md §7); decided ones stay."""
        counts, selected = np.asarray(counts), np.asarray(selected)
        states = np.array(states, dtype=np.int8, copy=True)
        for c, (name, (certify, hope)) in enumerate(self.bounds(counts, n, selected, pre_votes).items()):
            certified = _certified(Certificate(name, self.smoothing, *certify), self.targets)
            possible = _certified(Certificate(name, self.smoothing, *hope), self.targets)
            open_ = states[:, c] == OPEN
            states[:, c] = np.where(open_ & certified, CERTIFIED, np.where(open_ & ~possible, GIVEN_UP, states[:, c]))
        return states

    def to_record(self) -> dict:
        return {
            **self.procedure.to_record(),
            "targets": [threat.text for threat in self.targets],
            "alpha": self.alpha,
            "n_max": self.n_max,
            "block_size": self.block_size,
            "looks": len(self.looks),
            "runner_up": self.runner_up,
        }


def _certified(certificate: Certificate, targets) -> np.ndarray:
    """(points, targets): the certificate's exact yes/no at each target (:meth:`Certificate.certified`)."""
    return np.stack([certificate.certified(threat) for threat in targets], axis=1)


@dataclass(frozen=True)
class SequentialCertificates:
    """The result of a sequential run: ``pre_votes`` and ``votes`` (points × K; row i of ``votes`` sums to
    ``samples[i]``), ``labels``, ``selected`` (class A), ``states`` (points, certificates, targets) and the
    test. ``certified[name]`` is the (points, targets) bool of a certificate."""

    pre_votes: np.ndarray
    votes: np.ndarray
    labels: np.ndarray
    samples: np.ndarray
    states: np.ndarray
    test: SequentialTest

    @property
    def selected(self) -> np.ndarray:
        return self.pre_votes.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.selected == self.labels

    @property
    def targets(self) -> tuple[Threat, ...]:
        return self.test.targets

    @property
    def points(self) -> int:
        return self.votes.shape[0]

    @property
    def certified(self) -> dict[str, np.ndarray]:
        return {name: self.states[:, c] == CERTIFIED for c, name in enumerate(CERTIFICATES)}

    @property
    def certified_accuracy(self) -> dict[str, np.ndarray]:
        """Per certificate, the share of points certified at each target whose class A is the label (targets,)."""
        return {name: (certified & self.correct[:, None]).mean(axis=0) for name, certified in self.certified.items()}

    @property
    def n0(self) -> int:
        return int(self.pre_votes[0].sum())

    def table(self) -> list[dict]:
        """One row per (certificate, target): r and the noise's threat columns, certified accuracy and ratio."""
        noise, rows = self.test.smoothing.noise, []
        columns = [TEXT_NAMES[axis] for axis in noise.axes]
        accuracies = self.certified_accuracy
        for name, certified in self.certified.items():
            accuracy, ratio = accuracies[name], certified.mean(axis=0)
            for t, threat in enumerate(self.targets):
                rows.append(
                    {
                        "certificate": name,
                        "r": threat.rows,
                        **dict(zip(columns, noise.grid_values(threat))),
                        "certified_accuracy": float(accuracy[t]),
                        "certified_ratio": float(ratio[t]),
                    }
                )
        return rows

    def samples_record(self) -> dict:
        return {
            "mean": float(self.samples.mean()),
            "total": int(self.samples.sum()),
            "max": int(self.samples.max()),
            "fixed_n_total": int(self.test.n_max) * self.points,
        }

    def summary(self) -> dict:
        """Accuracy of the selected class; per certificate the clean certified accuracy where a target changes
        nothing (r = 0 or an empty budget: certified iff not abstaining), as a fixed-n run's summary has it."""
        record = {"accuracy_of_selected_class": float(self.correct.mean())}
        clean = [t for t, threat in enumerate(self.targets) if threat.effective.rows == 0]
        if clean:
            for name, accuracy in self.certified_accuracy.items():
                record[name] = {"clean_certified_accuracy": float(accuracy[clean[0]])}
        return record

    def format(self) -> str:
        """Certified accuracy per target and certificate, and the samples spent, as text."""
        record = self.samples_record()
        lines = [
            f"{self.points} points, {self.votes.shape[1]} classes, n0={self.n0}, sequential up to n={self.test.n_max} "
            f"({self.test.procedure.name}), alpha={self.test.alpha}",
            f"estimation samples: mean {record['mean']:.1f} per point, {record['total']} in all "
            f"({record['total'] / max(record['fixed_n_total'], 1):.1%} of fixed n)",
            f"accuracy of the selected class: {self.correct.mean():.4f}",
            f"{'certified accuracy at':<24}" + "".join(f"{t.text:>18}" for t in self.targets),
        ]
        for name, accuracy in self.certified_accuracy.items():
            lines.append(f"  {name:<22}" + "".join(f"{a:>18.3f}" for a in accuracy))
        return "\n".join(lines)

    def per_point(self) -> tuple[list[dict], dict[str, np.ndarray]]:
        """Per-point rows (label, selected, samples, the decision per certificate and target) and arrays."""
        slugs = [t.text.replace("=", "").replace(",", "_") for t in self.targets]
        rows = []
        for i in range(self.points):
            row = {
                "point": i,
                "labels": int(self.labels[i]),
                "selected": int(self.selected[i]),
                "correct": bool(self.correct[i]),
                "samples": int(self.samples[i]),
            }
            for c, name in enumerate(CERTIFICATES):
                row.update({f"{name}_{slug}": DECISION_NAMES[int(s)] for slug, s in zip(slugs, self.states[i, c])})
            rows.append(row)
        arrays = {
            "labels": self.labels,
            "selected": self.selected,
            "correct": self.correct,
            "samples": self.samples,
            "states": self.states,
            "targets": np.array([t.text for t in self.targets]),
        }
        return rows, arrays

    def write(self, out, inputs: dict | None = None, extra: dict | None = None, started: float | None = None) -> dict:
        """Write ``out`` (the table CSV), ``out.points.csv``, ``out.points.npz`` and ``out.json`` atomically."""
        from ..results import library_versions, write_arrays, write_csv, write_json
        from .outputs import output_paths

        paths = output_paths(out)
        point_rows, point_arrays = self.per_point()
        write_csv(paths["table"], self.table())
        write_csv(paths["points_csv"], point_rows)
        write_arrays(paths["points_npz"], **point_arrays)
        decided = {
            name: {
                t.text: {DECISION_NAMES[s]: int((self.states[:, c, k] == s).sum()) for s in DECISION_NAMES}
                for k, t in enumerate(self.targets)
            }
            for c, name in enumerate(CERTIFICATES)
        }
        write_json(
            paths["sidecar"],
            {
                "inputs": inputs or {},
                "smoothing": self.test.smoothing.to_config(),
                "sequential": True,
                "procedure": self.test.to_record(),
                "alpha": self.test.alpha,
                "runner_up": self.test.runner_up,
                "points": self.points,
                "classes": int(self.votes.shape[1]),
                "n0": self.n0,
                "n": self.test.n_max,
                "samples": self.samples_record(),
                "decisions": decided,
                **(extra or {}),
                "summary": self.summary(),
                "outputs": {name: str(path) for name, path in paths.items()},
                "seconds": round(time.perf_counter() - (started or time.perf_counter()), 4),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": library_versions(),
            },
        )
        return paths

    def save_votes(self, path) -> None:
        """``votes.npz`` with the counts, ``samples`` per point and ``sequential = True``: :func:`.votes.load_votes`
        refuses it, since fixed-n bounds on counts gathered with optional stopping are invalid."""
        from ..results import write_arrays

        write_arrays(
            Path(path),
            pre_votes=self.pre_votes,
            votes=self.votes,
            labels=self.labels,
            samples=self.samples,
            sequential=np.array(True),
        )
