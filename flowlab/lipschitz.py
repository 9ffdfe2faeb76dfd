r"""Lipschitz-constrained layers: spectrally normalised linear maps and the LipSwish activation.

A network :math:`g = W_L \circ \phi \circ \dots \circ \phi \circ W_1` with 1-Lipschitz activations
:math:`\phi` has :math:`\mathrm{Lip}(g) \le \prod_\ell \lVert W_\ell \rVert_2`. Rescaling each
weight so that :math:`\lVert W_\ell \rVert_2 \le c < 1` makes :math:`g` a contraction, which is
what an invertible residual block :math:`x \mapsto x + g(x)` needs.

The spectral norm :math:`\sigma = \lVert W \rVert_2` is tracked with persistent vectors: its
estimate :math:`\hat\sigma = u^\top W v` uses a top singular pair :math:`(u, v)` that the layer keeps
up to date itself, whatever changes the weights (an optimizer step in any training loop,
``load_state_dict``, an edit by hand):

* in training mode the first forward pass after a change of the weights takes one step of
  subspace (block power) iteration on the top :data:`PAIRS` singular pairs, as torch's spectral
  normalisation takes one power step per forward, and more while a step still moves the
  estimate by more than :data:`TRAIN_TOL` (after a large change of the weights). A loop that
  already took the step after its optimizer step (:meth:`SpectralLinear.power_step`, as
  :func:`flowlab.fit` does through ``after_step``) is not charged twice. Several vectors instead
  of one: when a lower singular value overtakes the first during training, a single power vector
  sits on the old direction and the norm it does not see grows; the subspace sees it;
* in evaluation mode the first forward pass after any change of the weights, ``.eval()`` and
  :meth:`SpectralLinear.refresh` compute the top singular pair exactly (an SVD,
  :math:`O(\text{in} \cdot \text{out} \cdot \min(\text{in}, \text{out}))`), so the bound is exact there
  (to rounding). A change is any in-place update of the weight tensor (autograd's version
  counter); an edit through ``.data`` bypasses that counter: call :meth:`~SpectralLinear.refresh`.

References: Miyato et al. 2018 (spectral normalisation); Behrmann et al. 2019 (i-ResNet);
Chen et al. 2019 (Residual Flows, LipSwish).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_hidden, check_positive_int

MAX_WIDTH = 4096
r"""The widest hidden layer of :func:`lipschitz_mlp` (and of :class:`~flowlab.time_mlp.TimeMLP`):
its power iteration costs :math:`O(\text{width}^2)` per step, and a 2-D flow gains nothing from more."""

TRAIN_TOL = 1e-3
"""In training mode a forward pass takes steps of subspace iteration until one moves the estimate of
the spectral norm by at most this fraction (usually one step: the weights change little per step;
at 1e-2 instead, the norms as used exceeded ``coeff`` by up to 4% in the loops of :data:`PAIRS`)."""

PAIRS = 4
"""How many singular pairs the subspace iteration tracks. Spectral normalisation pushes the top
singular values of a trained layer together, so lower ones overtake the first. In plain Adam
loops (4 blocks of 2-32-32-2 or 2-64-64-2, ``coeff`` 0.9, lr 3e-3 or 2e-2, 300 steps) the norm
of a weight as used reached 1.31 with one vector, 1.03 with two, and at most 1.005 ``coeff``
with four."""


def check_widths(hidden, name: str = "hidden") -> tuple[int, ...]:
    """Hidden widths: an int ``h`` means two hidden layers of ``h`` units (as everywhere in
    flowlab), a sequence gives each layer's width; each at most :data:`MAX_WIDTH`.

    Example:
        >>> check_widths(64), check_widths((32,))
        ((64, 64), (32,))
    """
    widths = check_hidden(hidden, layers=2, name=name)
    for h in widths:
        if h > MAX_WIDTH:
            raise ValueError(f"{name}: every hidden width must be at most {MAX_WIDTH}, got {name}={hidden!r}; "
                             "a 2-D flow needs tens of units, not thousands.")
    return widths


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
    :math:`u, v` are buffers, the first columns of bases :math:`U, V` of :data:`PAIRS` vectors that
    are not saved: one step of subspace iteration (:math:`V \leftarrow \mathrm{orth}(W^\top U)`,
    :math:`U \leftarrow \mathrm{orth}(W V)`, then the singular pairs of the small matrix
    :math:`U^\top W V`) is :meth:`power_step`, and :meth:`refresh` sets them to the exact top
    singular vectors. Gradients flow through
    :math:`\hat\sigma` to :math:`W`; :math:`u, v` are constants.

    The forward pass keeps the estimate up to date before it uses it (module docstring): after
    every change of the weights, in training mode a step (more after a large change), in
    evaluation mode :meth:`refresh`. So :math:`\lVert \hat W \rVert_2 \le c` holds exactly (to
    rounding) in evaluation mode after any change of the weights, and to within about 1% in
    training mode (the iteration approaches the norm from below: plain Adam loops stayed within
    0.5%, see :data:`PAIRS`), whatever loop trains the layer. Cost: one matrix product,
    :math:`O(\text{in} \cdot \text{out})` per point, plus two per step of the iteration.

    References: Miyato et al. 2018; Behrmann et al. 2019; Golub & Van Loan, *Matrix Computations*
    (2013), section 8.2.4 (subspace iteration).

    Example:
        >>> import torch
        >>> layer = SpectralLinear(3, 4, coeff=0.5).eval()  # exact top singular pair
        >>> with torch.no_grad():
        ...     _ = layer.weight.mul_(20)                     # a hand edit
        >>> _ = layer(torch.zeros(1, 3))                      # the next forward refreshes
        >>> float(torch.linalg.matrix_norm(layer.weight_hat().detach(), ord=2)) <= 0.5 * (1 + 1e-6)
        True
    """

    def __init__(self, in_features: int, out_features: int, coeff: float = 0.9, scale: float = 1.0):
        super().__init__()
        self.frozen = False  # set while a caller evaluates the same weights many times (an inverse)
        self.in_features = check_positive_int("in_features", in_features, maximum=MAX_WIDTH)
        self.out_features = check_positive_int("out_features", out_features, maximum=MAX_WIDTH)
        self.coeff = check_coeff(coeff)
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(scale * torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.register_buffer("u", _normalize(torch.randn(out_features)))
        self.register_buffer("v", _normalize(torch.randn(in_features)))
        pairs = min(PAIRS, in_features, out_features)  # the other pairs: helpers, not part of the state
        self.register_buffer("basis_u", torch.zeros(out_features, pairs), persistent=False)
        self.register_buffer("basis_v", torch.zeros(in_features, pairs), persistent=False)
        # which weights the pairs were last refreshed and stepped on (a plain dict: cheap to update)
        self._seen = {"refreshed": None, "stepped": None}
        self.refresh()

    def sigma(self) -> Tensor:
        """The current estimate :math:`u^\\top W v` of the spectral norm (differentiable in W)."""
        return self.u.clone() @ self.weight @ self.v.clone()

    def weight_hat(self) -> Tensor:
        """The rescaled weight :math:`\\hat W`, with the current :math:`u, v`."""
        return self.weight / torch.clamp(self.sigma() / self.coeff, min=1.0)

    def _key(self) -> tuple:
        # which weights the pairs belong to: the tensor and autograd's version counter of it
        return id(self.weight), self.weight.data_ptr(), self.weight._version, self.weight.dtype, self.weight.device

    @torch.no_grad()
    def power_step(self) -> float:
        r"""One step of subspace iteration on the top :data:`PAIRS` singular pairs, in place on the buffers;
        returns how much it moved the estimate, :math:`|\hat\sigma_{new} - \hat\sigma_{old}| /
        \hat\sigma_{new}`, both on the current weights."""
        w = self.weight.detach()
        self.basis_u[:, 0] = self.u  # the top pair first (it may have been loaded or set by hand)
        wu = w.t() @ self.basis_u
        old = wu[:, 0] @ self.v  # u^T W v with the vectors of the last step, on the current weights
        vs, _ = torch.linalg.qr(wu)  # an orthonormal basis of W^T U
        us, r = torch.linalg.qr(w @ vs)  # W V = U R, so U^T W V = R
        try:
            a, s, bt = torch.linalg.svd(r)  # the Ritz pairs of W in the two subspaces, best first
        except torch.linalg.LinAlgError:  # non-finite weights: the output is NaN anyway, and a
            return 0.0  # training loop's divergence check (fit's) restores finite ones
        torch.matmul(us, a, out=self.basis_u)
        torch.matmul(vs, bt.t(), out=self.basis_v)
        self.u.copy_(self.basis_u[:, 0])  # a joint sign flip of u and v leaves u^T W v unchanged
        self.v.copy_(self.basis_v[:, 0])
        self._seen["refreshed"], self._seen["stepped"] = None, self._key()
        new, old = torch.stack((s[0], old)).tolist()  # one synchronisation
        return abs(new - old) / max(new, 1e-30)

    @torch.no_grad()
    def refresh(self) -> float:
        r"""Set the pairs to the exact top singular vectors of :math:`W` (an SVD) and return the
        spectral norm :math:`\lVert W\rVert_2`; skipped (returning the estimate) when the weights
        have not changed since the last refresh."""
        if self._seen["refreshed"] == self._key():
            return float(self.u @ self.weight @ self.v)
        w = self.weight.detach()
        try:
            big, s, small_t = torch.linalg.svd(w, full_matrices=False)
        except torch.linalg.LinAlgError:  # non-finite weights: nothing to estimate
            return math.nan
        k = self.basis_u.shape[1]
        self.basis_u.copy_(big[:, :k])
        self.basis_v.copy_(small_t[:k].t())
        self.u.copy_(big[:, 0])
        self.v.copy_(small_t[0])
        self._seen["refreshed"] = self._seen["stepped"] = self._key()
        return float(s[0])

    def train(self, mode: bool = True) -> "SpectralLinear":
        super().train(mode)
        if not mode:
            self.refresh()  # evaluation needs the exact norm: the Lipschitz bound must hold
        return self

    def forward(self, x: Tensor) -> Tensor:
        if not self.frozen:
            if self.training:
                if self._seen["stepped"] != self._key():  # the weights changed since the last step
                    for _ in range(100):  # one step, more after a large change of the weights
                        if self.power_step() <= TRAIN_TOL:
                            break
            else:
                self.refresh()
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
    :math:`L` = ``len(hidden) + 1`` layers. ``hidden`` is a sequence of widths, or an int
    :math:`h` for two hidden layers of :math:`h` units. The last layer starts small (scale 0.1),
    so the residual block it belongs to starts near the identity.

    Example:
        >>> net = lipschitz_mlp(2, hidden=8)  # 2 -> 8 -> 8 -> 2
        >>> net(torch.zeros(5, 2)).shape, len(net)
        (torch.Size([5, 2]), 5)
    """
    features = check_positive_int("features", features)
    coeff = check_coeff(coeff)
    sizes = [features, *check_widths(hidden), features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(SpectralLinear(a, b, coeff=coeff, scale=0.1 if last else 1.0))
        if not last:
            layers.append(LipSwish())
    return nn.Sequential(*layers)
