"""Smoothing distributions: selection (upper level) + noise (lower level) + indicator."""

from .hierarchical import Smoothing, from_config
from .noise import Ablation, Gaussian, Sparse
from .selection import All, Bernoulli, Subset
from .uniform import Uniform

__all__ = ["Smoothing", "from_config", "Bernoulli", "Subset", "All", "Gaussian", "Sparse", "Ablation", "Uniform"]
