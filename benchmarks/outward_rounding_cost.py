"""What outward rounding (SPEC.md §8) costs in tightness on the paper's published votes.

For every point of the reference votes, the library's p̲ (and p̄) at the paper's threats is compared with the exact
value: 50-digit mpmath for CIFAR-10 hierarchical gaussian, exact rationals for Cora-ML hierarchical sparse, both
from the library's own Clopper–Pearson bounds (themselves compared with mpmath in the test suite). Prints the
largest gap (how far the sound float64 bound sits inside the exact one) and how many points' certificates the
rounding changes (a point whose exact margin is smaller than the gap).

Run: ``.venv/bin/python benchmarks/outward_rounding_cost.py``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np

import hiersmooth
from hiersmooth import Threat
from hiersmooth.certify.certification import certify_votes
from hiersmooth.certify.votes import load_votes
from hiersmooth.shared_data import shared_dir

mpmath.mp.dps = 50


def exact_gaussian_lower(p, s, eps, sigma):
    p, s = mpmath.mpf(p), mpmath.mpf(s)
    if p <= 1 - s:
        return mpmath.mpf(0)
    q = (p - (1 - s)) / s
    return s * mpmath.ncdf(mpmath.sqrt(2) * mpmath.erfinv(2 * q - 1) - mpmath.mpf(eps) / sigma)


def binomial(n, p):
    return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]


def convolve(f, g):
    out = [Fraction(0)] * (len(f) + len(g) - 1)
    for i, a in enumerate(f):
        for j, b in enumerate(g):
            out[i + j] += a * b
    return out


def exact_sparse_lower(p, s, added, deleted, p_plus, p_minus):
    p, delta = Fraction(p), 1 - s
    if p <= delta:
        return Fraction(0)
    px = convolve(binomial(added, p_plus), binomial(deleted, p_minus))
    pt = convolve(binomial(added, 1 - p_minus), binomial(deleted, 1 - p_plus))
    budget, taken = (p - delta) / s, Fraction(0)
    for x, t in zip(px, pt):  # increasing q is decreasing likelihood ratio
        part = min(Fraction(1), budget / x)
        taken, budget = taken + part * t, budget - part * x
        if budget <= 0:
            break
    return s * taken


def main() -> None:
    reference = shared_dir() / "reference"
    cifar = load_votes(reference / "cifar10_resnet50_hierarchical_gaussian_votes.npz")
    p_select = 1 - 150 / 1024
    gaussian = hiersmooth.from_config(
        {"selection": {"kind": "bernoulli", "p": p_select}, "noise": {"kind": "gaussian", "sigma": 0.25}}
    )
    p_a = certify_votes(cifar, gaussian, 0.01).binary.p_lower
    s = mpmath.mpf(p_select)
    for eps in (0.25, 0.5):
        ours = gaussian.lower_bound(p_a, Threat(rows=1, l2=eps))
        exact = [exact_gaussian_lower(p, s, eps, 0.25) for p in p_a]
        gaps = np.array([float(e - mpmath.mpf(float(o))) for o, e in zip(ours, exact)])
        flips = sum((o > 0.5) != (e > 0.5) for o, e in zip(ours, exact))
        print(
            f"CIFAR-10 r=1 eps={eps}: largest gap {gaps.max():.2e} (smallest {gaps.min():.2e}), "
            f"certificates changed by rounding: {flips} of {len(p_a)}"
        )
    cora = load_votes(reference / "cora_ml_gat_hierarchical_sparse_votes.npz")
    sparse = hiersmooth.from_config(
        {"selection": {"kind": "bernoulli", "p": 0.81}, "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8}}
    )
    p_a = certify_votes(cora, sparse, 0.01).binary.p_lower
    for added, deleted in ((0, 1), (0, 4), (2, 8)):
        threat = Threat(rows=1, added=added, deleted=deleted)
        ours = sparse.lower_bound(p_a, threat)
        exact = [exact_sparse_lower(p, Fraction(0.81), added, deleted, Fraction(0.05), Fraction(0.8)) for p in p_a]
        gaps = np.array([float(e - Fraction(float(o))) for o, e in zip(ours, exact)])
        flips = sum((o > 0.5) != (e > Fraction(1, 2)) for o, e in zip(ours, exact))
        print(
            f"Cora-ML r=1 ra={added} rd={deleted}: largest gap {gaps.max():.2e} (smallest {gaps.min():.2e}), "
            f"certificates changed by rounding: {flips} of {len(p_a)}"
        )


if __name__ == "__main__":
    main()
