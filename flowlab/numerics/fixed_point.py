r"""Banach fixed-point iteration with gradients by implicit differentiation.

For a contraction :math:`T` (:math:`\lVert T(a) - T(b)\rVert \le c\,\lVert a - b\rVert`, :math:`c < 1`)
the iterates :math:`x_{k+1} = T(x_k)` converge to the unique fixed point :math:`x^* = T(x^*)`, with
the a-priori bound

.. math:: \lVert x_k - x^*\rVert \le \frac{c^k}{1 - c}\,\lVert x_1 - x_0\rVert .

An invertible residual block :math:`z = x + g(x)` is inverted this way with :math:`T(x) = z - g(x)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_positive_float, check_positive_int

__all__ = ["MAX_ITER", "FixedPoint", "fixed_point"]

MAX_ITER = 100_000
r"""The most iterations :func:`fixed_point` may take: a contraction with :math:`c = 0.999` reaches
float64 precision in about 35,000 (:math:`\log 10^{-15} / \log c`); a slower one is no practical
contraction."""


class FixedPoint(NamedTuple):
    """What :func:`fixed_point` returns: the point, the iterations used and the final residual."""

    x: Tensor
    iterations: int
    residual: float


def _default_tol(dtype: torch.dtype) -> float:
    return 1e-10 if dtype == torch.float64 else 1e-5


def _iterate(step: Callable[[Tensor], Tensor], x: Tensor, tol: float, max_iter: int, patience: int,
             what: str, relative: bool = False) -> tuple[Tensor, int, float]:
    """Iterate ``x <- step(x)`` until the largest row norm of ``step(x) - x`` is at most ``tol``
    (with ``relative``, ``tol`` times the largest row norm of ``x`` when that is above 1)."""
    best, since = float("inf"), 0
    for k in range(1, max_iter + 1):
        new = step(x)
        if not isinstance(new, Tensor) or new.shape != x.shape:
            raise ValueError(f"{what}: the map must return a tensor of the shape of its input, {tuple(x.shape)}; "
                             f"got {getattr(new, 'shape', type(new).__name__)}.")
        residual = float((new - x).flatten(1).norm(dim=1).max()) if x.numel() else 0.0
        if relative and x.numel():
            tol_k = tol * max(1.0, float(new.flatten(1).norm(dim=1).max()))
        else:
            tol_k = tol
        x = new
        if residual != residual or residual == float("inf"):
            if k == 1:
                raise ValueError(f"{what}: the map returned NaN or infinite values at the first iteration, from a "
                                 "finite starting point: the map itself is not finite there.")
            raise ValueError(f"{what}: the residual became {residual} after {k} iterations; "
                             "the map is not a contraction (is its Lipschitz constant below 1?).")
        if residual <= tol_k:
            return x, k, residual
        if residual < best:
            best, since = residual, 0
        else:
            since += 1
            if since >= patience:
                raise ValueError(
                    f"{what}: the residual stopped decreasing at {best:.3e} (now {residual:.3e}) after {k} "
                    f"iterations, above tol={tol_k:.1e}. Either the map is not a contraction (Lipschitz "
                    "constant >= 1) or tol is below rounding error: raise tol."
                )
    raise ValueError(f"{what}: no convergence in max_iter={max_iter} iterations (residual {residual:.3e} > "
                     f"tol={tol_k:.1e}); raise max_iter, or use a stronger contraction.")


class _Implicit(torch.autograd.Function):
    """Identity in the forward pass; in the backward pass it solves :math:`w = a + J_T^\\top w`."""

    @staticmethod
    def forward(ctx, out, x_star, T, tol, max_iter, patience):
        ctx.T, ctx.tol, ctx.max_iter, ctx.patience = T, tol, max_iter, patience
        ctx.save_for_backward(x_star)
        return out.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x_star,) = ctx.saved_tensors
        with torch.enable_grad():
            xs = x_star.detach().requires_grad_(True)
            tx = ctx.T(xs)

        def step(w):
            (vjp,) = torch.autograd.grad(tx, xs, w, retain_graph=True, allow_unused=True)
            return grad if vjp is None else grad + vjp  # a map that ignores x has J_T = 0

        scale = max(1.0, float(grad.flatten(1).norm(dim=1).max())) if grad.numel() else 1.0
        w, _, _ = _iterate(step, grad, ctx.tol * scale, ctx.max_iter, ctx.patience, "fixed_point (backward)")
        return w, None, None, None, None, None


def fixed_point(
    T: Callable[[Tensor], Tensor],
    x0: Tensor,
    tol: float | None = None,
    max_iter: int = 1000,
    patience: int = 10,
) -> FixedPoint:
    r"""The fixed point :math:`x^* = T(x^*)` of a contraction, by Banach iteration :math:`x_{k+1} = T(x_k)`.

    ``T`` maps ``(batch, D)`` to ``(batch, D)`` row by row. The iteration stops when the residual
    :math:`r_k = \max_i \lVert T(x_k)_i - x_{k,i}\rVert_2` (largest over the rows) is at most ``tol``
    (default :math:`10^{-5}` in float32, :math:`10^{-10}` in float64, times the largest row norm of
    the iterate when that is above 1: rounding limits the residual of large points); the a-posteriori error is then at
    most :math:`c\,r_k / (1 - c)`. For a contraction :math:`r_k` falls at every step (by at least the
    factor :math:`c`); if it sets no new minimum for ``patience`` iterations, or becomes non-finite, or
    ``max_iter`` is reached, a ``ValueError`` reports the residual: a wrong point is never returned.

    The iteration runs without a graph. Gradients (to ``x0``'s dependencies through ``T``, and to the
    parameters ``T`` closes over) come from the implicit function theorem: for :math:`x^* = T(x^*, \theta)`,
    a vector-Jacobian product is :math:`w^\top \partial_\theta T` with :math:`w = a + J_T^\top w`,
    itself solved by the same iteration (it contracts with the same :math:`c`). Memory does not grow
    with the number of iterations.

    Returns :class:`FixedPoint` ``(x, iterations, residual)``.

    Example:
        >>> import torch
        >>> y = torch.tensor([[1.0, -2.0]], dtype=torch.float64, requires_grad=True)
        >>> sol = fixed_point(lambda x: y - 0.5 * torch.sin(x), torch.zeros_like(y))
        >>> bool((sol.x + 0.5 * torch.sin(sol.x) - y).abs().max() < 1e-9), sol.iterations < 60
        (True, True)
        >>> g = torch.autograd.grad(sol.x.sum(), y)[0]  # dx/dy = 1 / (1 + 0.5 cos x)
        >>> torch.allclose(g, 1 / (1 + 0.5 * torch.cos(sol.x.detach())), atol=1e-8)
        True
    """
    if not callable(T):
        raise ValueError(f"T must be a function mapping x of shape (batch, D) to the same shape, "
                         f"got {type(T).__name__}.")
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        got = f"a tensor of dtype {x0.dtype}" if isinstance(x0, Tensor) else type(x0).__name__
        raise ValueError(f"x0 must be a floating point tensor, got {got}.")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 contains NaN or infinite values: start the iteration from a finite point.")
    relative = tol is None  # the default scales with the size of the iterates: rounding limits the residual
    tol = _default_tol(x0.dtype) if tol is None else check_positive_float("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter, maximum=MAX_ITER,
                                  hint="(a slower map is no practical contraction)")
    patience = check_positive_int("patience", patience)
    with torch.no_grad():
        x, k, residual = _iterate(T, x0.detach(), tol, max_iter, patience, "fixed_point", relative)
    if torch.is_grad_enabled():
        out = T(x)  # one more (differentiable) step: its value is the fixed point to within tol
        if out.requires_grad:
            x = _Implicit.apply(out, x, T, tol, max_iter, patience)
    return FixedPoint(x, k, residual)
