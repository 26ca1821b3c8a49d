"""hiersmooth: certifiable robustness against adversaries who change a few entities, by hierarchical randomized smoothing.

Public names
------------
SmoothedClassifier
    Monte-Carlo ``predict`` / ``certify`` of any PyTorch classifier (images, or the nodes of a graph).
Smoothing, from_config
    A smoothing distribution (selection + noise + indicator) that samples and certifies; built from a config.
Bernoulli, Subset, All
    Selections (the upper level): which rows (pixels, nodes) get noise.
Gaussian, Sparse, Ablation
    Noises (the lower level) applied to the selected rows.
Threat
    The adversary's budget: changed rows, and an l2 or bit-flip budget.
DEFAULT_ALPHA
    The significance level used when none is given (0.01): guarantees hold with probability >= 1 - alpha.

``import hiersmooth`` does not import PyTorch; ``hiersmooth.SmoothedClassifier`` does, on first use.
"""

from .smoothing import Ablation, All, Bernoulli, Gaussian, Smoothing, Sparse, Subset, from_config
from .defaults import DEFAULT_ALPHA
from .threat import Threat

__version__ = "0.1.0"

__all__ = ["Threat", "Smoothing", "from_config", "Bernoulli", "Subset", "All", "Gaussian", "Sparse", "Ablation", "SmoothedClassifier",
           "DEFAULT_ALPHA"]


def __getattr__(name: str):
    """``hiersmooth.SmoothedClassifier`` imports PyTorch on first use, so certifying vote counts never needs it."""
    if name == "SmoothedClassifier":
        from .classifier import SmoothedClassifier

        return SmoothedClassifier
    raise AttributeError(f"module 'hiersmooth' has no attribute {name!r}")


def __dir__() -> list[str]:
    """Every public name, the lazily imported ``SmoothedClassifier`` included (without importing it)."""
    return sorted(set(globals()) | set(__all__))
