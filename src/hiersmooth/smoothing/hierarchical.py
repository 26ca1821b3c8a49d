"""The two-level smoothing distribution Ψ_X and its certificate bounds (SPEC.md §2–§3, Theorem 1 of the paper).

With Δ = Δ(r) the selection's probability that not all changed rows are smoothed and L, U the noise's
worst-case bounds for the same threat, the least and greatest probabilities of a class under any perturbed
input within the threat are (Scholten et al., NeurIPS 2023, Theorem 1; tight):

    p̲ = (1 − Δ) · L((p_A − Δ) / (1 − Δ))       if p_A > Δ, else 0
    p̄ = (1 − Δ) · U(min(1, p_B / (1 − Δ))) + Δ

Both are computed soundly in float64 (SPEC.md §8) from s = 1 − Δ (the selection's lower bound on P(C ⊆ S); p̲
grows and p̄ falls with s) and the complements 1 − p_A, 1 − q, never from Δ itself, so nothing near 1 is cancelled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config_files import build_dataclass, read_yaml
from ..threat import Threat
from .noise import Ablation, Gaussian, Noise, Sparse
from .selection import SELECTIONS, All, Selection
from .theorem1 import theorem1_lower, theorem1_upper
from .uniform import Uniform

NOISES = {noise.kind: noise for noise in (Gaussian, Sparse, Ablation, Uniform)}  # the config's noise kinds


@dataclass(frozen=True)
class Smoothing:
    """Selection (upper level) + noise (lower level) + indicator column τ_i = 1[i ∈ S]."""

    selection: Selection
    noise: Noise
    indicator: bool = True

    def __post_init__(self):
        if not isinstance(self.indicator, bool):
            raise ValueError(f"indicator={self.indicator!r}: must be true or false")

    def delta(self, r):
        """Δ(r) = 1 − P(all r changed rows are selected), worst case over which rows change (an upper bound)."""
        return self.selection.delta(r)

    def resolve(self, threat: Threat) -> tuple[Threat, float]:
        """The threat as far as the adversary can spend it (``Threat.effective``) and a lower bound on its
        s = 1 − Δ = P(C ⊆ S); checks that the threat fits the noise."""
        self.noise.check_threat(threat)
        threat = threat.effective
        return threat, float(self.selection.selected_all(threat.rows))

    def lower_bound(self, p_a, threat: Threat) -> np.ndarray:
        """p̲_{X̃,A}: least probability of class A under any X̃ within ``threat``, given p_{X,A} >= ``p_a``
        (rounded down: never above the exact value)."""
        threat, selected = self.resolve(threat)
        p_a = _probabilities("p_a", p_a)
        if threat.rows == 0:  # nothing can change: exactly p_A
            return p_a.copy()
        return theorem1_lower(p_a, selected, lambda q, c: self.noise.lower(q, threat, c))

    def upper_bound(self, p_b, threat: Threat) -> np.ndarray:
        """p̄_{X̃,B}: greatest probability of class B under any X̃ within ``threat``, given p_{X,B} <= ``p_b``
        (rounded up: never below the exact value)."""
        threat, selected = self.resolve(threat)
        p_b = _probabilities("p_b", p_b)
        if threat.rows == 0:  # nothing can change: exactly p_B
            return p_b.copy()
        return theorem1_upper(p_b, selected, lambda q, c: self.noise.upper(q, threat, c))

    def sampler(self, x):
        """A :class:`~hiersmooth.smoothing.sampler.Sampler` for input ``x``: checks and indexes ``x`` once."""
        from .sampler import Sampler

        return Sampler(self, x)

    def sample(self, x, n: int, generator=None, token=None):
        """n samples Z ~ Ψ_x (SPEC.md §2): (C, H, W) → (n, C [+1], H, W); (N, D) → (n, N, D [+1]); sparse (N, D)
        → sparse CSR (n·N, D [+1]). τ is the last channel/column when ``indicator`` is on."""
        return self.sampler(x).draw(n, generator, token)

    def sample_each(self, xs, generator=None, token=None):
        """One sample of Ψ_x for each input x of a dense batch (training noise): images (B, C, H, W) →
        (B, C' [+1], H, W), feature matrices (B, N, D) → (B, N, D' [+1]).

        Each input gets its own selection mask (``sample_mask(B, N)``); the noise, independent per entity, is
        drawn in one call over the B·N rows, which has the law of B separate draws.
        """
        import torch

        from .sampler import check_generator

        if not isinstance(xs, torch.Tensor) or xs.layout != torch.strided or xs.dim() not in (3, 4) or xs.shape[0] == 0:
            raise ValueError(
                f"xs: must be a dense batch (B, C, H, W) of images or (B, N, D) of feature matrices, got "
                f"{type(xs).__name__} of shape {tuple(getattr(xs, 'shape', ()))}"
            )
        check_generator(generator)
        batch = xs.shape[0]
        rows = xs.permute(0, 2, 3, 1) if xs.dim() == 4 else xs  # images: pixels are the rows
        entities = rows.shape[1] * (rows.shape[2] if xs.dim() == 4 else 1)
        rows = rows.reshape(batch * entities, rows.shape[-1])
        mask = self.selection.sample_mask(batch, entities, generator, xs.device)
        samples = self.noise.prepare(rows, False)(mask.reshape(1, -1), self.indicator, generator, token)
        if xs.dim() == 4:
            return (
                samples.view(batch, xs.shape[2], xs.shape[3], samples.shape[-1]).permute(0, 3, 1, 2).contiguous()
            )  # NCHW
        return samples.view(batch, entities, samples.shape[-1])

    def to_config(self) -> dict:
        """The config mapping this smoothing was (or could have been) built from."""
        return {
            "selection": _as_config(self.selection, SELECTIONS),
            "noise": _as_config(self.noise, NOISES),
            "indicator": self.indicator,
        }


def _probabilities(name: str, value) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if np.any(~(array >= 0) | ~(array <= 1)):
        raise ValueError(f"{name}: probabilities must be in [0, 1]")
    return array


def _as_config(part, registry: dict) -> dict:
    kind = next(name for name, cls in registry.items() if isinstance(part, cls))
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(part).items() if v is not None}
    return {"kind": kind, **options}


def _build(section: str, config, registry: dict):
    """Instantiate ``registry[config['kind']]`` with the remaining keys, naming what is wrong otherwise."""
    if not isinstance(config, dict):
        raise ValueError(f"{section}={config!r}: must be a mapping with a 'kind'")
    options = dict(config)
    kind = options.pop("kind", None)
    if not isinstance(kind, str) or kind not in registry:
        raise ValueError(f"{section}.kind={kind!r}: must be one of {', '.join(registry)}")
    return build_dataclass(section, registry[kind], options, kind)


def from_config(config) -> Smoothing:
    """Build a :class:`Smoothing` from a mapping or a YAML file (DESIGN.md schema)::

        selection: {kind: bernoulli, p: 0.81}       # or {kind: subset, size: m, entities: N} or {kind: all}
        noise:     {kind: sparse, p_plus: 0.05, p_minus: 0.8}   # or {kind: gaussian, sigma: 0.25} or {kind: ablation}
        indicator: true

    The three keys may also sit under a top-level ``smoothing:`` key (as in an experiment file).
    """
    if isinstance(config, Smoothing):
        return config
    if isinstance(config, (str, Path)):
        config = read_yaml(config, "smoothing config")
    if isinstance(config, dict) and set(config) == {"smoothing"}:
        config = config["smoothing"]
    if not isinstance(config, dict):
        raise ValueError(f"smoothing config: must be a mapping with selection and noise, got {type(config).__name__}")
    unknown = sorted(
        repr(key) if not isinstance(key, str) else key for key in set(config) - {"selection", "noise", "indicator"}
    )
    if unknown:
        raise ValueError(f"smoothing config: unknown key {', '.join(unknown)} (allowed: selection, noise, indicator)")
    if "noise" not in config:
        raise ValueError("smoothing config: 'noise' is missing ({kind: gaussian|sparse|ablation, ...})")
    selection = _build("selection", config.get("selection", {"kind": "all"}), SELECTIONS)
    noise = _build("noise", config["noise"], NOISES)
    return Smoothing(selection, noise, config.get("indicator", not isinstance(selection, All)))
