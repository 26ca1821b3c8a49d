"""Defaults shared by the library, the engine and the command line (defined here once)."""

DEFAULT_ALPHA = 0.01
"""Significance level α of certificates and predictions: each holds with probability ≥ 1 − α (the paper's 0.01)."""
