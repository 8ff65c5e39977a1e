"""The run store: the record of what produced a checkpoint, and the files of a run.

Next to the checkpoint ``<name>.tar`` / ``<name>.config``, a run keeps ``<name>.history.json`` (its
curves) and ``<name>.run.json`` (its ``RunRecord``: network, protocol, initialization, seed, data,
and how it ended). What the store guarantees:

- **The record is written last.** A run starts by recording itself as running (and removing the
  files of any earlier run of that name); it ends by writing its history, then its final record.
  So a record that says *finished* means that every other file of the run is in place.
- **Every file is replaced atomically** (``actlab.checkpoints.write_atomic``): a new temporary file,
  created exclusively in the same folder, renamed into place. No write follows a link.
- **One writer per folder**: a writer holds ``folder_lock`` (an exclusive ``flock`` on
  ``<folder>/.actlab.lock``) while it writes; a second writer is refused at once with a message.
  The writer, under the lock, deletes temporary files that a killed writer left behind.
- **Readers never write.** They ignore temporary files, and read every JSON file strictly and with
  its types checked; a damaged file is named, with how to make it again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from actlab.activations import from_config
from actlab.checkpoints import (
    CheckpointError,
    check_model_name,
    checkpoint_exists,
    differences,
    read_json,
    save_model,
    temporary_prefix,
    write_atomic,
)
from actlab.checks import finite_number, whole_number
from actlab.data import FashionMNISTData
from actlab.network import BaseNetwork, check_config, check_init
from actlab.settings import check_seed
from actlab.training import DIVERGED, INTERRUPTED, History, Protocol

RUNNING, FINISHED = "running", "finished"
STATUSES = (RUNNING, FINISHED, INTERRUPTED, DIVERGED)
"""How a run stands: still running (or killed), finished (maximum epochs or early stopping),
stopped by Ctrl-C, or stopped by a non-finite loss. Only a finished run is ever reused."""

RECORD_FORMAT = 1
SUBSETS = ("full", "quick", "custom")
LOCK_NAME = ".actlab.lock"
RUN_SUFFIXES = {"model": ".tar", "config": ".config", "history": ".history.json", "record": ".run.json"}
"""The files of one run, by kind."""


class FolderBusyError(RuntimeError):
    """Another process is writing into the folder."""


_held: dict[Path, int] = {}


@contextmanager
def folder_lock(folder: Path) -> Iterator[Path]:
    """Hold the one-writer lock of ``folder`` (made if missing) for the ``with`` block.

    Refuses at once with a ``FolderBusyError`` when another process holds it; the same process may
    take it again inside the block.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise FolderBusyError(f"Another actlab process is writing into {folder}; wait until it has "
                                      "finished, or write somewhere else.") from err
            raise
        _held[key] = 1
        try:
            yield folder
        finally:
            del _held[key]
    finally:
        os.close(fd)


@dataclass(frozen=True)
class DataSpec:
    """Which data a run saw: ``"full"``, ``"quick"`` or ``"custom"``, and the size of each split."""

    subset: str
    train_size: int
    val_size: int
    test_size: int

    def __post_init__(self) -> None:
        if self.subset not in SUBSETS:
            raise ValueError(f"data.subset must be one of {', '.join(SUBSETS)}, not {self.subset!r}")
        for name in ("train_size", "val_size", "test_size"):
            whole_number(f"data.{name}", getattr(self, name))

    @classmethod
    def of(cls, data: FashionMNISTData) -> DataSpec:
        """The sizes of the splits of ``data``."""
        return cls(data.subset, len(data.train), len(data.val), len(data.test))


@dataclass(frozen=True)
class RunRecord:
    """What produced a checkpoint: network config, protocol, initialization, seed and data, and how it ended."""

    network: dict
    protocol: Protocol
    init: str
    seed: int
    data: DataSpec
    status: str = RUNNING
    threads: tuple[int, ...] = ()
    """The CPU thread counts its epochs used (none on a GPU): a different count can change the last digits."""

    def __post_init__(self) -> None:
        check_config(self.network)
        check_init(self.init)
        check_seed(self.seed)
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")
        if not all(type(count) is int and count > 0 for count in self.threads):
            raise ValueError(f"threads must be positive whole numbers, not {self.threads!r}")

    def request(self) -> dict:
        """Everything that must match for this run to stand for another request: all but status and threads."""
        return {"network": self.network, "protocol": {**self.protocol.to_dict(), "init": self.init},
                "seed": self.seed, "data": asdict(self.data)}

    def differences(self, requested: RunRecord) -> list[str]:
        """``key: stored vs requested`` for each setting in which ``requested`` differs from this record."""
        return differences(self.request(), requested.request())

    def to_dict(self) -> dict:
        """The record as plain JSON values, as ``<name>.run.json`` holds it."""
        return {"format": RECORD_FORMAT, **self.request(), "status": self.status, "threads": list(self.threads)}

    @classmethod
    def from_dict(cls, values: object) -> RunRecord:
        """The record that ``to_dict`` gave ``values``; a ``ValueError`` that says what is wrong for anything else."""
        expected = {"format", "network", "protocol", "seed", "data", "status"}
        if not isinstance(values, dict) or set(values) - {"threads"} != expected or values["format"] != RECORD_FORMAT:
            raise ValueError(f"a run record of format {RECORD_FORMAT} holds exactly {', '.join(sorted(expected))}"
                             " (and threads)")
        if not isinstance(values.get("threads", []), list):
            raise ValueError("threads must be a list of thread counts")
        protocol, data = values["protocol"], values["data"]
        if not isinstance(protocol, dict) or not isinstance(data, dict):
            raise ValueError("protocol and data must be objects")
        protocol = dict(protocol)
        init = protocol.pop("init", None)
        try:
            from_config(values["network"]["act_fn"])
            return cls(values["network"], Protocol(**protocol), init, values["seed"], DataSpec(**data),
                       values["status"], tuple(values.get("threads", [])))
        except (TypeError, KeyError) as err:
            raise ValueError(str(err)) from err


def _finite(what: str, values: object) -> list[float]:
    if not isinstance(values, list):
        raise ValueError(f"{what} must be a list of finite numbers")
    return [finite_number(f"{what}[{i}]", value) for i, value in enumerate(values)]


def checked_history(values: object) -> History:
    """The ``History`` in ``values`` (as ``History.to_dict`` writes it), its types and bounds checked."""
    history = History.from_dict(values)
    curves = ("train_loss", "train_acc", "val_loss", "val_acc")
    lengths = {len(_finite(name, getattr(history, name))) for name in curves}
    if len(lengths) != 1:
        raise ValueError("the losses and accuracies must have one value per epoch each")
    if not all(0 <= acc <= 1 for acc in history.train_acc + history.val_acc):
        raise ValueError("accuracies must lie between 0 and 1")
    if whole_number("best_epoch", history.best_epoch) > history.epochs:
        raise ValueError(f"best_epoch must lie between 0 and the {history.epochs} epochs, not {history.best_epoch!r}")
    if not isinstance(history.model_name, str) or not isinstance(history.stop_reason, str):
        raise ValueError("model_name and stop_reason must be strings")
    finite_number("wall_time", history.wall_time)
    if history.test_acc is not None and (not isinstance(history.test_acc, float)
                                         or not 0 <= finite_number("test_acc", history.test_acc) <= 1):
        raise ValueError(f"test_acc must be None or a fraction between 0 and 1, not {history.test_acc!r}")
    if not isinstance(history.monitor, list) or not all(isinstance(entry, dict) for entry in history.monitor):
        raise ValueError("monitor must be a list of objects")
    return history


def _json_bytes(values: dict) -> bytes:
    return json.dumps(values, indent=1, allow_nan=False).encode()


@dataclass(frozen=True)
class RunFiles:
    """The files of the run ``model_name`` in ``folder``."""

    folder: Path
    model_name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))
        check_model_name(self.model_name)

    def path(self, kind: str) -> Path:
        """The path of one file of the run, by kind (see ``RUN_SUFFIXES``)."""
        return self.folder / f"{self.model_name}{RUN_SUFFIXES[kind]}"

    def exists(self) -> bool:
        """True when a checkpoint or record of this run is there."""
        return any(self.path(kind).is_file() for kind in ("model", "config", "record"))

    def record(self) -> RunRecord | None:
        """The stored record, or None when there is none."""
        path = self.path("record")
        if not path.is_file():
            return None
        try:
            return RunRecord.from_dict(read_json(path, "run record"))
        except ValueError as err:
            raise CheckpointError(f"{path} is not a run record ({err}); delete it, or retrain with --overwrite "
                                  "(overwrite=True).") from err

    def history(self) -> History | None:
        """The stored history, or None when there is none."""
        return load_history(self.folder, self.model_name)

    def _clean(self) -> None:
        for kind in RUN_SUFFIXES:
            for left in self.folder.glob(f"{temporary_prefix(self.path(kind))}*.part"):
                left.unlink(missing_ok=True)

    def start(self, record: RunRecord) -> None:
        """Record the run as running, then remove the files of any earlier run of that name (writer, locked)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clean()
        write_atomic(self.path("record"), _json_bytes(record.to_dict()))
        for kind in ("model", "config", "history"):
            self.path(kind).unlink(missing_ok=True)

    def save_epoch(self, history: History, best: BaseNetwork | None = None) -> None:
        """Store ``best`` as the checkpoint when this epoch is the best yet, then the history so far."""
        if best is not None:
            save_model(best, self.folder, self.model_name)
        write_atomic(self.path("history"), _json_bytes(history.to_dict()))

    def finish(self, history: History, record: RunRecord) -> None:
        """Store the final history, then, last, the record of how the run ended."""
        write_atomic(self.path("history"), _json_bytes(history.to_dict()))
        write_atomic(self.path("record"), _json_bytes(record.to_dict()))

    def has_checkpoint(self) -> bool:
        """True when both files of the checkpoint are there."""
        return checkpoint_exists(self.folder, self.model_name)


def load_history(model_path: str | Path, model_name: str) -> History | None:
    """The history stored next to a checkpoint, or None when there is none; a damaged one is named."""
    path = RunFiles(Path(model_path), model_name).path("history")
    if not path.is_file():
        return None
    try:
        return checked_history(read_json(path, "training history"))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a training history: {err}; delete it, or retrain with --overwrite "
                              "(overwrite=True).") from err

