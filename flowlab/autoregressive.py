r"""Autoregressive flows: a conditioner followed by a transformer, and the named recipes.

.. math::
    z_i = \tau_{c_i}(x_i), \quad c_i = c^{(i)}(x_{<i}), \qquad
    \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_{i=1}^{D} \log \tau'_{c_i}(x_i).

The Jacobian is triangular, so its determinant is the product of the diagonal: :math:`O(D)`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ._checks import check_batch, check_positive_int
from .conditioners import MaskedConditioner
from .core import Compose, Transform
from .linear import Reverse
from .transformers import Affine, RQSpline, Transformer


class Autoregressive(Transform):
    r"""One autoregressive layer: ``transformer`` with parameters from ``conditioner``.

    * ``forward`` (data to latent) is explicit: one conditioner pass, then the transformer.
    * ``inverse`` (latent to data) is iterative: ``conditioner.passes`` sweeps. Starting from
      :math:`x = 0`, each sweep recomputes the parameters from the current :math:`x` and
      inverts the transformer; after sweep :math:`k` the coordinates of the first :math:`k`
      parts are exact, so exactly ``passes`` sweeps recover :math:`x`.

    Example:
        >>> import torch, flowlab as fl
        >>> layer = fl.Autoregressive(fl.MaskedConditioner(3, parts=3), fl.RQSpline(bins=4))
        >>> x = torch.randn(2, 3)
        >>> z, ladj = layer(x)
        >>> torch.allclose(layer.inverse(z)[0], x, atol=1e-5)
        True
    """

    def __init__(self, conditioner: MaskedConditioner, transformer: Transformer):
        super().__init__()
        if not isinstance(transformer, Transformer):
            raise ValueError(f"transformer must be a flowlab Transformer, got {type(transformer).__name__}.")
        conditioner.build(transformer.params)
        self.conditioner = conditioner
        self.transformer = transformer
        self.features = conditioner.features

    @property
    def passes(self) -> int:
        return self.conditioner.passes

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("x", x, self.features)
        z, ld = self.transformer(x, self.conditioner(x))
        return z, ld.sum(-1)

    def inverse(self, z: Tensor, passes: int | None = None) -> tuple[Tensor, Tensor]:
        """Invert with ``passes`` sweeps (default: the conditioner's, which is exact)."""
        check_batch("z", z, self.features)
        passes = self.passes if passes is None else check_positive_int("passes", passes)
        x = z.new_zeros(z.shape)
        for _ in range(passes):
            x, ld = self.transformer.inverse(z, self.conditioner(x))
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


def MAF(features: int, hidden: Sequence[int] = (64, 64), layers: int = 1, parts: int | None = None) -> Transform:
    r"""Masked autoregressive flow (Papamakarios et al. 2017): affine transformers, masked conditioner.

    Density evaluation takes one pass per layer; sampling takes ``parts`` passes per layer.
    ``MAF(...).inv`` is an inverse autoregressive flow (IAF, Kingma et al. 2016), cheap to
    sample from. ``parts=2`` gives a RealNVP-style coupling flow.

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2, layers=3), fl.StandardNormal(2))
    """
    return _stack(features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), Affine()))


def SplineAutoregressive(
    features: int,
    hidden: Sequence[int] = (64, 64),
    bins: int = 8,
    bound: float = 4.0,
    layers: int = 3,
    parts: int | None = None,
) -> Transform:
    r"""Neural spline flow (Durkan et al. 2019): rational-quadratic spline transformers,
    masked conditioners, ``layers`` layers with the coordinates reversed in between.

    The notes' opening example (flowtorch's ``SplineAutoregressive``) is one layer with a
    256-256 network, 8 bins and bound 3:
    ``SplineAutoregressive(2, hidden=(256, 256), bins=8, bound=3, layers=1)``.
    The defaults are smaller networks stacked three deep, which generalize better from a
    thousand points (see chapter 1).

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
    """
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), RQSpline(bins, bound))
    )
