r"""Recipes from the linear layers: what goes between two coupling or autoregressive layers, and Glow.

A coupling or autoregressive layer transforms its first part elementwise, with parameters that
depend on no other coordinate, so a stack of them needs a layer in between that mixes the
coordinates: :func:`mixing` builds one (a reversal, a fixed random permutation, or a learned
:class:`~flowlab.LU` layer, whose log-determinant is a sum of :math:`D` numbers). :func:`Glow` stacks
:math:`\text{ActNorm} \to \text{LU} \to \text{affine coupling}` steps, the flow of Kingma & Dhariwal
(2018) on vectors. Both are also reachable as ``flowlab.linear.mixing`` and ``flowlab.linear.Glow``.

References: Kingma & Dhariwal 2018 (Glow); Dinh et al. 2017 (RealNVP, reversing the coordinates
between couplings).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from ._checks import check_positive_int
from .conditioners import MaskedConditioner
from .core import Compose, Transform
from .linear import LU, ActNorm, Permutation, Reverse, _seed
from .transformers import Affine

__all__ = ["MIXINGS", "Glow", "mixing"]

MIXINGS = ("reverse", "permutation", "lu", "none")
"""The choices of :func:`mixing`."""


def mixing(kind: str, features: int, seed: int = 0) -> Transform | None:
    """The layer that mixes the coordinates between two coupling or autoregressive layers.

    ``kind`` is ``"reverse"`` (:class:`Reverse`), ``"permutation"`` (a random
    :class:`Permutation` drawn from ``seed``), ``"lu"`` (a learned :class:`LU`, starting from a
    random rotation drawn from ``seed``) or ``"none"`` (returns ``None``: nothing in between).

    Example:
        >>> import flowlab as fl
        >>> [type(fl.mixing(k, 4)).__name__ for k in fl.linear.MIXINGS]
        ['Reverse', 'Permutation', 'LU', 'NoneType']
    """
    features = check_positive_int("features", features)
    seed = _seed(seed)
    if not isinstance(kind, str) or kind.lower() not in MIXINGS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, MIXINGS))}; got {kind!r}.")
    kind = kind.lower()
    if kind == "none":
        return None
    if kind == "reverse":
        return Reverse(features)
    if kind == "permutation":
        return Permutation(features, seed=seed)
    return LU(features, seed=seed)


def Glow(features: int, layers: int = 4, hidden: Sequence[int] | int = (64, 64), seed: int = 0,
         scale_bound: float = 3.0) -> Transform:
    r"""A Glow flow (Kingma & Dhariwal 2018) on vectors: ``layers`` steps of
    :class:`ActNorm`, then :class:`LU` (a learned rotation-initialised :math:`1\times1`
    convolution), then an affine coupling layer (:class:`~flowlab.MaskedConditioner` with
    ``parts=2`` and ``hidden`` units, :class:`~flowlab.Affine` transformer with ``scale_bound``).

    Data to latent (the density) and latent to data (sampling) are both explicit: one network
    pass per step in the density direction, two per step when sampling. ``seed`` draws the
    rotations; ``hidden`` is a tuple of widths, or one width for two hidden layers. The
    ActNorm layers initialise themselves from the first batch they see.

    References: Kingma & Dhariwal 2018 (Glow).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Glow(4, layers=2, hidden=16)
        >>> x = torch.randn(8, 4)
        >>> z, ladj = t(x)
        >>> torch.allclose(t.inverse(z)[0], x, atol=1e-5)
        True
    """
    # imported here: flowlab.autoregressive imports flowlab.linear, which imports this module at its end
    from .autoregressive import Autoregressive

    features = check_positive_int("features", features)
    layers = check_positive_int("layers", layers)
    seed = _seed(seed)
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (int(hidden), int(hidden))
    if features < 2:
        raise ValueError(f"Glow needs features >= 2 for its coupling layers, got {features}.")
    steps = []
    for i in range(layers):
        coupling = Autoregressive(MaskedConditioner(features, parts=2, hidden=hidden), Affine(scale_bound))
        steps += [ActNorm(features), LU(features, seed=seed + i), coupling]
    return Compose(*steps)
