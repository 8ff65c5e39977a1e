"""Helpers for the notebooks: showing the code that runs, and saying which mode runs it.

Importing it turns on ``plotting.presentation()`` when ``ACTLAB_PRESENT`` asks for it.
"""

from __future__ import annotations

import inspect
from typing import Any

from IPython.display import Code

from actlab import plotting, settings
from actlab.data import FashionMNISTData
from actlab.settings import get_device, quick_mode
from actlab.support import threads


def show_source(obj: Any) -> Code:
    """The real source of a function or class, syntax-highlighted, so a notebook shows what actually runs."""
    return Code(inspect.getsource(obj), language="python")


def mode_line(data: FashionMNISTData | None = None) -> str:
    """One line for a notebook's set-up cell: the mode (quick or full), the split sizes, the device and its threads."""
    mode = "QUICK MODE (a test-sized run, not the real experiment)" if quick_mode() else "full mode"
    sizes = "" if data is None else \
        f": {len(data.train):,} training, {len(data.val):,} validation and {len(data.test):,} test images,"
    device = get_device() if data is None else data.train.labels.device
    used = f" with {threads.describe(threads.choose_threads())}" if device.type == "cpu" else ""
    return f"{mode}{sizes} on {device}{used}"


if settings.switched_on(settings.PRESENT_ENV):
    plotting.presentation()
