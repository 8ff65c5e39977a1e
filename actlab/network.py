"""The source's fully connected network for FashionMNIST."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from actlab.activations import ActivationFunction

DEFAULT_HIDDEN_SIZES = (512, 256, 256, 128)


def _check_size(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}.")
    return value


class BaseNetwork(nn.Module):
    """Linear layers of the given sizes, the same activation after each hidden layer.

    ``config`` holds everything needed to build it again, for example
    ``{"act_fn": {"name": "Tanh"}, "input_size": 784, "num_classes": 10, "hidden_sizes": [512, 256, 256, 128]}``.
    """

    def __init__(
        self,
        act_fn: ActivationFunction,
        input_size: int = 784,
        num_classes: int = 10,
        hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
    ) -> None:
        super().__init__()
        if not isinstance(act_fn, ActivationFunction):
            raise TypeError(f"act_fn must be an ActivationFunction instance, not {act_fn!r}.")
        if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence) or not hidden_sizes:
            raise ValueError(f"hidden_sizes must be a non-empty list of positive integers, not {hidden_sizes!r}.")
        sizes = [_check_size("input_size", input_size)]
        sizes += [_check_size(f"hidden_sizes[{i}]", size) for i, size in enumerate(hidden_sizes)]
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), act_fn]
        layers.append(nn.Linear(sizes[-1], _check_size("num_classes", num_classes)))
        self.layers = nn.Sequential(*layers)
        self.config = {
            "act_fn": act_fn.config,
            "input_size": input_size,
            "num_classes": num_classes,
            "hidden_sizes": list(hidden_sizes),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.view(x.size(0), -1))
