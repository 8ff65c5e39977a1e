"""Training and evaluation: the source's protocol (SGD, early stopping, the best epoch kept), for any network.

``fit`` trains, and only trains: it reads and writes no file and draws no weights. Whatever should
happen after an epoch (saving a checkpoint, say) is passed to it as ``on_epoch``.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from actlab import settings
from actlab.checks import finite_number, positive_integer
from actlab.data import CLASS_NAMES, FashionMNISTData, Split
from actlab.hooks import device_of, evaluation

EVAL_BATCH_SIZE = 4096
MAX_EPOCHS = 10_000
"""The most epochs (and the longest patience) a protocol may ask for."""
MAX_BATCH_SIZE = 1_000_000
OPTIMIZERS = ("sgd", "adam")
SGD_MOMENTUM = 0.9
"""The momentum of the source's SGD, used when none is given."""

EARLY_STOPPING = "early stopping: no better validation accuracy for {} epochs"
INTERRUPTED = "interrupted"
DIVERGED = "diverged"
"""How ``History.stop_reason`` reads when early stopping, Ctrl-C or a non-finite loss ended the training."""


@dataclass(frozen=True)
class Protocol:
    """How a network is trained: optimizer and its settings, batch size, at most how many epochs, patience.

    The defaults are the source's. ``momentum`` applies to SGD only: None there means the source's
    0.9, and Adam takes none.
    """

    max_epochs: int = 50
    patience: int = 7
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 1e-2
    momentum: float | None = None

    def __post_init__(self) -> None:
        for name, most in (("max_epochs", MAX_EPOCHS), ("patience", MAX_EPOCHS), ("batch_size", MAX_BATCH_SIZE)):
            positive_integer(name, getattr(self, name), most)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'sgd' or 'adam', not {self.optimizer!r}")
        if not finite_number("lr", self.lr) > 0:
            raise ValueError(f"lr must be positive, not {self.lr!r}")
        object.__setattr__(self, "lr", float(self.lr))
        if self.optimizer == "adam" and self.momentum is not None:
            raise ValueError("momentum applies to SGD only; Adam takes none")
        if self.optimizer == "sgd":
            momentum = SGD_MOMENTUM if self.momentum is None else finite_number("momentum", self.momentum)
            if not 0 <= momentum < 1:
                raise ValueError(f"momentum must lie in [0, 1), not {momentum!r}")
            object.__setattr__(self, "momentum", momentum)

    def to_dict(self) -> dict:
        """The protocol as plain JSON values."""
        return asdict(self)


FULL_PROTOCOL = Protocol()
"""The source's protocol: SGD with lr 0.01 and momentum 0.9, batches of 256, at most 50 epochs, patience 7."""
QUICK_PROTOCOL = replace(FULL_PROTOCOL, max_epochs=3)
"""Quick mode's protocol: the source's, cut to 3 epochs."""


def changed(protocol: Protocol, **changes: object) -> Protocol:
    """``protocol`` with some settings changed, checked like any protocol.

    A change of optimizer resets the momentum to the new optimizer's default unless one is given.
    """
    names = [f.name for f in fields(Protocol)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise ValueError(f"unknown protocol setting(s) {', '.join(unknown)}; the settings are {', '.join(names)}")
    if changes.get("optimizer", protocol.optimizer) != protocol.optimizer:
        changes.setdefault("momentum", None)
    return replace(protocol, **changes)  # type: ignore[arg-type]


def default_protocol(**changes: object) -> Protocol:
    """The protocol of the current mode (``QUICK_PROTOCOL`` or ``FULL_PROTOCOL``), with ``changes`` applied."""
    return changed(QUICK_PROTOCOL if settings.quick_mode() else FULL_PROTOCOL, **changes)


@dataclass
class History:
    """What happened during one training run, epoch by epoch (accuracies as fractions).

    ``monitor`` holds what a monitor returned at initialization (epoch 0) and after each epoch.
    """

    model_name: str = ""
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
        """How many epochs ran to the end."""
        return len(self.val_acc)

    @property
    def best_val_acc(self) -> float | None:
        """The validation accuracy of the best epoch, None before the first."""
        return self.val_acc[self.best_epoch - 1] if self.best_epoch else None

    def first_epoch_above(self, level: float) -> int | None:
        """The first epoch whose validation accuracy exceeds ``level`` (a fraction), or None."""
        return next((epoch for epoch, acc in enumerate(self.val_acc, start=1) if acc > level), None)

    def add_epoch(self, train_loss: float, train_acc: float, val_loss: float, val_acc: float, wall_time: float) -> None:
        """Append one epoch's losses and accuracies; ``wall_time`` counts from the start of training."""
        self.train_loss.append(train_loss)
        self.train_acc.append(train_acc)
        self.val_loss.append(val_loss)
        self.val_acc.append(val_acc)
        self.wall_time = wall_time

    def to_dict(self) -> dict:
        """The history as plain JSON values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: object) -> History:
        """The history that ``to_dict`` gave ``values``."""
        known = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or not {"model_name"} <= set(values) <= known:
            raise ValueError(f"a history holds model_name and some of {sorted(known - {'model_name'})}")
        return cls(**values)


Monitor = Callable[[nn.Module], dict]
"""Called on the network at initialization and after every epoch; returns JSON data to keep in the history."""
EpochCallback = Callable[[nn.Module, History, bool], None]
"""Called after every epoch with the network, the history so far, and whether this epoch is the best yet."""


def check_scores(net: object, split: object, classes: int) -> None:
    """Refuse, in one sentence, a ``net`` that does not give ``classes`` scores per image of ``split``.

    Also refused: a ``net`` that is no module, a ``split`` that is no ``Split`` or is empty, and a
    network on another device than the split.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch nn.Module, not {type(net).__name__}")
    if not isinstance(split, Split):
        raise TypeError(f"the images must come as a Split such as data.test, not {type(split).__name__}")
    if len(split) == 0:
        raise ValueError("the split holds no image")
    images = split.images[:2]
    if device_of(net) != images.device:
        raise ValueError(f"net is on {device_of(net)} but the images on {images.device}; move one with .to()")
    with torch.no_grad(), evaluation(net):
        scores = net(images)
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (len(images), classes):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"net must give {classes} class scores per image: {len(images)} images gave {shape}, not "
                         f"{(len(images), classes)}")


@torch.inference_mode()
def evaluate(net: nn.Module, split: Split, batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``net`` on a split, in large batches without autograd."""
    check_scores(net, split, len(CLASS_NAMES))
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


def make_optimizer(net: nn.Module, protocol: Protocol) -> torch.optim.Optimizer:
    """SGD with momentum (the source's choice) or Adam, as one fused update where the device offers it."""
    fused = next(net.parameters()).device.type in ("cpu", "cuda")
    if protocol.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=protocol.lr, fused=fused)
    return torch.optim.SGD(net.parameters(), lr=protocol.lr, momentum=protocol.momentum or 0.0, fused=fused)


def progress_bar(total: int, desc: str, unit: str = "batch", disable: bool = False) -> tqdm:
    """A text progress bar on stdout (where a notebook shows it as output, not as an error), ``total`` steps long."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stdout, disable=disable)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def train_epoch(net: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                on_batch: Callable[[], object] | None = None) -> tuple[float, float]:
    """One pass over ``loader``, calling ``on_batch()`` after each step: returns the mean training loss and accuracy."""
    net.train()
    loss_sum: float | torch.Tensor = 0.0
    correct: int | torch.Tensor = 0
    count = 0
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
        if on_batch is not None:
            on_batch()
    return float(loss_sum) / count, int(correct) / count


def observe(monitor: Monitor | None, net: nn.Module, history: History) -> None:
    """Call ``monitor`` on ``net`` in eval mode without autograd, and keep what it returns in ``history``."""
    if monitor is None:
        return
    with torch.no_grad(), evaluation(net):
        values = monitor(net)
    try:
        if not isinstance(values, dict):
            raise TypeError(f"it returned a {type(values).__name__}")
        history.monitor.append(json.loads(json.dumps(values, allow_nan=False)))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"A monitor must return a dict of JSON data (strings, finite numbers, lists, dicts, None): {err}"
        ) from err


def check_fit_arguments(net: object, data: object, protocol: object) -> None:
    """Refuse, in one sentence each, what ``fit(net, data, protocol)`` cannot train."""
    if not isinstance(data, FashionMNISTData):
        raise TypeError(f"fit(net, data, protocol): data must be what load_fashion_mnist() gives, not "
                        f"{type(data).__name__}")
    if not isinstance(protocol, Protocol):
        raise TypeError(f"fit(net, data, protocol): protocol must be a Protocol (training.default_protocol()), not "
                        f"{type(protocol).__name__}")
    if len(data.train) < protocol.batch_size:
        raise ValueError(f"the training split has {len(data.train):,} images, fewer than one batch of "
                         f"{protocol.batch_size}")
    check_scores(net, data.train, len(data.class_names))


def fit(net: nn.Module, data: FashionMNISTData, protocol: Protocol, *, seed: int = 42, name: str = "training",
        monitor: Monitor | None = None, on_epoch: EpochCallback | None = None, progress: bool = True) -> History:
    """Train ``net`` until ``patience`` epochs bring no better validation accuracy; keep the best epoch's weights.

    Ctrl-C or a non-finite loss ends the training early; ``history.stop_reason`` says why it ended.
    """
    check_fit_arguments(net, data, protocol)
    optimizer = make_optimizer(net, protocol)
    loader = data.train.loader(protocol.batch_size, shuffle=True, drop_last=True, seed=seed)
    history, best_weights, start = History(name, stop_reason="max_epochs"), None, time.perf_counter()
    try:
        observe(monitor, net, history)
        with progress_bar(protocol.max_epochs * len(loader), name, disable=not progress) as bar:
            for epoch in range(1, protocol.max_epochs + 1):
                bar.set_description(f"{name}, epoch {epoch}/{protocol.max_epochs}")
                train_loss, train_acc = train_epoch(net, loader, optimizer, on_batch=bar.update)
                val_loss, val_acc = evaluate(net, data.val)
                if not math.isfinite(val_loss):
                    raise NonFiniteLossError(f"the validation loss became {val_loss}")
                history.add_epoch(train_loss, train_acc, val_loss, val_acc, time.perf_counter() - start)
                observe(monitor, net, history)
                improved = epoch == 1 or val_acc > history.val_acc[history.best_epoch - 1]
                if improved:
                    history.best_epoch, best_weights = epoch, copy.deepcopy(net.state_dict())
                if on_epoch is not None:
                    on_epoch(net, history, improved)
                bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.1%}", best=history.best_epoch)
                if epoch - history.best_epoch >= protocol.patience:
                    history.stop_reason = EARLY_STOPPING.format(protocol.patience)
                    bar.total = bar.n
                    break
    except KeyboardInterrupt:
        history.stop_reason = INTERRUPTED
    except NonFiniteLossError as err:
        history.stop_reason = f"{DIVERGED} in epoch {history.epochs + 1}: {err}"
    if best_weights is not None:
        net.load_state_dict(best_weights)
    return history
