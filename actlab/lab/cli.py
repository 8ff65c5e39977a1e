"""Command line: python -m actlab data | compare | grid | references.

Options are parsed into their types here; their values are checked by the library, whose
``ValueError`` becomes a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from actlab import settings
from actlab.activations import SOURCE_ACTIVATIONS, act_fn_by_name
from actlab.checkpoints import CheckpointError
from actlab.data import (
    DatasetError,
    DatasetNotFoundError,
    FashionMNISTData,
    ensure_fashion_mnist,
    load_fashion_mnist,
    verify_fashion_mnist,
)
from actlab.lab.compare import (
    FIRST_SEED,
    ComparisonResults,
    Experiment,
    ResultsError,
    check_mergeable,
    check_output_folder,
    check_stored_runs,
    compare_activations,
    default_seeds,
    format_table,
    load_results,
    merge_results,
    plan,
    save_results,
    seed_range,
)
from actlab.lab.grid import GridSpecError, experiments, read_spec
from actlab.lab.references import REFERENCE_RUNS, train_reference
from actlab.network import DEFAULT_HIDDEN_SIZES, INITS
from actlab.training import INTERRUPTED, OPTIMIZERS, SGD_MOMENTUM, Protocol, default_protocol

DESCRIPTION = "actlab: what activation functions do to a neural network, on FashionMNIST. Run a command with " \
    "--help for its options."
INTERRUPTED_EXIT = 130


def _mode_note(quick: bool) -> str:
    mode, state = ("quick", "on") if quick else ("full", "off")
    return (f"The defaults shown are those of {mode} mode: {settings.QUICK_ENV} is {state} now. "
            f"{settings.QUICK_ENV}=1 selects quick mode (5,000 training images, fewer seeds and epochs), "
            f"{settings.QUICK_ENV}=0 full mode.")


def add_compare_options(parser: argparse.ArgumentParser, quick: bool) -> None:
    """The options of ``compare``, with the defaults of the current mode; the library checks their values."""
    protocol = default_protocol()
    parser.add_argument("--activations", nargs="+", default=list(SOURCE_ACTIVATIONS), metavar="NAME",
                        help=f"activations to compare, each once, from: {', '.join(act_fn_by_name)} "
                        f"(default: {' '.join(SOURCE_ACTIVATIONS)})")
    parser.add_argument("--seeds", type=int, default=default_seeds(), metavar="N",
                        help="number of seeds per activation, at least 1 (default: %(default)s)")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED, metavar="SEED",
                        help=f"the seeds run from this one up; all must lie in 0..{settings.MAX_SEED} "
                             "(default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=protocol.max_epochs, metavar="N",
                        help="maximum epochs per run, at least 1 (default: %(default)s)")
    parser.add_argument("--patience", type=int, default=protocol.patience, metavar="N",
                        help="early stopping: epochs without a better validation accuracy (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=protocol.batch_size, metavar="N",
                        help="training batch size, at most the number of training images (default: %(default)s)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=protocol.optimizer,
                        help="optimizer (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=protocol.lr, metavar="LR",
                        help="learning rate, positive (default: %(default)s)")
    parser.add_argument("--momentum", type=float, default=None, metavar="M",
                        help=f"SGD's momentum, in [0, 1) (default: {SGD_MOMENTUM}; Adam takes none)")
    parser.add_argument("--init", choices=list(INITS), default="default",
                        help="weight initialization: " + "; ".join(f"{k}: {v}" for k, v in INITS.items())
                        + " (default: %(default)s)")
    parser.add_argument("--hidden-sizes", nargs="+", type=int, default=list(DEFAULT_HIDDEN_SIZES),
                        metavar="N", help="width of each hidden layer; their count is the depth "
                        f"(default: {' '.join(map(str, DEFAULT_HIDDEN_SIZES))})")
    parser.add_argument("--out", type=Path, default=settings.results_dir(), metavar="DIR",
                        help="output folder: results.json, results.png and checkpoints/ (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="train every run again, even a finished one, and replace results of other settings")


def protocol_of(args: argparse.Namespace) -> Protocol:
    """The protocol that the options ask for; the library's ``ValueError`` says what is wrong."""
    return Protocol(max_epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                    optimizer=args.optimizer, lr=args.lr, momentum=args.momentum)


def plan_of(args: argparse.Namespace, data: FashionMNISTData) -> tuple[Experiment, list[tuple[str, int]]]:
    """The experiment and the runs that the options ask for, every value checked by the library."""
    return plan(args.activations, seed_range(args.first_seed, args.seeds), data, protocol=protocol_of(args),
                hidden_sizes=args.hidden_sizes, init=args.init)


def _command(args: argparse.Namespace, protocol: Protocol) -> str:
    momentum = f" --momentum {protocol.momentum}" if protocol.momentum is not None else ""
    return (
        f"python -m actlab compare --activations {' '.join(args.activations)} --seeds {args.seeds} "
        f"--first-seed {args.first_seed} --epochs {args.epochs} --patience {args.patience} "
        f"--batch-size {args.batch_size} --optimizer {protocol.optimizer} --lr {protocol.lr}{momentum} "
        f"--init {args.init} --hidden-sizes {' '.join(map(str, args.hidden_sizes))} --out {args.out}"
    )


def _save_figure(results: ComparisonResults, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    from actlab.plotting import plot_seed_summary

    if not results.summary:
        return False
    plot_seed_summary(results.accuracies(), results.failures()).savefig(path, dpi=120, bbox_inches="tight")
    return True


def _load_data() -> FashionMNISTData | None:
    try:
        return load_fashion_mnist()
    except (DatasetError, DatasetNotFoundError) as err:
        print(err, file=sys.stderr)
        return None


def _compare(args: argparse.Namespace, data: FashionMNISTData | None = None) -> int:
    data = data or _load_data()
    if data is None:
        return 1
    try:
        experiment, jobs = plan_of(args, data)
        check_output_folder(args.out)
    except ValueError as err:
        args.subparser.error(str(err))
    results_file = args.out / "results.json"
    try:
        existing = load_results(results_file) if results_file.exists() else None
    except ResultsError as err:
        print(f"{err}\nMove it away, or choose another --out.", file=sys.stderr)
        return 2
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
    try:
        if not args.overwrite:
            check_stored_runs(jobs, args.out / "checkpoints", experiment)
    except CheckpointError as err:
        print(f"Nothing was trained: {err}", file=sys.stderr)
        return 2
    seeds = seed_range(args.first_seed, args.seeds)
    results = compare_activations(args.activations, seeds, args.out / "checkpoints", data,
                                  protocol=experiment.protocol, hidden_sizes=experiment.hidden_sizes,
                                  init=experiment.init, overwrite=args.overwrite)
    results = replace(results, command=_command(args, experiment.protocol))
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
    data = _load_data()
    if data is None:
        return 1
    runs = []
    for name, chosen in experiments(spec):
        argv = ["--out", str(out / name)] + (["--overwrite"] if args.overwrite else [])
        for key, value in chosen.items():
            argv += ["--" + key.replace("_", "-"), *map(str, value if isinstance(value, list) else [value])]
        print(f"experiment {name}: {' '.join(argv)}")
        experiment_args = parser.parse_args(argv)
        try:
            plan_of(experiment_args, data)
        except ValueError as err:
            print(f"{args.spec}: experiment {name}: {err}", file=sys.stderr)
            return 2
        experiment_args.subparser = parser
        runs.append((name, experiment_args))
    for index, (name, experiment_args) in enumerate(runs, start=1):
        print(f"\n=== experiment {index}/{len(runs)}: {name} ===")
        status = _compare(experiment_args, data)
        if status:
            return status
    print(f"\n{len(runs)} experiments in {out}, one folder each.")
    return 0


def _references(args: argparse.Namespace) -> int:
    model_path = settings.checkpoint_path()
    for run in REFERENCE_RUNS:
        try:
            history = train_reference(run, model_path=model_path, overwrite=args.overwrite)
        except CheckpointError as err:
            print(err, file=sys.stderr)
            return 2
        if history.stop_reason.startswith(INTERRUPTED):
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
    """Run the command line on ``argv`` (default: ``sys.argv``); returns the exit status."""
    try:
        parser = build_parser()
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return INTERRUPTED_EXIT

