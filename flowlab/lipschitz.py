r"""Lipschitz-constrained layers: spectrally normalised linear maps and the LipSwish activation.

A network :math:`g = W_L \circ \phi \circ \dots \circ \phi \circ W_1` with 1-Lipschitz activations
:math:`\phi` has :math:`\mathrm{Lip}(g) \le \prod_\ell \lVert W_\ell \rVert_2`. Rescaling each
weight so that :math:`\lVert W_\ell \rVert_2 \le c < 1` makes :math:`g` a contraction, which is
what an invertible residual block :math:`x \mapsto x + g(x)` needs.

The spectral norm :math:`\sigma = \lVert W \rVert_2` is estimated by power iteration with two
persistent vectors (buffers) :math:`u, v`. Power iteration approaches :math:`\sigma` from below, so
the bound holds only once the iteration has converged: :meth:`SpectralLinear.refresh` iterates to
convergence, and it runs whenever the layer is switched to evaluation mode (``.eval()``).

References: Miyato et al. 2018 (spectral normalisation); Behrmann et al. 2019 (i-ResNet);
Chen et al. 2019 (Residual Flows, LipSwish).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_positive_int


def check_coeff(coeff) -> float:
    """``coeff`` as a float in (0, 1), else a ValueError that says what to pass."""
    if isinstance(coeff, bool) or not isinstance(coeff, numbers.Real) or not 0 < coeff < 1:
        raise ValueError(
            f"coeff must be a number in (0, 1) (the largest spectral norm of each layer), got {coeff!r}; "
            "coeff >= 1 gives no contraction, so no guaranteed inverse. Try coeff=0.9."
        )
    return float(coeff)


def _normalize(v: Tensor) -> Tensor:
    return v / v.norm().clamp_min(torch.finfo(v.dtype).tiny ** 0.5)


class SpectralLinear(nn.Module):
    r"""A linear layer :math:`y = \hat W x + b` whose spectral norm is at most ``coeff``.

    .. math:: \hat W = \frac{W}{\max(1,\ \hat\sigma / c)}, \qquad
              \hat\sigma = u^\top W v \approx \lVert W \rVert_2,

    a soft rescale: :math:`W` is left alone while its norm is below :math:`c`. The vectors
    :math:`u, v` are buffers; one step of power iteration
    (:math:`v \leftarrow W^\top u / \lVert\cdot\rVert`, :math:`u \leftarrow W v / \lVert\cdot\rVert`)
    is :meth:`power_step`, and :meth:`refresh` iterates until :math:`\hat\sigma` stops changing.
    Gradients flow through :math:`\hat\sigma` to :math:`W`; :math:`u, v` are constants.
    The forward pass costs one matrix product, :math:`O(\text{in} \cdot \text{out})` per point.

    References: Miyato et al. 2018; Behrmann et al. 2019.

    Example:
        >>> import torch
        >>> layer = SpectralLinear(3, 4, coeff=0.5).eval()  # eval() converges the power iteration
        >>> float(torch.linalg.matrix_norm(layer.weight_hat().detach(), ord=2)) <= 0.5 + 1e-6
        True
    """

    def __init__(self, in_features: int, out_features: int, coeff: float = 0.9, scale: float = 1.0):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.coeff = check_coeff(coeff)
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(scale * torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.register_buffer("u", _normalize(torch.randn(out_features)))
        self.register_buffer("v", _normalize(torch.randn(in_features)))
        self.refresh()

    def sigma(self) -> Tensor:
        """The current estimate :math:`u^\\top W v` of the spectral norm (differentiable in W)."""
        return self.u.clone() @ self.weight @ self.v.clone()

    def weight_hat(self) -> Tensor:
        """The rescaled weight :math:`\\hat W`, with the current :math:`u, v`."""
        return self.weight / torch.clamp(self.sigma() / self.coeff, min=1.0)

    @torch.no_grad()
    def power_step(self) -> None:
        """One step of power iteration, in place on the buffers ``u`` and ``v``."""
        w = self.weight.detach()
        self.v.copy_(_normalize(w.t() @ self.u))
        self.u.copy_(_normalize(w @ self.v))

    @torch.no_grad()
    def refresh(self, tol: float | None = None, max_iter: int = 2000) -> int:
        r"""Power iteration until :math:`|\hat\sigma_k - \hat\sigma_{k-1}| \le` ``tol`` :math:`\hat\sigma_k`
        (default: 50 machine epsilons of the weight's dtype); returns the number of steps. Raises
        ValueError (with the last relative change) after ``max_iter`` steps."""
        tol = 50 * torch.finfo(self.weight.dtype).eps if tol is None else tol
        old = float(self.sigma().detach())
        for k in range(1, max_iter + 1):
            self.power_step()
            new = float(self.sigma().detach())
            change = abs(new - old) / max(abs(new), 1e-30)
            if change <= tol:
                return k
            old = new
        raise ValueError(
            f"power iteration did not converge in {max_iter} steps (last relative change {change:.2e} > "
            f"tol={tol:.1e}): the two largest singular values are too close; raise max_iter."
        )

    def train(self, mode: bool = True) -> "SpectralLinear":
        super().train(mode)
        if not mode:
            self.refresh()  # evaluation needs the converged norm: the Lipschitz bound must hold
        return self

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_hat(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, coeff={self.coeff}"


class LipSwish(nn.Module):
    r"""The 1-Lipschitz activation :math:`\phi(x) = x\,\mathrm{sigmoid}(\beta x) / 1.1`,
    :math:`\beta = \mathrm{softplus}(\beta_0) > 0` learned.

    The derivative of :math:`x\,\mathrm{sigmoid}(\beta x)` lies in :math:`[-0.1, 1.1]` for every
    :math:`\beta > 0`, so dividing by 1.1 makes :math:`|\phi'| \le 1`. Unlike ReLU it is smooth, so
    the Jacobian of a residual block is continuous (the log-det series needs that).

    References: Chen et al. 2019 (Residual Flows).

    Example:
        >>> import torch
        >>> x = torch.linspace(-10, 10, 2001, requires_grad=True)
        >>> slope = torch.autograd.grad(LipSwish()(x).sum(), x)[0]
        >>> bool(slope.abs().max() <= 1)
        True
    """

    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(F.softplus(self.beta) * x) / 1.1


def lipschitz_mlp(features: int, hidden=(64, 64), coeff: float = 0.9) -> nn.Sequential:
    r"""An MLP :math:`\mathbb R^D \to \mathbb R^D` of :class:`SpectralLinear` layers (each of norm
    at most ``coeff``) and :class:`LipSwish` activations: :math:`\mathrm{Lip} \le c^{L}` for
    :math:`L` = ``len(hidden) + 1`` layers. The last layer starts small (scale 0.1), so the
    residual block it belongs to starts near the identity.

    Example:
        >>> net = lipschitz_mlp(2, hidden=(8,))
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 2])
    """
    features = check_positive_int("features", features)
    sizes = [features, *[check_positive_int("hidden", h) for h in hidden], features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(SpectralLinear(a, b, coeff=coeff, scale=0.1 if last else 1.0))
        if not last:
            layers.append(LipSwish())
    return nn.Sequential(*layers)
