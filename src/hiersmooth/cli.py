"""The ``hiersmooth`` command line.

    hiersmooth certify-votes VOTES.npz --smoothing SMOOTHING.yaml [--alpha 0.01] [--runner-up sound|selection]
                             --out OUT.csv [--rows 1-4] [--eps 0:1:0.05 | --added 0-40 --deleted 0-60]
    hiersmooth certify --smoothing SMOOTHING.yaml --model MODULE:FACTORY --num-classes K (--weights W.pt | --random-weights) --data DATA.npz
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
import time

from .defaults import DEFAULT_ALPHA

_INTEGER_AXES = ("rows", "added", "deleted")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        raise _UsageError(f"{message} (see {self.prog} --help)")


class _UsageError(ValueError):
    pass


MAX_THREATS = 1_000_000  # threats in one grid (the product of its axes), and values on one axis
_INT64_MAX = (1 << 63) - 1


def parse_list(name: str, text: str, integer: bool) -> list:
    """A comma-separated list; ``a-b`` is an inclusive integer range, ``start:stop:step`` an inclusive float range.

    Values must be >= 0, finite and (integers) at most 2^63 − 1; a list longer than ``MAX_THREATS`` is refused
    before any range is materialised."""
    values = []
    form = "integers or ranges like 0-40" if integer else "numbers or ranges like 0:1:0.05"
    try:
        for part in text.split(","):
            part = part.strip()
            if integer and "-" in part[1:]:
                low, high = (int(v) for v in part.split("-"))
                if low < 0 or high > _INT64_MAX:
                    raise ValueError(f"--{name}={text!r}: values must be integers in [0, 2^63 - 1]")
                count = max(high - low + 1, 0)
                if len(values) + count > MAX_THREATS:
                    raise ValueError(f"--{name}={text!r}: more than {MAX_THREATS} values; give a shorter range")
                values.extend(range(low, high + 1))
            elif not integer and part.count(":") == 2:
                start, stop, step = (float(v) for v in part.split(":"))
                if not (math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)) or step <= 0:
                    raise ValueError(f"--{name}={text!r}: a range start:stop:step needs finite numbers and a step > 0")
                span = (stop - start) / step
                count = int(math.floor(span + 1e-9)) + 1 if math.isfinite(span) and span < MAX_THREATS else MAX_THREATS + 1
                if len(values) + max(count, 0) > MAX_THREATS:
                    raise ValueError(f"--{name}={text!r}: more than {MAX_THREATS} values; use a larger step")
                values.extend(round(start + k * step, 12) for k in range(count) if start + k * step <= stop + 1e-12)
            else:
                values.append(int(part) if integer else float(part))
                if len(values) > MAX_THREATS:
                    raise ValueError(f"--{name}: more than {MAX_THREATS} values")
    except ValueError as error:
        if str(error).startswith(f"--{name}"):
            raise
        raise ValueError(f"--{name}={text!r}: must be a comma-separated list of {form}") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"--{name}={text!r}: values must be >= 0")
    if integer and max(values) > _INT64_MAX:
        raise ValueError(f"--{name}={text!r}: values must be at most 2^63 - 1, found {max(values)}")
    if not integer and not all(math.isfinite(v) for v in values):
        raise ValueError(f"--{name}={text!r}: values must be finite numbers")
    return sorted(set(values))


MAX_SAMPLES = 10**8  # Monte-Carlo samples per point (--n0, --n): the paper uses 10^4 to 10^5
_MAX_CLASSES = 100_000  # = hiersmooth.data.arrays.MAX_CLASSES (not imported: it pulls in torch)


def _int_in(low: int, high: int):
    """An argparse type: an integer in [low, high], refused with the range otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} must be an integer in [{low}, {high}]")
        return value
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


def _write_certificates(votes, smoothing, args, out_csv, inputs: dict, started: float, extra: dict | None = None) -> None:
    """Certify ``votes`` for the threats the options ask (default: every threat where anything is certified)."""
    from .certify.certificates import certify_votes
    from .certify.outputs import format_table, write_outputs
    from .certify.tables import certified_accuracy_table, default_axes, threats_from_axes
    from .smoothing.noise import Gaussian, Sparse

    result = certify_votes(votes, smoothing, alpha=args.alpha, runner_up=args.runner_up)
    given = {name: getattr(args, name) for name in ("rows", "eps", "added", "deleted") if getattr(args, name) is not None}
    fits = {"eps"} if isinstance(smoothing.noise, Gaussian) else {"added", "deleted"} if isinstance(smoothing.noise, Sparse) else set()
    for name in set(given) - fits - {"rows"}:
        kind = type(smoothing.noise).__name__.lower()
        allowed = ", ".join(f"--{n}" for n in sorted(fits | {"rows"}))
        raise ValueError(f"--{name} does not apply to {kind} noise (threat options for it: {allowed})")
    axes = default_axes(result)
    axes.update({name: parse_list(name, text, name in _INTEGER_AXES) for name, text in given.items()})
    if math.prod(len(values) for values in axes.values()) > MAX_THREATS:
        sizes = " x ".join(f"{len(values)} {name}" for name, values in axes.items())
        raise ValueError(f"the threat grid has {sizes} = {math.prod(len(v) for v in axes.values())} threats, more than "
                         f"{MAX_THREATS}; give shorter --rows/--eps/--added/--deleted lists")

    table = certified_accuracy_table(result, threats_from_axes(smoothing.noise, axes))
    paths = write_outputs(result, table, axes, out_csv, inputs, started, extra)

    print(f"{votes.points} points, {votes.classes} classes, n0={votes.n0}, n={votes.n}, alpha={result.alpha}")
    print(f"accuracy of the selected class: {result.correct.mean():.4f}")
    print(format_table(result, table, axes))
    print("wrote " + ", ".join(str(path) for path in paths.values()))


def _certify_votes(args) -> None:
    from pathlib import Path

    from .certify.outputs import output_paths
    from .certify.votes import load_votes
    from .results import check_output, output_lock, sha256
    from .smoothing import from_config

    started = time.perf_counter()
    paths, out = output_paths(args.out), Path(args.out)
    lock = out.parent / f".{out.name}.lock"
    check_output(out.parent, [args.votes, args.smoothing], args.force, files=[p.name for p in paths.values()], owner=lock)
    smoothing = from_config(args.smoothing)
    votes = load_votes(args.votes)
    inputs = {"votes": str(Path(args.votes).resolve()), "votes_sha256": sha256(args.votes), "smoothing": str(Path(args.smoothing).resolve())}
    with output_lock(lock):
        _write_certificates(votes, smoothing, args, args.out, inputs, started)


_CERTIFY_FILES = ("votes.npz", "certified_accuracy.csv", "certified_accuracy.points.csv", "certified_accuracy.points.npz",
                  "certified_accuracy.json")


def _certify(args) -> None:
    import contextlib
    from pathlib import Path

    from .certify_run import checkpoint_path
    from .distributed import init_ranks
    from .results import LOCK, check_output, output_lock

    started = time.perf_counter()
    ranks = init_ranks(args.device)
    out = Path(args.out)
    inputs = [args.smoothing, args.data, args.weights, args.checkpoint] + (
        [Path(args.checkpoint) / name for name in ("model.pt", "config.yaml", "model.json")] if args.checkpoint else [])
    check_output(out, inputs, args.force, files=[*_CERTIFY_FILES, checkpoint_path(out, ranks).name])
    with output_lock(out / LOCK) if ranks.writer else contextlib.nullcontext():  # rank 0 holds the folder
        _certify_locked(args, ranks, out, started)


def _certify_locked(args, ranks, out, started: float) -> None:
    from pathlib import Path

    import torch

    from .certify.votes import save_votes
    from .certify_run import Checkpoint, certify_dataset, checkpoint_path
    from .classifier import SmoothedClassifier
    from .data.arrays import Graph, load_arrays
    from .models.factory import build_model, input_width
    from .results import sha256
    from .smoothing import from_config
    from .trained import load_trained

    def located(path):  # resolved, for the sidecar only: the fingerprint compares contents, not spellings
        return path and str(Path(path).resolve())

    if args.checkpoint:
        trained = load_trained(args.checkpoint)
        smoothing = from_config(args.smoothing) if args.smoothing else trained.config.smoothing
        dataset = load_arrays(args.data) if args.data else _checkpoint_test_data(trained.config)
        graph = isinstance(dataset, Graph)
        classes = trained.num_classes
        if args.num_classes is not None and args.num_classes != classes:
            raise ValueError(f"class count: checkpoint {classes}, --num-classes {args.num_classes}; they must agree "
                             "(leave out --num-classes: a checkpoint knows its class count)")
        trained.check_data(dataset.input_shape, int(dataset.labels.max()) + 1)  # the labels must fit its classes
        model = trained.model
        inputs = {"checkpoint": located(args.checkpoint), "weights_sha256": sha256(Path(args.checkpoint) / "model.pt"),
                  "data": located(args.data) if args.data else trained.config.data.name,
                  "data_sha256": args.data and sha256(args.data), "smoothing": located(args.smoothing) or "checkpoint"}
        paths = {"checkpoint"} | ({"data"} if args.data else set()) | ({"smoothing"} if args.smoothing else set())
    else:
        missing = [f"--{name}" for name in ("smoothing", "model", "data") if not getattr(args, name)]
        if missing:
            raise ValueError(f"certify needs {', '.join(missing)} (or --checkpoint DIR from hiersmooth train)")
        smoothing = from_config(args.smoothing)
        dataset = load_arrays(args.data)
        graph = isinstance(dataset, Graph)
        if args.weights and args.random_weights:
            raise ValueError("--weights and --random-weights exclude each other")
        if not args.weights and not args.random_weights:
            raise ValueError(f"certify --model {args.model}: no --weights; pass --weights W.pt (a state dict), or "
                             "--random-weights to certify a randomly initialised model (smoke tests only)")
        if args.num_classes is None:
            raise ValueError(f"certify --model {args.model}: needs --num-classes K (the class count is never guessed "
                             "from the labels; a --checkpoint run takes it from the checkpoint)")
        classes = args.num_classes
        if dataset.labels.size and int(dataset.labels.max()) >= classes:
            raise ValueError(f"--data {args.data}: has label {int(dataset.labels.max())}, but --num-classes {classes} "
                             f"allows labels 0..{classes - 1}")
        model = build_model(args.model, input_width(smoothing, dataset.input_shape, graph), classes, args.weights)
        inputs = {"data": located(args.data), "data_sha256": sha256(args.data), "smoothing": located(args.smoothing), "model": args.model,
                  "weights": located(args.weights), "weights_sha256": args.weights and sha256(args.weights)}
        paths = {"data", "smoothing", "weights"}
    if graph and getattr(model, "ablation_token", None) is not None and dataset.features.layout != torch.strided:
        dataset.features = dataset.features.to_dense()  # a learned ablation token is written into dense rows
    classifier = SmoothedClassifier(model, smoothing, classes, seed=args.seed, block_size=args.block_size,
                                    device=ranks.device(args.device), autocast=args.autocast)
    _check_class_count(classifier, dataset, graph, classes if args.checkpoint else None, args.num_classes)
    plan = classifier.seed_plan(graph)
    out.mkdir(parents=True, exist_ok=True)
    # contents only (hashes, the smoothing config): a relative path, another spelling or a copied folder resumes
    fingerprint = {**{key: value for key, value in inputs.items() if key not in paths}, "config": smoothing.to_config(),
                   "n0": args.n0, "n": args.n, "num_classes": classes, "seed_plan": plan.to_record(), "points": dataset.points, "rank": ranks.rank, "world_size": ranks.world_size}
    checkpoint = Checkpoint(checkpoint_path(out, ranks), fingerprint, dataset.points, 1 if graph else dataset.points, classes)
    counting = time.perf_counter()
    votes = certify_dataset(classifier, dataset, args.n0, args.n, args.batch_size, checkpoint,
                            args.checkpoint_seconds, progress=not args.no_progress and ranks.writer, ranks=ranks)
    counted = time.perf_counter() - counting
    if not ranks.writer:  # rank 0 writes the outputs of the whole run
        return
    save_votes(out / "votes.npz", votes)
    extra = {"seed_plan": plan.to_record(), "device": str(classifier.device), "batch_size": args.batch_size,
             "autocast": args.autocast, "counting_seconds_this_run": round(counted, 3), "world_size": ranks.world_size,
             "communication_seconds_rank0": round(ranks.communication_seconds, 3)}
    if graph:
        extra["nodes"] = dataset.nodes.tolist()
    _write_certificates(votes, smoothing, args, out / "certified_accuracy.csv", inputs, started, extra)


def _check_class_count(classifier, dataset, graph: bool, checkpoint, option) -> None:
    """One forward pass on one sample of the first point: the model's output width must be the class count."""
    width = (classifier.output_width(dataset.features, edge_index=dataset.edge_index) if graph
             else classifier.output_width(dataset.images[0]))
    if width != classifier.num_classes:
        given = f"--num-classes {option}" if option is not None else "--num-classes not given"
        raise ValueError(f"class count: checkpoint {checkpoint if checkpoint is not None else 'none'}, {given}, "
                         f"model output {width}; they must agree")


def _checkpoint_test_data(config):
    """The test data of a checkpoint's run config: the image test set, or the whole graph at its test nodes."""
    from .data.datasets import load_dataset
    from .data.graphs import GraphSplit

    dataset = load_dataset(config.data.name, config.data.root, config.data.seed, config.data.download)
    return dataset.test_graph() if isinstance(dataset, GraphSplit) else dataset.test


def _train(args) -> None:
    from .results import LOCK, check_output, output_lock
    from .run_config import load_run_config
    from .trained import TRAINED_FILES, checkpoint_folder, train_run

    config = load_run_config(args.config)
    out = checkpoint_folder(config, args.out)
    check_output(out, [args.config], args.force, files=TRAINED_FILES)
    with output_lock(out / LOCK):
        out = train_run(config, out, progress=not args.no_progress)
    final = json.loads((out / "model.json").read_text())["final"]
    print(f"trained {config.model.name} on {config.data.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k != "restored"))
    print(f"wrote {out}/ (model.pt, config.yaml, model.json, training.csv); certify it with: "
          f"hiersmooth certify --checkpoint {out} --out {out}/certified")


def _run(args) -> None:
    from .experiments.grid import load_experiment
    from .experiments.runner import RESULTS_FILES, cell_done, run_experiment
    from .results import check_output

    experiment = load_experiment(args.experiment)
    results = args.out or f"results/{experiment.name}"
    check_output(results, [args.experiment], args.force, files=RESULTS_FILES)
    if args.dry_run:
        for index, cell in enumerate(experiment.cells, 1):
            print(f"[{index}/{len(experiment.cells)}] {cell.name}{' (done)' if cell_done(results, cell) else ''}")
        print(f"{len(experiment.cells)} cells; results would go to {results}")
        return
    run_experiment(experiment, results, progress=not args.no_progress)
    print(f"wrote {results}/results.csv and cells.csv; draw the figures with: hiersmooth report {results}")


def _report(args) -> None:
    from .experiments.report import make_report, parse_threat

    threats = [parse_threat(text) for text in args.threat] if args.threat else None
    paths = make_report(args.results, threats, args.out, force=args.force)
    print("wrote " + ", ".join(str(p) for p in paths))


def _add_certificate_options(command, smoothing_required: bool) -> None:
    help = "smoothing config (YAML): selection, noise, indicator" + ("" if smoothing_required else "; default: the checkpoint's")
    command.add_argument("--smoothing", required=smoothing_required, help=help)
    command.add_argument("--alpha", type=_finite_float, default=DEFAULT_ALPHA,
                         help=f"significance level: certificates hold with probability >= 1 - alpha (default {DEFAULT_ALPHA})")
    command.add_argument("--runner-up", choices=("sound", "selection"), default="sound",
                         help="multi-class class B: sound (largest upper bound, default) or selection (the reference code's runner-up of pre_votes)")
    command.add_argument("--rows", help="changed rows r, e.g. 1,2,3 or 1-4 (default: all r at which anything is certified)")
    command.add_argument("--eps", help="l2 budgets for gaussian noise, e.g. 0,0.25,0.5 or 0:1:0.05")
    command.add_argument("--added", help="bits added (ra) for sparse noise, e.g. 0-40")
    command.add_argument("--deleted", help="bits deleted (rd) for sparse noise, e.g. 0-60")
    _add_force_option(command)


def _add_force_option(command) -> None:
    command.add_argument("--force", action="store_true", help="replace existing files at --out that hiersmooth did not write "
                         "(never an input of the run, a directory, pipe or device)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hiersmooth", description="Certified robustness by hierarchical randomized smoothing.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    certify = commands.add_parser(
        "certify-votes",
        help="certify vote counts (pre_votes, votes, labels) under a smoothing config",
        description="Certificates from vote counts: certified accuracy per threat, per-point results and a JSON sidecar.",
    )
    certify.add_argument("votes", help=".npz with integer arrays pre_votes, votes (points x classes) and labels")
    certify.add_argument("--out", required=True, help="certified-accuracy CSV; per-point files and OUT.json go beside it")
    _add_certificate_options(certify, smoothing_required=True)
    certify.set_defaults(run=_certify_votes)

    dataset = commands.add_parser(
        "certify",
        help="sample, count votes and certify every point of a dataset (resumable)",
        description="Monte-Carlo certification of a model on a dataset: writes DIR/votes.npz, DIR/certified_accuracy.csv "
                    "(+ .points.csv, .points.npz, .json) and DIR/progress.npz, from which a killed run resumes.",
    )
    dataset.add_argument("--checkpoint", help="folder written by hiersmooth train: its model, smoothing and test data "
                         "(--smoothing/--data override them)")
    dataset.add_argument("--model", help="MODULE:FACTORY, called as FACTORY(input_width, num_classes), "
                         "e.g. hiersmooth.models.images:SmallCNN or hiersmooth.models.graphs:GCN")
    dataset.add_argument("--weights", help="state dict for the model (torch.save; loaded with weights_only=True)")
    dataset.add_argument("--random-weights", action="store_true",
                         help="certify the --model with its random initial weights, without --weights (smoke tests only)")
    dataset.add_argument("--data", help=".npz with images+labels, or a graph (features, edge_index, labels[, nodes])")
    dataset.add_argument("--out", required=True, help="output directory")
    dataset.add_argument("--n0", type=_int_in(1, MAX_SAMPLES), default=1000, help="selection samples per point (default 1000)")
    dataset.add_argument("--n", "--num-samples", dest="n", type=_int_in(1, MAX_SAMPLES), default=10000,
                         help="estimation samples per point (default 10000); under torchrun write --num-samples")
    dataset.add_argument("--batch-size", type=_int_in(1, MAX_SAMPLES), default=100, help="samples per forward pass (default 100); does not change the votes")
    dataset.add_argument("--seed", type=_int_in(0, _INT64_MAX), default=0, help="seed of the random streams (default 0)")
    dataset.add_argument("--block-size", type=_int_in(1, MAX_SAMPLES), help="samples per random stream (default 100 for images, 4 for graphs)")
    dataset.add_argument("--num-classes", type=_int_in(2, _MAX_CLASSES), help="number of classes: required with --model (never guessed from the labels); "
                         "a --checkpoint knows its own")
    dataset.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    dataset.add_argument("--autocast", action="store_true", help="run the model under torch.autocast")
    dataset.add_argument("--checkpoint-seconds", type=_finite_float, default=10.0, help="save progress at least this often (default 10)")
    dataset.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    report.add_argument("--threat", action="append", help="a Pareto threat, e.g. r=2,eps=0.25 or r=1,ra=0,rd=5 "
                        "(repeatable; default: the experiment's pareto list)")
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
    errors += [cls for cls in (getattr(torch, "OutOfMemoryError", None), getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None))
               if isinstance(cls, type)]
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

    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")  # torch's notice, on every graph run
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
