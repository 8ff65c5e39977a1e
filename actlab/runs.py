"""What a training run is: its protocol, the record of what produced it, and its history.

Next to the checkpoint ``<name>.tar`` / ``<name>.config``, a run keeps ``<name>.history.json`` (its
curves) and ``<name>.run.json`` (its ``RunRecord``: network, protocol, seed, data, and whether it
finished). ``RunFiles`` writes them, always together (see ``actlab.checkpoints.commit``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from actlab.checkpoints import (
    CheckpointError,
    check_model_name,
    checkpoint_file,
    commit,
    differences,
    network_files,
    read_json,
    recover,
)
from actlab.data import FashionMNISTData
from actlab.network import INITS, BaseNetwork

OPTIMIZERS = ("sgd", "adam")
SGD_MOMENTUM = 0.9
"""The momentum of the source's SGD, used when none is given."""

RUNNING, FINISHED, INTERRUPTED, DIVERGED = "running", "finished", "interrupted", "diverged"
"""How a run stands: still running (or killed), finished (maximum epochs or early stopping),
stopped by Ctrl-C, or stopped by a non-finite loss. Only a finished run is ever reused."""

RECORD_FORMAT = 1


def _positive_int(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")


def _number(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Protocol:
    """How a network is trained, its seed apart: optimizer and its settings, batch size, epochs, initialization.

    ``momentum`` applies to SGD only: None there means the source's 0.9, and Adam takes none.
    """

    max_epochs: int = 50
    patience: int = 7
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 1e-2
    momentum: float | None = None
    init: str = "default"

    def __post_init__(self) -> None:
        for name in ("max_epochs", "patience", "batch_size"):
            _positive_int(name, getattr(self, name))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'sgd' or 'adam', not {self.optimizer!r}")
        if not _number("lr", self.lr) > 0:
            raise ValueError(f"lr must be positive, not {self.lr!r}")
        object.__setattr__(self, "lr", float(self.lr))
        if self.optimizer == "adam" and self.momentum is not None:
            raise ValueError("momentum applies to SGD only; Adam takes none")
        if self.optimizer == "sgd":
            momentum = SGD_MOMENTUM if self.momentum is None else _number("momentum", self.momentum)
            if not 0 <= momentum < 1:
                raise ValueError(f"momentum must lie in [0, 1), not {momentum!r}")
            object.__setattr__(self, "momentum", momentum)
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, not {self.init!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Protocol:
        return cls(**values)


@dataclass(frozen=True)
class DataSpec:
    """Which data a run saw: ``"full"``, ``"quick"`` or ``"custom"``, and the size of each split."""

    subset: str
    train_size: int
    val_size: int
    test_size: int

    @classmethod
    def of(cls, data: FashionMNISTData) -> DataSpec:
        return cls(data.subset, len(data.train), len(data.val), len(data.test))


@dataclass(frozen=True)
class RunRecord:
    """What produced a checkpoint: the network's config, the protocol, the seed and the data, and how it ended."""

    network: dict
    protocol: Protocol
    seed: int
    data: DataSpec
    status: str = RUNNING

    def request(self) -> dict:
        """Everything that must match for this run to stand for another request: all but the status."""
        return {"network": self.network, "protocol": self.protocol.to_dict(), "seed": self.seed,
                "data": asdict(self.data)}

    def differences(self, requested: RunRecord) -> list[str]:
        """``key: stored vs requested`` for each setting in which ``requested`` differs from this record."""
        return differences(self.request(), requested.request())

    def to_dict(self) -> dict:
        return {"format": RECORD_FORMAT, **self.request(), "status": self.status}

    @classmethod
    def from_dict(cls, values: dict) -> RunRecord:
        if not isinstance(values, dict) or values.get("format") != RECORD_FORMAT:
            raise ValueError(f"expected a run record of format {RECORD_FORMAT}")
        if values["status"] not in (RUNNING, FINISHED, INTERRUPTED, DIVERGED):
            raise ValueError(f"unknown status {values['status']!r}")
        return cls(values["network"], Protocol.from_dict(values["protocol"]), values["seed"],
                   DataSpec(**values["data"]), values["status"])


@dataclass
class History:
    """What happened during one training run, epoch by epoch (accuracies as fractions).

    ``monitor`` holds what a monitor returned at initialization (epoch 0) and after each epoch.
    """

    model_name: str
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = ""
    wall_time: float = 0.0
    test_acc: float | None = None
    monitor: list[dict] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.val_acc)

    @property
    def best_val_acc(self) -> float | None:
        return self.val_acc[self.best_epoch - 1] if self.best_epoch else None

    def add_epoch(self, train_loss: float, train_acc: float, val_loss: float, val_acc: float, wall_time: float) -> None:
        """Append one epoch's losses and accuracies; ``wall_time`` counts from the start of training."""
        self.train_loss.append(train_loss)
        self.train_acc.append(train_acc)
        self.val_loss.append(val_loss)
        self.val_acc.append(val_acc)
        self.wall_time = wall_time

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> History:
        known = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or not {"model_name"} <= set(values) <= known:
            raise ValueError(f"a history holds model_name and some of {sorted(known - {'model_name'})}")
        return cls(**values)


def _json_bytes(values: dict) -> bytes:
    return json.dumps(values, indent=1, allow_nan=False).encode()


@dataclass(frozen=True)
class RunFiles:
    """The files of the run ``model_name`` in ``folder``: checkpoint, history and record, replaced together."""

    folder: Path
    model_name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))
        check_model_name(self.model_name)

    def path(self, kind: str) -> Path:
        return checkpoint_file(self.folder, self.model_name, kind)

    def exists(self) -> bool:
        """True when a checkpoint or record of this run is there."""
        recover(self.folder, self.model_name)
        return any(self.path(kind).is_file() for kind in ("model", "config", "record"))

    def record(self) -> RunRecord | None:
        """The stored record, or None when there is none."""
        recover(self.folder, self.model_name)
        path = self.path("record")
        if not path.is_file():
            return None
        try:
            return RunRecord.from_dict(read_json(path, "run record"))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path} is not a run record ({err}); retrain with overwrite=True.") from err

    def history(self) -> History | None:
        """The stored history, or None when there is none."""
        return load_history(self.folder, self.model_name)

    def start(self, record: RunRecord) -> None:
        """Mark the run as running, with an empty history and no checkpoint yet."""
        commit(self.folder, self.model_name, {"model": None, "config": None,
                                              "history": _json_bytes(History(self.model_name).to_dict()),
                                              "record": _json_bytes(record.to_dict())})

    def save_epoch(self, history: History, best: BaseNetwork | None = None) -> None:
        """Store the history so far, and ``best`` as the checkpoint when this epoch is the best yet."""
        files = {"history": _json_bytes(history.to_dict())}
        commit(self.folder, self.model_name, files if best is None else {**network_files(best), **files})

    def finish(self, history: History, record: RunRecord) -> None:
        """Store the final history and the record of how the run ended."""
        commit(self.folder, self.model_name, {"history": _json_bytes(history.to_dict()),
                                              "record": _json_bytes(record.to_dict())})


def load_history(model_path: str | Path, model_name: str) -> History | None:
    """The history stored next to a checkpoint, or None when there is none; a damaged one is named."""
    recover(model_path, model_name)
    path = checkpoint_file(model_path, model_name, "history")
    if not path.is_file():
        return None
    try:
        return History.from_dict(read_json(path, "training history"))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a training history: {err}.") from err
