"""flowlab: the normalizing flows of the book, in small readable PyTorch modules.

Example:
    >>> import flowlab as fl
    >>> flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
    >>> x = fl.targets.circles(1000, seed=0)
    >>> history = fl.fit(flow, x, steps=10, progress=False)
"""

from . import exercises, live, numerics, plot, replay, targets
from . import diagnostics
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
from .conditioners import MaskedConditioner, RNNConditioner
from .continuous import CNF
from .core import Compose, Flow, Inverse, StandardNormal, Transform
from .device import available_devices, default_device
from .linear import LU, ActNorm, Glow, Linear, Permutation, Reverse, Triangular, mixing
from . import lipschitz
from .residual import Planar, PlanarFlow, ResidualBlock, ResidualFlow, Sylvester, SylvesterFlow
from .objectives import forward_kl, reverse_kl
from .train import History, Training, fit, split
from .transformers import Affine, Integral, MonotonicNN, RQSpline, Transformer

__version__ = "0.1.0"

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
    "StandardNormal",
    "targets",
    "Training",
    "Transform",
    "Transformer",
    "UMNNFlow",
    "ActNorm",
    "Glow",
    "Linear",
    "LU",
    "mixing",
    "Triangular",
]
