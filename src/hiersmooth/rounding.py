"""Outward rounding of float64 bounds (SPEC.md §8).

A certificate is a claim about real numbers computed in float64, so every lower bound the library returns must
be at or below the exact real value and every upper bound at or above it. Each bound is computed from inputs that
are themselves sound bounds, by a formula without cancellation, and ends with an outward step: ``down(x, rel)``
is a float at or below x·(1 − rel) (one ulp further still, which covers the rounding of the step itself), and
``up(x, rel)`` a float at or above x·(1 + rel). ``rel`` is the relative error the computation is known to make
(stated where each bound is computed; the exact-arithmetic tests check it).
"""

from __future__ import annotations

import numpy as np

ULP = 2.0**-52  # the spacing of doubles just above 1: every basic operation errs by at most ULP/2 relatively
TINY = 1e-300  # absolute slack for results that may have underflowed


def down(x, rel: float = 0.0) -> np.ndarray:
    """A float at or below x·(1 − rel) for finite x (x − |x|·rel, then one ulp down); ±∞ and NaN unchanged."""
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        stepped = np.nextafter(x - np.abs(x) * rel, -np.inf)
    return np.where(np.isfinite(x), stepped, x)


def up(x, rel: float = 0.0) -> np.ndarray:
    """A float at or above x·(1 + rel) for finite x (x + |x|·rel, then one ulp up); ±∞ and NaN unchanged."""
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        stepped = np.nextafter(x + np.abs(x) * rel, np.inf)
    return np.where(np.isfinite(x), stepped, x)


def integers_as_floats(values, direction: str) -> np.ndarray:
    """Non-negative integers (any size) as floats rounded ``"down"`` or ``"up"``: exact below 2⁵³, one ulp
    outward above (float conversion errs by at most half an ulp)."""
    array = np.asarray(values)
    floats = array.astype(float)
    if array.dtype == object or array.size and np.max(array) >= 2**53:
        large = floats >= 2.0**53
        floats = np.where(large, np.nextafter(floats, -np.inf if direction == "down" else np.inf), floats)
    return floats


def one_minus(x, direction: str) -> np.ndarray:
    """1 − x for x in [0, 1], rounded ``"down"`` or ``"up"``: exact wherever 1 − x is a float.

    For x ≥ 1/2, 1 − x is exact (Sterbenz); for x < 1/2 the rounded r = 1 − x lies in [1/2, 1], so 1 − r is exact
    and tells on which side of the exact value r fell.
    """
    x = np.asarray(x, dtype=float)
    r = 1.0 - x
    back = 1.0 - r
    if direction == "down":
        return np.where((x < 0.5) & (back < x), np.nextafter(r, -np.inf), r)
    return np.where((x < 0.5) & (back > x), np.nextafter(r, np.inf), r)
