r"""Roots of increasing scalar functions: bisection, and the gradients of a root by the
implicit function theorem.

* :func:`bisection` solves :math:`f(x) = y` elementwise for a continuous, increasing :math:`f`,
  keeping a bracket around the root, to full precision, and raises rather than return an
  unconverged point;
* :func:`implicit_inverse` attaches to a root computed without a graph the gradients of the
  implicit function theorem, at the cost of one evaluation of :math:`f`.

References: Burden & Faires, *Numerical Analysis*, ch. 2 (bisection); Krantz & Parks, *The
Implicit Function Theorem* (2002).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .._checks import check_positive_float, check_positive_int

__all__ = ["MAX_EXPAND", "bisection", "implicit_inverse"]


MAX_EXPAND = 1100
"""The most doublings :func:`bisection` may try: after about 1080 of them even a float64 bracket is infinite."""


def _bounds(name: str, value, like: Tensor) -> Tensor:
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} must be finite, got {value}.")
    return value.expand_as(like).clone()


def bisection(
    f: Callable[[Tensor], Tensor],
    y: Tensor,
    lower=-1.0,
    upper=1.0,
    tol: float | None = None,
    max_iter: int = 200,
    max_expand: int = 64,
) -> Tensor:
    r"""Solve :math:`f(x) = y` elementwise for a continuous, increasing :math:`f`, by bisection.

    ``f`` is applied elementwise: it maps a tensor of the shape of ``y`` to one of the same
    shape, entry :math:`i` of the output depending only on entry :math:`i` of the input.

    1. **Bracket.** While :math:`f(l) > y` the lower end moves down,
       :math:`l \leftarrow l - w`, and while :math:`f(u) < y` the upper end moves up,
       :math:`u \leftarrow u + w`; the step :math:`w` starts at :math:`\max(u - l, 1)` and
       doubles each time. After ``max_expand`` doublings without a bracket (a bounded
       :math:`f`, a :math:`y` outside its range), or as soon as an end of the bracket reaches
       infinity, it raises ``ValueError``. ``max_expand`` is at most :data:`MAX_EXPAND`.
    2. **Bisect.** With :math:`f(l) \le y \le f(u)`, the midpoint :math:`m = (l + u)/2` replaces
       :math:`l` if :math:`f(m) < y` and :math:`u` otherwise, so the root stays inside
       :math:`[l, u]` and the bracket halves each time. An entry stops when
       :math:`u - l \le` ``tol`` or when the bracket cannot shrink any more in floating point;
       the result is the midpoint, within ``tol / 2`` of a root. If some entry has not stopped
       after ``max_iter`` halvings, it raises ``ValueError``.

    ``tol=None`` means 16 machine epsilons of ``y``'s dtype (bisection to full precision). The
    search runs without a graph and returns a tensor without gradients: wrap the result in
    :func:`implicit_inverse` for gradients with respect to ``y`` and to the parameters of ``f``.

    Example:
        >>> import torch
        >>> y = torch.tensor([-10.0, 0.0, 2.0, 100.0], dtype=torch.float64)
        >>> x = bisection(lambda x: x**3 + x, y, lower=0.0, upper=1.0)  # the bracket grows
        >>> torch.allclose(x**3 + x, y, atol=1e-12)
        True
    """
    if not isinstance(y, Tensor) or not y.is_floating_point():
        got = f"a tensor of dtype {y.dtype}: pass y.float() or y.double()" if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"y must be a floating point tensor, got {got}.")
    max_iter = check_positive_int("max_iter", max_iter)
    max_expand = check_positive_int(
        "max_expand", max_expand, minimum=0, maximum=MAX_EXPAND, hint="(more doublings overflow even a float64 bracket)"
    )
    tol = 16 * torch.finfo(y.dtype).eps if tol is None else check_positive_float("tol", tol)
    with torch.no_grad():
        y = y.detach()
        if not torch.isfinite(y).all():
            raise ValueError("bisection: y contains NaN or infinite values.")
        lo, hi = _bounds("lower", lower, y), _bounds("upper", upper, y)
        if (lo > hi).any():
            raise ValueError("bisection: lower must not exceed upper.")

        def value(x: Tensor) -> Tensor:
            fx = f(x)
            if fx.shape != y.shape:
                raise ValueError(f"bisection: f must keep the shape {tuple(y.shape)}, got {tuple(fx.shape)}.")
            if torch.isnan(fx).any():
                raise ValueError("bisection: f returned NaN.")
            return fx

        step = (hi - lo).clamp(min=1.0)
        for doublings in range(max_expand + 1):
            low, high = value(lo) > y, value(hi) < y
            if not (low.any() or high.any()):
                break
            if doublings == max_expand or ((low & lo.isinf()) | (high & hi.isinf())).any():
                bad = int((low | high).sum())
                raise ValueError(
                    f"bisection could not bracket the root of f(x) = y for {bad} entries after {doublings} "
                    "doublings of the bracket: is y outside the range of f, or is f decreasing?"
                )
            lo = torch.where(low, lo - step, lo)
            hi = torch.where(high, hi + step, hi)
            step = 2 * step

        for _ in range(max_iter):
            mid = lo + (hi - lo) / 2
            done = (hi - lo <= tol) | (mid <= lo) | (mid >= hi)
            if done.all():
                return mid
            below = value(mid) < y
            lo = torch.where(below & ~done, mid, lo)
            hi = torch.where(~below & ~done, mid, hi)
        bad = (hi - lo > tol).sum()
        raise ValueError(
            f"bisection did not converge for {int(bad)} entries in max_iter={max_iter} iterations "
            f"(largest bracket {float((hi - lo).max()):.3g}, tol={tol:.3g}): raise max_iter or tol."
        )


def implicit_inverse(
    f: Callable[[Tensor], Tensor],
    y: Tensor,
    x: Tensor,
    derivative: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    r"""Attach the implicit-function-theorem gradients to a root :math:`x^*` of :math:`f_\theta(x) = y`.

    Differentiating :math:`f_\theta(x(y, \theta)) = y` gives, for an elementwise :math:`f`,

    .. math::
        \frac{\partial x}{\partial y} = \frac{1}{f_\theta'(x^*)}, \qquad
        \frac{\partial x}{\partial \theta} = -\frac{\partial_\theta f_\theta(x^*)}{f_\theta'(x^*)}.

    Both come from one correction step whose *value* is exactly :math:`x^*`:

    .. math::
        x = x^* - \frac{r - \operatorname{stop}(r)}{\operatorname{stop}(f_\theta'(x^*))},
        \qquad r = f_\theta(x^*) - y,

    where :math:`\operatorname{stop}` blocks gradients (``detach``). The numerator is zero, and
    its gradient is that of :math:`f_\theta(x^*) - y`; so backpropagation never goes through the
    iterations that found :math:`x^*`, and costs one evaluation of :math:`f`. First-order
    gradients only.

    ``x`` is the root (any gradient it carries is dropped); ``derivative(x)`` returns
    :math:`f'(x)`; without it, :math:`f'` is computed by autograd.

    Example:
        >>> import torch
        >>> theta = torch.tensor(2.0, requires_grad=True)
        >>> y = torch.tensor([3.0, 8.0], requires_grad=True)
        >>> f = lambda x: theta * x                 # the root is y / theta
        >>> x = implicit_inverse(f, y, bisection(f, y))
        >>> x.sum().backward()
        >>> y.grad, theta.grad                      # 1/theta and -sum(y)/theta**2
        (tensor([0.5000, 0.5000]), tensor(-2.7500))
    """
    x = x.detach()
    if derivative is None:
        with torch.enable_grad():
            xg = x.clone().requires_grad_(True)
            dfdx = torch.autograd.grad(f(xg).sum(), xg)[0]
    else:
        dfdx = derivative(x)
    dfdx = dfdx.detach().clamp(min=torch.finfo(x.dtype).tiny)
    r = f(x) - y
    return x - (r - r.detach()) / dfdx
