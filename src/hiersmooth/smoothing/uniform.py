"""Uniform noise U[−λ, λ]^D on each selected row, certifying ℓ1 threats (Yang et al., ICML 2020, "Randomized
smoothing of all shapes and sizes"), hierarchical through Theorem 1 like every other noise family.

Two uniform densities on cubes of side 2λ shifted by δ overlap except on a mass of
TV(δ) = 1 − Π_i (1 − |δ_i|/(2λ)) ≤ ‖δ‖₁/(2λ) on each side, with equality when δ sits on one coordinate — the
worst case of an ℓ1 budget ε (≤ 2λ). The likelihood ratio is 1 on the overlap and 0 or ∞ elsewhere, so the
Neyman–Pearson bounds are, with t = ε/(2λ):

    L(q) = max(0, q − t),        U(q) = min(1, q + t).

(Changed rows outside the selection carry no noise and are covered by Δ in Theorem 1; the budget bounds the
change over all changed rows together, as the ℓ2 budget of gaussian noise does.) The largest certified ε per
point and r is found by bisection on the sound decision itself, to adjacent doubles, never rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..rounding import down, one_minus, up
from ..threat import Threat
from .noise import (
    Draw,
    Noise,
    _complement,
    _floating,
    _number,
    _with_indicator,
    radius_axes,
    radius_by_bisection,
    radius_on_axes,
    radius_over_rows,
)


@dataclass(frozen=True)
class Uniform(Noise):
    """w = x + U[−λ, λ]^D on each selected row; certifies ℓ1 threats ``Threat(rows=r, l1=eps)``."""

    kind: ClassVar[str] = "uniform"
    threat_kinds: ClassVar[tuple[str, ...]] = ("l1",)
    threat_example: ClassVar[str] = "r=R,l1=E (Threat(r=R, l1=E))"
    axes: ClassVar[tuple[str, ...]] = ("l1",)
    certificate: ClassVar[str] = "largest_l1"

    lam: float

    def __post_init__(self):
        lam = _number("noise.lam", self.lam)
        if lam <= 0:
            raise ValueError(f"noise.lam={self.lam!r}: must be > 0 (the half-width λ of the uniform noise)")
        object.__setattr__(self, "lam", lam)

    def _shift(self, eps) -> np.ndarray:
        """t = ε/(2λ), rounded up (the mass that can move: never under-estimated; 2λ is exact in float64)."""
        return up(np.asarray(eps, dtype=float) / (2 * self.lam))

    def lower(self, q, threat: Threat, complement=None):
        """L(q) = max(0, q − ε/(2λ)), rounded down."""
        self.check_threat(threat)
        return self._lower(q, complement, threat.l1)

    def upper(self, q, threat: Threat, complement=None):
        """U(q) = min(1, q + ε/(2λ)), rounded up."""
        self.check_threat(threat)
        return self._upper(q, complement, threat.l1)

    def _lower(self, q, complement, eps):
        q, complement = _complement(q, complement, "up")
        least = np.maximum(q, one_minus(complement, "down"))  # q* >= both
        return np.maximum(down(least - self._shift(eps)), 0.0)

    def _upper(self, q, complement, eps):
        q, complement = _complement(q, complement, "down")
        most = np.minimum(q, one_minus(complement, "up"))  # q* <= both
        return np.minimum(up(most + self._shift(eps)), 1.0)

    @property
    def dense_input(self) -> bool:
        return True

    def grid_values(self, threat: Threat) -> tuple:
        return (threat.l1,)

    def largest_l1(self, certificate, rows) -> np.ndarray:
        """Largest certified ℓ1 radius per point and r in ``rows``, (points, rows): certified for (r, ε > 0) iff
        ε < it; ∞ for r = 0 unless the point abstains, 0 where nothing is certified."""
        rows = np.atleast_1d(np.asarray(rows))
        selected = np.asarray(certificate.smoothing.selection.selected_all(rows), dtype=float)
        radius = radius_by_bisection(
            certificate,
            selected,
            self.lam,
            lambda q, c, eps, where: self._lower(q, c, eps),
            lambda q, c, eps, where: self._upper(q, c, eps),
        )
        return radius_over_rows(certificate, rows, radius)

    def certified_on_axes(self, certificate, axes: dict[str, list]) -> np.ndarray:
        return radius_on_axes(certificate, axes, "l1", self.largest_l1)

    def point_certificate(self, certificate, axes: dict[str, list]) -> dict[str, np.ndarray]:
        return {"radius": self.largest_l1(certificate, axes["rows"])}

    def default_axes(self, certificates, selection) -> dict[str, list]:
        return radius_axes(certificates, selection, "l1", self.largest_l1)

    def prepare(self, rows, sparse: bool) -> Draw:
        """w_i = x_i + λ·(2u − 1), u ~ U[0, 1)^D, on the selected rows."""
        import torch

        if sparse:
            raise ValueError("uniform noise needs a dense input; convert sparse features with .to_dense()")
        rows = _floating(rows)

        def draw(mask, indicator, generator=None, token=None):
            noise = torch.rand(*mask.shape, rows.shape[1], generator=generator, device=rows.device, dtype=rows.dtype)
            noisy = torch.where(mask.unsqueeze(-1), noise.mul_(2 * self.lam).sub_(self.lam).add_(rows), rows)
            return _with_indicator(noisy, mask, indicator)

        return draw
