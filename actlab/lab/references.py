"""The reference networks shipped in ``saved_models/``, and how they are trained.

Six networks of the source's protocol, one per source activation, and a deep ReLU network (the
University of Amsterdam tutorial's ten hidden layers) under PyTorch's default and under He
initialization. All start from seed 42 and record, at initialization and after every epoch, their
activation statistics on a fixed probe set of validation images and how far each parameter has moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from actlab import settings
from actlab.activation_stats import monitor
from actlab.activations import SOURCE_ACTIVATIONS, get_activation
from actlab.checkpoints import CheckpointError, load_model
from actlab.data import FULL_SIZES, FashionMNISTData, load_fashion_mnist
from actlab.lab.runs import FINISHED, DataSpec, RunFiles, RunRecord
from actlab.lab.train import train_model
from actlab.network import DEFAULT_HIDDEN_SIZES, BaseNetwork, initialize, network_config
from actlab.training import FULL_PROTOCOL, History
from actlab.weight_change import weight_monitor

SEED = 42
PROBE_SIZE = 1000
"""How many validation images the activation statistics are recorded on."""
DEEP_HIDDEN_SIZES = (256, 256, 256, 256, 256, 128, 128, 128, 128, 128)


@dataclass(frozen=True)
class ReferenceRun:
    """One reference network: its checkpoint name, activation, hidden layers and initialization."""

    name: str
    activation: str
    hidden_sizes: tuple[int, ...] = DEFAULT_HIDDEN_SIZES
    init: str = "default"


SOURCE_RUNS = tuple(ReferenceRun(f"FashionMNIST_{name}", name) for name in SOURCE_ACTIVATIONS)
DEEP_RUNS = tuple(ReferenceRun(f"FashionMNIST_deep_relu_{init}", "relu", DEEP_HIDDEN_SIZES, init)
                  for init in ("default", "he"))
REFERENCE_RUNS = SOURCE_RUNS + DEEP_RUNS


def probe_images(data: FashionMNISTData) -> torch.Tensor:
    """The fixed images on which the statistics are recorded: the first ``PROBE_SIZE`` of the validation split."""
    return data.val.head(PROBE_SIZE).images


def reference_monitor(images: torch.Tensor) -> Callable[[nn.Module], dict]:
    """The monitor of the reference runs: activation statistics on ``images`` and each parameter's movement."""
    statistics, movement = monitor(images), weight_monitor()
    return lambda net: {**statistics(net), **movement(net)}


def reference_network(run: ReferenceRun) -> BaseNetwork:
    """The untrained network of ``run``: drawn from seed 42, then initialized with ``run.init``.

    These are the weights that training starts from.
    """
    settings.set_seed(SEED)
    net = BaseNetwork(get_activation(run.activation), hidden_sizes=run.hidden_sizes)
    return initialize(net, run.init).to(settings.get_device())


def train_reference(run: ReferenceRun, net: BaseNetwork | None = None, data: FashionMNISTData | None = None,
                    model_path: Path | None = None, overwrite: bool = False, progress: bool = True) -> History:
    """Train ``run`` with the mode's protocol and statistics recording, or reuse its finished checkpoint.

    ``net`` (by default a fresh ``reference_network(run)``) ends up holding the best epoch's weights.
    ``model_path`` defaults to ``saved_models/`` in full mode and a scratch folder in quick mode.
    """
    data = data or load_fashion_mnist()
    return train_model(net or reference_network(run), run.name, overwrite=overwrite, model_path=model_path,
                       data=data, seed=SEED, init=run.init, monitor=reference_monitor(probe_images(data)),
                       progress=progress)


def shipped_reference(run: ReferenceRun, model_path: Path = settings.SAVED_MODELS) -> tuple[BaseNetwork, History]:
    """The shipped network of ``run`` and its history, read (never written) from ``saved_models/``.

    Its record must show a finished run of the full protocol on the full data, with the run's network,
    initialization and seed; anything else is refused with a ``CheckpointError``.
    """
    files = RunFiles(model_path, run.name)
    config = network_config(get_activation(run.activation), hidden_sizes=run.hidden_sizes)
    full = DataSpec("full", FULL_SIZES["train"], FULL_SIZES["val"], FULL_SIZES["test"])
    expected = RunRecord(config, FULL_PROTOCOL, run.init, SEED, full, FINISHED)
    stored = files.record()
    if stored is None or replace(stored, threads=()) != expected:
        problem = "is missing" if stored is None else "differs: " + "; ".join(stored.differences(expected) or
                                                                             [f"status {stored.status}"])
        raise CheckpointError(f"The record of the shipped network {run.name} in {model_path} {problem}. "
                              "python -m actlab references (in full mode) makes it again.")
    history = files.history()
    if history is None:
        raise CheckpointError(f"The history of the shipped network {run.name} is missing from {model_path}.")
    net = load_model(model_path, run.name, device=settings.get_device())
    assert isinstance(net, BaseNetwork)
    return net.eval(), history
