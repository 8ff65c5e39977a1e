"""The run store: the record of what produced a checkpoint, and the files of a run.

Next to the checkpoint ``<name>.tar`` / ``<name>.config``, a run keeps ``<name>.history.json`` (its
curves) and ``<name>.run.json`` (its ``RunRecord``: network, protocol, seed, data, and whether it
finished). ``RunFiles`` writes them, always together (see ``actlab.checkpoints.commit``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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
from actlab.training import DIVERGED, INTERRUPTED, History, Protocol

RUNNING, FINISHED = "running", "finished"
"""How a run stands: still running (or killed), finished (maximum epochs or early stopping),
stopped by Ctrl-C, or stopped by a non-finite loss. Only a finished run is ever reused."""

RECORD_FORMAT = 1


@dataclass(frozen=True)
class DataSpec:
    """Which data a run saw: ``"full"``, ``"quick"`` or ``"custom"``, and the size of each split."""

    subset: str
    train_size: int
    val_size: int
    test_size: int

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

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, not {self.init!r}")

    def request(self) -> dict:
        """Everything that must match for this run to stand for another request: all but the status."""
        return {"network": self.network, "protocol": {**self.protocol.to_dict(), "init": self.init},
                "seed": self.seed, "data": asdict(self.data)}

    def differences(self, requested: RunRecord) -> list[str]:
        """``key: stored vs requested`` for each setting in which ``requested`` differs from this record."""
        return differences(self.request(), requested.request())

    def to_dict(self) -> dict:
        """The record as plain JSON values, as ``<name>.run.json`` holds it."""
        return {"format": RECORD_FORMAT, **self.request(), "status": self.status}

    @classmethod
    def from_dict(cls, values: object) -> RunRecord:
        """The record that ``to_dict`` gave ``values``; a ``ValueError`` for anything else."""
        if not isinstance(values, dict) or values.get("format") != RECORD_FORMAT:
            raise ValueError(f"expected a run record of format {RECORD_FORMAT}")
        if values["status"] not in (RUNNING, FINISHED, INTERRUPTED, DIVERGED):
            raise ValueError(f"unknown status {values['status']!r}")
        protocol = dict(values["protocol"])
        init = protocol.pop("init")
        return cls(values["network"], Protocol(**protocol), init, values["seed"], DataSpec(**values["data"]),
                   values["status"])


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
        """The path of one file of the run, by kind (see ``actlab.checkpoints.SUFFIXES``)."""
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
