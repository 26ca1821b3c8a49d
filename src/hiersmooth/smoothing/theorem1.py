"""Theorem 1 of Scholten et al. (NeurIPS 2023): the hierarchical bounds from the noise's bounds (SPEC.md §3).

With s = 1 − Δ = P(all changed rows selected) and L, U the noise's worst-case bounds for the same threat:

    p̲ = s · L((p_A − Δ) / s)          if p_A > Δ, else 0
    p̄ = s · U(min(1, p_B / s)) + Δ

computed soundly in float64 (SPEC.md §8) from a lower bound on s and the complements 1 − p_A, 1 − q, never from
Δ itself, so nothing near 1 is cancelled. Every function broadcasts.
"""

from __future__ import annotations

import numpy as np

from ..rounding import down, one_minus, up


def theorem1_lower(p_a, selected, lower) -> np.ndarray:
    """p̲ = s · L((p_A − Δ)/s) where p_A > Δ = 1 − s, else 0 (Theorem 1), rounded down; broadcasts.

    ``selected`` is a lower bound on s = P(C ⊆ S); ``lower(q, complement)`` a lower bound on L at an argument
    q* >= q with 1 − q* <= complement. With c = 1 − p_A (exact for p_A >= 1/2), q = (s − c)/s and 1 − q = c/s
    are each computed from c and s alone and rounded outward.
    """
    s = np.asarray(selected, dtype=float)
    reachable, q, complement = theorem1_argument(p_a, s)
    return np.where(reachable, np.clip(down(s * lower(q, complement)), 0.0, 1.0), 0.0)


def theorem1_argument(p_a, selected) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_A > Δ, a lower bound on q = (p_A − Δ)/s, an upper bound on 1 − q = (1 − p_A)/s) for s >= ``selected``.

    Both bounds hold for the exact s as well: q grows and 1 − q falls with s. Where p_A <= Δ, q = 0 and 1 − q = 1.
    """
    p_a, s = np.broadcast_arrays(np.asarray(p_a, dtype=float), np.asarray(selected, dtype=float))
    c = one_minus(p_a, "up")
    reachable = c < s
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(s == 1.0, p_a, np.maximum(down(down(s - c) / s), 0.0))
        complement = np.where((s == 1.0) | (c == 0), c, np.minimum(up(c / s), 1.0))  # 0/s is exact
    return reachable, np.where(reachable, q, 0.0), np.where(reachable, complement, 1.0)


def theorem1_upper(p_b, selected, upper) -> np.ndarray:
    """p̄ = s · U(min(1, p_B/s)) + (1 − s) (Theorem 1, Δ = 1 − s), rounded up and capped at 1; broadcasts.

    ``selected`` is a lower bound on s (p̄ falls as s grows); ``upper(q, complement)`` an upper bound on U at an
    argument q* <= q with 1 − q* >= complement.
    """
    s = np.asarray(selected, dtype=float)
    q, complement = theorem1_upper_argument(p_b, s)
    return np.clip(up(up(s * upper(q, complement)) + one_minus(s, "up")), 0.0, 1.0)


def theorem1_upper_argument(p_b, selected) -> tuple[np.ndarray, np.ndarray]:
    """(an upper bound on q = min(1, p_B/s), a lower bound on 1 − q) for s >= ``selected``; q = 1 where s = 0."""
    p_b, s = np.broadcast_arrays(np.asarray(p_b, dtype=float), np.asarray(selected, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where((s == 1.0) | (p_b == 0), p_b, np.minimum(up(p_b / s), 1.0))  # 0/s is exact
        complement = np.where(s == 1.0, one_minus(p_b, "down"), np.maximum(down(down(s - p_b) / s), 0.0))
    return np.where(s > 0, q, 1.0), np.where(s > 0, complement, 0.0)
