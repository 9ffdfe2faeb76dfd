"""flowlab: the normalizing flows of the book, in small readable PyTorch modules.

``import flowlab`` loads the flows, the numerics and the targets. The parts that draw, show
widgets, check exercises or check transforms (:mod:`~flowlab.plot`, :mod:`~flowlab.replay`,
:mod:`~flowlab.live`, :mod:`~flowlab.exercises`, :mod:`~flowlab.diagnostics`,
:mod:`~flowlab.testing`, :mod:`~flowlab.timing`) are imported on first use, as ``fl.plot`` or
``import flowlab.plot``: the same module either way.

Example:
    >>> import flowlab as fl
    >>> flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
    >>> x = fl.targets.circles(1000, seed=0)
    >>> history = fl.fit(flow, x, steps=10, progress=False)
"""

import importlib

from . import numerics, targets
from .autoregressive import (
    IAF,
    MAF,
    Autoregressive,
    MonotonicFlow,
    NeuralSplineFlow,
    RealNVP,
    RNNFlow,
    SplineAutoregressive,
    UMNNFlow,
)
from .conditioners import Conditioner, MaskedConditioner, RNNConditioner
from .continuous import CNF
from .core import Compose, Flow, Inverse, StandardNormal, Transform
from .device import available_devices, default_device
from .glow import Glow
from .linear import LU, ActNorm, Linear, Permutation, Reverse, Triangular, mixing
from . import lipschitz
from .residual import Planar, PlanarFlow, ResidualBlock, ResidualFlow, Sylvester, SylvesterFlow
from .objectives import forward_kl, reverse_kl
from .train import History, Training, fit, split
from .tarflow import TarFlow, TransformerConditioner
from .transformers import Affine, Integral, MonotonicNN, RQSpline, Transformer

__version__ = "0.1.0"

_ON_FIRST_USE = ("diagnostics", "exercises", "live", "plot", "replay", "testing", "timing")


def __getattr__(name: str):
    """``fl.plot`` and the other modules of ``_ON_FIRST_USE``, imported the first time they are named."""
    if name in _ON_FIRST_USE:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))


__all__ = [
    "lipschitz",
    "Planar",
    "PlanarFlow",
    "ResidualBlock",
    "ResidualFlow",
    "Sylvester",
    "SylvesterFlow",
    "Affine",
    "Autoregressive",
    "available_devices",
    "Compose",
    "CNF",
    "Conditioner",
    "default_device",
    "diagnostics",
    "exercises",
    "fit",
    "Flow",
    "forward_kl",
    "History",
    "IAF",
    "Integral",
    "Inverse",
    "live",
    "MAF",
    "MaskedConditioner",
    "MonotonicFlow",
    "MonotonicNN",
    "NeuralSplineFlow",
    "numerics",
    "Permutation",
    "plot",
    "RealNVP",
    "replay",
    "Reverse",
    "reverse_kl",
    "RNNConditioner",
    "RNNFlow",
    "RQSpline",
    "SplineAutoregressive",
    "split",
    "TarFlow",
    "StandardNormal",
    "targets",
    "Training",
    "Transform",
    "Transformer",
    "TransformerConditioner",
    "UMNNFlow",
    "ActNorm",
    "Glow",
    "Linear",
    "LU",
    "mixing",
    "Triangular",
]
