"""Training and evaluation with the source's protocol: SGD, early stopping, best checkpoint kept."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from actlab import settings
from actlab.checkpoints import checkpoint_exists, load_model, save_model, write_atomic
from actlab.data import FashionMNISTData, Split, load_fashion_mnist

EVAL_BATCH_SIZE = 4096


@dataclass
class History:
    """What happened during one training run, epoch by epoch (accuracies as fractions)."""

    model_name: str
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = ""
    wall_time: float = 0.0
    test_acc: float | None = None

    @property
    def epochs(self) -> int:
        return len(self.val_acc)

    @property
    def best_val_acc(self) -> float | None:
        return self.val_acc[self.best_epoch - 1] if self.best_epoch else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> History:
        return cls(**values)


def _history_file(model_path: Path, model_name: str) -> Path:
    return Path(model_path) / f"{model_name}.history.json"


def save_history(history: History, model_path: Path) -> None:
    """Write the history next to its checkpoint, atomically."""
    text = json.dumps(history.to_dict(), indent=1).encode()
    write_atomic(_history_file(model_path, history.model_name), lambda f: f.write(text))


def load_history(model_path: Path, model_name: str) -> History | None:
    """The history stored next to a checkpoint, or None when there is none."""
    path = _history_file(model_path, model_name)
    return History.from_dict(json.loads(path.read_text())) if path.is_file() else None


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


def make_optimizer(net: nn.Module, optimizer: str, lr: float, momentum: float) -> torch.optim.Optimizer:
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


def train_model(
    net: nn.Module,
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
    momentum: float = 0.9,
    seed: int = 42,
    progress: bool = True,
) -> History:
    """Train ``net`` with early stopping on validation accuracy; keep, reload and test the best epoch.

    Skips training when ``<model_path>/<model_name>`` exists, unless ``overwrite``. Ctrl-C stops
    cleanly, and a NaN or infinite loss stops the run with a warning; either way the best
    checkpoint so far is kept and the history so far is returned.
    """
    model_path = Path(model_path or settings.checkpoint_path())
    data = data or load_fashion_mnist()
    if checkpoint_exists(model_path, model_name) and not overwrite:
        print(f"{model_name}: checkpoint found, skipping training (overwrite=True retrains).")
        load_model(model_path, model_name, net=net)
        history = load_history(model_path, model_name) or History(model_name, stop_reason="loaded")
        history.test_acc = evaluate(net, data.test)[1]
        return history

    opt = make_optimizer(net, optimizer, lr, momentum)
    loader = data.train.loader(batch_size, shuffle=True, drop_last=True, seed=seed)
    history = History(model_name, stop_reason="running")
    start = time.perf_counter()
    bar = tqdm(range(1, max_epochs + 1), desc=model_name, unit="epoch", disable=not progress)
    try:
        for epoch in bar:
            train_loss, train_acc = train_epoch(net, loader, opt)
            val_loss, val_acc = evaluate(net, data.val)
            history.train_loss.append(train_loss)
            history.train_acc.append(train_acc)
            history.val_loss.append(val_loss)
            history.val_acc.append(val_acc)
            if history.best_epoch == 0 or val_acc > history.best_val_acc:
                save_model(net, model_path, model_name)
                history.best_epoch = epoch
            best = history.best_epoch
            bar.set_postfix(loss=f"{train_loss:.3f}", train_acc=f"{train_acc:.1%}", val_acc=f"{val_acc:.1%}", best=best)
            history.wall_time = time.perf_counter() - start
            save_history(history, model_path)
            if epoch - history.best_epoch >= patience:
                history.stop_reason = f"early stopping: no better validation accuracy for {patience} epochs"
                break
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        print(f"{model_name}: interrupted after {history.epochs} epoch(s); the best checkpoint is kept.")
    except NonFiniteLossError as err:
        history.stop_reason = f"non-finite loss in epoch {history.epochs + 1}"
        warnings.warn(
            f"{model_name}: training stopped, {err} of epoch {history.epochs + 1}. "
            "Try a smaller learning rate; the best checkpoint so far is kept.",
            RuntimeWarning,
            stacklevel=2,
        )
    finally:
        bar.close()
    if history.stop_reason == "running":
        history.stop_reason = "max_epochs"
    history.wall_time = time.perf_counter() - start
    if history.best_epoch:
        load_model(model_path, model_name, net=net)
        history.test_acc = evaluate(net, data.test)[1]
    save_history(history, model_path)
    return history
