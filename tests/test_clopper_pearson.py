"""Clopper–Pearson bounds against SciPy's exact binomial test interval and against the binomial tail itself."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, binomtest

from hiersmooth.certify.bounds import clopper_pearson_lower, clopper_pearson_upper


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 20000), fraction=st.floats(0, 1), alpha=st.floats(1e-6, 0.2))
def test_one_sided_bounds_are_the_two_sided_exact_interval_at_twice_alpha(n, fraction, alpha):
    k = int(round(fraction * n))
    interval = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
    assert clopper_pearson_lower(k, n, alpha) == pytest.approx(interval.low, abs=1e-10)
    assert clopper_pearson_upper(k, n, alpha) == pytest.approx(interval.high, abs=1e-10)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5000), fraction=st.floats(0, 1), alpha=st.floats(1e-6, 0.2))
def test_bounds_solve_the_binomial_tail_equations(n, fraction, alpha):
    """lower solves P(Bin(n, p) >= k) = α; upper solves P(Bin(n, p) <= k) = α."""
    k = int(round(fraction * n))
    lower, upper = clopper_pearson_lower(k, n, alpha), clopper_pearson_upper(k, n, alpha)
    # Rounded outward (SPEC.md §8): the tail at the bound is on the sound side of α, and 1e-11 inward it is past α.
    if k > 0:
        assert binom.sf(k - 1, n, lower) <= alpha * (1 + 1e-9)
        assert binom.sf(k - 1, n, lower + 1e-11) >= alpha * (1 - 1e-9)
    else:
        assert lower == 0
    if k < n:
        assert binom.cdf(k, n, upper) <= alpha * (1 + 1e-9)
        assert binom.cdf(k, n, upper - 1e-11) >= alpha * (1 - 1e-9)
    else:
        assert upper == 1
    assert lower <= k / n <= upper


def test_vectorised_and_bad_alpha():
    k = np.array([0, 5, 10])
    assert clopper_pearson_lower(k, 10, 0.05).shape == (3,)
    for alpha in (0, 1, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            clopper_pearson_lower(k, 10, alpha)
