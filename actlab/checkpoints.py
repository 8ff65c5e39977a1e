"""Saving and loading networks: ``<name>.config`` (JSON) beside ``<name>.tar`` (the state dict).

Files are written atomically and read with ``torch.load(weights_only=True)``, which refuses any
pickle that would build objects other than tensors, so a hostile file is never run.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch
from torch import nn

from actlab import settings
from actlab.activations import UnknownActivationError, from_config
from actlab.network import BaseNetwork


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, foreign, or does not fit its network."""


def _get_config_file(model_path: str | Path, model_name: str) -> Path:
    return Path(model_path) / f"{model_name}.config"


def _get_model_file(model_path: str | Path, model_name: str) -> Path:
    return Path(model_path) / f"{model_name}.tar"


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def save_model(model: BaseNetwork, model_path: str | Path, model_name: str) -> None:
    """Save ``model``'s config and parameters as ``<model_path>/<model_name>.{config,tar}``."""
    config = json.dumps(model.config).encode()
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    write_atomic(_get_model_file(model_path, model_name), lambda f: torch.save(state, f))
    write_atomic(_get_config_file(model_path, model_name), lambda f: f.write(config))


def checkpoint_exists(model_path: str | Path, model_name: str) -> bool:
    """True when both files of the checkpoint are there."""
    return _get_config_file(model_path, model_name).is_file() and _get_model_file(model_path, model_name).is_file()


def read_config(model_path: str | Path, model_name: str) -> dict:
    """The network config stored with a checkpoint, checked for the keys ``BaseNetwork`` needs."""
    config_file = _get_config_file(model_path, model_name)
    if not config_file.is_file():
        raise CheckpointError(f"Could not find the config file {config_file.name} in {config_file.parent}.")
    try:
        config = json.loads(config_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_file} is not a valid JSON config: {err}") from err
    expected = {"act_fn", "input_size", "num_classes", "hidden_sizes"}
    if not isinstance(config, dict) or set(config) != expected:
        raise CheckpointError(f"{config_file} is not a BaseNetwork config: expected the keys {sorted(expected)}.")
    return config


def _read_state_dict(model_file: Path, device: torch.device) -> dict[str, torch.Tensor]:
    if not model_file.is_file():
        raise CheckpointError(f"Could not find the model file {model_file.name} in {model_file.parent}.")
    try:
        state = torch.load(model_file, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"Refused to load {model_file}: it holds objects other than tensors, which could run code "
            "when unpickled. Only load checkpoints written by save_model."
        ) from err
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError... for a damaged file
        raise CheckpointError(f"{model_file} is truncated or not a torch checkpoint: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{model_file} does not hold a state dict of tensors.")
    return state


def load_model(
    model_path: str | Path, model_name: str, net: nn.Module | None = None, device: torch.device | None = None
) -> nn.Module:
    """Load a checkpoint into ``net``, or into a ``BaseNetwork`` rebuilt from its config when ``net`` is None."""
    device = device or settings.get_device()
    config = read_config(model_path, model_name)
    state = _read_state_dict(_get_model_file(model_path, model_name), device)
    if net is None:
        try:
            act_fn = from_config(config["act_fn"])
            net = BaseNetwork(act_fn, **{key: value for key, value in config.items() if key != "act_fn"})
        except (UnknownActivationError, TypeError, ValueError) as err:
            config_file = _get_config_file(model_path, model_name)
            raise CheckpointError(f"{config_file} describes a network that cannot be built: {err}") from err
        net = net.to(device)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        model_file = _get_model_file(model_path, model_name)
        raise CheckpointError(f"The parameters in {model_file} do not fit the network: {err}") from err
    return net
