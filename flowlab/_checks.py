"""Argument checks shared by the public functions: each raises a ValueError that says what to change."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return int(value)


def check_positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or value != value:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if value == float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return float(value)


def check_batch(name: str, x, features: int) -> None:
    """A tensor of shape (batch, features)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (batch, {features}), got {type(x).__name__}.")
    if x.dim() != 2 or x.shape[-1] != features:
        raise ValueError(
            f"{name} must have shape (batch, {features}), got {tuple(x.shape)}."
            + (" Add a batch dimension with x.unsqueeze(0)." if x.dim() == 1 and x.shape[0] == features else "")
        )


def as_data(name: str, data, features: int | None = None) -> Tensor:
    """Data as a finite float tensor of shape (n, D), rejecting anything else with a clear message."""
    if not isinstance(data, Tensor):
        try:
            data = torch.as_tensor(data)
        except Exception as e:  # noqa: BLE001 - any conversion failure is a user error here
            raise ValueError(f"{name} must be an array or tensor of shape (n, D): {e}") from None
    if not data.is_floating_point():
        data = data.to(torch.get_default_dtype())
    if data.dim() != 2:
        raise ValueError(f"{name} must have shape (n, D), got {tuple(data.shape)}.")
    if data.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one row.")
    if features is not None and data.shape[1] != features:
        raise ValueError(f"{name} has {data.shape[1]} columns but the flow has {features} features.")
    bad = ~torch.isfinite(data).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten()[:5].tolist()
        raise ValueError(
            f"{name} contains NaN or infinite values in {int(bad.sum())} rows (first: {rows}); "
            "remove or impute them before training."
        )
    return data
