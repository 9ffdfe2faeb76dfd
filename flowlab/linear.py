r"""Linear flows :math:`z = W x`. Permutations are the volume-preserving special case:
:math:`|\det W| = 1`, so their ``ladj`` is zero, and they let later autoregressive layers see
the coordinates in another order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_batch, check_positive_int
from .core import Transform


class Permutation(Transform):
    r"""Reorders the coordinates: :math:`z_i = x_{\pi(i)}`; ``ladj`` is zero.

    ``order`` is a permutation of ``0..features-1``; by default a random one drawn from
    ``seed``.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.Permutation(3, order=[2, 0, 1])(torch.tensor([[10., 11., 12.]]))[0]
        tensor([[12., 10., 11.]])
    """

    def __init__(self, features: int, order=None, seed: int = 0):
        super().__init__()
        self.features = check_positive_int("features", features)
        if order is None:
            order = torch.randperm(self.features, generator=torch.Generator().manual_seed(seed))
        order = torch.as_tensor(order, dtype=torch.long)
        if order.shape != (self.features,) or not torch.equal(order.sort().values, torch.arange(self.features)):
            raise ValueError(f"order must be a permutation of 0..{self.features - 1}, got {order.tolist()}.")
        self.register_buffer("order", order)
        self.register_buffer("inverse_order", torch.argsort(order))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("x", x, self.features)
        return x[:, self.order], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("z", z, self.features)
        return z[:, self.inverse_order], z.new_zeros(z.shape[0])

    def extra_repr(self) -> str:
        return f"order={self.order.tolist()}"


class Reverse(Permutation):
    """Reverses the order of the coordinates: :math:`z_i = x_{D+1-i}`.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.Reverse(3)(torch.tensor([[1., 2., 3.]]))[0]
        tensor([[3., 2., 1.]])
    """

    def __init__(self, features: int):
        super().__init__(features, order=torch.arange(check_positive_int("features", features) - 1, -1, -1))
