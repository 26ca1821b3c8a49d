"""Hierarchical gaussian bounds and radii, checked against the worst-case classifier built explicitly.

The Neyman–Pearson worst case for class A is the classifier that first takes every outcome the perturbed input
cannot produce (a changed row left unselected: likelihood ratio 0) and then the half-space of outcomes least
likely under the perturbation, {⟨δ, w − x⟩ ≤ c}. Here that classifier is evaluated without Theorem 1: by
enumerating selection patterns and integrating the Gaussian numerically (scipy.integrate.quad, brentq for c),
and by Monte Carlo on explicit input matrices.
"""

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

import hiersmooth
from hiersmooth import Threat
from hiersmooth.certify.certificates import Certificate


def _smoothing(p, sigma):
    selection = {"kind": "all"} if p is None else {"kind": "bernoulli", "p": p}
    return hiersmooth.from_config({"selection": selection, "noise": {"kind": "gaussian", "sigma": sigma}})


def _all_changed_selected(p_rows, changed) -> float:
    """P(every changed row is selected), by enumerating all selection patterns of the rows."""
    total = 0.0
    for pattern in itertools.product((0, 1), repeat=len(p_rows)):
        weight = np.prod([p if s else 1 - p for p, s in zip(p_rows, pattern)])
        total += weight * all(pattern[i] for i in changed)
    return total


def _gaussian_mass(mean, sigma, low, high):
    return quad(
        lambda s: np.exp(-((s - mean) ** 2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi)),
        low,
        high,
        epsabs=1e-13,
        epsrel=1e-12,
    )[0]


def _worst_case(p_rows, changed, sigma, eps, p, lower=True):
    """X̃-probability of the Neyman–Pearson worst-case classifier with X-probability p (numerical integration)."""
    covered = _all_changed_selected(p_rows, changed)
    # Outcomes with an unselected changed row: X-only (mass 1 − covered, ratio 0 for the lower bound) or
    # X̃-only (mass 1 − covered under X̃, free for the upper bound).
    if lower and p <= 1 - covered:
        return 0.0
    rest = p - (1 - covered) if lower else p
    if rest >= covered:
        return covered if lower else 1.0
    # Projection of the selected rows' noise on δ/‖δ‖: N(0, σ²) under X, N(ε, σ²) under X̃.
    span = 40 * sigma + eps
    if lower:  # the half-space s <= c
        c = brentq(lambda c: covered * _gaussian_mass(0, sigma, -span, c) - rest, -span, span, xtol=1e-14)
        return covered * _gaussian_mass(eps, sigma, -span, c)
    c = brentq(lambda c: covered * _gaussian_mass(0, sigma, c, span) - rest, -span, span, xtol=1e-14)
    return (1 - covered) + covered * _gaussian_mass(eps, sigma, c, span + eps)


@settings(max_examples=40, deadline=None)
@given(
    p_rows=st.lists(st.floats(0.3, 1.0), min_size=1, max_size=4),
    sigma=st.floats(0.1, 1.0),
    eps=st.floats(0.01, 1.5),
    p=st.floats(0.01, 0.99),
    data=st.data(),
)
def test_bounds_equal_the_explicit_worst_case_classifier(p_rows, sigma, eps, p, data):
    r = data.draw(st.integers(1, len(p_rows)))
    smoothing = _smoothing(list(p_rows), sigma)
    worst_rows = list(np.argsort(p_rows, kind="stable")[:r])  # the adversary changes the rows least often selected
    threat = Threat(rows=r, l2=eps)
    assert smoothing.lower_bound(p, threat) == pytest.approx(_worst_case(p_rows, worst_rows, sigma, eps, p), abs=1e-7)
    assert smoothing.upper_bound(p, threat) == pytest.approx(
        _worst_case(p_rows, worst_rows, sigma, eps, p, lower=False), abs=1e-7
    )


def test_monte_carlo_on_explicit_inputs_matches_the_bound():
    """Sample Ψ_X and Ψ_X̃ for real 5×3 matrices and apply the worst-case classifier; compare frequencies."""
    rng = np.random.default_rng(0)
    p_select, sigma, r, eps, p_a, n = 0.7, 0.5, 2, 0.8, 0.9, 400_000
    x = rng.uniform(0, 1, size=(5, 3))
    delta = np.zeros_like(x)
    delta[:r] = rng.normal(size=(r, 3))
    delta *= eps / np.linalg.norm(delta)
    smoothing = _smoothing(p_select, sigma)
    bound = smoothing.lower_bound(p_a, Threat(rows=r, l2=eps))

    def sample(data):
        selected = rng.uniform(size=(n, 5)) < p_select
        noisy = np.where(selected[:, :, None], data + sigma * rng.normal(size=(n, 5, 3)), data)
        return noisy, selected

    def classifier(noisy, selected, c):
        # 1 on outcomes X̃ cannot produce (a changed row unselected and equal to x), then the half-space.
        unselected_clean = np.any(~selected[:, :r] & np.all(np.isclose(noisy[:, :r], x[:r]), axis=2), axis=1)
        projection = np.einsum("nij,ij->n", noisy - x, delta) / eps
        return unselected_clean | (selected[:, :r].all(axis=1) & (projection <= c))

    covered = p_select**r
    c = sigma * ndtri((p_a - (1 - covered)) / covered)  # the half-space threshold giving P_X[h] = p_a
    clean = classifier(*sample(x), c).mean()
    perturbed = classifier(*sample(x + delta), c).mean()
    assert clean == pytest.approx(p_a, abs=3e-3)
    assert perturbed == pytest.approx(bound, abs=4e-3)


@settings(max_examples=60, deadline=None)
@given(p_a=st.floats(0.5, 0.99999), gap=st.floats(1e-6, 1.0), p_select=st.floats(0.75, 1.0), sigma=st.floats(0.05, 2.0))
@example(p_a=0.8442858063009004, gap=1.0, p_select=0.9999999999999999, sigma=1.0)  # r=2 1 ulp above r=1 once
def test_radii_are_the_roots_of_the_certificate_conditions(p_a, gap, p_select, sigma):
    p_b = (1 - p_a) * gap  # > 0, as every Clopper–Pearson upper bound is
    smoothing = _smoothing(p_select, sigma)
    rows = np.arange(0, 5)
    binary = Certificate("binary", smoothing, np.array([p_a]))
    multi = Certificate("multiclass", smoothing, np.array([p_a]), np.array([p_b]))
    for cert, margin in (
        (binary, lambda e, r: smoothing.lower_bound(p_a, Threat(r, l2=e)) - 0.5),
        (multi, lambda e, r: smoothing.lower_bound(p_a, Threat(r, l2=e)) - smoothing.upper_bound(p_b, Threat(r, l2=e))),
    ):
        radius = cert.largest_l2(rows)[0]
        assert radius[0] == (np.inf if not cert.abstain[0] else 0)
        assert np.all(np.diff(radius[1:]) <= 0), "radius must not grow with r"
        for r, eps in zip(rows[1:], radius[1:]):
            if eps > 1e-9:  # smaller radii sit at the resolution of Φ near 1/2 in float64
                assert margin(eps * (1 - 1e-9), r) > 0 and cert.certified(Threat(r, l2=eps * (1 - 1e-9)))[0]
                assert not cert.certified(Threat(r, l2=eps * (1 + 1e-9) + 1e-15))[0]
                assert eps == pytest.approx(brentq(margin, 0, eps * 2 + 1, args=(r,), xtol=1e-15), abs=1e-9)
            else:
                assert not cert.certified(Threat(r, l2=2e-9))[0]


@settings(max_examples=60, deadline=None)
@given(p_a=st.floats(0.5, 0.99999), gap=st.floats(0.0, 1.0), sigma=st.floats(0.05, 2.0))
def test_all_selection_gives_cohen_radii(p_a, gap, sigma):
    p_b = (1 - p_a) * gap
    smoothing = _smoothing(None, sigma)
    binary = Certificate("binary", smoothing, np.array([p_a])).largest_l2([1, 7])[0]
    multi = Certificate("multiclass", smoothing, np.array([p_a]), np.array([p_b])).largest_l2([1, 7])[0]
    assert binary == pytest.approx(max(sigma * ndtri(p_a), 0), abs=1e-9)
    assert np.all(binary <= max(sigma * ndtri(p_a), 0) + 1e-15), "never above the exact radius"
    cohen = max(sigma / 2 * (ndtri(p_a) - ndtri(p_b)), 0)
    if np.isinf(cohen):  # p_B = 0: every ε is certified; the sound bounds resolve Φ down to 1e-300, i.e. ε ≈ 37σ
        assert np.all(multi >= 37 * sigma)
    else:
        assert multi == pytest.approx(cohen, abs=1e-9)
        assert np.all(multi <= cohen + 1e-15), "never above the exact radius"


def test_bounds_are_monotone_and_reduce_to_the_lower_level():
    p = np.linspace(0, 1, 201)
    smoothing = _smoothing(0.8, 0.3)
    previous_lower, previous_upper = p, p
    for r in range(1, 6):
        for eps in np.linspace(0, 2, 21)[1:]:
            lower, upper = smoothing.lower_bound(p, Threat(r, l2=eps)), smoothing.upper_bound(p, Threat(r, l2=eps))
            assert np.all(lower <= p + 1e-15) and np.all(upper >= p - 1e-15)
            assert np.all(lower <= previous_lower + 1e-15) and np.all(upper >= previous_upper - 1e-15)
            previous_lower, previous_upper = lower, upper
        previous_lower, previous_upper = (
            smoothing.lower_bound(p, Threat(r, l2=1e-12)),
            smoothing.upper_bound(p, Threat(r, l2=1e-12)),
        )
        next_lower = smoothing.lower_bound(p, Threat(r + 1, l2=1e-12))
        assert np.all(next_lower <= previous_lower + 1e-15)
    for selection in (None, 1.0):
        plain = _smoothing(selection, 0.3)
        lower, upper = plain.lower_bound(p, Threat(3, l2=0.4)), plain.upper_bound(p, Threat(3, l2=0.4))
        # rounded outward (SPEC.md §8): within 1e-12 of the closed form, on the sound side of it
        assert np.allclose(lower, ndtr(ndtri(p) - 0.4 / 0.3), rtol=0, atol=1e-12)
        assert np.allclose(upper, ndtr(ndtri(p) + 0.4 / 0.3), rtol=0, atol=1e-12)
        assert np.all(lower <= ndtr(ndtri(p) - 0.4 / 0.3) + 1e-16) and np.all(
            upper >= ndtr(ndtri(p) + 0.4 / 0.3) - 1e-16
        )
    assert np.array_equal(smoothing.lower_bound(p, Threat(4, l2=0.0)), p), "no budget, no change"
