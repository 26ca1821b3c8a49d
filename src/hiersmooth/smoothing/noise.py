"""Lower level of the smoothing distribution: the noise on selected rows (SPEC.md §2.2), its worst-case bounds, and
everything a noise family contributes to a certificate — one :class:`Noise` subclass per family.

Each noise gives L(q) and U(q): the least and greatest probability, under the perturbed input, of a classifier
whose probability under the clean input is q, for a change confined to the selected rows (SPEC.md §3):

- ``Gaussian(sigma)``, ℓ2 change ε: L(q) = Φ(Φ⁻¹(q) − ε/σ), U(q) = Φ(Φ⁻¹(q) + ε/σ)   (Cohen et al., 2019);
- ``Sparse(p_plus, p_minus)``, change (ra, rd): discrete Neyman–Pearson over regions (Bojchevski et al., 2020);
- ``Ablation()``: an ablated row carries no information, L(q) = U(q) = q;
- ``Uniform(lam)`` (:mod:`.uniform`), ℓ1 change ε: L(q) = max(0, q − ε/(2λ)) (Yang et al., 2020).

Both bounds are sound in float64 (SPEC.md §8): ``lower(q, threat, complement)`` returns a float at or below
L(q*) for every q* >= ``q`` with 1 − q* <= ``complement``, and ``upper(q, threat, complement)`` a float at or above
U(q*) for every q* <= ``q`` with 1 − q* >= ``complement``. The complement (1 − q computed without cancellation by
the caller, Theorem 1) keeps q within 1e-15 of 1 accurate; when it is not given it is 1 − q rounded outward.

A family also names its threat axes (``axes``: the budget beside the changed rows r) and turns a
certificate's bounds into its natural per-point certificate over a grid of threats (``certified_on_axes``,
``point_certificate``: the largest ε per r, the certified (r, ra, rd) grid, the largest r), chooses the default
grid (``default_axes``) and the printed views (``views``); generic code (certificates, tables, outputs, the CLI,
experiments) uses only this interface. The certificate it is handed is duck-typed: ``p_lower``, ``p_upper``
(None for the binary rule), ``abstain``, ``smoothing``, ``cache`` and ``decide(selected, lower, upper, points)``.

Each noise also samples: ``prepare(rows, sparse)`` checks an input given as N rows of D values once and returns
``draw(mask, indicator, generator, token)``, which turns a selection mask (n, N) into n noisy copies
(n, N, D' [+1]) — or, for sparse binary input, one (n·N, D' [+1]) sparse CSR matrix (the disjoint union).
PyTorch is imported only when sampling, so certifying vote counts never needs it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from numbers import Real
from typing import ClassVar, Protocol

import numpy as np

from ..rounding import down, one_minus, up
from ..threat import Threat, axis_values
from .normal import cdf_down, cdf_up, probit_down, probit_up
from .regions import Regions, sparse_regions
from .theorem1 import theorem1_argument, theorem1_lower, theorem1_upper, theorem1_upper_argument

_SMALLEST_FLIP = 1e-300


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"{name}={value!r}: must be a finite number")
    return float(value)


def _complement(q, complement, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """(q, a bound on 1 − q): the given complement, or 1 − q rounded ``direction``."""
    q = np.asarray(q, dtype=float)
    if complement is None:
        return q, one_minus(q, direction)
    return np.broadcast_arrays(q, np.asarray(complement, dtype=float))


def _require_threat(noise: str, threat: Threat, kinds: tuple[str, ...], example: str) -> None:
    if not isinstance(threat, Threat):
        raise ValueError(f"threat={threat!r}: must be a hiersmooth.Threat")
    if threat.kind not in kinds:
        raise ValueError(f"threat {threat} does not fit {noise} noise: use {example}")


class Draw(Protocol):
    """What ``Noise.prepare`` returns: turns a selection mask (n, N) into n noisy copies of the prepared rows,
    (n, N, D' [+1]) with τ = mask appended when ``indicator`` (or one sparse CSR (n·N, D' [+1]) for sparse binary
    input), drawing from ``generator``; ``token`` is a model's learned ablation token, where the family takes one."""

    def __call__(self, mask, indicator: bool, generator=None, token=None): ...


class BlockDraw(Draw, Protocol):
    """A :class:`Draw` that also draws several blocks at once: ``blocks(masks, indicator, generators, token)`` is
    the blocks' draws, block k's ``masks[k]`` from ``generators[k]``, stacked as one tensor (``Sampler.draw_blocks``
    uses it where present)."""

    def blocks(self, masks, indicator: bool, generators, token=None): ...


class Noise(ABC):
    """A noise family (the lower level): its bounds L, U, its threats, and its per-point certificate.

    Subclasses are frozen dataclasses holding the family's parameters (the ``noise:`` config keys) and set:
    ``kind`` (the config name), ``threat_kinds`` (the :attr:`Threat.kind` values it certifies, with
    ``threat_example`` for errors), ``axes`` (the threat-grid axes beside ``rows``) and ``certificate``
    (the name of its per-point certificate method, e.g. ``largest_l2``, also reachable as
    ``Certificate.<name>``). ``costly_draw`` says whether drawing a sample costs about as much as a forward pass
    (sparse bit flips on a graph); on a CPU such samples are drawn and classified by two worker threads side by
    side, since one thread's draws would idle the other cores, while cheap draws leave every thread to one
    forward pass at a time (``SmoothedClassifier.block_votes``).
    """

    kind: ClassVar[str]
    threat_kinds: ClassVar[tuple[str, ...]]
    threat_example: ClassVar[str]
    axes: ClassVar[tuple[str, ...]]
    certificate: ClassVar[str]
    costly_draw: ClassVar[bool] = False

    def check_threat(self, threat: Threat) -> None:
        """A ValueError unless ``threat`` is a :class:`Threat` of a kind this noise certifies."""
        _require_threat(self.kind, threat, self.threat_kinds, self.threat_example)

    @abstractmethod
    def lower(self, q, threat: Threat, complement=None):
        """A sound lower bound on L(q) (see the module docstring)."""

    @abstractmethod
    def upper(self, q, threat: Threat, complement=None):
        """A sound upper bound on U(q)."""

    @abstractmethod
    def certified_on_axes(self, certificate, axes: dict[str, list]) -> np.ndarray:
        """Certified per point at every threat of the grid ``axes`` (``rows`` and this family's ``axes``): bool
        (points, len(rows), ...), the same decisions as ``certificate.certified`` threat by threat."""

    @abstractmethod
    def point_certificate(self, certificate, axes: dict[str, list]) -> dict[str, np.ndarray]:
        """The per-point certificate written to the per-point files, by name (e.g. ``{"radius": (points, rows)}``)."""

    @abstractmethod
    def default_axes(self, certificates, selection) -> dict[str, list]:
        """Grid axes covering every threat at which some point is certified by one of ``certificates``."""

    def views(self, axes: dict[str, list]) -> list[tuple[str, dict, str, list]]:
        """The printed views of a certified-accuracy table: (title, fixed columns, varying column, its values)."""
        if not self.axes:
            return [("r", {}, "r", axes["rows"])]
        column = self.axes[0]
        return [(column, {}, column, axes[column])]

    def grid_values(self, threat: Threat) -> tuple:
        """The values of this family's grid axes that ``threat`` stands at (``certified_many`` groups by them)."""
        return ()

    def sample_width(self, values: int) -> int:
        """Values per row of a sample (before the indicator) for input rows of ``values`` values."""
        return values

    @property
    def flips_per_value(self) -> float:
        """Expected 0→1 flips per input value (the memory estimate of sparse samples); 0 for dense noise."""
        return 0.0

    @property
    def binary_input(self) -> bool:
        """Whether the family flips bits (binary input, where sparse CSR features are much faster)."""
        return False

    @property
    def dense_input(self) -> bool:
        """Whether the family's samples are dense whatever the input (noise on every value of a selected row), so
        sparse graph features are made dense before sampling."""
        return False

    @property
    def takes_learned_token(self) -> bool:
        """Whether a model's learnable ``ablation_token`` replaces ablated rows."""
        return False

    @property
    def ablates(self) -> bool:
        """Whether selected rows lose their values altogether (so a set model may leave them out)."""
        return False

    @abstractmethod
    def prepare(self, rows, sparse: bool) -> Draw:
        """Check N rows of D values once and return ``draw(mask, indicator, generator, token)`` (module docstring)."""


_SEARCH_LIMIT = 1 << 20
_BISECTION_STEPS = 64  # halvings of the bracket's bit patterns: enough to reach adjacent doubles
_BRACKET_DOUBLINGS = 64  # the margin at ε fails long before the scale times 2⁶⁴


def largest_true(predicate, start: int, limit: int | None = None) -> int:
    """Largest k >= start with predicate(k) true, for a predicate true up to some k and false after; start − 1 if none.

    Exponential then binary search; stops at ``limit`` (inclusive) when given.
    """
    if not predicate(start):
        return start - 1
    good, step = start, 1
    while True:
        probe = good + step
        if limit is not None and probe >= limit:
            if predicate(limit):
                return limit
            bad = limit
            break
        if probe > _SEARCH_LIMIT:
            raise ValueError(f"points stay certified beyond {_SEARCH_LIMIT} changes; give the threat grid explicitly")
        if not predicate(probe):
            bad = probe
            break
        good, step = probe, 2 * step
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if predicate(middle) else (good, middle)
    return good


def nice_step(largest: float, points: int = 100) -> float:
    """The smallest of 1, 2.5, 5 × 10^k giving at most ``points`` steps up to ``largest``."""
    if not largest > 0 or not math.isfinite(largest):
        return 0.05
    exponent = math.floor(math.log10(largest / points))
    return min(m * 10.0**e for e in (exponent, exponent + 1) for m in (1, 2.5, 5) if m * 10.0**e * points >= largest)


def largest_budget(certified, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Largest budget ε >= 0 (to adjacent doubles) with ``certified(eps, where)`` true, per element of ``shape``;
    0 where it fails already at ε = 0.

    ``certified(eps, where)`` decides, soundly, the elements selected by the bool mask ``where`` at the budgets
    ``eps`` (an array of ``shape``) and returns bools of ``shape``; it must be monotone (true up to a root, false
    beyond). Bisection keeps certified(low), not certified(high) and returns ``low``: a budget that is certified,
    never one beyond the root. The bracket starts at ``scale`` and doubles."""
    low = np.zeros(shape)
    solve = certified(low, np.ones(shape, dtype=bool))
    high = np.where(solve, scale, 0.0)
    for _ in range(_BRACKET_DOUBLINGS):  # grow the bracket until its upper end is not certified
        still = certified(high, solve & (high > low))
        if not still.any():
            break
        low, high = np.where(still, high, low), np.where(still, 2 * high, high)
    # Bisection on the bit patterns: non-negative doubles are ordered as their int64 patterns, so at most 64
    # halvings reach adjacent doubles anywhere in the bracket.
    for _ in range(_BISECTION_STEPS):
        low_bits, high_bits = low.view(np.int64), high.view(np.int64)
        moving = solve & (high_bits - low_bits > 1)
        if not moving.any():
            break
        middle = (low_bits + (high_bits - low_bits) // 2).view(np.float64)
        above = certified(middle, moving)
        low = np.where(moving & above, middle, low)
        high = np.where(moving & ~above, middle, high)
    return low


def radius_on_axes(certificate, axes: dict[str, list], axis: str, radius) -> np.ndarray:
    """Certified on rows × ``axis`` from the largest certified radius per r (``radius(certificate, rows)``):
    certified at (r, ε) iff ε < ε*(r), and at ε = 0 (nothing changes) iff the point does not abstain."""
    rows = np.asarray(axes["rows"], dtype=np.int64)
    budget = np.asarray(axes[axis], dtype=float)
    certified = radius(certificate, rows)[:, :, None] > budget[None, None, :]
    certified[:, :, budget == 0] = ~certificate.abstain[:, None, None]
    return certified


def radius_axes(certificates, selection, axis: str, radius) -> dict[str, list]:
    """Default rows × ``axis`` grid for a family with a largest certified radius per r: r up to the last row at
    which any point has a positive radius, the budget in nice steps up to the largest radius and one step beyond."""
    last_row = max(
        1, largest_true(lambda r: any((radius(c, [r]) > 0).any() for c in certificates), 1, selection.constant_from)
    )
    rows = list(range(1, last_row + 1))
    largest = max(float(radius(c, rows).max()) for c in certificates)
    step = nice_step(largest)
    return {"rows": rows, axis: [round(step * k, 12) for k in range(int(largest / step) + 2)]}


def radius_by_bisection(certificate, selected: np.ndarray, scale: float, lower, upper) -> np.ndarray:
    """Largest certified budget per point and r by bisection on the sound decision itself (Theorem 1 with the
    family's bounds), (points, len(selected)) for ``selected`` the lower bounds on s = P(C ⊆ S) of each r.

    ``lower(q, complement, eps, where)`` and ``upper(...)`` bound L and U at budgets ``eps`` for the (point, r)
    elements the bool mask ``where`` selects (a family may read values it precomputed for them there)."""
    p_a = np.broadcast_to(certificate.p_lower[:, None], (len(certificate.p_lower), len(selected)))
    s = np.broadcast_to(np.asarray(selected, dtype=float)[None, :], p_a.shape)
    p_b = None if certificate.p_upper is None else np.broadcast_to(certificate.p_upper[:, None], p_a.shape)

    def certified(eps, where):
        out = np.zeros(p_a.shape, dtype=bool)
        if where.any():
            budget = eps[where]
            least = theorem1_lower(p_a[where], s[where], lambda q, c: lower(q, c, budget, where))
            bar = 0.5 if p_b is None else theorem1_upper(p_b[where], s[where], lambda q, c: upper(q, c, budget, where))
            out[where] = least > bar
        return out

    return largest_budget(certified, p_a.shape, scale)


def radius_over_rows(certificate, rows, radius: np.ndarray) -> np.ndarray:
    """``radius`` (points, rows), each a sound lower bound on the exact radius at its r, made what the exact radius
    is: ∞ at r = 0 unless the point abstains (nothing can change), and non-increasing in r — the least over every
    r' ≤ r given, still sound since the exact radius falls with r (roundings at different Δ(r) can otherwise leave
    it a few ulps higher at a larger r)."""
    rows = np.asarray(rows)
    radius = np.where(rows[None, :] == 0, np.where(certificate.abstain[:, None], 0.0, np.inf), radius)
    order = np.argsort(rows, kind="stable")
    radius[:, order] = np.minimum.accumulate(radius[:, order], axis=1)
    return radius


@dataclass(frozen=True)
class Gaussian(Noise):
    """w = x + N(0, σ² I) on each selected row; certifies ℓ2 threats."""

    kind: ClassVar[str] = "gaussian"
    threat_kinds: ClassVar[tuple[str, ...]] = ("l2",)
    threat_example: ClassVar[str] = "r=R,eps=E (Threat(r=R, eps=E))"
    axes: ClassVar[tuple[str, ...]] = ("eps",)
    certificate: ClassVar[str] = "largest_l2"

    sigma: float

    def __post_init__(self):
        sigma = _number("noise.sigma", self.sigma)
        if sigma <= 0:
            raise ValueError(f"noise.sigma={self.sigma!r}: must be > 0")
        object.__setattr__(self, "sigma", sigma)

    def lower(self, q, threat: Threat, complement=None):
        """L(q) = Φ(Φ⁻¹(q) − ε/σ), rounded down."""
        self.check_threat(threat)
        return self.lower_from_probit(probit_down(*_complement(q, complement, "up")), threat.l2)

    def upper(self, q, threat: Threat, complement=None):
        """U(q) = Φ(Φ⁻¹(q) + ε/σ), rounded up."""
        self.check_threat(threat)
        return self.upper_from_probit(probit_up(*_complement(q, complement, "down")), threat.l2)

    def lower_from_probit(self, z, eps) -> np.ndarray:
        """Φ(z − ε/σ) rounded down, for z a lower bound on Φ⁻¹(q) and ℓ2 budgets ``eps`` (broadcast against z)."""
        return cdf_down(down(z - up(np.asarray(eps) / self.sigma)))

    def upper_from_probit(self, z, eps) -> np.ndarray:
        """Φ(z + ε/σ) rounded up, for z an upper bound on Φ⁻¹(q) and ℓ2 budgets ``eps`` (broadcast against z)."""
        return cdf_up(up(z + up(np.asarray(eps) / self.sigma)))

    @property
    def dense_input(self) -> bool:
        return True

    def grid_values(self, threat: Threat) -> tuple:
        return (threat.l2,)

    def largest_l2(self, certificate, rows) -> np.ndarray:
        """Largest certified ℓ2 radius ε* per point and per r in ``rows``, shape (points, rows).

        Certified for (r, ε > 0) iff ε < ε* (ε = 0 changes nothing: certified iff not abstaining). Binary:
        ε* = σ·(Φ⁻¹((p_A − Δ)/(1 − Δ)) − Φ⁻¹(1/(2(1 − Δ)))) when 1 − Δ > 1/2 (SPEC.md §3), each Φ⁻¹ bounded on
        the certified side and the difference rounded down. Multi-class: the root in ε of
        (1−Δ)Φ(a − ε/σ) = (1−Δ)Φ(b + ε/σ) + Δ, a = Φ⁻¹((p_A−Δ)/(1−Δ)), b = Φ⁻¹(p_B/(1−Δ)), found by bisection on
        the sound decision itself (Theorem 1 rounded outward) to adjacent doubles and reported at the end of the
        bracket that is still certified — never rounded up. 0 where nothing is certified. For r = 0 nothing can
        change: ε* = ∞ unless the point abstains.
        """
        rows = np.atleast_1d(np.asarray(rows))
        selected = np.asarray(certificate.smoothing.selection.selected_all(rows), dtype=float)[None, :]
        if certificate.p_upper is None:
            reachable, q, complement = theorem1_argument(certificate.p_lower[:, None], selected)
            half = up(0.5 / selected)  # certified iff Φ(a − ε/σ) > 1/(2s): needs 1/(2s) < 1
            b = probit_up(np.minimum(half, 1.0), one_minus(np.minimum(half, 1.0), "down"))
            with np.errstate(invalid="ignore"):
                t = np.where(reachable & (half < 1.0), down(probit_down(q, complement) - b), 0.0)
            radius = down(self.sigma * np.maximum(t, 0.0))
        else:
            radius = self._multiclass_radius(certificate, selected)
        return radius_over_rows(certificate, rows, np.where(np.isnan(radius), 0.0, np.maximum(radius, 0.0)))

    def _multiclass_radius(self, certificate, selected: np.ndarray) -> np.ndarray:
        """Largest ε (to adjacent doubles) at which the sound multi-class decision still certifies; 0 where none.
        The exact margin falls monotonically in ε (SPEC.md §3), so every ε' below it is certified too."""
        p_a, p_b, s = np.broadcast_arrays(certificate.p_lower[:, None], certificate.p_upper[:, None], selected)
        # Φ⁻¹ of Theorem 1's arguments does not depend on ε: computed once, only Φ is evaluated per step.
        z_a = probit_down(*theorem1_argument(p_a, s)[1:])
        z_b = probit_up(*theorem1_upper_argument(p_b, s))
        return radius_by_bisection(
            certificate,
            selected[0],
            self.sigma,
            lambda q, c, eps, where: self.lower_from_probit(z_a[where], eps),
            lambda q, c, eps, where: self.upper_from_probit(z_b[where], eps),
        )

    def certified_on_axes(self, certificate, axes: dict[str, list]) -> np.ndarray:
        return radius_on_axes(certificate, axes, "eps", self.largest_l2)

    def point_certificate(self, certificate, axes: dict[str, list]) -> dict[str, np.ndarray]:
        return {"radius": self.largest_l2(certificate, axes["rows"])}

    def default_axes(self, certificates, selection) -> dict[str, list]:
        return radius_axes(certificates, selection, "eps", self.largest_l2)

    def prepare(self, rows, sparse: bool) -> Draw:
        """w_i = x_i + σ·ε_i, ε_i ~ N(0, I), on the selected rows; x stays in its own (e.g. [0, 1] pixel) space."""
        import torch

        if sparse:
            raise ValueError("gaussian noise needs a dense input; convert sparse features with .to_dense()")
        rows = _floating(rows)
        values = rows.shape[1]
        # x + σ·(ε·τ) is x itself, bit for bit, on an unselected row (x + ±0 = x) unless x holds a −0 (−0 + 0 = +0)
        # or σ overflows the dtype (∞·0); then, and where autograd records, x + σ·ε is taken where τ = 1 instead
        masked_sum = math.isfinite(torch.tensor(self.sigma, dtype=rows.dtype).item()) and not bool(
            torch.any((rows == 0) & torch.signbit(rows))
        )

        def draw(mask, indicator, generator=None, token=None):
            out = _empty_samples(rows, mask.shape[0], values + indicator)
            noise = _randn_like(out[..., :values], generator)  # one N(0, 1) per value, in out's memory order
            if _tracks_gradients(rows) or not masked_sum:  # (out= would cut autograd's graph)
                noisy = torch.where(mask.unsqueeze(-1), noise.mul_(self.sigma).add(rows), rows)
                return _with_indicator(noisy, mask, indicator)
            # written straight into the sample tensor — for value-major rows in the (n, D, N) frame of its memory,
            # where every operand is contiguous; τ (as 0/1 in the dtype) is the factor that zeroes ε off S
            frame = (lambda t: t.transpose(-1, -2)) if out.stride(1) == 1 and values > 1 else (lambda t: t)
            _fill_indicator(out, mask, indicator)
            tau = out[..., values:] if indicator else mask.unsqueeze(-1).to(rows.dtype)
            torch.add(frame(rows), frame(noise).mul_(frame(tau)), alpha=self.sigma, out=frame(out[..., :values]))
            return out

        return draw


@dataclass(frozen=True)
class Sparse(Noise):
    """Each bit of a selected row flips 0→1 with ``p_plus`` and 1→0 with ``p_minus``; certifies (ra, rd) threats."""

    kind: ClassVar[str] = "sparse"
    costly_draw: ClassVar[bool] = True  # ~330,000 added bits per Cora-ML sample: ~0.4× a GCN's forward pass
    threat_kinds: ClassVar[tuple[str, ...]] = ("bits",)
    threat_example: ClassVar[str] = "r=R,ra=A,rd=D (Threat(r=R, ra=A, rd=D))"
    axes: ClassVar[tuple[str, ...]] = ("added", "deleted")
    certificate: ClassVar[str] = "certified_bits"

    p_plus: float
    p_minus: float

    def __post_init__(self):
        for name in ("p_plus", "p_minus"):
            value = _number(f"noise.{name}", getattr(self, name))
            if not 0 <= value < 1:
                raise ValueError(f"noise.{name}={value!r}: must be in [0, 1)")
            if 0 < value < _SMALLEST_FLIP:
                raise ValueError(
                    f"noise.{name}={value!r}: must be 0 or at least {_SMALLEST_FLIP:g} "
                    "(binomial masses underflow below)"
                )
            object.__setattr__(self, name, value)
        if self.p_plus + self.p_minus >= 1:
            raise ValueError(
                f"noise.p_plus + noise.p_minus = {self.p_plus + self.p_minus:g}: must be < 1 "
                "(otherwise a flipped sample is more likely to come from the flipped input)"
            )

    def regions(self, threat: Threat) -> Regions:
        """The likelihood-ratio regions of the threat's ra added and rd deleted bits."""
        self.check_threat(threat)
        return sparse_regions(threat.added, threat.deleted, self.p_plus, self.p_minus)

    def regions_of(self, cells) -> Regions:
        """The regions of the threats with ra, rd = each (added, deleted) pair of ``cells``, stacked: cell k of the
        result is the k-th pair (for :meth:`Regions.lower` and :meth:`Regions.upper` with ``cell=``)."""
        return Regions.stack([sparse_regions(int(ra), int(rd), self.p_plus, self.p_minus) for ra, rd in cells])

    def lower(self, q, threat: Threat, complement=None):
        """L(q) over the threat's likelihood-ratio regions, rounded down."""
        return self.regions(threat).lower(*_complement(q, complement, "up"))

    def upper(self, q, threat: Threat, complement=None):
        """U(q) over the threat's likelihood-ratio regions, rounded up."""
        return self.regions(threat).upper(*_complement(q, complement, "down"))

    @property
    def flips_per_value(self) -> float:
        return self.p_plus

    @property
    def binary_input(self) -> bool:
        return True

    def grid_values(self, threat: Threat) -> tuple:
        return (threat.added, threat.deleted)

    def views(self, axes: dict[str, list]) -> list[tuple[str, dict, str, list]]:
        """Sparse grids are shown along their two edges: deletions only (ra = 0), then additions only (rd = 0)."""
        return [("rd (ra=0)", {"ra": 0}, "rd", axes["deleted"]), ("ra (rd=0)", {"rd": 0}, "ra", axes["added"])]

    def certified_bits(self, certificate, rows, added, deleted) -> np.ndarray:
        """Certified (r, ra, rd) grid per point: bool array (points, rows, added, deleted).

        Certification is monotone in ra and rd (SPEC.md §3), so a point is decided at (ra, rd) only where it is
        certified, for some r, at the previous ra and at the previous rd of the axes (not certified elsewhere): the
        work follows the certified region, not the whole grid. Cached per axes in ``certificate.cache`` (the table
        and the per-point files ask for the same grid).
        """
        (rows, row_of), (added, added_of), (deleted, deleted_of) = (
            np.unique(_count_axis(name, axis), return_inverse=True)
            for name, axis in (("rows", rows), ("added", added), ("deleted", deleted))
        )
        key = ("certified_bits", rows.tobytes(), added.tobytes(), deleted.tobytes())
        if key not in certificate.cache:
            certificate.cache[key] = self._certified_bits(certificate, rows, added, deleted)
        grid = certificate.cache[key]
        for axis, inverse in enumerate((row_of, added_of, deleted_of), start=1):
            if not np.array_equal(inverse, np.arange(grid.shape[axis])):  # asked for unsorted or repeated
                grid = grid.take(inverse, axis=axis)
        return grid.copy()

    def _certified_bits(self, certificate, rows: np.ndarray, added: np.ndarray, deleted: np.ndarray) -> np.ndarray:
        """``certified_bits`` on sorted distinct axes: one ra at a time, every point, r and rd at once.

        Cell by cell along the axes, the rule of :meth:`certified_bits` reads: a point is decided at (ra, rd) iff it
        is certified for some r at the previous ra and at the previous rd (where it was decided), else it is not
        certified there. Unrolled: decided at (ra, rd) iff certified for some r at every other cell of the rectangle
        [first ra, ra] × [first rd, rd] of the axes. So ``reached`` (certified for some r on the whole rectangle up
        to (ra, rd): a cumulative AND along rd) is all one ra hands on to the next, which is decided where
        ``reached`` holds at its rd and its own row's cumulative AND at the previous rd.
        """
        points = len(certificate.p_lower)
        grid = np.zeros((points, len(rows), len(added), len(deleted)), dtype=bool)
        # at most ra + rd rows can change: s = P(C ⊆ S) is needed up to that many rows only, however large r
        most = int(min(rows[-1], added[-1] + deleted[-1]))
        selected_of_rows = np.asarray(certificate.smoothing.selection.selected_all(np.arange(most + 1)), dtype=float)
        reached = np.ones((points, len(deleted)), dtype=bool)  # before the first ra: no condition
        for i, ra in enumerate(added):
            if not reached.any():
                break
            decided = self._certified_row(certificate, rows, ra, deleted, reached, selected_of_rows)
            reached = np.logical_and.accumulate(decided.any(axis=1), axis=1)
            at_previous_rd = np.concatenate([np.ones((points, 1), dtype=bool), reached[:, :-1]], axis=1)
            grid[:, :, i, :] = decided & at_previous_rd[:, None, :]
        grid.setflags(write=False)
        return grid

    def _certified_row(self, certificate, rows, ra, deleted, where, selected_of_rows) -> np.ndarray:
        """Certified against (r, ra, rd) for every r in ``rows`` and rd in ``deleted``, at the (point, rd) pairs of
        ``where`` (False elsewhere): bool array (points, rows, deleted).

        The regions of every (ra, rd) are computed once and bound all points; ra + rd flipped bits change at most
        ra + rd rows (Threat.effective), so s = P(C ⊆ S) is that of min(r, ra + rd) rows. Where that is no row at
        all, nothing changes and the point is certified iff it does not abstain.
        """
        point, column = np.nonzero(where)
        regions = self.regions_of([(ra, rd) for rd in deleted[: column.max() + 1]])
        changeable = np.minimum(rows[None, :], ra + deleted[column][:, None])
        point, column = (np.broadcast_to(index[:, None], changeable.shape) for index in (point, column))
        certified = ~certificate.abstain[point]
        moved = changeable > 0
        cell = column[moved]
        certified[moved] = certificate.decide(
            selected_of_rows[changeable[moved]],
            lambda q, c: regions.lower(q, c, cell),
            lambda q, c: regions.upper(q, c, cell),
            point[moved],
        )
        out = np.zeros((len(certificate.p_lower), len(rows), len(deleted)), dtype=bool)
        out[point, np.arange(len(rows))[None, :], column] = certified
        return out

    def certified_on_axes(self, certificate, axes: dict[str, list]) -> np.ndarray:
        rows = np.minimum(np.asarray(axes["rows"], dtype=np.int64), 2**62)
        return self.certified_bits(certificate, rows, axes["added"], axes["deleted"])

    def point_certificate(self, certificate, axes: dict[str, list]) -> dict[str, np.ndarray]:
        return {"certified": self.certified_bits(certificate, axes["rows"], axes["added"], axes["deleted"])}

    def default_axes(self, certificates, selection) -> dict[str, list]:
        """r up to the last at which some split of r flipped bits is certified; ra (rd) up to the last certified
        with one row and no deletions (additions), and one step beyond."""

        def any_certified(threats):
            return any(cert.certified(threat).any() for cert in certificates for threat in threats)

        last_row = max(
            1,
            largest_true(
                lambda r: any_certified([Threat(r, added=a, deleted=r - a) for a in range(r + 1)]),
                1,
                selection.constant_from,
            ),
        )
        last_added = largest_true(lambda a: any_certified([Threat(1, added=a, deleted=0)]), 0)
        last_deleted = largest_true(lambda d: any_certified([Threat(1, added=0, deleted=d)]), 0)
        return {
            "rows": list(range(1, last_row + 1)),
            "added": list(range(max(last_added, 0) + 2)),
            "deleted": list(range(max(last_deleted, 0) + 2)),
        }

    def prepare(self, rows, sparse: bool) -> Draw:
        """Flip the bits of the selected rows, 0→1 with p₊ and 1→0 with p₋, by sparse draws (``bit_flips``)."""
        return _prepare_bit_flips(rows, sparse, self.p_plus, self.p_minus, "sparse noise")


ABLATION_ENCODINGS = ("token", "levine_feizi")


@dataclass(frozen=True)
class Ablation(Noise):
    """Each selected row is replaced by a token; certifies any change to the rows (values unbounded).

    ``encoding="token"``: the row becomes ``token`` (zeros when not given; a model's learnable
    ``nn.Parameter`` can be passed at sampling time instead). ``encoding="levine_feizi"``: the input is
    encoded as [x, 1 − x] (2D values per row) and both halves are zeroed where ablated (Levine & Feizi, 2020).
    """

    kind: ClassVar[str] = "ablation"
    threat_kinds: ClassVar[tuple[str, ...]] = ("rows", "l2", "bits")
    threat_example: ClassVar[str] = "r=R (Threat(r=R))"
    axes: ClassVar[tuple[str, ...]] = ()
    certificate: ClassVar[str] = "largest_rows"

    token: tuple[float, ...] | None = None
    encoding: str = "token"

    def __post_init__(self):
        if self.encoding not in ABLATION_ENCODINGS:
            raise ValueError(f"noise.encoding={self.encoding!r}: must be one of {', '.join(ABLATION_ENCODINGS)}")
        if self.token is not None:
            if isinstance(self.token, (str, bytes)) or not hasattr(self.token, "__len__") or len(self.token) == 0:
                raise ValueError(f"noise.token={self.token!r}: must be a list of numbers, one per value of a row")
            object.__setattr__(self, "token", tuple(_number(f"noise.token[{i}]", v) for i, v in enumerate(self.token)))
            if self.encoding == "levine_feizi":
                raise ValueError("noise.token: the levine_feizi encoding zeroes ablated rows and takes no token")

    def lower(self, q, threat: Threat, complement=None):
        """L(q) = q: the larger of q and 1 − complement, rounded down."""
        self.check_threat(threat)
        q, complement = _complement(q, complement, "up")
        return np.maximum(q, one_minus(complement, "down"))

    def upper(self, q, threat: Threat, complement=None):
        """U(q) = q: the smaller of q and 1 − complement, rounded up."""
        self.check_threat(threat)
        q, complement = _complement(q, complement, "down")
        return np.minimum(q, one_minus(complement, "up"))

    def sample_width(self, values: int) -> int:
        """The Levine–Feizi encoding doubles the values of a row (x and 1 − x)."""
        return 2 * values if self.encoding == "levine_feizi" else values

    @property
    def takes_learned_token(self) -> bool:
        return self.encoding == "token"

    @property
    def ablates(self) -> bool:
        return True

    def largest_rows(self, certificate) -> np.ndarray:
        """Largest r such that the point is certified against any change to r rows (``Threat(rows=r)``).

        −1 where the point abstains; ∞ where Δ stops growing while the point is still certified.
        """
        largest = np.where(certificate.abstain, -1.0, 0.0)
        constant_from = certificate.smoothing.selection.constant_from
        r = 0
        while True:
            r += 1
            certified = certificate.certified(Threat(rows=r))
            if not certified.any():
                return largest
            if constant_from is not None and r >= constant_from:
                largest[certified] = np.inf
                return largest
            largest[certified] = r

    def certified_on_axes(self, certificate, axes: dict[str, list]) -> np.ndarray:
        rows = np.asarray(axes["rows"], dtype=np.int64)
        return self.largest_rows(certificate)[:, None] >= rows[None, :]

    def point_certificate(self, certificate, axes: dict[str, list]) -> dict[str, np.ndarray]:
        return {"largest_rows": self.largest_rows(certificate)}

    def default_axes(self, certificates, selection) -> dict[str, list]:
        """r from 0 to one beyond the largest certified r (to where Δ stops growing when that is unbounded)."""
        largest = max(float(np.max(self.largest_rows(c))) for c in certificates)
        last_row = selection.constant_from if math.isinf(largest) else max(int(largest), 0)
        return {"rows": list(range(0, last_row + 2))}

    def prepare(self, rows, sparse: bool) -> Draw:
        """Replace the selected rows by the token (or zero both halves of the Levine–Feizi encoding)."""
        import torch

        if sparse:
            if self.encoding != "token" or self.token is not None and any(self.token):
                raise ValueError(
                    "ablation of sparse input supports only the zero token; pass dense features for other tokens"
                )
            draw_bits = _prepare_bit_flips(rows, True, 0.0, 1.0, "ablation of sparse input")

            def draw_sparse(mask, indicator, generator=None, token=None):
                if token is not None:
                    raise ValueError(
                        "token: a learnable token needs dense input features (sparse input ablates to zeros)"
                    )
                return draw_bits(mask, indicator, generator)

            return draw_sparse
        rows = _floating(rows)
        if self.encoding == "levine_feizi":
            encoded = torch.cat([rows, 1 - rows], dim=1)
            if _channel_major(rows):  # keep the image's value-major layout (samples are NCHW as drawn)
                encoded = encoded.T.contiguous().T

            def draw_levine_feizi(mask, indicator, generator=None, token=None):
                if token is not None:
                    raise ValueError("token: the levine_feizi encoding takes no token")
                out = _empty_samples(encoded, mask.shape[0], encoded.shape[1] + indicator)
                torch.mul(encoded, (~mask).unsqueeze(-1), out=out[..., : encoded.shape[1]])  # both halves zeroed
                return _fill_indicator(out, mask, indicator)

            return draw_levine_feizi
        fixed = torch.zeros(rows.shape[1], dtype=rows.dtype, device=rows.device)
        if self.token is not None:
            fixed = torch.tensor(self.token, dtype=rows.dtype, device=rows.device)

        def draw(mask, indicator, generator=None, token=None):
            value = fixed if token is None else torch.as_tensor(token, device=rows.device)
            if value.shape != (rows.shape[1],):
                raise ValueError(
                    f"noise.token has shape {tuple(value.shape)}: must have one value per column, ({rows.shape[1]},)"
                )
            if token is not None and not bool(torch.isfinite(value).all()):  # (the config's token is checked)
                raise ValueError("token: the ablation token must be finite numbers (found NaN or infinity)")
            if _tracks_gradients(value, rows):  # a learnable token being trained: out= would drop its gradient
                return _with_indicator(torch.where(mask.unsqueeze(-1), value.to(rows.dtype), rows), mask, indicator)
            out = _empty_samples(rows, mask.shape[0], rows.shape[1] + indicator)
            torch.where(mask.unsqueeze(-1), value.to(rows.dtype), rows, out=out[..., : rows.shape[1]])
            return _fill_indicator(out, mask, indicator)

        return draw


def _count_axis(name: str, values) -> np.ndarray:
    """A count axis of a threat grid as given — an integer or a sequence of them, order and repeats kept — checked
    by :func:`hiersmooth.threat.axis_values` (integers in [0, 2⁶³ − 1], no float, bool or NaN): int64."""
    values = np.asarray(values, dtype=object).reshape(-1).tolist()
    axis_values(name, values)
    return np.asarray(values, dtype=np.int64)


def _floating(rows):
    import torch

    if not torch.is_floating_point(rows):
        rows = rows.float()
    return rows


def _channel_major(rows) -> bool:
    """Whether ``rows`` (N, D) is stored value-major (an image's pixels as rows of a (C, H·W) tensor): samples are
    then laid out as (n, D' [+1], N) in memory, so that an image sample is a contiguous NCHW tensor as drawn."""
    return rows.shape[0] > 1 and rows.stride(0) == 1 and rows.stride(1) == rows.shape[0]


def _empty_samples(rows, n: int, width: int):
    """An uninitialised (n, N, width) sample tensor, stored (n, width, N) when ``rows`` is value-major."""
    import torch

    entities = rows.shape[0]
    if _channel_major(rows):
        return torch.empty(n, width, entities, dtype=rows.dtype, device=rows.device).transpose(1, 2)
    return torch.empty(n, entities, width, dtype=rows.dtype, device=rows.device)


def _randn_like(view, generator):
    """Standard normals filling a tensor of ``view``'s shape, drawn in ``view``'s memory order (one per value)."""
    import torch

    if view.dim() == 3 and view.stride(1) == 1 and view.shape[2] > 1:  # value-major: draw (n, D, N), transpose
        n, entities, values = view.shape
        return torch.randn(n, values, entities, generator=generator, device=view.device, dtype=view.dtype).transpose(
            1, 2
        )
    return torch.randn(*view.shape, generator=generator, device=view.device, dtype=view.dtype)


def _tracks_gradients(*tensors) -> bool:
    """Whether autograd records an operation on ``tensors`` (then samples are built without ``out=``)."""
    import torch

    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _fill_indicator(out, mask, indicator: bool):
    """Write τ = mask into the last column of ``out`` (already sized for it) when ``indicator`` is on."""
    if indicator:
        out[..., -1] = mask
    return out


def _with_indicator(noisy, mask, indicator: bool):
    """Append τ = mask as the last column of (n, N, D) noisy rows when ``indicator`` is on."""
    if not indicator:
        return noisy
    out = noisy.new_empty(*noisy.shape[:-1], noisy.shape[-1] + 1)  # filled by two copies: faster than torch.cat here
    out[..., :-1] = noisy
    out[..., -1] = mask
    return out


_PREPARED_BITS: dict = {}  # (id, version, sparse, p₊, p₋) -> (the rows tensor itself, its BitFlips)
_PREPARED_LIMIT = 4


def _prepare_bit_flips(rows, sparse: bool, p_plus: float, p_minus: float, what: str):
    """Check that ``rows`` is binary, index its 1-bits and 0-bits once, and return the sparse bit-flip sampler.

    The index of the last few inputs is kept (keyed on the tensor's identity and version counter, holding the tensor
    so that its id cannot be reused while cached): certifying a graph builds a sampler per stage, and the index of
    Cora-ML takes tens of milliseconds to build."""
    import torch

    from .bit_flips import BitFlips

    key = (id(rows), _versions(rows), sparse, p_plus, p_minus)
    entry = _PREPARED_BITS.get(key)
    if entry is not None and entry[0] is rows:
        flips = entry[1]
    else:
        flips = BitFlips(*_binary_index(rows, sparse, what), p_plus, p_minus)
        if len(_PREPARED_BITS) >= _PREPARED_LIMIT:
            _PREPARED_BITS.pop(next(iter(_PREPARED_BITS)))
        _PREPARED_BITS[key] = (rows, flips)
    return _BitFlipDraw(flips, rows.dtype if torch.is_floating_point(rows) else torch.float32, sparse, what)


@dataclass(frozen=True)
class _BitFlipDraw:
    """The :class:`BlockDraw` of prepared binary rows: sparse CSR samples for sparse input, dense for dense."""

    flips: object  # BitFlips
    dtype: object
    sparse: bool
    what: str

    def __call__(self, mask, indicator, generator=None, token=None):
        return self.blocks([mask], indicator, [generator], token)

    def blocks(self, masks, indicator, generators, token=None):
        if token is not None:
            raise ValueError(f"token: {self.what} takes no token")
        samples = self.flips.draw_blocks(masks, indicator, self.dtype, generators)
        if self.sparse:
            return samples
        return samples.to_dense().view(sum(mask.shape[0] for mask in masks), masks[0].shape[1], samples.shape[1])


def _versions(rows) -> tuple:
    """The version counters of ``rows`` and of the tensors it is made of (a sparse tensor's indices and values):
    any in-place change to any of them changes this key."""
    import torch

    if rows.layout == torch.sparse_csr:
        parts = (rows.crow_indices(), rows.col_indices(), rows.values())
    elif rows.layout == torch.sparse_coo:
        parts = (rows._indices(), rows._values())
    else:
        parts = ()
    return tuple(part._version for part in (rows, *parts))


def _binary_index(rows, sparse: bool, what: str):
    """(the (2, E) 1-bits sorted by row then column, the (N, D) bool matrix) of binary ``rows``; a ValueError naming
    a value that is neither 0 nor 1."""
    import torch

    if sparse:
        rows = rows.to_sparse_coo().coalesce()
        values = rows.values()
        if not bool(torch.all((values == 0) | (values == 1))):
            raise ValueError(
                f"{what} needs binary features (0 or 1); found the value "
                f"{values[(values != 0) & (values != 1)][0].item()}"
            )
        ones = rows.indices()[:, values == 1]  # explicitly stored zeros are zeros
        dense_bits = torch.zeros(rows.shape, dtype=torch.bool, device=rows.device)
        dense_bits[ones[0], ones[1]] = True
    else:
        binary = (rows == 0) | (rows == 1)
        if not bool(torch.all(binary)):
            raise ValueError(f"{what} needs binary features (0 or 1); found the value {rows[~binary][0].item()}")
        dense_bits = rows == 1
        ones = torch.nonzero(dense_bits).T
    return ones, dense_bits
