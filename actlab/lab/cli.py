"""Command line: python -m actlab data | compare | grid | references.

Options are parsed into their types here; their values are checked by the library, whose
``ValueError`` becomes a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

from actlab import settings
from actlab.activations import SOURCE_ACTIVATIONS, act_fn_by_name
from actlab.checkpoints import CheckpointError, write_atomic
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
    ComparisonSettings,
    ResultsError,
    default_seeds,
    format_table,
    run_comparison,
)
from actlab.lab.grid import GridSpecError, grid_table, read_spec, run_grid
from actlab.lab.references import REFERENCE_RUNS, train_reference
from actlab.lab.runs import FolderBusyError
from actlab.mean_field import MEAN_FIELD_INITS
from actlab.network import DEFAULT_HIDDEN_SIZES, INITS, NORMS
from actlab.training import INTERRUPTED, OPTIMIZERS, SGD_MOMENTUM, default_protocol

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
    parser.add_argument("--init", default="default", metavar="INIT",
                        help="weight initialization: " + "; ".join(f"{k}: {v}" for k, v in
                                                                   {**INITS, **MEAN_FIELD_INITS}.items())
                        + "; gaussian-W-B: weights N(0, W/fan_in), biases N(0, B) (default: %(default)s)")
    parser.add_argument("--hidden-sizes", nargs="+", type=int, default=list(DEFAULT_HIDDEN_SIZES),
                        metavar="N", help="width of each hidden layer; their count is the depth "
                        f"(default: {' '.join(map(str, DEFAULT_HIDDEN_SIZES))})")
    parser.add_argument("--norm", choices=list(NORMS), default="none",
                        help="normalization between each hidden layer's linear map and its activation: batch "
                        "(BatchNorm), layer (LayerNorm) or none (default: %(default)s)")
    parser.add_argument("--residual", action="store_true",
                        help="add each hidden layer's input to its output where their sizes match")
    parser.add_argument("--out", default=str(settings.results_dir()), metavar="DIR",
                        help="output folder: results.json, results.png and checkpoints/ (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="train every run again, even a finished one, and replace results of other settings")


def settings_of(args: argparse.Namespace) -> ComparisonSettings:
    """The comparison that the options ask for; the library's ``ValueError`` says what is wrong."""
    values = {name: getattr(args, name) for name in ComparisonSettings.OPTIONS}
    return ComparisonSettings.from_values(values)


def _load_data() -> FashionMNISTData | None:
    try:
        return load_fashion_mnist()
    except (DatasetError, DatasetNotFoundError) as err:
        print(err, file=sys.stderr)
        return None


def _report(results: ComparisonResults, out: Path) -> int:
    print(format_table(results.summary))
    figure = " and results.png" if results.summary else ""
    print(f"Results in {out / 'results.json'}{figure} ({results.wall_time / 60:.1f} min of training).")
    if results.partial:
        print(f"Interrupted: {len(results.missing)} run(s) missing, the results are marked partial. "
              "Run the same command again to train them.", file=sys.stderr)
        return INTERRUPTED_EXIT
    return 0


def _refused(err: Exception) -> int:
    print(f"Nothing was trained: {err}" if isinstance(err, CheckpointError) else str(err), file=sys.stderr)
    return 2


def _compare(args: argparse.Namespace) -> int:
    try:
        comparison = settings_of(args)
    except ValueError as err:
        args.subparser.error(str(err))
    data = _load_data()
    if data is None:
        return 1
    try:
        results = run_comparison(comparison, args.out, data, overwrite=args.overwrite)
    except (ResultsError, CheckpointError, FolderBusyError) as err:
        return _refused(err)
    except ValueError as err:
        args.subparser.error(str(err))
    return _report(results, Path(args.out).expanduser())


def _grid(args: argparse.Namespace) -> int:
    data = _load_data()
    if data is None:
        return 1
    try:
        spec = read_spec(args.spec)
        out = spec.out or settings.results_dir() / args.spec.stem
        done = run_grid(spec, out, data, overwrite=args.overwrite)
    except GridSpecError as err:
        print(f"{args.spec}: {err}", file=sys.stderr)
        return 2
    except (ValueError, CheckpointError, FolderBusyError) as err:
        return _refused(err)
    table = grid_table(done)
    print(f"\nMean test accuracy over the seeds:\n{table}")
    write_atomic(out / "results.txt", (table + "\n").encode())
    if done and done[-1][1].partial:
        return INTERRUPTED_EXIT
    print(f"\n{len(done)} experiments in {out}, one folder each; this table is in {out / 'results.txt'}.")
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
    compare.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE", help=IMPORT_HELP)
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
    grid.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE", help=IMPORT_HELP)
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


IMPORT_HELP = ("a Python file (or module name) that registers activations with actlab.register_activation; "
               "it is run first, so that --activations and a grid spec can name them (may be given more than once)")


def import_activations(argv: Sequence[str]) -> None:
    """Run every ``--import`` file or module of ``argv``, so the activations it registers exist before parsing."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--import", dest="imports", action="append", default=[])
    for target in early.parse_known_args(list(argv))[0].imports:
        try:
            if target.endswith(".py"):
                runpy.run_path(target, run_name="actlab_activations")
            else:
                importlib.import_module(target)
        except Exception as err:  # the student's file may raise anything
            raise ValueError(f"--import {target} failed: {type(err).__name__}: {err}") from err


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        import_activations(argv)
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
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        print(f"python -m actlab {args.command}: {err.strerror or err}{where}", file=sys.stderr)
        return 1
    except (ValueError, CheckpointError, DatasetError, FolderBusyError) as err:
        print(f"python -m actlab {args.command}: {err}", file=sys.stderr)
        return 1

