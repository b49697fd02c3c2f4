"""Validation of back-end options, so that bad values fail at the door with a clear message."""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_float", "check_tolerance", "check_bool", "check_choice"]


def check_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_float(value, name: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if value != value or (positive and value <= 0):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}number, got {value}")
    return value


def check_tolerance(value, name: str = "tol") -> float:
    """A convergence tolerance: a finite number >= 0. Zero means "run exactly max_iter
    iterations" (as in scikit-learn and hmmlearn); infinity would stop after one step and call
    that converged, so it is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= 0, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0 runs exactly max_iter iterations), got {value}")
    return value


def check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
