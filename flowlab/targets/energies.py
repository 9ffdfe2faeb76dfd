r"""The four 2-D energies :math:`U_1 \dots U_4` of Rezende & Mohamed (2015, table 1), for reverse KL.

The unnormalised density is :math:`\tilde p(z) = e^{-U(z)}`, with

.. math::
    w_1 = \sin\tfrac{2\pi z_1}{4}, \quad w_2 = 3 e^{-\frac12 ((z_1 - 1)/0.6)^2}, \quad
    w_3 = 3\,\mathrm{sigmoid}\big((z_1 - 1)/0.3\big),

    U_1 = \tfrac12\Big(\tfrac{\lVert z\rVert - 2}{0.4}\Big)^2
          - \log\Big(e^{-\frac12 (\frac{z_1 - 2}{0.6})^2} + e^{-\frac12 (\frac{z_1 + 2}{0.6})^2}\Big),
    \qquad U_2 = \tfrac12\Big(\tfrac{z_2 - w_1}{0.4}\Big)^2,

    U_3 = -\log\Big(e^{-\frac12 (\frac{z_2 - w_1}{0.35})^2} + e^{-\frac12 (\frac{z_2 - w_1 + w_2}{0.35})^2}\Big),
    \quad
    U_4 = -\log\Big(e^{-\frac12 (\frac{z_2 - w_1}{0.4})^2} + e^{-\frac12 (\frac{z_2 - w_1 + w_3}{0.35})^2}\Big).

:math:`U_1` is normalisable (:math:`\log Z = 1.8775`). :math:`U_2, U_3, U_4` are **not**: they do not
grow along :math:`z_1`, so :math:`\int e^{-U}` over a box grows with the box. Here they are made proper
by a wide Gaussian factor in :math:`z_1`, :math:`e^{-z_1^2 / (2 s^2)}` with :math:`s` = ``SCALE`` = 2,
which leaves the plotted region :math:`[-4, 4]^2` nearly unchanged. Each :math:`\log Z` is computed
by quadrature (:func:`energy_log_z`); for :math:`U_2 \dots U_4` the :math:`z_2` integral is Gaussian, so
:math:`Z = 2\pi s \cdot (0.4,\ 0.7,\ 0.75)` exactly, which the tests check.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_positive_int
from ..diagnostics import log_z_quadrature
from ..numerics.quadrature import check_nodes
from ._args import points
from ._gaussians import mixture_log_prob

__all__ = ["ENERGIES", "SCALE", "energy_log_z", "u1_log_prob", "u2_log_prob", "u3_log_prob", "u4_log_prob"]

SCALE = 2.0  # the standard deviation of the Gaussian factor in z1 that makes U2-U4 proper


def _w(z1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    w1 = torch.sin(2 * math.pi * z1 / 4)
    w2 = 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 * torch.sigmoid((z1 - 1) / 0.3)
    return w1, w2, w3


def _gauss(d: Tensor, s: float) -> Tensor:
    return -0.5 * (d / s) ** 2


def _wide(z1: Tensor) -> Tensor:
    return -0.5 * (z1 / SCALE) ** 2


def u1_log_prob(z: Tensor) -> Tensor:
    """:math:`-U_1(z)` (a ring with two bumps; proper as written). Example:

        >>> round(float(u1_log_prob(torch.tensor([[2.0, 0.0]]))), 4)
        0.0
    """
    z = points("z", z)
    ring = _gauss(z.norm(dim=1) - 2, 0.4)
    bumps = mixture_log_prob(z[:, :1], ((2.0,), (-2.0,)), 0.6, normalized=False)  # in z1, at +-2
    return ring + bumps


def u2_log_prob(z: Tensor) -> Tensor:
    r""":math:`-U_2(z) - z_1^2 / (2 s^2)` (a sine wave). Example:

        >>> u2_log_prob(torch.tensor([[1.0, 1.0]])).item() == -1 / 8  # on the wave: only the Gaussian factor
        True
    """
    z = points("z", z)
    w1, _, _ = _w(z[:, 0])
    return _gauss(z[:, 1] - w1, 0.4) + _wide(z[:, 0])


def u3_log_prob(z: Tensor) -> Tensor:
    r""":math:`-U_3(z) - z_1^2 / (2 s^2)` (the sine wave and a branch below it). Example:

        >>> u3_log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    z = points("z", z)
    w1, w2, _ = _w(z[:, 0])
    centres = torch.stack([w1, w1 - w2], dim=1)[..., None]  # of z2, per point: the wave and the branch
    return mixture_log_prob(z[:, 1:], centres, 0.35, normalized=False) + _wide(z[:, 0])


def u4_log_prob(z: Tensor) -> Tensor:
    r""":math:`-U_4(z) - z_1^2 / (2 s^2)` (the sine wave and a step below it). Example:

        >>> u4_log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    z = points("z", z)
    w1, _, w3 = _w(z[:, 0])
    centres = torch.stack([w1, w1 - w3], dim=1)[..., None]  # of z2, per point: the wave and the step
    return mixture_log_prob(z[:, 1:], centres, ((0.4,), (0.35,)), normalized=False) + _wide(z[:, 0])


ENERGIES = {"U1": u1_log_prob, "U2": u2_log_prob, "U3": u3_log_prob, "U4": u4_log_prob}
"""The four energies by name, as unnormalised log-densities ``z -> -U(z)`` (U2-U4 with the Gaussian factor)."""

# boxes that hold all but a negligible part of the mass (more than 7 standard deviations of every factor)
_BOXES = {"U1": ((-5.0, 5.0), (-5.0, 5.0)), "U2": ((-16.0, 16.0), (-5.0, 5.0)),
          "U3": ((-16.0, 16.0), (-8.0, 5.0)), "U4": ((-16.0, 16.0), (-8.0, 5.0))}


def energy_log_z(name: str, panels: int = 32, nodes: int = 8) -> float:
    r""":math:`\log Z = \log \int e^{-U(z)}\,dz` by composite Gauss-Legendre quadrature on a box holding
    all but a negligible part of the mass: ``panels`` panels per axis, ``nodes`` nodes per panel,
    in float64 (:func:`flowlab.diagnostics.log_z_quadrature`; 65,536 evaluations by default).

    Example:
        >>> round(energy_log_z("U1"), 4)
        1.8775
    """
    if name not in ENERGIES:
        raise ValueError(f"name must be one of {list(ENERGIES)}, got {name!r}.")
    panels = check_positive_int("panels", panels, maximum=1024, hint="(per axis)")
    return log_z_quadrature(ENERGIES[name], _BOXES[name], points=check_nodes("nodes", nodes), cells=panels)
