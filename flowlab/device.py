"""Choosing where to compute: the devices available here, the fastest of them, and
:func:`check_device`, which turns a user's device name into one of them or says which exist."""

from __future__ import annotations

import torch

from ._checks import ArgumentTypeError, describe


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


def check_device(device, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` that exists here (``"cuda"`` means ``"cuda:0"``); anything
    else, including a number or a device this machine lacks, gets a ValueError that lists the
    available ones.

    Example:
        >>> import flowlab as fl
        >>> fl.device.check_device("cpu")
        device(type='cpu')
    """
    devices = available_devices()
    choose = f"choose one of: {', '.join(repr(d) for d in devices)}"
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        text = device.strip().lower()
        if text.startswith(("gpu", "nvidia")):
            raise ValueError(f"{name} {device!r} is not a torch device name (torch calls a GPU 'cuda'); {choose}.")
        try:
            dev = torch.device(text)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"{name} {device!r} is not a torch device name; {choose}.") from None
    else:
        number = isinstance(device, int) and not isinstance(device, bool)
        extra = f" (for GPU number {device}, pass 'cuda:{device}')" if number else ""
        raise ArgumentTypeError(
            f"{name} must be a device name such as 'cpu' or 'cuda', got {describe(device)}{extra}; {choose}."
        )
    label = f"{dev.type}:0" if dev.type == "cuda" and dev.index is None else str(dev)
    if label not in devices:
        why = ""
        if dev.type == "cuda" and not torch.cuda.is_available():
            why = " (this torch sees no CUDA GPU)"
        elif dev.type == "cuda":
            why = f" (this machine has {torch.cuda.device_count()} CUDA GPUs)"
        given = f"'{label}'" if str(device).strip().lower() == label else f"{str(device)!r} ({label})"
        raise ValueError(f"the {name} {given} is not available here{why}; {choose}.")
    return torch.device(label)
