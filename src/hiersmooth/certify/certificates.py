"""Per-point certificates: the binary and multi-class decision rules applied to bounds on p_A (SPEC.md §3–§4).

Given, per point, a lower bound p_A on the probability of the selected class A (and, for the multi-class
rule, an upper bound p_B on every other class; :mod:`hiersmooth.certify.certification` computes both from
vote counts):

- binary certificate: certified for a threat iff p̲_{X̃,A} > 1/2;
- multi-class certificate: certified iff p̲_{X̃,A} > p̄_{X̃,B}.

A point whose bound fails already for the empty threat abstains. Beyond the exact yes/no answer for any threat
(:meth:`Certificate.certified`), each noise family has its natural per-point certificate: the largest certified
ℓ2 radius per r (gaussian), the certified (r, ra, rd) grid (sparse), the largest certified r (ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..rounding import down, one_minus, up
from ..smoothing.hierarchical import Smoothing, theorem1_argument, theorem1_lower, theorem1_upper, theorem1_upper_argument
from ..smoothing.normal import probit_down, probit_up
from ..smoothing.noise import Ablation, Gaussian, Sparse
from ..threat import Threat

_BISECTION_STEPS = 64  # halvings of the bracket's bit patterns: enough to reach adjacent doubles
_BRACKET_DOUBLINGS = 64  # the margin at ε is below 2Φ(−ε/σ) − Δ/s: it fails long before σ·2⁶⁴


@dataclass(frozen=True)
class Certificate:
    """One decision rule applied to every point: ``binary`` (p_upper is None) or ``multiclass``."""

    name: str
    smoothing: Smoothing
    p_lower: np.ndarray
    p_upper: np.ndarray | None = None
    _bits: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # certified_bits by axes

    @property
    def abstain(self) -> np.ndarray:
        """Points not certified even for the empty threat: p_A <= 1/2 (binary), p_A <= p_B (multi-class)."""
        return ~(self.p_lower > (0.5 if self.p_upper is None else self.p_upper))

    def _decide(self, selected, lower, upper, points=slice(None)) -> np.ndarray:
        """Certified iff p̲_{X̃,A} > 1/2 (binary) or > p̄_{X̃,B} (multi-class), with s = 1 − Δ >= ``selected``.

        ``lower(q, complement)`` and ``upper(q, complement)`` are the noise's sound bounds L, U for the threat
        (shaped as ``selected`` broadcast against the ``points``). Both sides are sound float64 bounds (p̲ rounded
        down, p̄ up), so a point certified here is certified in exact arithmetic."""
        least = theorem1_lower(self.p_lower[points], selected, lower)
        if self.p_upper is None:
            return least > 0.5
        return least > theorem1_upper(self.p_upper[points], selected, upper)

    def certified(self, threat: Threat) -> np.ndarray:
        """Whether each point is certified against ``threat`` (bool per point; sound, SPEC.md §8)."""
        threat, selected = self.smoothing.resolve(threat)
        if threat.rows == 0:  # nothing can change
            return ~self.abstain
        noise = self.smoothing.noise
        return self._decide(selected, lambda q, c: noise.lower(q, threat, c), lambda q, c: noise.upper(q, threat, c))

    def largest_l2(self, rows) -> np.ndarray:
        """Largest certified ℓ2 radius ε* per point and per r in ``rows`` (gaussian noise), shape (points, rows).

        Certified for (r, ε > 0) iff ε < ε* (ε = 0 changes nothing: certified iff not abstaining). Binary:
        ε* = σ·(Φ⁻¹((p_A − Δ)/(1 − Δ)) − Φ⁻¹(1/(2(1 − Δ)))) when 1 − Δ > 1/2 (SPEC.md §3), each Φ⁻¹ bounded on
        the certified side and the difference rounded down. Multi-class: the root in ε of
        (1−Δ)Φ(a − ε/σ) = (1−Δ)Φ(b + ε/σ) + Δ, a = Φ⁻¹((p_A−Δ)/(1−Δ)), b = Φ⁻¹(p_B/(1−Δ)), found by bisection on
        the sound decision itself (Theorem 1 rounded outward) to adjacent doubles and reported at the end of the
        bracket that is still certified — never rounded up. 0 where nothing is certified. For r = 0 nothing can
        change: ε* = ∞ unless the point abstains.
        """
        noise = self.smoothing.noise
        if not isinstance(noise, Gaussian):
            raise ValueError(f"largest_l2 needs gaussian noise, this smoothing has {type(noise).__name__.lower()} noise")
        rows = np.atleast_1d(np.asarray(rows))
        selected = np.asarray(self.smoothing.selection.selected_all(rows), dtype=float)[None, :]
        if self.p_upper is None:
            reachable, q, complement = theorem1_argument(self.p_lower[:, None], selected)
            half = up(0.5 / selected)  # certified iff Φ(a − ε/σ) > 1/(2s): needs 1/(2s) < 1
            b = probit_up(np.minimum(half, 1.0), one_minus(np.minimum(half, 1.0), "down"))
            with np.errstate(invalid="ignore"):
                t = np.where(reachable & (half < 1.0), down(probit_down(q, complement) - b), 0.0)
            radius = down(noise.sigma * np.maximum(t, 0.0))
        else:
            radius = _multiclass_radius(self, selected)
        radius = np.where(np.isnan(radius), 0.0, np.maximum(radius, 0.0))
        return np.where(rows[None, :] == 0, np.where(self.abstain[:, None], 0.0, np.inf), radius)

    def certified_bits(self, rows, added, deleted) -> np.ndarray:
        """Certified (r, ra, rd) grid per point (sparse noise): bool array (points, rows, added, deleted).

        Certification is monotone in ra and rd (SPEC.md §3), so a point is decided at (ra, rd) only where it is
        certified, for some r, at the previous ra and at the previous rd of the axes (not certified elsewhere): the
        work follows the certified region, not the whole grid.
        """
        noise = self.smoothing.noise
        if not isinstance(noise, Sparse):
            raise ValueError(f"certified_bits needs sparse noise, this smoothing has {type(noise).__name__.lower()} noise")
        (rows, row_of), (added, added_of), (deleted, deleted_of) = (
            np.unique(np.asarray(axis, dtype=np.int64), return_inverse=True) for axis in (rows, added, deleted)
        )
        key = (rows.tobytes(), added.tobytes(), deleted.tobytes())
        if key not in self._bits:  # the table and the per-point files ask for the same grid
            self._bits[key] = self._certified_bits(rows, added, deleted)
        grid = self._bits[key]
        for axis, inverse in enumerate((row_of, added_of, deleted_of), start=1):
            if not np.array_equal(inverse, np.arange(grid.shape[axis])):  # asked for unsorted or repeated
                grid = grid.take(inverse, axis=axis)
        return grid.copy()

    def _certified_bits(self, rows: np.ndarray, added: np.ndarray, deleted: np.ndarray) -> np.ndarray:
        """``certified_bits`` on sorted distinct axes: one ra at a time, every point, r and rd at once.

        Cell by cell along the axes, the rule of :meth:`certified_bits` reads: a point is decided at (ra, rd) iff it
        is certified for some r at the previous ra and at the previous rd (where it was decided), else it is not
        certified there. Unrolled: decided at (ra, rd) iff certified for some r at every other cell of the rectangle
        [first ra, ra] × [first rd, rd] of the axes. So ``reached`` (certified for some r on the whole rectangle up
        to (ra, rd): a cumulative AND along rd) is all one ra hands on to the next, which is decided where
        ``reached`` holds at its rd and its own row's cumulative AND at the previous rd.
        """
        grid = np.zeros((len(self.p_lower), len(rows), len(added), len(deleted)), dtype=bool)
        # at most ra + rd rows can change: s = P(C ⊆ S) is needed up to that many rows only, however large r
        most = int(min(rows[-1], added[-1] + deleted[-1]))
        selected_of_rows = np.asarray(self.smoothing.selection.selected_all(np.arange(most + 1)), dtype=float)
        reached = np.ones((len(self.p_lower), len(deleted)), dtype=bool)  # before the first ra: no condition
        for i, ra in enumerate(added):
            if not reached.any():
                break
            decided = self._certified_row(rows, ra, deleted, reached, selected_of_rows)  # only where reached
            reached = np.logical_and.accumulate(decided.any(axis=1), axis=1)
            at_previous_rd = np.concatenate([np.ones((len(self.p_lower), 1), dtype=bool), reached[:, :-1]], axis=1)
            grid[:, :, i, :] = decided & at_previous_rd[:, None, :]
        grid.setflags(write=False)
        return grid

    def _certified_row(self, rows, ra, deleted, where, selected_of_rows) -> np.ndarray:
        """Certified against (r, ra, rd) for every r in ``rows`` and rd in ``deleted``, at the (point, rd) pairs of
        ``where`` (False elsewhere): bool array (points, rows, deleted).

        The regions of every (ra, rd) are computed once and bound all points; ra + rd flipped bits change at most
        ra + rd rows (Threat.effective), so s = P(C ⊆ S) is that of min(r, ra + rd) rows. Where that is no row at
        all, nothing changes and the point is certified iff it does not abstain.
        """
        point, column = np.nonzero(where)
        regions = self.smoothing.noise.regions_of([(ra, rd) for rd in deleted[: column.max() + 1]])
        changeable = np.minimum(rows[None, :], ra + deleted[column][:, None])
        point, column = (np.broadcast_to(index[:, None], changeable.shape) for index in (point, column))
        certified = ~self.abstain[point]
        moved = changeable > 0
        cell = column[moved]
        certified[moved] = self._decide(selected_of_rows[changeable[moved]], lambda q, c: regions.lower(q, c, cell),
                                        lambda q, c: regions.upper(q, c, cell), point[moved])
        out = np.zeros((len(self.p_lower), len(rows), len(deleted)), dtype=bool)
        out[point, np.arange(len(rows))[None, :], column] = certified
        return out

    def largest_rows(self) -> np.ndarray:
        """Largest r such that the point is certified against any change to r rows (``Threat(rows=r)``).

        −1 where the point abstains; ∞ where Δ stops growing while the point is still certified.
        """
        noise = self.smoothing.noise
        if not isinstance(noise, Ablation):
            raise ValueError(
                f"largest_rows needs ablation noise (the only one certifying unbounded changes), "
                f"this smoothing has {type(noise).__name__.lower()} noise"
            )
        largest = np.where(self.abstain, -1.0, 0.0)
        constant_from = self.smoothing.selection.constant_from
        r = 0
        while True:
            r += 1
            certified = self.certified(Threat(rows=r))
            if not certified.any():
                return largest
            if constant_from is not None and r >= constant_from:
                largest[certified] = np.inf
                return largest
            largest[certified] = r

    def certified_on_axes(self, axes: dict[str, list]) -> np.ndarray:
        """Certified per point at every threat of a grid, bool array (points, threats), the threats in the order of
        ``itertools.product`` over the axes: rows × eps (gaussian), rows × added × deleted (sparse), rows (ablation).

        The same decisions as :meth:`certified` threat by threat (ε = 0 or r = 0 changes nothing: certified iff not
        abstaining), through the family's per-point certificate computed once for the whole grid."""
        noise = self.smoothing.noise
        rows = np.minimum(np.asarray(axes["rows"], dtype=np.int64), 2**62)
        points = len(self.p_lower)
        if isinstance(noise, Gaussian):
            eps = np.asarray(axes["eps"], dtype=float)
            certified = self.largest_l2(rows)[:, :, None] > eps[None, None, :]
            certified[:, :, eps == 0] = ~self.abstain[:, None, None]
        elif isinstance(noise, Sparse):
            certified = self.certified_bits(rows, axes["added"], axes["deleted"])
        else:
            certified = self.largest_rows()[:, None] >= rows[None, :]
        return certified.reshape(points, -1)

    def certified_many(self, threats: list[Threat]) -> np.ndarray:
        """Certified per point and threat, bool array (points, threats), through the family's fast certificate."""
        noise = self.smoothing.noise
        for threat in threats:
            noise.check_threat(threat)
        if isinstance(noise, Sparse):
            # rows as given (certified_bits takes min(r, ra + rd) itself): the same axes as the per-point grid
            rows = np.array([min(t.rows, 2**62) for t in threats], dtype=np.int64)
            coordinates = (rows, np.array([t.added for t in threats]), np.array([t.deleted for t in threats]))
            axes = [np.unique(values) for values in coordinates]
            grid = self.certified_bits(*axes)
            return grid[(slice(None), *(np.searchsorted(axis, values) for axis, values in zip(axes, coordinates)))]
        r_eff = np.array([t.effective.rows for t in threats], dtype=np.int64)
        if isinstance(noise, Gaussian):
            rows, column = np.unique(r_eff, return_inverse=True)
            radius = self.largest_l2(rows)
            return radius[:, column] > np.array([t.l2 for t in threats])[None, :]
        return self.largest_rows()[:, None] >= r_eff[None, :]


def _multiclass_radius(certificate: Certificate, selected: np.ndarray) -> np.ndarray:
    """Largest ε (to adjacent doubles) at which the sound multi-class decision still certifies; 0 where none.

    Bisection keeps the invariant certified(low), not certified(high) and returns ``low``: an ε that is
    certified, never one beyond the root. The exact margin falls monotonically in ε (SPEC.md §3), so every
    ε' < low is certified too.
    """
    noise = certificate.smoothing.noise
    p_a, p_b, s = np.broadcast_arrays(certificate.p_lower[:, None], certificate.p_upper[:, None], selected)

    # Φ⁻¹ of Theorem 1's arguments does not depend on ε: computed once, only Φ is evaluated per step.
    z_a = probit_down(*theorem1_argument(p_a, s)[1:])
    z_b = probit_up(*theorem1_upper_argument(p_b, s))

    def certified(eps, where):
        out = np.zeros(p_a.shape, dtype=bool)
        if where.any():
            lower = theorem1_lower(p_a[where], s[where], lambda q, c: noise.lower_from_probit(z_a[where], eps[where]))
            upper = theorem1_upper(p_b[where], s[where], lambda q, c: noise.upper_from_probit(z_b[where], eps[where]))
            out[where] = lower > upper
        return out

    low = np.zeros(p_a.shape)
    solve = certified(low, np.ones(p_a.shape, dtype=bool))
    high = np.where(solve, noise.sigma, 0.0)
    for _ in range(_BRACKET_DOUBLINGS):  # grow the bracket until its upper end is not certified
        still = certified(high, solve & (high > low))
        if not still.any():
            break
        low, high = np.where(still, high, low), np.where(still, 2 * high, high)
    # Bisection on the bit patterns: non-negative doubles are ordered as their int64 patterns, so at most 64
    # halvings reach adjacent doubles anywhere in the bracket.
    for _ in range(_BISECTION_STEPS):
        low_bits, high_bits = low.view(np.int64), high.view(np.int64)
        moving = solve & (high_bits - low_bits > 1)
        if not moving.any():
            break
        middle = (low_bits + (high_bits - low_bits) // 2).view(np.float64)
        above = certified(middle, moving)
        low = np.where(moving & above, middle, low)
        high = np.where(moving & ~above, middle, high)
    return low
