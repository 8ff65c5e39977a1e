"""A grid of comparisons from one spec file: every combination of the listed settings, each in its own folder.

A spec is a JSON object. Its keys are the options of ``python -m actlab compare`` (``lr``,
``hidden_sizes``...), fixed for every experiment; ``grid`` maps some of them to the list of values
to try; ``out`` (optional) is the folder that receives one subfolder per experiment::

    {"activations": ["relu", "tanh"], "seeds": 2, "epochs": 3,
     "grid": {"lr": [0.01, 0.1], "hidden_sizes": [[64], [64, 64]]}}
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path


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
    """Read and check the structure of a spec file; the values themselves are checked as options are."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GridSpecError(f"Cannot read the grid spec {path}: {err}") from err
    if not isinstance(spec, dict) or not isinstance(spec.get("grid"), dict) or not spec["grid"]:
        raise GridSpecError(f"{path} must hold a JSON object with a non-empty object \"grid\" of settings to vary.")
    axes = {_key(name): values for name, values in spec["grid"].items()}
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridSpecError(f"{path}: grid.{name} must be a non-empty list of values, not {values!r}.")
    fixed = {_key(name): value for name, value in spec.items() if name not in ("grid", "out")}
    both = sorted(set(fixed) & set(axes))
    if both:
        raise GridSpecError(f"{path}: {', '.join(both)} is both fixed and in the grid.")
    out = spec.get("out")
    if out is not None and not isinstance(out, str):
        raise GridSpecError(f"{path}: out must be a folder name, not {out!r}.")
    return GridSpec(fixed, axes, Path(out) if out else None)


def _label(value: object) -> str:
    return "x".join(map(str, value)) if isinstance(value, list) else str(value)


def experiments(spec: GridSpec) -> list[tuple[str, dict[str, object]]]:
    """Every combination of the grid's values, as (folder name, settings), in the spec's order."""
    combos = []
    for values in itertools.product(*spec.axes.values()):
        chosen = dict(zip(spec.axes, values))
        name = "_".join(f"{key}={_label(value)}" for key, value in chosen.items())
        combos.append((name, {**spec.fixed, **chosen}))
    return combos
