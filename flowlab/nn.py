r"""Neural-network building blocks: plain and masked multilayer perceptrons.

A *K-part partition* of the features :math:`1..D` gives feature :math:`i` a part
:math:`k(i) \in \{0, \dots, K-1\}` (contiguous blocks, as equal as possible). A masked network
(MADE, Germain et al. 2015) whose output for feature :math:`i` only depends on the inputs of
earlier parts, :math:`\{x_j : k(j) < k(i)\}`, has a block-triangular Jacobian; the outputs of
part 0 depend on no input at all (learned constants).
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

    Hidden units get degrees ``0..parts-2`` in turn; a hidden unit of degree :math:`m` sees
    inputs of part :math:`\le m`, and an output of part :math:`k` sees hidden units of degree
    :math:`< k`. The outputs are laid out feature-major: reshape to ``(batch, features, outputs)``.
    """

    def __init__(self, features: int, outputs_per_feature: int, parts: int, hidden: int | Sequence[int] = (64, 64)):
        part = partition(features, parts)
        hidden = check_hidden(hidden, layers=2)  # 64 means (64, 64)
        out_part = part.repeat_interleave(outputs_per_feature)
        layers: list[nn.Module] = []
        previous = part
        for h in hidden:
            degree = torch.arange(h) % max(parts - 1, 1)
            layers += [MaskedLinear((previous[None, :] <= degree[:, None]).float()), nn.ReLU(inplace=True)]
            previous = degree
        layers.append(MaskedLinear((out_part[:, None] > previous[None, :]).float()))
        super().__init__(*layers)


class MLP(nn.Sequential):
    """A plain MLP with ReLU activations; ``hidden=64`` means two hidden layers of 64 units."""

    def __init__(self, in_features: int, out_features: int, hidden: int | Sequence[int] = (64, 64)):
        sizes = [check_positive_int("in_features", in_features), *check_hidden(hidden, layers=2)]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], check_positive_int("out_features", out_features)))
        super().__init__(*layers)


class MonotoneMLP(nn.Module):
    r"""An MLP that is strictly increasing in every input.

    Each layer is :math:`x \mapsto \phi(e^{V} x + b)`, with the weights :math:`e^{V}`
    positive (the exponential is taken elementwise) and :math:`\phi = \tanh` increasing (no
    activation after the last layer). By the chain rule every path from input :math:`j` to an
    output multiplies positive factors, so :math:`\partial y_i / \partial x_j > 0`: with one input
    and one output it is a strictly increasing function of :math:`\mathbb{R}`, bounded (the
    last hidden layer is), and invertible on its range by bisection. The weights start at
    :math:`e^{V} \approx 1/\text{fan-in}`.

    Example:
        >>> import torch
        >>> m = MonotoneMLP(1, 1, hidden=(8, 8))
        >>> y = m(torch.linspace(-5, 5, 101).unsqueeze(-1))
        >>> bool((y.diff(dim=0) > 0).all())
        True
    """

    def __init__(self, in_features: int, out_features: int, hidden: int | Sequence[int] = (16, 16)):
        super().__init__()
        sizes = (
            [check_positive_int("in_features", in_features)]
            + list(check_hidden(hidden, layers=2))  # 16 means (16, 16)
            + [check_positive_int("out_features", out_features)]
        )
        self.log_weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            self.log_weights.append(nn.Parameter(torch.randn(b, a) * 0.5 - torch.log(torch.tensor(float(a)))))
            self.biases.append(nn.Parameter(torch.randn(b) * 0.5))

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.biases) - 1
        for i, (v, b) in enumerate(zip(self.log_weights, self.biases)):
            x = nn.functional.linear(x, v.exp(), b)
            if i < last:
                x = torch.tanh(x)
        return x
