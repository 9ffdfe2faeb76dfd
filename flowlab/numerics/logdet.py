r"""Log-determinants of residual maps :math:`x \mapsto x + g(x)`: exact, truncated series, Russian roulette.

With :math:`J = \partial g / \partial x` and :math:`\lVert J\rVert_2 < 1` (a contraction),

.. math:: \log\det(I + J) = \sum_{k=1}^{\infty} \frac{(-1)^{k+1}}{k}\,\operatorname{tr}(J^k),
          \qquad \operatorname{tr}(A) = \mathbb E_v[v^\top A v]

for any probe :math:`v` with :math:`\mathbb E[v v^\top] = I` (Hutchinson). One term costs one
vector-Jacobian product (VJP): :math:`v^\top J^k = (v^\top J^{k-1}) J`. Each function below is one
estimator, takes ``g`` and ``x`` and returns ``(g(x), ladj)``, sharing the forward pass of ``g``.
Random functions draw all their noise once per call from ``generator``.

References: Behrmann et al. 2019 (i-ResNet: series, Hutchinson, truncation bound);
Chen et al. 2019 (Residual Flows: Russian roulette); Hutchinson 1989.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._checks import check_positive_int

__all__ = ["logdet_exact", "logdet_roulette", "logdet_series", "probes", "series_bound"]


def _prepare(g: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor, bool]:
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating point (batch, D) tensor, got {getattr(x, 'shape', type(x).__name__)}.")
    differentiable = torch.is_grad_enabled()
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        gx = g(x)
    if gx.shape != x.shape:
        raise ValueError(f"g must map (batch, D) to (batch, D); got {tuple(x.shape)} -> {tuple(gx.shape)}.")
    return x, gx, differentiable


def _vjp(gx: Tensor, x: Tensor, w: Tensor, create_graph: bool) -> Tensor:
    with torch.enable_grad():
        return torch.autograd.grad(gx, x, w, retain_graph=True, create_graph=create_graph)[0]


def _out(gx: Tensor, differentiable: bool) -> Tensor:
    return gx if differentiable else gx.detach()


def probes(like: Tensor, kind: str = "rademacher", generator: torch.Generator | None = None) -> Tensor:
    r"""Hutchinson probes of the shape of ``like``: Rademacher (:math:`\pm 1`) or Gaussian; both have
    :math:`\mathbb E[v v^\top] = I`. Drawn from ``generator`` (``None``: torch's global generator).

    Example:
        >>> probes(torch.zeros(2, 3), generator=torch.Generator().manual_seed(0)).abs().unique().tolist()
        [1.0]
    """
    if kind == "rademacher":
        bits = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
        return (2 * bits - 1).to(like.dtype)
    if kind == "gaussian":
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {kind!r}.")


def logdet_exact(g: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(g(x), log|det(I + J_g(x))|)`` exactly: :math:`D` VJPs for the Jacobian, then an LU
    factorization, :math:`O(D^3)` per row. The cheap choice in low dimension (two VJPs in 2-D).
    Differentiable when gradients are enabled.

    Example:
        >>> import torch
        >>> A = torch.tensor([[0.5, 0.2], [0.0, -0.3]], dtype=torch.float64)
        >>> _, l = logdet_exact(lambda x: x @ A.T, torch.randn(3, 2, dtype=torch.float64))
        >>> torch.allclose(l, torch.log(torch.tensor(1.5 * 0.7, dtype=torch.float64)).expand(3))
        True
    """
    x, gx, differentiable = _prepare(g, x)
    d = x.shape[1]
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    rows = [_vjp(gx, x, eye[i].expand_as(x), differentiable) for i in range(d)]  # row i of J
    jac = torch.stack(rows, dim=1) + eye
    if d == 2:  # closed form, cheaper than an LU for 2 x 2
        det = jac[:, 0, 0] * jac[:, 1, 1] - jac[:, 0, 1] * jac[:, 1, 0]
        return _out(gx, differentiable), torch.log(det.abs())
    return _out(gx, differentiable), torch.linalg.slogdet(jac).logabsdet


def logdet_series(
    g: Callable[[Tensor], Tensor],
    x: Tensor,
    terms: int,
    generator: torch.Generator | None = None,
    probe: str = "rademacher",
) -> tuple[Tensor, Tensor]:
    r"""The power series truncated after ``terms`` terms, with one Hutchinson probe per row:

    .. math:: \widehat{\text{ladj}}_n = \sum_{k=1}^{n} \frac{(-1)^{k+1}}{k}\, v^\top J^k v .

    Cost: ``terms`` VJPs. Its mean over probes is the truncated series, not the log-det: the
    bias is the tail :math:`\sum_{k>n}`, at most :func:`series_bound` in absolute value.

    Example:
        >>> import torch
        >>> A = 0.3 * torch.eye(2, dtype=torch.float64)  # tr(A^k) = 2 (0.3)^k for every probe
        >>> _, l = logdet_series(lambda x: x @ A.T, torch.zeros(1, 2, dtype=torch.float64), terms=2)
        >>> round(float(l), 6)  # 2 (0.3 - 0.09 / 2)
        0.51
    """
    terms = check_positive_int("terms", terms)
    x, gx, differentiable = _prepare(g, x)
    v = probes(x, probe, generator)
    w, total = v, x.new_zeros(x.shape[0])
    for k in range(1, terms + 1):
        w = _vjp(gx, x, w, differentiable)  # v^T J^k
        total = total + (-1) ** (k + 1) / k * (w * v).sum(-1)
    return _out(gx, differentiable), total


def logdet_roulette(
    g: Callable[[Tensor], Tensor],
    x: Tensor,
    generator: torch.Generator | None = None,
    p: float = 0.5,
    exact_terms: int = 2,
    probe: str = "rademacher",
) -> tuple[Tensor, Tensor]:
    r"""Russian roulette: an unbiased estimate of the whole series with a random number of terms.

    Each row draws :math:`N = n_0 + G` terms, :math:`n_0` = ``exact_terms`` and
    :math:`G \sim \mathrm{Geometric}(p)` on :math:`\{0, 1, \dots\}`, so
    :math:`P(N \ge k) = (1 - p)^{\max(0,\,k - n_0)}`, and weights term :math:`k` by :math:`1/P(N \ge k)`:

    .. math:: \widehat{\text{ladj}} = \sum_{k=1}^{N} \frac{(-1)^{k+1}}{k}\,
              \frac{v^\top J^k v}{P(N \ge k)},
              \qquad \mathbb E\,\widehat{\text{ladj}} = \log\det(I + J) .

    Expected cost :math:`n_0 + (1-p)/p` VJPs (computed up to the largest :math:`N` of the batch).
    The variance is finite when the terms decay faster than :math:`(1-p)^{k/2}`.

    Example:
        >>> import torch
        >>> A = 0.3 * torch.eye(2, dtype=torch.float64)
        >>> g = torch.Generator().manual_seed(0)
        >>> _, l = logdet_roulette(lambda x: x @ A.T, torch.zeros(20000, 2, dtype=torch.float64), g)
        >>> abs(float(l.mean()) - 2 * math.log(1.3)) < 0.01  # unbiased
        True
    """
    if not 0 < p < 1:
        raise ValueError(f"p (the stopping probability of the roulette) must be in (0, 1), got {p!r}.")
    exact_terms = check_positive_int("exact_terms", exact_terms, minimum=0)
    x, gx, differentiable = _prepare(g, x)
    v = probes(x, probe, generator)
    u = torch.rand(x.shape[0], generator=generator, dtype=torch.float64, device=x.device)
    extra = torch.floor(torch.log(u) / math.log(1 - p))  # Geometric(p) on {0, 1, ...}
    n = exact_terms + extra.to(x.dtype)
    w, total = v, x.new_zeros(x.shape[0])
    for k in range(1, int(n.max()) + 1):
        w = _vjp(gx, x, w, differentiable)
        weight = (1 - p) ** -max(0, k - exact_terms)
        total = total + (n >= k).to(x.dtype) * ((-1) ** (k + 1) / k * weight) * (w * v).sum(-1)
    return _out(gx, differentiable), total


def series_bound(c: float, features: int, terms: int) -> float:
    r"""The worst-case truncation error of :func:`logdet_series` for :math:`\mathrm{Lip}(g) \le c`:

    .. math:: |\text{bias}| \le D\Big(-\log(1 - c) - \sum_{k=1}^{n} \frac{c^k}{k}\Big)

    (Behrmann et al. 2019, eq. 6 in spirit: each eigenvalue has modulus at most :math:`c`).

    Example:
        >>> round(series_bound(0.5, 2, 1), 3)
        0.386
    """
    if not 0 < c < 1:
        raise ValueError(f"c must be in (0, 1), got {c!r}.")
    return features * (-math.log(1 - c) - sum(c**k / k for k in range(1, terms + 1)))
