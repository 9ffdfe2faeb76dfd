r"""Conditioners: networks that compute the parameters :math:`c_i` of each coordinate's transformer.

In an autoregressive flow :math:`z_i = \tau_{c_i}(x_i)` with :math:`c_i = c^{(i)}(x_{<i})`.
A conditioner returns all :math:`c_i` at once as a tensor of shape ``(batch, features, params)``
and says in ``passes`` how many network passes the inverse needs until every coordinate is
known. The parameters of the first coordinates depend on no input; ``initial(x)`` returns them
without a network pass (the other entries of its output are placeholders, to be overwritten).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import check_hidden, check_positive_int
from .nn import MaskedMLP, partition


class MaskedConditioner(nn.Module):
    r"""A masked network (MADE) over a K-part partition of the features.

    The features are split into ``parts`` contiguous blocks :math:`I_1, \dots, I_K`; the
    parameters of the coordinates in block :math:`k` depend only on the coordinates of blocks
    :math:`< k`, and those of block 1 are learned constants: the output layer's bias, since the
    masks connect their outputs to no hidden unit. :meth:`initial` reads these constants without
    running the network. One network pass gives every :math:`c_i`; inverting the flow takes
    :math:`K - 1` network passes (``passes = parts - 1``): block 1 from the constants, then one
    pass per further block.

    * ``parts = features``: fully autoregressive (MAF), :math:`D - 1` passes to invert;
    * ``parts = 2``: a coupling layer (RealNVP): half the coordinates pass through a
      learned elementwise map, the other half are transformed conditioned on them; one
      network pass in each direction;
    * ``parts = 1``: an elementwise map with learned constant parameters (no network, no pass).

    ``hidden`` gives the widths of the network's hidden layers, such as ``(64, 64)``; one
    number, ``hidden=64``, means two layers of that width.
    The number of outputs per feature is set by the transformer it is paired with
    (:class:`flowlab.Autoregressive` calls :meth:`build`), or directly with ``outputs``.

    Example:
        >>> import torch, flowlab as fl
        >>> c = fl.MaskedConditioner(4, parts=2, hidden=(16,), outputs=3)
        >>> c(torch.randn(5, 4)).shape
        torch.Size([5, 4, 3])
        >>> c.passes  # network passes to invert a coupling layer
        1
        >>> first = c.part == 0  # their parameters are constants: no pass needed
        >>> torch.equal(c.initial(torch.randn(5, 4))[:, first], c(torch.randn(5, 4))[:, first])
        True
    """

    def __init__(self, features: int, parts: int | None = None, hidden: int | Sequence[int] = (64, 64), outputs: int | None = None):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.parts = self.features if parts is None else parts
        if isinstance(self.parts, bool) or not isinstance(self.parts, int) or not 1 <= self.parts <= self.features:
            raise ValueError(f"parts must be an integer between 1 and features={self.features}, got {parts!r}.")
        self.hidden = check_hidden(hidden, layers=2)  # hidden=64 means (64, 64)
        if any(h < self.parts - 1 for h in self.hidden):
            raise ValueError(
                f"every hidden size must be at least parts - 1 = {self.parts - 1} so that each part can see "
                f"all earlier parts; got hidden={self.hidden}."
            )
        self.outputs = None
        self.net = None
        if outputs is not None:
            self.build(outputs)

    @property
    def passes(self) -> int:
        """Network passes needed to invert: ``parts - 1`` (part 0 comes from the constants)."""
        return self.parts - 1

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
        if self.parts == 1:  # nothing to condition on: learned constants, no network
            self.net = nn.Parameter(torch.zeros(self.features, outputs))
            return
        self.net = MaskedMLP(self.features, outputs, self.parts, self.hidden)
        last = self.net[-1]
        with torch.no_grad():  # start near the identity: small outputs
            last.weight.mul_(1e-2)
            last.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if self.net is None:
            raise ValueError("this conditioner has no network yet: pair it with a transformer in fl.Autoregressive.")
        if self.parts == 1:
            return self.net.expand(x.shape[0], -1, -1)
        return self.net(x).view(x.shape[0], self.features, self.outputs)

    def initial(self, x: Tensor) -> Tensor:
        """Parameters of shape ``(batch, features, outputs)`` that are exact for part 0, without a
        network pass: the output layer's bias (the masks connect part 0's outputs to nothing).
        The entries of the other parts are placeholders (the bias); ``x`` only gives the batch size."""
        if self.net is None:
            raise ValueError("this conditioner has no network yet: pair it with a transformer in fl.Autoregressive.")
        if self.parts == 1:
            return self.net.expand(x.shape[0], -1, -1)
        return self.net[-1].bias.view(1, self.features, self.outputs).expand(x.shape[0], -1, -1)

    def extra_repr(self) -> str:
        return f"features={self.features}, parts={self.parts}, hidden={self.hidden}"


class RNNConditioner(nn.Module):
    r"""A recurrent conditioner: a GRU reads the coordinates one at a time.

    With hidden state :math:`h_0 = 0` and the input shifted by one, :math:`x_0 := 0`,

    .. math::
        h_i = \operatorname{GRU}(h_{i-1}, x_{i-1}), \qquad c_i = W h_i + w_0,
        \qquad i = 1, \dots, D,

    so :math:`c_i` depends on :math:`x_{<i}` only, and :math:`c_1` is a learned constant. The
    same weights serve every coordinate, whatever :math:`D` is. One call returns every
    :math:`c_i`, but it is itself :math:`D` sequential GRU steps. Inverting a flow takes
    ``passes = features - 1`` such sweeps after :meth:`initial` (one GRU step for
    :math:`c_1`): :math:`x_i` is only known once :math:`x_{<i}` is. Each sweep reruns the GRU
    from the start, so the inverse costs :math:`O(D^2)` GRU steps; an incremental inverse that
    carries the state along would need :math:`O(D)`, but no batching over coordinates.

    ``hidden`` is the size of the GRU's state. The number of outputs per feature is set by the
    transformer it is paired with (:class:`flowlab.Autoregressive` calls :meth:`build`), or
    directly with ``outputs``; the output layer starts small, so the flow starts near the
    identity.

    Example:
        >>> import torch, flowlab as fl
        >>> c = fl.RNNConditioner(4, hidden=8, outputs=3)
        >>> c(torch.randn(5, 4)).shape
        torch.Size([5, 4, 3])
        >>> c.passes
        3
    """

    def __init__(self, features: int, hidden: int = 64, outputs: int | None = None):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.hidden = check_positive_int("hidden", hidden, hint="(the size of the GRU's state: one number, such as 64)")
        self.gru = nn.GRU(1, self.hidden, batch_first=True)
        self.outputs = None
        self.head = None
        if outputs is not None:
            self.build(outputs)

    @property
    def passes(self) -> int:
        """Full GRU sweeps needed to invert: ``features - 1`` (:math:`c_1` comes from :meth:`initial`)."""
        return self.features - 1

    def build(self, outputs: int) -> None:
        """Create the output layer for ``outputs`` parameters per feature (once)."""
        outputs = check_positive_int("outputs", outputs)
        if self.head is not None:
            if outputs != self.outputs:
                raise ValueError(
                    f"this conditioner was built for {self.outputs} parameters per feature, not {outputs}."
                )
            return
        self.outputs = outputs
        self.head = nn.Linear(self.hidden, outputs)
        with torch.no_grad():  # start near the identity: small outputs
            self.head.weight.mul_(1e-2)
            self.head.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if self.head is None:
            raise ValueError(
                "this conditioner has no output layer yet: pair it with a transformer in fl.Autoregressive."
            )
        shifted = torch.cat((x.new_zeros(x.shape[0], 1), x[:, :-1]), dim=1)  # (0, x_1, ..., x_{D-1})
        h, _ = self.gru(shifted.unsqueeze(-1))
        return self.head(h)

    def initial(self, x: Tensor) -> Tensor:
        """Parameters of shape ``(batch, features, outputs)`` exact for the first coordinate:
        :math:`c_1`, from one GRU step on the input 0 (it depends on no coordinate), repeated as a
        placeholder for the others. ``x`` only gives the batch size, dtype and device."""
        if self.head is None:
            raise ValueError(
                "this conditioner has no output layer yet: pair it with a transformer in fl.Autoregressive."
            )
        h, _ = self.gru(x.new_zeros(1, 1, 1))
        return self.head(h).expand(x.shape[0], self.features, -1)

    def extra_repr(self) -> str:
        return f"features={self.features}, hidden={self.hidden}"
