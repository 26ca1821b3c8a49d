"""``make demo``: the digits comparison end to end, offline, in a few minutes on a laptop CPU.

Trains a small CNN on scikit-learn's bundled 8×8 digits under hierarchical gaussian smoothing and the two
methods it generalises (gaussian smoothing, Levine–Feizi ablation), over the parameter grid of
``experiments/digits.yaml``; certifies every test image; prints certified accuracy at the experiment's Pareto
threats; and draws the Pareto fronts and certified-accuracy curves (``hiersmooth report``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .experiments.grid import load_experiment
from .experiments.report import default_threats, load_results, make_report, pareto_points
from .experiments.runner import run_experiment

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "digits.yaml"


def threat_table(results: Path) -> str:
    """Per Pareto threat of the experiment: each (method, parameters) with its clean and certified accuracy
    (seed means, as in the report's tables)."""
    loaded = load_results(results)
    lines = []
    for threat in default_threats(loaded):
        label = ", ".join(f"{'r' if k == 'rows' else k}={v}" for k, v in threat.items())
        lines += [
            "",
            f"certified accuracy at {label} ({loaded.certificate} certificate)",
            f"  {'method':<24}{'parameters':<40}{'clean':>8}{'certified':>11}",
        ]
        for point in pareto_points(loaded, threat):
            lines.append(
                f"  {point.setting.method:<24}{point.setting.describe():<40}{point.clean_mean:>8.3f}"
                f"{point.certified_mean:>11.3f}"
            )
    return "\n".join(lines)


def main(out: Path = Path("out/demo")) -> int:
    started = time.perf_counter()
    experiment = load_experiment(EXPERIMENT)
    print(f"hiersmooth demo: {len(experiment.cells)} cells of {EXPERIMENT.name} (train, certify 450 test digits each)")
    results = run_experiment(experiment, out / "results", progress=True)
    print(threat_table(results))
    paths = make_report(results)
    print(f"\nfigures and tables ({time.perf_counter() - started:.0f} s in all):")
    for path in paths:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
