r"""Log-determinants of residual maps :math:`x \mapsto x + g(x)`: exact, truncated series, Russian roulette.

With :math:`J = \partial g / \partial x` and :math:`\lVert J\rVert_2 < 1` (a contraction),

.. math:: \log\det(I + J) = \sum_{k=1}^{\infty} \frac{(-1)^{k+1}}{k}\,\operatorname{tr}(J^k),
          \qquad \operatorname{tr}(A) = \mathbb E_v[v^\top A v]

for any probe :math:`v` with :math:`\mathbb E[v v^\top] = I` (Hutchinson). One term costs one
vector-Jacobian product (VJP): :math:`v^\top J^k = (v^\top J^{k-1}) J`. Each function below is one
estimator, takes ``g`` and ``x`` and returns ``(g(x), ladj)``, sharing the forward pass of ``g``.
Random functions draw all their noise once per call from ``generator``.

**Gradients of the stochastic estimators** (Chen et al. 2019, the Neumann-series gradient). The
gradient of the log-determinant is

.. math:: \nabla \log\det(I + J) = \operatorname{tr}\big((I + J)^{-1} \nabla J\big)
          = \sum_{k=0}^{\infty} (-1)^k \operatorname{tr}(J^k\, \nabla J),

so with the terms :math:`v^\top J^k` already computed (without a graph) for the value, one more
VJP with a graph, :math:`w^\top J v` with :math:`w = \sum_k (-1)^k c_{k+1} v^\top J^k` held fixed,
has a gradient whose mean is that of the estimated series. The value returned is the estimate
itself; only its gradient comes from this surrogate. So the estimators cost their terms in VJPs
without a graph plus **one** VJP with a graph, however many terms they take, and their gradients
are first-order only.

References: Behrmann et al. 2019 (i-ResNet: series, Hutchinson, truncation bound);
Chen et al. 2019 (Residual Flows: Russian roulette, Neumann gradient); Hutchinson 1989.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from torch import Tensor

from .._checks import check_positive_int
from .jacobians import PROBES, jacobian_rows, probes, with_graph

__all__ = ["MAX_TERMS", "MIN_P", "logdet_exact", "logdet_roulette", "logdet_series", "probes", "series_bound"]

MAX_TERMS = 1000
"""The most terms of :func:`logdet_series` (and exact terms of :func:`logdet_roulette`), and the
most random terms the roulette adds: each term is a vector-Jacobian product, and beyond a thousand
the tail of the series is below :func:`series_bound` of any useful contraction (2e-48 for c = 0.9)."""

MIN_P = 0.01
"""The smallest stopping probability of the roulette: it takes :math:`(1 - p)/p` extra terms on
average, 99 at this bound."""


def _vjp(gx: Tensor, x: Tensor, w: Tensor, create_graph: bool = False) -> Tensor:
    if not gx.requires_grad:  # g does not depend on x
        return torch.zeros_like(x)
    with torch.enable_grad():
        (out,) = torch.autograd.grad(gx, x, w, retain_graph=True, create_graph=create_graph, allow_unused=True)
    return torch.zeros_like(x) if out is None else out


def _out(gx: Tensor, differentiable: bool) -> Tensor:
    return gx if differentiable else gx.detach()


def _probe(kind) -> str:
    if kind not in PROBES:
        raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {kind!r}.")
    return kind


def _power_series(gx: Tensor, x: Tensor, v: Tensor, n: Tensor, weight: Callable[[int], float],
                  differentiable: bool) -> Tensor:
    r""":math:`\sum_{k=1}^{n} c_k (-1)^{k+1} v^\top J^k v / k` per row (``n`` per row or one for all,
    :math:`c_k` = ``weight(k)``), with the Neumann surrogate for its gradient when ``differentiable``."""
    top = int(n.max()) if n.numel() else 0
    u, total = v, x.new_zeros(x.shape[0])
    neumann = torch.zeros_like(v)
    for k in range(1, top + 1):
        active = (n >= k).to(x.dtype)  # which rows still take term k
        coefficient = active * weight(k)
        neumann = neumann + ((-1) ** (k - 1) * coefficient)[..., None] * u  # (-1)^(k-1) c_k v^T J^(k-1)
        u = _vjp(gx, x, u)  # v^T J^k, without a graph
        total = total + coefficient * ((-1) ** (k + 1) / k) * (u * v).sum(-1)
    if not differentiable or top == 0:
        return total
    surrogate = (_vjp(gx, x, neumann.detach(), create_graph=True) * v).sum(-1)
    return total + (surrogate - surrogate.detach())


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
    x, gx, differentiable = with_graph(g, x, "g")
    with torch.enable_grad():
        jac = jacobian_rows(gx, x, differentiable) + torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    if x.shape[1] == 2:  # closed form, cheaper than an LU for 2 x 2
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

    Its mean over probes is the truncated series, not the log-det: the bias is the tail
    :math:`\sum_{k>n}`, at most :func:`series_bound` in absolute value. Its gradient is the
    Neumann estimate of the truncated series' gradient (module docstring), unbiased over probes.
    Cost: ``terms`` VJPs without a graph and one with (at most :data:`MAX_TERMS` terms).

    Example:
        >>> import torch
        >>> A = 0.3 * torch.eye(2, dtype=torch.float64)  # tr(A^k) = 2 (0.3)^k for every probe
        >>> _, l = logdet_series(lambda x: x @ A.T, torch.zeros(1, 2, dtype=torch.float64), terms=2)
        >>> round(float(l), 6)  # 2 (0.3 - 0.09 / 2)
        0.51
    """
    terms = check_positive_int("terms", terms, maximum=MAX_TERMS, hint="(each is a vector-Jacobian product)")
    probe = _probe(probe)
    x, gx, differentiable = with_graph(g, x, "g")
    v = probes(x, probe, generator)
    n = torch.full((1,), terms, device=x.device)
    return _out(gx, differentiable), _power_series(gx, x, v, n, lambda k: 1.0, differentiable)


def check_p(p) -> float:
    """``p``, the roulette's stopping probability, in [:data:`MIN_P`, 1).

    Example:
        >>> check_p(0.5)
        0.5
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not MIN_P <= p < 1:
        raise ValueError(
            f"p (the stopping probability of the roulette) must be a number in [{MIN_P}, 1), got {p!r}: the "
            f"roulette takes (1 - p) / p extra terms on average (1 for p = 0.5, 99 for p = {MIN_P})."
        )
    return float(p)


def logdet_roulette(
    g: Callable[[Tensor], Tensor],
    x: Tensor,
    generator: torch.Generator | None = None,
    p: float = 0.5,
    exact_terms: int = 2,
    probe: str = "rademacher",
    shared: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""Russian roulette: an unbiased estimate of the whole series with a random number of terms.

    It draws :math:`N = n_0 + G` terms, :math:`n_0` = ``exact_terms`` and
    :math:`G \sim \mathrm{Geometric}(p)` on :math:`\{0, 1, \dots\}`, so
    :math:`P(N \ge k) = (1 - p)^{\max(0,\,k - n_0)}`, and weights term :math:`k` by :math:`1/P(N \ge k)`:

    .. math:: \widehat{\text{ladj}} = \sum_{k=1}^{N} \frac{(-1)^{k+1}}{k}\,
              \frac{v^\top J^k v}{P(N \ge k)},
              \qquad \mathbb E\,\widehat{\text{ladj}} = \log\det(I + J) .

    ``shared=True`` (the default, as Chen et al. 2019 train): one :math:`N` for the whole batch,
    so the cost is :math:`n_0 + (1-p)/p` VJPs on average (2 + 1 for the defaults), and each row's
    estimate is unbiased, but the rows share the randomness of :math:`N`: average over calls, not
    over the rows of one call. ``shared=False``: one :math:`N` per row, independent estimates
    (to measure the spread of one estimate), at the cost of the batch's largest :math:`N`.

    The gradient is the Neumann estimate (module docstring): one VJP with a graph whatever
    :math:`N` is, unbiased for :math:`\nabla \log\det(I + J)`. :math:`G` is capped at
    :data:`MAX_TERMS` (a draw beyond it has probability below :math:`0.99^{1000} \approx 4 \cdot
    10^{-5}` at the smallest ``p``, and :math:`10^{-301}` at 0.5): the estimate is then unbiased for
    the series truncated at :math:`n_0 + 1000` terms, whose error is :func:`series_bound`. The
    variance is finite when the terms decay faster than :math:`(1-p)^{k/2}`, i.e. when
    :math:`\mathrm{Lip}(g)^2 < 1 - p`.

    Example:
        >>> import torch
        >>> A = 0.3 * torch.eye(2, dtype=torch.float64)
        >>> g = torch.Generator().manual_seed(0)
        >>> _, l = logdet_roulette(lambda x: x @ A.T, torch.zeros(20000, 2, dtype=torch.float64), g, shared=False)
        >>> abs(float(l.mean()) - 2 * math.log(1.3)) < 0.01  # unbiased
        True
    """
    p = check_p(p)
    exact_terms = check_positive_int("exact_terms", exact_terms, minimum=0, maximum=MAX_TERMS,
                                     hint="(each is a vector-Jacobian product)")
    probe = _probe(probe)
    if not isinstance(shared, bool):
        raise ValueError(f"shared must be True (one number of terms per call) or False (one per row), got {shared!r}.")
    x, gx, differentiable = with_graph(g, x, "g")
    v = probes(x, probe, generator)
    device = generator.device if generator is not None else x.device
    u = 1 - torch.rand(1 if shared else x.shape[0], generator=generator, dtype=torch.float64, device=device)  # (0, 1]
    extra = torch.floor(torch.log(u) / math.log1p(-p)).clamp(max=MAX_TERMS)  # Geometric(p) on {0, 1, ...}
    n = (exact_terms + extra).to(device=x.device, dtype=x.dtype)
    log_survive = math.log1p(-p)

    def weight(k: int) -> float:  # 1 / P(N >= k)
        return math.exp(min(700.0, -max(0, k - exact_terms) * log_survive))

    return _out(gx, differentiable), _power_series(gx, x, v, n, weight, differentiable)


def series_bound(c: float, features: int, terms: int) -> float:
    r"""The worst-case truncation error of :func:`logdet_series` for :math:`\mathrm{Lip}(g) \le c`:

    .. math:: |\text{bias}| \le D\Big(-\log(1 - c) - \sum_{k=1}^{n} \frac{c^k}{k}\Big)

    (Behrmann et al. 2019, eq. 6 in spirit: each eigenvalue has modulus at most :math:`c`).

    Example:
        >>> round(series_bound(0.5, 2, 1), 3)
        0.386
    """
    if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0 < c < 1:
        raise ValueError(f"c must be in (0, 1), got {c!r}.")
    features = check_positive_int("features", features)
    terms = check_positive_int("terms", terms, minimum=0, maximum=10**6)
    tail, power = -math.log1p(-c), 1.0
    for k in range(1, terms + 1):
        power *= c
        tail -= power / k
        if power < 1e-300:
            break
    return features * max(tail, 0.0)
