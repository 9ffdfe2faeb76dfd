r"""Targets of the chapter on universality, each with its exact density, CDF and transport map.

* a 1-D Gaussian mixture (:func:`mixture_1d`), with its log-density and its CDF in closed form;
* the Rosenbrock banana (:func:`rosenbrock`), :math:`x_1 \sim \mathcal N(0, s^2)`,
  :math:`x_2 \mid x_1 \sim \mathcal N(\kappa(x_1^2 - s^2), w^2)`: Gaussian given :math:`x_1`,
  bimodal given :math:`x_2`;
* three round-ish bumps (:func:`three_bumps`), a mixture of axis-aligned Gaussians whose
  marginals and conditionals are multimodal in both orders.

For the two 2-D densities the Knothe-Rosenblatt map is known in closed form
(:func:`rosenbrock_kr`, :func:`three_bumps_kr`): references for the numerical map of
:func:`flowlab.numerics.knothe_rosenblatt`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..numerics.cdf import check_order
from ._args import count, curvature as _curvature, generator as _generator, length, points
from ._gaussians import LOG_2PI, mixture_log_prob

__all__ = [
    "mixture_1d",
    "mixture_1d_cdf",
    "mixture_1d_log_prob",
    "rosenbrock",
    "rosenbrock_kr",
    "rosenbrock_log_prob",
    "three_bumps",
    "three_bumps_kr",
    "three_bumps_log_prob",
]


def _mixture(weights, locs, scales) -> tuple[Tensor, Tensor, Tensor]:
    try:
        w, m, s = (torch.as_tensor(v, dtype=torch.float64).flatten() for v in (weights, locs, scales))
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"weights, locs and scales must be sequences of numbers, got {weights!r}, {locs!r}, "
                         f"{scales!r}.") from None
    if w.numel() > 1000:
        raise ValueError(f"a mixture of at most 1000 components, got {w.numel()}.")
    if not (w.numel() == m.numel() == s.numel() >= 1):
        raise ValueError(
            f"weights, locs and scales must have one entry per component, got {w.numel()}, {m.numel()}, {s.numel()}."
        )
    if not (torch.isfinite(w).all() and (w > 0).all() and abs(float(w.sum()) - 1) < 1e-6):
        raise ValueError(f"weights must be positive and sum to 1, got {w.tolist()}.")
    if not (torch.isfinite(m).all() and torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"locs must be finite and scales positive, got locs={m.tolist()}, scales={s.tolist()}.")
    if (m.abs() > 1e6).any() or (s > 1e6).any():
        raise ValueError(f"locs and scales must be at most 1e6 in size (the samples are float32), got "
                         f"locs={m.tolist()}, scales={s.tolist()}.")
    return w / w.sum(), m, s


def _column(name: str, x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (n, 1), got {type(x).__name__}.")
    if x.dim() == 2 and x.shape[1] == 1:
        return points(name, x, 1)[:, 0]
    raise ValueError(f"{name} must have shape (n, 1), got {tuple(x.shape)}; use x[:, None] for a flat tensor.")


def mixture_1d(n: int, weights=(0.3, 0.7), locs=(-2.0, 1.0), scales=(0.4, 0.8), seed: int | None = None) -> Tensor:
    r"""Samples of the 1-D Gaussian mixture :math:`p(x) = \sum_k \pi_k\,\mathcal N(x; m_k, s_k^2)`,
    shape ``(n, 1)``, float32.

    Example:
        >>> import flowlab as fl
        >>> fl.targets.mixture_1d(5, seed=0).shape
        torch.Size([5, 1])
    """
    n = count(n)
    w, m, s = _mixture(weights, locs, scales)
    g = _generator(seed)
    k = torch.multinomial(w, n, replacement=True, generator=g)
    x = m[k] + s[k] * torch.randn(n, generator=g, dtype=torch.float64)
    return x[:, None].float()


def mixture_1d_log_prob(x: Tensor, weights=(0.3, 0.7), locs=(-2.0, 1.0), scales=(0.4, 0.8)) -> Tensor:
    r"""The exact log-density :math:`\log \sum_k \pi_k\,\mathcal N(x; m_k, s_k^2)` of :func:`mixture_1d`
    at ``x`` of shape ``(n, 1)``; returns ``(n,)``.

    Example:
        >>> import torch, flowlab as fl
        >>> x = torch.linspace(-8, 8, 4001, dtype=torch.float64)[:, None]
        >>> round(float(fl.targets.mixture_1d_log_prob(x).exp().sum() * 16 / 4000), 6)  # integrates to 1
        1.0
    """
    t = _column("x", x)
    w, m, s = (v.to(t) for v in _mixture(weights, locs, scales))
    return mixture_log_prob(t[:, None], m[:, None], s[:, None], torch.log(w))


def mixture_1d_cdf(x: Tensor, weights=(0.3, 0.7), locs=(-2.0, 1.0), scales=(0.4, 0.8)) -> Tensor:
    r"""The exact CDF :math:`F(x) = \sum_k \pi_k\,\Phi((x - m_k)/s_k)` of :func:`mixture_1d`
    at ``x`` of shape ``(n, 1)``; returns ``(n,)``.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.targets.mixture_1d_cdf(torch.tensor([[-20.0], [20.0]])).tolist()
        [0.0, 1.0]
    """
    t = _column("x", x)
    w, m, s = (v.to(t) for v in _mixture(weights, locs, scales))
    return (w * torch.special.ndtr((t[:, None] - m) / s)).sum(1)


# --------------------------------------------------------------------------------------------
# The Rosenbrock banana
# --------------------------------------------------------------------------------------------


def _banana_check(scale, width, curvature) -> tuple[float, float, float]:
    return length("scale", scale), length("width", width), _curvature(curvature)


def rosenbrock(
    n: int, scale: float = 1.0, width: float = 0.35, curvature: float = 0.5, seed: int | None = None
) -> Tensor:
    r"""Exact samples of the Rosenbrock banana: :math:`x_1 = s e_1`,
    :math:`x_2 = \kappa(x_1^2 - s^2) + w e_2` with :math:`e \sim \mathcal N(0, I)`; ``(n, 2)``, float32.

    The same distribution as :func:`flowlab.targets.banana` (whose log-density is unnormalised,
    for the reverse KL); here :func:`rosenbrock_log_prob` is the normalised one.

    Example:
        >>> import flowlab as fl
        >>> fl.targets.rosenbrock(3, seed=0).shape
        torch.Size([3, 2])
    """
    n = count(n)
    scale, width, curvature = _banana_check(scale, width, curvature)
    e = torch.randn(n, 2, generator=_generator(seed))
    x1 = scale * e[:, 0]
    return torch.stack([x1, curvature * (x1**2 - scale**2) + width * e[:, 1]], dim=1)


def rosenbrock_log_prob(x: Tensor, scale: float = 1.0, width: float = 0.35, curvature: float = 0.5) -> Tensor:
    r"""The exact, normalised log-density of :func:`rosenbrock`:

    .. math:: \log p(x) = \log \mathcal N(x_1; 0, s^2) + \log \mathcal N\big(x_2; \kappa(x_1^2 - s^2), w^2\big).

    Example:
        >>> import torch, flowlab as fl
        >>> x = torch.cartesian_prod(torch.linspace(-7, 7, 701, dtype=torch.float64),
        ...                          torch.linspace(-3, 25, 1401, dtype=torch.float64))  # x2 reaches 24
        >>> round(float(fl.targets.rosenbrock_log_prob(x).exp().sum() * 0.02**2), 4)  # integrates to 1
        1.0
    """
    x = points("x", x)
    scale, width, curvature = _banana_check(scale, width, curvature)
    x1, x2 = x.unbind(-1)
    r = (x2 - curvature * (x1**2 - scale**2)) / width
    return -0.5 * (x1 / scale) ** 2 - 0.5 * r**2 - LOG_2PI - math.log(scale * width)


def rosenbrock_kr(x: Tensor, scale: float = 1.0, width: float = 0.35, curvature: float = 0.5) -> Tensor:
    r"""The Knothe-Rosenblatt map of :func:`rosenbrock` in the order :math:`x_1 \to x_2`, in closed form:

    .. math:: T(x) = \Big(\frac{x_1}{s},\; \frac{x_2 - \kappa(x_1^2 - s^2)}{w}\Big).

    Both conditionals are Gaussian, so :math:`\Phi^{-1} \circ F` is affine in each coordinate:
    one affine autoregressive layer can represent it exactly. (In the order
    :math:`x_2 \to x_1` the conditional of :math:`x_1` is bimodal and there is no closed form.)

    Example:
        >>> import torch, flowlab as fl
        >>> fl.targets.rosenbrock_kr(torch.tensor([[1.0, 0.35]])).tolist()
        [[1.0, 1.0]]
    """
    x = points("x", x)
    scale, width, curvature = _banana_check(scale, width, curvature)
    x1, x2 = x.unbind(-1)
    return torch.stack([x1 / scale, (x2 - curvature * (x1**2 - scale**2)) / width], dim=-1)


# --------------------------------------------------------------------------------------------
# Three bumps
# --------------------------------------------------------------------------------------------

_BUMPS = {
    "weights": (0.3, 0.3, 0.4),
    "means": ((-1.5, -1.0), (1.5, -1.0), (0.0, 1.2)),
    "stds": ((0.5, 0.5), (0.5, 0.5), (0.9, 0.4)),
}


def _bumps(like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    w, m, s = (torch.tensor(_BUMPS[k], dtype=like.dtype, device=like.device) for k in ("weights", "means", "stds"))
    return w, m, s


def three_bumps(n: int, seed: int | None = None) -> Tensor:
    r"""Samples of three axis-aligned Gaussian bumps, ``(n, 2)``, float32:

    .. math:: p(x) = \sum_{k=1}^{3} \pi_k\, \mathcal N(x_1; m_{k1}, s_{k1}^2)\, \mathcal N(x_2; m_{k2}, s_{k2}^2),

    two small bumps at :math:`(\pm 1.5, -1)` (weight 0.3 each, standard deviation 0.5) and a
    wide flat one at :math:`(0, 1.2)` (weight 0.4, standard deviations 0.9 and 0.4). Both
    marginals and both families of conditionals are mixtures, mostly multimodal.

    Example:
        >>> import flowlab as fl
        >>> fl.targets.three_bumps(4, seed=0).shape
        torch.Size([4, 2])
    """
    n = count(n)
    g = _generator(seed)
    w, m, s = _bumps(torch.zeros((), dtype=torch.float64))
    k = torch.multinomial(w, n, replacement=True, generator=g)
    x = m[k] + s[k] * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x.float()


def three_bumps_log_prob(x: Tensor) -> Tensor:
    r"""The exact log-density of :func:`three_bumps` (formula there).

    Example:
        >>> import torch, flowlab as fl
        >>> g = torch.linspace(-6, 6, 601, dtype=torch.float64)
        >>> x = torch.cartesian_prod(g, g)
        >>> round(float(fl.targets.three_bumps_log_prob(x).exp().sum() * 0.02**2), 4)  # integrates to 1
        1.0
    """
    x = points("x", x)
    w, m, s = _bumps(x)
    return mixture_log_prob(x, m, s, torch.log(w))


def three_bumps_kr(x: Tensor, order: Sequence[int] = (0, 1)) -> Tensor:
    r"""The Knothe-Rosenblatt map of :func:`three_bumps` in closed form, for ``order = (i, j)``:

    .. math::
        z_i = \Phi^{-1}\Big(\sum_k \pi_k \Phi\big(\tfrac{x_i - m_{ki}}{s_{ki}}\big)\Big), \qquad
        z_j = \Phi^{-1}\Big(\sum_k \omega_k(x_i)\, \Phi\big(\tfrac{x_j - m_{kj}}{s_{kj}}\big)\Big),

    with the posterior weights of the components given :math:`x_i`,
    :math:`\omega_k(x_i) \propto \pi_k\, \mathcal N(x_i; m_{ki}, s_{ki}^2)`: the conditional of
    a mixture of products is a mixture of the same factors, reweighted.

    Example:
        >>> import torch, flowlab as fl
        >>> x = fl.targets.three_bumps(20000, seed=0).double()
        >>> z = fl.targets.three_bumps_kr(x)          # should be N(0, I)
        >>> bool(z.mean(0).abs().max() < 0.03), bool((z.std(0) - 1).abs().max() < 0.03)
        (True, True)
    """
    x = points("x", x)
    i, j = check_order(order)
    w, m, s = _bumps(x)
    zi = (x[:, i, None] - m[:, i]) / s[:, i]
    zj = (x[:, j, None] - m[:, j]) / s[:, j]
    Fi = (w * torch.special.ndtr(zi)).sum(1)
    post = torch.softmax(torch.log(w) - 0.5 * zi**2 - torch.log(s[:, i]), dim=1)
    Fj = (post * torch.special.ndtr(zj)).sum(1)
    eps = 1e-12
    out = torch.empty_like(x)
    out[:, i] = torch.special.ndtri(Fi.clamp(eps, 1 - eps))
    out[:, j] = torch.special.ndtri(Fj.clamp(eps, 1 - eps))
    return out
