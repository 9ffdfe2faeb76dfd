r"""Gauss-Legendre quadrature in 1-D and on 2-D boxes: the one place where nodes and grids are made.

* :func:`legendre_nodes`: the nodes :math:`t_i` and weights :math:`w_i` of the :math:`n`-point
  Gauss-Legendre rule on :math:`[-1, 1]`;
* :func:`gauss_legendre`: :math:`\int_a^b f` elementwise over tensors of bounds;
* :func:`cell_nodes`: a composite rule, ``nodes`` Gauss-Legendre nodes in every cell between
  given edges (one node per cell is the midpoint rule);
* :func:`box_grid`: the tensor product of two composite rules on a box
  :math:`[a_1, b_1] \times [a_2, b_2]`: cell centres (``nodes=1``) or Gauss-Legendre nodes, with
  their weights, in a chosen dtype and on a chosen device.

Costs: the :math:`n` nodes come from an eigenvalue problem, :math:`O(n^3)`, computed once per
:math:`n` in float64 and cached; a grid of :math:`N` points costs :math:`N` evaluations of the
integrand. Both are capped (:data:`MAX_NODES`, :data:`MAX_GRID`), so no request hangs.

References: Golub & Welsch, Math. Comp. 23 (1969) (the nodes); Davis & Rabinowitz, *Methods of
Numerical Integration* (1984), ch. 2 and 5 (composite and product rules).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .._checks import check_positive_int

__all__ = ["MAX_GRID", "MAX_NODES", "box_grid", "cell_nodes", "gauss_legendre", "legendre_nodes"]

MAX_NODES = 1024
"""The most Gauss-Legendre nodes :func:`legendre_nodes` computes. Its eigenvalue method costs
:math:`O(n^3)` (0.1 s for 1024, a minute for 10^4), and for a smooth integrand the error falls
geometrically in :math:`n`: a few hundred nodes reach float64 precision. Split the interval instead."""

MAX_GRID = 2**22
"""The most points of a :func:`box_grid` (4,194,304, a 2048 x 2048 grid): each point is one
evaluation of the integrand, and a few million evaluations of a small network take seconds."""


def check_nodes(name: str, n) -> int:
    """``n`` as a number of Gauss-Legendre nodes, 1 to :data:`MAX_NODES`, with ``name`` in the message.

    Example:
        >>> check_nodes("points", 200)
        200
    """
    return check_positive_int(name, n, maximum=MAX_NODES,
                              hint="(more cannot help in float64: split the interval instead)")


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
    t, w = _leggauss(check_nodes("n", n))
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
    whatever ``f`` closes over. Cost: ``n`` evaluations of ``f`` per entry, in one call.

    Example:
        >>> import torch
        >>> b = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        >>> q = gauss_legendre(torch.cos, 0.0, b, n=16)
        >>> torch.allclose(q, torch.sin(b), atol=1e-12)
        True
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.is_complex() or b.is_complex():
        raise ValueError("gauss_legendre: the bounds a and b must be real numbers.")
    like = b if b.is_floating_point() else a
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    a, b = torch.broadcast_tensors(a.to(dtype=dtype, device=like.device), b.to(dtype=dtype, device=like.device))
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("gauss_legendre: the bounds a and b must be finite (split an infinite interval or "
                         "change variables first).")
    t, w = legendre_nodes(n, dtype, a.device)
    shape = (-1,) + (1,) * a.dim()
    half = (b - a) / 2
    points = (a + b) / 2 + half * t.view(shape)
    values = f(points)
    if not isinstance(values, Tensor) or values.shape != points.shape:
        raise ValueError(
            f"gauss_legendre: f must return the shape of its input {tuple(points.shape)}, "
            f"got {getattr(values, 'shape', type(values).__name__)}."
        )
    return half * (w.view(shape) * values).sum(0)


def cell_nodes(edges: Tensor, nodes: int = 1) -> tuple[Tensor, Tensor]:
    r"""A composite rule on the cells between ``edges`` (a strictly increasing 1-D tensor):
    ``nodes`` Gauss-Legendre nodes in each cell :math:`[e_c, e_{c+1}]` and their weights,

    .. math:: \int_{e_0}^{e_C} f \approx \sum_{c, i} \frac{e_{c+1} - e_c}{2}\, w_i\,
              f\!\left(\frac{e_c + e_{c+1}}{2} + \frac{e_{c+1} - e_c}{2}\, t_i\right),

    both returned with shape ``(cells, nodes)``, in the dtype and on the device of ``edges``.
    ``nodes=1`` is the midpoint rule (the cell centres, weight = cell width). The caller checks
    ``edges``.

    Example:
        >>> import torch
        >>> x, w = cell_nodes(torch.tensor([0.0, 1.0, 3.0]), nodes=1)
        >>> x.tolist(), w.tolist()
        ([[0.5], [2.0]], [[1.0], [2.0]])
    """
    t, w = legendre_nodes(nodes, edges.dtype, edges.device)
    half = (edges[1:] - edges[:-1])[:, None] / 2
    mid = (edges[1:] + edges[:-1])[:, None] / 2
    return mid + half * t, half * w


def _interval(pair) -> tuple[float, float]:
    a, b = pair
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in (a, b)):
        raise TypeError
    return float(a), float(b)


def as_box(box, name: str = "box") -> tuple[tuple[float, float], tuple[float, float]]:
    r"""A 2-D box as two ``(low, high)`` pairs, from a number :math:`L` (:math:`[-L, L]^2`), a pair
    ``(a, b)`` (:math:`[a, b]^2`) or two pairs ``((a1, b1), (a2, b2))``; the ends must be finite
    with low < high, else a ValueError that names ``name``.

    Example:
        >>> as_box(2), as_box((0, 1)), as_box(((0, 1), (-3, 3)))
        (((-2.0, 2.0), (-2.0, 2.0)), ((0.0, 1.0), (0.0, 1.0)), ((0.0, 1.0), (-3.0, 3.0)))
    """
    try:
        if isinstance(box, numbers.Real) and not isinstance(box, bool):
            pairs = ((-float(box), float(box)),) * 2
        elif len(box) == 2 and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in box):
            pairs = (_interval(box),) * 2
        else:
            first, second = box
            pairs = (_interval(first), _interval(second))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number L, a pair (a, b) or two pairs ((a1, b1), (a2, b2)), "
                         f"got {box!r}.") from None
    for a, b in pairs:
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise ValueError(f"{name} must hold finite intervals with low < high, got {box!r}.")
    return pairs


def box_grid(box, cells=1, nodes: int = 1, *, dtype: torch.dtype | None = None, device=None) -> tuple[Tensor, Tensor]:
    r"""Points and weights of a product rule on the box :math:`[a_1, b_1] \times [a_2, b_2]`:

    .. math:: \int_{\text{box}} f(x)\,dx \approx \sum_m w_m f(x_m),

    each axis cut into ``cells`` equal cells (a number, or one per axis) with ``nodes``
    Gauss-Legendre nodes per cell (:func:`cell_nodes`): ``nodes=1`` gives the cell centres
    (the midpoint rule, error :math:`O(h^2)`), ``cells=1, nodes=n`` the plain :math:`n`-point
    Gauss-Legendre product rule (exact for polynomials of degree :math:`\le 2n - 1` in each
    coordinate). ``box`` is a number :math:`L`, a pair or two pairs (:func:`as_box`).

    Returns ``x`` of shape ``(n1 * n2, 2)`` and ``w`` of shape ``(n1 * n2,)``,
    :math:`n_k` = cells :math:`\times` nodes on axis :math:`k`, in ``dtype`` (default float64) on
    ``device``; ``x.reshape(n1, n2, 2)[i, j]`` is :math:`(x_{1,i}, x_{2,j})`, so the first
    coordinate varies along the first axis. At most :data:`MAX_GRID` points.

    Example:
        >>> import torch
        >>> x, w = box_grid(((0, 2), (0, 3)), cells=1, nodes=4)
        >>> round(float(w.sum()), 12), round(float((w * x[:, 0] ** 3 * x[:, 1]).sum()), 12)  # 6, 4 * 4.5
        (6.0, 18.0)
        >>> x, w = box_grid(1.0, cells=2)  # the four cell centres of [-1, 1]^2
        >>> x.tolist(), w.tolist()
        ([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]], [1.0, 1.0, 1.0, 1.0])
    """
    pairs = as_box(box)
    if isinstance(cells, numbers.Integral) or isinstance(cells, bool):
        cells = (cells, cells)
    try:
        counts = [check_positive_int("cells", c) for c in cells]
    except TypeError:
        raise ValueError(f"cells must be an integer or two integers, got {cells!r}.") from None
    if len(counts) != 2:
        raise ValueError(f"cells must be an integer or two integers, got {cells!r}.")
    nodes = check_nodes("nodes", nodes)
    size = counts[0] * counts[1] * nodes**2
    if size > MAX_GRID:
        raise ValueError(f"box_grid: cells={tuple(counts)} with nodes={nodes} makes {size:,} points, more than "
                         f"{MAX_GRID:,}: use fewer cells or nodes (the error of a smooth integrand falls fast "
                         "in both).")
    dtype = dtype or torch.float64
    axes = []
    for (a, b), c in zip(pairs, counts):
        edges = torch.linspace(a, b, c + 1, dtype=torch.float64, device=device)
        t, w = cell_nodes(edges, nodes)
        axes.append((t.flatten().to(dtype), w.flatten().to(dtype)))
    (x1, w1), (x2, w2) = axes
    return torch.cartesian_prod(x1, x2), torch.outer(w1, w2).flatten()
