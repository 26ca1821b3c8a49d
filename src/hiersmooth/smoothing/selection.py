"""Upper level of the smoothing distribution: which rows (entities) get smoothed (SPEC.md §2.1).

Each selection knows Δ(r) = 1 − P(C ⊆ S), the probability that not every one of r changed rows is
selected, in the worst case over which r rows change (SPEC.md §3). It computes the complement first,
``selected_all(r)`` = P(C ⊆ S) = 1 − Δ(r), as a sound lower bound in float64 (SPEC.md §8: no cancellation, an
outward step covering the rounding), and ``delta(r)`` as a sound upper bound on Δ(r), always in [0, 1]. ``r`` may
be any non-negative integer (Python ints of any size included): beyond the number of rows, or beyond m for a
subset, Δ stops changing, and huge r are never wrapped nor allocated by value.

- ``Bernoulli(p)``: each row independently with probability p; Δ(r) = 1 − p^r. With one p_i per row the worst
  case changes the r rows least likely to be selected: Δ(r) = 1 − ∏ of the r smallest p_i.
- ``Subset(size=m, entities=N)``: m rows uniformly without replacement; Δ(r) = 1 − C(N−r, m−r) / C(N, m).
- ``All()``: every row; Δ(r) = 0 (standard randomized smoothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from ..checks import check_integer
from ..rounding import ULP, down, integers_as_floats, one_minus

_DIRECT_PRODUCT = 2**20  # subset: r up to this many factors multiplied directly, larger r through log-gamma
_MAX_ENTITIES = 2**53  # row counts stay exact as floats


def _rows_array(r) -> np.ndarray:
    """``r`` as an array of non-negative integers: int64 where they fit, else Python ints (object array)."""
    rows = np.asarray(r)
    if rows.dtype.kind == "f" and not isinstance(r, np.ndarray):  # a list mixing small and huge Python ints
        rows = np.asarray(r, dtype=object)
    if rows.dtype == object:
        flat = rows.ravel().tolist()
        if not all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 0 for v in flat):
            raise ValueError(f"r={r!r}: the number of changed rows must be a non-negative integer")
        if all(v < 2**63 for v in flat):
            return np.array(flat, dtype=np.int64).reshape(rows.shape)
        return np.array([int(v) for v in flat], dtype=object).reshape(rows.shape)
    if rows.dtype.kind not in "iu" or np.any(rows < 0):
        raise ValueError(f"r={r!r}: the number of changed rows must be a non-negative integer")
    if rows.dtype.kind == "u" and rows.size and rows.max() >= 2**63:
        return np.array([int(v) for v in rows.ravel().tolist()], dtype=object).reshape(rows.shape)
    return rows.astype(np.int64)


def _capped(rows: np.ndarray, cap: int) -> np.ndarray:
    """min(r, cap) as int64 (exact for any size of r)."""
    if rows.dtype == object:
        return np.array([min(int(v), cap) for v in rows.ravel().tolist()], dtype=np.int64).reshape(rows.shape)
    return np.minimum(rows, cap)


def _delta_from(selected: np.ndarray) -> np.ndarray:
    """Sound upper bound on Δ = 1 − P(C ⊆ S) from a sound lower bound on P(C ⊆ S); exact where 1 − P is a float."""
    return one_minus(selected, "up")


def _probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value <= 1:
        raise ValueError(f"{name}={value!r}: a selection probability must be in (0, 1]")
    return float(value)


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

    def selected_all(self, r) -> np.ndarray:
        """Lower bound on P(C ⊆ S) = p^r (or the product of the r smallest p_i), within a few ulps of exact.

        p^r is one correctly rounded power (≤ 1 ulp, r rounded up to a float); a product of r factors errs by
        at most r/2 ulps relatively. 1 exactly where r = 0 or every factor is 1.
        """
        rows = _rows_array(r)
        if not self.per_row:
            exponent = integers_as_floats(rows, "up")
            with np.errstate(under="ignore"):
                power = np.power(self.p, exponent)
            return np.where((exponent == 0) | (self.p == 1.0), 1.0, np.maximum(down(power, 2 * ULP), 0.0))
        # P(all r changed rows selected) in the worst case: the product of the r smallest p_i.
        all_selected = np.concatenate([[1.0], np.cumprod(np.sort(self.p))])
        count = _capped(rows, len(self.p))
        exact = all_selected[count] == 1.0
        return np.where(exact, 1.0, np.maximum(down(all_selected[count], (count + 2) * ULP), 0.0))

    def delta(self, r):
        """Upper bound on Δ(r) = 1 − p^r (per-row p: 1 − the product of the r smallest p_i), in [0, 1]."""
        return _delta_from(self.selected_all(r))

    @property
    def constant_from(self) -> int | None:
        """Smallest R >= 1 with Δ(r) = Δ(R) for every r >= R, or None if Δ grows without end."""
        if self.per_row:
            return len(self.p)
        return 1 if self.p == 1.0 else None

    def sample_mask(self, n: int, entities: int, generator=None, device=None):
        """(n, N) boolean tensor: row i selected with probability exactly p (or p[i]), independently
        (:func:`~hiersmooth.smoothing.random_bits.bernoulli_trials`)."""
        from .random_bits import bernoulli_trials

        if self.per_row and len(self.p) != entities:
            raise ValueError(f"selection.p has {len(self.p)} per-row probabilities but the input has {entities} rows")
        return bernoulli_trials(self.p, (n, entities), generator, device)


@dataclass(frozen=True)
class Subset:
    """Select exactly ``size`` (m) of the ``entities`` (N) rows, uniformly at random."""

    size: int
    entities: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "size", check_integer("selection.size", self.size, 1))
        if self.entities is not None:
            object.__setattr__(self, "entities", check_integer("selection.entities", self.entities, 1))
            if self.entities > _MAX_ENTITIES:
                raise ValueError(f"selection.entities={self.entities}: must be at most 2**53")
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

    def selected_all(self, r) -> np.ndarray:
        """Lower bound on P(C ⊆ S) = C(N−r, m−r)/C(N, m) = ∏_{i<r} (m−i)/(N−i); 0 for r > m.

        Up to 2²⁰ factors the product is taken directly (each factor one rounded division: at most
        (r + 1) ulps relatively in all); beyond, exp of a log-gamma difference in 40-digit mpmath. Nothing is
        allocated beyond min(r, m) + 1 factors, however large N.
        """
        rows = _rows_array(r)
        n, m = self._require_entities(), self.size
        count = _capped(rows, min(n, m + 1)).ravel()  # r > m: some changed row is never selected, P = 0
        direct = min(int(count.max()) if count.size else 0, _DIRECT_PRODUCT)
        i = np.arange(direct, dtype=float)
        products = np.concatenate([[1.0], np.cumprod((m - i) / (n - i))])
        small = count <= direct
        selected = products[np.minimum(count, direct)]
        selected = np.where(selected == 1.0, 1.0, np.maximum(down(selected, (count + 2) * ULP), 0.0))
        selected = np.where(count > m, 0.0, selected)
        for k in np.flatnonzero(~small & (count <= m)):
            selected[k] = _subset_product(n, m, int(count[k]))
        return selected.reshape(rows.shape)

    def delta(self, r):
        """Upper bound on Δ(r) = 1 − C(N−r, m−r)/C(N, m), in [0, 1]."""
        return _delta_from(self.selected_all(r))

    @property
    def constant_from(self) -> int | None:
        n = self._require_entities()
        return max(1, min(self.size + 1, n))

    def sample_mask(self, n: int, entities: int, generator=None, device=None):
        """(n, N) boolean tensor with exactly m True per row: the m smallest of N i.i.d. uniforms, a uniform
        m-subset."""
        import torch

        if self.entities is not None and self.entities != entities:
            raise ValueError(f"selection.entities={self.entities} but the input has {entities} rows")
        if self.size > entities:
            raise ValueError(f"selection.size={self.size}: cannot select more rows than the input's {entities}")
        chosen = torch.rand(n, entities, generator=generator, device=device, dtype=torch.float64).argsort(dim=1)[
            :, : self.size
        ]
        return torch.zeros(n, entities, dtype=torch.bool, device=device).scatter_(1, chosen, True)


def _subset_product(n: int, m: int, r: int) -> float:
    """Lower bound on ∏_{i<r} (m−i)/(N−i) = exp(lnΓ(m+1) − lnΓ(m−r+1) − lnΓ(N+1) + lnΓ(N−r+1)), 0 < r ≤ m."""
    import mpmath

    with mpmath.workdps(40):
        value = mpmath.exp(
            mpmath.loggamma(m + 1) - mpmath.loggamma(m - r + 1) - mpmath.loggamma(n + 1) + mpmath.loggamma(n - r + 1)
        )
        return float(down(float(value), 2 * ULP))


@dataclass(frozen=True)
class All:
    """Select every row: the lower-level distribution alone."""

    def selected_all(self, r) -> np.ndarray:
        """P(C ⊆ S) = 1: every row is smoothed."""
        return np.ones(_rows_array(r).shape)

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
