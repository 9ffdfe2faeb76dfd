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


def shortcuts(fn, names=(), types=()) -> list[str]:
    """The forbidden shortcuts that the function ``fn`` refers to: any of ``names`` among the
    names its code (and the code of functions defined inside it) uses, and any global or
    closure variable it uses that is an instance of one of ``types``. A static look at the
    code, so it also catches a shortcut on a branch that did not run.

    Example:
        >>> import torch
        >>> shortcuts(lambda x: torch.distributions.LogNormal(0.0, 1.0).log_prob(x), names=("LogNormal",))
        ['LogNormal']
        >>> shortcuts(lambda x: -torch.log(x), names=("LogNormal",))
        []
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    used, stack = set(), [code]
    while stack:
        c = stack.pop()
        used.update(c.co_names)
        used.update(c.co_freevars)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    found = [n for n in names if n in used]
    values = dict(getattr(fn, "__globals__", {}))
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # an empty cell
            pass
    found += [name for name in sorted(used) if types and isinstance(values.get(name), tuple(types))]
    return found


def tensor_of_shape(name: str, value, shape: tuple[int, ...], meaning: str = "", hint: str = "") -> torch.Tensor | None:
    """``value``, what the student's function ``name`` returned, as a float64 tensor of ``shape``
    with finite entries; or ``None`` after printing what is wrong with it. ``meaning`` says what
    the shape stands for (``"one value per row"``); ``hint`` is added to the message about NaN or
    infinite entries (a likely cause).

    Example:
        >>> import torch
        >>> tensor_of_shape("f", torch.ones(3), (3,)).dtype
        torch.float64
        >>> tensor_of_shape("f", "x", (3,), "one value per point")
        Not yet: f should return a tensor of shape (3,) (one value per point), got str.
        >>> tensor_of_shape("f", torch.ones(3, 1), (3,))
        Not yet: f returned shape (3, 1), expected (3,). Remove the last dimension (for example with .squeeze(-1)).
        >>> tensor_of_shape("f", torch.tensor([1.0, float("nan"), 2.0]), (3,), hint="A log of a negative number?")
        Not yet: f returned NaN or infinite values at 1 of 3 entries, the first at index (1,). A log of a negative number?
    """
    shape = tuple(shape)
    what = f"{shape} ({meaning})" if meaning else f"{shape}"
    try:
        t = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value, dtype=torch.float64)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        print(f"Not yet: {name} should return a tensor of shape {what}, got {type(value).__name__}.")
        return None
    if tuple(t.shape) != shape:
        squeeze = " Remove the last dimension (for example with .squeeze(-1))." if tuple(t.shape) == (*shape, 1) else ""
        print(f"Not yet: {name} returned shape {tuple(t.shape)}, expected {what}.{squeeze}")
        return None
    bad = ~torch.isfinite(t)
    if bad.any():
        first = tuple(bad.nonzero()[0].tolist())
        print(f"Not yet: {name} returned NaN or infinite values at {int(bad.sum())} of {t.numel()} entries, "
              f"the first at index {first}." + (f" {hint}" if hint else ""))
        return None
    return t
