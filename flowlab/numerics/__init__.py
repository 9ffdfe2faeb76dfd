r"""Iterative and reference numerics, each checked against a closed form in the tests.

* :func:`bisection` solves :math:`f(x) = y` for an increasing :math:`f`, elementwise;
* :func:`implicit_inverse` gives a root computed without a graph the gradients of the implicit
  function theorem, without backpropagating through the iterations;
* :func:`gauss_legendre` integrates elementwise over tensors of bounds;
* :func:`jacobian` and :func:`jacobian_ladj` compute the Jacobian of a map by autograd and its
  exact log-determinant: slow (:math:`D` backward passes and :math:`O(D^3)` per sample), and sure;
* :mod:`.cdf`: CDF tables by quadrature, monotone (PCHIP) interpolation, generalised inverses and
  quantiles, and the Knothe-Rosenblatt map of a 2-D density;
* :mod:`.fixed_point`: Banach fixed-point iteration with implicit gradients (the inverse of a
  residual block), raising a ValueError with the residual when it does not converge;
* :mod:`.logdet`: :math:`\log|\det(I + J_g)|` exactly, by the truncated power series with Hutchinson
  probes, and by the Russian roulette.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .._checks import check_positive_float, check_positive_int
from .cdf import cdf_table, generalized_inverse, knothe_rosenblatt, pchip, quantile
from .ode import ODESolution, euler, hutchinson_noise, odeint, rk4, trace_exact, trace_hutchinson
from .fixed_point import FixedPoint, fixed_point
from .logdet import logdet_exact, logdet_roulette, logdet_series, probes, series_bound

__all__ = ["bisection", "gauss_legendre", "implicit_inverse", "jacobian", "jacobian_ladj", "legendre_nodes"]
__all__ += ["cdf_table", "generalized_inverse", "knothe_rosenblatt", "pchip", "quantile"]  # numerics.cdf
__all__ += ["ODESolution", "euler", "hutchinson_noise", "odeint", "rk4", "trace_exact", "trace_hutchinson"]  # numerics.ode
__all__ += ["FixedPoint", "fixed_point", "logdet_exact", "logdet_roulette", "logdet_series", "probes", "series_bound"]  # numerics.fixed_point, numerics.logdet


MAX_EXPAND = 1100
"""The most doublings :func:`bisection` may try: after about 1080 of them even a float64 bracket is infinite."""

MAX_NODES = 1024
"""The most Gauss-Legendre nodes :func:`legendre_nodes` computes. Its eigenvalue method costs
:math:`O(n^3)` (0.1 s for 1024, a minute for 10^4), and for a smooth integrand the error falls
geometrically in :math:`n`: a few hundred nodes reach float64 precision. Split the interval instead."""


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


@functools.lru_cache(maxsize=32)
def _leggauss(n: int) -> tuple[np.ndarray, np.ndarray]:
    # a table of constants, computed in float64 once per n
    return np.polynomial.legendre.leggauss(n)


def legendre_nodes(n: int, dtype: torch.dtype | None = None, device=None) -> tuple[Tensor, Tensor]:
    r"""The ``n`` Gauss-Legendre nodes :math:`t_i \in (-1, 1)` and positive weights :math:`w_i`
    (:math:`\sum_i w_i = 2`), computed in float64 and then cast to ``dtype``.

    Example:
        >>> t, w = legendre_nodes(2, torch.float64)
        >>> (t * 3**0.5).round(decimals=12).tolist(), w.tolist()  # nodes -1/sqrt(3), 1/sqrt(3)
        ([-1.0, 1.0], [1.0, 1.0])
    """
    n = check_positive_int("n", n, maximum=MAX_NODES, hint="(more cannot help in float64: split the interval instead)")
    t, w = _leggauss(n)
    dtype = dtype or torch.get_default_dtype()
    return torch.as_tensor(t, dtype=dtype, device=device), torch.as_tensor(w, dtype=dtype, device=device)


def gauss_legendre(f: Callable[[Tensor], Tensor], a, b, n: int = 32) -> Tensor:
    r"""The integral :math:`\int_a^b f(t)\,dt` by ``n``-point Gauss-Legendre quadrature, elementwise.

    .. math::
        \int_a^b f(t)\,dt \approx \frac{b - a}{2} \sum_{i=1}^{n} w_i\,
        f\!\left(\frac{a + b}{2} + \frac{b - a}{2}\,t_i\right),

    with the nodes :math:`t_i` the roots of the Legendre polynomial :math:`P_n` and positive
    weights :math:`w_i`. The rule is exact for polynomials of degree :math:`\le 2n - 1`; for an
    integrand analytic around :math:`[a, b]` the error falls geometrically in :math:`n`. The
    weights are positive, so a positive integrand gives a positive integral.

    ``a`` and ``b`` are numbers or tensors that broadcast to a common shape :math:`S`. ``f``
    receives the points as one tensor of shape ``(n, *S)`` (the nodes along a new first
    dimension) and must return the same shape; it may close over tensors of shape :math:`S`
    (or ending in it), which broadcast against the points. Gradients flow to ``a``, ``b`` and
    whatever ``f`` closes over.

    Example:
        >>> import torch
        >>> b = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        >>> q = gauss_legendre(torch.cos, 0.0, b, n=16)
        >>> torch.allclose(q, torch.sin(b), atol=1e-12)
        True
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    like = b if b.is_floating_point() else a
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    a, b = torch.broadcast_tensors(a.to(dtype=dtype, device=like.device), b.to(dtype=dtype, device=like.device))
    t, w = legendre_nodes(n, dtype, a.device)
    shape = (-1,) + (1,) * a.dim()
    half = (b - a) / 2
    points = (a + b) / 2 + half * t.view(shape)
    values = f(points)
    if values.shape != points.shape:
        raise ValueError(
            f"gauss_legendre: f must return the shape of its input {tuple(points.shape)}, got {tuple(values.shape)}."
        )
    return half * (w.view(shape) * values).sum(0)


def jacobian(fn: Callable, x: Tensor) -> Tensor:
    r"""The Jacobian :math:`J_{bij} = \partial\, \text{fn}(x)_{bi} / \partial x_{bj}` of each row, by autograd.

    ``fn`` maps ``(batch, D)`` to ``(batch, D)`` (or to a tuple whose first element is that,
    like a transform's ``forward``) and must treat the rows independently. Row :math:`i` of
    every Jacobian comes from one backward pass of :math:`\sum_b \text{fn}(x)_{bi}`: :math:`D`
    passes in all. When gradients are enabled the result is differentiable (``create_graph``),
    so a loss may use it. Returns ``(batch, D, D)``.

    Example:
        >>> import torch
        >>> jacobian(lambda x: x**2, torch.tensor([[1.0, 2.0]])).tolist()
        [[[2.0, 0.0], [0.0, 4.0]]]
    """
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a (batch, D) tensor, got {getattr(x, 'shape', type(x).__name__)}.")
    differentiable = torch.is_grad_enabled()
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        out = fn(x)
        out = out[0] if isinstance(out, tuple) else out
        if out.shape != x.shape:
            raise ValueError(f"fn must map (batch, D) to (batch, D); got {tuple(x.shape)} -> {tuple(out.shape)}.")
        rows = [
            torch.autograd.grad(out[:, i].sum(), x, retain_graph=True, create_graph=differentiable)[0]
            for i in range(x.shape[1])
        ]
    return torch.stack(rows, dim=1)


def jacobian_ladj(fn: Callable, x: Tensor) -> Tensor:
    r"""The exact :math:`\log\lvert\det J\rvert` of the autograd Jacobian of ``fn`` at each row of ``x``.

    .. math:: \text{ladj}(x) = \log\left\lvert\det \frac{\partial\, \text{fn}(x)}{\partial x}\right\rvert,

    by :func:`jacobian` (:math:`D` backward passes) and an LU factorization
    (``torch.linalg.slogdet``, :math:`O(D^3)` per sample): the cost that structured flows avoid.
    Differentiable when gradients are enabled. Returns ``(batch,)``.

    Example:
        >>> import torch
        >>> A = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
        >>> jacobian_ladj(lambda x: x @ A.T, torch.randn(3, 2)).detach()  # log 6 for every row
        tensor([1.7918, 1.7918, 1.7918])
    """
    return torch.linalg.slogdet(jacobian(fn, x)).logabsdet
