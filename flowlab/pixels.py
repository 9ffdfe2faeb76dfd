r"""Discrete data (pixels) for continuous flows: uniform dequantisation, bits per dimension, and
a fixed per-coordinate layer that turns independent histograms into a Gaussian.

An image with :math:`D` sub-pixels, each an integer level in :math:`\{0, \dots, L - 1\}`, becomes
continuous data by **dequantisation**, :math:`y = x + u` with :math:`u \sim \mathcal U[0, 1)^D`
(:func:`dequantize`). Any density :math:`p` on :math:`\mathbb R^D` then gives the discrete model
:math:`P(x) = \int_{[0,1)^D} p(x + u)\,du`, and by Jensen's inequality
:math:`\log P(x) \ge \mathbb E_u[\log p(x + u)]` (Theis et al., 2016): the average log-density of
dequantised images is a lower bound. :func:`bits_per_dim` converts a negative log-likelihood in
nats per image into bits per sub-pixel, :math:`\text{NLL} / (D \log 2)`.

:class:`HistogramCDF` is the **independent-pixel model** written as a flow layer. Coordinate
:math:`j` has a histogram :math:`p_{kj}` over the levels :math:`k`; on :math:`[0, L)` its density is
the step function :math:`p_{\lfloor y \rfloor j}`, its CDF :math:`F_j` the piecewise-linear
interpolation of the cumulative sums, and the layer is the probability integral transform
followed by the normal quantile,

.. math:: z_j = \Phi^{-1}\big(F_j(y_j)\big), \qquad
          \text{ladj}(y) = \sum_{j=1}^D \big[\log p_{\lfloor y_j \rfloor j} - \log \varphi(z_j)\big].

With a standard normal base and nothing in between, :math:`\log \varphi(z) + \text{ladj}` is
exactly :math:`\sum_j \log p_{\lfloor y_j\rfloor j}`: the independent-pixel model. A flow stacked
on top can only add dependencies between coordinates. Both directions are explicit and cost
:math:`O(D)` per point (plus a search over :math:`L` levels for the inverse).

References: Theis, van den Oord & Bethge (2016), A note on the evaluation of generative models;
Papamakarios et al. (2021), section 4 (dequantisation).

Example:
    >>> import torch, flowlab as fl
    >>> from flowlab.pixels import HistogramCDF, dequantize
    >>> x = torch.tensor([[0, 2], [1, 2], [1, 0], [1, 1]])
    >>> layer = HistogramCDF.fit(x, levels=3, pseudo=1.0)
    >>> y = dequantize(x.double(), generator=torch.Generator().manual_seed(0))
    >>> flow = fl.Flow(layer, fl.StandardNormal(2).double())
    >>> independent = layer.probs.log().gather(0, y.floor().long()).sum(1)
    >>> torch.allclose(flow.log_prob(y), independent)
    True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_batch, check_positive_float, check_positive_int
from .core import Transform

__all__ = ["HistogramCDF", "bits_per_dim", "dequantize"]


def dequantize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""``x + u`` with :math:`u \sim \mathcal U[0, 1)` drawn independently for every entry (from
    ``generator``), in the dtype of ``x`` (a floating point tensor of integer levels).

    Example:
        >>> y = dequantize(torch.zeros(2, 3), generator=torch.Generator().manual_seed(0))
        >>> bool(((y >= 0) & (y < 1)).all())
        True
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating point tensor of integer levels (pass x.double()), got "
                         f"{getattr(x, 'dtype', type(x).__name__)}.")
    return x + torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def bits_per_dim(nll, dims: int):
    r"""A negative log-likelihood in nats per data point as bits per dimension,
    :math:`\text{NLL} / (D \log 2)`. ``nll`` is a number or a tensor.

    Example:
        >>> round(bits_per_dim(64 * math.log(17), 64), 4)  # a uniform model of 17 levels
        4.0875
    """
    return nll / (check_positive_int("dims", dims) * math.log(2))


class HistogramCDF(Transform):
    r"""The independent-pixel model as a fixed flow layer: :math:`z_j = \Phi^{-1}(F_j(y_j))`.

    ``probs`` is an ``(L, D)`` tensor: column :math:`j` is the histogram of coordinate :math:`j` over
    the levels :math:`0, \dots, L - 1` (positive entries, each column summing to 1). The layer has
    no trainable parameters (``probs`` is a buffer). ``forward`` (data to latent) and ``inverse``
    (latent to data) are explicit, :math:`O(D)` per point; data must lie in :math:`[0, L)^D`
    (dequantised levels). :meth:`fit` builds the histograms from integer data with
    ``pseudo`` counts added to every level (so that no level has probability zero).

    Example:
        >>> import torch
        >>> layer = HistogramCDF(torch.tensor([[0.5], [0.5]], dtype=torch.float64))  # 2 levels, D = 1
        >>> z, ladj = layer(torch.tensor([[1.0]], dtype=torch.float64))  # F(1) = 1/2
        >>> float(z), round(float(ladj), 4)  # log 0.5 - log phi(0)
        (0.0, 0.2258)
    """

    def __init__(self, probs: Tensor):
        super().__init__()
        if not isinstance(probs, Tensor) or probs.dim() != 2 or probs.shape[0] < 1 or not probs.is_floating_point():
            raise ValueError("probs must be a floating point (levels, D) tensor of histograms, got "
                             f"{getattr(probs, 'shape', type(probs).__name__)}.")
        if not bool(torch.isfinite(probs).all()) or bool((probs <= 0).any()):
            raise ValueError("probs must be positive and finite: give every level a pseudo-count "
                             "(HistogramCDF.fit(x, levels, pseudo=1.0)).")
        sums = probs.sum(0)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-6):
            raise ValueError(f"every column of probs must sum to 1, got sums from {float(sums.min()):.6g} "
                             f"to {float(sums.max()):.6g}: divide by probs.sum(0).")
        self.levels, self.features = probs.shape
        self.register_buffer("probs", probs.clone())
        self.register_buffer("cdf", torch.cat([probs.new_zeros(1, self.features), probs.cumsum(0)]))

    @classmethod
    def fit(cls, x: Tensor, levels: int, pseudo: float = 1.0, dtype: torch.dtype = torch.float64) -> "HistogramCDF":
        """The layer of the histograms of integer data ``x`` (shape ``(n, D)``, levels ``0..levels-1``),
        with ``pseudo`` counts added to every level, in ``dtype``."""
        levels = check_positive_int("levels", levels)
        pseudo = check_positive_float("pseudo", pseudo)
        if not isinstance(x, Tensor) or x.dim() != 2 or len(x) == 0:
            raise ValueError(f"x must be a non-empty (n, D) tensor of integer levels, got {getattr(x, 'shape', x)}.")
        if x.is_floating_point() and not bool((x == x.round()).all()):
            raise ValueError("x must hold integer levels (the data before dequantisation).")
        k = x.long()
        if bool((k < 0).any()) or bool((k >= levels).any()):
            raise ValueError(f"x must lie in 0..{levels - 1} (levels={levels}), got values from {int(k.min())} "
                             f"to {int(k.max())}.")
        counts = torch.stack([torch.bincount(k[:, j], minlength=levels) for j in range(k.shape[1])], 1)
        counts = counts.to(dtype) + pseudo
        return cls(counts / counts.sum(0))

    def _level(self, y: Tensor) -> Tensor:
        return y.floor().long().clamp(0, self.levels - 1)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("y", y, self.features)
        if bool((y < 0).any()) or bool((y >= self.levels).any()):
            raise ValueError(f"y must lie in [0, {self.levels}) (dequantised levels), got values from "
                             f"{float(y.min()):.4g} to {float(y.max()):.4g}.")
        probs, cdf = self.probs.to(y.dtype), self.cdf.to(y.dtype)
        k = self._level(y)
        p = probs.gather(0, k)
        u = cdf.gather(0, k) + (y - k) * p
        tiny = torch.finfo(y.dtype).eps
        z = torch.special.ndtri(u.clamp(tiny, 1 - tiny))
        log_phi = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
        return z, (p.log() - log_phi).sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("z", z, self.features)
        probs, cdf = self.probs.to(z.dtype), self.cdf.to(z.dtype)
        u = torch.special.ndtr(z)
        k = (torch.searchsorted(cdf.T.contiguous(), u.T.contiguous(), right=True).T - 1).clamp(0, self.levels - 1)
        p = probs.gather(0, k)
        y = k + ((u - cdf.gather(0, k)) / p).clamp(0, 1 - torch.finfo(z.dtype).eps)
        log_phi = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
        return y, -(p.log() - log_phi).sum(1)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, features={self.features}"
