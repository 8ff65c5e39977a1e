"""What the hidden layers output: distributions, spread, saturated and dead units, epoch by epoch.

The hidden layers are found with forward hooks (``actlab.hooks``), so any network that uses actlab's
activation modules can be measured: the k-th use of an activation in a forward pass is hidden layer k,
its input the pre-activation and its output the layer's output. Measurements run in eval mode, and
the network's mode is restored after.

Histograms use bins fixed per activation (see ``activation_range``), so histograms of different
epochs, networks or images line up and can be stacked into one image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from actlab.activations import FLAT, ActivationFunction
from actlab.checks import positive_integer
from actlab.hooks import device_of, evaluation, recording_activations

REFERENCE_INPUTS = (-8.0, 8.0)
"""The input range on which an activation's output range and steepest slope are measured."""
REFERENCE_STEPS = 3201
DEFAULT_BINS = 64
BATCH_SIZE = 256
UNIT_STD_QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class ActivationRange:
    """An activation's output range on ``REFERENCE_INPUTS`` (widened to round numbers) and its steepest slope."""

    low: float
    high: float
    max_slope: float


def _round_bounds(low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` widened outward to multiples of a power of ten about 1% of its width."""
    if high - low <= 0:
        return low - 0.5, high + 0.5
    step = 10.0 ** (math.floor(math.log10(high - low)) - 2)
    return round(math.floor(round(low / step, 3)) * step, 10), round(math.ceil(round(high / step, 3)) * step, 10)


def activation_range(
    act_fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device | None = None
) -> ActivationRange:
    """Output range and max |f'| of ``act_fn`` on ``REFERENCE_INPUTS``, the derivative by autograd.

    For example ``[0, 1]`` for sigmoid, ``[-1, 1]`` for tanh, ``[0, 8]`` for ReLU and ``[-1, 8]`` for ELU.
    """
    with torch.enable_grad():
        x = torch.linspace(*REFERENCE_INPUTS, REFERENCE_STEPS, device=device, requires_grad=True)
        y = act_fn(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
    if not (torch.isfinite(y).all() and torch.isfinite(dy).all()):
        raise ValueError(f"{getattr(act_fn, 'name', act_fn)} is not finite on {list(REFERENCE_INPUTS)}.")
    low, high = _round_bounds(y.min().item(), y.max().item())
    return ActivationRange(low, high, dy.abs().max().item())


def _significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def _fraction(value: float) -> float:
    return round(value, 6)


@dataclass(frozen=True)
class LayerStatistics:
    """One hidden layer's outputs over a set of images; fractions are of all unit-image pairs unless named per unit.

    ``counts`` is the histogram of the outputs over ``bins`` equal bins spanning ``value_range``; outputs
    beyond the range are counted in the end bins, and ``clipped`` is the fraction of outputs outside it
    (NaN outputs are counted nowhere). ``mean`` and ``std`` are over all outputs; ``unit_std`` holds the
    10th, 50th and 90th percentile over units of each unit's standard deviation across the images (how much
    a unit's output varies from image to image). Where |f'(pre-activation)| is below 1% of the activation's
    max |f'| (``actlab.activations.FLAT``), a unit is *inactive* if its output is exactly 0 (ReLU below zero) and
    *saturated* otherwise (sigmoid and tanh far out); ``inactive`` and ``saturated`` are the fractions
    of unit-image pairs; ``dead_units`` counts
    the units whose output is exactly zero on every image, ``effectively_dead_units`` those inactive or
    saturated on every image: almost no gradient reaches their weights from any image.
    Standard deviations are population ones (divided by the number of values).
    """

    layer: int
    activation: str
    units: int
    images: int
    value_range: tuple[float, float]
    counts: tuple[int, ...]
    clipped: float
    mean: float
    std: float
    unit_std: tuple[float, ...]
    inactive: float
    saturated: float
    effectively_dead_units: int
    dead_units: int

    @property
    def edges(self) -> np.ndarray:
        """The ``len(counts) + 1`` bin edges."""
        return np.linspace(*self.value_range, len(self.counts) + 1)

    @property
    def dead_fraction(self) -> float:
        """The fraction of the layer's units that are dead."""
        return self.dead_units / self.units

    def to_dict(self) -> dict:
        """Plain JSON types: tuples become lists."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> LayerStatistics:
        """The statistics that ``to_dict`` gave ``values``."""
        found: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                                 for key, value in values.items()}
        return cls(**found)


class _Accumulator:
    """Running sums of one hidden layer's outputs, batch after batch; per-unit moments merged as in Chan et al."""

    def __init__(self, act_fn: ActivationFunction, reference: ActivationRange, bins: int, units: int) -> None:
        self.act_fn, self.reference, self.bins = act_fn, reference, bins
        self.images = 0
        self.mean = torch.zeros(units, dtype=torch.float64)
        self.m2 = torch.zeros(units, dtype=torch.float64)
        self.counts = torch.zeros(bins, dtype=torch.float64)
        self.clipped = 0
        self.inactive = torch.zeros(units, dtype=torch.int64)
        self.saturated = torch.zeros(units, dtype=torch.int64)
        self.alive = torch.zeros(units, dtype=torch.bool)

    def add(self, post: torch.Tensor, slope: torch.Tensor) -> None:
        low, high = self.reference.low, self.reference.high
        counts = torch.histc(post, self.bins, low, high).double().cpu()
        below, above = int((post < low).sum()), int((post > high).sum())
        counts[0] += below
        counts[-1] += above
        self.counts += counts
        self.clipped += below + above
        flat = slope.abs() < FLAT * self.reference.max_slope
        zero = flat & (post == 0)
        self.inactive += zero.sum(0).cpu()
        self.saturated += (flat & ~zero).sum(0).cpu()
        self.alive |= (post != 0).any(0).cpu()
        batch_var, batch_mean = torch.var_mean(post, dim=0, correction=0)
        delta = batch_mean.double().cpu() - self.mean
        total = self.images + len(post)
        self.mean += delta * len(post) / total
        self.m2 += batch_var.double().cpu() * len(post) + delta**2 * self.images * len(post) / total
        self.images = total

    def result(self, layer: int) -> LayerStatistics:
        n, units = self.images, len(self.mean)
        mean = self.mean.mean().item()
        variance = (self.m2.sum() + n * ((self.mean - mean) ** 2).sum()).item() / (n * units)
        unit_std = torch.quantile((self.m2 / n).sqrt(), torch.tensor(UNIT_STD_QUANTILES, dtype=torch.float64))
        return LayerStatistics(
            layer=layer,
            activation=self.act_fn.name,
            units=units,
            images=n,
            value_range=(self.reference.low, self.reference.high),
            counts=tuple(int(c) for c in self.counts.round().tolist()),
            clipped=_fraction(self.clipped / (n * units)),
            mean=_significant(mean),
            std=_significant(math.sqrt(max(variance, 0.0))),
            unit_std=tuple(_significant(v) for v in unit_std.tolist()),
            inactive=_fraction(self.inactive.sum().item() / (n * units)),
            saturated=_fraction(self.saturated.sum().item() / (n * units)),
            effectively_dead_units=int((self.inactive + self.saturated == n).sum()),
            dead_units=int((~self.alive).sum()),
        )


def _activate(act_fn: ActivationFunction, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The activation's output and its derivative at ``pre``, by autograd (so any elementwise activation works)."""
    with torch.enable_grad():
        x = pre.detach().requires_grad_()
        y = act_fn.forward(x)
        (slope,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return y.detach(), slope


def _check_inputs(net: nn.Module, images: object, batch_size: object) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() < 2:
        raise ValueError("images must be a float tensor of normalized images, one per row (N x 1 x 28 x 28), not "
                         f"{type(images).__name__} {getattr(images, 'dtype', '')}; normalize bytes with "
                         "actlab.data.normalize")
    dtype = next((p.dtype for p in net.parameters()), images.dtype)
    if images.dtype != dtype:
        raise ValueError(f"images are {images.dtype} but the network computes in {dtype}: pass images.to({dtype})")
    if len(images) == 0:
        raise ValueError("images holds no image: the statistics need at least one image.")
    positive_integer("batch_size", batch_size)
    return images


@torch.no_grad()
def _hidden_layers(
    net: nn.Module, images: torch.Tensor, batch_size: int, slopes: bool
) -> Iterator[tuple[int, ActivationFunction, torch.Tensor, torch.Tensor | None]]:
    """For each batch and each use of an activation, in order: (layer index from 0, module, output, derivative).

    The derivative is None unless ``slopes``. Outputs are flattened to one row per image.
    """
    images = _check_inputs(net, images, batch_size)
    device = device_of(net)
    with evaluation(net), recording_activations(net) as calls:
        for start in range(0, len(images), batch_size):
            calls.clear()
            net(images[start : start + batch_size].to(device))
            for layer, call in enumerate(list(calls)):
                pre = call.pre.reshape(len(call.pre), -1)
                post, slope = _activate(call.module, pre) if slopes else (call.post.reshape(len(pre), -1), None)
                yield layer, call.module, post, slope


def activation_statistics(
    net: nn.Module, images: torch.Tensor, bins: int = DEFAULT_BINS, batch_size: int = BATCH_SIZE
) -> list[LayerStatistics]:
    """``LayerStatistics`` of every hidden layer of ``net`` on ``images`` (N x 1 x 28 x 28, normalized).

    ``net`` is any network built with actlab's activation modules; each use of one is a hidden layer.
    Runs in eval mode without gradients except through the activation itself, on the network's
    device, in batches of ``batch_size`` images. Histogram bins are fixed per activation: ``bins``
    equal bins over ``activation_range(act_fn)``.
    """
    positive_integer("bins", bins)
    references: dict[int, ActivationRange] = {}
    accumulators: list[_Accumulator] = []
    for layer, act_fn, post, slope in _hidden_layers(net, images, batch_size, slopes=True):
        if layer == len(accumulators):
            if id(act_fn) not in references:
                references[id(act_fn)] = activation_range(act_fn, post.device)
            accumulators.append(_Accumulator(act_fn, references[id(act_fn)], bins, post.shape[1]))
        assert slope is not None  # asked for with slopes=True
        accumulators[layer].add(post, slope)
    return [accumulator.result(layer + 1) for layer, accumulator in enumerate(accumulators)]


def dead_neurons(net: nn.Module, images: torch.Tensor, batch_size: int = BATCH_SIZE) -> list[int]:
    """Per hidden layer, the number of units whose output is exactly zero for every one of ``images``."""
    alive: list[torch.Tensor] = []
    for layer, _, post, _ in _hidden_layers(net, images, batch_size, slopes=False):
        fired = (post != 0).any(0)
        if layer == len(alive):
            alive.append(fired)
        else:
            alive[layer] |= fired
    return [int((~fired).sum()) for fired in alive]


def monitor(images: torch.Tensor, bins: int = DEFAULT_BINS) -> Callable[[nn.Module], dict]:
    """A callable ``fn(net) -> {"layers": [LayerStatistics.to_dict(), ...]}`` on a fixed set of probe images.

    The record holds only JSON types (integer histogram counts, rounded floats), so a list of them,
    one per epoch, can be saved as JSON and turned into arrays by ``statistics_over_epochs``.
    """

    def record(net: nn.Module) -> dict:
        return {"layers": [stats.to_dict() for stats in activation_statistics(net, images, bins=bins)]}

    return record


@dataclass(frozen=True)
class LayerSeries:
    """One hidden layer's statistics over the epochs: arrays with one row (or value) per monitor record.

    ``histograms`` is epochs x bins (counts), ``unit_std`` epochs x 3 (the 10th, 50th and 90th
    percentile); the fractions are those of ``LayerStatistics`` (``effectively_dead`` and ``dead``
    as fractions of the layer's units).
    """

    layer: int
    activation: str
    units: int
    images: int
    edges: np.ndarray
    histograms: np.ndarray
    clipped: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    unit_std: np.ndarray
    inactive: np.ndarray
    saturated: np.ndarray
    effectively_dead: np.ndarray
    dead: np.ndarray

    @property
    def epochs(self) -> np.ndarray:
        """0 for the record before training, then 1, 2, ..."""
        return np.arange(len(self.mean))


def _series(layer: Sequence[LayerStatistics]) -> LayerSeries:
    first = layer[0]
    if any(stats.value_range != first.value_range or len(stats.counts) != len(first.counts) for stats in layer):
        raise ValueError(f"Layer {first.layer}: the records use different histogram bins and cannot be stacked.")

    def column(name: str) -> np.ndarray:
        return np.array([getattr(stats, name) for stats in layer])

    return LayerSeries(
        layer=first.layer,
        activation=first.activation,
        units=first.units,
        images=first.images,
        edges=first.edges,
        histograms=column("counts"),
        clipped=column("clipped"),
        mean=column("mean"),
        std=column("std"),
        unit_std=column("unit_std"),
        inactive=column("inactive"),
        saturated=column("saturated"),
        effectively_dead=column("effectively_dead_units") / first.units,
        dead=column("dead_units") / first.units,
    )


def recorded_layer(records: Sequence[dict], epoch: int, layer: int) -> LayerStatistics:
    """The statistics of hidden layer ``layer`` (from 1) at ``epoch`` (0: before training) in ``monitor`` records."""
    return LayerStatistics.from_dict(records[epoch]["layers"][layer - 1])


def statistics_over_epochs(records: Sequence[dict]) -> list[LayerSeries]:
    """The records of ``monitor`` (one per epoch, in order) as one ``LayerSeries`` per hidden layer."""
    if not records:
        raise ValueError("statistics_over_epochs needs at least one record.")
    per_epoch = [[LayerStatistics.from_dict(values) for values in record["layers"]] for record in records]
    if len({len(layers) for layers in per_epoch}) != 1:
        raise ValueError("The records do not all have the same number of hidden layers.")
    return [_series(layer) for layer in zip(*per_epoch)]
