"""One-sided Clopper–Pearson confidence bounds on a binomial proportion (Clopper & Pearson, 1934).

For k successes in n trials, at level α:
    lower = Beta⁻¹(α; k, n − k + 1)      (0 when k = 0)
    upper = Beta⁻¹(1 − α; k + 1, n − k) (1 when k = n)
so P(p < lower) ≤ α and P(p > upper) ≤ α. These are the bounds of the two-sided "exact" interval at level 2α.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaincinv


def check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r}: must be in (0, 1)")
    return float(alpha)


def clopper_pearson_lower(k, n, alpha: float) -> np.ndarray:
    """One-sided lower confidence bound at level ``alpha`` on p from k successes in n trials."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    alpha = check_alpha(alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = betaincinv(k, n - k + 1, alpha)
    return np.where(k > 0, bound, 0.0)


def clopper_pearson_upper(k, n, alpha: float) -> np.ndarray:
    """One-sided upper confidence bound at level ``alpha`` on p from k successes in n trials."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    alpha = check_alpha(alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = betaincinv(k + 1, n - k, 1 - alpha)
    return np.where(k < n, bound, 1.0)
