r"""Transformer autoregressive flows (TarFlow): a causal transformer as the conditioner.

TarFlow (Zhai et al. 2025) is built from pieces of the earlier chapters:

* an **autoregressive layer** (:class:`~flowlab.Autoregressive`) with an affine transformer,
  :math:`z_i = e^{s_i} x_i + t_i`, whose parameters :math:`(t_i, s_i) = c_i(x_{<i})` come from a
  **causal transformer** over *tokens*: :class:`TransformerConditioner`, a conditioner with
  :math:`K` parts like a masked one (:math:`K = D` by default: fully autoregressive);
* **tokens are patches** of an image: a fixed :class:`~flowlab.Permutation` (:func:`patches`)
  puts the pixels of each patch next to each other, so that patch :math:`k` is part :math:`k`;
* **the order alternates** between layers: a :class:`~flowlab.Reverse` in between, so each
  layer conditions on what the previous one could not see;
* the **inverse** is sequential, :math:`K - 1` network passes per layer, or a Jacobi fixed-point
  iteration stopped at a tolerance (:meth:`TarFlow.jacobi`, :func:`flowlab.numerics.jacobi`);
* trained on slightly noisy data, :math:`y = x + \sigma \varepsilon`, its samples are cleaned by
  **one denoising step**, Tweedie's formula with the flow's own score (:func:`denoise`).

References: Zhai et al. 2025 (TarFlow: normalizing flows are capable generative models); Gu et
al. 2025 (STARFlow); Vaswani et al. 2017 (the transformer); Papamakarios et al. 2017 (MAF);
Efron 2011 (Tweedie's formula).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_positive_float, check_positive_int, describe
from .autoregressive import Autoregressive
from .conditioners import Partitioned
from .core import Compose, Flow, check_flow, check_input
from .linear import Permutation, Reverse
from .numerics.jacobi import default_tol
from .transformers import Affine, Transformer

__all__ = ["TarFlow", "TarFlowInverse", "TransformerConditioner", "denoise", "patches"]

MAX_DEPTH = 64
"""The most attention layers a conditioner may stack (a deeper one is no conditioner for a book)."""


class _Block(nn.Module):
    """One pre-norm transformer layer: causal self-attention, then a two-layer MLP, each added
    to its input (residual connections)."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))

    def forward(self, h: Tensor) -> Tensor:
        b, t, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # token t attends to tokens <= t
        h = h + self.out(a.transpose(1, 2).reshape(b, t, w))
        return h + self.mlp(self.norm2(h))


class CausalTransformer(nn.Module):
    r"""A causal transformer from ``tokens`` tokens of ``size`` numbers to as many outputs of
    ``out`` numbers: output :math:`t` depends on the tokens :math:`\le t` only.

    Each token is embedded by a linear map to ``hidden`` numbers, plus a learned position
    vector; ``depth`` pre-norm layers of causal self-attention (``heads`` heads) and MLPs
    follow, then a layer norm and a linear head that starts at zero (so a flow built on it
    starts at the identity). One call costs :math:`O(T L W^2 + T^2 L W)` per point for
    :math:`T` tokens, :math:`L` layers and width :math:`W`.
    """

    def __init__(self, size: int, out: int, tokens: int, hidden: int, depth: int, heads: int):
        super().__init__()
        self.embed = nn.Linear(size, hidden)
        self.position = nn.Parameter(0.02 * torch.randn(tokens, hidden))
        self.blocks = nn.ModuleList(_Block(hidden, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, out)
        with torch.no_grad():  # TarFlow's zero-initialised output projection: the identity flow
            self.head.weight.zero_()
            self.head.bias.zero_()

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.embed(tokens) + self.position
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


class TransformerConditioner(Partitioned):
    r"""A causal transformer over :math:`K` tokens (``parts``) as the conditioner of an
    autoregressive layer: TarFlow's conditioner.

    The ``features`` are split into ``parts`` contiguous tokens of equal size
    :math:`p = D / K` (one coordinate each by default: :math:`K = D`, fully autoregressive). The
    tokens :math:`x_{I_1}, \dots, x_{I_{K-1}}` go through a :class:`CausalTransformer`, whose
    output :math:`t` gives the parameters of part :math:`t + 1`; part 0's parameters are learned
    constants, read by :meth:`initial` without a network pass. So

    .. math:: c_{I_k} = h_{k-1}\big(x_{I_1}, \dots, x_{I_{k-1}}\big), \qquad
              c_{I_1} = \text{constants},

    with :math:`h_t` the transformer's output at token :math:`t`: the input shifted by one
    token, as TarFlow does. The dependency pattern is that of a
    :class:`~flowlab.MaskedConditioner` with the same parts, exactly (the causal mask gives
    attention weights of exactly zero); unlike a masked MLP, one set of weights serves every
    position, and attention lets part :math:`k` weigh the earlier parts by their content.

    **Cost.** One network pass (``forward``) runs the transformer once over :math:`K - 1`
    tokens: :math:`O(K L W^2 + K^2 L W)` per point with ``depth`` :math:`= L` layers of width
    ``hidden`` :math:`= W`. Inverting a layer takes ``passes = parts - 1`` such passes
    (or fewer Jacobi sweeps, :meth:`flowlab.Autoregressive.jacobi`).

    The number of outputs per feature is set by the transformer it is paired with
    (:class:`~flowlab.Autoregressive` calls :meth:`build`), or directly with ``outputs``. The
    output head and the constants start at zero: paired with :class:`~flowlab.Affine` or
    :class:`~flowlab.RQSpline`, the layer starts as the identity.

    References: Zhai et al. 2025 (TarFlow); Vaswani et al. 2017 (the transformer, causal
    masking); Papamakarios et al. 2017 (MAF).

    Example:
        >>> import torch, flowlab as fl
        >>> layer = fl.Autoregressive(fl.TransformerConditioner(6, hidden=16, heads=2), fl.Affine())
        >>> layer.passes  # K = D = 6 parts: 5 network passes to invert
        5
        >>> x = torch.randn(3, 6)
        >>> torch.equal(layer(x)[0], x)  # a fresh layer is the identity
        True
        >>> c = fl.TransformerConditioner(8, parts=4, hidden=16, heads=2, outputs=2)
        >>> c(torch.randn(5, 8)).shape, c.part.tolist()
        (torch.Size([5, 8, 2]), [0, 0, 1, 1, 2, 2, 3, 3])
    """

    def __init__(self, features: int, parts: int | None = None, hidden: int = 64, depth: int = 2, heads: int = 4,
                 outputs: int | None = None):
        super().__init__(features, parts)
        if self.features % self.parts:
            divisors = [k for k in range(1, self.features + 1) if self.features % k == 0]
            raise ValueError(f"parts must divide features={self.features} (tokens of equal size), got {parts!r}; "
                             f"choose one of {divisors}.")
        self.size = self.features // self.parts
        self.hidden = check_positive_int("hidden", hidden, hint="(the width of each token's representation)")
        self.depth = check_positive_int("depth", depth, maximum=MAX_DEPTH, hint="(attention layers)")
        self.heads = check_positive_int("heads", heads)
        if self.hidden % self.heads:
            raise ValueError(f"heads must divide hidden={self.hidden} (each head gets hidden / heads numbers), "
                             f"got heads={heads}.")
        self.first = None
        self.net = None
        if outputs is not None:
            self.build(outputs)

    def _build(self, outputs: int) -> None:
        self.first = nn.Parameter(torch.zeros(self.size, outputs))  # part 0: learned constants
        if self.parts > 1:
            self.net = CausalTransformer(self.size, self.size * outputs, self.parts - 1, self.hidden, self.depth,
                                         self.heads)

    def forward(self, x: Tensor) -> Tensor:
        self._check_built()
        n = x.shape[0]
        first = self.first.expand(n, -1, -1)
        if self.net is None:
            return first
        tokens = x[:, : self.features - self.size].reshape(n, self.parts - 1, self.size)  # the last token is unused
        rest = self.net(tokens).reshape(n, self.features - self.size, self.outputs)
        return torch.cat((first, rest), dim=1)

    def initial(self, x: Tensor) -> Tensor:
        """Parameters of shape ``(batch, features, outputs)`` that are exact for part 0, without a
        network pass: the learned constants, repeated as placeholders for the other parts.
        ``x`` only gives the batch size."""
        self._check_built()
        return self.first.repeat(self.parts, 1).expand(x.shape[0], -1, -1)

    def extra_repr(self) -> str:
        return f"features={self.features}, parts={self.parts}, hidden={self.hidden}, depth={self.depth}, heads={self.heads}"


def patches(height: int, width: int, patch: int) -> Tensor:
    """The order that puts the pixels of each ``patch`` x ``patch`` square next to each other:
    entry :math:`j` is the raster index (row by row) of the pixel that goes to position :math:`j`.
    Patches come row by row, and so do the pixels inside a patch.

    Example:
        >>> patches(4, 4, 2).view(4, 4).tolist()  # one row per patch
        [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    """
    height = check_positive_int("height", height)
    width = check_positive_int("width", width)
    patch = check_positive_int("patch", patch)
    if height % patch or width % patch:
        raise ValueError(f"patch must divide the height {height} and the width {width} of the image, got {patch}.")
    raster = torch.arange(height * width).view(height // patch, patch, width // patch, patch)
    return raster.permute(0, 2, 1, 3).reshape(-1)


class TarFlowInverse(NamedTuple):
    """What :meth:`TarFlow.jacobi` returns: the point, the log-determinant of the inverse map, and
    for each autoregressive layer (from the data side) the sweeps used and the last change."""

    x: Tensor
    ladj: Tensor
    sweeps: list[int]
    residuals: list[float]


class TarFlow(Compose):
    r"""TarFlow (Zhai et al. 2025): ``layers`` autoregressive layers with a
    :class:`TransformerConditioner` and an affine transformer, the order reversed in between.

    For an image of ``shape`` :math:`(H, W)` (``features`` :math:`= HW`, raster order) cut into
    ``patch`` x ``patch`` patches, a fixed :class:`~flowlab.Permutation` (:func:`patches`) comes
    first and each patch is one token: :math:`K = HW / p^2` parts of :math:`p^2` pixels.
    Without ``shape``, ``parts`` tokens of equal size (default: one per feature). Per layer,

    .. math:: z_{I_k} = e^{s_k} \odot x_{I_k} + t_k, \qquad (t_k, s_k) = h_{k-1}(x_{I_1}, \dots,
              x_{I_{k-1}}), \qquad \text{ladj} = \sum_k \textstyle\sum s_k,

    then :math:`x \mapsto (x_D, \dots, x_1)`: the next layer sees the parts in the opposite order.
    ``transformer`` replaces the affine one (each layer gets its own copy), for example
    :class:`~flowlab.RQSpline`.

    **Cost.** The density (``forward``) is one transformer pass per layer. Sampling
    (``inverse``) is :math:`K - 1` passes per layer (``method="sequential"``), or the Jacobi
    sweeps needed to reach ``tol`` (``method="jacobi"``, at most :math:`K - 1`; :meth:`jacobi`
    reports them).

    References: Zhai et al. 2025 (TarFlow); Gu et al. 2025 (STARFlow: Jacobi sampling by
    blocks); Papamakarios et al. 2017 (MAF).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.TarFlow(16, shape=(4, 4), patch=2, hidden=16, heads=2, layers=2)
        >>> [type(b).__name__ for b in t]
        ['Permutation', 'Autoregressive', 'Reverse', 'Autoregressive']
        >>> t[1].passes  # 4 patches of 2 x 2 pixels
        3
        >>> z = torch.randn(5, 16)
        >>> x, ladj = t.inverse(z)
        >>> sol = t.jacobi(z, tol=1e-5)
        >>> len(sol.sweeps), torch.allclose(sol.x, x, atol=1e-4)
        (2, True)
    """

    def __init__(self, features: int, hidden: int = 64, layers: int = 4, depth: int = 2, heads: int = 4,
                 parts: int | None = None, transformer: Transformer | None = None, *,
                 shape: tuple[int, int] | None = None, patch: int = 1):
        features = check_positive_int("features", features)
        layers = check_positive_int("layers", layers)
        transformer = Affine() if transformer is None else transformer
        if not isinstance(transformer, Transformer):
            raise ValueError(f"transformer must be a flowlab Transformer such as fl.Affine() or fl.RQSpline(), "
                             f"got {describe(transformer)}.")
        blocks: list = []
        if shape is not None:
            if (not isinstance(shape, (tuple, list)) or len(shape) != 2
                    or any(isinstance(s, bool) or not isinstance(s, int) for s in shape)):
                raise ValueError(f"shape must be (height, width) of the images, such as (8, 8), got {shape!r}.")
            if shape[0] * shape[1] != features:
                raise ValueError(f"shape {tuple(shape)} has {shape[0] * shape[1]} pixels but features={features}.")
            order = patches(shape[0], shape[1], patch)
            tokens = features // (patch * patch)
            if parts is not None and parts != tokens:
                raise ValueError(f"parts={parts!r} but shape {tuple(shape)} with patch={patch} gives {tokens} "
                                 "patches: leave parts out.")
            parts = tokens
            blocks.append(Permutation(features, order=order))
        elif patch != 1:
            raise ValueError(f"patch={patch!r} needs the image's shape=(height, width); for vectors, pass parts.")
        for i in range(layers):
            if i:
                blocks.append(Reverse(features))
            conditioner = TransformerConditioner(features, parts, hidden, depth, heads)
            blocks.append(Autoregressive(conditioner, copy.deepcopy(transformer)))
        super().__init__(*blocks)

    def inverse(self, z: Tensor, *, method: str = "sequential", tol: float | None = None) -> tuple[Tensor, Tensor]:
        """Latent to data: the layers' inverses in reverse order, each autoregressive one by
        ``method`` (``"sequential"``: every pass; ``"jacobi"``: stopped at ``tol``, see
        :meth:`flowlab.Autoregressive.inverse`)."""
        ladj = z.new_zeros(z.shape[0])
        for t in reversed(self.transforms):
            z, l = t.inverse(z, method=method, tol=tol) if isinstance(t, Autoregressive) else t.inverse(z)
            ladj = ladj + l
        return z, ladj

    def jacobi(self, z: Tensor, tol: float | None = None) -> TarFlowInverse:
        """Latent to data with every autoregressive layer inverted by Jacobi sweeps stopped at
        ``tol`` (default :func:`~flowlab.numerics.jacobi.default_tol`: :math:`10^{-5}` in
        float32, :math:`10^{-10}` in float64); returns :class:`TarFlowInverse` with the sweeps
        and the last change of each layer."""
        check_input(self, "z", z)
        tol = default_tol(z.dtype) if tol is None else tol
        ladj = z.new_zeros(z.shape[0])
        sweeps, residuals = [], []
        for t in reversed(self.transforms):
            if isinstance(t, Autoregressive):
                sol = t.jacobi(z, tol)
                z, l = sol.x, sol.ladj
                sweeps.insert(0, sol.sweeps)
                residuals.insert(0, sol.residual)
            else:
                z, l = t.inverse(z)
            ladj = ladj + l
        return TarFlowInverse(z, ladj, sweeps, residuals)


def denoise(flow: Flow, y: Tensor, noise: float) -> Tensor:
    r"""One denoising step by Tweedie's formula: for :math:`y = x + \sigma\varepsilon`,
    :math:`\varepsilon \sim \mathcal N(0, I)`,

    .. math:: \mathbb E[x \mid y] = y + \sigma^2\, \nabla_y \log p_\sigma(y),

    with :math:`p_\sigma` the density of the noisy data, here the ``flow`` trained on them
    (``noise`` :math:`= \sigma`). One gradient of ``flow.log_prob``: the cost of a density
    evaluation and its backward pass. Returns the denoised points (no graph).

    References: Efron 2011 (Tweedie's formula); Zhai et al. 2025 (TarFlow's denoising step).

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.TarFlow(2, hidden=8, heads=2), fl.StandardNormal(2))  # N(0, I) at first
        >>> y = torch.tensor([[2.0, -1.0]])
        >>> denoise(flow, y, noise=0.5)  # y - 0.25 y
        tensor([[ 1.5000, -0.7500]])
    """
    check_flow("flow", flow)
    noise = check_positive_float("noise", noise, hint="(the standard deviation of the noise added in training)")
    if not isinstance(y, Tensor):
        raise ValueError(f"y must be a torch.Tensor of shape (batch, {flow.features}), got {describe(y)}.")
    with torch.enable_grad():
        y = y.detach().to(dtype=flow.dtype).requires_grad_(True)
        (score,) = torch.autograd.grad(flow.log_prob(y).sum(), y)
    return (y + noise**2 * score).detach()
