"""Lower level of the smoothing distribution: the noise on selected rows (SPEC.md §2.2) and its worst-case bounds.

Each noise gives L(q) and U(q): the least and greatest probability, under the perturbed input, of a classifier
whose probability under the clean input is q, for a change confined to the selected rows (SPEC.md §3):

- ``Gaussian(sigma)``, ℓ2 change ε: L(q) = Φ(Φ⁻¹(q) − ε/σ), U(q) = Φ(Φ⁻¹(q) + ε/σ)   (Cohen et al., 2019);
- ``Sparse(p_plus, p_minus)``, change (ra, rd): discrete Neyman–Pearson over regions (Bojchevski et al., 2020);
- ``Ablation()``: an ablated row carries no information, L(q) = U(q) = q.

Both bounds are sound in float64 (SPEC.md §8): ``lower(q, threat, complement)`` returns a float at or below
L(q*) for every q* >= ``q`` with 1 − q* <= ``complement``, and ``upper(q, threat, complement)`` a float at or above
U(q*) for every q* <= ``q`` with 1 − q* >= ``complement``. The complement (1 − q computed without cancellation by
the caller, Theorem 1) keeps q within 1e-15 of 1 accurate; when it is not given it is 1 − q rounded outward.

Each noise also samples: ``prepare(rows, sparse)`` checks an input given as N rows of D values once and returns
``draw(mask, indicator, generator, token)``, which turns a selection mask (n, N) into n noisy copies
(n, N, D' [+1]) — or, for sparse binary input, one (n·N, D' [+1]) sparse CSR matrix (the disjoint union).
PyTorch is imported only when sampling, so certifying vote counts never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

from .regions import Regions, sparse_regions
from ..rounding import down, one_minus, up
from ..threat import Threat
from .normal import cdf_down, cdf_up, probit_down, probit_up


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

    def prepare(self, rows, sparse: bool):
        """w_i = x_i + σ·ε_i, ε_i ~ N(0, I), on the selected rows; x stays in its own (e.g. [0, 1] pixel) space."""
        import torch

        if sparse:
            raise ValueError("gaussian noise needs a dense input; convert sparse features with .to_dense()")
        rows = _floating(rows)

        def draw(mask, indicator, generator=None, token=None):
            noise = torch.randn(*mask.shape, rows.shape[1], generator=generator, device=rows.device, dtype=rows.dtype)
            noisy = torch.where(mask.unsqueeze(-1), noise.mul_(self.sigma).add_(rows), rows)  # unselected rows: x itself
            return _with_indicator(noisy, mask, indicator)

        return draw


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

    def prepare(self, rows, sparse: bool):
        """Flip the bits of the selected rows, 0→1 with p₊ and 1→0 with p₋, by sparse draws (``bit_flips``)."""
        return _prepare_bit_flips(rows, sparse, self.p_plus, self.p_minus, "sparse noise")


ABLATION_ENCODINGS = ("token", "levine_feizi")


@dataclass(frozen=True)
class Ablation:
    """Each selected row is replaced by a token; certifies any change to the rows (values unbounded).

    ``encoding="token"``: the row becomes ``token`` (zeros when not given; a model's learnable
    ``nn.Parameter`` can be passed at sampling time instead). ``encoding="levine_feizi"``: the input is
    encoded as [x, 1 − x] (2D values per row) and both halves are zeroed where ablated (Levine & Feizi, 2020).
    """

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

    def check_threat(self, threat: Threat) -> None:
        _require_threat("ablation", threat, ("rows", "l2", "bits"), "Threat(rows=r)")

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

    def prepare(self, rows, sparse: bool):
        """Replace the selected rows by the token (or zero both halves of the Levine–Feizi encoding)."""
        import torch

        if sparse:
            if self.encoding != "token" or self.token is not None and any(self.token):
                raise ValueError("ablation of sparse input supports only the zero token; pass dense features for other tokens")
            draw_bits = _prepare_bit_flips(rows, True, 0.0, 1.0, "ablation of sparse input")

            def draw_sparse(mask, indicator, generator=None, token=None):
                if token is not None:
                    raise ValueError("token: a learnable token needs dense input features (sparse input ablates to zeros)")
                return draw_bits(mask, indicator, generator)

            return draw_sparse
        rows = _floating(rows)
        if self.encoding == "levine_feizi":
            encoded = torch.cat([rows, 1 - rows], dim=1)

            def draw_levine_feizi(mask, indicator, generator=None, token=None):
                if token is not None:
                    raise ValueError("token: the levine_feizi encoding takes no token")
                kept = (~mask).unsqueeze(-1).to(rows.dtype)
                return _with_indicator(encoded * kept, mask, indicator)

            return draw_levine_feizi
        fixed = torch.zeros(rows.shape[1], dtype=rows.dtype, device=rows.device)
        if self.token is not None:
            fixed = torch.tensor(self.token, dtype=rows.dtype, device=rows.device)

        def draw(mask, indicator, generator=None, token=None):
            value = fixed if token is None else token
            if value.shape != (rows.shape[1],):
                raise ValueError(f"noise.token has shape {tuple(value.shape)}: must have one value per column, ({rows.shape[1]},)")
            return _with_indicator(torch.where(mask.unsqueeze(-1), value.to(rows.dtype), rows), mask, indicator)

        return draw


def _floating(rows):
    import torch

    if not torch.is_floating_point(rows):
        rows = rows.float()
    return rows


def _with_indicator(noisy, mask, indicator: bool):
    """Append τ = mask as the last column of (n, N, D) noisy rows when ``indicator`` is on."""
    if not indicator:
        return noisy
    out = noisy.new_empty(*noisy.shape[:-1], noisy.shape[-1] + 1)  # filled by two copies: faster than torch.cat here
    out[..., :-1] = noisy
    out[..., -1] = mask
    return out


def _prepare_bit_flips(rows, sparse: bool, p_plus: float, p_minus: float, what: str):
    """Check that ``rows`` is binary, index its 1-bits once, and return the sparse bit-flip sampler."""
    import torch

    from .bit_flips import BitFlips

    if sparse:
        rows = rows.to_sparse_coo().coalesce()
        values = rows.values()
        if not bool(torch.all((values == 0) | (values == 1))):
            raise ValueError(f"{what} needs binary features (0 or 1); found the value {values[(values != 0) & (values != 1)][0].item()}")
        ones = rows.indices()[:, values == 1]  # explicitly stored zeros are zeros
        dense_bits = torch.zeros(rows.shape, dtype=torch.bool, device=rows.device)
        dense_bits[ones[0], ones[1]] = True
    else:
        binary = (rows == 0) | (rows == 1)
        if not bool(torch.all(binary)):
            raise ValueError(f"{what} needs binary features (0 or 1); found the value {rows[~binary][0].item()}")
        dense_bits = rows == 1
        ones = torch.nonzero(dense_bits).T
    dtype = rows.dtype if torch.is_floating_point(rows) else torch.float32
    flips = BitFlips(ones, dense_bits, p_plus, p_minus)

    def draw(mask, indicator, generator=None, token=None):
        if token is not None:
            raise ValueError(f"token: {what} takes no token")
        samples = flips.draw(mask, indicator, dtype, generator)
        return samples if sparse else samples.to_dense().view(*mask.shape, samples.shape[1])

    return draw


Noise = Gaussian | Sparse | Ablation

NOISES = {"gaussian": Gaussian, "sparse": Sparse, "ablation": Ablation}
