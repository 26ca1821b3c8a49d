"""Lower level of the smoothing distribution: the noise on selected rows (SPEC.md §2.2) and its worst-case bounds.

Each noise gives L(q) and U(q): the least and greatest probability, under the perturbed input, of a classifier
whose probability under the clean input is q, for a change confined to the selected rows (SPEC.md §3):

- ``Gaussian(sigma)``, ℓ2 change ε: L(q) = Φ(Φ⁻¹(q) − ε/σ), U(q) = Φ(Φ⁻¹(q) + ε/σ)   (Cohen et al., 2019);
- ``Sparse(p_plus, p_minus)``, change (ra, rd): discrete Neyman–Pearson over regions (Bojchevski et al., 2020);
- ``Ablation()``: an ablated row carries no information, L(q) = U(q) = q.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np
from scipy.special import ndtr, ndtri

from ..certify.regions import Regions, sparse_regions
from ..threat import Threat


_SMALLEST_FLIP = 1e-300


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"{name}={value!r}: must be a finite number")
    return float(value)


def _require_threat(noise: str, threat: Threat, kinds: tuple[str, ...], example: str) -> None:
    if not isinstance(threat, Threat):
        raise ValueError(f"threat={threat!r}: must be a hiersmooth.Threat")
    if threat.kind not in kinds:
        raise ValueError(f"threat {threat} does not fit {noise} noise: use {example}")


@dataclass(frozen=True)
class Gaussian:
    """w = x + N(0, σ² I) on each selected row; certifies ℓ2 threats."""

    sigma: float

    def __post_init__(self):
        sigma = _number("noise.sigma", self.sigma)
        if sigma <= 0:
            raise ValueError(f"noise.sigma={self.sigma!r}: must be > 0")
        object.__setattr__(self, "sigma", sigma)

    def check_threat(self, threat: Threat) -> None:
        _require_threat("gaussian", threat, ("l2",), "Threat(rows=r, l2=eps)")

    def lower(self, q, threat: Threat):
        self.check_threat(threat)
        return ndtr(ndtri(q) - threat.l2 / self.sigma)

    def upper(self, q, threat: Threat):
        self.check_threat(threat)
        return ndtr(ndtri(q) + threat.l2 / self.sigma)


@dataclass(frozen=True)
class Sparse:
    """Each bit of a selected row flips 0→1 with ``p_plus`` and 1→0 with ``p_minus``; certifies (ra, rd) threats."""

    p_plus: float
    p_minus: float

    def __post_init__(self):
        for name in ("p_plus", "p_minus"):
            value = _number(f"noise.{name}", getattr(self, name))
            if not 0 <= value < 1:
                raise ValueError(f"noise.{name}={value!r}: must be in [0, 1)")
            if 0 < value < _SMALLEST_FLIP:
                raise ValueError(f"noise.{name}={value!r}: must be 0 or at least {_SMALLEST_FLIP:g} (binomial masses underflow below)")
            object.__setattr__(self, name, value)
        if self.p_plus + self.p_minus >= 1:
            raise ValueError(
                f"noise.p_plus + noise.p_minus = {self.p_plus + self.p_minus:g}: must be < 1 "
                "(otherwise a flipped sample is more likely to come from the flipped input)"
            )

    def check_threat(self, threat: Threat) -> None:
        _require_threat("sparse", threat, ("bits",), "Threat(rows=r, added=ra, deleted=rd)")

    def regions(self, threat: Threat) -> Regions:
        """The likelihood-ratio regions of the threat's ra added and rd deleted bits."""
        self.check_threat(threat)
        return sparse_regions(threat.added, threat.deleted, self.p_plus, self.p_minus)

    def lower(self, q, threat: Threat):
        return self.regions(threat).lower(q)

    def upper(self, q, threat: Threat):
        return self.regions(threat).upper(q)


@dataclass(frozen=True)
class Ablation:
    """Each selected row is replaced by a fixed token; certifies any change to the rows (values unbounded)."""

    def check_threat(self, threat: Threat) -> None:
        _require_threat("ablation", threat, ("rows", "l2", "bits"), "Threat(rows=r)")

    def lower(self, q, threat: Threat):
        self.check_threat(threat)
        return np.asarray(q, dtype=float)

    def upper(self, q, threat: Threat):
        self.check_threat(threat)
        return np.asarray(q, dtype=float)


Noise = Gaussian | Sparse | Ablation

NOISES = {"gaussian": Gaussian, "sparse": Sparse, "ablation": Ablation}
