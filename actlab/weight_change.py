"""Which layers move during training: each parameter's change relative to its size, from the start and per epoch."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn


def relative_change(before: torch.Tensor, after: torch.Tensor) -> float | None:
    """``||after - before|| / ||before||`` (Frobenius norms): how far a tensor moved, as a fraction of its size.

    None where ``before`` is all zeros (biases that start at zero), for which no fraction exists.
    """
    size = before.norm().item()
    return (after - before).norm().item() / size if size else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def weight_monitor() -> Callable[[nn.Module], dict]:
    """A monitor (for ``fit``) that records how far every parameter has moved.

    Its first call keeps a copy of the parameters as the start; every call returns, per parameter,
    ``from_start`` (its relative change since the first call) and ``per_epoch`` (since the previous
    call: the update-to-data ratio of one epoch), under ``"parameters"``.
    """
    start: dict[str, torch.Tensor] = {}
    previous: dict[str, torch.Tensor] = {}

    def record(net: nn.Module) -> dict:
        now = {name: param.detach().clone() for name, param in net.named_parameters()}
        start.update({name: value for name, value in now.items() if name not in start})
        changes = [{"name": name, "from_start": _rounded(relative_change(start[name], value)),
                    "per_epoch": _rounded(relative_change(previous.get(name, value), value))}
                   for name, value in now.items()]
        previous.update(now)
        return {"parameters": changes}

    return record


def movement_over_epochs(records: Sequence[dict], key: str = "per_epoch") -> dict[str, np.ndarray]:
    """Per parameter, its ``key`` (``"per_epoch"`` or ``"from_start"``) in each of ``weight_monitor``'s records.

    One value per record (the first is the start, epoch 0); NaN where the change is undefined.
    """
    if key not in ("per_epoch", "from_start"):
        raise ValueError(f"key must be per_epoch or from_start, not {key!r}")
    series: dict[str, list[float]] = {}
    for record in records:
        for row in record["parameters"]:
            value = row[key]
            series.setdefault(row["name"], []).append(math.nan if value is None else float(value))
    return {name: np.array(values) for name, values in series.items()}
