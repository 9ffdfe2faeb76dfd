r"""Two unnormalized 2-D log-densities with a known normalizing constant, of the kind met when
sampling: Neal's funnel (exact :math:`\log Z` and marginals) and the posterior of a Bayesian
logistic regression with two parameters on synthetic data (:math:`\log Z`, the log evidence, by
quadrature).

References: Neal (2003), *Slice sampling*, Annals of Statistics 31(3) (the funnel); Hoffman et al.
(2019), *NeuTra-lizing bad geometry in Hamiltonian Monte Carlo using neural transport* (both as
benchmarks for flow-based samplers).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_positive_int, check_seed
from ..diagnostics import log_z_quadrature
from ..numerics.quadrature import check_nodes, gauss_legendre
from ._args import count, generator, length, points
from ._gaussians import mixture_log_prob

FUNNEL_SCALE = 20.0
r"""The largest ``scale`` of the funnel: :math:`u = e^{v/2}\varepsilon` overflows float32 once
:math:`v > 176`, which :math:`v \sim N(0, \sigma^2)` reaches for :math:`\sigma` much above 20."""


def _funnel_scale(scale) -> float:
    return length("scale", scale, FUNNEL_SCALE, "(u = exp(v / 2) e overflows float32 beyond)")


def _data_seed(seed) -> int:
    seed = check_seed("seed", seed)
    if seed is None:
        raise ValueError("seed must be an integer: it fixes the data set of the posterior (None would draw "
                         "different data at every call).")
    return seed


# --------------------------------------------------------------------------------------------
# Neal's funnel
# --------------------------------------------------------------------------------------------


def funnel_log_prob(x: Tensor, scale: float = 3.0) -> Tensor:
    r"""Neal's funnel in 2-D, unnormalized, with coordinates :math:`x = (v, u)`:
    :math:`v \sim N(0, \sigma^2)` and :math:`u \mid v \sim N(0, e^{v})`, :math:`\sigma` = ``scale``,

    .. math:: \log \tilde p(v, u) = -\frac{v^2}{2\sigma^2} - \frac{u^2}{2 e^{v}} - \frac v2 .

    The inner integral over :math:`u` is :math:`\sqrt{2\pi}\, e^{v/2}`, which cancels the last
    term, so :math:`Z = \sqrt{2\pi} \cdot \sqrt{2\pi}\,\sigma = 2\pi\sigma` (:func:`funnel_log_z`).
    The neck (:math:`v \ll 0`) is exponentially narrow and the mouth wide: no single step size
    suits a random walk, and :math:`\mathbb E[u^2] = \mathbb E[e^{v}] = e^{\sigma^2/2}`
    (:math:`\approx 90` for :math:`\sigma = 3`) comes from rare large :math:`v`.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.targets.funnel_log_prob(torch.tensor([[0.0, 1.0]]))
        tensor([-0.5000])
    """
    x = points("x", x)
    scale = _funnel_scale(scale)
    v, u = x.unbind(-1)
    return -0.5 * (v / scale) ** 2 - 0.5 * u**2 * torch.exp(-v) - 0.5 * v


def funnel_log_z(scale: float = 3.0) -> float:
    r"""The exact :math:`\log Z = \log(2\pi\sigma)` of :func:`funnel_log_prob`."""
    return math.log(2 * math.pi * _funnel_scale(scale))


def funnel(n: int, scale: float = 3.0, seed: int | None = None) -> Tensor:
    r"""Exact samples of the normalized funnel: :math:`v = \sigma \varepsilon_1`,
    :math:`u = e^{v/2} \varepsilon_2`.

    Example:
        >>> import flowlab as fl
        >>> fl.targets.funnel(100, seed=0).shape
        torch.Size([100, 2])
    """
    n = count(n)
    scale = _funnel_scale(scale)
    e = torch.randn(n, 2, generator=generator(seed))
    v = scale * e[:, 0]
    return torch.stack([v, torch.exp(v / 2) * e[:, 1]], dim=1)


def funnel_marginal_log_prob(u: Tensor, scale: float = 3.0, nodes: int = 400) -> Tensor:
    r"""The exact marginal log-density of the funnel's second coordinate :math:`u`,

    .. math:: p(u) = \int N(u; 0, e^{v})\, N(v; 0, \sigma^2)\, dv,

    by ``nodes``-point Gauss-Legendre quadrature over :math:`v \in [-12\sigma, 12\sigma]` (the
    Gaussian factor outside is below :math:`e^{-72}`). The marginal of :math:`v` is
    :math:`N(0, \sigma^2)`. ``u`` is a tensor of any shape.

    Example:
        >>> import torch, flowlab as fl
        >>> u = torch.linspace(-200, 200, 40001, dtype=torch.float64)
        >>> p = fl.targets.funnel_marginal_log_prob(u[1:-1]).exp()
        >>> round(float(p.sum() * (u[1] - u[0])), 2)  # most of the mass; the tails are long
        1.0
    """
    scale = _funnel_scale(scale)
    nodes = check_nodes("nodes", nodes)
    u = torch.as_tensor(u)
    if u.is_complex() or u.dtype == torch.bool:
        raise ValueError(f"u must hold real numbers, got dtype {u.dtype}.")
    a, b = -12 * scale, 12 * scale

    def integrand(v: Tensor) -> Tensor:  # v has shape (nodes, *u.shape)
        log_n_u = -0.5 * u**2 * torch.exp(-v) - 0.5 * v - 0.5 * math.log(2 * math.pi)
        log_n_v = -0.5 * (v / scale) ** 2 - math.log(scale * math.sqrt(2 * math.pi))
        return torch.exp(log_n_u + log_n_v)

    zeros = torch.zeros_like(u, dtype=torch.float64)
    return gauss_legendre(integrand, zeros + a, zeros + b, n=nodes).log()


# --------------------------------------------------------------------------------------------
# Bayesian logistic regression with two parameters
# --------------------------------------------------------------------------------------------


def logistic_data(n: int = 40, seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""The synthetic data set of :func:`logistic_log_prob`: ``n`` inputs
    :math:`s_i \sim N(0, 1)` and labels :math:`y_i \in \{-1, +1\}` with
    :math:`P(y_i = 1) = \sigma(a + b s_i)` for the true parameters :math:`(a, b) = (0.5, -1.5)`.
    The same ``seed`` gives the same data (float64).

    Example:
        >>> import flowlab as fl
        >>> s, y = fl.targets.logistic_data()
        >>> s.shape, sorted(set(y.tolist()))
        (torch.Size([40]), [-1.0, 1.0])
    """
    n = check_positive_int("n", n, maximum=10**6, hint="(data points of the regression)")
    g = generator(_data_seed(seed))
    s = torch.randn(n, generator=g, dtype=torch.float64)
    p = torch.sigmoid(0.5 - 1.5 * s)
    y = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < p, 1.0, -1.0).to(torch.float64)
    return s, y


def logistic_log_prob(theta: Tensor, n: int = 40, seed: int = 0, prior_std: float = 2.0) -> Tensor:
    r"""The unnormalized posterior of a logistic regression with intercept :math:`a` and slope
    :math:`b`, :math:`\theta = (a, b)`, on :func:`logistic_data`, with prior
    :math:`\theta \sim N(0, \tau^2 I)` (:math:`\tau` = ``prior_std``):

    .. math:: \log \tilde p(\theta) = \sum_{i=1}^{n} \log \sigma\big(y_i (a + b s_i)\big)
              - \frac{\lVert\theta\rVert^2}{2\tau^2} - \log(2\pi\tau^2)

    (likelihood times the normalized prior), so :math:`Z = p(\text{data})` is the evidence; it has
    no closed form and :func:`logistic_log_z` computes it by quadrature. Evaluated in the dtype
    of ``theta``.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.targets.logistic_log_prob(torch.zeros(2, 2)).shape
        torch.Size([2])
    """
    theta = points("theta", theta)
    tau = length("prior_std", prior_std)
    s, y = (t.to(device=theta.device, dtype=theta.dtype) for t in logistic_data(n, seed))
    logits = theta[:, :1] + theta[:, 1:] * s  # (batch, n)
    log_lik = torch.nn.functional.logsigmoid(y * logits).sum(-1)
    return log_lik + mixture_log_prob(theta, theta.new_zeros(1, 2), tau)  # the prior N(0, tau^2 I): one component


LOGISTIC_BOX = (-2.0, 6.0, -10.0, 2.0)
"""A box holding the posterior of :func:`logistic_log_prob` with the default data (its mass
outside changes log Z by less than 1e-10; the tests check it)."""


def logistic_log_z(n: int = 40, seed: int = 0, prior_std: float = 2.0, points: int = 128) -> float:
    r"""The log evidence :math:`\log Z = \log \int \tilde p(\theta)\, d\theta` of
    :func:`logistic_log_prob`, by tensor-product Gauss-Legendre quadrature with ``points`` nodes
    per axis on :data:`LOGISTIC_BOX` (float64).

    Example:
        >>> import flowlab as fl
        >>> round(fl.targets.logistic_log_z(), 3) == round(fl.targets.logistic_log_z(points=400), 3)
        True
    """
    logistic_data(n, seed)  # the settings are checked before the quadrature, with their own names
    length("prior_std", prior_std)
    return log_z_quadrature(lambda t: logistic_log_prob(t, n, seed, prior_std), LOGISTIC_BOX, points)
