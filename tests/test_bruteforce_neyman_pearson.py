"""Brute-force check that the certificate bounds are the exact Neyman–Pearson worst cases.

How the check works (it uses none of the library's formulas: no Δ, no binomial regions, no Theorem 1):
for tiny inputs (N ≤ 3 rows, D ≤ 2 bits) we write down the whole distribution Ψ_X of the smoothed sample
Z = [W | τ] for every X ∈ {0,1}^{N×D}. For each selection pattern τ we multiply its probability by a per-row
kernel: the identity for an unselected row, and the sparse bit-flip kernel or the ablation token for a
selected one. For every pair (X, X̃) that the threat allows, we solve min / max E_X̃[h] subject to
E_X[h] = p over all h: Z → [0, 1] exactly. This is a fractional knapsack over outcomes ordered by the
likelihood ratio P_X / P_X̃. The worst case is taken over all such pairs. lower_bound / upper_bound must
equal these numbers, or be on the safe side of them where the adversary cannot spend the whole threat.
"""

import itertools
import math
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hiersmooth
from hiersmooth import Threat

TOL = 1e-9


# --------------------------------------------------------------------------------------------------------
# Brute force
# --------------------------------------------------------------------------------------------------------


def selection_patterns(selection: dict, n: int):
    """[(τ, P(τ))] for every τ ∈ {0,1}^n that has positive probability."""
    patterns = []
    for tau in itertools.product((0, 1), repeat=n):
        if selection["kind"] == "all":
            prob = float(all(tau))
        elif selection["kind"] == "subset":
            prob = 1 / math.comb(n, selection["size"]) if sum(tau) == selection["size"] else 0.0
        else:
            p = selection["p"] if isinstance(selection["p"], list) else [selection["p"]] * n
            prob = math.prod(p_i if t else 1 - p_i for p_i, t in zip(p, tau))
        if prob > 0:
            patterns.append((tau, prob))
    return patterns


def row_kernels(noise: dict, d: int):
    """(unselected, selected) kernels K[x_row, w_row] over the 2^d row values. Ablation adds a token column."""
    values = 2**d
    if noise["kind"] == "ablation":
        unselected = np.hstack([np.eye(values), np.zeros((values, 1))])
        selected = np.zeros((values, values + 1))
        selected[:, -1] = 1.0
        return unselected, selected
    # One bit: 0 → 1 with p_plus, 1 → 0 with p_minus. Bits are independent, so a row's kernel is their
    # Kronecker product (first bit most significant, matching itertools.product below).
    bit = np.array([[1 - noise["p_plus"], noise["p_plus"]], [noise["p_minus"], 1 - noise["p_minus"]]])
    selected = np.ones((1, 1))
    for _ in range(d):
        selected = np.kron(selected, bit)
    return np.eye(values), selected


def distribution_table(config: dict, n: int, d: int) -> np.ndarray:
    """P[x, z] = Ψ_X(z) for every X (rows in itertools.product order) and outcome z = (W, τ)."""
    unselected, selected = row_kernels(config["noise"], d)
    blocks = []  # one block of outcomes per τ: τ is part of the outcome (indicator column)
    for tau, prob in selection_patterns(config["selection"], n):
        block = np.ones((1, 1))
        for t in tau:  # rows are independent given τ
            block = np.kron(block, selected if t else unselected)
        blocks.append(prob * block)
    table = np.hstack(blocks)
    return table[:, table.max(axis=0) > 0]  # drop outcomes that no X can produce


@cache
def threat_pairs(n: int, d: int, rows: int, added, deleted):
    """Indices (i, j) of every pair X = inputs[i], X̃ = inputs[j] that the threat allows."""
    x = np.array(list(itertools.product((0, 1), repeat=n * d))).reshape(-1, n, d)
    clean, perturbed = x[:, None], x[None, :]
    allowed = (clean != perturbed).any(axis=3).sum(axis=2) <= rows
    if added is not None:  # binary threat: also bound the bits turned 0→1 and 1→0 over all rows together
        allowed &= ((clean == 0) & (perturbed == 1)).sum(axis=(2, 3)) <= added
        allowed &= ((clean == 1) & (perturbed == 0)).sum(axis=(2, 3)) <= deleted
    return np.nonzero(allowed)


def neyman_pearson(a: np.ndarray, b: np.ndarray, p: float, maximise: bool) -> np.ndarray:
    """Exact min (or max) of E_b[h] over h: Z → [0,1] with E_a[h] = p, for each row pair of a, b (pairs × outcomes).

    Greedy fractional knapsack. For the min, take outcomes in decreasing order of a/b: b = 0 < a first
    (ratio ∞), and never take outcomes with a = 0. For the max, take outcomes with a = 0 first, for free,
    then increasing a/b, with b = 0 < a last. Keep taking until the a-mass reaches p; the last outcome
    is taken in part.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = a / b  # ∞ where b = 0 < a; the a = 0 outcomes are handled separately below
        if maximise:
            key = np.where(a == 0, -np.inf, ratio)
        else:
            key = np.where(a == 0, np.inf, -ratio)
        order = np.argsort(key, axis=1, kind="stable")
        a = np.take_along_axis(a, order, axis=1)
        b = np.take_along_axis(b, order, axis=1)
        before = np.cumsum(a, axis=1) - a  # a-mass of the outcomes ranked earlier
        taken = np.clip((p - before) / a, 0.0, 1.0)  # fraction of each outcome that h takes
    taken = np.where(a == 0, 1.0 if maximise else 0.0, taken)
    return (taken * b).sum(axis=1)


def brute_bounds(config: dict, n: int, d: int, threat: Threat, ps):
    """(min over pairs of the least E_X̃[h], max over pairs of the greatest E_X̃[h]) for each p in ps."""
    table = distribution_table(config, n, d)
    i, j = threat_pairs(n, d, threat.rows, threat.added, threat.deleted)
    a, b = table[i], table[j]
    lower = np.array([neyman_pearson(a, b, p, maximise=False).min() for p in ps])
    upper = np.array([neyman_pearson(a, b, p, maximise=True).max() for p in ps])
    return lower, upper


# --------------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------------


def probe_points(smoothing, r: int, extra) -> np.ndarray:
    """0, 1, ½, the random extras and points at and around Δ(k) and 1 − Δ(k), for k ≤ r."""
    points = [0.0, 1.0, 0.5, *extra]
    for k in range(r + 1):
        delta = float(smoothing.delta(k))
        points += [delta, delta - 1e-7, delta + 1e-7, 1 - delta, 1 - delta - 1e-7, 1 - delta + 1e-7]
    return np.clip(np.array(points), 0.0, 1.0)


def budget_fits(noise_kind: str, threat: Threat, n: int, d: int) -> bool:
    """Whether one X̃ can spend the whole threat, so that the library must be exact (not just sound).

    The library's worst case changes r' = min(r, ra + rd) rows (those least likely to be selected) and
    flips all ra + rd bits in them. One X̃ does this when each of the r' rows gets at least one flip
    (r' ≤ ra + rd: yes) and the ra + rd flips fit into r' rows of D bits. If r' = ra + rd, each row
    gets one flip. If r' = r, this needs ra + rd ≤ r·D. So, with r ≤ N (as drawn here), the condition is
    ra + rd ≤ min(r, N)·D = r·D. Enumerating every X gives zeros to add to and ones to delete from. Using
    less of the budget is never worse for the adversary. When ra + rd > r·D (for example r = 0 with bits
    to flip), the whole budget cannot be spent, and the library is only required to be sound.
    Under ablation the changed values do not matter, only which rows change. One flip per row then
    reaches r' rows within any bit budget, so ablation is exact whenever r ≤ N (and D ≥ 1).
    """
    if noise_kind == "ablation":
        return threat.rows <= n
    return threat.rows <= n and threat.added + threat.deleted <= min(threat.rows, n) * d


# The bounds are monotone in p and can be very steep: with p_plus ~ 1e-7, a slope of ~1e14 near p = 1. A
# rounding error of 1e-16 in a cumulative mass then moves the value a lot. So the brute force is evaluated
# at p − η and p + η, and the library's value at p has to lie between the two (± TOL). Where the bound is
# well conditioned this is the same as |lib − brute| ≤ TOL. Where it is steep, the window is the honest
# uncertainty of float64. η = 1e-12 is far above the rounding of a cumulative sum of ≤ 1000 masses.
ETA = 1e-12


def check_against_brute_force(config: dict, n: int, d: int, threat: Threat, extra_ps=()):
    smoothing = hiersmooth.from_config({**config, "indicator": True})
    ps = probe_points(smoothing, threat.rows, extra_ps)
    lib_lower = smoothing.lower_bound(ps, threat)
    lib_upper = smoothing.upper_bound(ps, threat)
    lower_below, upper_below = brute_bounds(config, n, d, threat, ps - ETA)
    lower_above, upper_above = brute_bounds(config, n, d, threat, ps + ETA)
    context = (
        f"config={config} N={n} D={d} threat={threat}\np={ps}\nlib_lower={lib_lower}\nbrute_lower={lower_above}"
        f"\nlib_upper={lib_upper}\nbrute_upper={upper_below}"
    )
    # Always sound: never more optimistic than the true worst case.
    assert np.all(lib_lower <= lower_above + TOL), f"unsound lower bound\n{context}"
    assert np.all(lib_upper >= upper_below - TOL), f"unsound upper bound\n{context}"
    if budget_fits(config["noise"]["kind"], threat, n, d):  # and exact when the adversary can spend the whole threat
        assert np.all(lib_lower >= lower_below - TOL), f"lower bound not tight\n{context}"
        assert np.all(lib_upper <= upper_above + TOL), f"upper bound not tight\n{context}"


# --------------------------------------------------------------------------------------------------------
# Hypothesis draws
# --------------------------------------------------------------------------------------------------------

selection_probability = st.one_of(st.just(1.0), st.floats(0.05, 1.0))


@st.composite
def cases(draw, selection_kind: str, noise_kind: str):
    n = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2))
    if selection_kind == "bernoulli":
        selection = {"kind": "bernoulli", "p": draw(selection_probability)}
    elif selection_kind == "bernoulli_per_row":
        selection = {"kind": "bernoulli", "p": draw(st.lists(selection_probability, min_size=n, max_size=n))}
    elif selection_kind == "subset":
        selection = {"kind": "subset", "size": draw(st.integers(1, n)), "entities": n}
    else:
        selection = {"kind": "all"}
    r = draw(st.integers(0, n))
    if noise_kind == "sparse":
        # Flip probabilities are exactly 0 or at least 1e-12 (the library refuses 0 < p < 1e-300, where
        # scipy's binomial pmf overflows). Values near float underflow would also make the brute force and
        # the library round masses like p_plus**2 to zero differently.
        p_plus = draw(st.one_of(st.just(0.0), st.floats(1e-12, 0.9)))
        p_minus = draw(st.one_of(st.just(0.0), st.floats(1e-12, 0.98 - p_plus)))
        noise = {"kind": "sparse", "p_plus": p_plus, "p_minus": p_minus}
        threat = Threat(rows=r, added=draw(st.integers(0, 2)), deleted=draw(st.integers(0, 2)))
    else:
        noise = {"kind": "ablation"}
        if draw(st.booleans()):
            threat = Threat(rows=r)
        else:  # ablation also accepts a binary threat (the bit budget then only limits the rows)
            threat = Threat(rows=r, added=draw(st.integers(0, 2)), deleted=draw(st.integers(0, 2)))
    extra = draw(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=4))
    return {"selection": selection, "noise": noise}, n, d, threat, extra


@pytest.mark.parametrize("noise_kind", ["sparse", "ablation"])
@pytest.mark.parametrize("selection_kind", ["bernoulli", "bernoulli_per_row", "subset", "all"])
@given(data=st.data())
@settings(max_examples=30, deadline=None)
def test_bounds_equal_brute_force_worst_case(selection_kind, noise_kind, data):
    config, n, d, threat, extra = data.draw(cases(selection_kind, noise_kind))
    check_against_brute_force(config, n, d, threat, extra)


# --------------------------------------------------------------------------------------------------------
# Explicit cases
# --------------------------------------------------------------------------------------------------------


def test_brute_force_oracle_sanity():
    """The oracle itself: Ψ_X sums to 1, no threat gives p back, and the extremes are 0 and 1."""
    config = {
        "selection": {"kind": "bernoulli", "p": [0.3, 0.8]},
        "noise": {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.4},
    }
    table = distribution_table(config, 2, 2)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    ps = [0.0, 0.2, 0.7, 1.0]
    lower, upper = brute_bounds(config, 2, 2, Threat(rows=2, added=0, deleted=0), ps)
    np.testing.assert_allclose(lower, ps, atol=1e-12)
    np.testing.assert_allclose(upper, ps, atol=1e-12)
    # One row, ablation, p_sel = 0.5, one changed row: an unselected row reveals x exactly (mass ½),
    # so the least E_X̃[h] is max(0, p − ½) and the greatest min(1, p + ½).
    ablation = {"selection": {"kind": "bernoulli", "p": 0.5}, "noise": {"kind": "ablation"}}
    lower, upper = brute_bounds(ablation, 1, 1, Threat(rows=1), ps)
    np.testing.assert_allclose(lower, [0.0, 0.0, 0.2, 0.5], atol=1e-12)
    np.testing.assert_allclose(upper, [0.5, 0.7, 1.0, 1.0], atol=1e-12)


@pytest.mark.parametrize("probabilities", [[0.9, 0.5, 0.7], [0.4, 1.0, 0.6], [1.0, 1.0, 0.3]])
@pytest.mark.parametrize(
    "noise, threat",
    [
        ({"kind": "ablation"}, Threat(rows=1)),
        ({"kind": "ablation"}, Threat(rows=2)),
        ({"kind": "sparse", "p_plus": 0.2, "p_minus": 0.5}, Threat(rows=1, added=1, deleted=0)),
        ({"kind": "sparse", "p_plus": 0.2, "p_minus": 0.5}, Threat(rows=2, added=1, deleted=1)),
    ],
)
def test_per_row_worst_case_changes_least_selected_rows(probabilities, noise, threat):
    """With one p_i per row, the adversary changes whichever rows are least likely to be smoothed."""
    check_against_brute_force(
        {"selection": {"kind": "bernoulli", "p": probabilities}, "noise": noise}, 3, 1, threat, [0.3, 0.85]
    )


FULL_SELECTIONS = [
    {"kind": "all"},
    {"kind": "bernoulli", "p": 1.0},
    {"kind": "bernoulli", "p": [1.0, 1.0]},
    {"kind": "subset", "size": 2, "entities": 2},
]
PURE_NOISE_CASES = [
    ({"kind": "sparse", "p_plus": 0.1, "p_minus": 0.4}, Threat(rows=1, added=1, deleted=0)),
    ({"kind": "sparse", "p_plus": 0.1, "p_minus": 0.4}, Threat(rows=2, added=1, deleted=2)),
    ({"kind": "sparse", "p_plus": 0.0, "p_minus": 0.7}, Threat(rows=2, added=2, deleted=1)),
    ({"kind": "sparse", "p_plus": 0.3, "p_minus": 0.0}, Threat(rows=1, added=1, deleted=1)),
    ({"kind": "ablation"}, Threat(rows=2)),
]


@pytest.mark.parametrize("selection", FULL_SELECTIONS)
@pytest.mark.parametrize("noise, threat", PURE_NOISE_CASES)
def test_full_selection_is_pure_noise(selection, noise, threat):
    """Selecting every row (all, p = 1, subset m = N) gives exactly the bound of the noise alone."""
    n, d = 2, 2
    ps = np.linspace(0.0, 1.0, 41)
    pure_lower, pure_upper = brute_bounds({"selection": {"kind": "all"}, "noise": noise}, n, d, threat, ps)
    smoothing = hiersmooth.from_config({"selection": selection, "noise": noise, "indicator": True})
    np.testing.assert_allclose(smoothing.lower_bound(ps, threat), pure_lower, rtol=0, atol=TOL)
    np.testing.assert_allclose(smoothing.upper_bound(ps, threat), pure_upper, rtol=0, atol=TOL)
    if noise["kind"] == "ablation":  # every row ablated: nothing leaks, the bound is p itself
        np.testing.assert_allclose(pure_lower, ps, atol=1e-12)
        np.testing.assert_allclose(pure_upper, ps, atol=1e-12)


GRID_CONFIGS = [
    {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.6}},
    {
        "selection": {"kind": "bernoulli", "p": [0.9, 0.6, 0.75, 1.0]},
        "noise": {"kind": "sparse", "p_plus": 0.2, "p_minus": 0.3},
    },
    {
        "selection": {"kind": "subset", "size": 3, "entities": 5},
        "noise": {"kind": "sparse", "p_plus": 0.0, "p_minus": 0.5},
    },
    {"selection": {"kind": "all"}, "noise": {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.0}},
    {"selection": {"kind": "bernoulli", "p": 0.7}, "noise": {"kind": "ablation"}},
    {"selection": {"kind": "subset", "size": 2, "entities": 4}, "noise": {"kind": "ablation"}},
]
P_GRID = np.linspace(0.0, 1.0, 51)
BUDGETS = range(4)


def _grid(config):
    """lower[r, ra, rd, p] and upper[...] from the library over the budget grid."""
    smoothing = hiersmooth.from_config({**config, "indicator": True})
    if config["noise"]["kind"] == "ablation":
        lower = np.array([smoothing.lower_bound(P_GRID, Threat(rows=r)) for r in BUDGETS])[:, None, None]
        upper = np.array([smoothing.upper_bound(P_GRID, Threat(rows=r)) for r in BUDGETS])[:, None, None]
        return lower, upper
    threats = [[[Threat(rows=r, added=ra, deleted=rd) for rd in BUDGETS] for ra in BUDGETS] for r in BUDGETS]
    lower = np.array([[[smoothing.lower_bound(P_GRID, t) for t in row] for row in plane] for plane in threats])
    upper = np.array([[[smoothing.upper_bound(P_GRID, t) for t in row] for row in plane] for plane in threats])
    return lower, upper


@pytest.mark.parametrize("config", GRID_CONFIGS)
def test_bounds_monotone_in_budget(config):
    """A larger budget (r, ra or rd) never raises the lower bound or lowers the upper bound; both rise with p."""
    lower, upper = _grid(config)
    for axis in range(3):
        assert np.all(np.diff(lower, axis=axis) <= 1e-12), f"lower bound grows with budget axis {axis}"
        assert np.all(np.diff(upper, axis=axis) >= -1e-12), f"upper bound shrinks with budget axis {axis}"
    assert np.all(np.diff(lower, axis=3) >= -1e-12) and np.all(np.diff(upper, axis=3) >= -1e-12)


@pytest.mark.parametrize("config", GRID_CONFIGS)
def test_bounds_bracket_p(config):
    """0 ≤ lower_bound(p) ≤ p ≤ upper_bound(p) ≤ 1, with equality to p when nothing can change."""
    lower, upper = _grid(config)
    assert np.all(lower <= P_GRID + 1e-12) and np.all(lower >= 0)
    assert np.all(upper >= P_GRID - 1e-12) and np.all(upper <= 1)
    np.testing.assert_allclose(lower[0, 0, 0], P_GRID, atol=1e-12)  # r = 0 (and ra = rd = 0)
    np.testing.assert_allclose(upper[0, 0, 0], P_GRID, atol=1e-12)


def test_no_changeable_row_means_no_change():
    """r = 0 leaves the input as it is, whatever bit budget comes with it: the bounds are p itself."""
    p = np.linspace(0, 1, 11)
    for selection in ({"kind": "bernoulli", "p": 0.7}, {"kind": "all"}):
        smoothing = hiersmooth.from_config(
            {"selection": selection, "noise": {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.3}}
        )
        for added, deleted in ((1, 0), (0, 3), (2, 2)):
            threat = Threat(rows=0, added=added, deleted=deleted)
            assert np.allclose(smoothing.lower_bound(p, threat), p, rtol=0, atol=1e-15)
            assert np.allclose(smoothing.upper_bound(p, threat), p, rtol=0, atol=1e-15)
