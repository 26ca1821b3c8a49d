"""Uniform noise and ℓ1 threats (Yang et al., 2020), hierarchical through Theorem 1: the worst case against the
geometry of two shifted cubes (exact rationals), the radii against closed forms, sampling, and the whole path
from a config to the command line's table."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch

import hiersmooth
from hiersmooth.cli import main
from hiersmooth.experiments.grid import load_experiment
from hiersmooth.smoothing.uniform import Uniform

REPOSITORY = __import__("pathlib").Path(__file__).resolve().parents[1]


def _non_overlap(delta, lam) -> Fraction:
    """The mass of U[−λ, λ]^d outside U[δ − λ, δ + λ]^d, exactly: 1 − Π_i max(0, 1 − |δ_i|/(2λ))."""
    inside = Fraction(1)
    for component in delta:
        inside *= max(Fraction(0), 1 - abs(Fraction(component)) / (2 * Fraction(lam)))
    return 1 - inside


def _worst_case_lower(q, delta, lam) -> Fraction:
    """Neyman–Pearson for two uniform densities: the likelihood ratio is ∞ on the part of X's cube outside X̃'s
    (X̃-mass 0) and 1 on the overlap, so a classifier with X-mass q puts as much as it can outside first."""
    return max(Fraction(0), Fraction(q) - _non_overlap(delta, lam))


@pytest.mark.parametrize("lam", [0.25, 1.0, 3.0])
def test_the_l1_bound_is_the_worst_case_over_shifts_of_the_cube(lam):
    rng = np.random.default_rng(0)
    noise = Uniform(lam)
    for eps, q in itertools.product([0.0, 0.1, 0.5, 1.3 * lam], [0.0, 0.2, 0.5, 0.9, 1.0]):
        threat = hiersmooth.Threat(rows=1, l1=eps)
        bound = Fraction(float(noise.lower(q, threat)))
        # on one coordinate the shift reaches the bound: tight (to rounding)
        axis_aligned = _worst_case_lower(q, [eps, 0.0, 0.0], lam)
        assert bound <= axis_aligned and axis_aligned - bound <= Fraction(1, 2**40)
        for _ in range(20):  # every other shift with ‖δ‖₁ = ε moves less mass: the bound is below all of them
            weights = rng.dirichlet(np.ones(3)) * eps * rng.choice([-1, 1], 3)
            assert bound <= _worst_case_lower(q, weights.tolist(), lam)
        upper = Fraction(float(noise.upper(q, threat)))
        assert upper >= min(Fraction(1), Fraction(q) + _non_overlap([eps, 0, 0], lam))


def test_radii_match_the_closed_forms_and_never_exceed_them():
    smoothing = hiersmooth.from_config({"selection": {"kind": "all"}, "noise": {"kind": "uniform", "lam": 0.5}})
    counts = np.array([[9000, 600, 400], [7000, 2500, 500], [5200, 4800, 0]])
    result = hiersmooth.certify_votes({"pre_votes": counts, "votes": counts, "labels": [0, 0, 0]}, smoothing)
    p_a, p_b = result.multiclass.p_lower, result.multiclass.p_upper
    # s = 1: binary certified iff p_A − ε/(2λ) > 1/2; multi-class iff p_A − ε/(2λ) > p_B + ε/(2λ)
    binary = result.binary.largest_l1([1])[:, 0]
    exact = [max(Fraction(0), 2 * Fraction(0.5) * (Fraction(float(p)) - Fraction(1, 2))) for p in result.binary.p_lower]
    multi = result.multiclass.largest_l1([1])[:, 0]
    exact_multi = [
        max(Fraction(0), Fraction(0.5) * (Fraction(float(a)) - Fraction(float(b)))) for a, b in zip(p_a, p_b)
    ]
    for found, closed in zip([*binary, *multi], [*exact, *exact_multi]):
        assert Fraction(float(found)) <= closed and float(closed) - found <= 1e-12


def test_hierarchical_l1_is_certified_exactly_where_theorem1_says():
    smoothing = hiersmooth.from_config(
        {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "uniform", "lam": 1.0}}
    )
    counts = np.array([[9500, 300, 200], [8000, 1500, 500], [5500, 4000, 500]])
    result = hiersmooth.certify_votes({"pre_votes": counts, "votes": counts, "labels": [0, 1, 0]}, smoothing)
    radius = result.binary.largest_l1([1, 2])
    certified_somewhere = 0
    for point, (k, r) in itertools.product(range(3), enumerate([1, 2])):
        s = Fraction(4, 5) ** r
        q = (Fraction(float(result.binary.p_lower[point])) - (1 - s)) / s
        closed = max(Fraction(0), 2 * (q - 1 / (2 * s)))  # s·(q − ε/2) > 1/2
        assert Fraction(float(radius[point, k])) <= closed and float(closed) - radius[point, k] <= 1e-12
        below, above = float(closed) * (1 - 1e-9), float(closed) * (1 + 1e-9) + 1e-12  # (l1 = 0 changes nothing)
        assert closed == 0 or result.binary.certified(hiersmooth.Threat(rows=r, l1=below))[point]
        assert not result.binary.certified(hiersmooth.Threat(rows=r, l1=above))[point]
        certified_somewhere += closed > 0
    assert 0 < certified_somewhere < 6  # both sides of the boundary are exercised


def test_uniform_samples_stay_in_the_cube_on_selected_rows_only():
    smoothing = hiersmooth.from_config(
        {"selection": {"kind": "bernoulli", "p": 0.5}, "noise": {"kind": "uniform", "lam": 0.3}}
    )
    x = torch.rand(6, 5, dtype=torch.float64)
    samples = smoothing.sample(x, n=4000, generator=torch.Generator().manual_seed(0))
    values, selected = samples[..., :-1], samples[..., -1].bool()
    noise = values - x
    assert torch.equal(values[~selected], x.expand_as(values)[~selected])  # unselected rows bit-identical
    inside = noise[selected]
    assert inside.abs().max() <= 0.3 and abs(float(inside.mean())) < 0.01
    assert abs(float(inside.var()) - 0.3**2 / 3) < 0.002  # Var U[−λ, λ] = λ²/3
    assert abs(float(selected.double().mean()) - 0.5) < 0.02


def test_threats_configs_and_the_command_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="noise.lam"):
        Uniform(0.0)
    with pytest.raises(ValueError, match="does not fit uniform noise"):
        Uniform(1.0).lower(0.9, hiersmooth.Threat(rows=1, l2=0.5))
    config = tmp_path / "uniform.yaml"
    config.write_text("selection: {kind: bernoulli, p: 0.9}\nnoise: {kind: uniform, lam: 1.0}\n")
    votes = tmp_path / "votes.npz"
    counts = np.array([[90, 5, 5], [10, 80, 10], [30, 30, 40]])
    np.savez(votes, pre_votes=counts, votes=counts * 100, labels=np.array([0, 1, 2]))
    out = tmp_path / "out" / "c.csv"
    assert (
        main(
            [
                "certify-votes",
                str(votes),
                "--smoothing",
                str(config),
                "--out",
                str(out),
                "--rows",
                "1-2",
                "--l1",
                "0,0.5",
            ]
        )
        == 0
    )
    header, *rows = out.read_text().splitlines()
    assert header == "certificate,r,l1,certified_accuracy,certified_ratio" and len(rows) == 2 * 2 * 2
    assert "certified accuracy, l1" in capsys.readouterr().out
    assert main(["certify-votes", str(votes), "--smoothing", str(config), "--out", str(out), "--eps", "0.5"]) == 2
    assert "--eps does not apply to uniform noise" in capsys.readouterr().err
    experiment = load_experiment(REPOSITORY / "experiments" / "digits_l1.yaml")
    assert {cell.run.smoothing.noise.kind for cell in experiment.cells} == {"uniform"}
    assert set(experiment.threats) == {"rows", "l1"}
