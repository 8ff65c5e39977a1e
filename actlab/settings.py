"""Where things live, which device runs them, seeding, and quick mode."""

from __future__ import annotations

import os
import random
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SAVED_MODELS = REPO_ROOT / "saved_models"
"""Reference checkpoints and results of full-scale runs, shipped with the repository."""

QUICK_ENV = "ACTLAB_QUICK"
DATA_ENV = "ACTLAB_DATA"


def quick_mode() -> bool:
    """True when ``ACTLAB_QUICK`` asks for the shrunken, test-sized experiment."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def data_dir() -> Path:
    """The folder that holds FashionMNIST: ``$ACTLAB_DATA``, or ``data/`` at the repository root."""
    return Path(os.environ.get(DATA_ENV) or REPO_ROOT / "data").expanduser()


@cache
def _quick_checkpoints() -> Path:
    return Path(tempfile.mkdtemp(prefix="actlab-quick-"))


def checkpoint_path() -> Path:
    """Where notebooks train into: the shipped references, or a scratch folder in quick mode.

    Quick mode never writes into ``saved_models/``, so the reference checkpoints stay intact.
    """
    return _quick_checkpoints() if quick_mode() else SAVED_MODELS


def get_device() -> torch.device:
    """CUDA when present, then Apple's MPS, otherwise the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
