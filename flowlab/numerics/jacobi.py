r"""Jacobi (fixed-point) iteration for a triangular system: exact after a known number of sweeps.

An autoregressive layer :math:`z_i = \tau_{c_i(x_{<i})}(x_i)` is inverted by solving
:math:`x = T(x)` with

.. math:: T(x)_i = \tau^{-1}_{c_i(x_{<i})}(z_i),

a map whose coordinate :math:`i` depends on :math:`x_{<i}` only: its Jacobian is strictly lower
(block) triangular. The iteration :math:`x_{k+1} = T(x_k)` (one *sweep* updates every coordinate
at once, from the previous iterate: Jacobi's method) then needs no contraction. By induction, if
the first :math:`k` parts of :math:`x_k` are exact, so are the first :math:`k + 1` parts of
:math:`x_{k+1}`: after at most :math:`K` sweeps from any start (:math:`K` parts), the iterate is the
fixed point, to the last bit. A strictly triangular Jacobian is nilpotent, so this is the Banach
iteration of :mod:`.fixed_point` with a local contraction rate of zero: a finite number of steps
instead of a geometric approach. In practice the later parts often depend only weakly on the
earlier ones, and the sweeps stop changing anything (to a tolerance) long before :math:`K`.

Cost: one evaluation of :math:`T` per sweep (for a flow layer: one conditioner pass and one
inversion of the transformer), plus one :math:`O(\text{batch} \cdot D)` comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_positive_int

__all__ = ["MAX_SWEEPS", "Jacobi", "default_tol", "jacobi"]

MAX_SWEEPS = 100_000
"""The most sweeps :func:`jacobi` may take: a triangular system of that many parts is not a flow
layer; a map that needs more is not triangular."""


def default_tol(dtype: torch.dtype) -> float:
    """The default tolerance of the flows' Jacobi inverses: :math:`10^{-10}` in float64,
    :math:`10^{-5}` otherwise (some hundred times the rounding of coordinates of size one)."""
    return 1e-10 if dtype == torch.float64 else 1e-5


class Jacobi(NamedTuple):
    """What :func:`jacobi` returns: the iterate, the sweeps used and the last sweep's largest change."""

    x: Tensor
    sweeps: int
    residual: float


def jacobi(T: Callable[[Tensor], Tensor], x0: Tensor, sweeps: int, tol: float | None = None) -> Jacobi:
    r"""Iterate :math:`x_{k+1} = T(x_k)` from ``x0`` for at most ``sweeps`` sweeps; with ``tol``,
    stop after the first sweep whose largest change :math:`\max_{b,i} |x_{k+1} - x_k|` is at
    most ``tol``.

    For a map whose coordinate :math:`i` depends only on earlier parts (module docstring), and a
    start whose first part is already exact, ``sweeps`` :math:`= K - 1` makes the result exact;
    ``tol=None`` runs all of them. ``tol=0`` stops only at a sweep that changes nothing, that is at
    the fixed point itself (a triangular map's iterates stop changing bit for bit once exact).
    A positive ``tol`` bounds the last change, not the error: how far the iterate is from the fixed
    point depends on how strongly the later coordinates react to the earlier ones, and is for the
    caller to measure. ``residual`` is the largest change of the last sweep (``nan`` when no sweep
    ran). When the sweeps run out before ``tol`` is met, the last change can be large: for a
    triangular map the iterate is then exact all the same, the change only says how far that
    last sweep moved it.

    Gradients flow through the sweeps that ran (ordinary autograd, memory proportional to the
    sweeps); when the iteration reached the fixed point they are those of the exact inverse.

    Returns :class:`Jacobi` ``(x, sweeps, residual)``.

    Example:
        >>> import torch
        >>> z = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
        >>> def T(x):  # x_i = z_i - x_{i-1}: the inverse of z_i = x_i + x_{i-1}
        ...     return z - torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)
        >>> sol = jacobi(T, z.clone(), sweeps=3, tol=0.0)
        >>> sol.x, sol.sweeps  # x = (1, 1, 2), exact after two sweeps; the third confirms it
        (tensor([[1., 1., 2.]], dtype=torch.float64), 3)
    """
    if not callable(T):
        raise ValueError(f"T must be a function mapping x of shape (batch, D) to the same shape, got {type(T).__name__}.")
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        got = f"a tensor of dtype {x0.dtype}" if isinstance(x0, Tensor) else type(x0).__name__
        raise ValueError(f"x0 must be a floating point tensor, got {got}.")
    sweeps = check_positive_int("sweeps", sweeps, minimum=0, maximum=MAX_SWEEPS,
                                hint="(a triangular system of K parts needs at most K)")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0
                            or tol == math.inf):
        raise ValueError(f"tol must be a finite number >= 0 (the largest change that ends the sweeps) or None "
                         f"(run every sweep), got {tol!r}.")
    x, residual, k = x0, math.nan, 0
    for k in range(1, sweeps + 1):
        new = T(x)
        if not isinstance(new, Tensor) or new.shape != x.shape:
            raise ValueError(f"jacobi: the map must return a tensor of the shape of its input, {tuple(x.shape)}; "
                             f"got {getattr(new, 'shape', type(new).__name__)}.")
        with torch.no_grad():
            residual = float((new - x).abs().max()) if x.numel() else 0.0
        x = new
        if tol is not None and residual <= tol:
            break
    return Jacobi(x, k, residual)
