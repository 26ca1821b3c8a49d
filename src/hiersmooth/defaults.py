"""Defaults shared by the library, the engine and the command line (defined here once)."""

DEFAULT_ALPHA = 0.01
"""Significance level α of certificates and predictions: each holds with probability ≥ 1 − α (the paper's 0.01)."""

CERTIFICATES = ("binary", "multiclass")
"""The two certificates of every point: p̲_A > 1/2 (binary) and p̲_A > p̄_B (multi-class)."""

RUNNER_UP_CHOICES = ("sound", "selection")
"""Class B of the multi-class certificate: the largest upper bound (sound), or the runner-up of the n₀ selection
votes (the reference code's choice, for reproducing published figures only)."""

SEQUENTIAL_PROCEDURES = ("scheduled-clopper-pearson", "beta-binomial")
"""The anytime-valid bounds of a sequential run (SPEC.md §7; :mod:`hiersmooth.certify.confidence_sequences`)."""
DEFAULT_PROCEDURE = "scheduled-clopper-pearson"
"""The default: Clopper–Pearson on a doubling schedule of looks, α split over them (fewest samples in the benchmark)."""
