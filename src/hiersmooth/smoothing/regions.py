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

The regions of many threats stack (``Regions.stack``) into one object that bounds every element of ``q`` in the
regions of its own threat (``cell=``), with exactly the operations, and so the results, of each threat alone:
a whole (ra, rd) grid is bounded in a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from ..rounding import TINY, down, one_minus, up

try:  # what scipy.stats.binom.pmf evaluates (Boost's binomial pmf) without importing scipy.stats (~0.3 s)
    from scipy.special._ufuncs import _binom_pmf
except ImportError:  # a SciPy that moved its private ufunc: the public function, same values, slower import
    from scipy.stats import binom as _binomial

    _binom_pmf = _binomial.pmf

_REL_PER_BIT = 2.0**-44  # relative error allowed per changed bit (measured: below 2^-54 per bit for the pmf)


@lru_cache(maxsize=4096)
def _binomial_pmf(n: int, p: float) -> np.ndarray:
    """Binomial(n, p) masses of 0..n: ``scipy.stats.binom.pmf(np.arange(n + 1), n, p)``, bit for bit."""
    pmf = np.clip(_binom_pmf(np.arange(n + 1, dtype=float), n, p), 0.0, 1.0)
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
    def of(cls, px: np.ndarray, pt: np.ndarray) -> _Order:
        """One cell with regions of masses ``px``, ``pt`` in this order."""
        cum_x, cum_t, padded_x, padded_t = arrays = np.zeros((4, len(px) + 1))
        np.cumsum(px, out=cum_x[1:])
        np.cumsum(pt, out=cum_t[1:])
        padded_x[:-1], padded_t[:-1] = px, pt
        return cls(*arrays, np.zeros(1, dtype=np.int64), np.array([len(px)], dtype=np.int64))

    @classmethod
    def stack(cls, orders: list[_Order]) -> _Order:
        """The cells of ``orders``, one after the other."""
        lengths = np.array([len(order.cum_x) for order in orders], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        arrays = [np.concatenate([getattr(order, name) for order in orders]) for name in ("cum_x", "cum_t", "px", "pt")]
        start = np.concatenate([order.start + offset for order, offset in zip(orders, offsets)])
        return cls(*arrays, start, np.concatenate([order.size for order in orders]))

    @cached_property
    def _search_rows(self) -> np.ndarray:
        """``cum_x`` with one row per cell, padded by +∞ to a common width 2^m − 1 > every cell's size + 1."""
        width = (1 << int(self.size.max() + 1).bit_length()) - 1
        rows = np.full(len(self.start) * width, np.inf)
        entries = self.size + 1
        shift = np.repeat(np.arange(len(self.start)) * width - self.start, entries)  # from start[k] + i to k·width + i
        rows[shift + np.arange(entries.sum())] = self.cum_x
        rows.setflags(write=False)
        return rows.reshape(len(self.start), width)

    def _filled(self, budget: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """How many of the cumulative X-masses of its cell are <= each ``budget`` (``searchsorted(…, "right")``).

        One cell: NumPy's search. Several: a binary search per element in its cell's row of :attr:`_search_rows`,
        all elements in lockstep: rows have width 2^m − 1, and steps s = 2^(m−1), …, 1 each add s to the count
        where the last of the next s entries is within the budget (then all s are: the cumulative masses do not
        decrease). The padding +∞ never is."""
        if len(self.start) == 1:
            return np.searchsorted(self.cum_x, budget, side="right")
        rows = self._search_rows
        flat = rows.ravel()
        base = cell * rows.shape[1] - 1
        filled = np.zeros(np.shape(budget), dtype=np.int64)
        step = (rows.shape[1] + 1) // 2
        while step:
            filled += step * (flat[base + filled + step] <= budget)
            step //= 2
        return filled

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
    def from_masses(cls, px: np.ndarray, pt: np.ndarray, rel: float = 0.0) -> Regions:
        """One cell: regions of X-masses ``px`` and X̃-masses ``pt``, each known to relative error ``rel``."""
        keep = px > 0
        kept_x, kept_t = px[keep], pt[keep]
        free = np.array([pt[~keep].sum()])
        return cls(np.array([float(rel)]), free, _Order.of(kept_x, kept_t), _Order.of(kept_x[::-1], kept_t[::-1]))

    @classmethod
    def stack(cls, cells: list[Regions]) -> Regions:
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
        return _by_half(
            q, complement, cell, self._lower_small, lambda c, cells: one_minus(self._upper_small(c, cells), "down")
        )

    def upper(self, q, complement=None, cell=0) -> np.ndarray:
        """Upper bound on U(q*) = max over classifiers h with E_X[h] = q* of E_X̃[h], for every q* <= ``q`` with
        1 − q* >= ``complement`` (default 1 − q rounded down), in the regions of ``cell``."""
        q = np.asarray(q, dtype=float)
        complement = one_minus(q, "down") if complement is None else np.maximum(complement, one_minus(q, "down"))
        return _by_half(
            q,
            complement,
            cell,
            self._upper_small,
            lambda c, cells: one_minus(self._lower_small(np.minimum(c, 0.5), cells), "up"),
        )


def _by_half(q: np.ndarray, complement: np.ndarray, cell, below, above) -> np.ndarray:
    """``below(q, cell)`` where q <= 1/2, ``above(complement, cell)`` elsewhere, each evaluated only where used;
    ``cell`` is one cell for all elements (an integer) or one per element."""
    q, complement = np.broadcast_arrays(q, complement)
    small = q <= 0.5
    cells = np.broadcast_to(cell, q.shape) if np.ndim(cell) else None
    out = np.empty(q.shape)
    out[small] = below(q[small], cell if cells is None else cells[small])
    out[~small] = above(complement[~small], cell if cells is None else cells[~small])
    return np.clip(out, 0.0, 1.0)


@lru_cache(maxsize=65536)
def sparse_regions(added: int, deleted: int, p_plus: float, p_minus: float) -> Regions:
    """Regions of the ra = ``added``, rd = ``deleted`` changed bits, q = 0..ra+rd (decreasing ratio order)."""
    px = np.convolve(_binomial_pmf(added, p_plus), _binomial_pmf(deleted, p_minus))
    pt = np.convolve(_binomial_pmf(added, p_minus)[::-1], _binomial_pmf(deleted, p_plus)[::-1])
    return Regions.from_masses(px, pt, (added + deleted + 16) * _REL_PER_BIT)
