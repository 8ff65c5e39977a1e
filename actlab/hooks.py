"""Looking inside any network: forward hooks on its activation modules.

A forward hook is a function that PyTorch calls every time a module has computed its output. Put one
on every ``ActivationFunction`` of a network, run a batch through it, and you have each hidden layer's
input (the pre-activation) and output, in the order the network used them, whatever the network's
shape: ``BaseNetwork``, an ``nn.Sequential`` of your own, BatchNorm, LayerNorm, Dropout or residual
blocks in between. A module used several times (``BaseNetwork`` reuses one activation after every
hidden layer) gives one entry per use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from actlab.activations import ActivationFunction


@dataclass(frozen=True)
class ActivationCall:
    """One use of an activation module: the module, what went in (the pre-activation) and what came out."""

    module: ActivationFunction
    pre: torch.Tensor
    post: torch.Tensor


def activation_modules(net: nn.Module) -> list[ActivationFunction]:
    """Every distinct ``ActivationFunction`` inside ``net``; a ``ValueError`` when there is none."""
    found = list(dict.fromkeys(m for m in net.modules() if isinstance(m, ActivationFunction)))
    if not found:
        raise ValueError(f"{type(net).__name__} holds no actlab ActivationFunction module, so there is no hidden "
                         "layer to look at: build it with activations from actlab (get_activation, act_fn_by_name).")
    return found


@contextmanager
def recording_activations(net: nn.Module) -> Iterator[list[ActivationCall]]:
    """Inside the ``with`` block, every use of an activation module of ``net`` appends an ``ActivationCall``."""
    calls: list[ActivationCall] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        calls.append(ActivationCall(module, inputs[0].detach(), output.detach()))  # type: ignore[arg-type]

    handles = [module.register_forward_hook(record) for module in activation_modules(net)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def in_mode(net: nn.Module, training: bool) -> Iterator[nn.Module]:
    """``net`` in training or eval mode inside the ``with`` block, each module's own mode restored after."""
    modes = {module: module.training for module in net.modules()}
    net.train(training)
    try:
        yield net
    finally:
        for module, mode in modes.items():
            module.train(mode)


def evaluation(net: nn.Module) -> AbstractContextManager[nn.Module]:
    """``net`` in eval mode (Dropout off, BatchNorm on its running statistics), each module's mode restored after."""
    return in_mode(net, False)


def training_mode(net: nn.Module) -> AbstractContextManager[nn.Module]:
    """``net`` in training mode (Dropout on, BatchNorm on the batch's statistics), each module's mode restored after."""
    return in_mode(net, True)


def device_of(net: nn.Module) -> torch.device:
    """The device of ``net``'s first parameter, the CPU for a network without parameters."""
    return next((p.device for p in net.parameters()), torch.device("cpu"))
