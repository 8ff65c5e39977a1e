"""Checks of the values a caller passes in, each with one wording, shared by the lesson and the lab."""

from __future__ import annotations

import math


def whole_number(what: str, value: object, least: int = 0, most: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) from ``least`` to ``most``, else a ``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        kind = "a positive integer" if least == 1 else "a whole number" if least == 0 else f"an integer >= {least}"
        raise ValueError(f"{what} must be {kind}, not {value!r}")
    if most is not None and value > most:
        raise ValueError(f"{what} must be at most {most:,}, not {value:,}")
    return value


def positive_integer(what: str, value: object, most: int | None = None) -> int:
    """``value`` when it is an integer from 1 to ``most``, else a ``ValueError`` naming ``what``."""
    return whole_number(what, value, least=1, most=most)


def finite_number(what: str, value: object) -> float:
    """``value`` as a float when it is a finite int or float (not a bool), else a ``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)
