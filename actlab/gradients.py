"""Gradients at initialization, as data: one batch forward and backward through a fresh network."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actlab import settings
from actlab.activations import get_activation
from actlab.data import FashionMNISTData, load_fashion_mnist
from actlab.hooks import device_of, evaluation, recording_activations, training_mode
from actlab.network import DEFAULT_HIDDEN_SIZES, BaseNetwork, initialize
from actlab.network import INITS as INITS
from actlab.training import progress_bar

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BATCH_SIZE = 256
SEED = 42


def first_batch(data: FashionMNISTData | None = None, size: int = BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``size`` training images and labels, unshuffled, as the source takes them."""
    data = data or load_fashion_mnist()
    first = data.train.head(size)
    return first.images, first.labels


def weight_gradients(net: nn.Module, imgs: torch.Tensor, labels: torch.Tensor,
                     train_mode: bool = False) -> dict[str, np.ndarray]:
    """The gradient of the cross-entropy with respect to every weight matrix, flattened, by parameter name.

    Runs in eval mode, or in training mode with ``train_mode`` (where BatchNorm normalizes with the
    batch's statistics, as in training: a fresh network has no running statistics yet); the mode is
    restored after. Vectors (biases, normalization scales) are left out.
    """
    with evaluation(net) if not train_mode else training_mode(net):
        net.zero_grad()
        F.cross_entropy(net(imgs), labels).backward()
        grads = {name: p.grad.detach().view(-1).cpu().numpy().copy()
                 for name, p in net.named_parameters() if p.dim() >= 2 and p.grad is not None}
        net.zero_grad()
    return grads


@torch.no_grad()
def preactivations(net: nn.Module, imgs: torch.Tensor) -> list[torch.Tensor]:
    """The input of every use of an activation (its pre-activation), one tensor per hidden layer, in eval mode."""
    with evaluation(net), recording_activations(net) as calls:
        net(imgs)
    return [call.pre for call in calls]


def fresh_network(
    activation: str, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES, seed: int = SEED, init: str = "default",
    norm: str = "none", residual: bool = False,
) -> BaseNetwork:
    """A newly initialized ``BaseNetwork``, seeded so that every activation starts from the same draw."""
    settings.set_seed(seed)
    net = BaseNetwork(get_activation(activation), hidden_sizes=list(hidden_sizes), norm=norm, residual=residual)
    return initialize(net, init)


def gradient_scales(grads: dict[str, np.ndarray]) -> list[float]:
    """Standard deviation of each weight matrix's gradient, from the input layer to the output layer."""
    return [float(g.std()) for g in grads.values()]


def gradient_overview(
    activations: Iterable[str],
    imgs: torch.Tensor,
    labels: torch.Tensor,
    hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
    seed: int = SEED,
    init: str = "default",
    norm: str = "none",
    residual: bool = False,
) -> dict[str, list[float]]:
    """Per activation, the gradient scale of every layer of a freshly initialized network.

    With BatchNorm (``norm="batch"``) the gradients are taken in training mode (``weight_gradients``).
    """
    nets = {name: fresh_network(name, hidden_sizes, seed, init, norm, residual).to(imgs.device)
            for name in activations}
    return {name: gradient_scales(weight_gradients(net, imgs, labels, train_mode=norm == "batch"))
            for name, net in nets.items()}


def depth_sweep(
    activations: Iterable[str],
    depths: Iterable[int],
    imgs: torch.Tensor,
    labels: torch.Tensor,
    width: int = 256,
    seed: int = SEED,
    init: str = "default",
    progress: bool = True,
) -> dict[str, dict[int, list[float]]]:
    """Per activation and number of hidden layers (each ``width`` wide), the gradient scale of every layer."""
    names, depths = list(activations), list(depths)
    sweep: dict[str, dict[int, list[float]]] = {name: {} for name in names}
    with progress_bar(len(names) * len(depths), f"depth sweep, {init} init", "network", disable=not progress) as bar:
        for name in names:
            for depth in depths:
                sweep[name][depth] = gradient_overview([name], imgs, labels, [width] * depth, seed, init)[name]
                bar.update()
    return sweep


def visualize_gradients(net: nn.Module, color: str | None = None, data: FashionMNISTData | None = None) -> Figure:
    """The source's function: the gradients of the first training batch through ``net``, as histograms.

    ``color`` defaults to the activation's own colour (``plotting.activation_style``).
    """
    imgs, labels = first_batch(data)
    device = device_of(net)
    grads = weight_gradients(net, imgs.to(device), labels.to(device))
    from actlab.plotting import plot_gradient_histograms  # drawing only when asked: importing actlab stays light

    title = getattr(net, "config", {}).get("act_fn", {}).get("name", type(net).__name__)
    return plot_gradient_histograms(grads, title, color=color)
