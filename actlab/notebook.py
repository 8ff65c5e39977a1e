"""Helpers for reading code inside the notebooks."""

from __future__ import annotations

import inspect
from typing import Any

from IPython.display import Code


def show_source(obj: Any) -> Code:
    """The real source of a function or class, syntax-highlighted, so a notebook shows what actually runs."""
    return Code(inspect.getsource(obj), language="python")
