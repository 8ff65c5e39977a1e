"""A grid of comparisons from one spec file: every combination of the listed settings, each in its own folder.

A spec is a JSON object. Its keys are the settings of a comparison (``ComparisonSettings.OPTIONS``:
``lr``, ``hidden_sizes``...), fixed for every experiment; ``grid`` maps some of them to the list of
values to try; ``out`` (optional) is the folder that receives one subfolder per experiment::

    {"activations": ["relu", "tanh"], "seeds": 2, "epochs": 3,
     "grid": {"lr": [0.01, 0.1], "hidden_sizes": [[64], [64, 64]]}}

The values stay typed from the file to the training: nothing is turned back into command-line text.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from actlab.checkpoints import CheckpointError, read_json
from actlab.data import FashionMNISTData
from actlab.lab.compare import ComparisonResults, ComparisonSettings, plan, run_comparison, seed_range

MAX_SPEC_BYTES = 64 * 1024
MAX_EXPERIMENTS = 100
"""The most experiments one spec may ask for (the product of the grid's list lengths)."""


class GridSpecError(ValueError):
    """A spec file that is not a valid grid of comparisons."""


@dataclass(frozen=True)
class GridSpec:
    """The settings every experiment shares, the values to combine, and where the experiments go."""

    fixed: dict[str, object]
    axes: dict[str, list]
    out: Path | None = None


def _key(name: str) -> str:
    return name.replace("-", "_")


def read_spec(path: Path) -> GridSpec:
    """Read a spec file and check its structure and size; the values themselves are checked by ``experiments``."""
    path = Path(path)
    if not path.is_file():
        raise GridSpecError("there is no such file" if not path.exists() else "it is not a file; a grid spec is a "
                            "JSON file.")
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise GridSpecError(f"{path} is larger than a grid spec may be ({MAX_SPEC_BYTES:,} bytes).")
        spec = read_json(path, "grid spec")
    except (OSError, CheckpointError) as err:
        raise GridSpecError(f"Cannot read the grid spec {path}: {err}") from err
    if not isinstance(spec, dict) or not isinstance(spec.get("grid"), dict) or not spec["grid"]:
        raise GridSpecError(f"{path} must hold a JSON object with a non-empty object \"grid\" of settings to vary.")
    for names in (spec["grid"], [name for name in spec if name != "grid"]):
        aliased = sorted(name for name in names if [_key(other) for other in names].count(_key(name)) > 1)
        if aliased:
            raise GridSpecError(f"{path}: {' and '.join(aliased)} name the same setting; give it once.")
    axes = {_key(name): values for name, values in spec["grid"].items()}
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridSpecError(f"{path}: grid.{name} must be a non-empty list of values, not {values!r}.")
    count = math.prod(len(values) for values in axes.values())
    if count > MAX_EXPERIMENTS:
        raise GridSpecError(f"{path} asks for {count:,} experiments; a grid runs at most {MAX_EXPERIMENTS}.")
    for name, values in axes.items():
        repeated = [value for i, value in enumerate(values) if value in values[:i]]
        if repeated:
            raise GridSpecError(f"{path}: grid.{name} lists {repeated[0]!r} more than once; each value makes one "
                                "experiment, so give it once.")
    fixed = {_key(name): value for name, value in spec.items() if name not in ("grid", "out")}
    both = sorted(set(fixed) & set(axes))
    if both:
        raise GridSpecError(f"{path}: {', '.join(both)} is both fixed and in the grid.")
    out = spec.get("out")
    if out is not None and (not isinstance(out, str) or not out.strip()):
        raise GridSpecError(f"{path}: out must be a folder name, not {out!r}.")
    return GridSpec(fixed, axes, Path(out).expanduser() if out else None)


LONG_LIST = 16
"""Lists longer than this, all of one value, are named by their length in folder names (``64-layers-of-256``)."""


def _label(value: object) -> str:
    if not isinstance(value, list):
        return str(value)
    if len(value) > LONG_LIST and len(set(value)) == 1:
        return f"{len(value)}-layers-of-{value[0]}"
    return "x".join(map(str, value))


def experiments(spec: GridSpec, data: FashionMNISTData) -> list[tuple[str, ComparisonSettings]]:
    """Every combination of the grid's values, as (folder name, settings), in the spec's order, each checked."""
    found = []
    for values in itertools.product(*spec.axes.values()):
        chosen = dict(zip(spec.axes, values))
        name = "_".join(f"{key}={_label(value)}" for key, value in chosen.items())
        try:
            settings = ComparisonSettings.from_values({**spec.fixed, **chosen})
            plan(settings.activations, seed_range(settings.first_seed, settings.seeds), data,
                 protocol=settings.protocol, hidden_sizes=settings.hidden_sizes, init=settings.init,
                 norm=settings.norm, residual=settings.residual)
        except ValueError as err:
            raise GridSpecError(f"experiment {name}: {err}") from err
        found.append((name, settings))
    return found


def run_grid(spec: GridSpec, out: Path, data: FashionMNISTData, overwrite: bool = False,
             progress: bool = True) -> list[tuple[str, ComparisonResults]]:
    """Run every experiment of ``spec`` into its subfolder of ``out``, after checking all of them.

    Returns each experiment's folder name and results, in the spec's order, up to an interrupted one.
    """
    planned = experiments(spec, data)
    done = []
    for index, (name, settings) in enumerate(planned, start=1):
        print(f"\n=== experiment {index}/{len(planned)}: {name} ===")
        results = run_comparison(settings, out / name, data, overwrite=overwrite, progress=progress)
        done.append((name, results))
        if results.partial:
            break
    return done


def grid_table(done: Sequence[tuple[str, ComparisonResults]]) -> str:
    """One row per experiment, one column per activation: the mean test accuracy over its seeds (n/a: none)."""
    activations = list(dict.fromkeys(name for _, results in done for name in results.summary))
    width = max([len("experiment"), *(len(name) for name, _ in done)])
    lines = [f"{'experiment':<{width}}" + "".join(f"{name:>11}" for name in activations)]
    for experiment, results in done:
        means = [results.summary[name].mean if name in results.summary else None for name in activations]
        lines.append(f"{experiment:<{width}}" + "".join(f"{'n/a' if m is None else f'{m:.2%}':>11}" for m in means))
    return "\n".join(lines)
