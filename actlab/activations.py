"""Activation functions written out by hand, and the registry that names them.

Every formula here is the textbook one, arranged so that nothing overflows: a branch that would
compute ``exp`` of a large positive number is only ever evaluated on the half of the axis where
that number is not positive (see ``piecewise``). That keeps values *and* autograd gradients
finite for any finite input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Param:
    """A numeric parameter of an activation: its default, and the range a slider offers."""

    default: float
    low: float
    high: float
    positive: bool = False


class ActivationFunction(nn.Module):
    """Base of every activation: a ``name`` and a ``config`` dict that rebuilds it.

    Subclasses declare their numeric parameters in ``params`` and implement ``forward``.
    ``builtin`` returns torch's own version of the function, where torch has one.
    """

    params: dict[str, Param] = {}
    cost: str = ""
    """What one evaluation costs, in words, for the properties table."""

    def __init__(self, **kwargs: float) -> None:
        super().__init__()
        self.name = type(self).__name__
        unknown = set(kwargs) - set(self.params)
        if unknown:
            accepted = ", ".join(self.params) or "no parameters"
            raise TypeError(f"{self.name} got unknown parameter(s) {sorted(unknown)}; it accepts {accepted}.")
        self.config: dict = {"name": self.name}
        for key, spec in self.params.items():
            value = _check_number(self.name, key, kwargs.get(key, spec.default), spec)
            setattr(self, key, value)
            self.config[key] = value

    def builtin(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Torch's own implementation with the same parameters, or None when it has none."""
        return None

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={getattr(self, key)}" for key in self.params)


def _check_number(name: str, key: str, value: object, spec: Param) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: parameter {key} must be a number, not {value!r} ({type(value).__name__}).")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: parameter {key} must be finite, not {value}.")
    if spec.positive and value <= 0:
        raise ValueError(f"{name}: parameter {key} must be positive, not {value}.")
    return value


def piecewise(
    x: torch.Tensor,
    nonneg: Callable[[torch.Tensor], torch.Tensor],
    neg: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``nonneg(x)`` where x >= 0, ``neg(x)`` where x < 0, each evaluated only on its own half-axis.

    A plain ``torch.where`` evaluates both branches everywhere; an overflowing branch then leaks
    ``inf * 0 = nan`` into the gradient even where it is not selected. Feeding each branch zeros
    outside its own half of the axis prevents that.
    """
    nonneg_side = x >= 0
    zero = torch.zeros_like(x)
    return torch.where(nonneg_side, nonneg(torch.where(nonneg_side, x, zero)), neg(torch.where(nonneg_side, zero, x)))


def stable_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e^-x), computed as e^x / (1 + e^x) for negative x so that e^(...) never exceeds 1."""
    return piecewise(x, lambda p: 1 / (1 + torch.exp(-p)), lambda n: torch.exp(n) / (1 + torch.exp(n)))


def stable_tanh(x: torch.Tensor) -> torch.Tensor:
    """(e^x - e^-x) / (e^x + e^-x), rewritten with e^(-2|x|) so that nothing overflows."""
    return piecewise(
        x,
        lambda p: (1 - torch.exp(-2 * p)) / (1 + torch.exp(-2 * p)),
        lambda n: (torch.exp(2 * n) - 1) / (torch.exp(2 * n) + 1),
    )


def stable_softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x), computed as x + log(1 + e^-x) for positive x."""
    return piecewise(x, lambda p: p + torch.log1p(torch.exp(-p)), lambda n: torch.log1p(torch.exp(n)))


class Sigmoid(ActivationFunction):
    r"""$\sigma(x) = \frac{1}{1 + e^{-x}}$"""

    cost = "one exp"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stable_sigmoid(x)

    def builtin(self):
        return torch.sigmoid


class Tanh(ActivationFunction):
    r"""$\tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}$"""

    cost = "one exp"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stable_tanh(x)

    def builtin(self):
        return torch.tanh


class ReLU(ActivationFunction):
    r"""$\mathrm{ReLU}(x) = \max(0, x)$"""

    cost = "one comparison"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (x > 0)

    def builtin(self):
        return torch.relu


class LeakyReLU(ActivationFunction):
    r"""$\mathrm{LeakyReLU}(x) = \max(\alpha x, x)$"""

    cost = "a comparison, a multiply"

    params = {"alpha": Param(0.1, 0.0, 1.0)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, self.alpha * x)

    def builtin(self):
        return lambda x: F.leaky_relu(x, negative_slope=self.alpha)


class ELU(ActivationFunction):
    r"""$\mathrm{ELU}(x) = x$ for $x > 0$, $\alpha (e^{x} - 1)$ otherwise"""

    cost = "a comparison, one exp"

    params = {"alpha": Param(1.0, 0.0, 3.0)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positive = x > 0
        return torch.where(positive, x, self.alpha * torch.expm1(torch.where(positive, torch.zeros_like(x), x)))

    def builtin(self):
        return lambda x: F.elu(x, alpha=self.alpha)


class Swish(ActivationFunction):
    r"""$\mathrm{Swish}(x) = x \, \sigma(x)$"""

    cost = "one exp, a multiply"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * stable_sigmoid(x)

    def builtin(self):
        return F.silu


class GELU(ActivationFunction):
    r"""$\mathrm{GELU}(x) = x \, \Phi(x) = \frac{x}{2} \left(1 + \mathrm{erf}(x / \sqrt{2})\right)$"""

    cost = "one erf, a multiply"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * torch.erfc(-x / math.sqrt(2))

    def builtin(self):
        return F.gelu


class Mish(ActivationFunction):
    r"""$\mathrm{Mish}(x) = x \tanh(\ln(1 + e^{x}))$"""

    cost = "two exp, a log, a multiply"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * stable_tanh(stable_softplus(x))

    def builtin(self):
        return F.mish


class Softplus(ActivationFunction):
    r"""$\mathrm{Softplus}(x) = \frac{1}{\beta} \ln(1 + e^{\beta x})$"""

    cost = "one exp, a log"

    params = {"beta": Param(1.0, 0.1, 5.0, positive=True)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stable_softplus(self.beta * x) / self.beta

    def builtin(self):
        return lambda x: F.softplus(x, beta=self.beta, threshold=40.0)


class UnknownActivationError(KeyError):
    """An activation name that is not registered; the message lists those that are."""

    def __str__(self) -> str:
        return str(self.args[0])


class ActivationRegistry(dict):
    """Lower-case name to activation class; an unknown name raises an error listing the valid ones."""

    def __missing__(self, name: str):
        raise UnknownActivationError(
            f"Unknown activation {name!r}. Registered activations: {', '.join(self)}."
        )


SOURCE_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leakyrelu", "elu", "swish")
"""The six activations that the source article compares."""

act_fn_by_name: dict[str, type[ActivationFunction]] = ActivationRegistry(
    (cls.__name__.lower(), cls) for cls in (Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Swish, GELU, Mish, Softplus)
)
BUILTIN_NAMES = frozenset(act_fn_by_name)


def register_activation(cls: type[ActivationFunction]) -> type[ActivationFunction]:
    """Add an ``ActivationFunction`` subclass to the registry under its lower-case class name.

    Use it as a decorator. Every widget, plot and comparison then offers the new activation.
    Registering a name again replaces the earlier class, except for actlab's own activations.
    """
    if not (isinstance(cls, type) and issubclass(cls, ActivationFunction)):
        raise TypeError(f"register_activation expects a subclass of ActivationFunction, not {cls!r}.")
    name = cls.__name__.lower()
    if name in BUILTIN_NAMES and act_fn_by_name[name] is not cls:
        raise ValueError(f"{name!r} is one of actlab's own activations; give yours another class name.")
    act_fn_by_name[name] = cls
    return cls


def get_activation(name: str, **params: float) -> ActivationFunction:
    """An instance of the activation registered as ``name`` (any case), with the given parameters."""
    if not isinstance(name, str):
        raise TypeError(f"An activation name must be a string, not {name!r}.")
    return act_fn_by_name[name.lower()](**params)


def from_config(config: dict) -> ActivationFunction:
    """Rebuild an activation from its ``config``, such as ``{"name": "LeakyReLU", "alpha": 0.1}``."""
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise ValueError(f"An activation config must be a dict with a 'name', not {config!r}.")
    params = {key: value for key, value in config.items() if key != "name"}
    return get_activation(config["name"], **params)


@dataclass(frozen=True)
class Curve:
    """An activation sampled on a grid: x, f(x) and the autograd derivative f'(x)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    dy: torch.Tensor


def activation_curve(
    act_fn: ActivationFunction | Callable[[torch.Tensor], torch.Tensor],
    x_min: float = -5.0,
    x_max: float = 5.0,
    steps: int = 1001,
    name: str | None = None,
) -> Curve:
    """Sample ``act_fn`` and its derivative (by autograd) on ``steps`` points from x_min to x_max."""
    if not x_min < x_max:
        raise ValueError(f"x_min must be below x_max, got {x_min} and {x_max}")
    x = torch.linspace(x_min, x_max, steps, requires_grad=True)
    y = act_fn(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    return Curve(name or getattr(act_fn, "name", "f"), x.detach(), y.detach(), dy)


def activation_properties(act_fn: ActivationFunction, x_min: float = -20.0, x_max: float = 20.0) -> dict:
    """Measured shape properties of an activation on [x_min, x_max], for the properties table."""
    curve = activation_curve(act_fn, x_min, x_max, steps=40_001)
    x, y, dy = curve.x.double(), curve.y.double(), curve.dy.double()
    step = (x_max - x_min) / (len(x) - 1)
    negative = x < -1
    density = torch.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)
    mean_output = torch.trapezoid(y * density, x).item()
    return {
        "activation": curve.name,
        f"range on [{x_min:g}, {x_max:g}]": f"[{y.min().item():.3g}, {y.max().item():.3g}]",
        "max derivative": round(dy.max().item(), 3),
        "mean output, x ~ N(0, 1)": round(mean_output, 3) + 0.0,
        "zero-centred": abs(mean_output) < 0.05,
        "monotonic": bool((y.diff() >= 0).all()),
        "smooth": bool(dy.diff().abs().max() < 100 * step),
        "dead region (x < -1)": bool((dy[negative].abs() < 1e-6).all()),
        "cost": act_fn.cost,
    }

