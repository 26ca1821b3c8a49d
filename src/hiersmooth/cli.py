"""The ``hiersmooth`` command line.

    hiersmooth certify-votes VOTES.npz --smoothing SMOOTHING.yaml [--alpha 0.01] [--runner-up sound|selection]
                             --out OUT.csv [--rows 1-4] [--eps 0:1:0.05 | --added 0-40 --deleted 0-60]
    hiersmooth certify --smoothing SMOOTHING.yaml --model MODULE:FACTORY [--weights W.pt] --data DATA.npz
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

    table = certified_accuracy_table(result, threats_from_axes(smoothing.noise, axes))
    paths = write_outputs(result, table, axes, out_csv, inputs, started, extra)

    print(f"{votes.points} points, {votes.classes} classes, n0={votes.n0}, n={votes.n}, alpha={result.alpha}")
    print(f"accuracy of the selected class: {result.correct.mean():.4f}")
    print(format_table(result, table, axes))
    print("wrote " + ", ".join(str(path) for path in paths.values()))


def _certify_votes(args) -> None:
    from .certify.votes import load_votes
    from .results import sha256
    from .smoothing import from_config

    started = time.perf_counter()
    smoothing = from_config(args.smoothing)
    votes = load_votes(args.votes)
    inputs = {"votes": str(args.votes), "votes_sha256": sha256(args.votes), "smoothing": str(args.smoothing)}
    _write_certificates(votes, smoothing, args, args.out, inputs, started)


def _certify(args) -> None:
    from pathlib import Path

    import torch

    from .certify.votes import save_votes
    from .certify_run import Checkpoint, certify_dataset, checkpoint_path
    from .classifier import SmoothedClassifier
    from .data.arrays import Graph, load_arrays
    from .distributed import init_ranks
    from .models.factory import build_model, input_width
    from .results import sha256
    from .smoothing import from_config
    from .trained import load_trained

    started = time.perf_counter()
    ranks = init_ranks(args.device)
    if args.checkpoint:
        trained = load_trained(args.checkpoint)
        smoothing = from_config(args.smoothing) if args.smoothing else trained.config.smoothing
        dataset = load_arrays(args.data) if args.data else _checkpoint_test_data(trained.config)
        graph = isinstance(dataset, Graph)
        classes = trained.num_classes
        trained.check_data(dataset.input_shape, args.num_classes or int(dataset.labels.max()) + 1)
        model = trained.model
        inputs = {"checkpoint": str(args.checkpoint), "weights_sha256": sha256(Path(args.checkpoint) / "model.pt"),
                  "data": str(args.data) if args.data else trained.config.data.name,
                  "data_sha256": args.data and sha256(args.data), "smoothing": str(args.smoothing or "checkpoint")}
    else:
        missing = [f"--{name}" for name in ("smoothing", "model", "data") if not getattr(args, name)]
        if missing:
            raise ValueError(f"certify needs {', '.join(missing)} (or --checkpoint DIR from hiersmooth train)")
        smoothing = from_config(args.smoothing)
        dataset = load_arrays(args.data)
        graph = isinstance(dataset, Graph)
        classes = args.num_classes or int(dataset.labels.max()) + 1
        model = build_model(args.model, input_width(smoothing, dataset.input_shape, graph), classes, args.weights)
        inputs = {"data": str(args.data), "data_sha256": sha256(args.data), "smoothing": str(args.smoothing), "model": args.model,
                  "weights": args.weights and str(args.weights), "weights_sha256": args.weights and sha256(args.weights)}
    if graph and getattr(model, "ablation_token", None) is not None and dataset.features.layout != torch.strided:
        dataset.features = dataset.features.to_dense()  # a learned ablation token is written into dense rows
    classifier = SmoothedClassifier(model, smoothing, classes, seed=args.seed, block_size=args.block_size,
                                    device=ranks.device(args.device), autocast=args.autocast)
    plan = classifier.seed_plan(graph)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = {**inputs, "config": smoothing.to_config(), "n0": args.n0, "n": args.n, "num_classes": classes,
                   "seed_plan": plan.to_record(), "points": dataset.points, "rank": ranks.rank, "world_size": ranks.world_size}
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


def _checkpoint_test_data(config):
    """The test data of a checkpoint's run config: the image test set, or the whole graph at its test nodes."""
    from .data.datasets import load_dataset
    from .data.graphs import GraphSplit

    dataset = load_dataset(config.data.name, config.data.root, config.data.seed, config.data.download)
    return dataset.test_graph() if isinstance(dataset, GraphSplit) else dataset.test


def _train(args) -> None:
    from .run_config import load_run_config
    from .trained import train_run

    config = load_run_config(args.config)
    out = train_run(config, args.out, progress=not args.no_progress)
    final = json.loads((out / "model.json").read_text())["final"]
    print(f"trained {config.model.name} on {config.data.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k != "restored"))
    print(f"wrote {out}/ (model.pt, config.yaml, model.json, training.csv); certify it with: "
          f"hiersmooth certify --checkpoint {out} --out {out}/certified")


def _run(args) -> None:
    from .experiments.grid import load_experiment
    from .experiments.runner import cell_done, run_experiment

    experiment = load_experiment(args.experiment)
    results = args.out or f"results/{experiment.name}"
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
    paths = make_report(args.results, threats, args.out)
    print("wrote " + ", ".join(str(p) for p in paths))


def _add_certificate_options(command, smoothing_required: bool) -> None:
    help = "smoothing config (YAML): selection, noise, indicator" + ("" if smoothing_required else "; default: the checkpoint's")
    command.add_argument("--smoothing", required=smoothing_required, help=help)
    command.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    command.add_argument("--runner-up", choices=("sound", "selection"), default="sound",
                         help="multi-class class B: sound (largest upper bound, default) or selection (the reference code's runner-up of pre_votes)")
    command.add_argument("--rows", help="changed rows r, e.g. 1,2,3 or 1-4 (default: all r at which anything is certified)")
    command.add_argument("--eps", help="l2 budgets for gaussian noise, e.g. 0,0.25,0.5 or 0:1:0.05")
    command.add_argument("--added", help="bits added (ra) for sparse noise, e.g. 0-40")
    command.add_argument("--deleted", help="bits deleted (rd) for sparse noise, e.g. 0-60")


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
    dataset.add_argument("--data", help=".npz with images+labels, or a graph (features, edge_index, labels[, nodes])")
    dataset.add_argument("--out", required=True, help="output directory")
    dataset.add_argument("--n0", type=int, default=1000, help="selection samples per point (default 1000)")
    dataset.add_argument("--n", "--num-samples", dest="n", type=int, default=10000,
                         help="estimation samples per point (default 10000); under torchrun write --num-samples")
    dataset.add_argument("--batch-size", type=int, default=100, help="samples per forward pass (default 100); does not change the votes")
    dataset.add_argument("--seed", type=int, default=0, help="seed of the random streams (default 0)")
    dataset.add_argument("--block-size", type=int, help="samples per random stream (default 100 for images, 4 for graphs)")
    dataset.add_argument("--num-classes", type=int, help="number of classes (default: largest label + 1)")
    dataset.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    dataset.add_argument("--autocast", action="store_true", help="run the model under torch.autocast")
    dataset.add_argument("--checkpoint-seconds", type=float, default=10.0, help="save progress at least this often (default 10)")
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


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")  # torch's notice, on every graph run
    try:
        run_command(sys.argv[1:] if argv is None else argv)
        _leave_process_group()
    except ValueError as error:
        print(f"hiersmooth: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hiersmooth: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
