"""The source's fully connected network for FashionMNIST, and the ways to initialize its weights."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn
from typing_extensions import override

from actlab.activations import ActivationFunction, LeakyReLU, ReLU, Sigmoid, Tanh, from_config
from actlab.checks import positive_integer

DEFAULT_HIDDEN_SIZES = (512, 256, 256, 128)
MAX_PARAMETERS = 50_000_000
"""The largest network actlab builds: 200 MB of float32 weights, about 0.8 GB to train with momentum."""


def parameter_count(sizes: Sequence[int]) -> int:
    """The weights and biases of fully connected layers through ``sizes`` (input, hidden..., classes)."""
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))


def layer_sizes(input_size: object, hidden_sizes: object, num_classes: object) -> list[int]:
    """The sizes of every layer, input to classes, each checked, and the network no larger than ``MAX_PARAMETERS``.

    A ``ValueError`` names the size that is wrong, or gives the parameter count of a network too large.
    """
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence) or not hidden_sizes:
        raise ValueError(f"hidden_sizes must be a non-empty list of positive integers, not {hidden_sizes!r}")
    sizes = [positive_integer("input_size", input_size)]
    sizes += [positive_integer(f"hidden_sizes[{i}]", size) for i, size in enumerate(hidden_sizes)]
    sizes.append(positive_integer("num_classes", num_classes))
    count = parameter_count(sizes)
    if count > MAX_PARAMETERS:
        raise ValueError(f"a network of sizes {sizes} has {count:,} parameters ({4 * count / 1e9:,.1f} GB of "
                         f"float32 weights), more than actlab builds ({MAX_PARAMETERS:,})")
    return sizes


NORMS: dict[str, Callable[[int], nn.Module] | None] = {
    "none": None,
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
}
"""The normalizations a hidden layer may have, between its linear map and its activation."""


class Residual(nn.Module):
    """A block whose input is added to its output: ``x + block(x)``."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def hidden_layer(fan_in: int, fan_out: int, act_fn: ActivationFunction, norm: str = "none",
                 residual: bool = False) -> list[nn.Module]:
    """Linear, then the normalization ``norm`` if any, then ``act_fn``; one block added to its input when ``residual``.

    A residual layer needs ``fan_in == fan_out``; where they differ, the layer is plain.
    """
    make_norm = NORMS[check_norm(norm)]
    parts = [nn.Linear(fan_in, fan_out), *([make_norm(fan_out)] if make_norm else []), act_fn]
    return [Residual(nn.Sequential(*parts))] if residual and fan_in == fan_out else parts


class BaseNetwork(nn.Module):
    """Linear layers of the given sizes, the same activation after each hidden layer.

    ``norm`` puts BatchNorm (``"batch"``) or LayerNorm (``"layer"``) between each hidden layer's
    linear map and its activation; ``residual`` adds each hidden layer's input to its output where
    the sizes match. A residual network with a normalization also normalizes the last hidden
    layer's output before the output layer: every block adds to h, so h grows with depth, and the
    logits would start as large as h (notebook 07). ``config`` holds everything needed to build it again, for example
    ``{"act_fn": {"name": "Tanh"}, "input_size": 784, "num_classes": 10, "hidden_sizes": [512, 256, 256, 128]}``
    (``norm`` and ``residual`` appear in it only when used).
    """

    def __init__(
        self,
        act_fn: ActivationFunction,
        input_size: int = 784,
        num_classes: int = 10,
        hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
        norm: str = "none",
        residual: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(act_fn, ActivationFunction):
            raise TypeError(f"act_fn must be an ActivationFunction instance, not {act_fn!r}.")
        sizes = layer_sizes(input_size, hidden_sizes, num_classes)
        if check_residual(residual) and all(fan_in != fan_out for fan_in, fan_out in itertools.pairwise(sizes[1:-1])):
            raise ValueError(f"residual needs two consecutive hidden layers of the same size, and {list(hidden_sizes)} "
                             "has none: the network would be the plain one")
        layers = [module for fan_in, fan_out in itertools.pairwise(sizes[:-1])
                  for module in hidden_layer(fan_in, fan_out, act_fn, norm, check_residual(residual))]
        make_norm = NORMS[norm]
        final = [make_norm(sizes[-2])] if residual and make_norm else []
        self.layers = nn.Sequential(*layers, *final, nn.Linear(sizes[-2], sizes[-1]))
        self.config = network_config(act_fn, input_size, num_classes, hidden_sizes, norm, residual)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.view(x.size(0), -1))


def check_norm(norm: object) -> str:
    """``norm`` when it is one of ``NORMS``; a ``ValueError`` that lists them if not."""
    if not isinstance(norm, str) or norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
    return norm


def check_residual(residual: object) -> bool:
    """``residual`` when it is True or False; a ``ValueError`` if not."""
    if not isinstance(residual, bool):
        raise ValueError(f"residual must be true or false, not {residual!r}")
    return residual


def build_network(config: dict) -> BaseNetwork:
    """A new ``BaseNetwork`` built from its ``config``, with freshly drawn weights."""
    check_config(config)
    return BaseNetwork(from_config(config["act_fn"]), config["input_size"], config["num_classes"],
                       config["hidden_sizes"], config.get("norm", "none"), config.get("residual", False))


def network_config(
    act_fn: ActivationFunction,
    input_size: int = 784,
    num_classes: int = 10,
    hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
    norm: str = "none",
    residual: bool = False,
) -> dict:
    """The config of the ``BaseNetwork`` with these arguments, without building it.

    ``norm`` and ``residual`` are left out when off, so the source's networks keep the source's config.
    """
    return {
        "act_fn": act_fn.config,
        "input_size": input_size,
        "num_classes": num_classes,
        "hidden_sizes": list(hidden_sizes),
        **layer_options(norm, residual),
    }


def layer_options(norm: str = "none", residual: bool = False) -> dict:
    """``norm`` and ``residual`` as a config holds them: each one only when it is on."""
    options: dict[str, object] = {}
    if check_norm(norm) != "none":
        options["norm"] = norm
    if check_residual(residual):
        options["residual"] = True
    return options


def check_config(config: object) -> dict:
    """``config`` itself when it describes a ``BaseNetwork`` (its keys, and sizes that are positive integers)."""
    required, optional = {"act_fn", "input_size", "num_classes", "hidden_sizes"}, {"norm", "residual"}
    if not isinstance(config, dict) or not required <= set(config) <= required | optional:
        raise ValueError(f"a BaseNetwork config has the keys {sorted(required)}, and {sorted(optional)} when used")
    if not isinstance(config["hidden_sizes"], list):
        raise ValueError(f"hidden_sizes must be a non-empty list of positive integers, not {config['hidden_sizes']!r}")
    layer_sizes(config["input_size"], config["hidden_sizes"], config["num_classes"])
    if not isinstance(config["act_fn"], dict) or not isinstance(config["act_fn"].get("name"), str):
        raise ValueError(f"act_fn must be an activation's config such as {{'name': 'ReLU'}}, not {config['act_fn']!r}")
    if check_norm(config.get("norm", "none")) == "none" and "norm" in config:
        raise ValueError("a config leaves norm out when there is none")
    if not check_residual(config.get("residual", True)):
        raise ValueError("a config leaves residual out when it is false")
    return config


def parameter_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in the state dict of the ``BaseNetwork`` that ``config`` describes.

    Found without building the activation, whose name may be unknown here: activations hold no tensors.
    """
    check_config(config)
    with torch.device("meta"):
        net = BaseNetwork(ReLU(), config["input_size"], config["num_classes"], config["hidden_sizes"],
                          config.get("norm", "none"), config.get("residual", False))
    return {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}


def glorot_gain(act_fn: ActivationFunction | None) -> float:
    """Glorot's gain for a layer followed by ``act_fn``: the inverse of the activation's typical slope.

    ``torch.nn.init.calculate_gain``'s value where torch has one (tanh 5/3, ReLU sqrt(2), LeakyReLU
    sqrt(2 / (1 + alpha^2))), 4 for sigmoid (1 / sigmoid'(0), where torch says 1), and 1 otherwise.
    Sigmoid's gain assumes units near 0; its mean output of 0.5 pushes the next layer's units
    further out, so each layer still shrinks the signal somewhat (notebook 03 measures it).
    """
    if isinstance(act_fn, Sigmoid):
        return 4.0
    if isinstance(act_fn, Tanh):
        return nn.init.calculate_gain("tanh")
    if isinstance(act_fn, ReLU):
        return nn.init.calculate_gain("relu")
    if isinstance(act_fn, LeakyReLU):
        return nn.init.calculate_gain("leaky_relu", act_fn.config["alpha"])
    return 1.0


NORM_LAYERS = (nn.BatchNorm1d, nn.LayerNorm)
NetworkT = TypeVar("NetworkT", bound=nn.Module)

INITS = {
    "default": "PyTorch's default: U(±1/sqrt(fan_in))",
    "he": "He (Kaiming) normal for ReLU: N(0, 2/fan_in)",
    "glorot": "Glorot (Xavier) uniform: U(±gain·sqrt(6/(fan_in+fan_out))), "
    "gain 4 for sigmoid, 5/3 for tanh, √2 for ReLU, √(2/(1+α²)) for LeakyReLU, 1 otherwise",
}
"""The classic weight initializations, with their formulas (notebook 03).

``initialize`` also takes the theory's (notebook 08): ``actlab.mean_field.MEAN_FIELD_INITS``.
"""


def check_init(init: object) -> str:
    """``init`` when ``initialize`` knows it; a ``ValueError`` that lists the initializations if not."""
    from actlab.mean_field import MEAN_FIELD_INITS, gaussian_scales  # the theory only when asked for

    if not isinstance(init, str) or (init not in INITS and init not in MEAN_FIELD_INITS
                                     and gaussian_scales(init) is None):
        raise ValueError(f"init must be one of {', '.join([*INITS, *MEAN_FIELD_INITS])} or gaussian-W-B (weights "
                         f"N(0, W/fan_in), biases N(0, B), e.g. gaussian-1.5-0.05), not {init!r}")
    return init


def initialize(net: NetworkT, init: str) -> NetworkT:
    """Re-draw every linear layer's weights with ``init`` (one of ``INITS``) and zero its biases.

    ``"default"`` leaves PyTorch's own initialization untouched. Glorot's gain follows the
    activation right after each layer, a normalization layer between them skipped (``glorot_gain``);
    a layer followed by none gets gain 1. The theory's initializations (``critical``,
    ``critical-orthogonal``, ``gaussian-W-B``) are drawn by ``actlab.mean_field.initialize_mean_field``.
    """
    if check_init(init) == "default":
        return net
    if init not in ("he", "glorot"):
        from actlab.mean_field import initialize_mean_field

        return initialize_mean_field(net, init)
    modules = [module for _, module in net.named_modules(remove_duplicate=False)
               if not isinstance(module, NORM_LAYERS)]
    for module, following in itertools.zip_longest(modules, modules[1:]):
        if isinstance(module, nn.Linear):
            if init == "he":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            else:
                act_fn = following if isinstance(following, ActivationFunction) else None
                nn.init.xavier_uniform_(module.weight, gain=glorot_gain(act_fn))
            nn.init.zeros_(module.bias)
    return net
