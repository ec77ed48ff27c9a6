"""Argument checks shared by the public API: each raises ValueError naming the argument."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def integer(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int, rejecting bools, floats and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        kind = {1: "a positive integer", 0: "a non-negative integer"}.get(
            minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name}: expected {kind}, got {value!r}")
    return int(value)


def number(value, name: str, positive: bool = False) -> float:
    """``value`` as a finite float that is >= 0 (or > 0 with ``positive``)."""
    ok = (not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)
          and math.isfinite(value) and (value > 0 if positive else value >= 0))
    if not ok:
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name}: expected a finite {kind} number, got {value!r}")
    return float(value)


def choice(value, name: str, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``."""
    allowed = list(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: unknown value {value!r}; expected one of {allowed}")
    return value
