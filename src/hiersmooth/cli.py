"""The ``hiersmooth`` command line.

    hiersmooth certify-votes VOTES.npz --smoothing SMOOTHING.yaml [--alpha 0.01] [--runner-up sound|selection]
                             --out OUT.csv [--rows 1-4] [--eps 0:1:0.05 | --added 0-40 --deleted 0-60]

Bad input prints one line ``hiersmooth: error: ...`` to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time

_INTEGER_AXES = ("rows", "added", "deleted")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        raise _UsageError(f"{message} (see {self.prog} --help)")


class _UsageError(ValueError):
    pass


def parse_list(name: str, text: str, integer: bool) -> list:
    """A comma-separated list; ``a-b`` is an inclusive integer range, ``start:stop:step`` an inclusive float range."""
    values = []
    try:
        for part in text.split(","):
            part = part.strip()
            if integer and "-" in part[1:]:
                low, high = (int(v) for v in part.split("-"))
                values.extend(range(low, high + 1))
            elif not integer and part.count(":") == 2:
                start, stop, step = (float(v) for v in part.split(":"))
                if step <= 0:
                    raise ValueError
                count = int(round((stop - start) / step)) + 1
                values.extend(round(start + k * step, 12) for k in range(count) if start + k * step <= stop + 1e-12)
            else:
                values.append(int(part) if integer else float(part))
    except ValueError:
        form = "integers or ranges like 0-40" if integer else "numbers or ranges like 0:1:0.05"
        raise ValueError(f"--{name}={text!r}: must be a comma-separated list of {form}") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"--{name}={text!r}: values must be >= 0")
    return sorted(set(values))


def _certify_votes(args) -> None:
    from .certify.certificates import certify_votes
    from .certify.outputs import format_table, write_outputs
    from .certify.tables import certified_accuracy_table, default_axes, threats_from_axes
    from .certify.votes import load_votes
    from .results import sha256
    from .smoothing import from_config
    from .smoothing.noise import Gaussian, Sparse

    started = time.perf_counter()
    smoothing = from_config(args.smoothing)
    votes = load_votes(args.votes)
    result = certify_votes(votes, smoothing, alpha=args.alpha, runner_up=args.runner_up)

    given = {name: getattr(args, name) for name in ("rows", "eps", "added", "deleted") if getattr(args, name) is not None}
    fits = {"eps"} if isinstance(smoothing.noise, Gaussian) else {"added", "deleted"} if isinstance(smoothing.noise, Sparse) else set()
    for name in set(given) - fits - {"rows"}:
        kind = type(smoothing.noise).__name__.lower()
        allowed = ", ".join(f"--{n}" for n in sorted(fits | {"rows"}))
        raise ValueError(f"--{name} does not apply to {kind} noise (threat options for it: {allowed})")
    axes = default_axes(result)
    axes.update({name: parse_list(name, text, name in _INTEGER_AXES) for name, text in given.items()})

    table = certified_accuracy_table(result, threats_from_axes(smoothing.noise, axes))
    inputs = {"votes": str(args.votes), "votes_sha256": sha256(args.votes), "smoothing": str(args.smoothing)}
    paths = write_outputs(result, table, axes, args.out, inputs, started)

    print(f"{votes.points} points, {votes.classes} classes, n0={votes.n0}, n={votes.n}, alpha={result.alpha}")
    print(f"accuracy of the selected class: {result.correct.mean():.4f}")
    print(format_table(result, table, axes))
    print("wrote " + ", ".join(str(path) for path in paths.values()))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hiersmooth", description="Certified robustness by hierarchical randomized smoothing.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    certify = commands.add_parser(
        "certify-votes",
        help="certify vote counts (pre_votes, votes, labels) under a smoothing config",
        description="Certificates from vote counts: certified accuracy per threat, per-point results and a JSON sidecar.",
    )
    certify.add_argument("votes", help=".npz with integer arrays pre_votes, votes (points x classes) and labels")
    certify.add_argument("--smoothing", required=True, help="smoothing config (YAML): selection, noise, indicator")
    certify.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    certify.add_argument("--runner-up", choices=("sound", "selection"), default="sound",
                         help="multi-class class B: sound (largest upper bound, default) or selection (the reference code's runner-up of pre_votes)")
    certify.add_argument("--out", required=True, help="certified-accuracy CSV; per-point files and OUT.json go beside it")
    certify.add_argument("--rows", help="changed rows r, e.g. 1,2,3 or 1-4 (default: all r at which anything is certified)")
    certify.add_argument("--eps", help="l2 budgets for gaussian noise, e.g. 0,0.25,0.5 or 0:1:0.05")
    certify.add_argument("--added", help="bits added (ra) for sparse noise, e.g. 0-40")
    certify.add_argument("--deleted", help="bits deleted (rd) for sparse noise, e.g. 0-60")
    certify.set_defaults(run=_certify_votes)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except ValueError as error:
        print(f"hiersmooth: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hiersmooth: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
