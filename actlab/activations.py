"""Activation functions written out by hand, and the registry that names them.

Each built-in activation states its formula twice, side by side: ``value`` computes f(x), and
``derivative`` computes f'(x) from what ``value`` kept. Autograd then records one step per
activation instead of every elementwise operation in the formula, and the backward pass is the
textbook derivative (sigmoid: y (1 - y) from its output y, tanh: 1 - y^2), so a network trains
with them about as fast as with torch's own kernels. Values and gradients stay finite for any
finite input.

An activation of your own only needs ``forward``; autograd derives it for you.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from typing_extensions import override

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
HALF_PRECISION = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Param:
    """A numeric parameter of an activation: its default, the range a slider offers, the values accepted."""

    default: float
    low: float
    high: float
    positive: bool = False
    bounds: tuple[float, float] = (-math.inf, math.inf)


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

    @override
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
    low, high = spec.bounds
    if not low <= value <= high:
        raise ValueError(f"{name}: parameter {key} must lie between {low:g} and {high:g}, not {value:g}.")
    return value


class HandDerived(ActivationFunction):
    """An activation whose derivative is written by hand, next to its formula.

    Subclasses implement two methods. ``value(x)`` returns f(x) and a tuple of the tensors that
    the derivative needs; ``derivative(grad, *saved)`` returns ``grad * f'(x)`` from those tensors
    alone (the chain rule: the gradient that arrives, times the local slope). Autograd records one
    step for the whole activation.

    Every pass over a tensor costs time, so both work in place (``exp_``, ``mul_``) on tensors they
    have just created, never on ``x``, ``grad`` or a saved tensor, and use
    ``torch.addcmul(a, b, c, value=v)``, which is a + v b c in one pass.

    Integer inputs are computed in the default floating-point type, and float16 or bfloat16
    inputs in float32, rounded back at the end, as torch's own kernels do.
    """

    def value(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """f(x), and the tensors that ``derivative`` needs."""
        raise NotImplementedError

    def derivative(self, grad: torch.Tensor, *saved: torch.Tensor) -> torch.Tensor:
        """``grad * f'(x)``, from the tensors that ``value`` saved."""
        raise NotImplementedError

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        return _HandDerivedFunction.apply(x, self)


class _HandDerivedFunction(torch.autograd.Function):
    """Runs ``act.value`` forward and ``act.derivative`` backward: autograd records one step."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, act: HandDerived) -> torch.Tensor:
        wide = x.float() if x.dtype in HALF_PRECISION else x
        y, saved = act.value(wide)
        ctx.act, ctx.dtype = act, wide.dtype
        ctx.save_for_backward(*saved)
        return y.to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.act.derivative(grad.to(ctx.dtype), *ctx.saved_tensors).to(grad.dtype), None


def sigmoid(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """sigma(scale x) = 1 / (1 + e^(-scale x)). Where the exponential overflows to inf, 1 / inf = 0 is exact."""
    return x.mul(-scale).exp_().add_(1).reciprocal_()


def step(x: torch.Tensor) -> torch.Tensor:
    """1 where x > 0, 0 elsewhere (0 included): the slope of max(0, x)."""
    return torch.sign(x).clamp_(min=0)


class Sigmoid(HandDerived):
    r"""$\sigma(x) = \frac{1}{1 + e^{-x}}$"""

    cost = "one exp"

    @override
    def value(self, x):
        y = sigmoid(x)
        return y, (y,)

    def derivative(self, grad, y):
        """sigma'(x) = y (1 - y) = y - y^2, from the output y alone."""
        return torch.addcmul(y, y, y, value=-1).mul_(grad)

    @override
    def builtin(self):
        return torch.sigmoid


class Tanh(HandDerived):
    r"""$\tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}$"""

    cost = "one exp"

    @override
    def value(self, x):
        # tanh(x) = 2 sigma(2x) - 1, which tends to -1, not inf / inf, where e^(-2x) overflows.
        y = sigmoid(x, 2).mul_(2).sub_(1)
        return y, (y,)

    def derivative(self, grad, y):
        """tanh'(x) = 1 - y^2: grad - grad y^2."""
        return torch.addcmul(grad, grad, y.square(), value=-1)

    @override
    def builtin(self):
        return torch.tanh


class ReLU(HandDerived):
    r"""$\mathrm{ReLU}(x) = \max(0, x)$"""

    cost = "one comparison"

    @override
    def value(self, x):
        y = x.clamp(min=0)
        return y, (y,)

    def derivative(self, grad, y):
        """1 where y > 0, else 0: the sign of y, since y >= 0."""
        return torch.sign(y).mul_(grad)

    @override
    def builtin(self):
        return torch.relu


class LeakyReLU(HandDerived):
    r"""$\mathrm{LeakyReLU}(x) = \max(\alpha x, x)$"""

    cost = "a comparison, a multiply"

    params = {"alpha": Param(0.1, 0.0, 1.0, bounds=(0.0, 1.0))}

    @override
    def value(self, x):
        # max(sign(x), alpha): 1 for x > 0, alpha otherwise, since 0 <= alpha <= 1.
        slope = torch.sign(x).clamp_(min=self.alpha)
        return x * slope, (slope,)

    def derivative(self, grad, slope):
        """The slope itself: 1 for x > 0, alpha otherwise."""
        return grad * slope

    @override
    def builtin(self):
        return lambda x: F.leaky_relu(x, negative_slope=self.alpha)


class ELU(HandDerived):
    r"""$\mathrm{ELU}(x) = x$ for $x > 0$, $\alpha (e^{x} - 1)$ otherwise"""

    cost = "a comparison, one exp"

    params = {"alpha": Param(1.0, 0.0, 3.0, bounds=(0.0, 1e3))}

    @override
    def value(self, x):
        # e^min(x, 0): e^x on the negative side, never above 1.
        exp_neg = x.clamp(max=0).exp_()
        y = x.clamp(min=0).add_(exp_neg, alpha=self.alpha).sub_(self.alpha)
        return y, (x, exp_neg)

    def derivative(self, grad, x, exp_neg):
        """1 for x > 0, alpha e^x otherwise: (1 - alpha) step(x) + alpha e^min(x, 0)."""
        return step(x).mul_(1 - self.alpha).add_(exp_neg, alpha=self.alpha).mul_(grad)

    @override
    def builtin(self):
        return lambda x: F.elu(x, alpha=self.alpha)


class Swish(HandDerived):
    r"""$\mathrm{Swish}(x) = x \, \sigma(x)$"""

    cost = "one exp, a multiply"

    @override
    def value(self, x):
        s = sigmoid(x)
        y = x * s
        return y, (s, y)

    def derivative(self, grad, s, y):
        """Swish' = s + x s (1 - s) = s + y (1 - s), where s = sigmoid(x) and y = x s."""
        return torch.addcmul(s, y, 1 - s).mul_(grad)

    @override
    def builtin(self):
        return F.silu


class GELU(HandDerived):
    r"""$\mathrm{GELU}(x) = x \, \Phi(x) = \frac{x}{2} \left(1 + \mathrm{erf}(x / \sqrt{2})\right)$"""

    cost = "one erf, a multiply"

    @override
    def value(self, x):
        # Phi(x) = erfc(-x / sqrt(2)) / 2, accurate far into the negative tail.
        cdf = x.mul(-SQRT_HALF).erfc_().mul_(0.5)
        return x * cdf, (x, cdf)

    def derivative(self, grad, x, cdf):
        """Phi(x) + x phi(x), with the normal density phi(x) = e^(-x^2 / 2) / sqrt(2 pi)."""
        gauss = x.square().mul_(-0.5).exp_()
        return torch.addcmul(cdf, x, gauss, value=INV_SQRT_2PI).mul_(grad)

    @override
    def builtin(self):
        return F.gelu


class Mish(HandDerived):
    r"""$\mathrm{Mish}(x) = x \tanh(\ln(1 + e^{x}))$"""

    cost = "one exp, a division, a multiply"

    @override
    def value(self, x):
        e = x.clamp(max=20).exp_()
        n = (e + 2).mul_(e)
        # tanh(ln(1 + e^x)) = n / (n + 2) with n = e^x (e^x + 2); it is 1 in float64 from x = 20 on.
        t = n.div_(n + 2)
        return x * t, (x, e, t)

    def derivative(self, grad, x, e, t):
        """Mish' = t + x tanh'(softplus x) softplus'(x) = t + x (1 - t^2) e^x / (1 + e^x), t = tanh(softplus x)."""
        softplus_slope = e / (1 + e)
        return t.square().neg_().add_(1).mul_(softplus_slope).mul_(x).add_(t).mul_(grad)

    @override
    def builtin(self):
        return F.mish


class Softplus(HandDerived):
    r"""$\mathrm{Softplus}(x) = \frac{1}{\beta} \ln(1 + e^{\beta x})$"""

    cost = "one exp, a log"

    params = {"beta": Param(1.0, 0.1, 5.0, positive=True, bounds=(1e-3, 1e3))}

    @override
    def value(self, x):
        # max(x, 0) + ln(1 + e^(-beta |x|)) / beta: the exponential never exceeds 1.
        y = x.clamp(min=0).add_(x.abs().mul_(-self.beta).exp_().log1p_(), alpha=1 / self.beta)
        return y, (x,)

    def derivative(self, grad, x):
        """sigma(beta x)."""
        return sigmoid(x, self.beta).mul_(grad)

    @override
    def builtin(self):
        return lambda x: F.softplus(x, beta=self.beta, threshold=40.0)


class UnknownActivationError(KeyError, ValueError):
    """An activation name that is not registered; the message lists those that are."""

    def __str__(self) -> str:
        return str(self.args[0])


class ActivationRegistry(dict):
    """Lower-case name to activation class; an unknown name raises an error listing the valid ones."""

    def __missing__(self, name: str):
        raise UnknownActivationError(
            f"Unknown activation {name!r}. Registered activations: {', '.join(self)}. Register your own with "
            "actlab.register_activation (on the command line: --import the file that does)."
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
    if not (cls.__doc__ or "").strip():
        raise ValueError(f"{cls.__name__} needs a docstring that gives its formula, such as "
                         "r'$f(x) = x^2$': the formula tables show it.")
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
    """``act_fn`` and its derivative (by autograd) on ``steps`` points from ``x_min`` to ``x_max``.

    ``name`` labels the curve; by default the activation's own name.
    """
    if not x_min < x_max:
        raise ValueError(f"x_min must be below x_max, got {x_min} and {x_max}")
    x = torch.linspace(x_min, x_max, steps, requires_grad=True)
    y = act_fn(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    return Curve(name or str(getattr(act_fn, "name", "f")), x.detach(), y.detach(), dy)


FLAT = 0.01
"""An activation is flat where its slope is below this fraction of its largest slope: little gradient passes.

The one threshold of the lab: the properties table's dead region, and the inactive, saturated and
effectively dead units of ``actlab.activation_stats``.
"""


def activation_properties(act_fn: ActivationFunction, x_min: float = -20.0, x_max: float = 20.0) -> dict:
    """Measured shape properties of an activation on [x_min, x_max], for the properties table.

    A dead region is one where the slope is flat (``FLAT``) for every x below -1.
    """
    curve = activation_curve(act_fn, x_min, x_max, steps=40_001)
    x, y, dy = curve.x.double(), curve.y.double(), curve.dy.double()
    step = (x_max - x_min) / (len(x) - 1)
    negative = x < -1
    density = torch.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)
    mean_output = torch.trapezoid(y * density, x).item()
    return {
        "activation": curve.name,
        f"range on [{x_min:g}, {x_max:g}]": f"[{y.min().item() + 0.0:.3g}, {y.max().item() + 0.0:.3g}]",
        "max derivative": round(dy.max().item(), 3),
        "mean output, x ~ N(0, 1)": round(mean_output, 3) + 0.0,
        "zero-centred": abs(mean_output) < 0.05,
        "monotonic": bool((y.diff() >= 0).all()),
        "smooth": bool(dy.diff().abs().max() < 100 * step),
        "dead region (x < -1)": bool((dy[negative].abs() < FLAT * dy.abs().max()).all()),
        "cost": act_fn.cost,
    }

