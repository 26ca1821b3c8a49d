"""Upper level of the smoothing distribution: which rows (entities) get smoothed (SPEC.md §2.1).

Each selection knows Δ(r) = 1 − P(C ⊆ S), the probability that not every one of r changed rows is
selected, in the worst case over which r rows change (SPEC.md §3):

- ``Bernoulli(p)``: each row independently with probability p; Δ(r) = 1 − p^r. With one p_i per row the worst
  case changes the r rows least likely to be selected: Δ(r) = 1 − ∏ of the r smallest p_i.
- ``Subset(size=m, entities=N)``: m rows uniformly without replacement; Δ(r) = 1 − C(N−r, m−r) / C(N, m).
- ``All()``: every row; Δ(r) = 0 (standard randomized smoothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np


def _rows_array(r) -> np.ndarray:
    rows = np.asarray(r)
    if rows.dtype.kind not in "iu" or np.any(rows < 0):
        raise ValueError(f"r={r!r}: the number of changed rows must be a non-negative integer")
    return rows.astype(np.int64)


def _probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value <= 1:
        raise ValueError(f"{name}={value!r}: a selection probability must be in (0, 1]")
    return float(value)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name}={value!r}: must be an integer >= 1")
    return int(value)


@dataclass(frozen=True)
class Bernoulli:
    """Select each row independently: with probability ``p``, or ``p[i]`` for row i."""

    p: float | tuple[float, ...]

    def __post_init__(self):
        if isinstance(self.p, (list, tuple, np.ndarray)):
            if len(self.p) == 0:
                raise ValueError("selection.p=[]: a per-row list needs one probability per row")
            object.__setattr__(self, "p", tuple(_probability(f"selection.p[{i}]", v) for i, v in enumerate(self.p)))
        else:
            object.__setattr__(self, "p", _probability("selection.p", self.p))

    @property
    def per_row(self) -> bool:
        return isinstance(self.p, tuple)

    def delta(self, r):
        rows = _rows_array(r)
        if not self.per_row:
            return 1.0 - self.p ** rows.astype(float)
        # P(all r changed rows selected) in the worst case: the product of the r smallest p_i.
        all_selected = np.concatenate([[1.0], np.cumprod(np.sort(self.p))])
        return 1.0 - all_selected[np.minimum(rows, len(self.p))]

    @property
    def constant_from(self) -> int | None:
        """Smallest R >= 1 with Δ(r) = Δ(R) for every r >= R, or None if Δ grows without end."""
        if self.per_row:
            return len(self.p)
        return 1 if self.p == 1.0 else None

    def sample_mask(self, n: int, entities: int, generator=None, device=None):
        """(n, N) boolean tensor: row i selected with probability p (or p[i]), independently."""
        import torch

        if self.per_row and len(self.p) != entities:
            raise ValueError(f"selection.p has {len(self.p)} per-row probabilities but the input has {entities} rows")
        p = torch.tensor(self.p, dtype=torch.float64, device=device) if self.per_row else self.p
        return torch.rand(n, entities, generator=generator, device=device, dtype=torch.float64) < p


@dataclass(frozen=True)
class Subset:
    """Select exactly ``size`` (m) of the ``entities`` (N) rows, uniformly at random."""

    size: int
    entities: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "size", _positive_int("selection.size", self.size))
        if self.entities is not None:
            object.__setattr__(self, "entities", _positive_int("selection.entities", self.entities))
            if self.size > self.entities:
                raise ValueError(
                    f"selection.size={self.size}: cannot select more rows than selection.entities={self.entities}"
                )

    def _require_entities(self) -> int:
        if self.entities is None:
            raise ValueError(
                "selection.entities is missing: subset selection needs N, the number of entities, to certify"
            )
        return self.entities

    def delta(self, r):
        rows = _rows_array(r)
        n, m = self._require_entities(), self.size
        # C(N−r, m−r) / C(N, m) = ∏_{i<r} (m−i)/(N−i): r rows can change at most, all N of them.
        i = np.arange(n)
        all_selected = np.concatenate([[1.0], np.cumprod(np.maximum(m - i, 0) / (n - i))])
        return 1.0 - all_selected[np.minimum(rows, n)]

    @property
    def constant_from(self) -> int | None:
        n = self._require_entities()
        return max(1, min(self.size + 1, n))

    def sample_mask(self, n: int, entities: int, generator=None, device=None):
        """(n, N) boolean tensor with exactly m True per row: the m smallest of N i.i.d. uniforms, a uniform m-subset."""
        import torch

        if self.entities is not None and self.entities != entities:
            raise ValueError(f"selection.entities={self.entities} but the input has {entities} rows")
        if self.size > entities:
            raise ValueError(f"selection.size={self.size}: cannot select more rows than the input's {entities}")
        chosen = torch.rand(n, entities, generator=generator, device=device, dtype=torch.float64).argsort(dim=1)[:, : self.size]
        return torch.zeros(n, entities, dtype=torch.bool, device=device).scatter_(1, chosen, True)


@dataclass(frozen=True)
class All:
    """Select every row: the lower-level distribution alone."""

    def delta(self, r):
        return np.zeros(_rows_array(r).shape)

    @property
    def constant_from(self) -> int:
        return 1

    def sample_mask(self, n: int, entities: int, generator=None, device=None):
        """(n, N) boolean tensor of True: every row is smoothed (draws nothing)."""
        import torch

        return torch.ones(n, entities, dtype=torch.bool, device=device)



Selection = Bernoulli | Subset | All

SELECTIONS = {"bernoulli": Bernoulli, "subset": Subset, "all": All}
