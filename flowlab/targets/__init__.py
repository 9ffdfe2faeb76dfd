r"""Two-dimensional target distributions, generated in code (no downloads).

Each sampler returns a ``float32`` tensor of shape ``(n, 2)`` (at most
:data:`~flowlab.targets._args.MAX_SAMPLES` rows per call) and takes a ``seed`` (an integer;
``None`` draws fresh randomness). Where the density is known in closed form, a ``*_log_prob``
function gives it exactly, so a trained flow can be compared with the truth; it computes in the
dtype of its input (integer points count as floats).

The unnormalized log-densities of :data:`DENSITIES` come with their log normalizing constants:
:func:`log_z` computes one on first use (some by quadrature) and keeps it; :data:`LOG_Z` is the
same as a mapping. Nothing is computed at import.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor

from .._checks import check_fraction
from . import _args
from ._args import MAX_SAMPLES  # noqa: F401 - re-exported
from ._gaussians import mixture_log_prob
from .energies import ENERGIES, energy_log_z, u1_log_prob, u2_log_prob, u3_log_prob, u4_log_prob  # noqa: F401
from .posteriors import (  # noqa: F401 - re-exported
    LOGISTIC_BOX,
    funnel,
    funnel_log_prob,
    funnel_log_z,
    funnel_marginal_log_prob,
    logistic_data,
    logistic_log_prob,
    logistic_log_z,
)
from .universality import (  # noqa: F401 - re-exported
    mixture_1d,
    mixture_1d_cdf,
    mixture_1d_log_prob,
    rosenbrock,
    rosenbrock_kr,
    rosenbrock_log_prob,
    three_bumps,
    three_bumps_kr,
    three_bumps_log_prob,
)


_generator, _scale = _args.generator, _args.length


def _circles_scale(noise: float, factor: float) -> float:
    # each coordinate has mean 0 and variance E[r^2]/2 + noise^2 with E[r^2] = (1 + factor^2)/2
    return math.sqrt((1 + factor**2) / 4 + noise**2)


def _check_circles(noise, factor) -> tuple[float, float]:
    noise = _scale("noise", noise)
    return noise, check_fraction("factor", factor, "inner radius / outer radius")


def circles(n: int, noise: float = 0.05, factor: float = 0.5, seed: int | None = None) -> Tensor:
    r"""Two noisy concentric rings, standardized: the opening data set of the book
    (flowtorch's introductory example).

    Half the points (in expectation) lie on the unit circle and half on the circle of radius
    ``factor``, at uniformly random angles; Gaussian noise of standard deviation ``noise`` is
    added to each coordinate. The result is divided by the population standard deviation
    :math:`s = \sqrt{(1 + \text{factor}^2)/4 + \text{noise}^2}` of each coordinate, so it has
    mean 0 and variance 1 per coordinate, like scikit-learn's ``StandardScaler``, but with the
    exact constant, which makes :func:`circles_log_prob` the exact density of these samples.
    (scikit-learn's ``make_circles`` puts its points at evenly spaced angles; here angles are
    random, so the points are independent draws.)

    Example:
        >>> import flowlab as fl
        >>> fl.targets.circles(1000, seed=0).shape
        torch.Size([1000, 2])
    """
    n = _args.count(n)
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
    x = _args.points("x", x)
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
    n = _args.count(n)
    noise = _scale("noise", noise)
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
    n = _args.count(n)
    radius = _scale("radius", radius)
    std = _scale("std", std)
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
    x = _args.points("x", x)
    radius = _scale("radius", radius)
    std = _scale("std", std)
    angle = 2 * math.pi * torch.arange(8, dtype=x.dtype, device=x.device) / 8
    centers = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return mixture_log_prob(x, centers, std, log_weights=-math.log(8))


SAMPLERS = {"circles": circles, "moons": moons, "8 gaussians": eight_gaussians}
"""The data sets by name (used by the widgets)."""


# --------------------------------------------------------------------------------------------
# Unnormalized log-densities, for training by the reverse KL divergence
# --------------------------------------------------------------------------------------------
#
# Each function returns log(C p(x)) for a density p and a constant C > 0 that the function does
# not divide out, the situation of sampling from a posterior or a Boltzmann distribution. For
# these three the constant is known in closed form, log Z = log C = log of the integral of
# exp(log_prob), so that an estimate of it can be checked: see LOG_Z and the *_log_z functions.


def banana_log_prob(x: Tensor, scale: float = 1.0, width: float = 0.35, curvature: float = 0.5) -> Tensor:
    r"""An unnormalized banana: a Gaussian bent along a parabola.

    .. math:: \log \tilde p(x) = -\frac{x_1^2}{2 s^2} - \frac{\big(x_2 - \kappa (x_1^2 - s^2)\big)^2}{2 w^2}

    with :math:`s` = ``scale``, :math:`w` = ``width``, :math:`\kappa` = ``curvature``. The map
    :math:`(x_1, x_2) \mapsto (x_1, x_2 - \kappa(x_1^2 - s^2))` has Jacobian determinant 1, so
    the normalizing constant is that of the Gaussian: :math:`Z = 2\pi s w` (:func:`banana_log_z`),
    and the entropy of the normalized density is :math:`\log(2\pi e\, s w)`.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.targets.banana_log_prob(torch.zeros(1, 2)).shape
        torch.Size([1])
    """
    x = _args.points("x", x)
    scale, width = _scale("scale", scale), _scale("width", width)
    curvature = _args.curvature(curvature)
    x1, x2 = x.unbind(-1)
    return -0.5 * (x1 / scale) ** 2 - 0.5 * ((x2 - curvature * (x1**2 - scale**2)) / width) ** 2


def banana_log_z(scale: float = 1.0, width: float = 0.35) -> float:
    r"""The exact :math:`\log Z = \log(2\pi s w)` of :func:`banana_log_prob`."""
    return math.log(2 * math.pi * _scale("scale", scale) * _scale("width", width))


def banana(n: int, scale: float = 1.0, width: float = 0.35, curvature: float = 0.5, seed: int | None = None) -> Tensor:
    """Exact samples of the normalized :func:`banana_log_prob`.

    Example:
        >>> import flowlab as fl
        >>> fl.targets.banana(100, seed=0).shape
        torch.Size([100, 2])
    """
    n = _args.count(n)
    scale, width = _scale("scale", scale), _scale("width", width)
    curvature = _args.curvature(curvature)
    e = torch.randn(n, 2, generator=_generator(seed))
    x1 = scale * e[:, 0]
    return torch.stack([x1, curvature * (x1**2 - scale**2) + width * e[:, 1]], dim=1)


def ring_log_prob(x: Tensor, radius: float = 2.0, width: float = 0.25) -> Tensor:
    r"""An unnormalized ring: :math:`\log \tilde p(x) = -(\lVert x\rVert - r)^2 / (2 w^2)`.

    In polar coordinates the area element is :math:`\rho\, d\rho\, d\varphi`, so

    .. math:: Z = 2\pi \int_0^\infty \rho\, e^{-(\rho - r)^2 / (2w^2)}\, d\rho
              = 2\pi \left[ w^2 e^{-r^2/(2w^2)} + r w \sqrt{2\pi}\, \Phi(r/w) \right]

    with :math:`\Phi` the standard normal CDF (:func:`ring_log_z`).

    Example:
        >>> import torch, flowlab as fl
        >>> fl.targets.ring_log_prob(torch.tensor([[2.5, 0.0], [0.0, 3.0]]))
        tensor([-2., -8.])
    """
    x = _args.points("x", x)
    radius, width = _scale("radius", radius), _scale("width", width)
    return -0.5 * ((x.norm(dim=-1) - radius) / width) ** 2


def ring_log_z(radius: float = 2.0, width: float = 0.25) -> float:
    r"""The exact :math:`\log Z` of :func:`ring_log_prob` (formula in its docstring)."""
    r, w = _scale("radius", radius), _scale("width", width)
    phi = 0.5 * (1 + math.erf(r / (w * math.sqrt(2))))
    return math.log(2 * math.pi * (w**2 * math.exp(-(r**2) / (2 * w**2)) + r * w * math.sqrt(2 * math.pi) * phi))


def _two_modes_check(separation: float, std: float, weight: float) -> tuple[float, float, float]:
    separation, std = _scale("separation", separation), _scale("std", std)
    return separation, std, check_fraction("weight", weight, "of the left mode")


def two_modes_log_prob(x: Tensor, separation: float = 6.0, std: float = 0.5, weight: float = 0.5) -> Tensor:
    r"""An unnormalized mixture of two round Gaussian bumps centred at :math:`(\pm a, 0)`, with
    :math:`a` = ``separation / 2``:

    .. math:: \tilde p(x) = 2\left[\omega\, e^{-\lVert x - \mu_1\rVert^2/(2\sigma^2)}
              + (1-\omega)\, e^{-\lVert x - \mu_2\rVert^2/(2\sigma^2)}\right],
              \qquad \mu_{1,2} = (\mp a, 0),

    with :math:`\omega` = ``weight`` (of the left bump) and :math:`\sigma` = ``std``. Each bump
    integrates to :math:`2\pi\sigma^2`, so :math:`Z = 4\pi\sigma^2` (:func:`two_modes_log_z`):
    with the default :math:`\sigma = 1/2`, :math:`Z = \pi`.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.targets.two_modes_log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    x = _args.points("x", x)
    separation, std, weight = _two_modes_check(separation, std, weight)
    a = separation / 2
    log_weights = (math.log(weight), math.log(1 - weight))
    return mixture_log_prob(x, ((-a, 0.0), (a, 0.0)), std, log_weights, normalized=False) + math.log(2)


def two_modes_log_z(std: float = 0.5) -> float:
    r"""The exact :math:`\log Z = \log(4\pi\sigma^2)` of :func:`two_modes_log_prob`."""
    return math.log(4 * math.pi * _scale("std", std) ** 2)


def two_modes(n: int, separation: float = 6.0, std: float = 0.5, weight: float = 0.5, seed: int | None = None) -> Tensor:
    """Exact samples of the normalized :func:`two_modes_log_prob`.

    Example:
        >>> import flowlab as fl
        >>> fl.targets.two_modes(100, seed=0).shape
        torch.Size([100, 2])
    """
    n = _args.count(n)
    separation, std, weight = _two_modes_check(separation, std, weight)
    g = _generator(seed)
    left = torch.rand(n, generator=g) < weight
    centre = torch.stack([torch.where(left, -separation / 2, separation / 2), torch.zeros(n)], dim=1)
    return centre + std * torch.randn(n, 2, generator=g)


DENSITIES = {"banana": banana_log_prob, "ring": ring_log_prob, "two modes": two_modes_log_prob}
"""Unnormalized 2-D log-densities by name, for training by the reverse KL divergence (widgets)."""

# posteriors (posteriors.py): the funnel has an exact log Z, the logistic posterior one by quadrature
DENSITIES.update({"funnel": funnel_log_prob, "logistic posterior": logistic_log_prob})

# residual flows (energies.py): Rezende & Mohamed's U1-U4 (U2-U4 with a wide Gaussian in z1), log Z by quadrature
DENSITIES.update(ENERGIES)

# universality (universality.py): data sets with exact, normalised log-densities
SAMPLERS.update({"rosenbrock banana": rosenbrock, "three bumps": three_bumps})

_LOG_Z = {"banana": banana_log_z, "ring": ring_log_z, "two modes": two_modes_log_z, "funnel": funnel_log_z,
          "logistic posterior": logistic_log_z, **{name: functools.partial(energy_log_z, name) for name in ENERGIES}}


@functools.cache
def log_z(name: str) -> float:
    r"""The log normalizing constant :math:`\log \int \exp(\text{log\_prob})` of the density
    ``DENSITIES[name]`` with its default parameters: exact where a closed form exists, else by
    quadrature (U1-U4 and the logistic posterior, about 0.1 s each), computed on first use and kept.

    Example:
        >>> import math, flowlab as fl
        >>> fl.targets.log_z("two modes") == math.log(math.pi)
        True
    """
    if name not in _LOG_Z:
        raise ValueError(f"name must be one of {list(_LOG_Z)}, got {name!r}.")
    return _LOG_Z[name]()


class _LogZ(Mapping):
    """``LOG_Z[name]`` is :func:`log_z` ``(name)``: a mapping that computes on first access."""

    def __getitem__(self, name: str) -> float:
        if name not in _LOG_Z:
            raise KeyError(name)
        return log_z(name)

    def __iter__(self) -> Iterator[str]:
        return iter(_LOG_Z)

    def __len__(self) -> int:
        return len(_LOG_Z)

    def __repr__(self) -> str:
        return f"LOG_Z({', '.join(map(repr, _LOG_Z))}: computed on first use)"


LOG_Z: Mapping[str, float] = _LogZ()
"""The exact log normalizing constant of each entry of :data:`DENSITIES` (default parameters), as a
mapping that computes each value on first use (:func:`log_z`)."""
