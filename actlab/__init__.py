"""actlab: what activation functions do to a neural network.

The names follow the source tutorial, so the notebooks and the article read side by side.
"""

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
from actlab.network import BaseNetwork
from actlab.runs import History, Protocol, RunRecord
from actlab.settings import get_device, quick_mode, set_seed
from actlab.training import fit, test_model, train_model

__all__ = [
    "ActivationFunction",
    "BaseNetwork",
    "CheckpointError",
    "CheckpointMismatchError",
    "History",
    "Param",
    "Protocol",
    "RunRecord",
    "act_fn_by_name",
    "activation_curve",
    "fit",
    "get_activation",
    "get_device",
    "load_fashion_mnist",
    "load_model",
    "quick_mode",
    "register_activation",
    "save_model",
    "set_seed",
    "test_model",
    "train_model",
]
