"""Initializations from the mean-field theory (``actlab.theory``): weights and biases at chosen variances.

``critical`` puts every layer on its activation's critical line (chi_1 = 1) and, where the
activation's mean is not zero (sigmoid, Softplus, ReLU...), gives each layer biases that cancel the
mean the previous layer passes on: the network is then centred, as the theory's ``centred`` maps assume.
"""

from __future__ import annotations

import math
import re
from typing import TypeVar

import torch
from torch import nn

from actlab import theory
from actlab.activations import ActivationFunction, get_activation
from actlab.theory import Activation

CRITICAL_SIGMA_B2 = 0.05
"""The bias variance of the critical initializations: small, as in Schoenholz et al.'s tanh networks."""
INPUT_Q = 1.0
"""The variance per input feature that the critical biases assume (FashionMNIST's pixels in [-1, 1] come close)."""
MEAN_FIELD_INITS = {
    "critical": "N(0, sigma_w^2/fan_in) with sigma_w^2 on the activation's critical line (chi_1 = 1) for "
    "sigma_b^2 = 0.05, and biases N(0, sigma_b^2) that also cancel the mean each activation passes on",
    "critical-orthogonal": "the critical scale with orthogonal weight matrices",
}
"""The theory's initializations by name; ``gaussian-W-B`` draws weights N(0, W/fan_in) and biases N(0, B)."""
_GAUSSIAN = re.compile(r"gaussian-(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)")

NetworkT = TypeVar("NetworkT", bound=nn.Module)


def gaussian_scales(init: str) -> tuple[float, float] | None:
    """(sigma_w^2, sigma_b^2) of an init named ``gaussian-W-B``, or None for any other name."""
    match = _GAUSSIAN.fullmatch(init)
    if match is None or float(match[1]) <= 0:
        return None
    return float(match[1]), float(match[2])


def _layers(net: nn.Module) -> list[tuple[nn.Linear, ActivationFunction | None, ActivationFunction | None]]:
    """Each linear layer with the activation before it and the activation after it (None where there is none)."""
    from actlab.network import NORM_LAYERS, Residual

    modules = [module for _, module in net.named_modules(remove_duplicate=False)]
    if any(isinstance(module, (*NORM_LAYERS, Residual)) for module in modules):
        raise ValueError("the mean-field initializations are for plain stacks of linear layers and activations; "
                         "this network has normalization or residual blocks, which the theory here does not cover")
    layers, before = [], None
    for index, module in enumerate(modules):
        if isinstance(module, ActivationFunction):
            before = module
        elif isinstance(module, nn.Linear):
            after = next((m for m in modules[index + 1:] if isinstance(m, (ActivationFunction, nn.Linear))), None)
            layers.append((module, before, after if isinstance(after, ActivationFunction) else None))
    return layers


@torch.no_grad()
def initialize_mean_field(net: NetworkT, init: str) -> NetworkT:
    """Draw every linear layer of ``net`` for ``critical``, ``critical-orthogonal`` or ``gaussian-W-B``.

    Weights N(0, sigma_w^2 / fan_in) (or orthogonal at the same scale), biases N(0, sigma_b^2). For
    the critical ones, sigma_w^2 = ``theory.critical_sigma_w2`` of the activation after the layer
    (the output layer takes the one before it) with sigma_b^2 = ``CRITICAL_SIGMA_B2``, and each bias
    also subtracts ``mean * (sum of its row's weights)``, where ``mean`` is what the activation before
    the layer passes on at the variance the theory predicts there.
    """
    fixed = gaussian_scales(init)
    if fixed is None and init not in MEAN_FIELD_INITS:
        raise ValueError(f"{init!r} is not a mean-field initialization (critical, critical-orthogonal, gaussian-W-B)")
    layers = _layers(net)
    depth = sum(after is not None for _, _, after in layers)
    scales: dict[int, tuple[float, float, list[float]]] = {}
    for index, (linear, before, after) in enumerate(layers):
        sigma_w2, sigma_b2, _ = _scales(after or before, fixed, depth, scales)
        fan_out, fan_in = linear.weight.shape
        if init == "critical-orthogonal":
            nn.init.orthogonal_(linear.weight, gain=math.sqrt(sigma_w2 * max(1.0, fan_out / fan_in)))
        else:
            nn.init.normal_(linear.weight, std=math.sqrt(sigma_w2 / fan_in))
        nn.init.normal_(linear.bias, std=math.sqrt(sigma_b2)) if sigma_b2 > 0 else nn.init.zeros_(linear.bias)
        if fixed is None and before is not None:
            q = _scales(before, fixed, depth, scales)[2][index - 1]
            linear.bias.sub_(float(theory.activation_mean(before, min(q, theory.Q_MAX))) * linear.weight.sum(dim=1))
    return net


def _scales(activation: ActivationFunction | None, fixed: tuple[float, float] | None, depth: int,
            known: dict[int, tuple[float, float, list[float]]]) -> tuple[float, float, list[float]]:
    """sigma_w^2, sigma_b^2 and the variance of each hidden layer's pre-activations, once per activation module."""
    if fixed is not None or activation is None:
        return (*(fixed or (1.0, 0.0)), [])
    if id(activation) not in known:
        sigma_w2 = theory.critical_sigma_w2(activation, CRITICAL_SIGMA_B2, centred=True)
        variances = theory.layer_variances(activation, sigma_w2, CRITICAL_SIGMA_B2,
                                           sigma_w2 * INPUT_Q + CRITICAL_SIGMA_B2, depth, centred=True)
        known[id(activation)] = (sigma_w2, CRITICAL_SIGMA_B2, variances)
    return known[id(activation)]


def init_variances(init: str, activation: Activation, fan_in: int = 256,
                   fan_out: int = 256) -> tuple[float, float, bool]:
    """(sigma_w^2, sigma_b^2, centred) that ``init`` gives a hidden layer of ``activation`` of this shape.

    PyTorch's default draws both from U(+-1/sqrt(fan_in)), a variance of 1 / (3 fan_in); He's and
    Glorot's biases are 0. Only ``critical`` cancels the activation's mean (``centred``).
    """
    from actlab.network import check_init, glorot_gain

    module = get_activation(activation) if isinstance(activation, str) else activation
    if check_init(init) == "default":
        return 1 / 3, 1 / (3 * fan_in), False
    if init == "he":
        return 2.0, 0.0, False
    if init == "glorot":
        return glorot_gain(module) ** 2 * 2 * fan_in / (fan_in + fan_out), 0.0, False
    fixed = gaussian_scales(init)
    if fixed is not None:
        return (*fixed, False)
    return theory.critical_sigma_w2(module, CRITICAL_SIGMA_B2, centred=True), CRITICAL_SIGMA_B2, True
