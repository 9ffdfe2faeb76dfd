r"""A time-conditioned MLP :math:`g_\theta(t, z)`: the vector field of a continuous flow.

The time enters through a fixed embedding :math:`(\cos \pi k t, \sin \pi k t)_{k=1..F}`
concatenated to :math:`z`; a smooth activation (tanh or softplus) keeps :math:`g` smooth in
:math:`z` and :math:`t`, which fixed-step Runge-Kutta methods need to reach their order.
Besides the value, the network propagates tangent vectors forward (a Jacobian-vector product
per direction), so the trace of :math:`\partial g/\partial z` costs :math:`D` directions and
Hutchinson's estimate one, without a second backward pass.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._checks import check_positive_int
from .lipschitz import check_widths

__all__ = ["TimeMLP"]

_ACTIVATIONS = ("tanh", "softplus")


class TimeMLP(nn.Module):
    r"""The vector field :math:`g_\theta(t, z) = W_L\,\sigma(\dots \sigma(W_1 [z, e(t)] + b_1)\dots) + b_L`,
    with :math:`e(t) = (\cos \pi k t, \sin \pi k t)_{k = 1}^{F}` (``freqs`` :math:`= F`) and
    :math:`\sigma` = tanh or softplus.

    * ``g(t, z)`` with ``t`` a 0-dimensional tensor (one time for every row) or of shape
      ``(batch,)`` (a time per row, as flow matching draws them) and ``z`` of shape
      ``(batch, features)`` returns ``(batch, features)``;
    * ``g.jvp(t, z, v)`` also returns :math:`J v` for tangents ``v`` of shape
      ``(batch, features, K)`` (:math:`J = \partial g/\partial z`), propagated forward through
      the layers: :math:`K` times the matrix products of one evaluation, first-order
      differentiable, no second backward pass. ``v`` the identity gives the whole Jacobian
      (the exact trace in :math:`D` directions), ``v`` one probe gives Hutchinson's estimate.

    ``hidden`` is a sequence of widths, or an int :math:`h` for two hidden layers of :math:`h`
    units (as everywhere in flowlab). The last layer starts at zero, so :math:`g = 0` and the
    flow it drives is the identity. :meth:`lipschitz_bound` bounds :math:`\lVert \partial g/\partial z\rVert_2`.

    References: Grathwohl et al. (2019), FFJORD (time-conditioned fields); Chen et al. (2018).

    Example:
        >>> import torch
        >>> g = TimeMLP(2, hidden=8)  # two hidden layers of 8 units
        >>> z = torch.randn(5, 2)
        >>> g(torch.tensor(0.5), z).abs().max().item()  # zero at initialisation
        0.0
        >>> g(torch.rand(5), z).shape  # a time per row
        torch.Size([5, 2])
        >>> out, jv = g.jvp(torch.tensor(0.5), z, torch.eye(2).expand(5, 2, 2))
        >>> jv.shape
        torch.Size([5, 2, 2])
    """

    def __init__(self, features: int, hidden=(64, 64), freqs: int = 3, activation: str = "tanh"):
        super().__init__()
        self.features = check_positive_int("features", features)
        freqs = check_positive_int("freqs", freqs, minimum=0, maximum=64, hint="(time frequencies)")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}.")
        sizes = [features + 2 * freqs, *check_widths(hidden), features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)
        self.activation = activation
        self.register_buffer("freqs", torch.arange(1, freqs + 1, dtype=torch.get_default_dtype()) * math.pi)

    def _input(self, t: Tensor, z: Tensor) -> Tensor:
        wt = self.freqs.to(z.dtype) * t.to(z.dtype).reshape(-1, 1)  # one time, or one per row
        e = torch.cat([wt.cos(), wt.sin()], dim=1).expand(z.shape[0], -1)
        return torch.cat([z, e], dim=1)

    def _act(self, a: Tensor) -> tuple[Tensor, Tensor]:
        if self.activation == "tanh":
            h = torch.tanh(a)
            return h, 1 - h * h
        return nn.functional.softplus(a), torch.sigmoid(a)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        h = self._input(t, z)
        for layer in self.layers[:-1]:
            h = self._act(layer(h))[0]
        return self.layers[-1](h)

    def jvp(self, t: Tensor, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """``(g(t, z), J v)`` for tangents ``v`` of shape ``(batch, features, K)``."""
        if v.dim() != 3 or v.shape[:2] != z.shape:
            raise ValueError(f"v must have shape (batch, features, K) = ({z.shape[0]}, {z.shape[1]}, K), "
                             f"got {tuple(v.shape)}.")
        h = self._input(t, z)
        tan = v
        for i, layer in enumerate(self.layers):
            w = layer.weight[:, : self.features] if i == 0 else layer.weight  # time has no tangent
            tan = torch.einsum("oi,bik->bok", w, tan)  # (out, in) @ (batch, in, K)
            a = layer(h)
            if i < len(self.layers) - 1:
                h, dh = self._act(a)
                tan = dh.unsqueeze(-1) * tan
        return a, tan

    @torch.no_grad()
    def lipschitz_bound(self) -> float:
        r"""A bound on :math:`\lVert \partial g/\partial z\rVert_2` over all :math:`t, z`: the product of
        the spectral norms of the weights (the first restricted to the columns of :math:`z`), as
        both activations have slopes in :math:`[0, 1]`. Cost: one SVD per layer.

        Example:
            >>> TimeMLP(2, hidden=8).lipschitz_bound()  # the last layer starts at zero
            0.0
        """
        bound = 1.0
        for i, layer in enumerate(self.layers):
            w = layer.weight[:, : self.features] if i == 0 else layer.weight
            bound *= float(torch.linalg.matrix_norm(w.double(), ord=2))
        return bound

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, freqs={len(self.freqs)}"
