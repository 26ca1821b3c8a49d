"""The ``hiersmooth`` command line.

    hiersmooth certify-votes VOTES.npz --smoothing SMOOTHING.yaml [--alpha 0.01] [--runner-up sound|selection]
                             --out OUT.csv [--rows 1-4] [--eps 0:1:0.05 | --added 0-40 --deleted 0-60]
    hiersmooth certify --smoothing SMOOTHING.yaml --model MODULE:FACTORY --num-classes K
                       (--weights W.pt | --random-weights) --data DATA.npz
                       --out DIR [--n0 1000 --n 10000 --alpha 0.01 --batch-size 100 --seed 0 --device cpu] [threats]
    hiersmooth certify --checkpoint TRAINED_DIR --out DIR [options as above]
    hiersmooth train RUN.yaml [--out TRAINED_DIR]
    hiersmooth run EXPERIMENT.yaml [--out RESULTS] [--dry-run]
    hiersmooth report RESULTS [--threat r=2,eps=0.25 ...] [--out DIR]

Bad input prints one line ``hiersmooth: error: ...`` to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from .checks import check_integer
from .defaults import DEFAULT_ALPHA, DEFAULT_PROCEDURE, RUNNER_UP_CHOICES, SEQUENTIAL_PROCEDURES
from .threat import GRID_AXES, TEXT_NAMES


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        raise _UsageError(f"{message} (see {self.prog} --help)")


class _UsageError(ValueError):
    pass


_INT64_MAX = (1 << 63) - 1


MAX_SAMPLES = 10**8  # Monte-Carlo samples per point (--n0, --n): the paper uses 10^4 to 10^5
_MAX_CLASSES = 100_000  # = hiersmooth.inputs.MAX_CLASSES (not imported: it pulls in torch)


def _int_in(low: int, high: int):
    """An argparse type: an integer in [low, high], refused with the range otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer") from None
        try:
            return check_integer("value", value, low, high)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} must be an integer in [{low}, {high}]") from None

    return parse


def _finite_float(text: str) -> float:
    """An argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} must be a finite number")
    return value


def _grid_options(args) -> dict:
    """The threat-grid options given on the command line (text, parsed by the library)."""
    return {name: getattr(args, name) for name in GRID_AXES if getattr(args, name) is not None}


def _certify_votes(args) -> None:
    from .certify.certification import certify_votes

    result = certify_votes(
        args.votes, args.smoothing, args.alpha, args.runner_up, out=args.out, force=args.force, **_grid_options(args)
    )
    _print_certificates(result, args, args.out)


def _certify(args) -> None:
    from pathlib import Path

    from .certify_run import certify_dataset
    from .trained import certify_checkpoint

    options = dict(
        n0=args.n0,
        n=args.n,
        alpha=args.alpha,
        batch_size=args.batch_size,
        out=args.out,
        runner_up=args.runner_up,
        force=args.force,
        checkpoint_seconds=args.checkpoint_seconds,
        progress=not args.no_progress,
        **_grid_options(args),
    )
    if args.targets:
        options.update(targets=args.targets, procedure=args.procedure)
    if args.checkpoint:
        result = certify_checkpoint(
            args.checkpoint,
            num_classes=args.num_classes,
            data=args.data,
            smoothing=args.smoothing,
            seed=args.seed,
            block_size=args.block_size,
            device=args.device,
            autocast=args.autocast,
            **options,
        )
    else:
        classifier, dataset, inputs, protect = _model_run(args)
        data = options.pop("n0"), options.pop("n"), options.pop("alpha"), options.pop("batch_size")
        result = certify_dataset(classifier, dataset, *data, inputs=inputs, protect=protect, **options)
    from .distributed import init_ranks

    if init_ranks(args.device).writer:  # rank 0 writes and prints for the whole run
        _print_certificates(result, args, Path(args.out) / "certified_accuracy.csv")


def _print_certificates(result, args, out_csv) -> None:
    from .certify.outputs import output_paths

    print(result.format() if getattr(args, "targets", None) else result.grid(**_grid_options(args)).format())
    print("wrote " + ", ".join(str(path) for path in output_paths(out_csv).values()))


def _model_run(args):
    """``--model MODULE:FACTORY``: the smoothed classifier, the data, the sidecar's input record and the inputs."""
    from pathlib import Path

    from .classifier import SmoothedClassifier
    from .distributed import init_ranks
    from .inputs import Graph, load_arrays
    from .models.factory import build_model, input_width
    from .results import sha256
    from .smoothing import from_config

    missing = [f"--{name}" for name in ("smoothing", "model", "data") if not getattr(args, name)]
    if missing:
        raise ValueError(f"certify needs {', '.join(missing)} (or --checkpoint DIR from hiersmooth train)")
    if args.weights and args.random_weights:
        raise ValueError("--weights and --random-weights exclude each other")
    if not args.weights and not args.random_weights:
        raise ValueError(
            f"certify --model {args.model}: no --weights; pass --weights W.pt (a state dict), or "
            "--random-weights to certify a randomly initialised model (smoke tests only)"
        )
    if args.num_classes is None:
        raise ValueError(
            f"certify --model {args.model}: needs --num-classes K (the class count is never guessed "
            "from the labels; a --checkpoint run takes it from the checkpoint)"
        )
    ranks = init_ranks(args.device)
    smoothing = from_config(args.smoothing)
    dataset = load_arrays(args.data)
    graph, classes = isinstance(dataset, Graph), args.num_classes
    if dataset.labels.size and int(dataset.labels.max()) >= classes:
        raise ValueError(
            f"--data {args.data}: has label {int(dataset.labels.max())}, but --num-classes {classes} "
            f"allows labels 0..{classes - 1}"
        )
    model = build_model(args.model, input_width(smoothing, dataset.input_shape, graph), classes, args.weights)
    classifier = SmoothedClassifier(
        model,
        smoothing,
        classes,
        seed=args.seed,
        block_size=args.block_size,
        device=ranks.device(args.device),
        autocast=args.autocast,
    )
    inputs = {
        "data": str(Path(args.data).resolve()),
        "data_sha256": sha256(args.data),
        "smoothing": str(Path(args.smoothing).resolve()),
        "model": args.model,
        "weights": args.weights and str(Path(args.weights).resolve()),
        "weights_sha256": args.weights and sha256(args.weights),
    }
    return classifier, dataset, inputs, [args.smoothing, args.data, args.weights]


def _train(args) -> None:
    from .run_config import load_run_config
    from .trained import train_run

    out = train_run(args.config, args.out, progress=not args.no_progress, force=args.force)
    config, final = load_run_config(out / "config.yaml"), json.loads((out / "model.json").read_text())["final"]
    print(
        f"trained {config.model.name} on {config.data.name}: "
        + ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k != "restored")
    )
    print(
        f"wrote {out}/ (model.pt, config.yaml, model.json, training.csv); certify it with: "
        f"hiersmooth certify --checkpoint {out} --out {out}/certified"
    )


def _run(args) -> None:
    from .experiments.grid import load_experiment
    from .experiments.runner import cell_done, results_folder, run_experiment

    if args.dry_run:
        experiment = load_experiment(args.experiment)
        results = results_folder(experiment, args.out)
        for index, cell in enumerate(experiment.cells, 1):
            print(f"[{index}/{len(experiment.cells)}] {cell.name}{' (done)' if cell_done(results, cell) else ''}")
        print(f"{len(experiment.cells)} cells; results would go to {results}")
        return
    results = run_experiment(args.experiment, args.out, progress=not args.no_progress, force=args.force)
    print(f"wrote {results}/results.csv and cells.csv; draw the figures with: hiersmooth report {results}")


def _report(args) -> None:
    from .experiments.report import make_report

    paths = make_report(args.results, args.threat, args.out, force=args.force)
    print("wrote " + ", ".join(str(p) for p in paths))


def _add_certificate_options(command, smoothing_required: bool) -> None:
    help = "smoothing config (YAML): selection, noise, indicator" + (
        "" if smoothing_required else "; default: the checkpoint's"
    )
    command.add_argument("--smoothing", required=smoothing_required, help=help)
    command.add_argument(
        "--alpha",
        type=_finite_float,
        default=DEFAULT_ALPHA,
        help=f"significance level: certificates hold with probability >= 1 - alpha (default {DEFAULT_ALPHA})",
    )
    command.add_argument(
        "--runner-up",
        choices=RUNNER_UP_CHOICES,
        default="sound",
        help="multi-class class B: sound (largest upper bound, default) or selection (the reference code's "
        "runner-up of pre_votes)",
    )
    for (
        axis,
        text,
    ) in GRID_AXES.items():  # each axis also under its name in threat text and CSV columns (--r, --ra, --rd)
        aliases = [f"--{TEXT_NAMES[axis]}"] if TEXT_NAMES[axis] != axis else []
        command.add_argument(f"--{axis}", *aliases, dest=axis, help=text)
    _add_force_option(command)


def _add_force_option(command) -> None:
    command.add_argument(
        "--force",
        action="store_true",
        help="replace existing files at --out that hiersmooth did not write "
        "(never an input of the run, a directory, pipe or device)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hiersmooth", description="Certified robustness by hierarchical randomized smoothing.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    certify = commands.add_parser(
        "certify-votes",
        help="certify vote counts (pre_votes, votes, labels) under a smoothing config",
        description="Certificates from vote counts: certified accuracy per threat, per-point results and a JSON "
        "sidecar.",
    )
    certify.add_argument("votes", help=".npz with integer arrays pre_votes, votes (points x classes) and labels")
    certify.add_argument(
        "--out", required=True, help="certified-accuracy CSV; per-point files and OUT.json go beside it"
    )
    _add_certificate_options(certify, smoothing_required=True)
    certify.set_defaults(run=_certify_votes)

    dataset = commands.add_parser(
        "certify",
        help="sample, count votes and certify every point of a dataset (resumable)",
        description="Monte-Carlo certification of a model on a dataset: writes DIR/votes.npz, "
        "DIR/certified_accuracy.csv "
        "(+ .points.csv, .points.npz, .json) and DIR/progress.npz, from which a killed run resumes.",
    )
    dataset.add_argument(
        "--checkpoint",
        help="folder written by hiersmooth train: its model, smoothing and test data "
        "(--smoothing/--data override them)",
    )
    dataset.add_argument(
        "--model",
        help="MODULE:FACTORY, called as FACTORY(input_width, num_classes), "
        "e.g. hiersmooth.models.images:SmallCNN or hiersmooth.models.graphs:GCN",
    )
    dataset.add_argument("--weights", help="state dict for the model (torch.save; loaded with weights_only=True)")
    dataset.add_argument(
        "--random-weights",
        action="store_true",
        help="certify the --model with its random initial weights, without --weights (smoke tests only)",
    )
    dataset.add_argument("--data", help=".npz with images+labels, or a graph (features, edge_index, labels[, nodes])")
    dataset.add_argument("--out", required=True, help="output directory")
    dataset.add_argument(
        "--n0", type=_int_in(1, MAX_SAMPLES), default=1000, help="selection samples per point (default 1000)"
    )
    dataset.add_argument(
        "--n",
        "--num-samples",
        dest="n",
        type=_int_in(1, MAX_SAMPLES),
        default=10000,
        help="estimation samples per point (default 10000); under torchrun write --num-samples",
    )
    dataset.add_argument(
        "--batch-size",
        type=_int_in(1, MAX_SAMPLES),
        default=100,
        help="samples per forward pass (default 100); does not change the votes",
    )
    dataset.add_argument(
        "--seed", type=_int_in(0, _INT64_MAX), default=0, help="seed of the random streams (default 0)"
    )
    dataset.add_argument(
        "--block-size",
        type=_int_in(1, MAX_SAMPLES),
        help="samples per random stream (default 100 for images, 4 for graphs)",
    )
    dataset.add_argument(
        "--num-classes",
        type=_int_in(2, _MAX_CLASSES),
        help="number of classes: required with --model (never guessed from the labels); a --checkpoint knows its own",
    )
    dataset.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    dataset.add_argument("--autocast", action="store_true", help="run the model under torch.autocast")
    dataset.add_argument(
        "--checkpoint-seconds", type=_finite_float, default=10.0, help="save progress at least this often (default 10)"
    )
    dataset.add_argument("--no-progress", action="store_true", help="no progress bar")
    dataset.add_argument(
        "--target",
        action="append",
        dest="targets",
        metavar="THREAT",
        help="certify sequentially at this threat, e.g. r=1,eps=0.5 or r=1,ra=0,rd=8 or r=2 (repeat for more): each "
        "point stops once its targets are decided, --n is the most estimation samples it may use",
    )
    dataset.add_argument(
        "--procedure",
        choices=SEQUENTIAL_PROCEDURES,
        default=DEFAULT_PROCEDURE,
        help=f"anytime-valid bounds of a --target run (default {DEFAULT_PROCEDURE}: Clopper-Pearson at alpha/L on "
        "L doubling looks; beta-binomial: a confidence sequence looked at after every block)",
    )
    _add_certificate_options(dataset, smoothing_required=False)
    dataset.set_defaults(run=_certify)

    train = commands.add_parser(
        "train",
        help="train a model under a smoothing distribution (noise augmentation) and write a checkpoint folder",
        description="Noise-augmented training from a run config (data, model, smoothing, training); writes "
        "DIR/model.pt, config.yaml, model.json and training.csv.",
    )
    train.add_argument("config", help="run config (YAML): data, model, smoothing, training[, out]")
    train.add_argument("--out", help="checkpoint folder (default: the config's out)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_force_option(train)
    train.set_defaults(run=_train)

    run = commands.add_parser(
        "run",
        help="run an experiment: methods x parameters x seeds, each trained (or reused), certified and aggregated",
        description="Runs every cell of EXPERIMENT.yaml into a results folder; finished cells are skipped, so a killed "
        "run continues where it stopped. Writes cells.csv and results.csv.",
    )
    run.add_argument("experiment", help="experiment config (YAML), e.g. experiments/digits.yaml")
    run.add_argument("--out", help="results folder (default results/<experiment name>)")
    run.add_argument("--dry-run", action="store_true", help="list the cells and stop")
    run.add_argument("--no-progress", action="store_true", help="no inner progress bars")
    _add_force_option(run)
    run.set_defaults(run=_run)

    report = commands.add_parser(
        "report",
        help="draw an experiment's figures (Pareto fronts, certified-accuracy curves) and tables from its results",
        description="Reads RESULTS/experiment.yaml and results.csv only; writes PNG figures and markdown/CSV tables.",
    )
    report.add_argument("results", help="results folder written by hiersmooth run")
    report.add_argument(
        "--threat",
        action="append",
        help="a Pareto threat, e.g. r=2,eps=0.25, r=1,ra=0,rd=5 or r=1,l1=0.5 (repeatable; default: the "
        "experiment's pareto list)",
    )
    report.add_argument("--out", help="output folder (default RESULTS/report)")
    _add_force_option(report)
    report.set_defaults(run=_report)
    return parser


def _leave_process_group() -> None:
    """After a torchrun command: leave the process group (torch is imported only if the command used it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def run_command(argv: list[str]) -> None:
    """Run one ``hiersmooth`` command in this process; bad input raises ValueError instead of exiting."""
    args = build_parser().parse_args(argv)
    args.run(args)


def _environment_errors() -> tuple[type[BaseException], ...]:
    """Errors a command meets from its environment (files, memory, limits of numbers and nesting, YAML, CUDA memory)."""
    import yaml

    errors = [OSError, MemoryError, OverflowError, RecursionError, yaml.YAMLError]
    torch = sys.modules.get("torch")  # torch's out-of-memory errors, if the command imported torch
    errors += [
        cls
        for cls in (
            getattr(torch, "OutOfMemoryError", None),
            getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None),
        )
        if isinstance(cls, type)
    ]
    return tuple(errors)


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename is not None else ""
        return f"{where}{error.strerror}"
    if isinstance(error, RecursionError):
        return f"input nested too deeply to process ({error})"
    if isinstance(error, OverflowError):
        return f"a number is too large ({error})"
    if isinstance(error, MemoryError) or "OutOfMemory" in type(error).__name__:
        return f"out of memory ({str(error) or 'the input asks for more than this machine has'})"
    return f"{type(error).__name__}: {error}"


def _fail(message: str) -> int:
    """Print ``hiersmooth: error: MESSAGE`` as one line (inner newlines folded) and return status 2."""
    print("hiersmooth: error: " + " ".join(message.split()), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings(
        "ignore", message="Sparse CSR tensor support is in beta"
    )  # torch's notice, on every graph run
    try:
        run_command(sys.argv[1:] if argv is None else argv)
        _leave_process_group()
    except ValueError as error:
        return _fail(str(error))
    except _environment_errors() as error:  # what the machine or a hostile input runs into, never a bug of ours
        return _fail(_describe(error))
    except KeyboardInterrupt:
        print("hiersmooth: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
