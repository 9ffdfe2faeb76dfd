r"""Diagnostics for a flow used as a proposal: importance weights, effective sample size, the
estimate of a normalizing constant, exact divergences by quadrature in 2-D, and Metropolis samplers.

Notation (one for the whole module): :math:`\tilde p = Z\, p` is an unnormalized target density
with normalizing constant :math:`Z`, :math:`q` is the proposal (a trained flow), and for
:math:`x \sim q` the importance weight is

.. math:: w(x) = \frac{\tilde p(x)}{q(x)}, \qquad \mathbb E_q[w] = Z, \qquad
          \frac{\mathbb E_q[w^2]}{\mathbb E_q[w]^2} = 1 + \chi^2(p \,\|\, q),

with :math:`\chi^2(p\,\|\,q) = \int p^2 / q - 1`. Everything here works with log-weights
:math:`\log w`, so that no weight overflows.

* :func:`log_weights`: samples of a flow and their log-weights (one sampling pass);
* :func:`ess`: the effective sample size :math:`(\sum w)^2 / \sum w^2`;
* :func:`log_z`: :math:`\log \hat Z` and its standard error;
* :func:`quadrature_grid`, :func:`log_z_quadrature`, :func:`kl_quadrature`, :func:`chi2_quadrature`:
  exact values in 2-D by tensor-product Gauss-Legendre quadrature on a box;
* :func:`independence_mh`, :func:`random_walk_mh`: Metropolis-Hastings chains.

References: Kong (1992) and Owen, *Monte Carlo theory, methods and examples* (2013), ch. 9
(effective sample size); Vehtari et al. (2024), *Pareto smoothed importance sampling*, JMLR 25(72)
(k-hat, computed in the book with ``arviz_stats``); Hastings (1970) (independence sampler).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._checks import check_batch, check_positive_float, check_positive_int
from .core import Flow
from .numerics.quadrature import as_box, box_grid, check_nodes

__all__ = [
    "chi2_quadrature",
    "ess",
    "independence_mh",
    "kl_quadrature",
    "log_weights",
    "log_z",
    "log_z_quadrature",
    "quadrature_grid",
    "random_walk_mh",
]

LogDensity = Callable[[Tensor], Tensor]

MAX_SAMPLES = 10**7
"""The most samples :func:`log_weights` draws, and the most states (steps x chains) of a
Metropolis-Hastings run: a few seconds for a small flow; draw more in batches."""


def _check_log_w(log_w, at_least: int = 1) -> Tensor:
    if not isinstance(log_w, Tensor):
        try:  # a list or an array of real numbers, in float64
            log_w = torch.as_tensor(log_w, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"log_w must be a 1-D tensor of real log-weights, got {type(log_w).__name__} "
                             f"{str(log_w)[:40]}.") from None
    if log_w.dim() != 1 or len(log_w) < at_least:
        shape = tuple(log_w.shape) if isinstance(log_w, Tensor) else type(log_w).__name__
        some = "one log-weight" if at_least == 1 else f"{at_least} log-weights"
        raise ValueError(f"log_w must be a 1-D tensor of at least {some}, got shape {shape}.")
    if log_w.is_complex() or log_w.dtype == torch.bool:
        raise ValueError(f"log_w must hold real log-weights, got dtype {log_w.dtype}.")
    log_w = log_w.detach().double()
    if torch.isnan(log_w).any() or (log_w == math.inf).any():
        raise ValueError("log_w contains NaN or +inf; check the target and the proposal's log-densities.")
    if (log_w == -math.inf).all():
        raise ValueError("every weight is zero (log_w = -inf): the proposal puts no mass where the target lives.")
    return log_w


@torch.no_grad()
def log_weights(flow: Flow, log_prob_fn: LogDensity, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""``n`` samples :math:`x_j \sim q` of ``flow`` and their log-weights
    :math:`\log w_j = \log \tilde p(x_j) - \log q(x_j)`.

    The samples and :math:`\log q(x_j)` come from one sampling pass
    (:meth:`Flow.rsample_and_log_prob`); ``log_prob_fn`` is :math:`\log \tilde p`.

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2).inv, fl.StandardNormal(2))
        >>> x, log_w = fl.diagnostics.log_weights(flow, fl.targets.banana_log_prob, 100)
        >>> x.shape, log_w.shape
        (torch.Size([100, 2]), torch.Size([100]))
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a flowlab Flow, got {type(flow).__name__}.")
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be a function of x of shape (n, D), got {type(log_prob_fn).__name__}.")
    n = check_positive_int("n", n, maximum=MAX_SAMPLES, hint="(draw more in batches)")
    x, log_q = flow.rsample_and_log_prob(n, generator=generator)
    log_p = log_prob_fn(x)
    if not isinstance(log_p, Tensor) or log_p.shape != (n,):
        raise ValueError(f"log_prob_fn must map ({n}, {flow.features}) points to shape ({n},), "
                         f"got {getattr(log_p, 'shape', type(log_p).__name__)}.")
    if bool(torch.isnan(log_p).any()) or bool((log_p == math.inf).any()):
        raise ValueError("log_prob_fn returned NaN or +inf at some samples of the flow: a log-density is finite "
                         "or -inf (zero density).")
    if not bool(torch.isfinite(log_q).all()):
        raise ValueError("the flow's log-density of its own samples is NaN or infinite: its parameters are not "
                         "finite, or it folds (check with flowlab.testing.folds).")
    return x, log_p - log_q


def ess(log_w: Tensor) -> float:
    r"""The effective sample size of importance weights :math:`w_j = e^{\log w_j}`:

    .. math:: \mathrm{ESS} = \frac{\left(\sum_j w_j\right)^2}{\sum_j w_j^2}
              = \exp\!\big(2\,\mathrm{lse}(\log w) - \mathrm{lse}(2 \log w)\big)

    (lse: log-sum-exp), between 1 (one weight dominates) and :math:`n` (equal weights). For
    :math:`x_j \sim q`, :math:`\mathrm{ESS}/n \to 1/(1 + \chi^2(p\,\|\,q))` as
    :math:`n \to \infty` (see :func:`chi2_quadrature`).

    It depends only on the differences of the log-weights (the scale of :math:`w` cancels), so it is
    computed from :math:`\log w - \max \log w` and never overflows.

    Example:
        >>> import torch, flowlab as fl
        >>> round(fl.diagnostics.ess(torch.zeros(10)), 6), round(fl.diagnostics.ess(torch.tensor([0.0, -1e9])), 6)
        (10.0, 1.0)
        >>> fl.diagnostics.ess([1e308, 1e308])  # huge equal weights (a list is taken as float64)
        2.0
    """
    lw = _check_log_w(log_w)
    lw = lw - lw.max()
    return float(torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)))


def log_z(log_w: Tensor) -> tuple[float, float]:
    r"""The importance-sampling estimate :math:`\log \hat Z` and its standard error.

    .. math:: \hat Z = \frac1n \sum_{j=1}^n w_j, \qquad
              \mathrm{SE}(\log \hat Z) \approx \frac{\mathrm{sd}(w)}{\sqrt n\, \bar w}
              = \sqrt{\frac{1}{\mathrm{ESS}} - \frac1n}

    (delta method, with the sample standard deviation of the weights normalized by :math:`n`).
    :math:`\hat Z` is unbiased for :math:`Z`; :math:`\log \hat Z` is biased low by about
    :math:`\mathrm{SE}^2/2` (Jensen). The error bar is itself an estimate and is too small when
    the weights have a heavy tail (check k-hat).

    Example:
        >>> import torch, flowlab as fl
        >>> fl.diagnostics.log_z(torch.full((4,), 2.0))
        (2.0, 0.0)
    """
    lw = _check_log_w(log_w, at_least=2)
    n = len(lw)
    top = lw.max()
    estimate = float(torch.logsumexp(lw - top, 0) + top - math.log(n))
    return estimate, math.sqrt(max(1 / ess(lw) - 1 / n, 0.0))


# --------------------------------------------------------------------------------------------
# exact values by quadrature in 2-D
# --------------------------------------------------------------------------------------------


def _check_box(box) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        if len(box) == 4:
            lo1, hi1, lo2, hi2 = box
            box = ((lo1, hi1), (lo2, hi2))
    except TypeError:
        pass
    return as_box(box)


def quadrature_grid(box=(-6.0, 6.0, -6.0, 6.0), points: int = 200, dtype=torch.float64, *,
                    cells: int = 1) -> tuple[Tensor, Tensor]:
    r"""Nodes ``x`` of shape ``(n**2, 2)`` and log-weights ``log_dA`` of a tensor-product
    Gauss-Legendre rule on the box :math:`[a_1, b_1] \times [a_2, b_2]`:

    .. math:: \int_{\text{box}} f(x)\, dx \approx \sum_{i,k} \frac{(b_1 - a_1)(b_2 - a_2)}{4}
              w_i w_k\, f(x_{ik}) = \sum_m e^{\log dA_m} f(x_m),

    with ``points`` nodes per axis (at most 1024), or ``points`` nodes in each of ``cells`` cells
    per axis (a composite rule, :math:`n` = cells :math:`\times` points). Exact for polynomials of
    degree :math:`\le 2\,\text{points} - 1` in each coordinate; for smooth integrands the error
    falls geometrically in ``points``, for piecewise ones (a spline flow's density has kinks at its
    knots) only algebraically: check by doubling ``points``. The mass outside the box is not
    counted: choose a box that holds the densities. ``box`` is ``(x1_min, x1_max, x2_min, x2_max)``
    or two pairs ``((x1_min, x1_max), (x2_min, x2_max))``. The nodes come from
    :func:`flowlab.numerics.box_grid`.

    Example:
        >>> import torch, flowlab as fl
        >>> x, log_dA = fl.diagnostics.quadrature_grid((0, 2, 0, 3), points=4)
        >>> round(float(log_dA.exp().sum()), 12)  # the area
        6.0
    """
    box = _check_box(box)
    x, w = box_grid(box, check_positive_int("cells", cells), check_nodes("points", points), dtype=dtype)
    return x, w.log()


@torch.no_grad()
def _on_grid(name: str, log_prob_fn: LogDensity, x: Tensor, chunk: int = 65536) -> Tensor:
    """``log_prob_fn`` at the nodes, in float64: finite or -inf (zero density), nothing else."""
    if not callable(log_prob_fn):
        raise TypeError(f"{name} must be a function of x of shape (n, 2), got {type(log_prob_fn).__name__}.")
    out = []
    for i in range(0, len(x), chunk):
        xi = x[i : i + chunk]
        dtype = _dtype_of(log_prob_fn) or xi.dtype
        values = log_prob_fn(xi.to(dtype))
        if not isinstance(values, Tensor) or values.shape != (len(xi),):
            raise ValueError(f"{name} must map (n, 2) points to shape (n,), got "
                             f"{getattr(values, 'shape', type(values).__name__)} for n = {len(xi)}.")
        if values.is_complex():
            raise ValueError(f"{name} must return real log-densities, got dtype {values.dtype}.")
        out.append(values.double())
    values = torch.cat(out)
    bad = torch.isnan(values) | (values == math.inf)
    if bool(bad.any()):
        first = x[bad.nonzero()[0, 0]].tolist()
        raise ValueError(f"{name} returned NaN or +inf at {int(bad.sum())} of the {len(x)} quadrature nodes (first at "
                         f"{[round(v, 4) for v in first]}): a log-density is finite, or -inf where the density is 0.")
    return values


def _dtype_of(fn) -> torch.dtype | None:
    # a flow (or a bound method of one) evaluates in the dtype of its parameters
    module = getattr(fn, "__self__", fn)
    if isinstance(module, torch.nn.Module):
        for p in module.parameters():
            return p.dtype
    return None


def _log_mass(name: str, values: Tensor, log_dA: Tensor, box) -> Tensor:
    log_mass = torch.logsumexp(values + log_dA, 0)
    if not bool(torch.isfinite(log_mass)):
        raise ValueError(f"{name} is -inf (zero density) at every quadrature node of the box {box!r}, or overflows "
                         "there: move or widen the box to where the density lives.")
    return log_mass


def log_z_quadrature(log_prob_fn: LogDensity, box=(-6.0, 6.0, -6.0, 6.0), points: int = 200, *,
                     cells: int = 1) -> float:
    r""":math:`\log \int_{\text{box}} \tilde p(x)\, dx` by :func:`quadrature_grid` (log-sum-exp of
    :math:`\log \tilde p + \log dA`). For a normalized density this is the log of its mass in the box.
    A log-density that is NaN or +inf at a node, or -inf at every node, raises ``ValueError``.

    Example:
        >>> import flowlab as fl
        >>> box = (-7, 7, -4, 20)  # the banana's arms reach far up
        >>> abs(fl.diagnostics.log_z_quadrature(fl.targets.banana_log_prob, box) - fl.targets.banana_log_z()) < 1e-9
        True
    """
    x, log_dA = quadrature_grid(box, points, cells=cells)
    return float(_log_mass("log_prob_fn", _on_grid("log_prob_fn", log_prob_fn, x), log_dA, box))


def _normalized(log_p: LogDensity, log_q: LogDensity, box, points) -> tuple[Tensor, Tensor, Tensor]:
    x, log_dA = quadrature_grid(box, points)
    lp = _on_grid("log_p", log_p, x)
    lp = lp - _log_mass("log_p", lp, log_dA, box)  # normalize the target on the box
    lq = _on_grid("log_q", log_q, x)
    lq = lq - _log_mass("log_q", lq, log_dA, box)  # and the proposal (its mass outside is not counted)
    return lp, lq, log_dA


def kl_quadrature(log_p: LogDensity, log_q: LogDensity, box=(-6.0, 6.0, -6.0, 6.0), points: int = 200) -> float:
    r"""The Kullback-Leibler divergence

    .. math:: D_{\mathrm{KL}}(p \,\|\, q) = \int p(x) \log \frac{p(x)}{q(x)}\, dx

    by quadrature on the box. Both log-densities may be unnormalized: each is normalized on the
    box first, so the result is the divergence of the two densities restricted to the box (for
    a flow, check with :func:`log_z_quadrature` that its mass in the box is close to 1). Swap
    the arguments for the reverse divergence :math:`D_{\mathrm{KL}}(q\,\|\,p)`. Points where the
    first density vanishes contribute nothing; where :math:`q` vanishes and :math:`p` does not,
    the divergence is :math:`+\infty`, and that is what is returned. A density that is NaN or +inf
    at a node, or zero on the whole box, raises ``ValueError``. The result is :math:`\ge 0` up to
    the quadrature error.

    Example:
        >>> import math, torch, flowlab as fl
        >>> p = lambda x: -0.5 * (x**2).sum(-1) - math.log(2 * math.pi)          # N(0, I)
        >>> q = lambda x: -0.5 * (x**2).sum(-1) / 4 - math.log(2 * math.pi * 4)  # N(0, 4 I)
        >>> round(fl.diagnostics.kl_quadrature(p, q, (-12, 12, -12, 12)), 6)     # 2 (log 2 - 3/8)
        0.636294
    """
    lp, lq, log_dA = _normalized(log_p, log_q, box, points)
    weight = (lp + log_dA).exp()
    where = weight > 0
    if bool((where & (lq == -math.inf)).any()):
        return math.inf  # q = 0 where p > 0
    terms = torch.where(where, weight * (lp - lq), torch.zeros_like(weight))
    return float(terms.sum())


def chi2_quadrature(log_p: LogDensity, log_q: LogDensity, box=(-6.0, 6.0, -6.0, 6.0), points: int = 200) -> float:
    r"""The chi-square divergence

    .. math:: \chi^2(p \,\|\, q) = \int \frac{p(x)^2}{q(x)}\, dx - 1

    by quadrature on the box (both densities normalized on the box, as in :func:`kl_quadrature`).
    It sets the limit of the effective sample size of importance sampling from
    :math:`q`: :math:`\mathrm{ESS}/n \to 1/(1 + \chi^2(p\,\|\,q))`. It is infinite when the tails of
    :math:`q` are lighter than those of :math:`p`; on a finite box it stays finite, so check that
    the value is stable when the box grows. Where :math:`q` vanishes and :math:`p` does not, it is
    :math:`+\infty` (returned as such); the checks of :func:`kl_quadrature` apply.

    Example:
        >>> import math, torch, flowlab as fl
        >>> p = lambda x: -0.5 * (x**2).sum(-1) - math.log(2 * math.pi)          # N(0, I)
        >>> q = lambda x: -0.5 * (x**2).sum(-1) / 4 - math.log(2 * math.pi * 4)  # N(0, 4 I)
        >>> round(fl.diagnostics.chi2_quadrature(p, q, (-12, 12, -12, 12)), 6)   # (4/sqrt(7))^2 - 1
        1.285714
    """
    lp, lq, log_dA = _normalized(log_p, log_q, box, points)
    where = lp > -math.inf
    if bool((where & (lq == -math.inf)).any()):
        return math.inf  # q = 0 where p > 0
    terms = torch.where(where, 2 * lp - lq + log_dA, torch.full_like(lp, -math.inf))
    return float(torch.logsumexp(terms, 0).exp() - 1)


# --------------------------------------------------------------------------------------------
# Metropolis-Hastings
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def independence_mh(proposals: Tensor, log_w: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""Independence Metropolis-Hastings chains from proposals drawn in advance.

    ``proposals`` has shape ``(steps, chains, D)``: at step :math:`t` chain :math:`c` proposes
    :math:`x' \sim q` independently of its state :math:`x` and accepts it with probability

    .. math:: \alpha(x, x') = \min\!\left(1, \frac{\tilde p(x')\, q(x)}{\tilde p(x)\, q(x')}\right)
              = \min\!\left(1, \frac{w(x')}{w(x)}\right),

    so ``log_w`` (shape ``(steps, chains)``, from :func:`log_weights`) is all it needs. Each chain
    starts at its first proposal. The chain leaves :math:`p` invariant whatever :math:`q` is (given
    :math:`q > 0` where :math:`p > 0`); it mixes fast when :math:`w` varies little, and a state with a
    huge weight (a region where :math:`q` is too light) traps it. The expected acceptance rate is
    :math:`\mathbb E[\min(1, w(x')/w(x))]`, with :math:`x \sim p`, :math:`x' \sim q` in equilibrium.

    Returns the states, shape ``(steps, chains, D)``, and the boolean acceptances, shape
    ``(steps - 1, chains)``. Cost: one proposal batch (one sampling pass of the flow, done by the
    caller) and :math:`O(\text{steps} \times \text{chains})` comparisons.

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2).inv, fl.StandardNormal(2))
        >>> x, log_w = fl.diagnostics.log_weights(flow, fl.targets.banana_log_prob, 500 * 4)
        >>> states, accepted = fl.diagnostics.independence_mh(x.view(500, 4, 2), log_w.view(500, 4))
        >>> states.shape, accepted.shape
        (torch.Size([500, 4, 2]), torch.Size([499, 4]))
    """
    if not isinstance(proposals, Tensor) or proposals.dim() != 3 or proposals.shape[0] == 0:
        raise ValueError(f"proposals must have shape (steps, chains, D) with steps >= 1, got "
                         f"{getattr(proposals, 'shape', type(proposals).__name__)}.")
    if proposals.is_complex() or proposals.dtype == torch.bool:
        raise ValueError(f"proposals must hold real points, got dtype {proposals.dtype}.")
    if not isinstance(log_w, Tensor) or log_w.shape != proposals.shape[:2]:
        raise ValueError(f"log_w must have shape (steps, chains) = {tuple(proposals.shape[:2])}, got {getattr(log_w, 'shape', None)}.")
    if log_w.is_complex() or log_w.dtype == torch.bool:
        raise ValueError(f"log_w must hold real log-weights, got dtype {log_w.dtype}.")
    log_w = log_w.double()
    if torch.isnan(log_w).any() or (log_w == math.inf).any():
        raise ValueError("log_w contains NaN or +inf; check the target and the proposal's log-densities.")
    if bool((log_w == -math.inf).all(dim=0).any()):
        raise ValueError("every proposal of some chain has weight zero (log_w = -inf): the proposal puts no mass "
                         "where the target lives.")
    steps = proposals.shape[0]
    log_u = torch.rand(log_w.shape, dtype=log_w.dtype, device=log_w.device, generator=generator).log()
    states = proposals.clone()
    accepted = torch.zeros(steps - 1, log_w.shape[1], dtype=torch.bool, device=log_w.device)
    current = log_w[0].clone()
    for t in range(1, steps):
        take = log_u[t] < log_w[t] - current
        accepted[t - 1] = take
        states[t] = torch.where(take[:, None], proposals[t], states[t - 1])
        current = torch.where(take, log_w[t], current)
    return states, accepted


@torch.no_grad()
def random_walk_mh(
    log_prob_fn: LogDensity, start: Tensor, steps: int, step_size: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    r"""Random-walk Metropolis chains, one per row of ``start`` (shape ``(chains, D)``).

    Each step proposes :math:`x' = x + \sigma \varepsilon`, :math:`\varepsilon \sim N(0, I)`
    (:math:`\sigma` = ``step_size``), and accepts with probability
    :math:`\min(1, \tilde p(x') / \tilde p(x))` (the proposal is symmetric, so :math:`q` cancels).
    Cost: ``steps`` evaluations of ``log_prob_fn`` on ``chains`` points.

    Returns the states, shape ``(steps, chains, D)`` (the first row is ``start``), and the
    acceptances, shape ``(steps - 1, chains)``.

    Example:
        >>> import torch, flowlab as fl
        >>> states, accepted = fl.diagnostics.random_walk_mh(fl.targets.banana_log_prob, torch.zeros(3, 2), 100, 0.5)
        >>> states.shape, accepted.shape
        (torch.Size([100, 3, 2]), torch.Size([99, 3]))
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be a function of x of shape (n, D), got {type(log_prob_fn).__name__}.")
    if not isinstance(start, Tensor) or start.dim() != 2:
        raise ValueError(f"start must be a tensor of shape (chains, D), got {getattr(start, 'shape', type(start).__name__)}.")
    check_batch("start", start, start.shape[-1])
    if not start.is_floating_point() or not bool(torch.isfinite(start).all()):
        raise ValueError(f"start must hold finite floating point values (dtype {start.dtype}): pass start.float() "
                         "or start.double(), without NaN.")
    steps = check_positive_int("steps", steps, minimum=2)
    if steps * max(1, start.shape[0]) > MAX_SAMPLES:
        raise ValueError(f"steps * chains = {steps} * {start.shape[0]} is more than {MAX_SAMPLES:,} states: "
                         "run fewer steps or chains (or in pieces, each starting where the last ended).")
    step_size = check_positive_float("step_size", step_size)

    def log_prob(x: Tensor) -> Tensor:
        values = log_prob_fn(x)
        if not isinstance(values, Tensor) or values.shape != (len(x),):
            raise ValueError(f"log_prob_fn must map (chains, D) points to shape (chains,), got "
                             f"{getattr(values, 'shape', type(values).__name__)}.")
        if bool(torch.isnan(values).any()) or bool((values == math.inf).any()):
            raise ValueError("log_prob_fn returned NaN or +inf: a log-density is finite, or -inf where it is 0.")
        return values

    noise = torch.randn((steps - 1,) + tuple(start.shape), dtype=start.dtype, device=start.device, generator=generator)
    log_u = torch.rand(steps - 1, start.shape[0], dtype=start.dtype, device=start.device, generator=generator).log()
    states = start.new_empty((steps,) + tuple(start.shape))
    states[0] = start
    accepted = torch.zeros(steps - 1, start.shape[0], dtype=torch.bool, device=start.device)
    x, lp = start, log_prob(start)
    for t in range(1, steps):
        y = x + step_size * noise[t - 1]
        ly = log_prob(y)
        take = log_u[t - 1] < ly - lp
        x, lp = torch.where(take[:, None], y, x), torch.where(take, ly, lp)
        states[t], accepted[t - 1] = x, take
    return states, accepted
