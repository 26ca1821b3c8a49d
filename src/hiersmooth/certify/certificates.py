"""Per-point certificates: the binary and multi-class decision rules applied to bounds on p_A (SPEC.md §3–§4).

Given, per point, a lower bound p_A on the probability of the selected class A (and, for the multi-class
rule, an upper bound p_B on every other class; :mod:`hiersmooth.certify.certification` computes both from
vote counts):

- binary certificate: certified for a threat iff p̲_{X̃,A} > 1/2;
- multi-class certificate: certified iff p̲_{X̃,A} > p̄_{X̃,B}.

A point whose bound fails already for the empty threat abstains. Beyond the exact yes/no answer for any threat
(:meth:`Certificate.certified`), each noise family has its natural per-point certificate, computed by the noise
(:class:`hiersmooth.smoothing.noise.Noise`) and reachable here under its name: ``largest_l2(rows)`` (gaussian:
the largest certified ℓ2 radius per r), ``certified_bits(rows, added, deleted)`` (sparse: the certified
(r, ra, rd) grid), ``largest_rows()`` (ablation: the largest certified r), ``largest_l1(rows)`` (uniform).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..smoothing.hierarchical import Smoothing
from ..smoothing.theorem1 import theorem1_lower, theorem1_upper
from ..threat import Threat


@dataclass(frozen=True)
class Certificate:
    """One decision rule applied to every point: ``binary`` (p_upper is None) or ``multiclass``."""

    name: str
    smoothing: Smoothing
    p_lower: np.ndarray
    p_upper: np.ndarray | None = None
    cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # the noise's grids by axes

    @property
    def abstain(self) -> np.ndarray:
        """Points not certified even for the empty threat: p_A <= 1/2 (binary), p_A <= p_B (multi-class)."""
        return ~(self.p_lower > (0.5 if self.p_upper is None else self.p_upper))

    def decide(self, selected, lower, upper, points=slice(None)) -> np.ndarray:
        """Certified iff p̲_{X̃,A} > 1/2 (binary) or > p̄_{X̃,B} (multi-class), with s = 1 − Δ >= ``selected``.

        ``lower(q, complement)`` and ``upper(q, complement)`` are the noise's sound bounds L, U for the threat
        (shaped as ``selected`` broadcast against the ``points``). Both sides are sound float64 bounds (p̲ rounded
        down, p̄ up), so a point certified here is certified in exact arithmetic."""
        least = theorem1_lower(self.p_lower[points], selected, lower)
        if self.p_upper is None:
            return least > 0.5
        return least > theorem1_upper(self.p_upper[points], selected, upper)

    def certified(self, threat: Threat) -> np.ndarray:
        """Whether each point is certified against ``threat`` (bool per point; sound, SPEC.md §8)."""
        threat, selected = self.smoothing.resolve(threat)
        if threat.rows == 0:  # nothing can change
            return ~self.abstain
        noise = self.smoothing.noise
        return self.decide(selected, lambda q, c: noise.lower(q, threat, c), lambda q, c: noise.upper(q, threat, c))

    def certified_on_axes(self, axes: dict[str, list]) -> np.ndarray:
        """Certified per point at every threat of a grid, bool array (points, threats), the threats in the order of
        ``itertools.product`` over the axes (rows, then the noise's axes: eps, added × deleted, l1, or none).

        The same decisions as :meth:`certified` threat by threat (an empty budget or r = 0 changes nothing:
        certified iff not abstaining), through the family's per-point certificate computed once for the grid."""
        return self.smoothing.noise.certified_on_axes(self, axes).reshape(len(self.p_lower), -1)

    def certified_many(self, threats: list[Threat]) -> np.ndarray:
        """Certified per point and threat, bool array (points, threats): the grid of the threats' distinct values
        (:meth:`certified_on_axes`; r as far as each threat can spend it, ``Threat.effective``), read at each threat."""
        noise = self.smoothing.noise
        for threat in threats:
            noise.check_threat(threat)
        rows = np.array([min(t.effective.rows, 2**62) for t in threats], dtype=np.int64)
        coordinates = [rows, *(np.array(values) for values in zip(*(noise.grid_values(t) for t in threats)))]
        axes = [np.unique(values) for values in coordinates]
        grid = noise.certified_on_axes(self, dict(zip(("rows", *noise.axes), axes)))
        return grid[(slice(None), *(np.searchsorted(axis, values) for axis, values in zip(axes, coordinates)))]

    def __getattr__(self, name: str):
        """The noise family's per-point certificate under its name (``largest_l2``, ``certified_bits``, ...)."""
        if name.startswith("_") or name in ("smoothing", "cache", "name", "p_lower", "p_upper"):
            raise AttributeError(name)
        noise = self.smoothing.noise
        if name != getattr(noise, "certificate", None):
            raise AttributeError(
                f"{name}: not a certificate of {noise.kind} noise (its per-point certificate is {noise.certificate})"
            )
        return functools.partial(getattr(noise, name), self)
