r"""Conditioners: networks that compute the parameters :math:`c_i` of each coordinate's transformer.

In an autoregressive flow :math:`z_i = \tau_{c_i}(x_i)` with :math:`c_i = c^{(i)}(x_{<i})`.
A conditioner returns all :math:`c_i` at once as a tensor of shape ``(batch, features, params)``
and says in ``passes`` how many sweeps the inverse needs until every coordinate is known.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import check_positive_int
from .nn import MaskedMLP, partition


class MaskedConditioner(nn.Module):
    r"""A masked network (MADE) over a K-part partition of the features.

    The features are split into ``parts`` contiguous blocks :math:`I_1, \dots, I_K`; the
    parameters of the coordinates in block :math:`k` depend only on the coordinates of blocks
    :math:`< k`, and those of block 1 are learned constants. One network pass gives every
    :math:`c_i`; inverting the flow takes :math:`K` passes (``passes = parts``).

    * ``parts = features``: fully autoregressive (MAF);
    * ``parts = 2``: a coupling layer (RealNVP): half the coordinates pass through a
      learned elementwise map, the other half are transformed conditioned on them;
    * ``parts = 1``: an elementwise map with learned constant parameters.

    The number of outputs per feature is set by the transformer it is paired with
    (:class:`flowlab.Autoregressive` calls :meth:`build`), or directly with ``outputs``.

    Example:
        >>> import torch, flowlab as fl
        >>> c = fl.MaskedConditioner(4, parts=2, hidden=(16,), outputs=3)
        >>> c(torch.randn(5, 4)).shape
        torch.Size([5, 4, 3])
    """

    def __init__(self, features: int, parts: int | None = None, hidden: Sequence[int] = (64, 64), outputs: int | None = None):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.parts = self.features if parts is None else parts
        if isinstance(self.parts, bool) or not isinstance(self.parts, int) or not 1 <= self.parts <= self.features:
            raise ValueError(f"parts must be an integer between 1 and features={self.features}, got {parts!r}.")
        self.hidden = tuple(check_positive_int("hidden size", h) for h in hidden)
        self.outputs = None
        self.net = None
        if outputs is not None:
            self.build(outputs)

    @property
    def passes(self) -> int:
        return self.parts

    @property
    def part(self) -> Tensor:
        """The part (0..K-1) of each feature."""
        return partition(self.features, self.parts)

    def build(self, outputs: int) -> None:
        """Create the network for ``outputs`` parameters per feature (once)."""
        outputs = check_positive_int("outputs", outputs)
        if self.net is not None:
            if outputs != self.outputs:
                raise ValueError(f"this conditioner was built for {self.outputs} parameters per feature, not {outputs}.")
            return
        self.outputs = outputs
        self.net = MaskedMLP(self.features, outputs, self.parts, self.hidden)
        last = self.net[-1]
        with torch.no_grad():  # start near the identity: small outputs
            last.weight.mul_(1e-2)
            last.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if self.net is None:
            raise ValueError("this conditioner has no network yet: pair it with a transformer in fl.Autoregressive.")
        return self.net(x).view(x.shape[0], self.features, self.outputs)

    def extra_repr(self) -> str:
        return f"features={self.features}, parts={self.parts}, hidden={self.hidden}"
