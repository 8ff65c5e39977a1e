"""Where things live, which device runs them, seeding, and quick mode."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SAVED_MODELS = REPO_ROOT / "saved_models"
"""Reference checkpoints and results of full-scale runs, shipped with the repository."""

QUICK_ENV = "ACTLAB_QUICK"
PRESENT_ENV = "ACTLAB_PRESENT"
DATA_ENV = "ACTLAB_DATA"
CACHE_ENV = "ACTLAB_CACHE"
QUICK_ON = ("1", "on", "yes", "true")
QUICK_OFF = ("", "0", "off", "no", "false")

MAX_SEED = 2**32 - 1
"""The largest seed ``set_seed`` takes: NumPy's legacy generator accepts 0 to 2**32 - 1 (torch's, 0 to 2**64 - 1)."""


def switched_on(name: str) -> bool:
    """Whether the environment variable ``name`` is on.

    ``1``, ``on``, ``yes`` and ``true`` turn it on; ``0``, ``off``, ``no``, ``false`` or nothing leave it off;
    anything else is refused with a ``ValueError`` that names the variable.
    """
    value = os.environ.get(name, "").strip().lower()
    if value in QUICK_ON:
        return True
    if value in QUICK_OFF:
        return False
    raise ValueError(
        f"{name}={os.environ[name]!r} is neither on ({', '.join(QUICK_ON)}) "
        f"nor off ({', '.join(repr(v) for v in QUICK_OFF)})."
    )


def quick_mode() -> bool:
    """True when ``ACTLAB_QUICK`` asks for the shrunken, test-sized experiment."""
    return switched_on(QUICK_ENV)


def data_dir() -> Path:
    """The folder that holds FashionMNIST: ``$ACTLAB_DATA``, or ``data/`` at the repository root."""
    return Path(os.environ.get(DATA_ENV) or REPO_ROOT / "data").expanduser()


def quick_checkpoints() -> Path:
    """Quick mode's checkpoint folder, one per user: ``$ACTLAB_CACHE``, else ``$XDG_CACHE_HOME/actlab/quick``.

    ``$XDG_CACHE_HOME`` defaults to ``~/.cache``. Runs there are reused like any others: only a
    finished run with the same record.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache_home / "actlab" / "quick"


def checkpoint_path() -> Path:
    """Where notebooks train into: the shipped references, or the user's quick-mode folder.

    Quick mode never writes into ``saved_models/``, so the reference checkpoints stay intact.
    """
    return quick_checkpoints() if quick_mode() else SAVED_MODELS


def get_device() -> torch.device:
    """CUDA when present, then Apple's MPS, otherwise the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_seed(seed: object) -> int:
    """``seed`` itself when ``set_seed`` accepts it (an integer from 0 to ``MAX_SEED``), else a ``ValueError``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed must be an integer from 0 to 2**32 - 1 = {MAX_SEED}, not {seed!r}")
    return seed


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so that a run can be repeated."""
    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def results_dir() -> Path:
    """The default output folder of ``python -m actlab compare``: ``results/quick`` or ``results/full``.

    The two modes never share a folder, so a quick run cannot mix with or replace a full one.
    """
    return Path("results") / ("quick" if quick_mode() else "full")
