r"""The objectives a flow is trained by: the forward and the reverse KL divergence, and, for a
continuous flow, flow matching.

Minimizing the forward KL divergence :math:`D_{\mathrm{KL}}(p_X \,\|\, p_\theta)` over
:math:`\theta` is the same as minimizing the negative log-likelihood of data
:math:`x^{(1..m)} \sim p_X`,

.. math:: \mathcal L(\theta) = -\frac1m \sum_{j=1}^{m} \log p_\theta(x^{(j)}),

because the two differ by the entropy of :math:`p_X`, which does not depend on :math:`\theta`.

Training by the reverse KL divergence (:func:`reverse_kl`) needs no data, only an unnormalized
log-density :math:`\log \tilde p = \log (Z\, p_X)` that can be evaluated anywhere. It minimizes

.. math:: \mathcal L(\theta) = \mathbb E_{x \sim p_\theta}\big[\log p_\theta(x) - \log \tilde p(x)\big]
          = D_{\mathrm{KL}}(p_\theta \,\|\, p_X) - \log Z,

estimated with samples of the flow itself, so :math:`\mathcal L \ge -\log Z`.

A continuous flow (:class:`~flowlab.continuous.CNF`) can also be trained without solving its
ODE: :func:`flow_matching` regresses its vector field on the velocity of a chosen path from the
data to the base. Its loss is not a likelihood.

:class:`flowlab.train.Training` minimizes any of them, one step at a time.

References: Papamakarios et al. 2021 (Normalizing flows for probabilistic modeling and
inference, section 2.3); Lipman et al. 2023 (Flow matching for generative modeling).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._checks import check_batch, check_callable, check_choice, check_finite, check_positive_int
from .continuous import CNF
from .core import Flow, check_flow

__all__ = ["COUPLINGS", "MAX_OT_BATCH", "PATHS", "REVERSE_KL_SAMPLES", "flow_matching", "forward_kl", "reverse_kl"]

REVERSE_KL_SAMPLES = 256
"""Samples of the flow per step for the reverse KL when ``batch_size`` is ``None``."""

PATHS = ("linear", "vp")
"""The conditional paths of :func:`flow_matching`: straight lines, or the variance-preserving
(cosine) Gaussian path of diffusion models."""
COUPLINGS = ("independent", "ot")
"""How :func:`flow_matching` pairs data with base samples (or a tensor of base points: fixed pairs)."""
MAX_OT_BATCH = 4096
"""The largest batch :func:`flow_matching` pairs by exact optimal transport (an
:math:`n \times n` assignment, :math:`O(n^3)`: a few seconds at this size)."""


def forward_kl(flow: Flow, x: Tensor) -> Tensor:
    r"""The forward KL objective up to a constant: the mean negative log-likelihood of ``x``.

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
        >>> float(fl.forward_kl(flow, torch.zeros(3, 2)).detach()) > 0
        True
    """
    check_flow("flow", flow)
    return -flow.log_prob(x).mean()


def reverse_kl(flow: Flow, log_prob_fn: Callable[[Tensor], Tensor], n: int, generator: torch.Generator | None = None) -> Tensor:
    r"""The reverse KL objective up to a constant, estimated with ``n`` samples of the flow.

    With :math:`x^{(j)} = f(z^{(j)})`, :math:`z^{(j)} \sim p_Z`, and ``log_prob_fn`` an
    unnormalized log-density :math:`\log \tilde p = \log(Z\, p_X)`,

    .. math:: \hat{\mathcal L} = \frac1n \sum_{j=1}^{n}
              \big[\log p_\theta(x^{(j)}) - \log \tilde p(x^{(j)})\big],
              \qquad \mathbb E\,\hat{\mathcal L} = D_{\mathrm{KL}}(p_\theta \,\|\, p_X) - \log Z.

    The samples come from :meth:`Flow.rsample_and_log_prob` (one call of
    ``transform.inverse``), so gradients flow through them to the parameters
    (reparametrization): use a flow whose sampling direction is the cheap one, such as
    ``MAF(...).inv``. A ``log_prob_fn`` that returns NaN or :math:`-\infty` at finite samples
    raises a ``ValueError`` that shows where.

    Example:
        >>> import flowlab as fl
        >>> from flowlab.train import reverse_kl
        >>> flow = fl.Flow(fl.MAF(2).inv, fl.StandardNormal(2))
        >>> loss = reverse_kl(flow, fl.targets.banana_log_prob, 128)
        >>> loss.shape
        torch.Size([])
    """
    check_flow("flow", flow)
    check_callable("log_prob_fn", log_prob_fn, "a function of x of shape (n, D) returning log densities of shape (n,)")
    n = check_positive_int("n", n)
    x, log_q = flow.rsample_and_log_prob(n, generator=generator)
    log_p = log_prob_fn(x)
    if not isinstance(log_p, Tensor) or log_p.shape != (n,):
        shape = tuple(log_p.shape) if isinstance(log_p, Tensor) else type(log_p).__name__
        raise ValueError(f"log_prob_fn must map samples of shape ({n}, {flow.features}) to a tensor of shape ({n},), got {shape}.")
    bad = ~torch.isfinite(log_p) & torch.isfinite(x).all(1) & ~(log_p == math.inf)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"log_prob_fn returned {float(log_p[i].detach())} at {int(bad.sum())} of {n} samples of the flow, for example at "
            f"x = {[round(v, 4) for v in x[i].tolist()]}. An unnormalized log-density must be finite wherever the "
            "flow puts mass: check it there (a log of 0 or of a negative number?)."
        )
    return (log_q - log_p).mean()


def check_cnf_flow(name: str, flow) -> CNF:
    """``flow`` is a :class:`~flowlab.Flow` whose transform is a :class:`~flowlab.CNF`; returns the CNF."""
    check_flow(name, flow)
    if not isinstance(flow.transform, CNF):
        raise ValueError(f"flow matching trains the vector field of a continuous flow: {name} must be "
                         f"fl.Flow(fl.CNF(...), base), got a flow whose transform is a {type(flow.transform).__name__}. "
                         "Train other flows by maximum likelihood (objective='forward_kl').")
    return flow.transform


def _path(path: str, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r""":math:`(\alpha_t, \sigma_t, \dot\alpha_t, \dot\sigma_t)` of a conditional path, each ``(n, 1)``."""
    t = t.unsqueeze(1)
    if path == "linear":
        return 1 - t, t, -torch.ones_like(t), torch.ones_like(t)
    half_pi = 0.5 * math.pi
    cos, sin = torch.cos(half_pi * t), torch.sin(half_pi * t)
    return cos, sin, -half_pi * sin, half_pi * cos


def _ot_pairs(x: Tensor, eps: Tensor) -> Tensor:
    r"""``eps`` reordered so that row i goes with ``x[i]``: the assignment that minimizes
    :math:`\sum_i \lVert x_i - \varepsilon_{\pi(i)}\rVert^2` (exact, by scipy's Hungarian-type solver)."""
    from scipy.optimize import linear_sum_assignment  # imported on first use: import flowlab stays light

    cost = torch.cdist(x.detach().double(), eps.detach().double()).pow(2).cpu().numpy()
    _, cols = linear_sum_assignment(cost)
    return eps[torch.as_tensor(cols, device=eps.device)]


def flow_matching(flow: Flow, x: Tensor, *, coupling="independent", path: str = "linear",
                  generator: torch.Generator | None = None) -> Tensor:
    r"""The conditional flow-matching loss of the batch ``x`` for a flow whose transform is a
    :class:`~flowlab.CNF`: a regression of its vector field, with no ODE solve.

    **The path, in the CNF's own time.** A CNF carries data at :math:`t = 0` to the latent at
    :math:`t = 1` (``forward``, the density direction). Flow matching picks how a data point
    :math:`x` travels to a base sample :math:`\varepsilon \sim p_Z`, the *conditional path*

    .. math:: z_t = \alpha_t\, x + \sigma_t\, \varepsilon, \qquad
              \text{linear: } \alpha_t = 1 - t,\ \sigma_t = t; \qquad
              \text{vp: } \alpha_t = \cos\tfrac{\pi t}{2},\ \sigma_t = \sin\tfrac{\pi t}{2}

    (``path``; vp keeps :math:`\alpha_t^2 + \sigma_t^2 = 1`, the variance-preserving path of
    diffusion models), with :math:`z_0 = x`, :math:`z_1 = \varepsilon`, and its *conditional
    velocity* :math:`u_t(z_t \mid x, \varepsilon) = \dot\alpha_t x + \dot\sigma_t
    \varepsilon` (linear: :math:`\varepsilon - x`, constant along the line). Over all pairs
    the points :math:`z_t` have the *marginal path* :math:`p_t` (:math:`p_0` the data,
    :math:`p_1` the base), moved by the *marginal velocity*
    :math:`u_t(z) = \mathbb E[\dot\alpha_t X + \dot\sigma_t \varepsilon \mid z_t = z]`:
    each conditional density and its velocity satisfy the continuity equation
    :math:`\partial_t p_t + \nabla\cdot(p_t u_t) = 0`, and so does their mixture, because the
    equation is linear in :math:`(p_t, p_t u_t)`. The CNF with field :math:`u_t` therefore carries
    the data distribution exactly onto the base. The loss is written in the CNF's time and
    direction, so the trained field *is* the CNF's field: ``log_prob`` (instantaneous change of
    variables) and ``sample`` (integrating from :math:`t = 1` to 0) use it unchanged.

    **The loss.** With :math:`t \sim U[0, 1]` (one per row), :math:`x` the rows of the batch and
    :math:`\varepsilon` from the flow's base (``generator`` draws both),

    .. math:: \mathcal L_{\mathrm{CFM}}(\theta) = \mathbb E\,
              \big\lVert g_\theta(t, z_t) - u_t(z_t \mid x, \varepsilon)\big\rVert^2

    (the mean over rows of the squared norm). The marginal loss
    :math:`\mathcal L_{\mathrm{FM}} = \mathbb E \lVert g_\theta(t, z_t) - u_t(z_t)\rVert^2`
    cannot be computed (:math:`u_t` averages over all data), but the two differ by a constant:
    expanding both squares, the cross terms agree,
    :math:`\mathbb E[g_\theta \cdot u_t(z_t \mid x, \varepsilon)] = \mathbb E[g_\theta \cdot
    \mathbb E[u_t(z_t \mid x, \varepsilon) \mid z_t]] = \mathbb E[g_\theta \cdot u_t(z_t)]`,
    so :math:`\mathcal L_{\mathrm{CFM}} = \mathcal L_{\mathrm{FM}} + \mathbb E_t \mathbb E_{z_t}
    \operatorname{tr} \operatorname{Cov}[u_t(z_t \mid x, \varepsilon) \mid z_t]`, and the last
    term does not depend on :math:`\theta`: the gradients are the same (Lipman et al. 2023,
    Theorem 2).

    **Its minimum is not zero, and it is not a likelihood.** That constant is the loss of the
    perfect field: the conditional velocities of all pairs that pass through a point at the same
    time scatter around their mean. For data :math:`\mathcal N(\mu, s^2 I_D)` and the linear
    path it is :math:`D \pi s / 2`. The loss is a squared speed (squared distance per unit
    time), it scales with the data, and it says nothing of :math:`\log p`: evaluate
    ``flow.log_prob`` for that.

    **Couplings.** ``"independent"`` pairs each row with an independent base sample. ``"ot"``
    pairs the batch's base samples with its rows by exact optimal transport (the assignment
    that minimizes :math:`\sum_i \lVert x_i - \varepsilon_{\pi(i)}\rVert^2`, scipy's
    ``linear_sum_assignment``; a batch of at most :data:`MAX_OT_BATCH` rows): minibatch OT-CFM
    (Tong et al. 2024), whose paths cross less and whose field is straighter. A tensor of the
    shape of ``x`` gives the base point of each row: fixed pairs, such as the (sample, noise)
    pairs of a rectified flow's reflow step (Liu et al. 2023); train on all pairs at each step
    (``batch_size=None``), so that the rows stay paired.

    **Cost.** One evaluation of the field and its backward pass: no ODE solve and no trace
    (maximum likelihood pays a whole solve with :math:`D` trace directions, and its backward
    pass, at every step). ``"ot"`` adds an :math:`n \times n` assignment on the CPU.

    References: Lipman et al. (2023), Flow matching for generative modeling; Liu et al. (2023),
    Flow straight and fast (rectified flow); Albergo & Vanden-Eijnden (2023), Building
    normalizing flows with stochastic interpolants; Tong et al. (2024), Improving and generalizing
    flow-based generative models with minibatch optimal transport; Lipman et al. (2024), Flow
    matching guide and code.

    Example:
        >>> import torch, flowlab as fl
        >>> from flowlab.objectives import flow_matching
        >>> flow = fl.Flow(fl.CNF(2, hidden=16), fl.StandardNormal(2))
        >>> x = fl.targets.circles(512, seed=0)
        >>> loss = flow_matching(flow, x, generator=torch.Generator().manual_seed(0))
        >>> loss.shape
        torch.Size([])
        >>> # the zero field of the start: the loss is E||eps - x||^2 = D + E||x||^2
        >>> abs(loss.item() - (2 + x.pow(2).sum(1).mean().item())) < 0.3
        True
    """
    cnf = check_cnf_flow("flow", flow)
    check_batch("x", x, flow.features)
    path = check_choice("path", path, PATHS, "conditional path")
    ref = next(flow.parameters(), x)
    if x.device != ref.device:
        raise ValueError(f"x is on {x.device} but the flow is on {ref.device}: pass x.to('{ref.device}').")
    x = x.to(ref.dtype if ref.is_floating_point() else torch.get_default_dtype())
    check_finite("x", x, "flow matching needs finite data: remove or impute them")
    n = len(x)
    if isinstance(coupling, Tensor):
        if coupling.shape != x.shape:
            raise ValueError(f"coupling, as a tensor, holds the base point of each row of x: it must have x's shape "
                             f"{tuple(x.shape)}, got {tuple(coupling.shape)}. (With fixed pairs, train on all of them "
                             "at each step: batch_size=None.)")
        eps = coupling.to(device=x.device, dtype=x.dtype)
    else:
        coupling = check_choice("coupling", coupling, COUPLINGS, "coupling")
        eps = flow.base.sample(max(n, 1), generator=generator)[:n].to(x.dtype)
        if coupling == "ot" and n > 1:
            check_positive_int("the batch size of coupling='ot'", n, maximum=MAX_OT_BATCH,
                               hint="(an exact assignment costs O(n^3): use smaller batches)")
            eps = _ot_pairs(x, eps)
    t = torch.rand(n, dtype=x.dtype, device=x.device, generator=generator)
    if path == "linear":  # z_t = x + t (eps - x), fewest operations: this is every step's cost
        target = eps - x
        z = torch.addcmul(x, t.unsqueeze(1), target)
    else:
        alpha, sigma, d_alpha, d_sigma = _path(path, t)
        z = alpha * x + sigma * eps
        target = d_alpha * x + d_sigma * eps
    return (cnf.field(t, z) - target).square().sum() / n
