"""Saving and loading networks: ``<name>.config`` (JSON) beside ``<name>.tar`` (the state dict).

A trained run adds ``<name>.history.json`` and ``<name>.run.json`` (its record). These files change
together, through ``commit``: every new file is first written under a temporary name
(``.<file>.part``), then a small manifest (``<name>.pending``) lists them, then each is renamed
into place and the manifest deleted. Whoever reads a checkpoint first calls ``recover``: it
finishes a commit whose manifest exists (a kill came after the manifest), or deletes the
temporary files of one without (a kill came before it). Either way a reader sees all the old files
or all the new ones. One process at a time writes a given checkpoint.

State dicts are read with ``torch.load(weights_only=True)``, which refuses any pickle that would
build objects other than tensors, so a hostile file is never run.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from actlab import settings
from actlab.activations import UnknownActivationError
from actlab.network import BaseNetwork, build_network, check_config, parameter_shapes

SUFFIXES = {"model": ".tar", "config": ".config", "history": ".history.json", "record": ".run.json"}
"""The files of one checkpoint, by kind."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, foreign, or does not fit its network."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint made by another network, protocol or data than the one asked for."""


def check_model_name(model_name: object) -> str:
    """``model_name`` itself when it names a file inside the checkpoint folder, else a ``ValueError``."""
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"A model name must be a non-empty string, not {model_name!r}.")
    if model_name.startswith(".") or any(char in model_name for char in "/\\:\0"):
        raise ValueError(
            f"The model name {model_name!r} would leave the checkpoint folder or hide the file: "
            "it may not start with '.' nor hold '/', '\\', ':' or NUL."
        )
    return model_name


def checkpoint_file(model_path: str | Path, model_name: str, kind: str) -> Path:
    """The path of one file (a kind of ``SUFFIXES``) of the checkpoint ``model_name``."""
    return Path(model_path) / f"{check_model_name(model_name)}{SUFFIXES[kind]}"


def _part(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


def _manifest(model_path: str | Path, model_name: str) -> Path:
    return Path(model_path) / f"{check_model_name(model_name)}.pending"


def _write_synced(path: Path, blob: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())


def _remove(path: Path) -> None:
    if path.exists():
        path.unlink(missing_ok=True)


def write_atomic(path: Path, blob: bytes) -> None:
    """Write ``path`` through ``.<name>.part`` in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = _part(path)
    _write_synced(part, blob)
    os.replace(part, path)


def _apply(model_path: Path, model_name: str, plan: Mapping[str, bool], recovering: bool) -> None:
    for kind, write in plan.items():
        final = checkpoint_file(model_path, model_name, kind)
        if not write:
            _remove(final)
        elif not recovering or _part(final).exists():
            os.replace(_part(final), final)
    _remove(_manifest(model_path, model_name))


def recover(model_path: str | Path, model_name: str) -> None:
    """Complete a commit that a kill interrupted after its manifest, or undo one interrupted before it."""
    model_path = Path(model_path)
    manifest = _manifest(model_path, model_name)
    if manifest.is_file():
        try:
            plan = json.loads(manifest.read_text())
            if not isinstance(plan, dict) or not set(plan) <= set(SUFFIXES):
                raise ValueError("not a manifest of checkpoint files")
        except (UnicodeDecodeError, ValueError) as err:
            raise CheckpointError(f"{manifest} is damaged ({err}); delete it and the checkpoint {model_name}.") from err
        _apply(model_path, model_name, plan, recovering=True)
    for kind in SUFFIXES:
        _remove(_part(checkpoint_file(model_path, model_name, kind)))
    _remove(_part(manifest))


def commit(model_path: str | Path, model_name: str, files: Mapping[str, bytes | None]) -> None:
    """Replace files of one checkpoint all at once: bytes to write, or None to delete, by kind."""
    model_path = Path(model_path)
    recover(model_path, model_name)
    model_path.mkdir(parents=True, exist_ok=True)
    for kind, blob in files.items():
        if blob is not None:
            _write_synced(_part(checkpoint_file(model_path, model_name, kind)), blob)
    plan = {kind: blob is not None for kind, blob in files.items()}
    write_atomic(_manifest(model_path, model_name), json.dumps(plan).encode())
    _apply(model_path, model_name, plan, recovering=False)


def network_files(model: BaseNetwork) -> dict[str, bytes]:
    """The ``.tar`` and ``.config`` of ``model``, as bytes, for ``commit``."""
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu() for key, value in model.state_dict().items()}, buffer)
    return {"model": buffer.getvalue(), "config": json.dumps(model.config).encode()}


def save_model(model: BaseNetwork, model_path: str | Path, model_name: str) -> None:
    """Save ``model``'s config and parameters as ``<model_path>/<model_name>.{config,tar}``.

    A history or record of an earlier run under the same name no longer describes these
    parameters, so they are deleted in the same step.
    """
    commit(model_path, model_name, {**network_files(model), "history": None, "record": None})


def checkpoint_exists(model_path: str | Path, model_name: str) -> bool:
    """True when both files of the checkpoint are there."""
    recover(model_path, model_name)
    return all(checkpoint_file(model_path, model_name, kind).is_file() for kind in ("config", "model"))


def read_json(path: Path, what: str) -> object:
    """The JSON in ``path``, or a ``CheckpointError`` that names the file and what it should hold."""
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is damaged: it is not valid JSON ({err}), so not a {what}.") from err


def read_config(model_path: str | Path, model_name: str) -> dict:
    """The network config stored with a checkpoint, checked for the keys and sizes ``BaseNetwork`` needs."""
    recover(model_path, model_name)
    config_file = checkpoint_file(model_path, model_name, "config")
    if not config_file.is_file():
        raise CheckpointError(f"Could not find the config file {config_file.name} in {config_file.parent}.")
    config = read_json(config_file, "network config")
    try:
        return check_config(config)
    except ValueError as err:
        raise CheckpointError(f"{config_file} is not a BaseNetwork config: {err}.") from err


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


def differences(
    stored: object, requested: object, key: str = "", labels: tuple[str, str] = ("stored", "requested")
) -> list[str]:
    """Where two JSON-like values differ, one ``key: stored vs requested`` line per differing leaf."""
    if isinstance(stored, dict) and isinstance(requested, dict):
        keys = list(stored) + [k for k in requested if k not in stored]
        return [
            line
            for k in keys
            for line in differences(stored.get(k), requested.get(k), f"{key}.{k}" if key else str(k), labels)
        ]
    if stored == requested:
        return []
    return [f"{key or 'value'}: {stored!r} {labels[0]} vs {requested!r} {labels[1]}"]


def _check_shapes(config: dict, state: dict[str, torch.Tensor], model_file: Path) -> None:
    expected = parameter_shapes(config)
    found = {key: tuple(value.shape) for key, value in state.items()}
    if found != expected:
        lines = differences(found, expected, labels=("in the file", "in the config"))
        raise CheckpointError(
            f"The parameters in {model_file} do not fit the network of its config:\n  " + "\n  ".join(lines)
        )


def load_model(
    model_path: str | Path, model_name: str, net: nn.Module | None = None, device: torch.device | None = None
) -> nn.Module:
    """Load a checkpoint into ``net``, or into a ``BaseNetwork`` rebuilt from its config when ``net`` is None.

    The stored config must equal ``net.config``; the state dict's tensors must have the shapes that
    the config implies. Both are checked before any network is built or changed.
    """
    device = device or settings.get_device()
    config = read_config(model_path, model_name)
    config_file = checkpoint_file(model_path, model_name, "config")
    if net is not None and getattr(net, "config", config) != config:
        raise CheckpointMismatchError(
            f"{config_file} describes another network than the one given:\n  "
            + "\n  ".join(differences(config, net.config))
        )
    model_file = checkpoint_file(model_path, model_name, "model")
    state = _read_state_dict(model_file, device)
    _check_shapes(config, state, model_file)
    if net is None:
        try:
            net = build_network(config).to(device)
        except (UnknownActivationError, TypeError, ValueError) as err:
            raise CheckpointError(f"{config_file} describes a network that cannot be built: {err}") from err
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"The parameters in {model_file} do not fit the network: {err}") from err
    return net
