r"""Masked multilayer perceptrons: the networks of the masked conditioners.

A *K-part partition* of the features :math:`1..D` gives feature :math:`i` a part
:math:`k(i) \in \{0, \dots, K-1\}` (contiguous blocks, as equal as possible). A masked network
(MADE, Germain et al. 2015) whose output for feature :math:`i` only depends on the inputs of
earlier parts, :math:`\{x_j : k(j) < k(i)\}`, has a block-triangular Jacobian; the outputs of
part 0 depend on no input at all (learned constants).

References: Germain et al. 2015 (MADE: masks from degrees).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import check_hidden, check_positive_int


def partition(features: int, parts: int) -> Tensor:
    """The part (0..parts-1) of each feature: contiguous, nearly equal blocks.

    Example:
        >>> partition(5, 2).tolist()
        [0, 0, 0, 1, 1]
    """
    features = check_positive_int("features", features)
    parts = check_positive_int("parts", parts)
    if parts > features:
        raise ValueError(f"parts must be between 1 and features={features}, got {parts}.")
    return torch.arange(features) * parts // features


def degrees(units: int, parts: int) -> Tensor:
    """The degree (``0..parts-2``) of each of ``units`` hidden units: every degree in turn when
    there are at least ``parts - 1`` units, else ``units`` degrees spread evenly over that range
    (some degrees then have no unit, and the dependencies that need them are missing).

    Example:
        >>> degrees(5, 3).tolist(), degrees(3, 7).tolist()
        ([0, 1, 0, 1, 0], [0, 2, 4])
    """
    top = max(parts - 1, 1)
    if units >= top:
        return torch.arange(units) % top
    return torch.arange(units) * top // units


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (a buffer)."""

    def __init__(self, mask: Tensor):
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))
        self.dense = bool(mask.all())  # nothing to mask: skip the product

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight if self.dense else self.weight * self.mask, self.bias)


class MaskedMLP(nn.Sequential):
    r"""An MLP from ``features`` inputs to ``features * outputs_per_feature`` outputs whose
    output for feature :math:`i` depends only on inputs of parts :math:`< k(i)`.

    Hidden units get degrees in ``0..parts-2`` (:func:`degrees`); a hidden unit of degree
    :math:`m` sees inputs of part :math:`\le m` and hidden units of degree :math:`\le m`, and
    an output of part :math:`k` sees hidden units of degree :math:`< k`. A pass costs
    :math:`O(D H_1 + H_1 H_2 + \dots + H_L D P)` per point, as an unmasked MLP of the same
    sizes. The outputs are laid out feature-major: reshape to ``(batch, features, outputs)``.

    Example:
        >>> net = MaskedMLP(3, 1, parts=3, hidden=(4, 4))
        >>> masks = [m.mask for m in net if isinstance(m, MaskedLinear)]
        >>> paths = masks[2] @ masks[1] @ masks[0]  # paths from input j to output i
        >>> (paths > 0).int().tolist()  # output i sees the inputs before it, and only those
        [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    """

    def __init__(self, features: int, outputs_per_feature: int, parts: int, hidden: int | Sequence[int] = (64, 64)):
        part = partition(features, parts)
        hidden = check_hidden(hidden, layers=2)  # 64 means (64, 64)
        out_part = part.repeat_interleave(outputs_per_feature)
        layers: list[nn.Module] = []
        previous = part
        for h in hidden:
            degree = degrees(h, parts)
            layers += [MaskedLinear((previous[None, :] <= degree[:, None]).float()), nn.ReLU(inplace=True)]
            previous = degree
        layers.append(MaskedLinear((out_part[:, None] > previous[None, :]).float()))
        super().__init__(*layers)
