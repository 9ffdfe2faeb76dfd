r"""Jacobians by autograd, their traces, and Hutchinson's probes: the one place for each.

* :func:`jacobian_rows`: the Jacobian of an output already computed from ``x``, one backward
  pass per output coordinate (:math:`D` passes);
* :func:`jacobian` and :func:`jacobian_ladj`: the Jacobian of a map and its exact
  log-determinant, slow (:math:`D` backward passes and :math:`O(D^3)` per sample) and sure;
* :func:`trace_exact` and :func:`trace_hutchinson`: :math:`\operatorname{tr} J` from :math:`D`
  backward passes, or an unbiased estimate :math:`v^\top J v` from one;
* :func:`probes`: Hutchinson's probe vectors :math:`v` with :math:`\mathbb E[v v^\top] = I`.

Every map here treats the rows of a ``(batch, D)`` input independently, so a backward pass of
:math:`\sum_b \text{out}_{bi}` gives row :math:`i` of every sample's Jacobian at once.

References: Hutchinson, Commun. Stat. Simul. Comput. 18 (1989) (the trace estimator);
Griewank & Walther, *Evaluating Derivatives* (2008), ch. 3 (reverse mode, one pass per row).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["PROBES", "hutchinson_noise", "jacobian", "jacobian_ladj", "jacobian_rows", "probes", "trace_exact",
           "trace_hutchinson"]

PROBES = ("rademacher", "gaussian")
"""The kinds of Hutchinson probe: entries :math:`\\pm 1` (the smaller variance) or standard normal."""


def _create_graph(create_graph: bool | None) -> bool:
    return torch.is_grad_enabled() if create_graph is None else create_graph


def jacobian_rows(out: Tensor, x: Tensor, create_graph: bool | None = None) -> Tensor:
    r"""The Jacobian :math:`J_{bij} = \partial\,\text{out}_{bi} / \partial x_{bj}` of an output
    ``out`` (``(batch, D_out)``) computed from ``x`` (``(batch, D)``) row by row: one backward
    pass of :math:`\sum_b \text{out}_{bi}` per output coordinate :math:`i`. Returns
    ``(batch, D_out, D)``, differentiable when ``create_graph`` (default: when gradients are
    enabled). Inputs that ``out`` does not use get zero rows.

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.0, 2.0]], requires_grad=True)
        >>> jacobian_rows(torch.stack([x[:, 0] * x[:, 1], x[:, 0]], 1), x).tolist()
        [[[2.0, 1.0], [1.0, 0.0]]]
    """
    create_graph = _create_graph(create_graph)
    if not out.requires_grad:  # out does not depend on x (nor on anything with gradients)
        return x.new_zeros(x.shape[0], out.shape[1], x.shape[1])
    rows = []
    with torch.enable_grad():  # the sums below belong to the graph even when the caller has none
        for i in range(out.shape[1]):
            (row,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=True, create_graph=create_graph,
                                         allow_unused=True)
            rows.append(torch.zeros_like(x) if row is None else row)
    return torch.stack(rows, dim=1) if rows else x.new_zeros(x.shape[0], 0, x.shape[1])


def with_graph(fn: Callable, x: Tensor, name: str = "fn") -> tuple[Tensor, Tensor, bool]:
    """``(x, fn(x), differentiable)``: ``x`` checked and made to require gradients, ``fn(x)`` (or the
    first element of the tuple it returns) computed with a graph and checked to keep the shape of
    ``x``, and whether gradients were enabled by the caller (then results stay differentiable)."""
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        got = f"dtype {x.dtype}" if isinstance(x, Tensor) and x.dim() == 2 else getattr(x, "shape", type(x).__name__)
        raise ValueError(f"x must be a floating point (batch, D) tensor, got {got}.")
    differentiable = torch.is_grad_enabled()
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        out = fn(x)
    out = out[0] if isinstance(out, tuple) else out
    if not isinstance(out, Tensor) or out.shape != x.shape:
        raise ValueError(f"{name} must map (batch, D) to (batch, D); got {tuple(x.shape)} -> "
                         f"{getattr(out, 'shape', type(out).__name__)}.")
    return x, out, differentiable


def jacobian(fn: Callable, x: Tensor) -> Tensor:
    r"""The Jacobian :math:`J_{bij} = \partial\, \text{fn}(x)_{bi} / \partial x_{bj}` of each row, by autograd.

    ``fn`` maps ``(batch, D)`` to ``(batch, D)`` (or to a tuple whose first element is that,
    like a transform's ``forward``) and must treat the rows independently. Row :math:`i` of
    every Jacobian comes from one backward pass of :math:`\sum_b \text{fn}(x)_{bi}`: :math:`D`
    passes in all (:func:`jacobian_rows`). When gradients are enabled the result is
    differentiable (``create_graph``), so a loss may use it. Returns ``(batch, D, D)``.

    Example:
        >>> import torch
        >>> jacobian(lambda x: x**2, torch.tensor([[1.0, 2.0]])).tolist()
        [[[2.0, 0.0], [0.0, 4.0]]]
    """
    x, out, differentiable = with_graph(fn, x)
    return jacobian_rows(out, x, differentiable)


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


def probes(like: Tensor, kind: str = "rademacher", generator: torch.Generator | None = None) -> Tensor:
    r"""Hutchinson probes :math:`v` with :math:`\mathbb E[v] = 0` and :math:`\mathbb E[v v^\top] = I`,
    in the shape, dtype and device of ``like``: ``"rademacher"`` (entries :math:`\pm 1`, the smaller
    variance) or ``"gaussian"``.

    Drawn from ``generator`` (on its own device, then moved), or from torch's global generator
    when it is ``None``. A CNF draws them once per solve and keeps them along the trajectory
    (Grathwohl et al., 2019): a probe that changed inside an adaptive solve would make the ODE
    rough. ``hutchinson_noise`` is another name for this function.

    Example:
        >>> import torch
        >>> v = probes(torch.zeros(2, 3), generator=torch.Generator().manual_seed(0))
        >>> sorted(set(v.flatten().tolist()))
        [-1.0, 1.0]
    """
    if kind not in PROBES:
        raise ValueError(f"the probe kind must be 'rademacher' or 'gaussian', got {kind!r}.")
    device = generator.device if generator is not None else like.device
    if kind == "gaussian":
        v = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=device)
    else:
        v = torch.randint(0, 2, like.shape, generator=generator, device=device).to(like.dtype) * 2 - 1
    return v.to(like.device)


hutchinson_noise = probes


def trace_exact(out: Tensor, y: Tensor, create_graph: bool | None = None) -> Tensor:
    r"""The exact trace :math:`\operatorname{tr}\,\partial\,\text{out}/\partial y =
    \sum_i \partial\,\text{out}_i/\partial y_i` of each row, from :math:`D` vector-Jacobian
    products (:func:`jacobian_rows`). ``out`` must have been computed from ``y``
    (``(batch, D)``, rows independent). Returns ``(batch,)``, differentiable when
    ``create_graph`` (default: when gradients are enabled).

    Example:
        >>> import torch
        >>> y = torch.randn(4, 3, requires_grad=True)
        >>> trace_exact(y**2, y).allclose(2 * y.sum(1))
        True
    """
    return jacobian_rows(out, y, create_graph).diagonal(dim1=1, dim2=2).sum(-1)


def trace_hutchinson(out: Tensor, y: Tensor, noise: Tensor, create_graph: bool | None = None) -> Tensor:
    r"""Hutchinson's estimate :math:`\varepsilon^\top (\partial\,\text{out}/\partial y)\,\varepsilon`
    of the trace of each row, from one vector-Jacobian product :math:`\varepsilon^\top J`.

    Unbiased for any probe with :math:`\mathbb E[\varepsilon\varepsilon^\top] = I`
    (:func:`probes`): :math:`\mathbb E[\varepsilon^\top J \varepsilon] =
    \operatorname{tr}(J\,\mathbb E[\varepsilon\varepsilon^\top]) = \operatorname{tr} J`. With
    Rademacher probes its variance is :math:`2\sum_{i \ne j} J_{ij}^2` (for symmetrised
    :math:`J`), with Gaussian ones :math:`2\lVert J\rVert_F^2`. One backward pass whatever
    :math:`D` is (Hutchinson, 1989; Grathwohl et al., 2019).

    Example:
        >>> import torch
        >>> y = torch.randn(4, 3, requires_grad=True)
        >>> e = probes(y, generator=torch.Generator().manual_seed(0))
        >>> trace_hutchinson(3 * y, y, e).tolist()  # for a multiple of I every probe is exact
        [9.0, 9.0, 9.0, 9.0]
    """
    if not out.requires_grad:  # out does not depend on y
        return y.new_zeros(y.shape[0])
    (g,) = torch.autograd.grad(out, y, noise, create_graph=_create_graph(create_graph), retain_graph=True,
                               allow_unused=True)
    return y.new_zeros(y.shape[0]) if g is None else (g * noise).sum(1)
