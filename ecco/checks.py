"""Checks of the integer arguments users give.

A Python ``int``, a NumPy integer (``np.int64(3)``, ``np.argmax(...)``) and a 0-d torch integer
tensor (``logits.argmax()``) are all integers here; ``bool`` is not, where a number is meant.
Every integer argument of ecco goes through :func:`as_int`, so the error says what was wrong.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer: Python, NumPy, or a 0-d integer torch tensor (not a bool)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Integral):  # int and every NumPy integer type
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and np.issubdtype(value.dtype, np.integer)
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool
    return False


def as_int(
    value: object, name: str, low: int | None = None, high: int | None = None, out_of_range: str | None = None
) -> int:
    """``value`` as a Python ``int``, checked to lie in ``low..high`` (both inclusive; None: no bound).

    Raises a ValueError naming the argument ``name`` when ``value`` is not an integer (a float or a
    bool is refused) or lies outside the bounds; ``out_of_range`` replaces the message of the
    latter (say what is valid and why).
    """
    if not is_int(value):
        raise ValueError(
            f"{name} must be an integer (a Python, NumPy or 0-d torch integer), got {value!r} "
            f"of type {type(value).__name__}."
        )
    number = int(value)  # type: ignore[call-overload]
    if (low is not None and number < low) or (high is not None and number > high):
        if out_of_range is not None:
            raise ValueError(out_of_range)
        raise ValueError(f"{name}={number} is out of range: {_bounds(low, high)}.")
    return number


def as_ints(values: object, name: str, low: int | None = None, high: int | None = None) -> list[int]:
    """A sequence of integers (a list, a tuple, a 1-d NumPy array or torch tensor) as Python ints,
    each checked as by :func:`as_int`."""
    flat = not isinstance(values, (np.ndarray, torch.Tensor)) or values.ndim == 1
    if isinstance(values, (str, bytes)) or is_int(values) or not flat:
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}.")
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}.") from None
    return [as_int(v, f"{name} entry", low, high) for v in items]


def _bounds(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"valid values are {low}..{high}"
    return f"it must be at least {low}" if low is not None else f"it must be at most {high}"
