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
THREADS_ENV = "ACTLAB_THREADS"
DATA_ENV = "ACTLAB_DATA"
CACHE_ENV = "ACTLAB_CACHE"
QUICK_ON = ("1", "on", "yes", "true")
QUICK_OFF = ("", "0", "off", "no", "false")

MAX_SEED = 2**32 - 1
"""The largest seed ``set_seed`` takes: NumPy's legacy generator accepts 0 to 2**32 - 1 (torch's, 0 to 2**64 - 1)."""


def quick_mode() -> bool:
    """True when ``ACTLAB_QUICK`` asks for the shrunken, test-sized experiment.

    ``1``, ``on``, ``yes`` and ``true`` turn it on; ``0``, ``off``, ``no``, ``false`` or nothing leave it off.
    """
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    if value in QUICK_ON:
        return True
    if value in QUICK_OFF:
        return False
    raise ValueError(
        f"{QUICK_ENV}={os.environ[QUICK_ENV]!r} is neither on ({', '.join(QUICK_ON)}) "
        f"nor off ({', '.join(repr(v) for v in QUICK_OFF)})."
    )


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


def _runnable_elsewhere() -> int | None:
    """How many threads of other processes are running or waiting for a core now; None where /proc is missing."""
    own = str(os.getpid())
    try:
        tasks = Path("/proc").glob("[0-9]*/task/[0-9]*/stat")
        count = 0
        for task in tasks:
            if task.parts[2] == own:
                continue
            try:
                stat = task.read_bytes()
            except OSError:
                continue
            count += stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"R"
        return count
    except OSError:
        return None


def free_cores() -> int | None:
    """The cores that other processes leave free now (at least 1), or None where that cannot be told."""
    busy = _runnable_elsewhere()
    if busy is None:
        return None
    return max(1, len(os.sched_getaffinity(0)) - busy)


def thread_request() -> int | str | None:
    """What ``ACTLAB_THREADS`` asks for: a number of threads, ``"free"``, or None when it is unset.

    A number must be a whole number from 1 to the machine's CPU count; anything else is refused
    with a ``ValueError`` that names the setting, so a typo never silently falls back to the default.
    """
    raw = os.environ.get(THREADS_ENV, "")
    value = raw.strip().lower()
    if not value:
        return None
    if value == "free":
        return value
    cpus = os.cpu_count() or 1
    if value.isascii() and value.isdecimal() and 1 <= int(value) <= cpus:
        return int(value)
    raise ValueError(f"{THREADS_ENV}={raw!r} must be a whole number of threads from 1 to {cpus} (this machine's "
                     "CPUs), or 'free' for the cores other processes leave free; unset, torch's default")


def use_free_cores() -> int:
    """Set torch's threads as ``ACTLAB_THREADS`` asks, and return how many it uses.

    Unset: torch's own default (one thread per core), the same every time, so the same seed gives
    the same numbers. A number: that many threads. ``free``: as many threads as there are cores that
    other processes leave free right now, which keeps a shared machine (a classroom server, Binder)
    from slowing training down several times over, at the price that a run's last digits then depend
    on the load (a different thread count sums in a different order).
    """
    chosen = thread_request()
    threads = free_cores() if chosen == "free" else chosen if isinstance(chosen, int) else None
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return torch.get_num_threads()
