"""Training and evaluation with the source's protocol: SGD, early stopping, best checkpoint kept.

``fit`` is the epoch loop with early stopping. ``train_model`` wraps it: it reuses a finished run
with the same record, or trains from the start, turns Ctrl-C and a non-finite loss into a clean
stop, and tests the best epoch.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from actlab import settings
from actlab.checkpoints import CheckpointError, CheckpointMismatchError, load_model
from actlab.data import FashionMNISTData, Split, load_fashion_mnist
from actlab.network import BaseNetwork, initialize
from actlab.runs import DIVERGED, FINISHED, INTERRUPTED, DataSpec, History, Protocol, RunFiles, RunRecord

EVAL_BATCH_SIZE = 4096

Monitor = Callable[[nn.Module], dict]
"""Called on the network at initialization and after every epoch; returns JSON data to keep in the history."""


@torch.inference_mode()
def evaluate(net: nn.Module, split: Split, batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``net`` on a split, in large batches without autograd."""
    net.eval()
    loss_sum = torch.zeros((), device=split.labels.device)
    correct = torch.zeros((), device=split.labels.device, dtype=torch.long)
    for imgs, labels in split.loader(batch_size):
        preds = net(imgs)
        loss_sum += F.cross_entropy(preds, labels, reduction="sum")
        correct += (preds.argmax(dim=-1) == labels).sum()
    return loss_sum.item() / len(split), correct.item() / len(split)


@torch.inference_mode()
def test_model(net: nn.Module, data_loader: Iterable) -> float:
    """Accuracy of ``net`` over every batch of ``data_loader`` (the source's function)."""
    net.eval()
    device = next(net.parameters()).device
    true_preds, count = 0, 0
    for imgs, labels in data_loader:
        imgs, labels = imgs.to(device), labels.to(device)
        true_preds += (net(imgs).argmax(dim=-1) == labels).sum().item()
        count += labels.shape[0]
    return true_preds / count


def make_optimizer(net: nn.Module, optimizer: str, lr: float, momentum: float | None) -> torch.optim.Optimizer:
    """SGD with momentum (the source's choice) or Adam, as one fused update where the device offers it."""
    fused = next(net.parameters()).device.type in ("cpu", "cuda")
    if optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, fused=fused)
    if optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr, fused=fused)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', not {optimizer!r}")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def train_epoch(net: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """One pass over ``loader``: returns the mean training loss and accuracy."""
    net.train()
    loss_sum, correct, count = 0.0, 0, 0
    for batch, (imgs, labels) in enumerate(loader, start=1):
        optimizer.zero_grad(set_to_none=True)
        preds = net(imgs)
        loss = F.cross_entropy(preds, labels)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"the loss became {loss.item()} at batch {batch}")
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(labels)
        correct += (preds.argmax(dim=-1) == labels).sum()
        count += len(labels)
    return float(loss_sum) / count, int(correct) / count


def observe(monitor: Monitor | None, net: nn.Module, history: History) -> None:
    """Call ``monitor`` on ``net`` in eval mode without autograd, and keep what it returns in ``history``."""
    if monitor is None:
        return
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            values = monitor(net)
    finally:
        net.train(was_training)
    try:
        if not isinstance(values, dict):
            raise TypeError(f"it returned a {type(values).__name__}")
        history.monitor.append(json.loads(json.dumps(values, allow_nan=False)))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"A monitor must return a dict of JSON data (strings, finite numbers, lists, dicts, None): {err}"
        ) from err


def fit(
    net: nn.Module,
    data: FashionMNISTData,
    protocol: Protocol,
    history: History,
    files: RunFiles,
    seed: int = 42,
    monitor: Monitor | None = None,
    progress: bool = True,
) -> History:
    """Train ``net`` epoch by epoch, keep its best epoch, and stop after ``patience`` epochs without progress."""
    initialize(net, protocol.init)
    optimizer = make_optimizer(net, protocol.optimizer, protocol.lr, protocol.momentum)
    loader = data.train.loader(protocol.batch_size, shuffle=True, drop_last=True, seed=seed)
    observe(monitor, net, history)
    start = time.perf_counter()
    epochs = range(1, protocol.max_epochs + 1)
    with tqdm(epochs, desc=history.model_name, unit="epoch", disable=not progress) as bar:
        for epoch in bar:
            train_loss, train_acc = train_epoch(net, loader, optimizer)
            val_loss, val_acc = evaluate(net, data.val)
            history.add_epoch(train_loss, train_acc, val_loss, val_acc, time.perf_counter() - start)
            observe(monitor, net, history)
            improved = history.best_epoch == 0 or val_acc > history.best_val_acc
            if improved:
                history.best_epoch = epoch
            files.save_epoch(history, best=net if improved else None)
            bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.1%}", best=history.best_epoch)
            if epoch - history.best_epoch >= protocol.patience:
                history.stop_reason = f"early stopping: no better validation accuracy for {protocol.patience} epochs"
                return history
    history.stop_reason = "max_epochs"
    return history


def check_reusable(files: RunFiles, request: RunRecord) -> RunRecord | None:
    """The stored record when it matches ``request``; None when there is no run yet.

    A run with other settings, a checkpoint without a record, or a finished run whose history is
    missing or damaged raises a ``CheckpointError`` that names the file and says how to train again.
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
    if stored.status == FINISHED and files.history() is None:
        raise CheckpointError(f"{files.path('history')} is missing. {retrain}")
    return stored


def _reuse(net: nn.Module, files: RunFiles, data: FashionMNISTData, monitor: Monitor | None) -> History:
    load_model(files.folder, files.model_name, net=net)
    history = files.history()
    print(f"{files.model_name}: finished run found, skipping training (overwrite=True retrains).")
    if monitor is not None and not history.monitor:
        print(f"{files.model_name}: its history holds no monitor values; overwrite=True retrains to record them.")
    history.test_acc = evaluate(net, data.test)[1]
    return history


def _train_until_stopped(net: nn.Module, data: FashionMNISTData, request: RunRecord, history: History,
                         files: RunFiles, monitor: Monitor | None, progress: bool) -> str:
    """Run ``fit``; a Ctrl-C or a non-finite loss stops it cleanly. Returns how the run ended."""
    try:
        fit(net, data, request.protocol, history, files, request.seed, monitor, progress)
        return FINISHED
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        print(f"{files.model_name}: interrupted after {history.epochs} epoch(s); the best checkpoint is kept.")
        return INTERRUPTED
    except NonFiniteLossError as err:
        history.stop_reason = f"non-finite loss in epoch {history.epochs + 1}"
        warnings.warn(
            f"{files.model_name}: training stopped, {err} of epoch {history.epochs + 1}. "
            "Try a smaller learning rate; the best checkpoint so far is kept.",
            RuntimeWarning,
            stacklevel=4,
        )
        return DIVERGED


def train_run(
    net: BaseNetwork,
    model_name: str,
    protocol: Protocol,
    *,
    seed: int = 42,
    model_path: str | Path | None = None,
    data: FashionMNISTData | None = None,
    overwrite: bool = False,
    monitor: Monitor | None = None,
    progress: bool = True,
) -> tuple[History, RunRecord]:
    """Train ``net`` (or reuse the finished run with the same record) and test its best epoch.

    Returns the history and the record, whose ``status`` says how the run ended. An unfinished
    stored run is trained again from the start, never resumed.
    """
    files = RunFiles(Path(model_path or settings.checkpoint_path()), model_name)
    data = data or load_fashion_mnist()
    if protocol.batch_size > len(data.train):
        raise ValueError(f"batch_size {protocol.batch_size} exceeds the {len(data.train)} training images")
    request = RunRecord(net.config, protocol, settings.check_seed(seed), DataSpec.of(data))
    stored = None if overwrite else check_reusable(files, request)
    if stored is not None and stored.status == FINISHED:
        return _reuse(net, files, data, monitor), stored
    if stored is not None:
        print(f"{model_name}: the stored run did not finish ({stored.status}); training it again from the start.")
    history = History(model_name)
    files.start(request)
    status = _train_until_stopped(net, data, request, history, files, monitor, progress)
    if history.best_epoch:
        load_model(files.folder, model_name, net=net)
        history.test_acc = evaluate(net, data.test)[1]
    record = replace(request, status=status)
    files.finish(history, record)
    return history, record


def train_model(
    net: BaseNetwork,
    model_name: str,
    max_epochs: int = 50,
    patience: int = 7,
    batch_size: int = 256,
    overwrite: bool = False,
    *,
    model_path: str | Path | None = None,
    data: FashionMNISTData | None = None,
    optimizer: str = "sgd",
    lr: float = 1e-2,
    momentum: float | None = None,
    seed: int = 42,
    init: str = "default",
    monitor: Monitor | None = None,
    progress: bool = True,
) -> History:
    """Train ``net`` with early stopping on validation accuracy; keep, reload and test the best epoch.

    Reuses ``<model_path>/<model_name>`` when its record shows a finished run with the same network,
    protocol, seed and data; refuses one with other settings; retrains an unfinished one. ``overwrite``
    always retrains. Ctrl-C stops cleanly, and a NaN or infinite loss stops the run with a warning;
    either way the best checkpoint so far is kept and the history so far is returned.
    ``monitor(net)``, if given, is called at initialization and after every epoch
    (in eval mode, without autograd); its results are kept in ``history.monitor``.
    """
    protocol = Protocol(max_epochs=max_epochs, patience=patience, batch_size=batch_size, optimizer=optimizer,
                        lr=lr, momentum=momentum, init=init)
    history, _ = train_run(net, model_name, protocol, seed=seed, model_path=model_path, data=data,
                           overwrite=overwrite, monitor=monitor, progress=progress)
    return history
