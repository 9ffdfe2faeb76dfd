r"""Conditioners: networks that compute the parameters :math:`c_i` of each coordinate's transformer.

In an autoregressive flow :math:`z_i = \tau_{c_i}(x_i)` with :math:`c_i = c^{(i)}(x_{<i})`.
A :class:`Conditioner` returns all :math:`c_i` at once as a tensor of shape
``(batch, features, outputs)`` and says in ``passes`` how many network passes the inverse needs
until every coordinate is known. The parameters of the first coordinates depend on no input;
``initial(x)`` returns them without a network pass (the other entries of its output are
placeholders, to be overwritten).

References: Papamakarios et al. 2021, section 3.1 (conditioners); Germain et al. 2015 (MADE);
Wehenkel & Louppe 2021 (graphical normalizing flows: any conditioner with any transformer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import ArgumentTypeError, check_hidden, check_positive_int, describe, renamed
from .nn import MaskedMLP, partition


class Conditioner(nn.Module):
    r"""Base class of the conditioners: ``features`` coordinates, ``outputs`` parameters each.

    A subclass says how many network ``passes`` its inverse takes, creates its network in
    ``_build(outputs)`` (called once, by :meth:`build`), and implements ``forward(x)`` (every
    :math:`c_i`, shape ``(batch, features, outputs)``) and ``initial(x)`` (the parameters that
    depend on no coordinate, without a network pass). With :math:`c_i = c^{(i)}(x_{<i})`, one
    call of ``forward`` costs one network pass; inverting a flow costs ``passes`` more.

    References: Papamakarios et al. 2021, section 3.1.

    Example:
        >>> import flowlab as fl
        >>> [isinstance(c, fl.Conditioner) for c in (fl.MaskedConditioner(3), fl.RNNConditioner(3))]
        [True, True]
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.outputs: int | None = None

    @property
    def passes(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def build(self, outputs: int) -> None:
        """Create the network for ``outputs`` parameters per feature (once; the same number
        again is fine). :class:`flowlab.Autoregressive` calls it with its transformer's
        ``params``."""
        outputs = check_positive_int("outputs", outputs)
        if self.outputs is not None:
            if outputs != self.outputs:
                raise ValueError(f"this conditioner was built for {self.outputs} parameters per feature, not {outputs}.")
            return
        self.outputs = outputs
        self._build(outputs)

    def _build(self, outputs: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_built(self) -> None:
        if self.outputs is None:
            raise ValueError("this conditioner has no network yet: pair it with a transformer in fl.Autoregressive.")

    def initial(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def check_conditioner(name: str, value) -> None:
    """A :class:`Conditioner` (an instance); a transformer given first, or the class itself,
    gets told what to do."""
    if isinstance(value, Conditioner):
        return
    example = "a flowlab conditioner such as fl.MaskedConditioner(features) or fl.RNNConditioner(features)"
    if hasattr(value, "params") and callable(getattr(value, "inverse", None)):  # a transformer, given first
        raise ArgumentTypeError(
            f"{name} must be {example}, got the transformer {type(value).__name__}: the conditioner comes first, "
            "fl.Autoregressive(conditioner, transformer)."
        )
    if isinstance(value, type) and issubclass(value, Conditioner):
        raise ArgumentTypeError(f"{name} must be {example}, got {describe(value)} itself: call it to make one.")
    raise ArgumentTypeError(f"{name} must be {example}, got {describe(value)}.")


class Partitioned(Conditioner):
    r"""Base class of the conditioners over a :math:`K`-part partition of the features: the
    ``parts`` contiguous blocks :math:`I_1, \dots, I_K` (:func:`flowlab.nn.partition`), the
    parameters of block :math:`k` computed from the blocks :math:`< k`, those of block 1 learned
    constants. Inverting a layer therefore takes ``passes = parts - 1`` network passes. A
    subclass chooses the network (:class:`MaskedConditioner`: a masked MLP;
    :class:`flowlab.TransformerConditioner`: a causal transformer over the blocks).

    References: Papamakarios et al. 2021, section 3.1 (coupling and autoregressive conditioners).

    Example:
        >>> import flowlab as fl
        >>> c = fl.MaskedConditioner(5, parts=2)
        >>> isinstance(c, Partitioned), c.part.tolist(), c.passes
        (True, [0, 0, 0, 1, 1], 1)
    """

    def __init__(self, features: int, parts: int | None = None):
        super().__init__(features)
        self.parts = self.features if parts is None else parts
        if isinstance(self.parts, bool) or not isinstance(self.parts, int) or not 1 <= self.parts <= self.features:
            raise ValueError(f"parts must be an integer between 1 and features={self.features}, got {parts!r}.")

    @property
    def passes(self) -> int:
        """Network passes needed to invert: ``parts - 1`` (part 0 comes from the constants)."""
        return self.parts - 1

    @property
    def part(self) -> Tensor:
        """The part (0..K-1) of each feature."""
        return partition(self.features, self.parts)


class MaskedConditioner(Partitioned):
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

    **Cost.** One pass is a masked MLP: :math:`O(D H + H^2 + H D P)` per point for two hidden
    layers of width :math:`H` and :math:`P` outputs per feature (masking costs nothing more).
    The forward direction of a flow takes one pass, the inverse :math:`K - 1`.

    ``hidden`` gives the widths of the network's hidden layers, such as ``(64, 64)``; one
    number, ``hidden=64``, means two layers of that width. Hidden units get *degrees*
    :math:`0..K-2` (a unit of degree :math:`m` sees the inputs of parts :math:`\le m`; an
    output of part :math:`k` sees the units of degree :math:`< k`). A layer of at least
    :math:`K - 1` units has every degree. A narrower layer cannot: its degrees are spread
    evenly over :math:`0..K-2` and some are missing, so part :math:`k` sees only the earlier
    parts :math:`j` for which a chain of present degrees :math:`j \le m_1 \le m_2 < k`
    exists. The map stays autoregressive and invertible; it only loses some dependencies (with
    ``hidden=64`` and :math:`K = D = 128`, the degrees are 0, 1, 3, 5, ..., 125: about half the
    parts do not see the part just before them). Widen the layers to restore them.

    The number of outputs per feature is set by the transformer it is paired with
    (:class:`flowlab.Autoregressive` calls :meth:`build`), or directly with ``outputs``.

    References: Germain et al. 2015 (MADE); Papamakarios et al. 2017 (MAF); Dinh et al. 2017
    (RealNVP, the coupling layer).

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

    def __init__(self, features: int, parts: int | None = None, hidden: int | Sequence[int] = (64, 64),
                 outputs: int | None = None):
        super().__init__(features, parts)
        self.hidden = check_hidden(hidden, layers=2)  # hidden=64 means (64, 64)
        self.net = None
        if outputs is not None:
            self.build(outputs)

    def _build(self, outputs: int) -> None:
        if self.parts == 1:  # nothing to condition on: learned constants, no network
            self.net = nn.Parameter(torch.zeros(self.features, outputs))
            return
        self.net = MaskedMLP(self.features, outputs, self.parts, self.hidden)
        last = self.net[-1]
        with torch.no_grad():  # start near the identity: small outputs
            last.weight.mul_(1e-2)
            last.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        self._check_built()
        if self.parts == 1:
            return self.net.expand(x.shape[0], -1, -1)
        return self.net(x).view(x.shape[0], self.features, self.outputs)

    def initial(self, x: Tensor) -> Tensor:
        """Parameters of shape ``(batch, features, outputs)`` that are exact for part 0, without a
        network pass: the output layer's bias (the masks connect part 0's outputs to nothing).
        The entries of the other parts are placeholders (the bias); ``x`` only gives the batch size."""
        self._check_built()
        if self.parts == 1:
            return self.net.expand(x.shape[0], -1, -1)
        return self.net[-1].bias.view(1, self.features, self.outputs).expand(x.shape[0], -1, -1)

    def extra_repr(self) -> str:
        return f"features={self.features}, parts={self.parts}, hidden={self.hidden}"


class RNNConditioner(Conditioner):
    r"""A recurrent conditioner: a GRU reads the coordinates one at a time.

    With hidden state :math:`h_0 = 0` and the input shifted by one, :math:`x_0 := 0`,

    .. math::
        h_i = \operatorname{GRU}(h_{i-1}, x_{i-1}), \qquad c_i = W h_i + w_0,
        \qquad i = 1, \dots, D,

    so :math:`c_i` depends on :math:`x_{<i}` only, and :math:`c_1` is a learned constant. The
    same weights serve every coordinate, whatever :math:`D` is.

    **Cost.** One call returns every :math:`c_i`, but it is itself :math:`D` sequential GRU
    steps of :math:`O(U^2)` each (:math:`U` = ``units``): :math:`O(D U^2)` per point. Inverting
    a flow takes ``passes = features - 1`` such sweeps after :meth:`initial` (one GRU step for
    :math:`c_1`): :math:`x_i` is only known once :math:`x_{<i}` is. Each sweep reruns the GRU
    from the start, so the inverse costs :math:`O(D^2)` GRU steps; an incremental inverse that
    carries the state along would need :math:`O(D)`, but no batching over coordinates.

    ``units`` is the size of the GRU's state (``hidden`` is its former name, still accepted).
    The number of outputs per feature is set by the transformer it is paired with
    (:class:`flowlab.Autoregressive` calls :meth:`build`), or directly with ``outputs``; the
    output layer starts small, so the flow starts near the identity.

    References: Oliva et al. 2018 (transformation autoregressive networks, recurrent
    conditioners); Cho et al. 2014 (the GRU).

    Example:
        >>> import torch, flowlab as fl
        >>> c = fl.RNNConditioner(4, units=8, outputs=3)
        >>> c(torch.randn(5, 4)).shape
        torch.Size([5, 4, 3])
        >>> c.passes
        3
    """

    def __init__(self, features: int, units: int = 64, outputs: int | None = None, *, hidden: int | None = None):
        super().__init__(features)
        name, units = renamed("units", units, 64, "hidden", hidden)
        self.units = check_positive_int(name, units, hint="(the size of the GRU's state: one number, such as 64)")
        self.gru = nn.GRU(1, self.units, batch_first=True)
        self.head = None
        if outputs is not None:
            self.build(outputs)

    @property
    def passes(self) -> int:
        """Full GRU sweeps needed to invert: ``features - 1`` (:math:`c_1` comes from :meth:`initial`)."""
        return self.features - 1

    def _build(self, outputs: int) -> None:
        self.head = nn.Linear(self.units, outputs)
        with torch.no_grad():  # start near the identity: small outputs
            self.head.weight.mul_(1e-2)
            self.head.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        self._check_built()
        shifted = torch.cat((x.new_zeros(x.shape[0], 1), x[:, :-1]), dim=1)  # (0, x_1, ..., x_{D-1})
        h, _ = self.gru(shifted.unsqueeze(-1))
        return self.head(h)

    def initial(self, x: Tensor) -> Tensor:
        """Parameters of shape ``(batch, features, outputs)`` exact for the first coordinate:
        :math:`c_1`, from one GRU step on the input 0 (it depends on no coordinate), repeated as a
        placeholder for the others. ``x`` only gives the batch size, dtype and device."""
        self._check_built()
        h, _ = self.gru(x.new_zeros(1, 1, 1))
        return self.head(h).expand(x.shape[0], self.features, -1)

    def extra_repr(self) -> str:
        return f"features={self.features}, units={self.units}"
