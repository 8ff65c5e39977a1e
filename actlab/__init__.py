"""actlab: what activation functions do to a neural network.

This package is the lesson: activations, the network, the data, the training loop, gradients,
statistics, plots and widgets. ``actlab.lab`` holds the lab around it (kept runs, comparisons,
grids, the reference networks, the command line); the lesson never imports it.

The names follow the source tutorial, so the notebooks and the article read side by side.
Importing it sizes torch's threads to the CPUs this process may use (``actlab.support.threads``); a bad
``ACTLAB_THREADS`` is reported where the threads are next needed.
"""

import contextlib

from actlab.activations import (
    ActivationFunction,
    Param,
    act_fn_by_name,
    activation_curve,
    get_activation,
    register_activation,
)
from actlab.checkpoints import CheckpointError, CheckpointMismatchError, load_model, save_model
from actlab.data import load_fashion_mnist
from actlab.gradients import visualize_gradients
from actlab.network import BaseNetwork, initialize
from actlab.settings import get_device, quick_mode, set_seed
from actlab.support import threads
from actlab.training import History, Protocol, default_protocol, evaluate, fit, test_model

__all__ = [
    "ActivationFunction",
    "BaseNetwork",
    "CheckpointError",
    "CheckpointMismatchError",
    "History",
    "Param",
    "Protocol",
    "act_fn_by_name",
    "activation_curve",
    "default_protocol",
    "evaluate",
    "fit",
    "get_activation",
    "get_device",
    "initialize",
    "load_fashion_mnist",
    "load_model",
    "quick_mode",
    "register_activation",
    "save_model",
    "set_seed",
    "test_model",
    "visualize_gradients",
]

with contextlib.suppress(ValueError):
    threads.size_threads()
