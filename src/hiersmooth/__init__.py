"""hiersmooth: certifiable robustness against adversaries who change a few entities, by hierarchical randomized smoothing."""

from .smoothing import Ablation, All, Bernoulli, Gaussian, Smoothing, Sparse, Subset, from_config
from .threat import Threat

__version__ = "0.1.0"

__all__ = ["Threat", "Smoothing", "from_config", "Bernoulli", "Subset", "All", "Gaussian", "Sparse", "Ablation", "SmoothedClassifier"]


def __getattr__(name: str):
    """``hiersmooth.SmoothedClassifier`` imports PyTorch on first use, so certifying vote counts never needs it."""
    if name == "SmoothedClassifier":
        from .classifier import SmoothedClassifier

        return SmoothedClassifier
    raise AttributeError(f"module 'hiersmooth' has no attribute {name!r}")
