r"""Autoregressive flows: a conditioner followed by a transformer, and the named recipes.

.. math::
    z_i = \tau_{c_i}(x_i), \quad c_i = c^{(i)}(x_{<i}), \qquad
    \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_{i=1}^{D} \log \tau'_{c_i}(x_i).

The Jacobian is triangular, so its determinant is the product of the diagonal: :math:`O(D)`.

In the recipes with masked conditioners (all but :func:`RNNFlow`, whose ``units`` is the size
of a GRU's state), ``hidden`` gives the widths of each conditioner's hidden layers, such as
``(64, 64)``; one number, ``hidden=64``, means two layers of that width. Every recipe stacks
``layers`` layers in a :class:`~flowlab.Compose`, with the ``mixing`` layer in between
(:func:`flowlab.linear.mixing`: a reversal by default; mixing layer :math:`i` is drawn from
``seed + i``).

References: Papamakarios et al. 2021, section 3 (autoregressive flows); Kingma et al. 2016
(IAF); Papamakarios et al. 2017 (MAF); Huang et al. 2018 (NAF).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import NamedTuple

from torch import Tensor

from ._checks import check_positive_int, check_seed, check_type, describe, renamed
from .conditioners import Conditioner, MaskedConditioner, RNNConditioner, check_conditioner
from .core import Compose, Transform, check_input
from .linear import MIXINGS
from .linear import mixing as mixing_layer
from .numerics.jacobi import default_tol, jacobi
from .transformers import Affine, Integral, MonotonicNN, RQSpline, Transformer


class JacobiInverse(NamedTuple):
    r"""What :meth:`Autoregressive.jacobi` returns: the point :math:`x`, the log-determinant
    :math:`\log|\det \partial x / \partial z|` of the inverse map, the network passes (sweeps)
    used, at most :math:`K - 1`, and the largest change :math:`\max |x_k - x_{k-1}|` of the last
    one. Holding them costs nothing: they are computed by the inversion anyway.

    References: Saad 2003 (Iterative methods for sparse linear systems, section 4.1: Jacobi).

    Example:
        >>> import torch, flowlab as fl
        >>> layer = fl.Autoregressive(fl.MaskedConditioner(3), fl.Affine())
        >>> x, ladj, sweeps, residual = layer.jacobi(torch.zeros(1, 3), tol=0.0)
        >>> sweeps  # a fresh layer is nearly the identity; still two passes to know it exactly
        2
    """

    x: Tensor
    ladj: Tensor
    sweeps: int
    residual: float


class Autoregressive(Transform):
    r"""One autoregressive layer: ``transformer`` with parameters from ``conditioner``,

    .. math:: z_i = \tau_{c_i}(x_i), \quad c_i = c^{(i)}(x_{<i}), \qquad
              \text{ladj}(x) = \sum_{i=1}^{D} \log \tau'_{c_i}(x_i).

    * ``forward`` (data to latent) is explicit: one conditioner pass, then the transformer.
    * ``inverse`` (latent to data) is iterative. The parameters of part 0 are constants
      (``conditioner.initial``, no network pass), so inverting the transformer with them makes
      part 0 exact. Then each of ``passes = K - 1`` network passes recomputes the parameters
      from the current :math:`x` and inverts the transformer; after pass :math:`k` the first
      :math:`k + 1` parts are exact. A coupling layer (:math:`K = 2`) takes one network pass
      each way; a fully autoregressive one :math:`D - 1` to invert.
    * These passes are Jacobi sweeps of the fixed point :math:`x = T(x)`,
      :math:`T(x)_i = \tau^{-1}_{c_i(x_{<i})}(z_i)` (:meth:`jacobi`): ``inverse(z,
      method="jacobi")`` stops them as soon as one moves no coordinate by more than ``tol``,
      often long before :math:`K - 1`.

    **Cost.** With :math:`C` the cost of one conditioner pass and :math:`T` that of the
    transformer on all :math:`D` coordinates: ``forward`` :math:`C + T`; ``inverse``
    :math:`(K - 1)(C + T) + T`, or :math:`s\,(C + T) + T` for :math:`s \le K - 1` Jacobi
    sweeps. The log-determinant is a sum of :math:`D` numbers the transformer returns anyway.

    References: Papamakarios et al. 2021, section 3.1 (conditioner and transformer);
    Wehenkel & Louppe 2021 (graphical normalizing flows); Kingma et al. 2016 (IAF).

    Example:
        >>> import torch, flowlab as fl
        >>> layer = fl.Autoregressive(fl.MaskedConditioner(3, parts=3), fl.RQSpline(bins=4))
        >>> x = torch.randn(2, 3)
        >>> z, ladj = layer(x)
        >>> torch.allclose(layer.inverse(z)[0], x, atol=1e-5)
        True
        >>> layer.passes  # network passes to invert K = 3 parts
        2
        >>> sol = layer.jacobi(z, tol=0.0)  # sweeps until one changes nothing, at most 2
        >>> torch.equal(sol.x, layer.inverse(z)[0]), sol.sweeps <= 2
        (True, True)
    """

    def __init__(self, conditioner: Conditioner, transformer: Transformer):
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
        z, ld = self.transformer(x, self.conditioner(x))
        return z, ld.sum(-1)

    def inverse(self, z: Tensor, passes: int | None = None, *, method: str = "sequential",
                tol: float | None = None) -> tuple[Tensor, Tensor]:
        """Invert with ``passes`` network passes after the constants of part 0 (default: the
        conditioner's ``passes``, which is exact; ``passes=0`` uses the constants only).

        ``method="sequential"`` runs every pass. ``method="jacobi"`` stops after the first pass
        that moves no coordinate by more than ``tol`` (default :math:`10^{-5}` in float32,
        :math:`10^{-10}` in float64): see :meth:`jacobi`, which also reports the passes used."""
        if method not in ("sequential", "jacobi"):
            raise ValueError(f"method must be 'sequential' (every pass) or 'jacobi' (stop at tol), got {method!r}.")
        if method == "sequential" and tol is not None:
            raise ValueError("tol sets when Jacobi sweeps stop: pass it with method='jacobi', or leave it out.")
        if method == "jacobi" and tol is None:
            tol = default_tol(z.dtype)
        sol = self.jacobi(z, tol, passes)
        return sol.x, sol.ladj

    def jacobi(self, z: Tensor, tol: float | None = None, passes: int | None = None) -> JacobiInverse:
        r"""The inverse as a fixed point, :math:`x = T(x)` with
        :math:`T(x)_i = \tau^{-1}_{c_i(x_{<i})}(z_i)`, by Jacobi sweeps
        (:func:`flowlab.numerics.jacobi`): from the constants of part 0, each sweep is one
        network pass that updates every coordinate at once. After sweep :math:`k` the first
        :math:`k + 1` parts are exact, so at most ``passes`` sweeps (default ``self.passes``,
        :math:`K - 1`) give the exact inverse; with ``tol`` the sweeps stop at the first one that
        moves no coordinate by more than ``tol`` (``tol=None``: every sweep, the sequential
        inverse). Returns :class:`JacobiInverse` ``(x, ladj, sweeps, residual)``: ``sweeps``
        network passes were used, the last one changed the point by at most ``residual``."""
        check_input(self, "z", z)
        passes = self.passes if passes is None else check_positive_int("passes", passes, minimum=0)
        x, ld = self.transformer.inverse(z, self.conditioner.initial(z))  # part 0 exact, no network pass
        last = [ld]

        def sweep(x: Tensor) -> Tensor:
            x, last[0] = self.transformer.inverse(z, self.conditioner(x))
            return x

        sol = jacobi(sweep, x, passes, tol)
        return JacobiInverse(sol.x, last[0].sum(-1), sol.sweeps, sol.residual)


def _stack(features: int, layers: int, make_layer: Callable[[], Transform], mixing: str = "reverse",
           seed: int | None = 0) -> Compose:
    """``layers`` layers from ``make_layer()`` with the ``mixing`` layer in between (the one
    before layer ``i`` drawn from ``seed + i``), as a :class:`Compose` (also for one layer)."""
    layers = check_positive_int("layers", layers)
    seed = check_seed("seed", seed)
    if not isinstance(mixing, str) or mixing.lower() not in MIXINGS:
        raise ValueError(f"mixing must be one of {', '.join(map(repr, MIXINGS))}; got {describe(mixing)}.")
    blocks: list[Transform] = []
    for i in range(layers):
        between = mixing_layer(mixing, features, seed=None if seed is None else seed + i) if i else None
        blocks += [between] if between is not None else []
        blocks.append(make_layer())
    return Compose(*blocks)


def MAF(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    layers: int = 1,
    parts: int | None = None,
    scale_bound: float = 3.0,
    *,
    mixing: str = "reverse",
    seed: int | None = 0,
) -> Compose:
    r"""Masked autoregressive flow (Papamakarios et al. 2017): :class:`Affine` transformers,
    :class:`MaskedConditioner` (``parts`` = :math:`K`, all the features by default),

    .. math:: z_i = e^{s_i(x_{<i})} x_i + t_i(x_{<i}).

    Density evaluation takes one network pass per layer; sampling takes ``parts - 1`` per layer
    (one for a coupling layer, ``parts=2``).
    ``MAF(...).inv`` is an inverse autoregressive flow (IAF, Kingma et al. 2016), cheap to
    sample from. ``parts=2`` gives a RealNVP-style coupling flow. ``scale_bound`` bounds
    each layer's log-scale (see :class:`~flowlab.Affine`); deep stacks train more stably with
    a smaller bound. ``mixing`` (``"reverse"``, ``"permutation"``, ``"lu"`` or ``"none"``) is
    the layer between two layers (:func:`flowlab.linear.mixing`), drawn from ``seed + i``
    before layer ``i``.

    References: Papamakarios et al. 2017 (MAF); Germain et al. 2015 (MADE).

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2, layers=3), fl.StandardNormal(2))
        >>> [type(t).__name__ for t in fl.MAF(4, layers=2, mixing="lu")]
        ['Autoregressive', 'LU', 'Autoregressive']
    """
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), Affine(scale_bound)),
        mixing, seed,
    )


def SplineAutoregressive(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    bins: int = 8,
    bound: float = 4.0,
    layers: int = 4,
    parts: int | None = None,
    *,
    mixing: str = "reverse",
    seed: int | None = 0,
) -> Compose:
    r"""Neural spline flow (Durkan et al. 2019): :class:`RQSpline` transformers, masked
    conditioners, ``layers`` layers with the ``mixing`` layer in between (a reversal by
    default; see :func:`MAF`).

    Density evaluation takes one network pass per layer, sampling ``parts - 1`` (:math:`D - 1`
    by default); the spline itself costs :math:`O(\text{bins})` per coordinate both ways.

    The book's opening example (flowtorch's ``SplineAutoregressive``) is one layer with a
    256-256 network, 8 bins and bound 3:
    ``SplineAutoregressive(2, hidden=(256, 256), bins=8, bound=3, layers=1)``.
    The defaults stack four layers with 64-64 networks; trained with :func:`flowlab.fit`'s
    defaults they generalize better from a thousand points (the circles chapter measures it).
    They work at any size: with more than 65 features, a 64-wide layer cannot carry every
    dependency, and some are missing (see :class:`MaskedConditioner`); widen ``hidden`` to
    keep them all.

    References: Durkan et al. 2019 (neural spline flows); Papamakarios et al. 2017 (MAF).

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
    """
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), RQSpline(bins, bound)),
        mixing, seed,
    )


def IAF(features: int, hidden: int | Sequence[int] = (64, 64), layers: int = 1, parts: int | None = None, *,
        mixing: str = "reverse", seed: int | None = 0) -> Transform:
    r"""Inverse autoregressive flow (Kingma et al. 2016): a :func:`MAF` used the other way round.

    ``IAF(...)`` is ``MAF(...).inv``: sampling is the explicit direction,

    .. math:: x_i = e^{s_i(z_{<i})} z_i + t_i(z_{<i}),

    one network pass per layer; its ``forward`` (data to latent, the density of a new point)
    takes ``parts - 1`` passes per layer. Cheap to sample from and to evaluate on its own
    samples, which is what the reverse KL objective needs.

    References: Kingma et al. 2016 (IAF).

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.IAF(2, hidden=(16,), layers=2), fl.StandardNormal(2))
        >>> x, log_p = flow.rsample_and_log_prob(5)  # one pass per layer
        >>> torch.allclose(flow.log_prob(x), log_p, atol=1e-4)  # D passes per layer
        True
    """
    return MAF(features, hidden, layers, parts, mixing=mixing, seed=seed).inv


def RealNVP(features: int, hidden: int | Sequence[int] = (64, 64), layers: int = 4, *, mixing: str = "reverse",
            seed: int | None = 0) -> Compose:
    r"""RealNVP (Dinh et al. 2017): affine coupling layers, the coordinates reversed in between
    (or another ``mixing`` layer, see :func:`MAF`).

    Each layer is an :class:`Autoregressive` layer with a :class:`MaskedConditioner` of
    ``parts = 2`` and :class:`Affine` transformers: the first half of the coordinates gets a
    learned elementwise affine map, the second half an affine map conditioned on the first half,

    .. math:: z_{I_2} = e^{s(x_{I_1})} \odot x_{I_2} + t(x_{I_1}).

    Both directions take one network pass per layer: the first half's parameters are
    constants. ``features`` must be at least 2.

    References: Dinh et al. 2017 (RealNVP).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.RealNVP(4, hidden=(16,), layers=2)
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """
    return MAF(features, hidden, layers, parts=2, mixing=mixing, seed=seed)


def NeuralSplineFlow(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    bins: int = 8,
    bound: float = 4.0,
    layers: int = 3,
    parts: int | None = 2,
    *,
    mixing: str = "reverse",
    seed: int | None = 0,
) -> Compose:
    r"""Neural spline flow (Durkan et al. 2019), coupling version: rational-quadratic spline
    transformers with a ``parts = 2`` masked conditioner, the coordinates reversed in between
    (or another ``mixing`` layer, see :func:`MAF`),

    .. math:: z_{I_1} = \tau_{c_1}(x_{I_1}), \qquad z_{I_2} = \tau_{c(x_{I_1})}(x_{I_2}),

    with :math:`c_1` learned constants. One network pass per layer each way.

    ``parts=None`` (or ``features``) gives the autoregressive version, the same as
    :func:`SplineAutoregressive`.

    References: Durkan et al. 2019 (neural spline flows).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.NeuralSplineFlow(4, hidden=(16,), layers=2)
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """
    return SplineAutoregressive(features, hidden, bins, bound, layers, parts, mixing=mixing, seed=seed)


def MonotonicFlow(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    units: int = 8,
    layers: int = 3,
    parts: int | None = None,
    *,
    mixing: str = "reverse",
    seed: int | None = 0,
) -> Compose:
    r"""Neural autoregressive flow (Huang et al. 2018): :class:`MonotonicNN` (deep sigmoidal)
    transformers with ``units`` sigmoids each, masked conditioners with ``hidden`` layers,
    the ``mixing`` layer in between (a reversal by default; see :func:`MAF`):
    :math:`z_i = \tau_{c_i(x_{<i})}(x_i)` with :math:`\tau` a conic combination of sigmoids.

    ``forward`` (the density) is explicit, one network pass per layer; ``inverse`` (sampling)
    inverts each transformer by bisection, ``parts - 1`` network passes per layer.

    References: Huang et al. 2018 (neural autoregressive flows).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.MonotonicFlow(2, hidden=(16,), units=4, layers=2).double()
        >>> x = torch.randn(3, 2, dtype=torch.float64)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-10)
        True
    """
    units = check_positive_int("units", units, hint="(the sigmoids of each transformer)")
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), MonotonicNN(units)),
        mixing, seed,
    )


def UMNNFlow(
    features: int,
    hidden: int | Sequence[int] = (64, 64),
    units: int = 8,
    nodes: int = 64,
    layers: int = 3,
    parts: int | None = None,
    *,
    mixing: str = "reverse",
    seed: int | None = 0,
) -> Compose:
    r"""Unconstrained monotonic neural network flow (Wehenkel & Louppe 2019): :class:`Integral`
    transformers (the integral of a positive network with ``units`` tanh units, by
    ``nodes``-point Gauss-Legendre quadrature), masked conditioners with ``hidden`` layers, the
    ``mixing`` layer in between (a reversal by default; see :func:`MAF`):
    :math:`z_i = \beta_i + \int_0^{x_i} g_{c_i(x_{<i})}(t)\,dt`.

    ``forward`` (the density) costs one network pass and one quadrature per layer; ``inverse``
    (sampling) inverts each transformer by bisection, one quadrature per bisection step,
    ``parts - 1`` network passes per layer.

    References: Wehenkel & Louppe 2019 (UMNN).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.UMNNFlow(2, hidden=(16,), units=4, layers=2).double()
        >>> x = torch.randn(3, 2, dtype=torch.float64)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-10)
        True
    """
    units = check_positive_int("units", units, hint="(the tanh units of each integrand)")
    return _stack(
        features, layers, lambda: Autoregressive(MaskedConditioner(features, parts, hidden), Integral(units, nodes)),
        mixing, seed,
    )


def RNNFlow(features: int, units: int = 64, transformer: Transformer | None = None, layers: int = 2, *,
            mixing: str = "reverse", seed: int | None = 0, hidden: int | None = None) -> Compose:
    r"""An autoregressive flow with a recurrent conditioner: :class:`RNNConditioner` (a GRU with
    ``units`` state units; ``hidden`` is the former name) and ``transformer`` (default
    ``RQSpline(bins=8, bound=4.0)``; each layer gets its own copy), the ``mixing`` layer in
    between (a reversal by default; see :func:`MAF`): :math:`z_i = \tau_{c_i}(x_i)` with
    :math:`c_i = W h_i + w_0`, :math:`h_i = \operatorname{GRU}(h_{i-1}, x_{i-1})`.

    ``forward`` (the density) takes one GRU sweep (``features`` sequential steps,
    :math:`O(D U^2)`) per layer; ``inverse`` (sampling) takes ``features - 1`` sweeps per layer
    after one GRU step, :math:`O(D^2 U^2)`.

    References: Oliva et al. 2018 (transformation autoregressive networks).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.RNNFlow(3, units=8, transformer=fl.Affine())
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """
    name, units = renamed("units", units, 64, "hidden", hidden)
    units = check_positive_int(name, units, hint="(the size of the GRU's state: one number, such as 64)")
    transformer = RQSpline(bins=8, bound=4.0) if transformer is None else transformer
    check_type("transformer", transformer, Transformer, "a flowlab Transformer such as fl.RQSpline() or fl.Affine()")
    return _stack(
        features, layers, lambda: Autoregressive(RNNConditioner(features, units), copy.deepcopy(transformer)),
        mixing, seed,
    )
