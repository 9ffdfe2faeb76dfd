r"""Autoregressive flows: a conditioner followed by a transformer, and the named recipes.

.. math::
    z_i = \tau_{c_i}(x_i), \quad c_i = c^{(i)}(x_{<i}), \qquad
    \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_{i=1}^{D} \log \tau'_{c_i}(x_i).

The Jacobian is triangular, so its determinant is the product of the diagonal: :math:`O(D)`.

In the builders with masked conditioners (all but :func:`RNNFlow`, whose ``hidden`` is the
size of a GRU's state), ``hidden`` gives the widths of each conditioner's hidden layers, such
as ``(64, 64)``; one number, ``hidden=64``, means two layers of that width.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ._checks import check_batch, check_conditioner, check_like, check_positive_int, check_type
from .conditioners import MaskedConditioner
from .core import Compose, Transform
from .linear import Reverse
from .transformers import Affine, RQSpline, Transformer


class Autoregressive(Transform):
    r"""One autoregressive layer: ``transformer`` with parameters from ``conditioner``.

    * ``forward`` (data to latent) is explicit: one conditioner pass, then the transformer.
    * ``inverse`` (latent to data) is iterative. The parameters of part 0 are constants
      (``conditioner.initial``, no network pass), so inverting the transformer with them makes
      part 0 exact. Then each of ``passes = K - 1`` network passes recomputes the parameters
      from the current :math:`x` and inverts the transformer; after pass :math:`k` the first
      :math:`k + 1` parts are exact. A coupling layer (:math:`K = 2`) takes one network pass
      each way; a fully autoregressive one :math:`D - 1` to invert.

    Example:
        >>> import torch, flowlab as fl
        >>> layer = fl.Autoregressive(fl.MaskedConditioner(3, parts=3), fl.RQSpline(bins=4))
        >>> x = torch.randn(2, 3)
        >>> z, ladj = layer(x)
        >>> torch.allclose(layer.inverse(z)[0], x, atol=1e-5)
        True
        >>> layer.passes  # network passes to invert K = 3 parts
        2
    """

    def __init__(self, conditioner: MaskedConditioner, transformer: Transformer):
        super().__init__()
        check_conditioner("conditioner", conditioner)
        check_type("transformer", transformer, Transformer, "a flowlab Transformer such as fl.RQSpline() or fl.Affine()")
        conditioner.build(transformer.params)
        self.conditioner = conditioner
        self.transformer = transformer
        self.features = conditioner.features

    @property
    def passes(self) -> int:
        return self.conditioner.passes

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("x", x, self.features)
        try:
            z, ld = self.transformer(x, self.conditioner(x))
        except (RuntimeError, ValueError):
            check_like("x", x, self)  # a dtype or device mismatch gets a clear message
            raise
        return z, ld.sum(-1)

    def inverse(self, z: Tensor, passes: int | None = None) -> tuple[Tensor, Tensor]:
        """Invert with ``passes`` network passes after the constants of part 0 (default: the
        conditioner's ``passes``, which is exact; ``passes=0`` uses the constants only)."""
        check_batch("z", z, self.features)
        passes = self.passes if passes is None else check_positive_int("passes", passes, minimum=0)
        try:
            x, ld = self.transformer.inverse(z, self.conditioner.initial(z))  # part 0 exact, no network pass
            for _ in range(passes):
                x, ld = self.transformer.inverse(z, self.conditioner(x))
        except (RuntimeError, ValueError):
            check_like("z", z, self)  # a dtype or device mismatch gets a clear message
            raise
        return x, ld.sum(-1)


def _stack(features: int, layers: int, make_layer) -> Transform:
    """``layers`` autoregressive layers with the coordinates reversed in between."""
    layers = check_positive_int("layers", layers)
    blocks: list[Transform] = []
    for i in range(layers):
        if i > 0:
            blocks.append(Reverse(features))
        blocks.append(make_layer())
    return blocks[0] if len(blocks) == 1 else Compose(*blocks)


def MAF(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    layers: int = 1,
    parts: int | None = None,
    scale_bound: float = 3.0,
) -> Transform:
    r"""Masked autoregressive flow (Papamakarios et al. 2017): affine transformers, masked conditioner.

    Density evaluation takes one network pass per layer; sampling takes ``parts - 1`` per layer
    (one for a coupling layer, ``parts=2``).
    ``MAF(...).inv`` is an inverse autoregressive flow (IAF, Kingma et al. 2016), cheap to
    sample from. ``parts=2`` gives a RealNVP-style coupling flow. ``scale_bound`` bounds
    each layer's log-scale (see :class:`~flowlab.Affine`); deep stacks train more stably with
    a smaller bound.

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2, layers=3), fl.StandardNormal(2))
    """
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), Affine(scale_bound))
    )


def SplineAutoregressive(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    bins: int = 8,
    bound: float = 4.0,
    layers: int = 4,
    parts: int | None = None,
) -> Transform:
    r"""Neural spline flow (Durkan et al. 2019): rational-quadratic spline transformers,
    masked conditioners, ``layers`` layers with the coordinates reversed in between.

    The book's opening example (flowtorch's ``SplineAutoregressive``) is one layer with a
    256-256 network, 8 bins and bound 3:
    ``SplineAutoregressive(2, hidden=(256, 256), bins=8, bound=3, layers=1)``.
    The defaults stack four layers with 64-64 networks; trained with :func:`flowlab.fit`'s
    defaults they generalize better from a thousand points (the circles chapter measures it).

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
    """
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), RQSpline(bins, bound))
    )


# More named recipes: inverse, coupling and recurrent flows, and the transformers that are
# inverted by bisection.
import copy  # noqa: E402

from .conditioners import RNNConditioner  # noqa: E402
from .transformers import Integral, MonotonicNN  # noqa: E402


def IAF(features: int, hidden: int | Sequence[int] = (64, 64), layers: int = 1, parts: int | None = None) -> Transform:
    r"""Inverse autoregressive flow (Kingma et al. 2016): a :func:`MAF` used the other way round.

    ``IAF(...)`` is ``MAF(...).inv``: its ``forward`` (data to latent, the density) takes
    ``parts - 1`` network passes per layer, its ``inverse`` (sampling) one pass per layer. Cheap to sample
    from and to evaluate on its own samples, which is what the reverse KL objective needs.

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.IAF(2, hidden=(16,), layers=2), fl.StandardNormal(2))
        >>> x, log_p = flow.rsample_and_log_prob(5)  # one pass per layer
        >>> torch.allclose(flow.log_prob(x), log_p, atol=1e-4)  # D passes per layer
        True
    """
    return MAF(features, hidden, layers, parts).inv


def RealNVP(features: int, hidden: int | Sequence[int] = (64, 64), layers: int = 4) -> Transform:
    r"""RealNVP (Dinh et al. 2017): affine coupling layers, the coordinates reversed in between.

    Each layer is an :class:`Autoregressive` layer with a :class:`MaskedConditioner` of
    ``parts = 2`` and :class:`Affine` transformers: the first half of the coordinates gets a
    learned elementwise affine map, the second half an affine map conditioned on the first half,

    .. math:: z_{I_2} = e^{s(x_{I_1})} \odot x_{I_2} + t(x_{I_1}).

    Both directions take one network pass per layer: the first half's parameters are constants. ``features`` must be at least 2.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.RealNVP(4, hidden=(16,), layers=2)
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """
    return MAF(features, hidden, layers, parts=2)


def NeuralSplineFlow(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    bins: int = 8,
    bound: float = 4.0,
    layers: int = 3,
    parts: int | None = 2,
) -> Transform:
    r"""Neural spline flow (Durkan et al. 2019), coupling version: rational-quadratic spline
    transformers with a ``parts = 2`` masked conditioner, the coordinates reversed in between.

    ``parts=None`` (or ``features``) gives the autoregressive version, the same as
    :func:`SplineAutoregressive`.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.NeuralSplineFlow(4, hidden=(16,), layers=2)
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """
    return SplineAutoregressive(features, hidden, bins, bound, layers, parts)


def MonotonicFlow(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    units: int = 8,
    layers: int = 3,
    parts: int | None = None,
) -> Transform:
    r"""Neural autoregressive flow (Huang et al. 2018): :class:`MonotonicNN` (deep sigmoidal)
    transformers with ``units`` sigmoids each, masked conditioners with ``hidden`` layers,
    the coordinates reversed in between.

    ``forward`` (the density) is explicit; ``inverse`` (sampling) inverts each transformer by
    bisection, ``parts - 1`` network passes per layer.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.MonotonicFlow(2, hidden=(16,), units=4, layers=2).double()
        >>> x = torch.randn(3, 2, dtype=torch.float64)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-10)
        True
    """
    units = check_positive_int("units", units, hint="(the sigmoids of each transformer)")
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), MonotonicNN(units))
    )


def UMNNFlow(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    units: int = 8,
    nodes: int = 64,
    layers: int = 3,
    parts: int | None = None,
) -> Transform:
    r"""Unconstrained monotonic neural network flow (Wehenkel & Louppe 2019): :class:`Integral`
    transformers (the integral of a positive network with ``units`` tanh units, by
    ``nodes``-point Gauss-Legendre quadrature), masked conditioners with ``hidden`` layers, the
    coordinates reversed in between.

    ``forward`` (the density) costs one quadrature per layer; ``inverse`` (sampling) inverts
    each transformer by bisection, one quadrature per bisection step, ``parts - 1`` network
    passes per layer.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.UMNNFlow(2, hidden=(16,), units=4, layers=2).double()
        >>> x = torch.randn(3, 2, dtype=torch.float64)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-10)
        True
    """
    units = check_positive_int("units", units, hint="(the tanh units of each integrand)")
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), Integral(units, nodes))
    )


def RNNFlow(features: int, hidden: int = 64, transformer: Transformer | None = None, layers: int = 2) -> Transform:
    r"""An autoregressive flow with a recurrent conditioner: :class:`RNNConditioner` (a GRU with
    ``hidden`` state units) and ``transformer`` (default ``RQSpline(bins=8, bound=4.0)``; each
    layer gets its own copy), the coordinates reversed in between.

    ``forward`` (the density) takes one GRU sweep (``features`` sequential steps) per layer;
    ``inverse`` (sampling) takes ``features - 1`` sweeps per layer after one GRU step.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.RNNFlow(3, hidden=8, transformer=fl.Affine())
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """
    transformer = RQSpline(bins=8, bound=4.0) if transformer is None else transformer
    if not isinstance(transformer, Transformer):
        raise ValueError(f"transformer must be a flowlab Transformer, got {type(transformer).__name__}.")
    return _stack(
        features, layers, lambda: Autoregressive(RNNConditioner(features, hidden), copy.deepcopy(transformer))
    )
