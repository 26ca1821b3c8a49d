"""Discrete Neyman–Pearson: worst-case probabilities over regions of constant likelihood ratio (SPEC.md §3).

Given the outcome space cut into regions with masses ``px`` under the clean input X and ``pt`` under the
perturbed input X̃, listed in decreasing order of the likelihood ratio px/pt, the least X̃-probability of any
(randomised) classifier whose X-probability is q takes whole regions in that order and the last one in part
(Neyman–Pearson lemma; Lee et al., NeurIPS 2019). The greatest X̃-probability is 1 − L(1 − q): the complement
classifier has X-probability 1 − q.

For sparse noise (Bojchevski et al., ICML 2020) the regions are indexed by q = (changed bits added by the
adversary that are 1 in the sample) + (bits it deleted that are 0 in the sample), q = 0..ra+rd:

    P_X[q]  = (Binomial(ra, p₊) ⊛ Binomial(rd, p₋))[q]
    P_X̃[q]  = (Binomial(ra, 1 − p₋) ⊛ Binomial(rd, 1 − p₊))[q]
    ratio[q] = (p₊/(1−p₋))^(q − rd) · (p₋/(1−p₊))^(q − ra),

a ratio that falls as q grows whenever p₊ + p₋ < 1 (both bases are then below 1), so increasing q is the
decreasing-ratio order. Both pmfs are computed directly in float64; no ratio is ever divided out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import binom


@lru_cache(maxsize=4096)
def _binomial_pmf(n: int, p: float) -> np.ndarray:
    pmf = binom.pmf(np.arange(n + 1), n, p)
    pmf.setflags(write=False)
    return pmf


@dataclass(frozen=True)
class Regions:
    """Regions in decreasing likelihood-ratio order, with their cumulative masses for fast look-up.

    Regions without X-mass are dropped: reaching an X-probability never needs them, and the upper bound
    1 − L(1 − q) accounts for their X̃-mass through the complement.
    """

    px: np.ndarray
    pt: np.ndarray
    cum_x: np.ndarray
    cum_t: np.ndarray

    @classmethod
    def from_masses(cls, px: np.ndarray, pt: np.ndarray) -> "Regions":
        keep = px > 0
        px, pt = px[keep], pt[keep]
        arrays = (px, pt, np.concatenate([[0.0], np.cumsum(px)]), np.concatenate([[0.0], np.cumsum(pt)]))
        for array in arrays:
            array.setflags(write=False)
        return cls(*arrays)

    def lower(self, q) -> np.ndarray:
        """L(q) = min over classifiers h with E_X[h] = q of E_X̃[h]: whole regions in order, the last in part."""
        q = np.asarray(q, dtype=float)
        region = np.searchsorted(self.cum_x, q, side="right") - 1
        np.clip(region, 0, len(self.px) - 1, out=region)
        fraction = np.minimum(np.maximum((q - self.cum_x[region]) / self.px[region], 0.0), 1.0)
        return np.minimum(self.cum_t[region] + fraction * self.pt[region], 1.0)

    def upper(self, q) -> np.ndarray:
        """U(q) = max over classifiers h with E_X[h] = q of E_X̃[h] = 1 − L(1 − q) (the complement classifier)."""
        return 1.0 - self.lower(1.0 - np.asarray(q, dtype=float))


@lru_cache(maxsize=65536)
def sparse_regions(added: int, deleted: int, p_plus: float, p_minus: float) -> Regions:
    """Regions of the ra = ``added``, rd = ``deleted`` changed bits, q = 0..ra+rd (decreasing ratio order)."""
    px = np.convolve(_binomial_pmf(added, p_plus), _binomial_pmf(deleted, p_minus))
    pt = np.convolve(_binomial_pmf(added, 1.0 - p_minus), _binomial_pmf(deleted, 1.0 - p_plus))
    return Regions.from_masses(px, pt)
