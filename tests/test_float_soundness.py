"""Soundness in floating point (SPEC.md §8): every bound at or on the safe side of the exact real value.

The library's float64 bounds are compared with independent exact computations: rational arithmetic
(``fractions.Fraction``) for Δ, the sparse Neyman–Pearson regions, ablation and Theorem 1, and 50-digit ``mpmath``
for the gaussian bounds, the radii and Clopper–Pearson. Each case counts as optimistic if a lower bound lies above
the exact value (an upper bound below it) by any amount; the tests assert there are none, and that the bounds are
within 1e-9 of exact (where float64 can say so: the exact value's own spacing near 1 is 1e-16).
Parameters are random plus the extremes: p_A within 1e-15 of 1 and of 0, flip probabilities of 1e-6, huge r.
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import hiersmooth
from hiersmooth import Threat
from hiersmooth.certify.bounds import clopper_pearson_lower, clopper_pearson_upper
from hiersmooth.certify.certificates import Certificate

LOOSE = 1e-9
EXTREME_P = [1 - 1e-15, 1 - 2**-52, 1 - 1e-12, 1e-15, 1e-12, 0.5, 0.5 + 2**-53, 1.0, 0.0]
mpmath.mp.dps = 50


def smoothing(selection: dict, noise: dict, indicator: bool = True):
    return hiersmooth.from_config({"selection": selection, "noise": noise, "indicator": indicator})


# ------------------------------------------------------------------------------------------------ exact oracles


def binomial_pmf(n: int, p: Fraction) -> list[Fraction]:
    return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]


def convolve(f: list[Fraction], g: list[Fraction]) -> list[Fraction]:
    out = [Fraction(0)] * (len(f) + len(g) - 1)
    for i, a in enumerate(f):
        for j, b in enumerate(g):
            out[i + j] += a * b
    return out


def exact_regions(added: int, deleted: int, p_plus: Fraction, p_minus: Fraction):
    """(px, pt) of every region q = 0..ra+rd, sorted by decreasing exact ratio px/pt (regions with pt = 0 first)."""
    px = convolve(binomial_pmf(added, p_plus), binomial_pmf(deleted, p_minus))
    pt = convolve(binomial_pmf(added, 1 - p_minus), binomial_pmf(deleted, 1 - p_plus))
    key = [(Fraction(10**400) if t == 0 else x / t) for x, t in zip(px, pt)]
    order = sorted(range(len(px)), key=lambda q: key[q], reverse=True)
    return [px[q] for q in order], [pt[q] for q in order]


def greedy(px, pt, budget: Fraction) -> Fraction:
    """X̃-mass taken by filling X-mass ``budget`` with whole regions in this order, the last in part."""
    taken = Fraction(0)
    for x, t in zip(px, pt):
        if budget <= 0:
            break
        if x == 0:
            continue
        part = min(Fraction(1), budget / x)
        taken += part * t
        budget -= part * x
    return taken


def exact_lower(px, pt, q: Fraction) -> Fraction:
    return greedy(px, pt, q)


def exact_upper(px, pt, q: Fraction) -> Fraction:
    # increasing ratio: regions without X-mass are free; then the rest reversed
    free = sum((t for x, t in zip(px, pt) if x == 0), Fraction(0))
    kept = [(x, t) for x, t in zip(px, pt) if x > 0][::-1]
    return free + greedy([x for x, _ in kept], [t for _, t in kept], q)


def exact_theorem1(p_a: Fraction, p_b: Fraction, s: Fraction, lower, upper) -> tuple[Fraction, Fraction]:
    delta = 1 - s
    low = s * lower((p_a - delta) / s) if p_a > delta else Fraction(0)
    high = min(Fraction(1), s * upper(min(Fraction(1), p_b / s)) + delta) if s > 0 else Fraction(1)
    return low, high


class Tally:
    """Counts optimistic cases and the largest looseness."""

    def __init__(self):
        self.optimistic, self.loosest, self.cases = [], 0.0, 0

    def lower(self, ours: float, exact, what):
        self.cases += 1
        if Fraction(float(ours)) > Fraction(exact) if isinstance(exact, Fraction) else mpmath.mpf(float(ours)) > exact:
            self.optimistic.append((what, float(ours), float(exact)))
        self.loosest = max(
            self.loosest,
            float(exact - (Fraction(float(ours)) if isinstance(exact, Fraction) else mpmath.mpf(float(ours)))),
        )

    def upper(self, ours: float, exact, what):
        self.cases += 1
        if Fraction(float(ours)) < Fraction(exact) if isinstance(exact, Fraction) else mpmath.mpf(float(ours)) < exact:
            self.optimistic.append((what, float(ours), float(exact)))
        self.loosest = max(
            self.loosest,
            float((Fraction(float(ours)) if isinstance(exact, Fraction) else mpmath.mpf(float(ours))) - exact),
        )

    def check(self, loose: float = LOOSE):
        assert self.cases > 0
        assert not self.optimistic, f"{len(self.optimistic)} optimistic of {self.cases}, e.g. {self.optimistic[:3]}"
        assert self.loosest <= loose, f"loosest bound {self.loosest:.3g} from exact (allowed {loose:g})"


def probabilities(rng, count: int) -> list[float]:
    """Random probabilities, uniform and log-uniform near 0 and 1, plus the extremes."""
    uniform = rng.random(count).tolist()
    near_one = (1 - 10.0 ** -rng.uniform(1, 15.5, count)).tolist()
    near_zero = (10.0 ** -rng.uniform(1, 15.5, count)).tolist()
    return uniform + near_one + near_zero + EXTREME_P


# ------------------------------------------------------------------------------------------------ Δ


def test_selection_probability_against_exact_rationals():
    rng = np.random.default_rng(1)
    tally = Tally()
    for p in [0.81, 1 - 150 / 1024, 1 - 1e-15, 1e-6, 0.5, *rng.random(20).tolist()]:
        selection = hiersmooth.from_config(
            {"selection": {"kind": "bernoulli", "p": p}, "noise": {"kind": "ablation"}}
        ).selection
        for r in [0, 1, 2, 3, 7, 50, 1000, 10**6]:
            exact = Fraction(p) ** r if r <= 1000 else None
            if exact is None:
                exact = mpmath.power(mpmath.mpf(p), r)
            tally.lower(selection.selected_all(r), exact, ("bernoulli", p, r))
            tally.upper(selection.delta(r), 1 - exact, ("bernoulli delta", p, r))
    per_row = [0.9, 0.5, 0.99, 0.7, 1.0, 1 - 1e-15]
    selection = hiersmooth.from_config(
        {"selection": {"kind": "bernoulli", "p": per_row}, "noise": {"kind": "ablation"}}
    ).selection
    for r in range(0, 9):
        exact = math.prod((Fraction(v) for v in sorted(per_row)[:r]), start=Fraction(1))
        tally.lower(selection.selected_all(r), exact, ("per-row", r))
    for size, entities in [(874, 1024), (1, 2), (10, 10), (999_999, 10**6), (3, 5)]:
        selection = hiersmooth.from_config(
            {"selection": {"kind": "subset", "size": size, "entities": entities}, "noise": {"kind": "ablation"}}
        ).selection
        for r in [0, 1, 2, 5, size, size + 1, entities]:
            r = min(r, entities)
            exact = (
                math.prod((Fraction(size - i, entities - i) for i in range(r)), start=Fraction(1)) if r <= size else 0
            )
            tally.lower(selection.selected_all(r), Fraction(exact), ("subset", size, entities, r))
    tally.check()


def test_huge_rows_are_neither_wrapped_nor_allocated():
    bernoulli = hiersmooth.from_config(
        {"selection": {"kind": "bernoulli", "p": 1 - 2**-52}, "noise": {"kind": "gaussian", "sigma": 1}}
    )
    for r in (2**63 - 1, 2**64 - 1, 10**30, np.uint64(2**64 - 1)):
        delta = bernoulli.delta(r)
        assert 0 <= delta <= 1
        # (1 − 2⁻⁵²)^r for r ≥ 2⁶³ is below e^(−2048): Δ is 1 and nothing is certified
        assert bernoulli.lower_bound(0.999, Threat(rows=r, l2=0.1)) == 0.0
        assert bernoulli.upper_bound(0.001, Threat(rows=r, l2=0.1)) == 1.0
    assert bernoulli.selection.selected_all(2**52) == pytest.approx(math.exp(2**52 * math.log1p(-(2**-52))), rel=1e-12)
    tracemalloc.start()
    subset = hiersmooth.from_config(
        {"selection": {"kind": "subset", "size": 10**12 - 10, "entities": 10**12}, "noise": {"kind": "ablation"}}
    )
    delta = subset.delta([1, 5, 10**9, 2**64 - 1])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6, f"subset Δ allocated {peak / 1e6:.0f} MB"
    with mpmath.workdps(60):
        exact = 1 - mpmath.exp(
            mpmath.loggamma(10**12 - 10 + 1)
            - mpmath.loggamma(10**12 - 10 - 10**9 + 1)
            - mpmath.loggamma(10**12 + 1)
            + mpmath.loggamma(10**12 - 10**9 + 1)
        )
        assert delta[2] >= exact and delta[2] - exact < 1e-12
    assert delta[0] == pytest.approx(1e-11, rel=1e-3) and delta[3] == 1.0 and np.all(np.diff(delta) >= 0)


# ------------------------------------------------------------------------------------------------ sparse and ablation


@pytest.mark.parametrize(
    "p_plus, p_minus", [(0.05, 0.8), (1e-6, 0.5), (0.3, 1e-6), (1e-6, 1e-6), (0.0, 0.6), (0.2, 0.0), (0.01, 0.98)]
)
def test_sparse_bounds_against_exact_rationals(p_plus, p_minus):
    rng = np.random.default_rng(int(p_plus * 1e6 + p_minus * 1e3))
    tally = Tally()
    for p_select in (0.81, 1.0, 1 - 1e-12, 0.999):
        config = smoothing(
            {"kind": "bernoulli", "p": p_select}, {"kind": "sparse", "p_plus": p_plus, "p_minus": p_minus}
        )
        for added, deleted in ((0, 1), (1, 0), (1, 1), (3, 5), (0, 8)):
            px, pt = exact_regions(added, deleted, Fraction(p_plus), Fraction(p_minus))
            for r in (1, 2):
                threat = Threat(rows=r, added=added, deleted=deleted)
                s = Fraction(p_select) ** min(r, added + deleted)
                ps = probabilities(rng, 6)
                lows, highs = config.lower_bound(ps, threat), config.upper_bound(ps, threat)
                for p, low, high in zip(ps, lows, highs):
                    exact_low, exact_high = exact_theorem1(
                        Fraction(p), Fraction(p), s, lambda q: exact_lower(px, pt, q), lambda q: exact_upper(px, pt, q)
                    )
                    tally.lower(low, exact_low, (p_select, threat, p))
                    tally.upper(high, exact_high, (p_select, threat, p))
    tally.check()


def test_ablation_bounds_against_exact_rationals():
    rng = np.random.default_rng(3)
    tally = Tally()
    for selection in (
        {"kind": "bernoulli", "p": 0.81},
        {"kind": "bernoulli", "p": 1 - 1e-15},
        {"kind": "subset", "size": 874, "entities": 1024},
        {"kind": "all"},
    ):
        config = smoothing(selection, {"kind": "ablation"})
        for r in (1, 2, 5, 40):
            if selection["kind"] == "bernoulli":
                s = Fraction(selection["p"]) ** r
            elif selection["kind"] == "subset":
                s = math.prod((Fraction(874 - i, 1024 - i) for i in range(r)), start=Fraction(1))
            else:
                s = Fraction(1)
            ps = probabilities(rng, 20)
            for p, low, high in zip(ps, config.lower_bound(ps, Threat(rows=r)), config.upper_bound(ps, Threat(rows=r))):
                exact_low, exact_high = exact_theorem1(Fraction(p), Fraction(p), s, lambda q: q, lambda q: q)
                tally.lower(low, exact_low, (selection, r, p))
                tally.upper(high, exact_high, (selection, r, p))
    tally.check()


def test_scalar_and_array_probabilities_agree():
    for noise in (
        {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8},
        {"kind": "gaussian", "sigma": 0.25},
        {"kind": "ablation"},
    ):
        config = smoothing({"kind": "bernoulli", "p": 0.81}, noise)
        threat = {"sparse": Threat(rows=1, added=1, deleted=2), "gaussian": Threat(rows=1, l2=0.3)}.get(
            noise["kind"], Threat(rows=1)
        )
        ps = [0.0, 0.3, 0.9, 1 - 1e-15, 1.0]
        lower, upper = config.lower_bound(ps, threat), config.upper_bound(ps, threat)
        for i, p in enumerate(ps):
            assert config.lower_bound(p, threat) == lower[i]
            assert config.upper_bound(p, threat) == upper[i]
            assert np.ndim(config.lower_bound(p, threat)) == 0


# ------------------------------------------------------------------------------------------------ gaussian


def mp_probit(q):
    q = mpmath.mpf(q)
    if q <= 0:
        return -mpmath.inf
    if q >= 1:
        return mpmath.inf
    return mpmath.sqrt(2) * mpmath.erfinv(2 * q - 1)


def exact_gaussian_theorem1(p: float, s, eps: float, sigma: float):
    p, s, shift = mpmath.mpf(p), mpmath.mpf(s), mpmath.mpf(eps) / mpmath.mpf(sigma)
    delta = 1 - s
    low = s * mpmath.ncdf(mp_probit((p - delta) / s) - shift) if p > delta else mpmath.mpf(0)
    high = min(mpmath.mpf(1), s * mpmath.ncdf(mp_probit(min(mpmath.mpf(1), p / s)) + shift) + delta)
    return low, high


def test_gaussian_bounds_against_mpmath():
    rng = np.random.default_rng(4)
    tally = Tally()
    for p_select in (1 - 150 / 1024, 1.0, 1 - 1e-12, 0.6):
        for sigma in (0.25, 1e-3):
            config = smoothing({"kind": "bernoulli", "p": p_select}, {"kind": "gaussian", "sigma": sigma})
            for r, eps in ((1, 0.25), (1, 1e-9), (3, 2.0)):
                s = mpmath.power(mpmath.mpf(p_select), r)
                ps = probabilities(rng, 3)
                lows, highs = (
                    config.lower_bound(ps, Threat(rows=r, l2=eps)),
                    config.upper_bound(ps, Threat(rows=r, l2=eps)),
                )
                for p, low, high in zip(ps, lows, highs):
                    exact_low, exact_high = exact_gaussian_theorem1(p, s, eps, sigma)
                    tally.lower(low, exact_low, (p_select, sigma, r, eps, p))
                    tally.upper(high, exact_high, (p_select, sigma, r, eps, p))
    tally.check()


def test_gaussian_radii_against_mpmath():
    """Binary: the closed form in mpmath; multi-class: the exact margin at the radius is positive (certified) and
    the radius is within 1e-9 of the exact root."""
    rng = np.random.default_rng(5)
    tally = Tally()
    sigma = 0.25
    for p_select in (1 - 150 / 1024, 1.0, 0.95):
        config = smoothing({"kind": "bernoulli", "p": p_select}, {"kind": "gaussian", "sigma": sigma})
        p_a = np.concatenate([0.5 + 0.5 * rng.random(15), 1 - 10.0 ** -rng.uniform(2, 15, 8), [1 - 1e-15, 1.0]])
        p_b = (1 - p_a) * rng.random(len(p_a))
        binary = Certificate("binary", config, p_a).largest_l2([1, 2])
        multi = Certificate("multiclass", config, p_a, p_b).largest_l2([1, 2])
        for j, r in enumerate((1, 2)):
            s = mpmath.power(mpmath.mpf(p_select), r)
            for i in range(len(p_a)):
                a = mp_probit((mpmath.mpf(p_a[i]) - (1 - s)) / s) if p_a[i] > 1 - s else -mpmath.inf
                exact = (
                    max(mpmath.mpf(0), sigma * (a - mp_probit(1 / (2 * s))))
                    if s > 0.5 and a > -mpmath.inf
                    else mpmath.mpf(0)
                )
                if exact != mpmath.inf:
                    tally.lower(binary[i, j], exact, ("binary", p_select, r, p_a[i]))
                b = mp_probit(mpmath.mpf(p_b[i]) / s) if p_b[i] < s else mpmath.inf

                def margin(e):
                    return s * mpmath.ncdf(a - e / sigma) - s * mpmath.ncdf(b + e / sigma) - (1 - s)

                if multi[i, j] > 0:
                    assert margin(mpmath.mpf(multi[i, j])) > 0, (
                        "multi-class radius not certified",
                        p_select,
                        r,
                        p_a[i],
                        p_b[i],
                    )
                    if margin(mpmath.mpf(multi[i, j]) + LOOSE) > 0 and multi[i, j] < 30 * sigma:
                        pytest.fail(
                            f"multi-class radius {multi[i, j]} more than 1e-9 below the root ({p_a[i]}, {p_b[i]})"
                        )
                elif margin(mpmath.mpf(LOOSE)) > 0 and a > -mpmath.inf:
                    pytest.fail(f"multi-class radius 0 where 1e-9 is certified ({p_a[i]}, {p_b[i]})")
    tally.check()


# ------------------------------------------------------------------------------------------------ Clopper–Pearson


def mp_root(f, guess: float):
    """The root of the increasing-or-decreasing f near ``guess`` to 40 digits, checked by a sign change."""
    start = mpmath.mpf(guess)
    root = mpmath.findroot(
        f,
        (start, start * (1 - mpmath.mpf(10) ** -9)),
        solver="secant",
        tol=mpmath.mpf(10) ** -90,
        verify=False,
        maxsteps=200,
    )
    width = max(abs(root), mpmath.mpf(10) ** -300) * mpmath.mpf(10) ** -35
    assert f(root - width) * f(root + width) <= 0, "mpmath root not bracketed"
    return root


def mp_binomial_tail(n: int, k: int, p) -> mpmath.mpf:
    """P(Bin(n, p) >= k) by summing the pmf (term recurrence) over the shorter side."""
    p = mpmath.mpf(p)
    if k <= 0:
        return mpmath.mpf(1)
    if k > n:
        return mpmath.mpf(0)
    if p == 0 or p == 1:
        return mpmath.mpf(0 if p == 0 else 1)
    ratio = p / (1 - p)
    upper_side = k > n // 2  # sum j = k..n directly, else 1 − sum j = 0..k−1
    first = k if upper_side else 0
    term = mpmath.binomial(n, first) * p**first * (1 - p) ** (n - first)
    total = mpmath.mpf(0)
    for j in range(first, n + 1 if upper_side else k):
        total += term
        term *= ratio * (n - j) / (j + 1)
    return total if upper_side else 1 - total


def mp_cp_lower(k: int, n: int, alpha: float, guess: float):
    """Root in p of P(Bin(n, p) >= k) = α."""
    return mp_root(lambda p: mp_binomial_tail(n, k, p) - alpha, guess)


def mp_cp_upper(k: int, n: int, alpha: float, guess: float):
    """Root in p of P(Bin(n, p) <= k) = α."""
    return mp_root(lambda p: 1 - mp_binomial_tail(n, k + 1, p) - alpha, guess)


def test_clopper_pearson_against_mpmath():
    rng = np.random.default_rng(6)
    tally = Tally()
    cases = [
        (10000, 10000),
        (10000, 9999),
        (10000, 1),
        (10000, 9990),
        (1000, 998),
        (1, 1),
        (2, 1),
        (100, 0),
        (100, 100),
    ]
    cases += [(int(n), int(rng.integers(0, n + 1))) for n in rng.integers(1, 1500, 15)]
    for n, k in cases:
        for alpha in (0.01, 0.01 / 7, 1e-6, 0.2):
            lower, upper = float(clopper_pearson_lower(k, n, alpha)), float(clopper_pearson_upper(k, n, alpha))
            tally.lower(lower, mp_cp_lower(k, n, alpha, lower) if k > 0 else mpmath.mpf(0), ("lower", k, n, alpha))
            tally.upper(upper, mp_cp_upper(k, n, alpha, upper) if k < n else mpmath.mpf(1), ("upper", k, n, alpha))
    # closed forms at the ends, up to huge n: k = n gives α^(1/n), k = 0 gives 1 − α^(1/n) for the upper bound
    for n in (10**6, 10**9, 10**12, 2**53 + 1, 2**62):
        exact = mpmath.power(mpmath.mpf(0.01), mpmath.mpf(1) / n)
        tally.lower(float(clopper_pearson_lower(n, n, 0.01)), exact, ("k = n", n))
        tally.upper(float(clopper_pearson_upper(0, n, 0.01)), 1 - exact, ("k = 0", n))
    tally.check()


def test_certificates_on_reference_votes_are_at_most_exact():
    """Every certified point of the published votes is certified in exact arithmetic (Fraction Δ, mpmath bounds);
    reports the largest gap between the library's bounds and the exact ones."""
    from hiersmooth.certify.certification import certify_votes
    from hiersmooth.certify.votes import load_votes
    from hiersmooth.shared_data import shared_dir

    votes = load_votes(shared_dir() / "reference" / "cifar10_resnet50_hierarchical_gaussian_votes.npz")
    config = smoothing({"kind": "bernoulli", "p": 1 - 150 / 1024}, {"kind": "gaussian", "sigma": 0.25})
    result = certify_votes(votes, config, alpha=0.01)
    tally = Tally()
    ps = result.binary.p_lower[:150]
    for eps in (0.25, 0.5):
        lows = config.lower_bound(ps, Threat(rows=1, l2=eps))
        s = mpmath.mpf(1 - 150 / 1024)
        for p, low in zip(ps, lows):
            tally.lower(low, exact_gaussian_theorem1(p, s, eps, 0.25)[0], ("cifar", eps, p))
    tally.check(loose=1e-11)
