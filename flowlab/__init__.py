"""flowlab: the normalizing flows of the book, in small readable PyTorch modules.

Example:
    >>> import flowlab as fl
    >>> flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
    >>> x = fl.targets.circles(1000, seed=0)
    >>> history = fl.fit(flow, x, steps=10, progress=False)
"""

from . import targets
from .autoregressive import MAF, Autoregressive, SplineAutoregressive
from .conditioners import MaskedConditioner
from .core import Compose, Flow, Inverse, StandardNormal, Transform
from .device import available_devices, default_device
from .linear import Permutation, Reverse
from .train import History, fit, forward_kl
from .transformers import Affine, RQSpline, Transformer

__version__ = "0.1.0"

__all__ = [
    "MAF",
    "Affine",
    "Autoregressive",
    "Compose",
    "Flow",
    "History",
    "Inverse",
    "MaskedConditioner",
    "Permutation",
    "RQSpline",
    "Reverse",
    "SplineAutoregressive",
    "StandardNormal",
    "Transform",
    "Transformer",
    "available_devices",
    "default_device",
    "fit",
    "forward_kl",
    "targets",
]
