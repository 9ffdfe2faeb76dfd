r"""The Glow recipe (Kingma & Dhariwal 2018) on vectors: ActNorm, LU and affine coupling steps.

Each step is :math:`\text{ActNorm} \to \text{LU} \to \text{affine coupling}`: an elementwise
affine map started from the data, a learned rotation-initialised :math:`1 \times 1` convolution
(whose log-determinant is a sum of :math:`D` numbers), and a coupling layer.

References: Kingma & Dhariwal 2018 (Glow); Dinh et al. 2017 (RealNVP, the affine coupling).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._checks import check_positive_int, check_seed
from .autoregressive import Autoregressive
from .conditioners import MaskedConditioner
from .core import Compose, Transform
from .linear import LU, ActNorm
from .transformers import Affine

__all__ = ["Glow"]


def Glow(features: int, layers: int = 4, hidden: Sequence[int] | int = (64, 64), seed: int | None = 0,
         scale_bound: float = 3.0) -> Transform:
    r"""A Glow flow (Kingma & Dhariwal 2018) on vectors: ``layers`` steps of
    :class:`~flowlab.ActNorm`, then :class:`~flowlab.LU` (a learned rotation-initialised
    :math:`1\times1` convolution), then an affine coupling layer
    (:class:`~flowlab.MaskedConditioner` with ``parts=2`` and ``hidden`` widths,
    :class:`~flowlab.Affine` transformer with ``scale_bound``).

    Per step, with :math:`s` the ActNorm log-scales, :math:`\theta` the LU log-diagonal and
    :math:`u(x_{I_1})` the coupling's log-scales (learned constants on the first half :math:`I_1`),

    .. math:: \text{ladj}(x) = \sum_{\text{steps}} \Big(\sum_i s_i + \sum_i \theta_i + \sum_i u_i(x_{I_1})\Big).

    Data to latent (the density) and latent to data (sampling) are both explicit: per step one
    network pass and :math:`O(D^2)` for the LU layer, in either direction. ``seed`` draws the
    rotations (step :math:`i` uses ``seed + i``; ``None``: fresh ones); ``hidden`` is a tuple of
    widths, or one width for two hidden layers. The ActNorm layers initialise themselves from
    the first batch they see.

    References: Kingma & Dhariwal 2018 (Glow).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Glow(4, layers=2, hidden=16)
        >>> x = torch.randn(8, 4)
        >>> z, ladj = t(x)
        >>> torch.allclose(t.inverse(z)[0], x, atol=1e-5)
        True
    """
    features = check_positive_int("features", features)
    layers = check_positive_int("layers", layers)
    seed = check_seed("seed", seed)
    if features < 2:
        raise ValueError(f"Glow needs features >= 2 for its coupling layers, got {features}.")
    steps = []
    for i in range(layers):
        coupling = Autoregressive(MaskedConditioner(features, parts=2, hidden=hidden), Affine(scale_bound))
        steps += [ActNorm(features), LU(features, seed=None if seed is None else seed + i), coupling]
    return Compose(*steps)
