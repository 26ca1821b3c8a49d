"""The vectorised sparse grid against the certificate decided cell by cell (SPEC.md §3, §8).

``Certificate.certified_bits`` decides a whole (r, ra, rd) grid in a few array passes, with the regions of all
(ra, rd) cells stacked (``Sparse.regions_of``). Here the same grid is built the slow way: one
``Certificate.certified(Threat(r, added=ra, deleted=rd))`` call per cell, with the rule ``certified_bits``
documents (a point is decided at (ra, rd) only where it is certified, for some r, at the previous ra and the
previous rd of the axes). The two must agree bit for bit on random small vote sets, for every selection kind,
with abstaining points, p_A next to 1, r = 0, huge r, and axes given unsorted, repeated or with gaps.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

import hiersmooth
from hiersmooth import Threat
from hiersmooth.certify.certification import certify_votes
from hiersmooth.certify.votes import Votes
from hiersmooth.smoothing.regions import Regions, _binomial_pmf, sparse_regions

SMOOTHINGS = {
    "bernoulli": ({"kind": "bernoulli", "p": 0.81}, (0.05, 0.8)),
    "all": ({"kind": "all"}, (0.05, 0.8)),
    "subset": ({"kind": "subset", "size": 40, "entities": 50}, (0.1, 0.5)),
    "per-row": ({"kind": "bernoulli", "p": [0.99, 0.9, 0.95, 0.97, 0.8]}, (0.05, 0.8)),
    "no additions": ({"kind": "bernoulli", "p": 0.95}, (0.0, 0.7)),
    "no deletions": ({"kind": "bernoulli", "p": 0.95}, (0.2, 0.0)),
    "tiny p_plus": ({"kind": "bernoulli", "p": 0.999}, (1e-200, 0.3)),
}
AXES = [
    ([1, 2, 3, 4], range(12), range(16)),
    ([0, 1, 3, 10**12], [0, 1, 2, 5, 9, 20], [0, 2, 3, 7, 30]),
]


def random_votes(seed: int, points: int = 24, classes: int = 4, n: int = 2000, n0: int = 100) -> Votes:
    """Vote counts from class probabilities of every spread: near-ties (abstaining points) to p_A = 1."""
    rng = np.random.default_rng(seed)
    concentration = rng.choice([0.3, 1.0, 5.0, 50.0], size=points)
    probabilities = np.array([rng.dirichlet(np.full(classes, c)) for c in concentration])
    probabilities[:2] = np.eye(classes)[0]  # every vote for one class: p_A within a few 1e-4 of 1
    votes = np.array([rng.multinomial(n, p) for p in probabilities])
    pre_votes = np.array([rng.multinomial(n0, p) for p in probabilities])
    return Votes(pre_votes, votes, rng.integers(0, classes, points))


def certificates(name: str, seed: int):
    selection, (p_plus, p_minus) = SMOOTHINGS[name]
    noise = {"kind": "sparse", "p_plus": p_plus, "p_minus": p_minus}
    smoothing = hiersmooth.from_config({"selection": selection, "noise": noise})
    return certify_votes(random_votes(seed), smoothing).certificates


def cell_by_cell(cert, rows, added, deleted) -> np.ndarray:
    """The grid from one ``certified`` call per (r, ra, rd), pruned by the rule of ``certified_bits``."""
    grid = np.zeros((len(cert.p_lower), len(rows), len(added), len(deleted)), dtype=bool)
    for i, ra in enumerate(added):
        for j, rd in enumerate(deleted):
            decided = np.ones(len(cert.p_lower), dtype=bool)
            if i:
                decided &= grid[:, :, i - 1, j].any(axis=1)
            if j:
                decided &= grid[:, :, i, j - 1].any(axis=1)
            for k, r in enumerate(rows):
                grid[:, k, i, j] = decided & cert.certified(Threat(rows=int(r), added=int(ra), deleted=int(rd)))
    return grid


@pytest.mark.parametrize("name", SMOOTHINGS)
@pytest.mark.parametrize("axes", range(len(AXES)))
def test_grid_equals_cell_by_cell(name, axes):
    rows, added, deleted = (np.asarray(list(axis)) for axis in AXES[axes])
    for seed in range(2):
        for cert in certificates(name, seed):
            expected = cell_by_cell(cert, rows, added, deleted)
            grid = cert.certified_bits(rows, added, deleted)
            assert grid.shape == expected.shape
            wrong = np.argwhere(grid != expected)
            assert not wrong.size, f"{name} {cert.name} seed {seed}: (point, r, ra, rd) indices {wrong[:5].tolist()}"
            assert expected.any() and not expected.all()  # the grid has both certified and uncertified cells
            assert cert.abstain.any(), f"{name} seed {seed}: the vote sets should include abstaining points"


def test_pruning_rule_where_the_decision_is_not_monotone(monkeypatch):
    """Where certification is not monotone (here forced: the cell (ra, rd) = (2, 3) gets the regions of a far larger
    threat), the grid still follows the documented rule, which then drops cells certified on their own."""
    import hiersmooth.smoothing.noise as noise_module

    def doctored(added, deleted, p_plus, p_minus):
        return sparse_regions(*((40, 40) if (added, deleted) == (2, 3) else (added, deleted)), p_plus, p_minus)

    monkeypatch.setattr(noise_module, "sparse_regions", doctored)
    rows, added, deleted = [1, 2, 3], range(8), range(10)
    dropped = 0
    for name in ("bernoulli", "all"):
        for cert in certificates(name, 5):
            expected = cell_by_cell(cert, rows, added, deleted)
            grid = cert.certified_bits(rows, added, deleted)
            np.testing.assert_array_equal(grid, expected, err_msg=f"{name} {cert.name}")
            for ra, rd in ((3, 3), (2, 4)):  # the cells just behind the doctored one, at r = 1
                dropped += int(np.sum(cert.certified(Threat(rows=1, added=ra, deleted=rd)) & ~grid[:, 0, ra, rd]))
    assert dropped  # the doctored cell really cuts off cells behind it


def test_lockstep_search_counts_as_searchsorted():
    """The per-element search over stacked cells counts like ``np.searchsorted(…, side="right")``, ties included."""
    cells = [(0, 0), (3, 1), (0, 9), (20, 30), (1, 1)]
    stacked = Regions.stack([sparse_regions(a, d, 0.05, 0.8) for a, d in cells])
    for order in (stacked.forward, stacked.backward):
        cell = np.repeat(np.arange(len(cells)), order.size + 1)
        exact = order.cum_x  # every cumulative mass of every cell, each compared with its own cell
        for budget in (exact, np.nextafter(exact, -np.inf), np.nextafter(exact, np.inf), np.full(exact.shape, 0.5)):
            expected = [
                np.searchsorted(order.cum_x[s : s + n + 1], b, side="right")
                for s, n, b in zip(order.start[cell], order.size[cell], budget)
            ]
            np.testing.assert_array_equal(order._filled(budget, cell), expected)


def test_grid_in_any_axis_order():
    """Unsorted and repeated axis values index the same grid."""
    rows, added, deleted = [3, 1, 1, 2], [4, 0, 2, 2], [5, 1, 0, 9, 1]
    for cert in certificates("bernoulli", 3):
        grid = cert.certified_bits(rows, added, deleted)
        expected = cell_by_cell(cert, *(np.unique(axis) for axis in (rows, added, deleted)))
        index = [np.searchsorted(np.unique(axis), axis) for axis in (rows, added, deleted)]
        np.testing.assert_array_equal(grid, expected[:, index[0]][:, :, index[1]][:, :, :, index[2]])
        grid[...] = False  # a copy: the cached grid is untouched
        assert cert.certified_bits(rows, added, deleted).any()


def test_certified_many_equals_certified():
    rng = np.random.default_rng(7)
    threats = [Threat(rows=int(r), added=int(a), deleted=int(d)) for r, a, d in rng.integers(0, 9, size=(60, 3))]
    for cert in certificates("per-row", 4):
        many = cert.certified_many(threats)
        for t, threat in enumerate(threats):
            grid = cell_by_cell(cert, [threat.rows], range(threat.added + 1), range(threat.deleted + 1))
            np.testing.assert_array_equal(many[:, t], grid[:, 0, -1, -1], err_msg=f"{cert.name} {threat}")


@pytest.mark.parametrize("p_plus, p_minus", [(0.05, 0.8), (0.0, 0.7), (0.2, 0.0), (1e-200, 0.3)])
def test_stacked_regions_bound_each_cell_as_alone(p_plus, p_minus):
    """Regions of many (ra, rd) in one call give, element by element, the bounds of each cell on its own."""
    rng = np.random.default_rng(11)
    cells = [(0, 0), (0, 1), (1, 0), (150, 2)] + [tuple(pair) for pair in rng.integers(0, 50, size=(30, 2))]
    stacked = Regions.stack([sparse_regions(int(a), int(d), p_plus, p_minus) for a, d in cells])
    q = np.concatenate([rng.random(2000), rng.random(200) * 1e-12, 1 - rng.random(200) * 1e-12, [0.0, 0.5, 1.0]])
    complement = np.minimum(1 - q + rng.random(q.size) * 1e-17, 1.0)
    cell = rng.integers(0, len(cells), q.size)
    for bound in ("lower", "upper"):
        together = getattr(stacked, bound)(q, complement, cell)
        alone = np.empty(q.size)
        for k, (a, d) in enumerate(cells):
            mine = cell == k
            alone[mine] = getattr(sparse_regions(int(a), int(d), p_plus, p_minus), bound)(q[mine], complement[mine])
        np.testing.assert_array_equal(together, alone, err_msg=bound)


def test_binomial_masses_are_scipy_stats():
    """The regions' binomial masses come from SciPy's ufunc directly: still scipy.stats' pmf, bit for bit."""
    for p in (0.0, 1e-200, 0.05, 0.2, 0.5, 0.8, 0.95, 1 - 2**-52):
        for n in (0, 1, 2, 7, 41, 61, 200, 5000):
            expected = binom.pmf(np.arange(n + 1), n, p)
            np.testing.assert_array_equal(_binomial_pmf(n, p), expected, err_msg=f"n={n}, p={p}")


@pytest.mark.parametrize(
    "rows, added, deleted, message",
    [
        (1, [0.5], 0, r"added: must be a non-empty list of integers, found 0.5"),  # was read as ra = 0
        (1, 0, [-1], r"deleted: values must be integers in \[0, 2\^63 - 1\]"),
        ([True], 0, 0, r"rows: must be a non-empty list of integers, found True"),
        (1, 10**20, 0, r"added: values must be integers in \[0, 2\^63 - 1\]"),
    ],
)
def test_certified_bits_refuses_axes_that_are_not_counts(rows, added, deleted, message):
    smoothing = hiersmooth.from_config(
        {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "sparse", "p_plus": 0.05, "p_minus": 0.6}}
    )
    result = certify_votes(Votes(np.array([[90, 10]]), np.array([[900, 100]]), np.array([0])), smoothing)
    with pytest.raises(ValueError, match=message):
        result.binary.certified_bits(rows, added, deleted)
    assert result.binary.certified_bits(np.int64(1), [1, 0, 1], 0).shape == (1, 1, 3, 1)  # order and repeats kept
