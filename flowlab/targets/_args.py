"""The argument checks the targets share: sample counts, lengths, curvatures, seeds and points.

Each names the argument the user passed and says what to pass instead; integer points are
taken as floats (the log-densities never compute in an integer dtype).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_batch, check_finite_float, check_positive_float, check_positive_int, seeded_generator

MAX_SAMPLES = 10**7
"""The most samples a sampler draws in one call (80 MB of float32 points): draw more in batches."""

LARGEST = 1e6
"""The largest length (scale, width, radius, ...) or curvature: beyond it float32 samples, or their
squares, overflow."""


def count(n) -> int:
    """``n``, a number of samples, 1 to :data:`MAX_SAMPLES`."""
    n = check_positive_int("n", n)
    if n > MAX_SAMPLES:
        raise ValueError(f"n must be at most {MAX_SAMPLES:,} samples per call, got {n:,}: draw them in batches.")
    return n


def length(name: str, value, largest: float = LARGEST, why: str = "(the samples are float32)") -> float:
    """A positive, finite length at most ``largest``."""
    return check_positive_float(name, value, maximum=largest, hint=why)


def curvature(value) -> float:
    """A finite curvature, at most :data:`LARGEST` in absolute value."""
    return check_finite_float("curvature", value, bound=LARGEST)


def generator(seed) -> torch.Generator:
    """A generator seeded with the checked ``seed`` (an integer, or None for fresh randomness)."""
    return seeded_generator("seed", seed)


def points(name: str, x, features: int = 2) -> Tensor:
    """``x`` as a floating point ``(n, features)`` tensor: integers become the default float dtype,
    complex and boolean tensors are refused."""
    check_batch(name, x, features)
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}.")
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())
