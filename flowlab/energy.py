r"""The energy distance between two samples: how far apart two sets of points are, as
distributions, with no density and no binning.

For independent :math:`X, X' \sim P` and :math:`Y, Y' \sim Q` in :math:`\mathbb{R}^d`,

.. math:: \mathcal{E}(P, Q) = 2\,\mathbb{E}\lVert X - Y\rVert - \mathbb{E}\lVert X - X'\rVert
   - \mathbb{E}\lVert Y - Y'\rVert \;\ge\; 0,

with equality exactly when :math:`P = Q` (Székely and Rizzo 2013). :func:`energy_distance`
estimates it from samples :math:`x_1..x_n` and :math:`y_1..y_m` with the unbiased
(U-statistic) averages: the within-sample means leave out the zero distances of a point to
itself, so the estimate scatters around 0, and can be slightly negative, when both samples
come from the same distribution. :func:`to_normal` compares a sample with the standard normal
distribution by drawing a standard normal sample of the same size, and returns the scatter
of the statistic under that null hypothesis beside it, so that a value can be read against it.

Cost: :math:`O((n + m)^2 d)` time and :math:`O((n + m)^2)` memory (all pairwise distances);
a few thousand points take milliseconds.

References: G. J. Székely and M. L. Rizzo (2013), "Energy statistics: a class of statistics
based on distances", *Journal of Statistical Planning and Inference* 143(8), 1249-1272.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    >>> abs(energy_distance(x, y)) < 0.01  # the same distribution
    True
    >>> energy_distance(x, y + 1.0) > 0.5  # shifted by one unit in each coordinate
    True
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["energy_distance", "to_normal"]


def _points(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name} must be an (n, d) tensor of points, got {type(x).__name__}.") from None
    if x.dim() != 2 or len(x) < 2:
        raise ValueError(f"{name} must be an (n, d) tensor of points with n >= 2, got shape {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite coordinates: remove those points first.")
    return x.detach().double()


def _dist(x: Tensor, y: Tensor) -> Tensor:
    # in float64, where the fast |x|^2 + |y|^2 - 2 x.y of cdist loses only ~1e-10 to cancellation
    return torch.cdist(x, y)


def _mean_within(x: Tensor) -> Tensor:
    n = len(x)
    return _dist(x, x).sum() / (n * (n - 1))  # the diagonal is 0: the mean over i != j


def energy_distance(x, y) -> float:
    r"""The unbiased estimate of :math:`\mathcal{E}(P, Q)` from samples ``x`` of :math:`P`
    (shape ``(n, d)``) and ``y`` of :math:`Q` (shape ``(m, d)``).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
        >>> energy_distance(x, x + torch.tensor([3.0, 0.0]))  # 2 * 3 - 1 - 1
        4.0
    """
    x, y = _points("x", x), _points("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of coordinates, got {x.shape[1]} and {y.shape[1]}.")
    return float(2 * _dist(x, y).mean() - _mean_within(x) - _mean_within(y))


def to_normal(x, repeats: int = 20, seed: int = 0) -> tuple[float, float]:
    r"""The energy distance between the points ``x`` (shape ``(n, d)``) and a fresh sample of
    :math:`n` standard normal points, and the standard deviation of that statistic when ``x``
    itself is standard normal (from ``repeats`` pairs of standard normal samples of size
    :math:`n`, computed once per size): ``(distance, null_sd)``. A distance of a few
    ``null_sd`` or less is what a standard normal sample gives.

    Example:
        >>> import torch
        >>> z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
        >>> d, sd = to_normal(z)
        >>> abs(d) < 4 * sd
        True
    """
    x = _points("x", x)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 2 <= repeats <= 1000:
        raise ValueError(f"repeats must be an integer between 2 and 1000, got {repeats!r}.")
    n, d = x.shape
    g = torch.Generator().manual_seed(seed)
    return energy_distance(x, torch.randn(n, d, generator=g, dtype=torch.float64)), _null_sd(n, d, repeats, seed)


@functools.lru_cache(maxsize=64)
def _null_sd(n: int, d: int, repeats: int, seed: int) -> float:
    # the scatter of the statistic between two standard normal samples of n points each
    g = torch.Generator().manual_seed(seed + 1)
    null = torch.tensor(
        [
            energy_distance(
                torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
            )
            for _ in range(repeats)
        ]
    )
    return float(null.std())
