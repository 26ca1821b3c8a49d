"""The library against the paper's reference algorithm on the published vote counts (SPEC.md §3, §4, §6).

Everything the reference does is re-implemented here, independently of the library's internals: Clopper–Pearson
bounds through ``scipy.stats.beta.ppf`` (statsmodels' ``proportion_confint(method="beta")``), the class choice
by ``argsort`` of the selection votes, Δ = 1 − P(all changed rows selected), the gaussian closed forms and the
reference's 0.001 radius stepping, and the sparse Neyman–Pearson regions in exact rational arithmetic
(``fractions.Fraction``, standing in for the reference's 1000-bit floats). The library is only called through
its public API: ``certify_votes`` and the ``Certificate`` methods.

Known, intended differences from the reference code (SPEC.md §3, ``Threat.changeable_rows``):
- an empty budget (ε = 0, ra + rd = 0) changes nothing; the reference's gaussian radius still pays Δ(r) at
  ε = 0, so gaussian comparisons use ε > 0 and ε = 0 is checked on its own;
- ra + rd flipped bits change at most ra + rd rows: the library uses Δ(min(r, ra + rd)), the reference Δ(r);
- multi-class gaussian radii are exact, the reference rounds them up to its 0.001 grid.
Data missing makes these tests fail (``shared_dir`` raises FileNotFoundError), never skip.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache, lru_cache

import numpy as np
import pytest
from scipy.stats import beta, norm

import hiersmooth
from hiersmooth import Threat
from hiersmooth.certify.certification import certify_votes
from hiersmooth.certify.votes import load_votes
from hiersmooth.shared_data import shared_dir

ALPHA = 0.01
CIFAR_FILE = "cifar10_resnet50_hierarchical_gaussian_votes.npz"
CORA_FILE = "cora_ml_gat_hierarchical_sparse_votes.npz"

CIFAR_P = Fraction(874, 1024)  # bernoulli p = 1 − 150/1024 (exactly representable as a float)
CIFAR_SIGMA = 0.25
CIFAR_KEPT, CIFAR_ENTITIES = 150, 1024  # Levine–Feizi: keep k = 150 of d = 1024 pixels (subset size 874)
CORA_P, CORA_P_PLUS, CORA_P_MINUS = Fraction(81, 100), Fraction(1, 20), Fraction(4, 5)

GAUSSIAN_ROWS = (1, 2, 3, 4)
SPARSE_ROWS = (1, 2, 3, 4)
SPARSE_ADDED = (0, 1, 2, 3, 5, 8, 13, 21, 34, 41)
SPARSE_DELETED = (0, 1, 2, 3, 4, 6, 10, 16, 25, 40, 61)
STEP = 0.001  # the reference's ε grid for multi-class gaussian radii


def smoothing(selection: dict, noise: dict):
    return hiersmooth.from_config({"selection": selection, "noise": noise})


HIERARCHICAL_GAUSSIAN = {
    "selection": {"kind": "bernoulli", "p": 1 - 150 / 1024},
    "noise": {"kind": "gaussian", "sigma": CIFAR_SIGMA},
}
HIERARCHICAL_SPARSE = {
    "selection": {"kind": "bernoulli", "p": 0.81},
    "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8},
}


# --------------------------------------------------------------------------------------------------------
# Reference: Clopper–Pearson bounds and class choice
# --------------------------------------------------------------------------------------------------------


def cp_lower(k, n, a):
    """statsmodels proportion_confint(k, n, alpha=2a, method="beta")[0]."""
    k = np.asarray(k, dtype=float)
    safe = np.where(k > 0, k, 1.0)
    return np.where(k > 0, beta.ppf(a, safe, n - safe + 1), 0.0)


def cp_upper(k, n, a):
    """statsmodels proportion_confint(k, n, alpha=2a, method="beta")[1]."""
    k = np.asarray(k, dtype=float)
    safe = np.where(k < n, k, n - 1.0)
    return np.where(k < n, beta.ppf(1 - a, safe + 1, n - safe), 1.0)


@dataclass(frozen=True)
class Reference:
    """The reference code's per-point estimates from one votes file."""

    p_binary: np.ndarray  # lower bound of votes[argmax pre_votes] at α
    p_lower: np.ndarray  # lower bound of votes[order[:, -1]] at α/K
    p_upper: np.ndarray  # upper bound of votes[order[:, -2]] at α/K
    correct: np.ndarray
    counts: np.ndarray  # votes, for the all-classes upper bounds


def reference_estimates(path) -> Reference:
    data = np.load(path)
    pre, votes, labels = data["pre_votes"], data["votes"], data["labels"]
    n, classes = int(votes[0].sum()), votes.shape[1]
    index = np.arange(len(votes))
    order = pre.argsort(1)
    a_multi, b_multi = order[:, -1], order[:, -2]
    a_binary = pre.argmax(1)
    return Reference(
        p_binary=cp_lower(votes[index, a_binary], n, ALPHA),
        p_lower=cp_lower(votes[index, a_multi], n, ALPHA / classes),
        p_upper=cp_upper(votes[index, b_multi], n, ALPHA / classes),
        correct=a_binary == labels,
        counts=votes,
    )


def exact(values) -> list[Fraction]:
    """Floats as the exact rationals they are."""
    return [Fraction(float(v)) for v in values]


# --------------------------------------------------------------------------------------------------------
# Reference: exact sparse regions (discrete Neyman–Pearson, hierarchical)
# --------------------------------------------------------------------------------------------------------


def binomial_pmf(n: int, p: Fraction) -> list[Fraction]:
    return [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]


def convolve(f: list[Fraction], g: list[Fraction]) -> list[Fraction]:
    # Integer numerators over one common denominator: exact and much faster than adding Fractions.
    den_f, den_g = math.lcm(*(x.denominator for x in f)), math.lcm(*(x.denominator for x in g))
    num_f = [x.numerator * (den_f // x.denominator) for x in f]
    num_g = [x.numerator * (den_g // x.denominator) for x in g]
    out = [0] * (len(f) + len(g) - 1)
    for i, a in enumerate(num_f):
        for j, b in enumerate(num_g):
            out[i + j] += a * b
    return [Fraction(v, den_f * den_g) for v in out]


@dataclass(frozen=True)
class ExactRegions:
    """Regions q = 0..ra+rd, in DECREASING ratio P_X/P_X̃ (sorted by the exact ratios), with cumulative sums."""

    px: tuple
    pt: tuple
    cum_x: tuple  # cum_x[j] = sum of px[:j]
    cum_t: tuple

    @classmethod
    def build(cls, added: int, deleted: int, p_plus: Fraction, p_minus: Fraction) -> ExactRegions:
        px = convolve(binomial_pmf(added, p_plus), binomial_pmf(deleted, p_minus))
        pt = convolve(binomial_pmf(added, 1 - p_minus), binomial_pmf(deleted, 1 - p_plus))
        assert all(x > 0 for x in px) and all(t > 0 for t in pt)
        assert sum(px) == 1 and sum(pt) == 1
        order = sorted(range(len(px)), key=lambda q: px[q] / pt[q], reverse=True)
        return cls.from_order([px[q] for q in order], [pt[q] for q in order])

    @classmethod
    def from_order(cls, px, pt) -> ExactRegions:
        cum_x, cum_t = [Fraction(0)], [Fraction(0)]
        for x, t in zip(px, pt):
            cum_x.append(cum_x[-1] + x)
            cum_t.append(cum_t[-1] + t)
        return cls(tuple(px), tuple(pt), tuple(cum_x), tuple(cum_t))

    def reversed(self) -> ExactRegions:
        """The same regions in increasing ratio (for the upper bound)."""
        return ExactRegions.from_order(self.px[::-1], self.pt[::-1])

    def take(self, budget: Fraction, scale: Fraction) -> Fraction:
        """Take regions scaled by ``scale`` in order until their scaled P_X reaches ``budget`` (the last one in
        part); the scaled P_X̃ taken."""
        if budget <= 0:
            return Fraction(0)
        if budget >= scale * self.cum_x[-1]:
            return scale * self.cum_t[-1]
        # First j with scale·cum_x[j] >= budget; region j − 1 is the one taken in part.
        j = bisect.bisect_left(self.cum_x, budget / scale)
        rest = budget - scale * self.cum_x[j - 1]
        return scale * self.cum_t[j - 1] + rest * self.pt[j - 1] / self.px[j - 1]


class SparseReference:
    """The reference's hierarchical sparse decision for one smoothing, exact; regions built once per (ra, rd)."""

    def __init__(self, p: Fraction, p_plus: Fraction, p_minus: Fraction, reference: Reference):
        self.p, self.p_plus, self.p_minus = p, p_plus, p_minus
        self.p_binary = exact(reference.p_binary)
        self.p_lower = exact(reference.p_lower)
        self.p_upper = exact(reference.p_upper)
        self.binary_abstain = np.array([not x > Fraction(1, 2) for x in self.p_binary])
        self.multi_abstain = np.array([not a > b for a, b in zip(self.p_lower, self.p_upper)])
        self._regions: dict = {}

    def regions(self, added, deleted):
        if (added, deleted) not in self._regions:
            down = ExactRegions.build(added, deleted, self.p_plus, self.p_minus)
            self._regions[added, deleted] = (down, down.reversed())
        return self._regions[added, deleted]

    def delta(self, rows: int) -> Fraction:
        return 1 - self.p**rows

    def certified(self, rows: int, added: int, deleted: int) -> tuple[np.ndarray, np.ndarray]:
        """(binary, multi-class) certified per point for the threat (r, ra, rd), as the reference decides."""
        if added + deleted == 0:
            return ~self.binary_abstain, ~self.multi_abstain
        delta = self.delta(rows)
        down, up = self.regions(added, deleted)
        scale = 1 - delta
        lower, upper = {}, {}

        def low(p_a):
            if p_a not in lower:
                lower[p_a] = down.take(p_a - delta, scale)
            return lower[p_a]

        def high(p_b):
            if p_b not in upper:
                upper[p_b] = up.take(p_b, scale) + delta
            return upper[p_b]

        binary = np.array(
            [not abstain and low(p) > Fraction(1, 2) for p, abstain in zip(self.p_binary, self.binary_abstain)]
        )
        multi = np.array(
            [not abstain and low(a) > high(b) for a, b, abstain in zip(self.p_lower, self.p_upper, self.multi_abstain)]
        )
        return binary, multi


# --------------------------------------------------------------------------------------------------------
# Reference: gaussian radii and ablation
# --------------------------------------------------------------------------------------------------------


def bernoulli_delta(p: float, rows: int) -> float:
    return 1.0 - p**rows


def reference_binary_radius(p_a: np.ndarray, delta: float, sigma: float) -> np.ndarray:
    """σ(Φ⁻¹((p−Δ)/(1−Δ)) − Φ⁻¹(1/(2(1−Δ)))); −∞ where undefined (p ≤ Δ)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        radius = sigma * (norm.ppf((p_a - delta) / (1 - delta)) - norm.ppf(1 / (2 * (1 - delta))))
    return np.where(np.isnan(radius), -np.inf, radius)


def reference_multiclass_steps(p_lower: np.ndarray, p_upper: np.ndarray, delta: float, sigma: float) -> np.ndarray:
    """k such that ε = k·0.001 is the first grid ε where the multi-class condition fails (reference radius)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        a = norm.ppf((p_lower - delta) / (1 - delta))
        b = norm.ppf(p_upper / (1 - delta))
    steps = np.zeros(len(p_lower), dtype=np.int64)
    alive = np.ones(len(p_lower), dtype=bool)
    k = 0
    while alive.any():
        eps = k * STEP
        with np.errstate(invalid="ignore"):
            holds = (1 - delta) * norm.cdf(a - eps / sigma) > (1 - delta) * norm.cdf(b + eps / sigma) + delta
        steps[alive & ~holds] = k
        alive &= holds
        k += 1
        assert k < 100_000
    return steps


def reference_largest_rows(certified_at, abstain: np.ndarray) -> np.ndarray:
    """Largest r certified (certified_at(r) -> bool per point); 0 if none, −1 where abstaining."""
    largest = np.where(abstain, -1, 0)
    for r in range(1, 1000):
        certified = certified_at(r)
        if not certified.any():
            return largest
        largest = np.where(certified, r, largest)
    raise AssertionError("reference: still certifying at r = 1000")


# --------------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar_path():
    return shared_dir() / "reference" / CIFAR_FILE


@pytest.fixture(scope="module")
def cora_path():
    return shared_dir() / "reference" / CORA_FILE


@pytest.fixture(scope="module")
def cifar_ref(cifar_path):
    return reference_estimates(cifar_path)


@pytest.fixture(scope="module")
def cora_ref(cora_path):
    return reference_estimates(cora_path)


@pytest.fixture(scope="module")
def cifar_gaussian(cifar_path):
    return certify_votes(load_votes(cifar_path), smoothing(**HIERARCHICAL_GAUSSIAN), alpha=ALPHA, runner_up="selection")


@pytest.fixture(scope="module")
def cora_sparse(cora_path):
    return certify_votes(load_votes(cora_path), smoothing(**HIERARCHICAL_SPARSE), alpha=ALPHA, runner_up="selection")


@pytest.fixture(scope="module")
def cora_sparse_reference(cora_ref):
    return SparseReference(CORA_P, CORA_P_PLUS, CORA_P_MINUS, cora_ref)


def accuracy(certified, correct) -> float:
    return float(np.mean(certified & correct))


# --------------------------------------------------------------------------------------------------------
# 0. The reference's estimates are the library's (guards every comparison below)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["cifar", "cora"])
def test_estimates_match_reference(which, cifar_gaussian, cora_sparse, cifar_ref, cora_ref):
    res, ref = (cifar_gaussian, cifar_ref) if which == "cifar" else (cora_sparse, cora_ref)
    np.testing.assert_array_equal(res.correct, ref.correct)
    # The library's bounds are rounded outward (SPEC.md §8): never on the optimistic side of the reference's
    # float64 values by more than their own rounding, and within 1e-11 of them.
    for ours, theirs, side in (
        (res.binary.p_lower, ref.p_binary, -1),
        (res.multiclass.p_lower, ref.p_lower, -1),
        (res.multiclass.p_upper, ref.p_upper, 1),
    ):
        assert np.all(side * (ours - theirs) >= -1e-15)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-11)


# --------------------------------------------------------------------------------------------------------
# 1. SPEC §6 quoted figures
# --------------------------------------------------------------------------------------------------------


def test_spec_figures_cifar(cifar_gaussian):
    res = cifar_gaussian
    assert round(float(np.mean(res.correct)), 3) == 0.891
    for eps, quoted in [(0.25, 0.779), (0.5, 0.686)]:
        assert round(accuracy(res.binary.certified(Threat(rows=1, l2=eps)), res.correct), 3) == quoted, eps


def test_spec_figures_cora(cora_sparse):
    res = cora_sparse
    assert round(float(np.mean(res.correct)), 4) == 0.8617
    for deleted, quoted in [(1, 0.664), (4, 0.549)]:
        threat = Threat(rows=1, added=0, deleted=deleted)
        assert round(accuracy(res.multiclass.certified(threat), res.correct), 3) == quoted, deleted


# --------------------------------------------------------------------------------------------------------
# 2. CIFAR hierarchical gaussian, binary certificate: identical to the reference
# --------------------------------------------------------------------------------------------------------


def test_cifar_gaussian_binary_matches_reference(cifar_gaussian, cifar_ref):
    res, ref = cifar_gaussian, cifar_ref
    lib_radius = res.binary.largest_l2(list(GAUSSIAN_ROWS))
    rng = np.random.default_rng(0)
    for column, r in enumerate(GAUSSIAN_ROWS):
        delta = bernoulli_delta(float(CIFAR_P), r)
        ref_radius = reference_binary_radius(ref.p_binary, delta, CIFAR_SIGMA)
        positive = ref_radius > 0
        assert positive.sum() > 100, r  # the comparison is not vacuous
        np.testing.assert_allclose(lib_radius[positive, column], ref_radius[positive], rtol=0, atol=1e-9)
        assert np.all(lib_radius[~positive, column] == 0), r
        top = float(ref_radius.max()) + 0.05
        grid = np.concatenate([np.arange(1, int(top / 0.01) + 1) * 0.01, rng.uniform(0, top, 100)])
        for eps in grid:
            ref_certified = (ref.p_binary > 0.5) & (ref_radius > eps)
            via_threat = res.binary.certified(Threat(rows=r, l2=float(eps)))
            via_radius = lib_radius[:, column] > eps
            for name, got in [("certified()", via_threat), ("largest_l2", via_radius)]:
                assert np.array_equal(got, ref_certified), (
                    f"r={r} eps={eps}: {name} differs from reference at points {np.flatnonzero(got != ref_certified)}"
                )
                assert accuracy(got, res.correct) == accuracy(ref_certified, ref.correct)


def test_cifar_gaussian_empty_budget_is_not_abstaining(cifar_gaussian):
    """ε = 0 changes nothing: certified iff not abstaining, for every r (the reference would still pay Δ(r))."""
    for cert in cifar_gaussian.certificates:
        for r in (0,) + GAUSSIAN_ROWS:
            np.testing.assert_array_equal(cert.certified(Threat(rows=r, l2=0.0)), ~cert.abstain)


# --------------------------------------------------------------------------------------------------------
# 3. CIFAR hierarchical gaussian, multi-class: exact radii vs the reference's rounded-up grid radii
# --------------------------------------------------------------------------------------------------------


def test_cifar_gaussian_multiclass_vs_reference_grid(cifar_gaussian, cifar_ref):
    res, ref = cifar_gaussian, cifar_ref
    lib_radius = res.multiclass.largest_l2(list(GAUSSIAN_ROWS))
    for column, r in enumerate(GAUSSIAN_ROWS):
        delta = bernoulli_delta(float(CIFAR_P), r)
        steps = reference_multiclass_steps(ref.p_lower, ref.p_upper, delta, CIFAR_SIGMA)
        ref_radius = steps * STEP
        radius = lib_radius[:, column]
        zero = steps == 0
        assert (~zero).sum() > 100, r
        assert np.all(radius[zero] == 0), (r, np.flatnonzero(radius[zero] != 0))
        bad = np.flatnonzero(~zero & ((radius > ref_radius) | (radius <= ref_radius - STEP - 1e-12)))
        assert bad.size == 0, f"r={r}: radii {radius[bad]} vs reference {ref_radius[bad]} at points {bad}"
        # On the grid itself the reference's "radius > ε" is exact; the bound below is the SPEC's (§6).
        for k in range(1, int(steps.max()) + 2):
            eps = k * STEP
            ref_certified = steps > k
            got = res.multiclass.certified(Threat(rows=r, l2=eps))
            assert np.array_equal(got, radius > eps), (r, k)
            assert not np.any(got & ~ref_certified), (r, k, np.flatnonzero(got & ~ref_certified))
            lost = int(np.sum(ref_certified & ref.correct)) - int(np.sum(got & res.correct))
            assert 0 <= lost <= 4, f"r={r} eps={eps}: library certifies {lost} points fewer than the reference"


# --------------------------------------------------------------------------------------------------------
# 4. Cora hierarchical sparse: the grid against the exact reference
# --------------------------------------------------------------------------------------------------------


def test_cora_sparse_grid_matches_exact_reference(cora_sparse, cora_sparse_reference):
    res, ref = cora_sparse, cora_sparse_reference
    grids = {
        "binary": res.binary.certified_bits(SPARSE_ROWS, SPARSE_ADDED, SPARSE_DELETED),
        "multiclass": res.multiclass.certified_bits(SPARSE_ROWS, SPARSE_ADDED, SPARSE_DELETED),
    }
    problems, strict_cells, nonempty = [], 0, 0
    for i, r in enumerate(SPARSE_ROWS):
        for j, ra in enumerate(SPARSE_ADDED):
            for k, rd in enumerate(SPARSE_DELETED):
                expected = dict(zip(grids, ref.certified(r, ra, rd)))
                fewer_rows = dict(zip(grids, ref.certified(ra + rd, ra, rd))) if 0 < ra + rd < r else None
                for name, grid in grids.items():
                    got = grid[:, i, j, k]
                    nonempty += bool(got.any())
                    if fewer_rows is None:
                        if not np.array_equal(got, expected[name]):
                            problems.append(
                                f"{name} (r={r}, ra={ra}, rd={rd}): differs at {np.flatnonzero(got != expected[name])}"
                            )
                    else:
                        strict_cells += bool(np.any(got & ~expected[name]))
                        if np.any(expected[name] & ~got):
                            problems.append(
                                f"{name} (r={r}, ra={ra}, rd={rd}): misses reference points "
                                f"{np.flatnonzero(expected[name] & ~got)}"
                            )
                        if not np.array_equal(got, fewer_rows[name]):
                            problems.append(f"{name} (r={r}, ra={ra}, rd={rd}): differs from reference at r={ra + rd}")
    assert not problems, "\n".join(problems)
    assert nonempty > 100  # the grid reaches well into the certified region
    assert strict_cells > 0  # Δ(min(r, ra+rd)) really certifies more than Δ(r) somewhere


def test_cora_sparse_certified_spot_checks(cora_sparse, cora_sparse_reference):
    res, ref = cora_sparse, cora_sparse_reference
    rng = np.random.default_rng(1)
    cells = [(1, 0, 1), (1, 0, 4), (2, 1, 1), (3, 0, 0), (4, 1, 0), (4, 2, 2), (1, 41, 0), (2, 0, 61)]
    cells += [
        (int(rng.choice(SPARSE_ROWS)), int(rng.choice(SPARSE_ADDED)), int(rng.choice(SPARSE_DELETED)))
        for _ in range(12)
    ]
    threats = [Threat(rows=r, added=ra, deleted=rd) for r, ra, rd in cells]
    for cert, column in zip(res.certificates, (0, 1)):
        many = cert.certified_many(threats)
        for t, (r, ra, rd) in enumerate(cells):
            expected = ref.certified(min(r, ra + rd), ra, rd)[column]
            np.testing.assert_array_equal(cert.certified(threats[t]), expected, err_msg=f"{cert.name} {threats[t]}")
            np.testing.assert_array_equal(many[:, t], expected, err_msg=f"{cert.name} {threats[t]} (certified_many)")


# --------------------------------------------------------------------------------------------------------
# 5. Special cases: Cohen et al., Bojchevski et al., ablation (Scholten et al. 2022, Levine & Feizi)
# --------------------------------------------------------------------------------------------------------


def test_all_gaussian_is_cohen(cifar_path, cifar_ref):
    ref = cifar_ref
    res = certify_votes(
        load_votes(cifar_path),
        smoothing({"kind": "all"}, {"kind": "gaussian", "sigma": CIFAR_SIGMA}),
        ALPHA,
        "selection",
    )
    rows = [1, 2, 7]
    binary = np.maximum(CIFAR_SIGMA * norm.ppf(ref.p_binary), 0.0)
    multi = np.maximum(CIFAR_SIGMA / 2 * (norm.ppf(ref.p_lower) - norm.ppf(ref.p_upper)), 0.0)
    for got, expected in [(res.binary.largest_l2(rows), binary), (res.multiclass.largest_l2(rows), multi)]:
        assert (expected > 0).sum() > 500
        np.testing.assert_allclose(got, np.repeat(expected[:, None], len(rows), axis=1), rtol=0, atol=1e-9)


def test_all_sparse_is_bojchevski(cora_path, cora_ref):
    res = certify_votes(
        load_votes(cora_path),
        smoothing({"kind": "all"}, {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8}),
        ALPHA,
        "selection",
    )
    ref = SparseReference(Fraction(1), CORA_P_PLUS, CORA_P_MINUS, cora_ref)  # p = 1: Δ = 0
    rows, added, deleted = (1, 3), (0, 1, 2, 5, 13, 41), (0, 1, 2, 4, 10, 25, 61)
    for column, cert in enumerate(res.certificates):
        grid = cert.certified_bits(rows, added, deleted)
        assert grid.any()
        for i, r in enumerate(rows):
            for j, ra in enumerate(added):
                for k, rd in enumerate(deleted):
                    expected = ref.certified(r, ra, rd)[column]
                    np.testing.assert_array_equal(
                        grid[:, i, j, k], expected, err_msg=f"{cert.name} (r={r}, ra={ra}, rd={rd})"
                    )


def bernoulli_delta_exact(p: Fraction):
    return lru_cache(maxsize=None)(lambda r: 1 - p**r)


def levine_feizi_delta_exact(kept: int, entities: int):
    """Δ(r) = 1 − (d−r)!(d−k)! / (d!(d−k−r)!), exact (1 once r > d − k)."""
    d, k = entities, kept

    @cache
    def delta(r):
        if r > d - k:
            return Fraction(1)
        return 1 - Fraction(
            math.factorial(d - r) * math.factorial(d - k), math.factorial(d) * math.factorial(d - k - r)
        )

    return delta


ABLATION_CASES = {
    "bernoulli-cifar": (CIFAR_FILE, {"kind": "bernoulli", "p": 1 - 150 / 1024}, bernoulli_delta_exact(CIFAR_P)),
    "bernoulli-cora": (CORA_FILE, {"kind": "bernoulli", "p": 0.81}, bernoulli_delta_exact(CORA_P)),
    "levine-feizi-cifar": (
        CIFAR_FILE,
        {"kind": "subset", "size": CIFAR_ENTITIES - CIFAR_KEPT, "entities": CIFAR_ENTITIES},
        levine_feizi_delta_exact(CIFAR_KEPT, CIFAR_ENTITIES),
    ),
}


@pytest.mark.parametrize("case", list(ABLATION_CASES))
def test_ablation_matches_reference(case):
    file, selection, delta = ABLATION_CASES[case]
    path = shared_dir() / "reference" / file
    ref = reference_estimates(path)
    res = certify_votes(load_votes(path), smoothing(selection, {"kind": "ablation"}), ALPHA, "selection")
    p_binary, p_lower, p_upper = exact(ref.p_binary), exact(ref.p_lower), exact(ref.p_upper)
    half = Fraction(1, 2)

    def binary_at(r):
        return np.array([p - delta(r) > half for p in p_binary])

    def multi_at(r):
        return np.array([a - delta(r) > b + delta(r) for a, b in zip(p_lower, p_upper)])

    binary_abstain = np.array([not p > half for p in p_binary])
    multi_abstain = np.array([not a > b for a, b in zip(p_lower, p_upper)])
    for cert, at, abstain in [(res.binary, binary_at, binary_abstain), (res.multiclass, multi_at, multi_abstain)]:
        expected = reference_largest_rows(at, abstain)
        assert expected.max() >= 1
        got = cert.largest_rows()
        bad = np.flatnonzero(got != expected)
        assert bad.size == 0, f"{cert.name}: largest_rows {got[bad]} vs reference {expected[bad]} at points {bad}"
        for r in range(0, int(expected.max()) + 2):
            reference = ~abstain if r == 0 else at(r)
            got_r = cert.certified(Threat(rows=r))
            assert np.array_equal(got_r, reference), (cert.name, r)
            assert accuracy(got_r, res.correct) == accuracy(reference, ref.correct), (cert.name, r)


# --------------------------------------------------------------------------------------------------------
# 6. The sound runner-up bounds every other class
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["cifar", "cora"])
def test_sound_runner_up_bounds_every_other_class(which, cifar_path, cora_path, cifar_ref, cora_ref):
    path, ref, config = (
        (cifar_path, cifar_ref, HIERARCHICAL_GAUSSIAN)
        if which == "cifar"
        else (cora_path, cora_ref, HIERARCHICAL_SPARSE)
    )
    res = certify_votes(load_votes(path), smoothing(**config), ALPHA, "sound")
    points, classes = ref.counts.shape
    n = int(ref.counts[0].sum())
    uppers = cp_upper(ref.counts, n, ALPHA / classes)
    others = np.where(np.arange(classes)[None, :] == res.selected[:, None], -np.inf, uppers)
    assert np.all(res.runner_up_class != res.selected)
    assert np.all(res.multiclass.p_upper >= others.max(axis=1)), np.flatnonzero(
        res.multiclass.p_upper < others.max(axis=1)
    )
    np.testing.assert_allclose(res.multiclass.p_upper, others.max(axis=1), rtol=0, atol=1e-11)  # rounded up (§8)
