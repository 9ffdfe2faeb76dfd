r"""Transformers: univariate, strictly increasing maps :math:`\tau_c` with parameters :math:`c`.

A transformer acts elementwise. ``forward(x, c)`` returns :math:`(\tau_c(x),\ \log \tau_c'(x))`
and ``inverse(y, c)`` returns :math:`(\tau_c^{-1}(y),\ \log (\tau_c^{-1})'(y))`, all of shape
``(batch, features)``, with ``c`` of shape ``(batch, features, params)``. Zero parameters give
the identity, so a flow whose conditioner outputs small values starts near the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_positive_float, check_positive_int


class Transformer(nn.Module):
    """Base class: a univariate monotone map with ``params`` parameters per coordinate."""

    params: int

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class Affine(Transformer):
    r"""The affine transformer :math:`\tau_c(x) = e^{s} x + t` with a bounded log-scale.

    With :math:`c = (t, u)`, the log-scale is :math:`s = S \tanh(u / S)` so that
    :math:`|s| < S` (``scale_bound``), which keeps training stable. The log-derivative is
    :math:`s`; both directions are explicit.

    Example:
        >>> import torch, flowlab as fl
        >>> tau = fl.Affine()
        >>> c = torch.tensor([[[1.0, 0.0]]])
        >>> tau(torch.tensor([[2.0]]), c)[0]
        tensor([[3.]])
    """

    params = 2

    def __init__(self, scale_bound: float = 3.0):
        super().__init__()
        self.scale_bound = check_positive_float("scale_bound", scale_bound)

    def _shift_logscale(self, c: Tensor) -> tuple[Tensor, Tensor]:
        shift, u = c.unbind(-1)
        return shift, self.scale_bound * torch.tanh(u / self.scale_bound)

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        shift, s = self._shift_logscale(c)
        return x * s.exp() + shift, s

    def inverse(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        shift, s = self._shift_logscale(c)
        return (y - shift) * (-s).exp(), -s


class RQSpline(Transformer):
    r"""The monotone rational-quadratic spline of Durkan et al. (2019), identity outside
    :math:`[-B, B]`.

    ``bins`` bins with knots :math:`(x_k, y_k)` and derivatives :math:`d_k` at the knots
    (:math:`d_0 = d_K = 1` so the tails join smoothly). The bin of each input is found by
    binary search (``torch.searchsorted``). Inside bin :math:`k`, with
    :math:`\xi = (x - x_k)/w_k`, :math:`s_k = h_k / w_k`:

    .. math::
        \tau(x) = y_k + \frac{h_k\,[s_k \xi^2 + d_k \xi(1-\xi)]}{s_k + (d_{k+1} + d_k - 2 s_k)\,\xi(1-\xi)}.

    The inverse solves a quadratic in :math:`\xi` in its numerically stable form
    :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})`, so both directions are explicit.
    Parameters per coordinate: ``3 * bins - 1`` (widths, heights, inner derivatives).

    Example:
        >>> import torch, flowlab as fl
        >>> tau = fl.RQSpline(bins=8, bound=3.0)
        >>> c = torch.randn(4, 1, tau.params)
        >>> x = torch.randn(4, 1)
        >>> y, ld = tau(x, c)
        >>> torch.allclose(tau.inverse(y, c)[0], x, atol=1e-5)
        True
    """

    def __init__(self, bins: int = 8, bound: float = 3.0, min_width: float = 1e-3, min_derivative: float = 1e-3):
        super().__init__()
        self.bins = check_positive_int("bins", bins)
        self.bound = check_positive_float("bound", bound)
        if not 0 < min_width * self.bins < 1:
            raise ValueError(f"min_width * bins must be in (0, 1), got {min_width} * {self.bins}.")
        if not 0 < min_derivative < 1:
            raise ValueError(f"min_derivative must be in (0, 1), got {min_derivative}.")
        self.min_width = min_width
        self.min_derivative = min_derivative
        # softplus(u + shift) + min_derivative == 1 at u = 0: zero parameters give the identity
        self._shift = math.log(math.expm1(1 - min_derivative))
        self.params = 3 * self.bins - 1

    def _knots(self, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        K, B = self.bins, self.bound
        w, h, d = c.split((K, K, K - 1), dim=-1)
        scale = 2 * B * (1 - self.min_width * K)
        w = F.pad(torch.cumsum(self.min_width * 2 * B + scale * F.softmax(w, dim=-1), dim=-1), (1, 0)) - B
        h = F.pad(torch.cumsum(self.min_width * 2 * B + scale * F.softmax(h, dim=-1), dim=-1), (1, 0)) - B
        d = F.pad(self.min_derivative + F.softplus(d + self._shift), (1, 1), value=1.0)
        return w, h, d

    @staticmethod
    def _bin(knots: Tensor, v: Tensor, K: int) -> Tensor:
        return (torch.searchsorted(knots, v.unsqueeze(-1)) - 1).clamp_(0, K - 1)

    @staticmethod
    def _gather(knots: Tensor, derivs: Tensor, other: Tensor, k: Tensor):
        k1 = k + 1
        a0 = knots.gather(-1, k).squeeze(-1)
        a1 = knots.gather(-1, k1).squeeze(-1)
        b0 = other.gather(-1, k).squeeze(-1)
        b1 = other.gather(-1, k1).squeeze(-1)
        d0 = derivs.gather(-1, k).squeeze(-1)
        d1 = derivs.gather(-1, k1).squeeze(-1)
        return a0, a1 - a0, b0, b1 - b0, d0, d1

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        B = self.bound
        kx, ky, kd = self._knots(c)
        inside = (x > -B) & (x < B)
        xc = x.clamp(-B, B)
        k = self._bin(kx, xc, self.bins)
        x0, w, y0, h, d0, d1 = self._gather(kx, kd, ky, k)
        s = h / w
        xi = ((xc - x0) / w).clamp(0, 1)
        xi1 = xi * (1 - xi)
        den = s + (d0 + d1 - 2 * s) * xi1
        y = y0 + h * (s * xi * xi + d0 * xi1) / den
        ld = 2 * torch.log(s) + torch.log(d1 * xi * xi + 2 * s * xi1 + d0 * (1 - xi) ** 2) - 2 * torch.log(den)
        return torch.where(inside, y, x), torch.where(inside, ld, torch.zeros_like(ld))

    def inverse(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        B = self.bound
        kx, ky, kd = self._knots(c)
        inside = (y > -B) & (y < B)
        yc = y.clamp(-B, B)
        k = self._bin(ky, yc, self.bins)
        y0, h, x0, w, d0, d1 = self._gather(ky, kd, kx, k)
        s = h / w
        dy = yc - y0
        t = d0 + d1 - 2 * s
        a = h * (s - d0) + dy * t
        b = h * d0 - dy * t
        cc = -s * dy
        disc = (b * b - 4 * a * cc).clamp(min=0)
        xi = (2 * cc / (-b - disc.sqrt())).clamp(0, 1)
        x = x0 + xi * w
        xi1 = xi * (1 - xi)
        den = s + t * xi1
        ld = 2 * torch.log(s) + torch.log(d1 * xi * xi + 2 * s * xi1 + d0 * (1 - xi) ** 2) - 2 * torch.log(den)
        return torch.where(inside, x, y), torch.where(inside, -ld, torch.zeros_like(ld))

    def extra_repr(self) -> str:
        return f"bins={self.bins}, bound={self.bound}"
