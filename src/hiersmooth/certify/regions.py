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


def _greedy(cum_x: np.ndarray, cum_t: np.ndarray, px: np.ndarray, pt: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """X̃-mass taken by filling X-mass ``budget`` with whole regions in order, the last one in part."""
    region = np.clip(np.searchsorted(cum_x, budget, side="right") - 1, 0, len(px) - 1)
    fraction = np.clip((budget - cum_x[region]) / px[region], 0.0, 1.0)
    return cum_t[region] + fraction * pt[region]


@dataclass(frozen=True)
class Regions:
    """Regions in decreasing likelihood-ratio order, with the cumulative masses of both greedy orders.

    ``rel`` is the relative error of every mass. Regions without X-mass cost nothing: U takes them first
    (``free``); L never needs them.
    """

    px: np.ndarray
    pt: np.ndarray
    rel: float
    free: float
    forward: tuple[np.ndarray, ...]
    backward: tuple[np.ndarray, ...]

    @classmethod
    def from_masses(cls, px: np.ndarray, pt: np.ndarray, rel: float = 0.0) -> "Regions":
        keep = px > 0
        kept_x, kept_t = px[keep], pt[keep]

        def cumulative(x, t):
            arrays = (np.concatenate([[0.0], np.cumsum(x)]), np.concatenate([[0.0], np.cumsum(t)]), x, t)
            for array in arrays:
                array.setflags(write=False)
            return arrays

        free = float(pt[~keep].sum())
        return cls(px, pt, float(rel), free, cumulative(kept_x, kept_t), cumulative(kept_x[::-1], kept_t[::-1]))

    def _lower_small(self, q: np.ndarray) -> np.ndarray:
        """Lower bound on L(q), used for q <= 1/2."""
        taken = _greedy(*self.forward, down(q, self.rel))
        return np.maximum(down(taken, 2 * self.rel) - TINY, 0.0)

    def _upper_small(self, q: np.ndarray) -> np.ndarray:
        """Upper bound on U(q), used for q <= 1/2."""
        taken = self.free + _greedy(*self.backward, up(q, self.rel))
        return np.minimum(up(taken, 2 * self.rel) + TINY, 1.0)

    def lower(self, q, complement=None) -> np.ndarray:
        """Lower bound on L(q*) = min over classifiers h with E_X[h] = q* of E_X̃[h], for every q* >= ``q`` with
        1 − q* <= ``complement`` (default 1 − q rounded up)."""
        q = np.asarray(q, dtype=float)
        complement = one_minus(q, "up") if complement is None else np.minimum(complement, one_minus(q, "up"))
        return _by_half(q, complement, self._lower_small, lambda c: one_minus(self._upper_small(c), "down"))

    def upper(self, q, complement=None) -> np.ndarray:
        """Upper bound on U(q*) = max over classifiers h with E_X[h] = q* of E_X̃[h], for every q* <= ``q`` with
        1 − q* >= ``complement`` (default 1 − q rounded down)."""
        q = np.asarray(q, dtype=float)
        complement = one_minus(q, "down") if complement is None else np.maximum(complement, one_minus(q, "down"))
        return _by_half(q, complement, self._upper_small, lambda c: one_minus(self._lower_small(np.minimum(c, 0.5)), "up"))


def _by_half(q: np.ndarray, complement: np.ndarray, below, above) -> np.ndarray:
    """``below(q)`` where q <= 1/2, ``above(complement)`` elsewhere, each evaluated only where it is used."""
    q, complement = np.broadcast_arrays(q, complement)
    small = q <= 0.5
    out = np.empty(q.shape)
    out[small] = below(q[small])
    out[~small] = above(complement[~small])
    return np.clip(out, 0.0, 1.0)


@lru_cache(maxsize=65536)
def sparse_regions(added: int, deleted: int, p_plus: float, p_minus: float) -> Regions:
    """Regions of the ra = ``added``, rd = ``deleted`` changed bits, q = 0..ra+rd (decreasing ratio order)."""
    px = np.convolve(_binomial_pmf(added, p_plus), _binomial_pmf(deleted, p_minus))
    pt = np.convolve(_binomial_pmf(added, p_minus)[::-1], _binomial_pmf(deleted, p_plus)[::-1])
    return Regions.from_masses(px, pt, (added + deleted + 16) * _REL_PER_BIT)
