"""Sound float64 bounds on the standard normal cdf Φ and its inverse Φ⁻¹ (SPEC.md §8), for the gaussian noise.

Φ is evaluated as SciPy's ``ndtr`` on the non-positive half line only (where it is computed from ``erfc`` with
relative error that grows like x²·ulp: measured 1.1e-13 at x = −37) and as 1 − Φ(−x) above; Φ⁻¹ is ``ndtri`` on
(0, 1/2] only (relative error below 1e-15 measured against 50-digit mpmath) and −Φ⁻¹(1 − q) above, with 1 − q
passed in by the caller rather than recomputed, so that q within 1e-15 of 1 keeps its accuracy. The outward steps
below cover those errors by a factor of ten or more (checked against mpmath in the test suite).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from ..rounding import TINY, down, one_minus, up

_PROBIT_REL = 2.0**-44  # relative error allowed for ndtri on (0, 1/2]
_CDF_REL_PER_SQUARE = 2.0**-50  # relative error allowed for ndtr(x), x <= 0: (x² + 8) times this


def probit_down(q, complement) -> np.ndarray:
    """A lower bound on Φ⁻¹(q*) for any q* with q* >= ``q`` and 1 − q* <= ``complement``."""
    q, complement = np.asarray(q, dtype=float), np.asarray(complement, dtype=float)
    with np.errstate(divide="ignore"):
        z = np.where(q <= 0.5, ndtri(q), -ndtri(complement))
    return down(z, _PROBIT_REL)


def probit_up(q, complement) -> np.ndarray:
    """An upper bound on Φ⁻¹(q*) for any q* with q* <= ``q`` and 1 − q* >= ``complement``."""
    q, complement = np.asarray(q, dtype=float), np.asarray(complement, dtype=float)
    with np.errstate(divide="ignore"):
        z = np.where(q <= 0.5, ndtri(q), -ndtri(complement))
    return up(z, _PROBIT_REL)


def _left_tail(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds on Φ(−|x|)."""
    tail = np.maximum(-np.abs(x), -1e3)  # Φ(−1e3) is 0 in float64 as Φ(−∞); the cap keeps tail² finite
    rel = (np.minimum(tail * tail, 1e4) + 8.0) * _CDF_REL_PER_SQUARE  # Φ(x) underflows to 0 long before x = −100
    value = ndtr(tail)
    return np.maximum(down(value, rel), 0.0), np.minimum(up(value, rel) + TINY, 0.5)


def cdf_down(x) -> np.ndarray:
    """A lower bound on Φ(x)."""
    x = np.asarray(x, dtype=float)
    low, high = _left_tail(x)
    return np.where(x <= 0, low, one_minus(high, "down"))


def cdf_up(x) -> np.ndarray:
    """An upper bound on Φ(x)."""
    x = np.asarray(x, dtype=float)
    low, high = _left_tail(x)
    return np.where(x <= 0, high, one_minus(low, "up"))
