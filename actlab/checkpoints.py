"""Saving and loading networks: ``<name>.config`` (JSON) beside ``<name>.tar`` (the state dict).

Every file is written under a fresh temporary name in its folder (created exclusively, so no write
ever follows a link), flushed to disk, then renamed into place: a reader sees the old file or the new
one, never half of one. ``save_model`` writes the config before the state dict, and deletes an old
state dict first when the config changes, so a kill between the two leaves a missing file (a clear
error), never a state dict paired with another network's config.

State dicts are read with ``torch.load(weights_only=True)``, which refuses any pickle that would
build objects other than tensors, so a hostile file is never run. JSON is read strictly: no NaN or
Infinity, nothing larger than ``MAX_JSON_BYTES``, no nesting deeper than Python can parse.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from actlab import settings
from actlab.activations import UnknownActivationError
from actlab.network import BaseNetwork, build_network, check_config, parameter_shapes

SUFFIXES = {"model": ".tar", "config": ".config"}
"""The files of one checkpoint, by kind."""
MAX_NAME_BYTES = 160
"""The longest model name: with a suffix and a temporary name's prefix and tail, it stays under 255 bytes."""
MAX_JSON_BYTES = 64 * 2**20
MAX_CHECKPOINT_BYTES = 2**30
"""The most a checkpoint may unpack to; the largest network the lab builds needs a few tens of MB."""
"""The largest JSON file actlab reads."""


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
    if len(model_name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"The model name is {len(model_name.encode())} bytes long; at most {MAX_NAME_BYTES} "
                         "leave room for its files' suffixes and temporary names.")
    return model_name


def checkpoint_file(model_path: str | Path, model_name: str, kind: str) -> Path:
    """The path of one file (a kind of ``SUFFIXES``) of the checkpoint ``model_name``."""
    return Path(model_path) / f"{check_model_name(model_name)}{SUFFIXES[kind]}"


def temporary_prefix(path: Path) -> str:
    """How the temporary files of ``path`` begin: ``.<name>.``; they end in ``.part``."""
    return f".{path.name}."


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, blob: bytes) -> None:
    """Write ``path`` through a new temporary file in the same folder, then rename it into place.

    The temporary file is created exclusively (``O_CREAT | O_EXCL``), so a link planted at its name
    is never followed; the rename replaces whatever is at ``path``, a link included, without following it.
    The file gets the usual permissions (``0o666`` less the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".part")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def network_files(model: BaseNetwork) -> dict[str, bytes]:
    """The ``.tar`` and ``.config`` of ``model``, as bytes."""
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu() for key, value in model.state_dict().items()}, buffer)
    return {"model": buffer.getvalue(), "config": json.dumps(model.config).encode()}


def save_model(model: BaseNetwork, model_path: str | Path, model_name: str) -> None:
    """Save ``model``'s config and parameters as ``<model_path>/<model_name>.{config,tar}``."""
    files = network_files(model)
    config_file, model_file = (checkpoint_file(model_path, model_name, kind) for kind in ("config", "model"))
    if not config_file.is_file() or config_file.read_bytes() != files["config"]:
        model_file.unlink(missing_ok=True)
        write_atomic(config_file, files["config"])
    write_atomic(model_file, files["model"])


def checkpoint_exists(model_path: str | Path, model_name: str) -> bool:
    """True when both files of the checkpoint are there."""
    return all(checkpoint_file(model_path, model_name, kind).is_file() for kind in SUFFIXES)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number that actlab writes")


def read_json(path: Path, what: str) -> object:
    """The JSON in ``path``, read strictly, or a ``CheckpointError`` that names the file and what it should hold."""
    fix = "delete it (or retrain with --overwrite / overwrite=True) to make it again"
    try:
        if not path.is_file():
            raise ValueError("it is not a regular file")
        with open(path, "rb") as handle:
            blob = handle.read(MAX_JSON_BYTES + 1)
        if len(blob) > MAX_JSON_BYTES:
            raise ValueError(f"it is larger than any {what} ({MAX_JSON_BYTES:,} bytes)")
        return json.loads(blob.decode(), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = "it nests too deeply" if isinstance(err, RecursionError) else err
        raise CheckpointError(f"{path} is damaged, so not a {what} ({reason}); {fix}.") from err


def read_config(model_path: str | Path, model_name: str) -> dict:
    """The network config stored with a checkpoint, checked for the keys and sizes ``BaseNetwork`` needs."""
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
    if zipfile.is_zipfile(model_file):
        with zipfile.ZipFile(model_file) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
        if unpacked > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(f"Refused to load {model_file}: it unpacks to {unpacked:,} bytes, more than any "
                                  f"network of the lab ({MAX_CHECKPOINT_BYTES:,}).")
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
    counter = "num_batches_tracked"
    wrong = [f"{key}: {value.dtype}" for key, value in state.items()
             if not value.is_floating_point() and not (key.endswith(counter) and value.dtype == torch.int64)]
    if wrong:
        raise CheckpointError(f"{model_file} holds tensors of the wrong type for a network ({', '.join(wrong)}); "
                              "save_model writes floating-point parameters.")
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


def read_checkpoint(model_path: str | Path, model_name: str,
                    device: torch.device | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """The config and the state dict of a checkpoint, the tensors' shapes checked against the config."""
    config = read_config(model_path, model_name)
    model_file = checkpoint_file(model_path, model_name, "model")
    state = _read_state_dict(model_file, device or torch.device("cpu"))
    _check_shapes(config, state, model_file)
    return config, state


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
    config, state = read_checkpoint(model_path, model_name, device)
    model_file = checkpoint_file(model_path, model_name, "model")
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
