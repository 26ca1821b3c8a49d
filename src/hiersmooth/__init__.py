"""hiersmooth: certifiable robustness against adversaries who change a few entities, by hierarchical randomized
smoothing.

Public names (each command of the ``hiersmooth`` CLI is one of these calls)
---------------------------------------------------------------------------
certify_votes, load_votes, save_votes, Votes
    Certificates from vote counts (``hiersmooth certify-votes``); read and write votes files.
SmoothedClassifier
    Monte-Carlo ``predict`` / ``certify`` / ``certify_dataset`` of any PyTorch classifier (``hiersmooth certify``).
certify_checkpoint
    Certify a folder written by ``hiersmooth train`` (``hiersmooth certify --checkpoint``).
train_run, run_experiment, make_report
    ``hiersmooth train``, ``hiersmooth run`` and ``hiersmooth report``.
Smoothing, from_config
    A smoothing distribution (selection + noise + indicator) that samples and certifies; built from a config.
Bernoulli, Subset, All
    Selections (the upper level): which rows (pixels, nodes) get noise.
Gaussian, Sparse, Ablation, Uniform
    Noises (the lower level) applied to the selected rows (Uniform: ℓ1 threats).
Threat
    The adversary's budget: changed rows, and an l2 or bit-flip budget.
DEFAULT_ALPHA
    The significance level used when none is given (0.01): guarantees hold with probability >= 1 - alpha.

``import hiersmooth`` imports neither PyTorch nor SciPy: every name is imported on first use.
"""

from importlib import import_module

__version__ = "0.1.0"

_WHERE = {
    "Threat": ".threat",
    "DEFAULT_ALPHA": ".defaults",
    **dict.fromkeys(
        ["Smoothing", "from_config", "Bernoulli", "Subset", "All", "Gaussian", "Sparse", "Ablation", "Uniform"],
        ".smoothing",
    ),
    "certify_votes": ".certify.certification",
    "VoteCertificates": ".certify.certification",
    **dict.fromkeys(["load_votes", "save_votes", "Votes"], ".certify.votes"),
    "SmoothedClassifier": ".classifier",
    "certify_checkpoint": ".trained",
    "train_run": ".trained",
    "run_experiment": ".experiments.runner",
    "make_report": ".experiments.report",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    """Import a public name's module on first use (so certifying vote counts never imports PyTorch)."""
    if name not in _WHERE:
        raise AttributeError(f"module 'hiersmooth' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Every public name (without importing it)."""
    return sorted(set(globals()) | set(__all__))
