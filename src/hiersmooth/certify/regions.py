"""Discrete Neyman–Pearson: worst-case probabilities over regions of constant likelihood ratio (SPEC.md §3).

Given the outcome space cut into regions with masses ``px`` under the clean input X and ``pt`` under the
perturbed input X̃, listed in decreasing order of the likelihood ratio px/pt, the least X̃-probability of any
(randomised) classifier whose X-probability is q takes whole regions in that order and the last one in part
(Neyman–Pearson lemma; Lee et al., NeurIPS 2019): L(q). The greatest, U(q), takes them in increasing order of the
ratio (regions without X-mass first, for free), and U(q) = 1 − L(1 − q) (the complement classifier).

For sparse noise (Bojchevski et al., ICML 2020) the regions are indexed by q = (changed bits added by the
adversary that are 1 in the sample) + (bits it deleted that are 0 in the sample), q = 0..ra+rd:

    P_X[q]  = (Binomial(ra, p₊) ⊛ Binomial(rd, p₋))[q]
    P_X̃[q]  = (Binomial(ra, 1 − p₋) ⊛ Binomial(rd, 1 − p₊))[q]
    ratio[q] = (p₊/(1−p₋))^(q − rd) · (p₋/(1−p₊))^(q − ra),

a ratio that falls as q grows whenever p₊ + p₋ < 1 (both bases are then below 1), so increasing q is the
decreasing-ratio order. Binomial(n, 1 − p) is Binomial(n, p) reversed, so 1 − p is never rounded.

Soundness in float64 (SPEC.md §8). Each mass is known to a relative error ``rel`` (SciPy's binomial pmf, the
convolution's and the cumulative sums' roundings). L is increasing in q, decreasing in the X-masses and
increasing in the X̃-masses, so with masses off by at most a factor (1 ± rel), L evaluated at q·(1 − rel) and
divided by (1 + rel) is at or below the exact L(q); U at q·(1 + rel) times (1 + rel) is at or above. Each greedy
only ever runs on a budget of at most 1/2 — L(q) for q > 1/2 is 1 − U(1 − q) and U(q) is 1 − L(1 − q) — so a q
within 1e-15 of 1 is as accurate as one near 0, and no cumulative sum is ever cancelled against 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import binom

from ..rounding import TINY, down, one_minus, up

_REL_PER_BIT = 2.0**-44  # relative error allowed per changed bit (measured: below 2^-54 per bit for the pmf)


@lru_cache(maxsize=4096)
def _binomial_pmf(n: int, p: float) -> np.ndarray:
    pmf = binom.pmf(np.arange(n + 1), n, p)
    pmf.setflags(write=False)
    return pmf


@dataclass(frozen=True)
class _Order:
    """The regions of one or more cells in one greedy order, concatenated cell after cell.

    Cell k owns the ``size[k]`` regions from index ``start[k]`` on: X-masses ``px``, X̃-masses ``pt``, and the
    masses ``cum_x``, ``cum_t`` of all the cell's regions before each one (one entry more per cell: the total).
    ``px`` and ``pt`` end each cell with an unused 0 so that the four arrays share ``start``.
    """

    cum_x: np.ndarray
    cum_t: np.ndarray
    px: np.ndarray
    pt: np.ndarray
    start: np.ndarray
    size: np.ndarray

    def __post_init__(self):
        for array in (self.cum_x, self.cum_t, self.px, self.pt, self.start, self.size):
            array.setflags(write=False)  # shared through the cache of sparse_regions

    @classmethod
    def of(cls, px: np.ndarray, pt: np.ndarray) -> "_Order":
        """One cell with regions of masses ``px``, ``pt`` in this order."""
        cumulative = [np.concatenate([[0.0], np.cumsum(masses)]) for masses in (px, pt)]
        padded = [np.concatenate([masses, [0.0]]) for masses in (px, pt)]
        return cls(*cumulative, *padded, np.zeros(1, dtype=np.int64), np.array([len(px)], dtype=np.int64))

    @classmethod
    def stack(cls, orders: list["_Order"]) -> "_Order":
        """The cells of ``orders``, one after the other."""
        lengths = np.array([len(order.cum_x) for order in orders], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        arrays = [np.concatenate([getattr(order, name) for order in orders]) for name in ("cum_x", "cum_t", "px", "pt")]
        start = np.concatenate([order.start + offset for order, offset in zip(orders, offsets)])
        return cls(*arrays, start, np.concatenate([order.size for order in orders]))

    def _filled(self, budget: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """How many of the cumulative X-masses of its cell are <= each ``budget`` (``searchsorted(…, "right")``).

        One cell: NumPy's search. Several: a binary search per element within its cell, run in lockstep for all
        elements; each halving at least halves every interval, so ``bit_length`` of the longest cell's entries
        halvings empty them all. Both count exactly (the cumulative masses do not decrease)."""
        if len(self.start) == 1:
            return np.searchsorted(self.cum_x, budget, side="right")
        low = self.start[cell]
        high = low + self.size[cell] + 1
        for _ in range(int(self.size.max() + 1).bit_length()):
            middle = (low + high) // 2
            searching = low < high
            at_most = searching & (self.cum_x[np.minimum(middle, len(self.cum_x) - 1)] <= budget)
            low = np.where(at_most, middle + 1, low)
            high = np.where(searching & ~at_most, middle, high)
        return low - self.start[cell]

    def taken(self, budget: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """X̃-mass taken by filling X-mass ``budget`` with whole regions of ``cell`` in order, the last one in part."""
        region = self.start[cell] + np.clip(self._filled(budget, cell) - 1, 0, self.size[cell] - 1)
        fraction = np.clip((budget - self.cum_x[region]) / self.px[region], 0.0, 1.0)
        return self.cum_t[region] + fraction * self.pt[region]


@dataclass(frozen=True)
class Regions:
    """The regions of one or more cells (a cell: the outcome space of one threat) in decreasing likelihood-ratio
    order, with the cumulative masses of both greedy orders.

    ``rel[k]`` is the relative error of every mass of cell k. Regions without X-mass cost nothing: U takes them
    first (``free[k]``, their X̃-mass); L never needs them. :meth:`lower` and :meth:`upper` take, per element of
    ``q``, the cell to bound (``cell``, default 0): many threats are bounded in one call, each exactly as alone.
    """

    rel: np.ndarray
    free: np.ndarray
    forward: _Order
    backward: _Order

    def __post_init__(self):
        for array in (self.rel, self.free):
            array.setflags(write=False)

    @classmethod
    def from_masses(cls, px: np.ndarray, pt: np.ndarray, rel: float = 0.0) -> "Regions":
        """One cell: regions of X-masses ``px`` and X̃-masses ``pt``, each known to relative error ``rel``."""
        keep = px > 0
        kept_x, kept_t = px[keep], pt[keep]
        free = np.array([pt[~keep].sum()])
        return cls(np.array([float(rel)]), free, _Order.of(kept_x, kept_t), _Order.of(kept_x[::-1], kept_t[::-1]))

    @classmethod
    def stack(cls, cells: list["Regions"]) -> "Regions":
        """The cells of ``cells``, one after the other (cell numbers run on from one to the next)."""
        return cls(
            np.concatenate([regions.rel for regions in cells]),
            np.concatenate([regions.free for regions in cells]),
            _Order.stack([regions.forward for regions in cells]),
            _Order.stack([regions.backward for regions in cells]),
        )

    def _lower_small(self, q: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Lower bound on L(q), used for q <= 1/2."""
        rel = self.rel[cell]
        taken = self.forward.taken(down(q, rel), cell)
        return np.maximum(down(taken, 2 * rel) - TINY, 0.0)

    def _upper_small(self, q: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Upper bound on U(q), used for q <= 1/2."""
        rel = self.rel[cell]
        taken = self.free[cell] + self.backward.taken(up(q, rel), cell)
        return np.minimum(up(taken, 2 * rel) + TINY, 1.0)

    def lower(self, q, complement=None, cell=0) -> np.ndarray:
        """Lower bound on L(q*) = min over classifiers h with E_X[h] = q* of E_X̃[h], for every q* >= ``q`` with
        1 − q* <= ``complement`` (default 1 − q rounded up), in the regions of ``cell``."""
        q = np.asarray(q, dtype=float)
        complement = one_minus(q, "up") if complement is None else np.minimum(complement, one_minus(q, "up"))
        return _by_half(q, complement, cell, self._lower_small,
                        lambda c, cells: one_minus(self._upper_small(c, cells), "down"))

    def upper(self, q, complement=None, cell=0) -> np.ndarray:
        """Upper bound on U(q*) = max over classifiers h with E_X[h] = q* of E_X̃[h], for every q* <= ``q`` with
        1 − q* >= ``complement`` (default 1 − q rounded down), in the regions of ``cell``."""
        q = np.asarray(q, dtype=float)
        complement = one_minus(q, "down") if complement is None else np.maximum(complement, one_minus(q, "down"))
        return _by_half(q, complement, cell, self._upper_small,
                        lambda c, cells: one_minus(self._lower_small(np.minimum(c, 0.5), cells), "up"))


def _by_half(q: np.ndarray, complement: np.ndarray, cell, below, above) -> np.ndarray:
    """``below(q, cell)`` where q <= 1/2, ``above(complement, cell)`` elsewhere, each evaluated only where used."""
    q, complement, cell = np.broadcast_arrays(q, complement, np.asarray(cell, dtype=np.int64))
    small = q <= 0.5
    out = np.empty(q.shape)
    out[small] = below(q[small], cell[small])
    out[~small] = above(complement[~small], cell[~small])
    return np.clip(out, 0.0, 1.0)


@lru_cache(maxsize=65536)
def sparse_regions(added: int, deleted: int, p_plus: float, p_minus: float) -> Regions:
    """Regions of the ra = ``added``, rd = ``deleted`` changed bits, q = 0..ra+rd (decreasing ratio order)."""
    px = np.convolve(_binomial_pmf(added, p_plus), _binomial_pmf(deleted, p_minus))
    pt = np.convolve(_binomial_pmf(added, p_minus)[::-1], _binomial_pmf(deleted, p_plus)[::-1])
    return Regions.from_masses(px, pt, (added + deleted + 16) * _REL_PER_BIT)
