"""Statistical tests of the sampling half: draws from Ψ_X (SPEC.md §2) against their definition.

Every expected value here is computed from the definition alone (binomial / normal / hypergeometric laws), never
from the library's own code. Seeds are fixed, so the suite is deterministic; each band is a normal-approximation
band of ``z`` standard errors with ``z`` chosen so that a *correct* sampler fails a whole check (all of its
comparisons together) with probability about 1e-6. Set ``HIERSMOOTH_TEST_SEED`` to another integer to redraw every
seed and confirm the bands are not tuned to one stream.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import hiersmooth as hs
from hiersmooth.shared_data import shared_dir
from hiersmooth.smoothing.bit_flips import bernoulli_positions

pytestmark = [
    pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state"),
    pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled"),
]

SEED = int(os.environ.get("HIERSMOOTH_TEST_SEED", "0"))
FAMILY_ERROR = 1e-6  # probability that a correct sampler fails one check (all of its comparisons together)


# ----------------------------------------------------------------------------------------------------------------
# helpers


def gen(k: int) -> torch.Generator:
    """A fresh generator for the k-th stream of this test run."""
    return torch.Generator().manual_seed(100_003 * SEED + k)


def z_band(comparisons: int = 1) -> float:
    """Two-sided normal quantile for ``comparisons`` simultaneous comparisons at family error FAMILY_ERROR (≈ 5)."""
    return float(stats.norm.isf(FAMILY_ERROR / (2 * max(1, comparisons))))


def assert_binomial(successes, trials, p, what: str) -> None:
    """Each successes[i] ~ Binomial(trials[i], p[i]): within z standard errors of trials·p (exact when p ∈ {0, 1})."""
    successes, trials, p = (np.asarray(a, dtype=float) for a in np.broadcast_arrays(successes, trials, p))
    assert np.all(trials > 0), f"{what}: some comparison has no trials"
    z = z_band(successes.size)
    expected = trials * p
    se = np.sqrt(trials * p * (1 - p))
    off = np.abs(successes - expected) - z * se
    worst = int(np.argmax(off))
    assert off.flat[worst] <= 1e-9, (
        f"{what}: {successes.flat[worst]:.0f} of {trials.flat[worst]:.0f} "
        f"(rate {successes.flat[worst] / trials.flat[worst]:.5f}), expected p = {p.flat[worst]:.5f} "
        f"± {z:.2f} SE = ±{z * se.flat[worst] / trials.flat[worst]:.5f} (entry {worst} of {successes.size})"
    )


def assert_same_rate(a, n_a, b, n_b, what: str) -> None:
    """Two-proportion z-test: a/n_a and b/n_b estimate the same rate."""
    a, n_a, b, n_b = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(a, n_a, b, n_b))
    pooled = (a + b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = np.abs(a / n_a - b / n_b)
    z = z_band(a.size)
    off = diff - z * se
    worst = int(np.argmax(off))
    assert off.flat[worst] <= 1e-12, (
        f"{what}: rates {a.flat[worst] / n_a.flat[worst]:.5f} vs {b.flat[worst] / n_b.flat[worst]:.5f} differ by "
        f"more than {z:.2f} SE"
    )


def binary_features(rows: int, cols: int, density: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(1_000 * SEED + seed)
    x = (rng.random((rows, cols)) < density).astype(np.float32)
    x[0] = 0  # an all-zero row
    x[1] = 1  # an all-one row
    return torch.from_numpy(x)


def smoothing(selection: dict, noise: dict, **extra):
    return hs.from_config({"selection": selection, "noise": noise, **extra})


BERNOULLI = {"kind": "bernoulli", "p": 0.6}


# ----------------------------------------------------------------------------------------------------------------
# 1. selection


def masks_from_indicator(selection: dict, entities: int, n: int, seed: int) -> np.ndarray:
    """(n, N) selection masks read off the indicator column of ablation samples (x is never 0, the token is 0)."""
    s = smoothing(selection, {"kind": "ablation"}, indicator=True)
    x = torch.full((entities, 1), 7.0)
    z = s.sample(x, n, gen(seed))
    assert z.shape == (n, entities, 2)
    tau = z[..., 1]
    assert set(torch.unique(tau).tolist()) <= {0.0, 1.0}
    mask = tau.bool()
    # the indicator is the selection: selected rows carry the token, the others x
    assert torch.equal(z[..., 0], torch.where(mask, 0.0, 7.0))
    return mask.numpy()


def test_bernoulli_selection_frequency_per_row_and_independence():
    p, entities, n = 0.3, 40, 20_000
    mask = masks_from_indicator({"kind": "bernoulli", "p": p}, entities, n, seed=1)
    assert_binomial(mask.sum(axis=0), n, p, "per-row selection frequency, scalar p")
    # rows independent of each other: every pair selected together with probability p²
    both = mask.T.astype(np.int64) @ mask.astype(np.int64)
    pairs = both[np.triu_indices(entities, 1)]
    assert_binomial(pairs, n, p * p, "pair (i, j) selected together")
    # samples independent of each other: a row selected in sample k and in sample k+1 with probability p²
    consecutive = (mask[:-1] & mask[1:]).sum(axis=0)
    assert_binomial(consecutive, n - 1, p * p, "row selected in two consecutive samples")
    # the number of selected rows of a sample ~ Binomial(N, p): chi-square against its pmf
    counts = np.bincount(mask.sum(axis=1), minlength=entities + 1)
    chi2_goodness(counts, stats.binom(entities, p).pmf(np.arange(entities + 1)), "rows per sample ~ Binomial(N, p)")


def chi2_goodness(observed, probabilities, what: str, min_expected: float = 20.0) -> None:
    """Chi-square goodness of fit, pooling cells with expected count < min_expected into one."""
    observed = np.asarray(observed, dtype=float)
    expected = np.asarray(probabilities, dtype=float) * observed.sum()
    small = expected < min_expected
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        assert obs[-1] == 0, f"{what}: {obs[-1]:.0f} draws in cells of probability 0"
        obs, exp = obs[:-1], exp[:-1]
    statistic = float(((obs - exp) ** 2 / exp).sum())
    p_value = float(stats.chi2.sf(statistic, len(obs) - 1))
    assert p_value > FAMILY_ERROR, f"{what}: chi-square {statistic:.1f} on {len(obs) - 1} dof, p = {p_value:.2e}"


def test_bernoulli_selection_per_row_probabilities():
    p = [0.02, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 0.99, 1.0, 0.33]
    n = 20_000
    mask = masks_from_indicator({"kind": "bernoulli", "p": p}, len(p), n, seed=2)
    assert_binomial(mask.sum(axis=0), n, np.array(p), "per-row selection frequency, per-row p")
    assert mask[:, p.index(1.0)].all(), "a row with p_i = 1 must always be selected"
    # still independent across rows with different p_i
    both = (mask[:, 3] & mask[:, 6]).sum()
    assert_binomial(both, n, 0.5 * 0.9, "rows 3 and 6 selected together")


def test_subset_selection_exact_size_and_uniform():
    entities, m, n = 9, 3, 30_000
    for config in ({"kind": "subset", "size": m}, {"kind": "subset", "size": m, "entities": entities}):
        mask = masks_from_indicator(config, entities, n, seed=3)
        assert np.all(mask.sum(axis=1) == m), "subset must select exactly m rows in every sample"
        assert_binomial(mask.sum(axis=0), n, m / entities, "per-row inclusion frequency m/N")
        both = mask.T.astype(np.int64) @ mask.astype(np.int64)
        pairs = both[np.triu_indices(entities, 1)]
        assert_binomial(pairs, n, m * (m - 1) / (entities * (entities - 1)), "pair inclusion m(m−1)/(N(N−1))")
        # every m-subset equally likely: C(9, 3) = 84 cells, chi-square against uniform
        codes = (mask * (1 << np.arange(entities))).sum(axis=1)
        _, counts = np.unique(codes, return_counts=True)
        assert len(counts) == math.comb(entities, m), "some m-subset never drawn"
        chi2_goodness(counts, np.full(len(counts), 1 / len(counts)), "m-subsets uniform")


def test_subset_edge_sizes():
    assert masks_from_indicator({"kind": "subset", "size": 5}, 5, 50, seed=4).all(), "m = N selects every row"
    mask = masks_from_indicator({"kind": "subset", "size": 1}, 6, 6_000, seed=5)
    assert np.all(mask.sum(axis=1) == 1)
    assert_binomial(mask.sum(axis=0), 6_000, 1 / 6, "m = 1: each row chosen 1/N of the time")


def test_all_selects_every_row():
    s = smoothing({"kind": "all"}, {"kind": "gaussian", "sigma": 0.5})
    assert s.indicator is False, "indicator defaults to off for `all`"
    x = torch.rand(12, 3, generator=gen(6))
    z = s.sample(x, 200, gen(7))
    assert z.shape == (200, 12, 3), "no indicator column when the indicator is off"
    assert torch.all(z != x), "`all` must noise every value"
    s_on = smoothing({"kind": "all"}, {"kind": "gaussian", "sigma": 0.5}, indicator=True)
    z = s_on.sample(x, 50, gen(8))
    assert z.shape == (50, 12, 4) and torch.all(z[..., -1] == 1)
    assert masks_from_indicator({"kind": "all"}, 10, 20, seed=9).all()
    # bernoulli with p = 1 is the same
    assert masks_from_indicator({"kind": "bernoulli", "p": 1.0}, 10, 20, seed=10).all()


def test_indicator_defaults():
    assert smoothing(BERNOULLI, {"kind": "ablation"}).indicator is True
    assert smoothing({"kind": "subset", "size": 2}, {"kind": "ablation"}).indicator is True
    s = smoothing(BERNOULLI, {"kind": "gaussian", "sigma": 1.0}, indicator=False)
    assert s.sample(torch.rand(4, 3), 5, gen(11)).shape == (5, 4, 3)
    assert s.sample(torch.rand(3, 4, 5), 5, gen(12)).shape == (5, 3, 4, 5)


# ----------------------------------------------------------------------------------------------------------------
# 2–3. gaussian noise: indicator = selection, moments, normality, image layout


def test_gaussian_indicator_equals_selection_dense():
    p, sigma, n = 0.45, 0.3, 2_000
    x = torch.rand(25, 4, generator=gen(20)) * 4 - 2
    z = smoothing({"kind": "bernoulli", "p": p}, {"kind": "gaussian", "sigma": sigma}).sample(x, n, gen(21))
    assert z.shape == (n, 25, 5) and z.dtype == x.dtype
    tau = z[..., -1]
    assert set(torch.unique(tau).tolist()) <= {0.0, 1.0}
    tau = tau.bool()
    w = z[..., :4]
    unselected = w[~tau]
    assert torch.equal(unselected, x.expand(n, -1, -1)[~tau]), "unselected rows must equal x exactly"
    changed = (w != x).any(dim=-1)
    assert torch.equal(changed, tau), (
        "a selected row keeps x only with probability ~0; τ must mark exactly the changed rows"
    )
    # almost every single value of a selected row changed (a float32 collision needs |σ·ε| < ulp/2)
    assert (w[tau] != x.expand(n, -1, -1)[tau]).float().mean() > 0.999
    assert_binomial(tau.sum(dim=0).numpy(), n, p, "gaussian: per-row selection frequency")


def test_gaussian_moments_and_normality():
    p, sigma, n, entities, d = 0.5, 0.7, 6_000, 20, 5
    x = torch.randn(entities, d, generator=gen(22), dtype=torch.float64) * 3
    z = smoothing({"kind": "bernoulli", "p": p}, {"kind": "gaussian", "sigma": sigma}).sample(x, n, gen(23))
    assert z.dtype == torch.float64
    tau = z[..., -1].bool().numpy()
    e = ((z[..., :d] - x) / sigma).numpy()  # standardised noise, N(0, 1) where selected
    assert np.all(e[~tau] == 0)
    sel = e[tau]  # (count, d)
    k = sel.size
    assert k > 0.45 * n * entities * d
    # mean 0, variance 1 (variance of the sample variance of normals: 2/k)
    z5 = z_band(4)
    assert abs(sel.mean()) < z5 / math.sqrt(k), f"noise mean {sel.mean() * sigma:.5f} is not 0 (x is not the centre)"
    assert abs(sel.var() - 1) < z5 * math.sqrt(2 / k), f"noise variance {sel.var() * sigma**2:.5f} ≠ σ² = {sigma**2}"
    # third and fourth moments of N(0, 1): 0 and 3 (their SEs: √(15/k) and √(96/k))
    assert abs((sel**3).mean()) < z5 * math.sqrt(15 / k)
    assert abs((sel**4).mean() - 3) < z5 * math.sqrt(96 / k)
    # the whole law: Kolmogorov–Smirnov against N(0, 1)
    ks = stats.kstest(sel.reshape(-1), "norm")
    assert ks.pvalue > FAMILY_ERROR, (
        f"selected values − x are not N(0, σ²): KS statistic {ks.statistic:.4f}, p = {ks.pvalue:.2e}"
    )
    # centred on x per (row, column), not just on average: mean of each cell over its selected samples
    counts = tau.sum(axis=0)  # (N,)
    cell_means = np.where(tau[..., None], e, 0).sum(axis=0) / counts[:, None]
    assert np.all(np.abs(cell_means) < z_band(entities * d) / np.sqrt(counts[:, None])), (
        "some (row, column) is not centred on x"
    )
    # values of one row independent of each other: correlation between columns ≈ 0
    corr = np.corrcoef(sel.T)[np.triu_indices(d, 1)]
    assert np.all(np.abs(corr) < z_band(corr.size) / math.sqrt(sel.shape[0])), f"columns correlated: {corr}"
    # rows independent of each other: rows 0 and 1 when both selected
    both = tau[:, 0] & tau[:, 1]
    r = np.corrcoef(e[both, 0, 0], e[both, 1, 0])[0, 1]
    assert abs(r) < z_band() / math.sqrt(both.sum())


def test_gaussian_sigma_scales_the_noise():
    """σ, not σ²: two noise levels give standard deviations in the ratio of the σ's."""
    x = torch.zeros(10, 10)
    for sigma in (0.1, 2.5):
        z = (
            smoothing({"kind": "all"}, {"kind": "gaussian", "sigma": sigma})
            .sample(x, 2_000, gen(24))
            .numpy()
            .reshape(-1)
        )
        k = z.size
        assert abs(z.std() / sigma - 1) < z_band(2) * math.sqrt(1 / (2 * k)), f"σ = {sigma}: sample std {z.std():.5f}"


def test_gaussian_image_layout_one_mask_per_pixel():
    channels, height, width, n, p, sigma = 3, 6, 7, 3_000, 0.4, 0.5
    x = torch.rand(channels, height, width, generator=gen(25))
    s = smoothing({"kind": "bernoulli", "p": p}, {"kind": "gaussian", "sigma": sigma})
    z = s.sample(x, n, gen(26))
    assert z.shape == (n, channels + 1, height, width)
    tau = z[:, -1]
    assert set(torch.unique(tau).tolist()) <= {0.0, 1.0}
    tau = tau.bool()  # (n, H, W)
    w = z[:, :channels]
    xs = x.expand(n, -1, -1, -1)
    # channels kept in order where the pixel is not selected, all of them
    keep = (~tau).unsqueeze(1).expand_as(w)
    assert torch.equal(w[keep], xs[keep]), "an unselected pixel must keep all its channels exactly (in order)"
    # a selected pixel gets noise on every channel
    changed = w != xs  # (n, C, H, W)
    per_channel = changed.permute(1, 0, 2, 3)[:, tau]  # (C, selected pixels)
    assert per_channel.any(dim=0).all(), "some selected pixel was left unchanged on every channel"
    assert per_channel.float().mean() > 0.999, "the noise must cover all channels of a selected pixel"
    assert_binomial(tau.sum(dim=0).reshape(-1).numpy(), n, p, "per-pixel selection frequency")
    # per channel the noise is N(0, σ²) and centred on that channel's x
    e = ((w - xs) / sigma).permute(1, 0, 2, 3)[:, tau].numpy()  # (C, count)
    k = e.shape[1]
    assert np.all(np.abs(e.mean(axis=1)) < z_band(channels) / math.sqrt(k))
    assert np.all(np.abs(e.var(axis=1) - 1) < z_band(channels) * math.sqrt(2 / k))
    # pixels are independent: neighbouring pixels (0,0) and (0,1) selected together with probability p²
    assert_binomial((tau[:, 0, 0] & tau[:, 0, 1]).sum().item(), n, p * p, "neighbouring pixels selected together")


def test_gaussian_integer_image_is_noised_in_float():
    x = torch.randint(0, 256, (3, 4, 4), generator=gen(27), dtype=torch.uint8)
    z = smoothing({"kind": "bernoulli", "p": 0.5}, {"kind": "gaussian", "sigma": 0.25}).sample(x, 20, gen(28))
    assert torch.is_floating_point(z)
    tau = z[:, -1].bool()
    w = z[:, :3]
    keep = (~tau).unsqueeze(1).expand_as(w)
    assert torch.equal(w[keep], x.float().expand(20, -1, -1, -1)[keep])


def test_gaussian_unselected_rows_bit_identical_signed_zero():
    x = torch.full((20, 3), -0.0)
    z = smoothing({"kind": "bernoulli", "p": 0.5}, {"kind": "gaussian", "sigma": 1.0}).sample(x, 50, gen(29))
    tau = z[..., -1].bool()
    assert torch.signbit(z[..., :3][~tau]).all(), "unselected −0.0 entries lost their sign bit"


@pytest.mark.parametrize("sigma", [1e39, 1e300])
def test_gaussian_sigma_beyond_the_dtype_keeps_unselected_rows(sigma):
    """σ overflows float32: the selected values are ±inf, the unselected stay x (σ·ε·τ would be ∞·0 = NaN there)."""
    x = torch.rand(3, 6, 6)
    z = smoothing({"kind": "bernoulli", "p": 0.5}, {"kind": "gaussian", "sigma": sigma}).sample(x, 40, gen(30))
    tau = z[:, -1].bool().unsqueeze(1).expand(-1, 3, -1, -1)
    assert torch.equal(z[:, :3][~tau], x.expand(40, -1, -1, -1)[~tau]), "unselected pixels changed"
    assert torch.isinf(z[:, :3][tau]).all() and tau.any() and (~tau).any()


# ----------------------------------------------------------------------------------------------------------------
# 4. sparse bit flips


@pytest.fixture(params=["fused", "torch"])
def construction(request, monkeypatch):
    """Both sparse constructions, on this CPU: the compiled pass (``fused_flips``, a CPU's default) and the torch
    one that a GPU runs."""
    from hiersmooth.smoothing import bit_flips

    monkeypatch.setattr(bit_flips, "FUSED_ON_CPU", request.param == "fused")
    return request.param


def flip_statistics(x: np.ndarray, z: np.ndarray, tau: np.ndarray):
    """x (N, D) binary input; z (n, N, D) output bits; tau (n, N) selection. Counts of the two flip directions."""
    sel = tau[..., None]
    ones = x[None].astype(bool)
    up = sel & ~ones & (z == 1)
    down = sel & ones & (z == 0)
    zeros_trials = sel & ~ones
    ones_trials = sel & ones
    return up, zeros_trials, down, ones_trials


def check_sparse_sample(
    x: torch.Tensor, z_dense: torch.Tensor, n: int, p_plus: float, p_minus: float, what: str, indicator=True
):
    """Common assertions on n dense (n, N, D [+1]) samples of binary x under sparse noise; returns the counts."""
    entities, d = x.shape
    assert z_dense.shape == (n, entities, d + indicator), f"{what}: shape {tuple(z_dense.shape)}"
    zn = z_dense.numpy()
    values = np.unique(zn)
    assert set(values.tolist()) <= {0.0, 1.0}, f"{what}: output values {values} are not binary"
    tau = zn[..., -1].astype(bool) if indicator else np.ones((n, entities), bool)
    bits = zn[..., :d]
    xn = x.numpy()
    assert np.array_equal(bits[~tau], np.broadcast_to(xn, bits.shape)[~tau]), f"{what}: unselected rows changed"
    up, zeros_trials, down, ones_trials = flip_statistics(xn, bits, tau)
    assert_binomial(up.sum(), zeros_trials.sum(), p_plus, f"{what}: 0→1 rate")
    assert_binomial(down.sum(), ones_trials.sum(), p_minus, f"{what}: 1→0 rate")
    return tau, up, zeros_trials, down, ones_trials


@pytest.mark.parametrize("p_plus, p_minus", [(0.1, 0.4), (0.05, 0.8), (0.3, 0.0), (0.0, 0.6), (0.02, 0.5)])
def test_sparse_flip_rates_dense_input(p_plus, p_minus, construction):
    entities, d, n, p = 30, 50, 2_000, 0.6
    x = binary_features(entities, d, 0.3, seed=30)
    s = smoothing({"kind": "bernoulli", "p": p}, {"kind": "sparse", "p_plus": p_plus, "p_minus": p_minus})
    z = s.sample(x, n, gen(31))
    assert z.layout == torch.strided and z.dtype == x.dtype
    tau, up, zt, down, ot = check_sparse_sample(x, z, n, p_plus, p_minus, "dense input")
    assert_binomial(tau.sum(axis=0), n, p, "sparse: per-row selection frequency")
    # per bit position, not only on average (catches flips landing on the wrong column or row)
    xn = x.numpy().astype(bool)
    if p_plus > 0:
        trials = zt.sum(axis=0)[~xn]
        assert_binomial(up.sum(axis=0)[~xn], trials, p_plus, "0→1 rate per bit position")
    if p_minus > 0:
        trials = ot.sum(axis=0)[xn]
        assert_binomial(down.sum(axis=0)[xn], trials, p_minus, "1→0 rate per bit position")
    if p_plus > 0:
        # flips independent: two neighbouring 0-bits of one row flip together with probability p₊², also across
        # the boundary between consecutive rows and consecutive samples (the geometric-gap line runs over them)
        assert not xn[0].any(), "row 0 is all zeros"
        pairs_up = up[:, 0, :-1] & up[:, 0, 1:]
        pairs_trials = zt[:, 0, :-1] & zt[:, 0, 1:]
        assert_binomial(pairs_up.sum(), pairs_trials.sum(), p_plus**2, "neighbouring bits both flipped 0→1")
        # last bit of row i and first bit of row i+1 (0-bits, both rows selected), and of the last row of
        # sample k and the first row of sample k+1
        last, first = up[:, :-1, -1], up[:, 1:, 0]
        trials = zt[:, :-1, -1] & zt[:, 1:, 0]
        assert_binomial((last & first)[trials].sum(), trials.sum(), p_plus**2, "row-boundary pair both flipped")
        last, first = up[:-1, -1, -1], up[1:, 0, 0]
        trials = zt[:-1, -1, -1] & zt[1:, 0, 0]
        if trials.sum() > 0:
            assert_binomial((last & first)[trials].sum(), trials.sum(), p_plus**2, "sample-boundary pair both flipped")
        # number of 0→1 flips in one selected all-zero row ~ Binomial(D, p₊)
        per_row = up[:, 0, :].sum(axis=1)[tau[:, 0]]
        chi2_goodness(
            np.bincount(per_row, minlength=d + 1),
            stats.binom(d, p_plus).pmf(np.arange(d + 1)),
            "0→1 flips per row ~ Binomial",
        )
    if p_minus > 0:
        # number of 1→0 flips in the selected all-one row ~ Binomial(D, p₋)
        per_row = down[:, 1, :].sum(axis=1)[tau[:, 1]]
        chi2_goodness(
            np.bincount(per_row, minlength=d + 1),
            stats.binom(d, p_minus).pmf(np.arange(d + 1)),
            "1→0 flips per row ~ Binomial",
        )


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_flip_rates_sparse_input_match_dense(layout, construction):
    entities, d, n, p, p_plus, p_minus = 30, 50, 1_200, 0.6, 0.1, 0.7
    x = binary_features(entities, d, 0.3, seed=32)
    s = smoothing({"kind": "bernoulli", "p": p}, {"kind": "sparse", "p_plus": p_plus, "p_minus": p_minus})
    xs = x.to_sparse_coo() if layout == "coo" else x.to_sparse_csr()
    out = s.sample(xs, n, gen(33))
    assert out.layout == torch.sparse_csr, "sparse input gives one sparse CSR tensor"
    assert out.shape == (n * entities, d + 1)
    # no column repeated within a CSR row (to_dense would sum duplicates into a 2) and columns in range
    crow, col = out.crow_indices().numpy(), out.col_indices().numpy()
    assert crow[0] == 0 and crow[-1] == len(col) and np.all(np.diff(crow) >= 0)
    assert np.all((col >= 0) & (col <= d))
    row_of = np.repeat(np.arange(n * entities), np.diff(crow))
    assert len(np.unique(row_of * (d + 1) + col)) == len(col), "a column repeats within a CSR row"
    assert np.all(out.values().numpy() == 1)
    z_sparse = out.to_dense().view(n, entities, d + 1)  # copy k occupies rows k·N .. k·N+N−1
    tau_s, up_s, zt_s, down_s, ot_s = check_sparse_sample(x, z_sparse, n, p_plus, p_minus, f"sparse {layout} input")
    # the same distribution as from the dense input: rates overall and per bit position
    z_dense = s.sample(x, n, gen(34))
    tau_d, up_d, zt_d, down_d, ot_d = check_sparse_sample(x, z_dense, n, p_plus, p_minus, "dense input")
    assert_same_rate(tau_s.sum(), tau_s.size, tau_d.sum(), tau_d.size, "selection rate, sparse vs dense input")
    assert_same_rate(up_s.sum(), zt_s.sum(), up_d.sum(), zt_d.sum(), "0→1 rate, sparse vs dense input")
    assert_same_rate(down_s.sum(), ot_s.sum(), down_d.sum(), ot_d.sum(), "1→0 rate, sparse vs dense input")
    xn = x.numpy().astype(bool)
    assert_same_rate(
        up_s.sum(axis=0)[~xn],
        zt_s.sum(axis=0)[~xn],
        up_d.sum(axis=0)[~xn],
        zt_d.sum(axis=0)[~xn],
        "0→1 per bit, sparse vs dense",
    )
    assert_same_rate(
        down_s.sum(axis=0)[xn],
        ot_s.sum(axis=0)[xn],
        down_d.sum(axis=0)[xn],
        ot_d.sum(axis=0)[xn],
        "1→0 per bit, sparse vs dense",
    )


def test_sparse_indicator_equals_selection_and_no_indicator(construction):
    """All-zero input, p₊ = 0.5 over 60 bits: a selected row stays all-zero with probability 2⁻⁶⁰."""
    entities, d, n = 12, 60, 500
    x = torch.zeros(entities, d)
    for xin in (x, x.to_sparse_coo()):
        s = smoothing({"kind": "bernoulli", "p": 0.5}, {"kind": "sparse", "p_plus": 0.5, "p_minus": 0.2})
        z = s.sample(xin, n, gen(35))
        z = z.to_dense().view(n, entities, d + 1) if z.layout != torch.strided else z
        tau = z[..., -1].bool()
        assert torch.equal(z[..., :d].any(dim=-1), tau), "τ must mark exactly the rows that were noised"
        s_off = smoothing(
            {"kind": "bernoulli", "p": 0.5}, {"kind": "sparse", "p_plus": 0.5, "p_minus": 0.2}, indicator=False
        )
        z = s_off.sample(xin, 10, gen(36))
        assert z.shape == ((10, entities, d) if xin.layout == torch.strided else (10 * entities, d))
    # all-ones input, p₋ = 0.5
    x = torch.ones(entities, d)
    s = smoothing({"kind": "subset", "size": 4}, {"kind": "sparse", "p_plus": 0.0, "p_minus": 0.5})
    z = s.sample(x.to_sparse_csr(), n, gen(37)).to_dense().view(n, entities, d + 1)
    tau = z[..., -1].bool()
    assert torch.all(tau.sum(dim=1) == 4)
    assert torch.equal((z[..., :d] == 0).any(dim=-1), tau)


def test_sparse_input_with_stored_zero_is_binary():
    indices = torch.tensor([[0, 1, 2], [0, 1, 3]])
    x = torch.sparse_coo_tensor(indices, torch.tensor([1.0, 0.0, 1.0]), (3, 4))
    s = smoothing({"kind": "all"}, {"kind": "sparse", "p_plus": 0.0, "p_minus": 0.0})
    assert torch.equal(s.sample(x, 2, gen(38)).to_dense().view(2, 3, 4), x.to_dense().expand(2, -1, -1))


def test_sparse_all_selection_is_plain_sparse_smoothing(construction):
    entities, d, n = 20, 40, 1_000
    x = binary_features(entities, d, 0.2, seed=38)
    s = smoothing({"kind": "all"}, {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8})
    z = s.sample(x, n, gen(39))
    assert z.shape == (n, entities, d)
    check_sparse_sample(x, z, n, 0.05, 0.8, "all + sparse", indicator=False)


def cora_features() -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    try:
        path = shared_dir() / "data" / "cora_ml.npz"
    except FileNotFoundError as error:
        pytest.fail(f"Cora-ML features not found: {error} (expected data/cora_ml.npz there)")
    if not Path(path).is_file():
        pytest.fail(f"Cora-ML features not found at {path}: the shared data file is missing")
    with np.load(path) as data:
        indptr = data["attr_indptr"].astype(np.int64)
        indices = data["attr_indices"].astype(np.int64)
        values = data["attr_data"]
        shape = tuple(int(v) for v in data["attr_shape"])
    keep = values > 0  # binarise the TF-IDF weights
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))[keep]
    return rows, indices[keep], shape


def test_sparse_flips_on_cora_ml(construction):
    rows, cols, (entities, d) = cora_features()
    p, p_plus, p_minus, n = 0.81, 0.05, 0.8, 3  # the paper's graph settings (SPEC.md §5)
    x = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([rows, cols])), torch.ones(len(rows)), (entities, d)
    ).coalesce()
    assert x.values().numel() == len(rows), "Cora-ML attributes repeat a (row, column)"
    s = smoothing({"kind": "bernoulli", "p": p}, {"kind": "sparse", "p_plus": p_plus, "p_minus": p_minus})
    out = s.sample(x.to_sparse_csr(), n, gen(40))
    assert out.layout == torch.sparse_csr and out.shape == (n * entities, d + 1)
    assert np.all(out.values().numpy() == 1)
    crow, col = out.crow_indices().numpy(), out.col_indices().numpy()
    out_row = np.repeat(np.arange(n * entities), np.diff(crow))
    assert np.all((col >= 0) & (col <= d))
    # indicator column → selection (n, N)
    tau = np.zeros(n * entities, bool)
    tau[out_row[col == d]] = True
    tau = tau.reshape(n, entities)
    assert_binomial(tau.sum(), tau.size, p, "Cora-ML: selection rate")
    # every output bit (copy, node, column) as one key; the input's 1-bits as keys of one copy
    bit = col < d
    copy, node = np.divmod(out_row[bit], entities)
    keys = (copy * entities + node) * d + col[bit]
    assert len(np.unique(keys)) == len(keys), "Cora-ML: a column repeats within a CSR row"
    input_keys = rows * d + cols
    was_one = np.isin(node * d + col[bit], input_keys)
    selected = tau[copy, node]
    # unselected rows exactly as the input
    ones_per_node = np.bincount(rows, minlength=entities)
    kept_unselected = np.bincount((copy * entities + node)[~selected], minlength=n * entities).reshape(n, entities)
    assert np.all(was_one[~selected]), "Cora-ML: an unselected row gained a 1"
    assert np.array_equal(kept_unselected[~tau], np.broadcast_to(ones_per_node, (n, entities))[~tau]), (
        "Cora-ML: an unselected row lost a 1"
    )
    # flip rates on the selected rows
    selected_ones = (tau * ones_per_node).sum()
    selected_zeros = (tau * (d - ones_per_node)).sum()
    kept = (was_one & selected).sum()
    added = (~was_one & selected).sum()
    assert_binomial(selected_ones - kept, selected_ones, p_minus, "Cora-ML: 1→0 rate")
    assert_binomial(added, selected_zeros, p_plus, "Cora-ML: 0→1 rate")
    # 0→1 rate per column (catches a misplaced column) and per node
    zeros_per_column = (tau.sum(axis=0)[:, None] * np.ones(d)).sum(axis=0) - np.bincount(
        cols, weights=tau.sum(axis=0)[rows], minlength=d
    )
    added_per_column = np.bincount(col[bit][~was_one], minlength=d)
    assert_binomial(added_per_column, zeros_per_column, p_plus, "Cora-ML: 0→1 rate per column")
    added_per_node = np.bincount(node[~was_one], minlength=entities)
    trials_per_node = tau.sum(axis=0) * (d - ones_per_node)
    has = trials_per_node > 0
    assert_binomial(added_per_node[has], trials_per_node[has], p_plus, "Cora-ML: 0→1 rate per node")


def test_sparse_flips_on_cora_ml_dense_input_same_rates(construction):
    rows, cols, (entities, d) = cora_features()
    x = torch.zeros(entities, d)
    x[torch.from_numpy(rows), torch.from_numpy(cols)] = 1
    s = smoothing({"kind": "bernoulli", "p": 0.81}, {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.8})
    z = s.sample(x, 1, gen(41))[0]
    tau = z[:, -1].bool().numpy()
    bits = z[:, :d].numpy().astype(bool)
    xn = x.numpy().astype(bool)
    assert np.array_equal(bits[~tau], xn[~tau])
    sel_ones, sel_zeros = xn[tau], ~xn[tau]
    assert_binomial((~bits[tau] & sel_ones).sum(), sel_ones.sum(), 0.8, "Cora-ML dense: 1→0 rate")
    assert_binomial((bits[tau] & sel_zeros).sum(), sel_zeros.sum(), 0.05, "Cora-ML dense: 0→1 rate")


# ----------------------------------------------------------------------------------------------------------------
# 4b. bernoulli_positions: the geometric-gap Bernoulli process


@pytest.mark.parametrize("p", [0.001, 0.05, 0.3, 0.5, 0.9])
def test_bernoulli_positions_counts_and_uniform_positions(p):
    length, calls = 40, 4_000
    g = gen(50)
    hits = np.zeros(length, np.int64)
    counts = np.zeros(calls, np.int64)
    for i in range(calls):
        pos = bernoulli_positions(length, p, g)
        assert pos.dtype == torch.long and pos.dim() == 1
        a = pos.numpy()
        assert np.all(np.diff(a) > 0), "positions must be sorted and distinct"
        assert a.size == 0 or (a[0] >= 0 and a[-1] < length), "positions out of [0, length)"
        hits[a] += 1
        counts[i] = a.size
    # every position equally likely (incl. the first and the last)
    assert_binomial(hits, calls, p, f"p={p}: each position a success")
    # counts ~ Binomial(length, p)
    chi2_goodness(
        np.bincount(counts, minlength=length + 1),
        stats.binom(length, p).pmf(np.arange(length + 1)),
        f"p={p}: counts ~ Binomial",
    )


@pytest.mark.parametrize("p", [0.002, 0.1, 0.5, 0.8])
def test_bernoulli_positions_long_line_independence(p):
    length = 2_000_000
    pos = bernoulli_positions(length, p, gen(51)).numpy()
    assert np.all(np.diff(pos) > 0) and pos[0] >= 0 and pos[-1] < length
    assert_binomial(pos.size, length, p, f"p={p}: count on a long line")
    line = np.zeros(length, bool)
    line[pos] = True
    # successive trials independent: P(i and i+1) = P(i and i+2) = p², P(i, not i+1) = p(1 − p)
    assert_binomial((line[:-1] & line[1:]).sum(), length - 1, p * p, f"p={p}: i and i+1")
    assert_binomial((line[:-2] & line[2:]).sum(), length - 2, p * p, f"p={p}: i and i+2")
    assert_binomial((line[:-1] & ~line[1:]).sum(), length - 1, p * (1 - p), f"p={p}: i and not i+1")
    # blocks of 50 trials: counts ~ Binomial(50, p)
    blocks = line.reshape(-1, 50).sum(axis=1)
    chi2_goodness(np.bincount(blocks, minlength=51), stats.binom(50, p).pmf(np.arange(51)), f"p={p}: block counts")
    # gaps ~ Geometric(p) (support 1, 2, ...)
    gaps = np.diff(pos)
    geometric = stats.geom(p)
    edges = np.unique(geometric.ppf(np.linspace(0, 1, 41)[1:-1]).astype(np.int64))  # ~equal-probability cells
    observed = np.bincount(np.searchsorted(edges, gaps, side="left"), minlength=len(edges) + 1)
    probabilities = np.diff(np.concatenate([[0.0], geometric.cdf(edges), [1.0]]))
    chi2_goodness(observed, probabilities, f"p={p}: gaps ~ Geometric")


def test_bernoulli_positions_edge_cases():
    assert bernoulli_positions(0, 0.5, gen(52)).numel() == 0
    assert bernoulli_positions(100, 0.0, gen(52)).numel() == 0
    assert bernoulli_positions(0, 0.0).numel() == 0
    assert torch.equal(bernoulli_positions(7, 1.0, gen(52)), torch.arange(7))
    assert bernoulli_positions(1, 0.999999, gen(53)).tolist() in ([0], [])
    # reproducible with the same generator seed, different with another
    a = bernoulli_positions(10_000, 0.1, gen(54))
    assert torch.equal(a, bernoulli_positions(10_000, 0.1, gen(54)))
    assert not torch.equal(a, bernoulli_positions(10_000, 0.1, gen(55)))
    # a tiny p on a huge line: no overflow, count ≈ Binomial
    pos = bernoulli_positions(10**12, 1e-8, gen(56))
    assert pos.numel() > 0 and pos[-1] < 10**12 and bool(torch.all(pos[1:] > pos[:-1]))
    assert_binomial(pos.numel(), 10**12, 1e-8, "p=1e-8 on 10¹² trials")


@pytest.mark.parametrize("p", [1e-12, 1e-16, 3e-18, 1e-18])  # 1e-20, 1e-300: hang-safe test below
def test_bernoulli_positions_tiny_p_stays_in_range(p):
    """Gaps of about 1/p exceed 2⁶³ for p below ~1e-17: positions must still lie on the line (none, almost surely)."""
    for k in range(20):
        pos = bernoulli_positions(1_000_000, p, gen(58 + k))
        assert bool(torch.all((pos >= 0) & (pos < 1_000_000))), f"p={p}: positions {pos.tolist()} outside the line"
        assert bool(torch.all(pos[1:] > pos[:-1]))


def test_sparse_noise_with_tiny_flip_probabilities_terminates(construction):
    """p₊, p₋ down to the accepted minimum 1e-300 sample (nothing flips); run apart so a hang cannot stall the suite."""
    import subprocess
    import sys

    code = """
import torch, hiersmooth as hs
x = torch.zeros(10, 10); x[::2, ::3] = 1
for p_plus, p_minus in [(1e-18, 0.3), (1e-20, 0.3), (1e-300, 1e-300), (0.2, 1e-20)]:
    noise = {'kind': 'sparse', 'p_plus': p_plus, 'p_minus': p_minus}
    s = hs.from_config({'selection': {'kind': 'all'}, 'noise': noise})
    for xin in (x, x.to_sparse_csr()):
        z = s.sample(xin, 3, torch.Generator().manual_seed(0))
        z = z.to_dense().view(3, 10, 10) if z.layout != torch.strided else z
        assert set(z.unique().tolist()) <= {0.0, 1.0}
        if p_plus < 1e-10:
            assert torch.all(z <= x), (p_plus, p_minus)
        if p_minus < 1e-10:
            assert torch.all(z >= x), (p_plus, p_minus)
print("ok")
"""
    try:
        done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(
            "sparse noise with flip probabilities near 1e-300 did not finish within 60 s (a sampling loop hangs)"
        )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_bernoulli_positions_refills_when_first_draw_falls_short(monkeypatch):
    """Force the first batch of gaps to 1: the line must be completed by further draws."""
    from hiersmooth.smoothing import bit_flips

    real_gaps = bit_flips.geometric_gaps
    calls = []

    def gaps(count, *args, **kwargs):
        out = real_gaps(count, *args, **kwargs)
        calls.append(out.numel())
        return out.fill_(1.0) if len(calls) == 1 else out

    monkeypatch.setattr(bit_flips, "geometric_gaps", gaps)
    length, p = 5_000, 0.01
    pos = bernoulli_positions(length, p, gen(57)).numpy()
    monkeypatch.undo()
    assert len(calls) >= 2, "expected further draws after a first batch that covers only its own length"
    first = calls[0]
    assert np.array_equal(pos[:first], np.arange(first)), "the first batch (all gaps 1) makes positions 0..k−1"
    assert np.all(np.diff(pos) > 0) and pos[-1] < length
    rest = pos[first:]
    # the remaining line [first, length) is still a Bernoulli(p) process
    assert_binomial(rest.size, length - first, p, "refilled part of the line")


# ----------------------------------------------------------------------------------------------------------------
# 4c. the integer-bit construction of the gaps (stream version 2) and the 0-bit line


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.8, 1e-3])
def test_gap_table_is_the_exact_inversion_on_every_decided_interval(p):
    """Table entry c (the top 15 bits of U) holds g only if every U of its interval, (c·2³⁸, (c + 1)·2³⁸]·2⁻⁵³, has
    the exact inverse G(U) = g, i.e. (1 − p)^g < U ≤ (1 − p)^(g−1), checked in 60-digit arithmetic on the interval's
    ends (dyadic, so exact) with the exact binary value of p; entry 0 (undecided) only where a threshold lies inside
    the interval."""
    import mpmath

    from hiersmooth.smoothing.random_bits import gap_table

    mpmath.mp.dps = 60
    table = gap_table(p).numpy()
    q = 1 - mpmath.mpf(p)  # p is a double: 1 − p exactly at 60 digits
    low = [mpmath.mpf(int(c) * 2**38 + 1) / 2**53 for c in range(2**15)]
    high = [mpmath.mpf(int(c) + 1) / 2**15 for c in range(2**15)]
    thresholds = {}

    def threshold(g):
        if g not in thresholds:
            thresholds[g] = q**g
        return thresholds[g]

    for c in range(2**15):
        g = int(table[c])
        if g == 0:  # undecided: some threshold (1 − p)^k must lie in [low, high)
            k = int(mpmath.floor(mpmath.log(high[c]) / mpmath.log(q))) + 1  # G at the high end
            assert low[c] <= threshold(k), f"p={p}: chunk {c} is marked undecided but G is {k} on all of it"
            continue
        assert threshold(g) < low[c] and high[c] <= threshold(g - 1), f"p={p}: chunk {c} holds G={g}, not exact"
    assert (table == 0).mean() < 0.02 or p < 0.01, f"p={p}: too many undecided chunks ({(table == 0).mean():.1%})"


def _check_uniform_chunks(chunks: np.ndarray, what: str) -> None:
    """Chunks cut from 64-bit words, four to a word: every 15-bit value equally likely, every bit fair, the
    quarters of a word independent (each pair of them, by its top 4 bits)."""
    assert chunks.min() >= 0 and chunks.max() < 2**15, what
    chi2_goodness(np.bincount(chunks, minlength=2**15), np.full(2**15, 2.0**-15), f"{what}: uniform")
    bits = (chunks[:, None] >> np.arange(15)) & 1
    assert_binomial(bits.sum(axis=0), len(chunks), 0.5, f"{what}: each bit")
    quarters = chunks.reshape(-1, 4) >> 11  # top 4 bits of the four quarters of each word
    for first, second in itertools.combinations(range(4), 2):
        pair = quarters[:, first] * 16 + quarters[:, second]
        chi2_goodness(np.bincount(pair, minlength=256), np.full(256, 1 / 256), f"{what}: quarters {first}, {second}")


def test_random_chunks_are_uniform_independent_15_bit_integers():
    """The four 15-bit quarters of ``random_`` 63-bit words (the torch construction's and the masks' chunks)."""
    from hiersmooth.smoothing.random_bits import random_chunks

    _check_uniform_chunks(random_chunks(2_000_000, gen(140), None).numpy().astype(np.int64), "random_chunks")
    assert len(random_chunks(7, gen(1), None)) == 7 and len(random_chunks(0, gen(1), None)) == 0


def test_fused_streams_are_uniform_15_bit_chunks_and_38_bit_rests():
    """The compiled pass's streams (NumPy SFC64 seeded by the block's generator): chunks as above; the rests
    below 2³⁸ with every bit fair and their top byte uniform; the same generator state, the same streams."""
    from hiersmooth.smoothing import fused_flips

    chunks, lows = fused_flips._streams(2_000_001, 300_000, gen(142))
    assert chunks.dtype == np.uint16 and len(chunks) == 2_000_001 and len(lows) == 300_000
    _check_uniform_chunks(chunks[:2_000_000].astype(np.int64), "fused chunks")
    lows = lows.astype(np.int64)
    assert lows.min() >= 0 and lows.max() < 2**38
    assert_binomial(((lows[:, None] >> np.arange(38)) & 1).sum(axis=0), len(lows), 0.5, "each bit of a rest")
    chi2_goodness(np.bincount(lows >> 30, minlength=256), np.full(256, 1 / 256), "top byte of the rests")
    again = fused_flips._streams(2_000_001, 300_000, gen(142))
    assert np.array_equal(again[0], chunks) and np.array_equal(again[1], lows)
    other = fused_flips._streams(1000, 10, gen(143))
    assert not np.array_equal(other[0], chunks[:1000])


def _chunk_digits(p: float, levels: int) -> list[int]:
    """The first ``levels`` base-2¹⁵ digits of p (exact rationals)."""
    from fractions import Fraction

    digits, rest = [], Fraction(p)
    for _ in range(levels):
        rest *= 2**15
        digits.append(int(rest))
        rest -= int(rest)
    return digits


@pytest.mark.parametrize("p", [0.8, 1 - 150 / 784, 0.05, 0.3 + 2**-60, 2**-40, 1e-300, 0.5, 1.0, 0.0])
def test_bernoulli_trials_compare_a_uniform_with_p_exactly(monkeypatch, p):
    """Feed the trials chunks that often equal p's own base-2¹⁵ digits (so that many trials need several chunks)
    and check every trial against an exact comparison: with the chunks an entry read forming U's prefix V of L
    digits, the trial is true iff the whole interval [V, V + 2⁻¹⁵ᴸ) lies below p, false iff V ≥ p — and one of
    the two must hold when it stops reading (Fraction arithmetic; ties go on in index order, as documented)."""
    from fractions import Fraction

    from hiersmooth.smoothing import random_bits

    digits = _chunk_digits(p, 80)
    rng = np.random.default_rng(7)
    calls = []

    def chunks(count, generator, device):
        level = len(calls)
        d = digits[level] if level < len(digits) else 0
        choice = rng.integers(0, 4, count)  # p's digit, one above, one below, anything
        values = np.where(choice == 0, d, np.where(choice == 1, d + 1, np.where(choice == 2, d - 1, 0)))
        values = np.where(choice == 3, rng.integers(0, 2**15, count), values)
        values = np.clip(values, 0, 2**15 - 1).astype(np.int16)
        calls.append(values.copy())
        return values

    monkeypatch.setattr(random_bits, "_chunks", chunks)
    trials = random_bits.bernoulli_trials(p, (50, 40), None).reshape(-1).numpy()
    exact_p = Fraction(p)
    readers = np.arange(2000)  # the entries reading at this level, in index order
    prefix = [Fraction(0)] * 2000
    checked = 0
    for level, values in enumerate(calls):
        assert len(values) == len(readers), f"level {level}: {len(values)} chunks for {len(readers)} open trials"
        going_on = []
        for entry, c in zip(readers, values):
            prefix[entry] += Fraction(int(c), 2 ** (15 * (level + 1)))
            width = Fraction(1, 2 ** (15 * (level + 1)))
            if prefix[entry] + width <= exact_p:
                assert trials[entry], f"p={p}: U in [{float(prefix[entry])}, …) lies below p, trial false"
                checked += 1
            elif prefix[entry] >= exact_p:
                assert not trials[entry], f"p={p}: U ≥ {float(prefix[entry])} ≥ p, trial true"
                checked += 1
            else:
                going_on.append(entry)
        readers = np.array(going_on, dtype=np.int64)
    assert len(readers) == 0 and checked == 2000, f"p={p}: {len(readers)} trials left undecided"
    deep = any(digits[1:])  # p has digits past its first chunk: some trials must read on
    assert len(calls) >= 3 if deep else len(calls) == 1, f"p={p}: {len(calls)} levels of chunks were read"


@pytest.mark.parametrize("chunk, p", [(0, 0.5), (0, 0.05), (None, 0.05), (None, 0.8)])
def test_undecided_gaps_follow_the_conditional_law(monkeypatch, chunk, p):
    """Force every chunk to an undecided one (c = 0, or the first undecided c ≥ 1000): the gaps then come from the
    fallback on the full 53-bit U, and must follow the exact law of G given U in that chunk's interval —
    P(G = g | c) = |(q^g, q^(g−1)] ∩ interval| / 2⁻¹⁵ (60-digit arithmetic)."""
    import mpmath

    from hiersmooth.smoothing import bit_flips, random_bits

    table = random_bits.gap_table(p).numpy()
    if chunk is None:
        chunk = int(1000 + np.flatnonzero(table[1000:] == 0)[0])
    assert table[chunk] == 0
    monkeypatch.setattr(
        bit_flips, "random_chunks", lambda count, generator, device: torch.full((count,), chunk, dtype=torch.int16)
    )
    gaps = bit_flips.geometric_gaps(200_000, p, gen(141)).numpy().astype(np.int64)
    mpmath.mp.dps = 60
    q = 1 - mpmath.mpf(p)
    low, high = mpmath.mpf(chunk) / 2**15, mpmath.mpf(chunk + 1) / 2**15
    values = np.arange(gaps.min(), gaps.max() + 1)
    grid = np.arange(max(1, gaps.min() - 3), bit_flips._largest_gap(p) + 1)  # up to G at U = 2⁻⁵³
    mass = [max(0, min(high, q ** (g - 1)) - max(low, q**g)) * 2**15 for g in grid]
    assert abs(sum(mass) - 1) < 1e-9, "the cells must cover the interval (but U < 2⁻⁵³)"
    observed = np.bincount(gaps - grid[0], minlength=len(grid))[: len(grid)]
    assert observed.sum() == len(gaps) and len(values) >= 2
    chi2_goodness(observed, np.array([float(m) for m in mass]), f"p={p}, chunk {chunk}: G | chunk")


def _exact_row_law(bits, p_select, p_plus, p_minus):
    """Exact law of one row's sample [noisy bits | τ] by enumeration: {outcome tuple: probability}."""
    import itertools

    law = {tuple(bits) + (0,): 1 - p_select}
    for noisy in itertools.product((0, 1), repeat=len(bits)):
        probability = p_select
        for b, z in zip(bits, noisy):
            flip = p_plus if b == 0 else p_minus
            probability *= flip if z != b else 1 - flip
        key = tuple(noisy) + (1,)
        law[key] = law.get(key, 0.0) + probability
    return law


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_sparse_noise_exact_joint_law_by_enumeration(layout, construction):
    """Two rows of four bits, bernoulli(0.6) selection, sparse(0.3, 0.4), indicator: the joint law of the two rows'
    samples (2·2⁵ outcomes each, 1,024 joint cells) equals the product of the per-row laws enumerated exactly from
    SPEC §2 — every bit flips independently, only on selected rows, τ is the selection."""
    _check_joint_law_of_two_rows(layout, 60_000, gen(142), f"{layout}, {construction}")


def _check_joint_law_of_two_rows(layout: str, n: int, generator, what: str):
    """The chi-square check of :func:`test_sparse_noise_exact_joint_law_by_enumeration` on n samples."""
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    s = smoothing({"kind": "bernoulli", "p": 0.6}, {"kind": "sparse", "p_plus": 0.3, "p_minus": 0.4})
    z = s.sample(x.to_sparse_csr() if layout == "sparse" else x, n, generator)
    z = z.to_dense().view(n, 2, 5) if z.layout != torch.strided else z
    codes = (z.numpy().astype(np.int64) * (2 ** np.arange(5))).sum(axis=2)  # (n, 2): each row's outcome as 5 bits
    laws = [_exact_row_law(x[i].int().tolist(), 0.6, 0.3, 0.4) for i in range(2)]
    probability = np.zeros((32, 32))
    for a, pa in laws[0].items():
        for b, pb in laws[1].items():
            probability[sum(v << k for k, v in enumerate(a)), sum(v << k for k, v in enumerate(b))] += pa * pb
    observed = np.bincount(codes[:, 0] * 32 + codes[:, 1], minlength=1024)
    chi2_goodness(observed, probability.reshape(-1), f"{what}: joint law of two rows")
    return z


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_blocks_drawn_together_equal_the_blocks_drawn_apart(monkeypatch, construction, layout):
    """``Sampler.draw_blocks`` (one pass over several blocks' rows, each block from its own generator) gives exactly
    the blocks' own draws joined — also when a block's streams or the room run out — so votes cannot depend on how
    blocks are grouped into forward passes; and the same for gaussian images (joined draws)."""
    from hiersmooth.smoothing import fused_flips
    from hiersmooth.smoothing.sampler import concat_samples

    x = (torch.rand(40, 30, generator=gen(150)) < 0.15).float()
    x = x.to_sparse_csr() if layout == "sparse" else x
    sampler = smoothing({"kind": "bernoulli", "p": 0.7}, {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.6}).sampler(x)
    sizes = [4, 4, 3, 4]
    for tight in (False, True):
        if tight:  # every block runs short of random bits and of room
            monkeypatch.setattr(fused_flips.FusedFlips, "_sizes", lambda self, selected: (8, 1, 8))
        together = sampler.draw_blocks(sizes, [gen(160 + b) for b in range(4)])
        apart = concat_samples([sampler.draw(size, gen(160 + b)) for b, size in enumerate(sizes)])
        assert together.layout == apart.layout and together.shape == apart.shape
        assert torch.equal(together.to_dense(), apart.to_dense()), f"{layout}, tight={tight}"
    images = smoothing({"kind": "bernoulli", "p": 0.7}, {"kind": "gaussian", "sigma": 0.5}).sampler(torch.rand(2, 5, 5))
    joined = concat_samples([images.draw(3, gen(170 + b)) for b in range(3)])
    assert torch.equal(images.draw_blocks([3, 3, 3], [gen(170 + b) for b in range(3)]), joined)
    for bad_sizes, generators in [([4, 4], [gen(1)]), ([], [])]:
        with pytest.raises(ValueError, match="generators: one per block"):
            sampler.draw_blocks(bad_sizes, generators)
    with pytest.raises(ValueError, match="n="):
        sampler.draw_blocks([4, 0], [gen(1), gen(2)])


def test_fused_flips_with_int64_indices_give_the_same_samples(monkeypatch):
    """A stack too large for int32 indices gets int64 ones (here forced by lowering the limit): the same samples."""
    from hiersmooth.smoothing import fused_flips

    x = (torch.rand(40, 30, generator=gen(151)) < 0.15).float().to_sparse_csr()
    sampler = smoothing({"kind": "bernoulli", "p": 0.7}, {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.6}).sampler(x)
    narrow = sampler.draw_blocks([5, 5], [gen(152), gen(153)])
    monkeypatch.setattr(fused_flips, "INT32_INDICES_BELOW", 0)
    wide = sampler.draw_blocks([5, 5], [gen(152), gen(153)])
    assert narrow.col_indices().dtype == torch.int32 and wide.col_indices().dtype == torch.int64
    assert torch.equal(narrow.to_dense(), wide.to_dense())


def test_bernoulli_trials_on_torch_tensors_match_the_numpy_path(monkeypatch):
    """The torch branch of the trials (what a GPU runs) decides the same chunks exactly as the CPU's NumPy branch —
    scalar and per-entry p, ties included (chunks forced onto p's first digit for a third of the entries)."""
    from hiersmooth.smoothing import random_bits

    rng = np.random.default_rng(8)
    for p in (0.3 + 2**-40, [0.1, 0.5 + 2**-30, 0.9, 2**-20]):
        first = np.floor(np.asarray(p, dtype=float) * 2**15).astype(np.int16)
        streams = [rng.integers(0, 2**15, 4000).astype(np.int16) for _ in range(8)]
        streams[0][::3] = np.broadcast_to(first, (1000, 4)).reshape(-1)[: len(streams[0][::3])]
        results = []
        for as_torch in (False, True):
            calls = iter([s.copy() for s in streams])
            supply = (
                (lambda count, g, d: torch.from_numpy(next(calls)[:count]))
                if as_torch
                else (lambda count, g, d: next(calls)[:count])
            )
            monkeypatch.setattr(random_bits, "_chunks", supply)
            results.append(random_bits.bernoulli_trials(p, (1000, 4), None))
        assert torch.equal(results[0], results[1]), p


def test_fused_flips_run_again_on_longer_streams_and_more_room(monkeypatch):
    """Sizes far too small (8 chunks, room for 8 columns): the compiled pass stops, runs again on longer streams
    drawn after the first and with more room, until the sample fits — its law stays exact (the two-row
    enumeration) and the generator alone still fixes it."""
    from hiersmooth.smoothing import fused_flips

    statuses = []
    compiled = fused_flips._draw_rows

    def recorded(*arguments):
        result = compiled(*arguments)
        statuses.append(result[0])
        return result

    monkeypatch.setattr(fused_flips, "_draw_rows", recorded)
    monkeypatch.setattr(fused_flips.FusedFlips, "_sizes", lambda self, selected: (8, 1, 8))
    first = _check_joint_law_of_two_rows("sparse", 20_000, gen(143), "tiny sizes")
    assert {fused_flips._OUT_OF_RANDOM, fused_flips._OUT_OF_ROOM, fused_flips._OK} <= set(statuses), set(statuses)
    again = _check_joint_law_of_two_rows("sparse", 20_000, gen(143), "tiny sizes, again")
    assert torch.equal(first, again)


def test_sparse_added_and_kept_counts_per_row_are_binomial(construction):
    """Per row of a matrix with rows of every degree (all selected): added bits ~ Binomial(0-bits of the row, p₊),
    kept bits ~ Binomial(1-bits, 1 − p₋), no column twice in a row, and each 0-bit turns 1 with p₊ exactly."""
    x = binary_features(12, 40, 0.3, seed=143)
    zeros, ones = (x == 0).sum(1).numpy(), (x == 1).sum(1).numpy()
    s = smoothing({"kind": "all"}, {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.7}, indicator=False)
    n = 6_000
    z = s.sample(x.to_sparse_csr(), n, gen(144))
    crow, col = z.crow_indices().numpy(), z.col_indices().numpy()
    for r in range(0, n * 12, 997):  # no repeated column within a row
        assert len(set(col[crow[r] : crow[r + 1]].tolist())) == crow[r + 1] - crow[r]
    dense = z.to_dense().view(n, 12, 40).numpy().astype(bool)
    bits = x.numpy().astype(bool)
    added = (dense & ~bits).sum(axis=2)  # (n, 12)
    kept = (dense & bits).sum(axis=2)
    for row in range(12):
        for what, counts, bits_of_row, rate in (("added", added, zeros, 0.1), ("kept", kept, ones, 0.3)):
            if bits_of_row[row] == 0:  # the all-one / all-zero row: nothing to add / keep
                assert not counts[:, row].any(), f"row {row}: {what} bits where there are none to flip"
                continue
            law = stats.binom(bits_of_row[row], rate).pmf(np.arange(41))
            chi2_goodness(np.bincount(counts[:, row], minlength=41), law, f"row {row}: {what} ~ Binomial")
    turned = (dense & ~bits).sum(axis=0)
    assert_binomial(turned[~bits], n, 0.1, "each 0-bit turns 1 with p₊")
    assert_binomial((dense & bits).sum(axis=0)[bits], n, 0.3, "each 1-bit stays 1 with 1 − p₋")


@pytest.mark.parametrize("layout", ["csr", "coo", "dense"])
def test_sparse_index_cache_sees_in_place_changes(layout, construction):
    """The index of the input's bits is cached per tensor: changing the tensor in place (its indices or its values)
    must give samples of the new input, never of the cached one."""
    s = smoothing({"kind": "all"}, {"kind": "sparse", "p_plus": 0.0, "p_minus": 0.0}, indicator=False)
    x = torch.zeros(3, 4)
    x[0, 1] = 1
    x = x.to_sparse_csr() if layout == "csr" else x.to_sparse_coo().coalesce() if layout == "coo" else x
    assert _dense(s.sample(x, 1, gen(145))).reshape(3, 4)[0].tolist() == [0, 1, 0, 0]
    if layout == "csr":
        x.col_indices()[0] = 2
    elif layout == "coo":
        x._indices()[1, 0] = 2
    else:
        x[0, 1], x[0, 2] = 0, 1
    assert _dense(s.sample(x, 1, gen(145))).reshape(3, 4)[0].tolist() == [0, 0, 1, 0]


# ----------------------------------------------------------------------------------------------------------------
# 5. ablation


def test_ablation_zero_token_and_config_token_dense_and_image():
    entities, d, n = 15, 4, 1_000
    x = torch.rand(entities, d, generator=gen(60)) + 1  # never 0, never the token
    s = smoothing({"kind": "bernoulli", "p": 0.3}, {"kind": "ablation"})
    z = s.sample(x, n, gen(61))
    tau = z[..., -1].bool()
    assert torch.equal(z[..., :d], torch.where(tau.unsqueeze(-1), torch.zeros(d), x)), (
        "ablated rows must be zeros, others x"
    )
    assert_binomial(tau.sum(dim=0).numpy(), n, 0.3, "ablation: per-row selection frequency")
    token = [-1.0, 0.5, 2.0, 9.0]
    s = smoothing({"kind": "bernoulli", "p": 0.3}, {"kind": "ablation", "token": token})
    z = s.sample(x, n, gen(62))
    tau = z[..., -1].bool()
    assert torch.equal(z[..., :d], torch.where(tau.unsqueeze(-1), torch.tensor(token), x))
    # a passed tensor overrides the config token
    passed = torch.tensor([3.0, 3.0, -3.0, 0.25])
    z = s.sample(x, n, gen(63), token=passed)
    tau = z[..., -1].bool()
    assert torch.equal(z[..., :d], torch.where(tau.unsqueeze(-1), passed, x))
    # images: the token replaces all channels of a selected pixel
    img = torch.rand(3, 5, 6, generator=gen(64)) + 1
    s = smoothing({"kind": "subset", "size": 7}, {"kind": "ablation", "token": [0.1, 0.2, 0.3]})
    z = s.sample(img, 200, gen(65))
    assert z.shape == (200, 4, 5, 6)
    tau = z[:, -1].bool()
    assert torch.all(tau.sum(dim=(1, 2)) == 7)
    expected = torch.where(tau.unsqueeze(1), torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), img)
    assert torch.equal(z[:, :3], expected)


def test_ablation_learned_token_gets_gradients():
    entities, d, n = 10, 3, 64
    x = torch.rand(entities, d, generator=gen(66)) + 1
    token = torch.nn.Parameter(torch.tensor([0.5, -1.5, 2.0]))
    s = smoothing({"kind": "bernoulli", "p": 0.5}, {"kind": "ablation"})
    z = s.sample(x, n, gen(67), token=token)
    assert z.requires_grad
    tau = z[..., -1].detach().bool()
    assert torch.equal(z[..., :d].detach(), torch.where(tau.unsqueeze(-1), token.detach(), x))
    weights = torch.rand(n, entities, d, generator=gen(68))
    (z[..., :d] * weights).sum().backward()
    expected = (weights * tau.unsqueeze(-1)).sum(dim=(0, 1))
    torch.testing.assert_close(token.grad, expected, msg="d loss / d token must sum the weights of the ablated rows")
    # image + parameter token
    token = torch.nn.Parameter(torch.zeros(2))
    img = torch.rand(2, 4, 4, generator=gen(69)) + 1
    z = s.sample(img, 8, gen(70), token=token)
    z[:, :2].sum().backward()
    tau = z[:, -1].detach()
    assert torch.equal(token.grad, torch.full((2,), tau.sum().item()))


def test_ablation_levine_feizi_encoding():
    channels, height, width, n, m = 3, 5, 5, 300, 17  # ablate m of 25 pixels: keep k = 8
    x = torch.rand(channels, height, width, generator=gen(71))
    s = smoothing({"kind": "subset", "size": m}, {"kind": "ablation", "encoding": "levine_feizi"})
    z = s.sample(x, n, gen(72))
    assert z.shape == (n, 2 * channels + 1, height, width)
    tau = z[:, -1].bool()
    assert torch.all(tau.sum(dim=(1, 2)) == m)
    kept = (~tau).unsqueeze(1).float()
    torch.testing.assert_close(z[:, :channels], x * kept, rtol=0, atol=0)
    torch.testing.assert_close(z[:, channels : 2 * channels], (1 - x) * kept, rtol=0, atol=0)
    assert_binomial(tau.sum(dim=0).reshape(-1).numpy(), n, m / (height * width), "LF: per-pixel ablation frequency")
    # dense features, no indicator with `all`... and with bernoulli
    f = torch.rand(6, 2, generator=gen(73))
    s = smoothing({"kind": "bernoulli", "p": 0.5}, {"kind": "ablation", "encoding": "levine_feizi"}, indicator=False)
    z = s.sample(f, 50, gen(74))
    assert z.shape == (50, 6, 4)
    ablated = (z == 0).all(dim=-1)
    kept = ~ablated
    assert torch.equal(z[kept], torch.cat([f, 1 - f], dim=1).expand(50, -1, -1)[kept])
    assert 0 < ablated.float().mean() < 1


def test_ablation_sparse_input_zero_token():
    entities, d, n = 20, 30, 400
    x = binary_features(entities, d, 0.4, seed=75)
    s = smoothing({"kind": "bernoulli", "p": 0.4}, {"kind": "ablation"})
    out = s.sample(x.to_sparse_coo(), n, gen(76))
    assert out.layout == torch.sparse_csr
    z = out.to_dense().view(n, entities, d + 1)
    tau = z[..., -1].bool()
    assert torch.equal(z[..., :d], torch.where(tau.unsqueeze(-1), 0.0, x))
    assert_binomial(tau.sum(dim=0).numpy(), n, 0.4, "sparse ablation: per-row frequency")


# ----------------------------------------------------------------------------------------------------------------
# 6. reproducibility


def _cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _build_cases()


def _build_cases():
    img = torch.rand(3, 6, 6, generator=gen(80))
    feats = binary_features(12, 20, 0.3, seed=81)
    return [
        ("gaussian image", {"kind": "bernoulli", "p": 0.5}, {"kind": "gaussian", "sigma": 0.25}, img),
        ("gaussian all", {"kind": "all"}, {"kind": "gaussian", "sigma": 0.25}, feats),
        ("sparse dense", {"kind": "bernoulli", "p": 0.8}, {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.6}, feats),
        (
            "sparse coo",
            {"kind": "bernoulli", "p": 0.8},
            {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.3},
            feats.to_sparse_coo(),
        ),
        ("sparse csr all", {"kind": "all"}, {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.3}, feats.to_sparse_csr()),
        ("ablation subset", {"kind": "subset", "size": 10}, {"kind": "ablation"}, img),
        (
            "ablation per-row p",
            {"kind": "bernoulli", "p": [0.5] * 12},
            {"kind": "ablation", "token": [1.0] * 20},
            feats,
        ),
        ("levine-feizi", {"kind": "subset", "size": 20}, {"kind": "ablation", "encoding": "levine_feizi"}, img),
        ("ablation sparse", {"kind": "bernoulli", "p": 0.5}, {"kind": "ablation"}, feats.to_sparse_csr()),
    ]


def _dense(t: torch.Tensor) -> torch.Tensor:
    return t.to_dense() if t.layout != torch.strided else t


CASES = _cases()


@pytest.mark.parametrize("name, selection, noise, x", CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_samples_other_seed_other_samples(name, selection, noise, x):
    s = smoothing(selection, noise)
    a = s.sample(x, 16, gen(90))
    b = s.sample(x, 16, gen(90))
    assert torch.equal(_dense(a), _dense(b)), f"{name}: the same seed must give identical samples"
    if a.layout == torch.sparse_csr:
        assert torch.equal(a.crow_indices(), b.crow_indices()) and torch.equal(a.col_indices(), b.col_indices())
    c = s.sample(x, 16, gen(91))
    assert not torch.equal(_dense(a), _dense(c)), f"{name}: different seeds must give different samples"
    # a sampler reused with one generator continues its stream; sample() is sampler().draw()
    sampler = s.sampler(x)
    g = gen(90)
    first = sampler.draw(16, g)
    assert torch.equal(_dense(first), _dense(a))
    assert not torch.equal(_dense(sampler.draw(16, g)), _dense(first)), (
        f"{name}: a second draw must not repeat the first"
    )
    # the global RNG is used when no generator is given
    torch.manual_seed(1_000 + SEED)
    d1 = s.sample(x, 16)
    torch.manual_seed(1_000 + SEED)
    assert torch.equal(_dense(s.sample(x, 16)), _dense(d1))


# ----------------------------------------------------------------------------------------------------------------
# 7. blocks and layout


def test_blocks_statistics_match_one_draw():
    """Drawing in several blocks changes nothing about the law: selection rate over blocks ≈ p."""
    s = smoothing({"kind": "bernoulli", "p": 0.3}, {"kind": "ablation"})
    sampler = s.sampler(torch.ones(50, 2))
    generator = gen(98)
    tau = torch.cat([sampler.draw(size, generator)[..., -1] for size in (1_000, 1_000, 1_001)])
    assert tau.shape == (3_001, 50)
    assert_binomial(tau.sum().item(), tau.numel(), 0.3, "selection rate over blocks")


@pytest.mark.parametrize(
    "noise",
    [{"kind": "gaussian", "sigma": 0.5}, {"kind": "ablation"}, {"kind": "ablation", "encoding": "levine_feizi"}],
    ids=["gaussian", "ablation", "levine-feizi"],
)
def test_image_samples_are_contiguous_nchw_and_match_rows(noise):
    """Image samples come out contiguous NCHW; drawn from the same generator they are the feature-matrix samples of
    the pixels up to the order in which the normals are drawn, so unselected pixels are x bit for bit and τ is the
    mask."""
    s = smoothing({"kind": "bernoulli", "p": 0.5}, noise)
    x = torch.rand(3, 5, 4, generator=gen(90))
    z = s.sample(x, 7, gen(91))
    width = 6 if noise.get("encoding") == "levine_feizi" else 3
    assert z.shape == (7, width + 1, 5, 4) and z.is_contiguous()
    tau = z[:, -1].bool()
    encoded = torch.cat([x, 1 - x]) if width == 6 else x
    unselected = (~tau).unsqueeze(1).expand(-1, width, -1, -1)
    assert torch.equal(z[:, :width][unselected], encoded.expand(7, -1, -1, -1)[unselected])
    same_mask = smoothing({"kind": "bernoulli", "p": 0.5}, {"kind": "ablation"}).sample(x, 7, gen(91))[:, -1]
    assert torch.equal(z[:, -1], same_mask), "the selection is drawn first, from the same stream"


# ----------------------------------------------------------------------------------------------------------------
# 8. bad input


SPARSE = {"kind": "sparse", "p_plus": 0.1, "p_minus": 0.2}
GAUSS = {"kind": "gaussian", "sigma": 0.5}


@pytest.mark.parametrize(
    "selection, noise, x, n, fragment",
    [
        (BERNOULLI, SPARSE, torch.tensor([[0.0, 1.0], [0.5, 1.0]]), 2, r"binary features .*0\.5"),
        (BERNOULLI, SPARSE, torch.tensor([[0.0, 2.0], [1.0, 1.0]]).to_sparse_coo(), 2, r"binary features .*2"),
        (BERNOULLI, SPARSE, torch.tensor([[0.0, -1.0], [1.0, 1.0]]).to_sparse_csr(), 2, r"binary features .*-1"),
        (BERNOULLI, GAUSS, torch.eye(3).to_sparse_coo(), 2, r"gaussian noise needs a dense input"),
        (BERNOULLI, GAUSS, torch.eye(3).to_sparse_csr(), 2, r"gaussian noise needs a dense input"),
        (
            BERNOULLI,
            GAUSS,
            torch.rand(5),
            2,
            r"x: must be an image \(C, H, W\) or a feature matrix \(N, D\), got shape \(5,\)",
        ),
        (BERNOULLI, GAUSS, torch.rand(2, 3, 4, 5), 2, r"got shape \(2, 3, 4, 5\)"),
        (BERNOULLI, GAUSS, torch.rand(0, 3), 2, r"at least one entity"),
        (BERNOULLI, GAUSS, np.zeros((3, 3)), 2, r"x: must be a torch.Tensor"),
        (BERNOULLI, GAUSS, torch.rand(3, 3), 0, r"n=0: the number of samples must be an integer >= 1"),
        (BERNOULLI, GAUSS, torch.rand(3, 3), -2, r"n=-2"),
        (BERNOULLI, GAUSS, torch.rand(3, 3), 2.0, r"n=2.0"),
        (BERNOULLI, GAUSS, torch.rand(3, 3), True, r"n=True"),
        (
            {"kind": "bernoulli", "p": [0.5, 0.5]},
            GAUSS,
            torch.rand(3, 3),
            2,
            r"selection.p has 2 per-row probabilities but the input has 3 rows",
        ),
        (
            {"kind": "bernoulli", "p": [0.5] * 4},
            SPARSE,
            torch.eye(3).to_sparse_coo(),
            2,
            r"4 per-row probabilities but the input has 3 rows",
        ),
        (
            {"kind": "subset", "size": 4},
            GAUSS,
            torch.rand(3, 3),
            2,
            r"selection.size=4: cannot select more rows than the input's 3",
        ),
        (
            {"kind": "subset", "size": 4},
            GAUSS,
            torch.rand(3, 1, 1),
            2,
            r"selection.size=4: cannot select more rows than the input's 1",
        ),
        (
            {"kind": "subset", "size": 2, "entities": 5},
            GAUSS,
            torch.rand(3, 3),
            2,
            r"selection.entities=5 but the input has 3 rows",
        ),
        (BERNOULLI, {"kind": "ablation"}, torch.rand(3, 3), 2, None),  # wrong token shape: see below
    ],
)
def test_bad_input_raises_value_error(selection, noise, x, n, fragment):
    s = smoothing(selection, noise)
    if fragment is None:
        with pytest.raises(ValueError, match=r"noise.token has shape \(2,\): must have one value per column, \(3,\)"):
            s.sample(x, n, gen(100), token=torch.zeros(2))
        return
    with pytest.raises(ValueError, match=fragment):
        s.sample(x, n, gen(100))


def test_bad_input_other_rules():
    with pytest.raises(ValueError, match=r"n=0"):
        smoothing(BERNOULLI, GAUSS).sampler(torch.rand(3, 3)).draw(0)
    ablation = smoothing(BERNOULLI, {"kind": "ablation"})
    rows = torch.rand(3, 2, generator=gen(6))
    as_list = ablation.sample(rows, 4, gen(7), token=[0.5, 0.25])  # a list is a token too
    assert torch.equal(as_list, ablation.sample(rows, 4, gen(7), token=torch.tensor([0.5, 0.25])))
    with pytest.raises(ValueError, match=r"token: the ablation token must be finite numbers"):
        ablation.sample(torch.rand(3, 2), 4, gen(7), token=torch.tensor([float("nan"), 0.0]))
    for stream in (3, np.random.default_rng(0)):  # not a torch.Generator: one line, not torch's overload list
        with pytest.raises(ValueError, match=r"generator: must be a torch.Generator or None, got (int|Generator)"):
            smoothing(BERNOULLI, GAUSS).sample(torch.rand(3, 3), 2, stream)
        with pytest.raises(ValueError, match=r"generator: must be a torch.Generator or None"):
            smoothing(BERNOULLI, GAUSS).sample_each(torch.rand(2, 1, 3, 3), stream)
    with pytest.raises(ValueError, match=r"a sparse input must be an \(N, D\) feature matrix"):
        smoothing(BERNOULLI, SPARSE).sample(torch.zeros(2, 2, 2).to_sparse_coo(), 2)
    with pytest.raises(ValueError, match=r"selection.size=11: cannot select more rows than selection.entities=10"):
        smoothing({"kind": "subset", "size": 11, "entities": 10}, GAUSS)
    with pytest.raises(ValueError, match=r"token: .*takes no token"):
        smoothing(BERNOULLI, SPARSE).sample(torch.eye(3), 2, token=torch.zeros(3))
    with pytest.raises(ValueError, match=r"levine_feizi encoding takes no token"):
        smoothing(BERNOULLI, {"kind": "ablation", "encoding": "levine_feizi"}).sample(
            torch.rand(3, 3), 2, token=torch.zeros(3)
        )
    with pytest.raises(ValueError, match=r"ablation of sparse input supports only the zero token"):
        smoothing(BERNOULLI, {"kind": "ablation", "token": [1.0, 1.0, 1.0]}).sample(torch.eye(3).to_sparse_coo(), 2)
    with pytest.raises(ValueError, match=r"learnable token needs dense input"):
        smoothing(BERNOULLI, {"kind": "ablation"}).sample(torch.eye(3).to_sparse_coo(), 2, token=torch.zeros(3))
