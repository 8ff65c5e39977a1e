"""Command line: ``python -m actlab data`` and ``python -m actlab compare``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from actlab import settings
from actlab.activations import SOURCE_ACTIVATIONS, act_fn_by_name


def _data(args: argparse.Namespace) -> int:
    from actlab.data import ensure_fashion_mnist

    print(f"FashionMNIST is ready in {ensure_fashion_mnist()}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from actlab.compare import compare_activations, format_table, save_results
    from actlab.plotting import plot_seed_summary

    unknown = [name for name in args.activations if name not in act_fn_by_name]
    if unknown:
        print(f"Unknown activation(s) {', '.join(unknown)}. Registered: {', '.join(act_fn_by_name)}.", file=sys.stderr)
        return 2
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results = compare_activations(
        args.activations, seeds, args.out / "checkpoints",
        max_epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
    )
    results["command"] = (
        f"python -m actlab compare --activations {' '.join(args.activations)} --seeds {args.seeds} "
        f"--first-seed {args.first_seed} --epochs {args.epochs} --patience {args.patience} "
        f"--batch-size {args.batch_size} --lr {args.lr} --out {args.out}"
    )
    save_results(results, args.out / "results.json")
    fig = plot_seed_summary(results)
    fig.savefig(args.out / "results.png", dpi=120, bbox_inches="tight")
    print(format_table(results["summary"]))
    print(f"Results in {args.out / 'results.json'}, figure in {args.out / 'results.png'} "
          f"({results['wall_time'] / 60:.1f} min).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``actlab`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m actlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("data", help="make sure FashionMNIST is in the data folder").set_defaults(run=_data)
    quick = settings.quick_mode()
    compare = commands.add_parser("compare", help="train every activation on several seeds and compare")
    compare.add_argument("--activations", nargs="+", default=list(SOURCE_ACTIVATIONS), metavar="NAME",
                         help=f"activations to compare (default: {' '.join(SOURCE_ACTIVATIONS)})")
    compare.add_argument("--seeds", type=int, default=2 if quick else 5, help="number of seeds (default: 5)")
    compare.add_argument("--first-seed", type=int, default=42, help="seeds run from this one up (default: 42)")
    compare.add_argument("--epochs", type=int, default=3 if quick else 50, help="maximum epochs (default: 50)")
    compare.add_argument("--patience", type=int, default=7, help="early-stopping patience (default: 7)")
    compare.add_argument("--batch-size", type=int, default=256)
    compare.add_argument("--lr", type=float, default=1e-2)
    compare.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results/)")
    compare.set_defaults(run=_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
