"""Choosing where to compute: the devices available here, the fastest of them, and
:func:`check_device`, which turns a user's device name into one of them or says which exist."""

from __future__ import annotations

import torch

from ._checks import check_device  # noqa: F401 - the check lives with the others, in _checks


def available_devices() -> list[str]:
    """Every device torch can use here, fastest first: each ``cuda:N``, then ``mps``, then ``cpu``.

    Example:
        >>> import flowlab as fl
        >>> "cpu" in fl.available_devices()
        True
    """
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def default_device() -> torch.device:
    """The fastest available device: CUDA when present, else MPS, else the CPU.

    Example:
        >>> import flowlab as fl
        >>> fl.default_device().type in ("cuda", "mps", "cpu")
        True
    """
    return torch.device(available_devices()[0])
