"""Helpers shared by the exercise checkers."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def number(name: str, value) -> float | None:
    """``value`` as a float, or ``None`` after printing what is wrong with it."""
    if value is None:
        print(f"No answer yet: replace None in `{name} = None` with your value.")
        return None
    if isinstance(value, (torch.Tensor, np.ndarray)):
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        if size != 1:
            print(f"Not yet: {name} should be a single number, got an array of shape {tuple(value.shape)}.")
            return None
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        print(f"Not yet: {name} should be a number, got {type(value).__name__}.")
        return None
    value = float(value)
    if math.isnan(value):
        print(f"Not yet: {name} is NaN. Is the log taken of a negative number somewhere?")
        return None
    if not math.isfinite(value):
        print(f"Not yet: {name} is {value}; it should be a finite number.")
        return None
    return value


def close(a: float, b: float, tol: float) -> bool:
    """``a`` equals ``b`` up to a relative tolerance (absolute below 1)."""
    return abs(a - b) <= tol * max(1.0, abs(b))
