"""Command line: python -m actlab data | compare | grid | references."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from actlab import settings
from actlab.activations import SOURCE_ACTIVATIONS, act_fn_by_name
from actlab.data import FULL_SIZES, QUICK_SIZES
from actlab.network import DEFAULT_HIDDEN_SIZES, INITS
from actlab.runs import OPTIMIZERS, SGD_MOMENTUM, Protocol

DESCRIPTION = "actlab: what activation functions do to a neural network, on FashionMNIST. Run a command with " \
    "--help for its options."
INTERRUPTED_EXIT = 130


def _mode_note(quick: bool) -> str:
    mode, state = ("quick", "on") if quick else ("full", "off")
    return (f"The defaults shown are those of {mode} mode: {settings.QUICK_ENV} is {state} now. "
            f"{settings.QUICK_ENV}=1 selects quick mode (5,000 training images, fewer seeds and epochs), "
            f"{settings.QUICK_ENV}=0 full mode.")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seed(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= settings.MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed must lie between 0 and 2**32 - 1 = {settings.MAX_SEED}, not {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def _learning_rate(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _momentum(text: str) -> float:
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), not {text}")
    return value


def _activation(text: str) -> str:
    name = text.lower()
    if name not in act_fn_by_name:
        raise argparse.ArgumentTypeError(f"unknown activation {text!r}; registered: {', '.join(act_fn_by_name)}")
    return name


def add_compare_options(parser: argparse.ArgumentParser, quick: bool) -> None:
    """The options of ``compare``, with the defaults of the current mode."""
    train_size = (QUICK_SIZES if quick else FULL_SIZES)["train"]
    parser.add_argument("--activations", nargs="+", type=_activation, default=list(SOURCE_ACTIVATIONS),
                        metavar="NAME",
                        help=f"activations to compare, each once (default: {' '.join(SOURCE_ACTIVATIONS)})")
    parser.add_argument("--seeds", type=_positive_int, default=2 if quick else 5, metavar="N",
                        help="number of seeds per activation, at least 1 (default: %(default)s)")
    parser.add_argument("--first-seed", type=_seed, default=42, metavar="SEED",
                        help=f"the seeds run from this one up; all must lie in 0..{settings.MAX_SEED} "
                             "(default: %(default)s)")
    parser.add_argument("--epochs", type=_positive_int, default=3 if quick else 50, metavar="N",
                        help="maximum epochs per run, at least 1 (default: %(default)s)")
    parser.add_argument("--patience", type=_positive_int, default=7, metavar="N",
                        help="early stopping: epochs without a better validation accuracy (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                        help=f"training batch size, 1 to {train_size:,} (the training images) (default: %(default)s)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="optimizer (default: %(default)s)")
    parser.add_argument("--lr", type=_learning_rate, default=1e-2, metavar="LR",
                        help="learning rate, positive (default: %(default)s)")
    parser.add_argument("--momentum", type=_momentum, default=None, metavar="M",
                        help=f"SGD's momentum, in [0, 1) (default: {SGD_MOMENTUM}; Adam takes none)")
    parser.add_argument("--init", choices=list(INITS), default="default",
                        help="weight initialization: " + "; ".join(f"{k}: {v}" for k, v in INITS.items())
                        + " (default: %(default)s)")
    parser.add_argument("--hidden-sizes", nargs="+", type=_positive_int, default=list(DEFAULT_HIDDEN_SIZES),
                        metavar="N", help="width of each hidden layer; their count is the depth "
                        f"(default: {' '.join(map(str, DEFAULT_HIDDEN_SIZES))})")
    parser.add_argument("--out", type=Path, default=settings.results_dir(), metavar="DIR",
                        help="output folder: results.json, results.png and checkpoints/ (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="train every run again, even a finished one, and replace results of other settings")


def check_compare_args(parser: argparse.ArgumentParser, args: argparse.Namespace, quick: bool) -> Protocol:
    """The checks that span several options; a failure exits with status 2. Returns the protocol."""
    repeated = sorted({name for name in args.activations if args.activations.count(name) > 1})
    if repeated:
        parser.error(f"argument --activations: each activation may appear once; repeated: {', '.join(repeated)}")
    last = args.first_seed + args.seeds - 1
    if last > settings.MAX_SEED:
        parser.error(f"the last seed, {args.first_seed} + {args.seeds} - 1 = {last}, exceeds {settings.MAX_SEED}")
    train_size = (QUICK_SIZES if quick else FULL_SIZES)["train"]
    if args.batch_size > train_size:
        parser.error(f"argument --batch-size: must be at most {train_size:,} (the training images), "
                     f"not {args.batch_size}")
    try:
        return Protocol(max_epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, init=args.init)
    except ValueError as err:
        parser.error(str(err))


def _command(args: argparse.Namespace, protocol: Protocol) -> str:
    momentum = f" --momentum {protocol.momentum}" if protocol.momentum is not None else ""
    return (
        f"python -m actlab compare --activations {' '.join(args.activations)} --seeds {args.seeds} "
        f"--first-seed {args.first_seed} --epochs {args.epochs} --patience {args.patience} "
        f"--batch-size {args.batch_size} --optimizer {protocol.optimizer} --lr {protocol.lr}{momentum} "
        f"--init {protocol.init} --hidden-sizes {' '.join(map(str, args.hidden_sizes))} --out {args.out}"
    )


def _unwritable(out: Path) -> str | None:
    """Why results cannot be written into ``out``, or None when they can."""
    for folder in (out, out / "checkpoints"):
        if folder.exists() and not folder.is_dir():
            return f"{folder} is a file, not a folder"
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        for folder in (out, out / "checkpoints"):
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as err:
        return f"{err.strerror or err} ({err.filename or out})"
    return None


def _save_figure(results, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    from actlab.plotting import plot_seed_summary

    if not results.summary:
        return False
    plot_seed_summary(results).savefig(path, dpi=120, bbox_inches="tight")
    return True


def _compare(args: argparse.Namespace) -> int:
    from actlab.checkpoints import CheckpointError
    from actlab.compare import (
        Experiment,
        ResultsError,
        check_mergeable,
        check_stored_runs,
        compare_activations,
        format_table,
        load_results,
        merge_results,
        save_results,
    )
    from actlab.data import DatasetError, DatasetNotFoundError, load_fashion_mnist
    from actlab.runs import DataSpec

    problem = _unwritable(args.out)
    if problem:
        print(f"Cannot write the results into --out {args.out}: {problem}.", file=sys.stderr)
        return 2
    results_file = args.out / "results.json"
    try:
        existing = load_results(results_file) if results_file.exists() else None
    except ResultsError as err:
        print(f"{err}\nMove it away, or choose another --out.", file=sys.stderr)
        return 2
    try:
        data = load_fashion_mnist()
    except (DatasetError, DatasetNotFoundError) as err:
        print(err, file=sys.stderr)
        return 1
    experiment = Experiment(tuple(args.hidden_sizes), args.protocol, DataSpec.of(data))
    try:
        if existing is not None:
            check_mergeable(existing.experiment, experiment)
    except ResultsError as err:
        if not args.overwrite:
            print(f"{results_file}: {err}\nChoose another --out, or pass --overwrite to train again and replace "
                  "these results.", file=sys.stderr)
            return 2
        print(f"--overwrite: {results_file} holds other settings and is replaced.")
        existing = None
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    try:
        if not args.overwrite:
            check_stored_runs([(name, seed) for name in args.activations for seed in seeds], args.out / "checkpoints",
                              experiment)
    except CheckpointError as err:
        print(f"Nothing was trained: {err}", file=sys.stderr)
        return 2
    results = compare_activations(args.activations, seeds, args.out / "checkpoints", data, protocol=args.protocol,
                                  hidden_sizes=args.hidden_sizes, overwrite=args.overwrite)
    results = replace(results, command=_command(args, args.protocol))
    if existing is not None:
        results = merge_results(existing, results)
    save_results(results, results_file)
    figure = args.out / "results.png"
    print(format_table(results.summary))
    print(f"Results in {results_file}" + (f", figure in {figure}" if _save_figure(results, figure) else "")
          + f" ({results.wall_time / 60:.1f} min).")
    if results.partial:
        print(f"Interrupted: {len(results.missing)} run(s) missing, the results are marked partial. "
              "Run the same command again to train them.", file=sys.stderr)
        return INTERRUPTED_EXIT
    return 0


def _grid(args: argparse.Namespace) -> int:
    from actlab.grid import GridSpecError, experiments, read_spec

    try:
        spec = read_spec(args.spec)
    except GridSpecError as err:
        print(err, file=sys.stderr)
        return 2
    out = spec.out or settings.results_dir() / args.spec.stem
    parser = argparse.ArgumentParser(prog=f"python -m actlab grid {args.spec}", add_help=False)
    add_compare_options(parser, args.quick)
    known = set(vars(parser.parse_args([]))) - {"out", "overwrite"}
    unknown = sorted((set(spec.fixed) | set(spec.axes)) - known)
    if unknown:
        print(f"{args.spec}: unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(sorted(known))}.",
              file=sys.stderr)
        return 2
    runs = []
    for name, chosen in experiments(spec):
        argv = ["--out", str(out / name)] + (["--overwrite"] if args.overwrite else [])
        for key, value in chosen.items():
            argv += ["--" + key.replace("_", "-"), *map(str, value if isinstance(value, list) else [value])]
        print(f"experiment {name}: {' '.join(argv)}")
        experiment_args = parser.parse_args(argv)
        experiment_args.protocol = check_compare_args(parser, experiment_args, args.quick)
        runs.append((name, experiment_args))
    for index, (name, experiment_args) in enumerate(runs, start=1):
        print(f"\n=== experiment {index}/{len(runs)}: {name} ===")
        status = _compare(experiment_args)
        if status:
            return status
    print(f"\n{len(runs)} experiments in {out}, one folder each.")
    return 0


def _references(args: argparse.Namespace) -> int:
    from actlab.checkpoints import CheckpointError
    from actlab.references import REFERENCE_RUNS, train_reference

    model_path = settings.checkpoint_path()
    for run in REFERENCE_RUNS:
        try:
            history = train_reference(run, model_path=model_path, overwrite=args.overwrite)
        except CheckpointError as err:
            print(err, file=sys.stderr)
            return 2
        if history.stop_reason == "interrupted":
            return INTERRUPTED_EXIT
        accuracy = "none" if history.test_acc is None else f"{history.test_acc:.2%}"
        print(f"{run.name}: test accuracy {accuracy}, {history.epochs} epochs, {history.wall_time:.0f} s")
    print(f"Reference networks in {model_path}.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``actlab`` argument parser, with the defaults of the current mode (``ACTLAB_QUICK``)."""
    quick = settings.quick_mode()
    parser = argparse.ArgumentParser(prog="python -m actlab", description=DESCRIPTION, epilog=_mode_note(quick))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data = commands.add_parser("data", help="check that FashionMNIST is in the data folder",
                               description="Find FashionMNIST (data folder, system copy, or download), then read "
                               "and check all four files.")
    data.set_defaults(run=_data)
    compare = commands.add_parser(
        "compare", help="train every activation on several seeds and compare", epilog=_mode_note(quick),
        description="Train the source's network once per activation and seed, then summarize the test accuracies. "
        "Finished runs in --out with the same settings are reused; Ctrl-C stops the comparison, writes the results "
        "so far marked partial, and exits with status 130.",
    )
    add_compare_options(compare, quick)
    compare.set_defaults(run=_compare, quick=quick, subparser=compare)
    grid = commands.add_parser(
        "grid", help="run a comparison for every combination of settings in a spec file", epilog=_mode_note(quick),
        description="Read a JSON spec: compare's options (activations, seeds, epochs, lr, ...) fixed for every "
        "experiment, and under \"grid\" the lists of values to combine. Each combination is a comparison in its own "
        "subfolder of \"out\" (default: results/<mode>/<spec name>). Example: "
        '{"seeds": 2, "grid": {"lr": [0.01, 0.1], "hidden_sizes": [[64], [64, 64]]}}',
    )
    grid.add_argument("spec", type=Path, help="the JSON spec file")
    grid.add_argument("--overwrite", action="store_true", help="train every run again (see compare --overwrite)")
    grid.set_defaults(run=_grid, quick=quick)
    references = commands.add_parser(
        "references", help="train the reference networks that notebooks 04 and 05 read", epilog=_mode_note(quick),
        description="Train the six seed-42 networks of the source's protocol and the deep ReLU network under the "
        "default and He initializations, recording activation statistics every epoch, into saved_models/ (a "
        "scratch folder in quick mode). Finished networks with the same settings are reused.",
    )
    references.add_argument("--overwrite", action="store_true", help="train every reference network again")
    references.set_defaults(run=_references)
    return parser


def _data(args: argparse.Namespace) -> int:
    from actlab.data import DatasetError, DatasetNotFoundError, ensure_fashion_mnist, verify_fashion_mnist

    try:
        folder = ensure_fashion_mnist()
        counts = verify_fashion_mnist()
    except (DatasetError, DatasetNotFoundError) as err:
        print(err, file=sys.stderr)
        return 1
    print(f"FashionMNIST is ready in {folder}: all four files read and checked, "
          f"{counts['train']:,} training and {counts['test']:,} test images.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command == "compare":
        args.protocol = check_compare_args(args.subparser, args, args.quick)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
