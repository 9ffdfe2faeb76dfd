r"""Two-dimensional target distributions, generated in code (no downloads).

Each sampler returns a ``float32`` tensor of shape ``(n, 2)`` and takes a ``seed``
(``None`` draws fresh randomness). Where the density is known in closed form, a
``*_log_prob`` function gives it exactly, so a trained flow can be compared with the truth.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_batch, check_positive_float, check_positive_int


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def _circles_scale(noise: float, factor: float) -> float:
    # each coordinate has mean 0 and variance E[r^2]/2 + noise^2 with E[r^2] = (1 + factor^2)/2
    return math.sqrt((1 + factor**2) / 4 + noise**2)


def _check_circles(noise, factor) -> tuple[float, float]:
    noise = check_positive_float("noise", noise)
    if not 0 < factor < 1:
        raise ValueError(f"factor (inner radius / outer radius) must be in (0, 1), got {factor}.")
    return noise, float(factor)


def circles(n: int, noise: float = 0.05, factor: float = 0.5, seed: int | None = None) -> Tensor:
    r"""Two noisy concentric rings, standardized: the notes' opening data set.

    Half the points (in expectation) lie on the unit circle and half on the circle of radius
    ``factor``, at uniformly random angles; Gaussian noise of standard deviation ``noise`` is
    added to each coordinate. The result is divided by the population standard deviation
    :math:`s = \sqrt{(1 + \text{factor}^2)/4 + \text{noise}^2}` of each coordinate, so it has
    mean 0 and variance 1 per coordinate, like ``StandardScaler`` in the notes, but with the
    exact constant, which makes :func:`circles_log_prob` the exact density of these samples.
    (scikit-learn's ``make_circles`` puts its points at evenly spaced angles; here angles are
    random, so the points are independent draws.)

    Example:
        >>> import flowlab as fl
        >>> fl.targets.circles(1000, seed=0).shape
        torch.Size([1000, 2])
    """
    n = check_positive_int("n", n)
    noise, factor = _check_circles(noise, factor)
    g = _generator(seed)
    radius = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, factor)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    x = x + noise * torch.randn(n, 2, generator=g)
    return x / _circles_scale(noise, factor)


def _ring_log_prob(r: Tensor, radius: float, noise: float) -> Tensor:
    # log of (1/2pi) \int N(x; radius (cos t, sin t), noise^2 I) dt
    #   = -log(2 pi noise^2) - (|x|^2 + radius^2)/(2 noise^2) + log I0(|x| radius / noise^2),
    # written with the scaled Bessel function i0e(a) = exp(-a) I0(a) to avoid overflow.
    a = r * radius / noise**2
    return -math.log(2 * math.pi * noise**2) - (r - radius) ** 2 / (2 * noise**2) + torch.log(torch.special.i0e(a))


def circles_log_prob(x: Tensor, noise: float = 0.05, factor: float = 0.5) -> Tensor:
    r"""The exact log-density of :func:`circles` with the same ``noise`` and ``factor``.

    A ring of radius :math:`\rho` blurred by isotropic Gaussian noise :math:`\sigma` has density

    .. math:: p_\rho(x) = \frac{1}{2\pi\sigma^2}
        \exp\!\left(-\frac{\lVert x\rVert^2 + \rho^2}{2\sigma^2}\right)
        I_0\!\left(\frac{\lVert x\rVert \rho}{\sigma^2}\right)

    (:math:`I_0` is the modified Bessel function of the first kind), the data are the mixture
    :math:`\tfrac12 p_1 + \tfrac12 p_{\text{factor}}`, and standardizing by :math:`s` multiplies the
    density by :math:`s^2`: :math:`\log p(y) = \log p_{\text{mix}}(s y) + 2 \log s`.

    Example:
        >>> import torch, flowlab as fl
        >>> x = fl.targets.circles(20000, seed=1)
        >>> round(float(-fl.targets.circles_log_prob(x).mean()), 2)
        1.76
    """
    check_batch("x", x, 2)
    noise, factor = _check_circles(noise, factor)
    s = _circles_scale(noise, factor)
    r = (x * s).norm(dim=-1)
    both = torch.stack([_ring_log_prob(r, 1.0, noise), _ring_log_prob(r, factor, noise)])
    return torch.logsumexp(both, dim=0) - math.log(2) + 2 * math.log(s)


def moons(n: int, noise: float = 0.05, seed: int | None = None) -> Tensor:
    """Two interleaving half circles (as scikit-learn's ``make_moons``, at random positions
    along each moon), shifted and scaled to roughly zero mean and unit variance.

    Example:
        >>> import flowlab as fl
        >>> fl.targets.moons(100, seed=0).shape
        torch.Size([100, 2])
    """
    n = check_positive_int("n", n)
    noise = check_positive_float("noise", noise)
    g = _generator(seed)
    upper = torch.rand(n, generator=g) < 0.5
    t = math.pi * torch.rand(n, generator=g)
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=g)
    return (pts - torch.tensor([0.5, 0.25])) / torch.tensor([0.87, 0.5])


def eight_gaussians(n: int, radius: float = 2.0, std: float = 0.15, seed: int | None = None) -> Tensor:
    r"""A mixture of eight equally weighted Gaussians (standard deviation ``std``) whose
    means lie evenly on a circle of radius ``radius``.

    Example:
        >>> import flowlab as fl
        >>> fl.targets.eight_gaussians(100, seed=0).shape
        torch.Size([100, 2])
    """
    n = check_positive_int("n", n)
    radius = check_positive_float("radius", radius)
    std = check_positive_float("std", std)
    g = _generator(seed)
    angle = 2 * math.pi * torch.randint(8, (n,), generator=g) / 8
    centers = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centers + std * torch.randn(n, 2, generator=g)


def eight_gaussians_log_prob(x: Tensor, radius: float = 2.0, std: float = 0.15) -> Tensor:
    """The exact log-density of :func:`eight_gaussians`.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.targets.eight_gaussians_log_prob(torch.zeros(1, 2)).shape
        torch.Size([1])
    """
    check_batch("x", x, 2)
    angle = 2 * math.pi * torch.arange(8, dtype=x.dtype, device=x.device) / 8
    centers = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    d2 = (x[:, None, :] - centers[None]).pow(2).sum(-1)
    return torch.logsumexp(-d2 / (2 * std**2), dim=1) - math.log(8) - math.log(2 * math.pi * std**2)


SAMPLERS = {"circles": circles, "moons": moons, "8 gaussians": eight_gaussians}
"""The data sets by name (used by the widgets)."""
