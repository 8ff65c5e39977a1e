"""Training runs that are kept: reuse a finished run with the same record, or train one from the start.

``train_model`` (the source's name) wraps the lesson's ``fit``: it builds the network afresh from its
config and seed, saves the best epoch through ``fit``'s ``on_epoch``, writes the run's record, and
tests the best epoch.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

from torch import nn

from actlab import settings
from actlab.checkpoints import CheckpointError, CheckpointMismatchError, load_model, read_checkpoint
from actlab.data import FashionMNISTData, load_fashion_mnist
from actlab.lab.runs import DIVERGED, FINISHED, INTERRUPTED, DataSpec, RunFiles, RunRecord, folder_lock
from actlab.network import BaseNetwork, build_network, initialize
from actlab.support import threads
from actlab.training import History, Monitor, Protocol, changed, default_protocol, evaluate, fit


def check_reusable(files: RunFiles, request: RunRecord) -> RunRecord | None:
    """The stored record when it matches ``request``; None when there is no run yet.

    A run with other settings, a checkpoint without a record, or a finished run whose history or
    checkpoint is missing, damaged or of another network raises a ``CheckpointError`` that names the
    file and says how to train again. Reads only.
    """
    stored = files.record()
    retrain = "Train it again with overwrite=True (--overwrite on the command line), or use another name or folder."
    if stored is None:
        if files.exists():
            raise CheckpointError(
                f"{files.path('model')} has no record of how it was trained ({files.path('record').name}). {retrain}"
            )
        return None
    changed = stored.differences(request)
    if changed:
        raise CheckpointMismatchError(
            f"{files.path('record')} describes a run with other settings than those asked for:\n  "
            + "\n  ".join(changed) + f"\n{retrain}"
        )
    if stored.status == FINISHED:
        history = files.history()
        if history is None:
            raise CheckpointError(f"{files.path('history')} is missing. {retrain}")
        if history.best_epoch:
            try:
                read_checkpoint(files.folder, files.model_name)
            except CheckpointError as err:
                raise CheckpointError(f"The finished run {files.model_name} cannot be reused: {err} {retrain}") from err
    return stored


REUSE_TOLERANCE = 0.002
"""How far a reused run's re-measured test accuracy may lie from its record (20 of 10,000 images): a
checkpoint made on another processor may classify a few images differently, an edited record far more."""


def _reuse(net: nn.Module, files: RunFiles, data: FashionMNISTData, monitor: Monitor | None) -> History:
    load_model(files.folder, files.model_name, net=net)
    history = files.history()
    assert history is not None  # check_reusable made sure of it
    measured = evaluate(net, data.test)[1]
    if history.test_acc is not None and abs(measured - history.test_acc) > REUSE_TOLERANCE:
        raise CheckpointError(
            f"{files.path('history')} records a test accuracy of {history.test_acc:.2%}, but its checkpoint measures "
            f"{measured:.2%}: the record and the checkpoint disagree, so the run is not reused. Train it again with "
            "overwrite=True (--overwrite on the command line)."
        )
    print(f"{files.model_name}: finished run found, skipping training (overwrite=True retrains).")
    if monitor is not None and not history.monitor:
        print(f"{files.model_name}: its history holds no monitor values; overwrite=True retrains to record them.")
    history.test_acc = measured
    return history


def fresh_weights(net: BaseNetwork, init: str, seed: int) -> None:
    """Give ``net`` the weights that a network built from its config right after ``set_seed(seed)`` starts with."""
    settings.set_seed(seed)
    start = initialize(build_network(net.config), init)
    net.load_state_dict(start.state_dict())


def _status(history: History) -> str:
    for status in (INTERRUPTED, DIVERGED):
        if history.stop_reason.startswith(status):
            return status
    return FINISHED


def train_run(net: BaseNetwork, model_name: str, protocol: Protocol, *, init: str = "default", seed: int = 42,
              model_path: str | Path | None = None, data: FashionMNISTData | None = None, overwrite: bool = False,
              monitor: Monitor | None = None, progress: bool = True) -> tuple[History, RunRecord]:
    """Train ``net`` (or reuse the finished run with the same record) and test its best epoch.

    Returns the history and the record, whose ``status`` says how the run ended. A run is always
    trained from the start: ``net`` gets the weights of its config drawn from ``seed``, then ``init``.
    """
    if not isinstance(net, BaseNetwork):
        raise TypeError(f"train_model keeps runs of a BaseNetwork, which it rebuilds from net.config; a "
                        f"{type(net).__name__} trains with fit(net, data, protocol) instead")
    files = RunFiles(Path(model_path or settings.checkpoint_path()), model_name)
    data = data or load_fashion_mnist()
    if protocol.batch_size > len(data.train):
        raise ValueError(f"batch_size {protocol.batch_size} exceeds the {len(data.train)} training images")
    request = RunRecord(net.config, protocol, init, settings.check_seed(seed), DataSpec.of(data))
    stored = None if overwrite else check_reusable(files, request)
    if stored is not None and stored.status == FINISHED:
        return _reuse(net, files, data, monitor), stored
    with folder_lock(files.folder):
        return _train(net, files, request, data, overwrite, monitor, progress)


def _train(net: BaseNetwork, files: RunFiles, request: RunRecord, data: FashionMNISTData, overwrite: bool,
           monitor: Monitor | None, progress: bool) -> tuple[History, RunRecord]:
    """Train the run of ``request`` from the start into ``files``; the caller holds the folder's lock."""
    model_name, protocol, seed = files.model_name, request.protocol, request.seed
    stored = None if overwrite else check_reusable(files, request)
    if stored is not None and stored.status == FINISHED:  # another process finished it meanwhile
        return _reuse(net, files, data, monitor), stored
    if stored is not None:
        print(f"{model_name}: the stored run did not finish ({stored.status}); training it again from the start.")
    fresh_weights(net, request.init, seed)
    files.start(request)

    def save_best(_: nn.Module, history: History, improved: bool) -> None:
        files.save_epoch(history, best=net if improved else None)

    with threads.tally() as counts:
        try:
            history = fit(net, data, protocol, seed=seed, name=model_name, monitor=monitor, on_epoch=save_best,
                          progress=progress)
        except KeyboardInterrupt:  # arrived before fit's own loop began
            history = History(model_name, stop_reason=INTERRUPTED)
    status = _status(history)
    if status == INTERRUPTED:
        print(f"{model_name}: interrupted after {history.epochs} epoch(s); the best checkpoint is kept.")
    elif status == DIVERGED:
        warnings.warn(f"{model_name}: training stopped, {history.stop_reason}. Try a smaller learning rate; the "
                      "best checkpoint so far is kept.", RuntimeWarning, stacklevel=4)
    if history.best_epoch:
        history.test_acc = evaluate(net, data.test)[1]
    record = replace(request, status=status, threads=tuple(sorted(counts)) if data.train.labels.is_cpu else ())
    files.finish(history, record)
    return history, record


def train_model(net: BaseNetwork, model_name: str, protocol: Protocol | None = None, overwrite: bool = False, *,
                init: str = "default", seed: int = 42, model_path: str | Path | None = None,
                data: FashionMNISTData | None = None, monitor: Monitor | None = None, progress: bool = True,
                **changes: object) -> History:
    """Train ``net`` with early stopping on validation accuracy; keep, reload and test the best epoch.

    ``protocol`` defaults to the current mode's (``default_protocol``); keyword ``changes`` such as
    ``max_epochs=10`` or ``lr=0.1`` change single settings of it. Reuses ``<model_path>/<model_name>``
    when its record shows a finished run with the same network, protocol, initialization, seed and data;
    refuses one with other settings; retrains an unfinished one from the start. ``overwrite`` always
    retrains. Ctrl-C or a non-finite loss stops the run; the best checkpoint so far is kept and the
    history so far returned. ``monitor(net)``, if given, is called at initialization and after every
    epoch; its results are kept in ``history.monitor``.
    """
    protocol = default_protocol(**changes) if protocol is None else changed(protocol, **changes)
    history, _ = train_run(net, model_name, protocol, init=init, seed=seed, model_path=model_path, data=data,
                           overwrite=overwrite, monitor=monitor, progress=progress)
    return history
