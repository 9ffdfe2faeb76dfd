r"""Linear flows :math:`z = W x + b` and the structure that makes them cheap.

For a dense :math:`W` the log-determinant and the inverse cost :math:`O(D^3)`. Structure brings
them down (costs per point; a matrix-vector product is :math:`O(D^2)`):

* ``Permutation``, ``Reverse``: :math:`W` a permutation matrix; ``ladj = 0``; both ways :math:`O(D)`;
* ``Triangular``: :math:`W = L` lower triangular with diagonal :math:`e^\theta`; ``ladj`` in
  :math:`O(D)`; forward :math:`O(D^2)`, inverse by triangular solve :math:`O(D^2)`;
* ``LU``: :math:`W = P L (U + \mathrm{diag}(s e^\theta))`; ``ladj`` in :math:`O(D)`; forward
  :math:`O(D^2)`, inverse by two triangular solves :math:`O(D^2)`;
* ``Linear``: dense :math:`W`; ``ladj`` by ``slogdet`` and inverse by ``solve``, :math:`O(D^3)`;
* ``ActNorm``: diagonal :math:`e^s`; everything :math:`O(D)`.

Every direction is explicit: nothing here iterates. :func:`mixing` picks the layer that goes
between two coupling or autoregressive layers; the Glow recipe built from these layers is
:func:`flowlab.glow.Glow`.

References: Kingma & Dhariwal 2018 (Glow); Papamakarios et al. 2021, section 3.2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._checks import check_batch, check_finite, check_positive_int, check_seed, describe, seeded_generator
from .core import Transform

MIXINGS = ("reverse", "permutation", "lu", "none")
"""The choices of :func:`mixing`."""


def _ladj(x: Tensor, value: Tensor) -> Tensor:
    """The same log-determinant for every row of ``x``, shape ``(batch,)``."""
    return x.new_zeros(x.shape[0]) + value


class Permutation(Transform):
    r"""Reorders the coordinates: :math:`z_i = x_{\pi(i)}`; ``ladj`` is zero.

    ``order`` is a permutation of ``0..features-1``; by default a random one drawn from the
    integer ``seed`` (``None``: a fresh one). Both directions are explicit and cost :math:`O(D)`
    per point (an index). Its determinant is :math:`\pm 1`, so :math:`\log|\det W| = 0`: a
    permutation changes no volume.

    References: Dinh et al. 2017 (RealNVP); Papamakarios et al. 2021, section 3.2.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.Permutation(3, order=[2, 0, 1])(torch.tensor([[10., 11., 12.]]))[0]
        tensor([[12., 10., 11.]])
    """

    def __init__(self, features: int, order=None, seed: int | None = 0):
        super().__init__()
        self.features = check_positive_int("features", features)
        g = seeded_generator("seed", seed)
        if order is None:
            order = torch.randperm(self.features, generator=g)
        self.register_buffer("order", _as_order(order, self.features))
        self.register_buffer("inverse_order", torch.argsort(self.order))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.order], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z[:, self.inverse_order], z.new_zeros(z.shape[0])

    def extra_repr(self) -> str:
        return f"order={self.order.tolist()}"


def _as_order(order, features: int) -> Tensor:
    want = f"a permutation of 0..{features - 1} (each integer once), for example {list(range(features))[::-1]}"
    try:
        t = torch.as_tensor(order)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"order must be {want}, got {order!r}.") from None
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"order must be {want}, got {order!r}.")
    if t.is_floating_point():
        if not torch.isfinite(t).all() or not torch.equal(t, t.round()):
            raise ValueError(f"order must contain integers: {want}; got {t.tolist()}.")
    t = t.to(torch.long)
    if t.shape != (features,) or not torch.equal(t.sort().values, torch.arange(features)):
        raise ValueError(f"order must be {want}; got {t.tolist()}.")
    return t


class Reverse(Permutation):
    """Reverses the order of the coordinates: :math:`z_i = x_{D+1-i}`; ``ladj`` is zero. Both
    directions are explicit and cost :math:`O(D)` per point (an index).

    References: Dinh et al. 2017 (RealNVP).

    Example:
        >>> import torch, flowlab as fl
        >>> fl.Reverse(3)(torch.tensor([[1., 2., 3.]]))[0]
        tensor([[3., 2., 1.]])
    """

    def __init__(self, features: int):
        super().__init__(features, order=torch.arange(check_positive_int("features", features) - 1, -1, -1))


class Triangular(Transform):
    r"""A lower-triangular linear layer with a positive diagonal,

    .. math:: z = L x + b, \qquad L_{ii} = e^{\theta_i}, \quad L_{ij} = 0 \ (j > i),
              \qquad \text{ladj} = \sum_{i=1}^D \theta_i .

    :math:`L` is invertible for every value of the parameters. Both directions are explicit:
    ``forward`` is a matrix product (:math:`O(D^2)` per point), ``ladj`` a sum of :math:`D`
    numbers (:math:`O(D)`), ``inverse`` a triangular solve (``torch.linalg.solve_triangular``,
    :math:`O(D^2)` per point). Starts at the identity (:math:`\theta = 0`, :math:`L = I`, :math:`b = 0`).

    References: Papamakarios et al. 2021, section 3.2; distrax's ``TriangularLinear``.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Triangular(3)
        >>> with torch.no_grad():
        ...     _ = t.log_diag.fill_(0.5)
        >>> x = torch.randn(4, 3)
        >>> z, ladj = t(x)
        >>> ladj.detach()  # 3 * 0.5 for every row
        tensor([1.5000, 1.5000, 1.5000, 1.5000])
        >>> torch.allclose(t.inverse(z)[0], x, atol=1e-6)
        True
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = D = check_positive_int("features", features)
        self.lower = nn.Parameter(torch.zeros(D, D))  # only the strictly lower part is used
        self.log_diag = nn.Parameter(torch.zeros(D))
        self.bias = nn.Parameter(torch.zeros(D))

    @property
    def weight(self) -> Tensor:
        """The matrix :math:`L`."""
        return self.lower.tril(-1) + torch.diag(self.log_diag.exp())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.addmm(self.bias, x, self.weight.T), _ladj(x, self.log_diag.sum())

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.linalg.solve_triangular(self.weight.T, z - self.bias, upper=True, left=False)
        return x, _ladj(z, -self.log_diag.sum())


class LU(Transform):
    r"""Glow's LU-parametrised linear layer (an invertible :math:`1 \times 1` convolution),

    .. math:: z = W x + b, \qquad W = P\, L\, \bigl(U + \mathrm{diag}(s \odot e^{\theta})\bigr),
              \qquad \text{ladj} = \sum_{i=1}^D \theta_i,

    with :math:`P` a fixed permutation (buffer ``perm``), :math:`s \in \{-1, 1\}^D` a fixed sign
    (buffer ``sign``), :math:`L` unit lower triangular and :math:`U` strictly upper triangular.
    :math:`\det W = \det P \prod_i s_i e^{\theta_i} \neq 0` for every parameter value, and its
    sign never changes. Both directions are explicit: ``forward`` costs :math:`O(D^2)` per
    point (two triangular products; for a batch of at least :math:`D` points, building
    :math:`W` once is cheaper), ``ladj`` a sum (:math:`O(D)`), ``inverse`` two triangular
    solves (:math:`O(D^2)` per point). No determinant or dense solve is ever computed.

    By default (``rotation=True``) the layer starts as the LU factorisation (with pivoting) of
    a random rotation drawn from ``seed``, as Glow does: not the identity, but an isometry with
    ``ladj = 0`` that already mixes every coordinate. ``rotation=False`` starts at the
    identity with :math:`P = I` and :math:`s = 1` (no permutation, positive diagonal: the
    parametrisation of nflows' ``LULinear``). :meth:`from_matrix` factorises any invertible
    matrix.

    References: Kingma & Dhariwal 2018 (Glow), section 3.2.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.LU(4, seed=0)
        >>> x = torch.randn(5, 4)
        >>> z, ladj = t(x)
        >>> torch.allclose(z.norm(dim=1), x.norm(dim=1), atol=1e-5)  # a rotation at the start
        True
        >>> torch.allclose(t.inverse(z)[0], x, atol=1e-5)
        True
    """

    def __init__(self, features: int, seed: int | None = 0, rotation: bool = True):
        super().__init__()
        self.features = D = check_positive_int("features", features)
        g = seeded_generator("seed", seed)
        if not isinstance(rotation, bool):
            raise ValueError(
                f"rotation must be True (start at a random rotation drawn from seed) or False (start at the "
                f"identity), got {describe(rotation)}."
            )
        if rotation:
            q, r = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
            weight = q * torch.sign(torch.diagonal(r))  # a uniformly random rotation (or reflection)
        else:
            weight = torch.eye(D, dtype=torch.float64)
        P, L, U = torch.linalg.lu(weight)
        diag = torch.diagonal(U)
        dtype = torch.get_default_dtype()
        self.register_buffer("perm", P.argmax(dim=1))  # (P y)_i = y_perm[i]
        self.register_buffer("inverse_perm", torch.argsort(self.perm))
        self.register_buffer("sign", torch.sign(diag).to(dtype))
        self.lower = nn.Parameter(L.tril(-1).to(dtype))  # only the strictly lower part is used
        self.upper = nn.Parameter(U.triu(1).to(dtype))  # only the strictly upper part is used
        self.log_diag = nn.Parameter(diag.abs().log().to(dtype))
        self.bias = nn.Parameter(torch.zeros(D, dtype=dtype))

    @classmethod
    def from_matrix(cls, weight: Tensor) -> "LU":
        """An ``LU`` layer with exactly this (square, invertible) :math:`W` and :math:`b = 0`, in its dtype."""
        weight = torch.as_tensor(weight)
        if weight.dim() != 2 or weight.shape[0] != weight.shape[1] or weight.shape[0] < 1:
            raise ValueError(f"weight must be a square (D, D) matrix, got shape {tuple(weight.shape)}.")
        if weight.is_complex():
            raise ValueError(f"weight must hold real numbers, got dtype {weight.dtype}.")
        check_finite("weight", weight, "pass a matrix of finite numbers")
        P, L, U = torch.linalg.lu(weight.double())
        if not (torch.diagonal(U) != 0).all():
            raise ValueError("weight is singular (a zero pivot in its LU factorisation); pass an invertible matrix.")
        t = cls(weight.shape[0], rotation=False)
        if weight.is_floating_point():
            t = t.to(weight.dtype)  # keep the matrix's precision
        with torch.no_grad():
            t.perm.copy_(P.argmax(dim=1))
            t.inverse_perm.copy_(torch.argsort(t.perm))
            t.sign.copy_(torch.sign(torch.diagonal(U)))
            t.lower.copy_(L.tril(-1))
            t.upper.copy_(U.triu(1))
            t.log_diag.copy_(torch.diagonal(U).abs().log())
        return t

    def _factors(self) -> tuple[Tensor, Tensor]:
        """:math:`L` and :math:`U + \\mathrm{diag}(s e^\\theta)`, as full matrices."""
        lower = self.lower.tril(-1).fill_diagonal_(1.0)
        upper = self.upper.triu(1)
        upper.diagonal().copy_(self.sign * self.log_diag.exp())  # in place: D entries, not a copy of D^2
        return lower, upper

    @property
    def weight(self) -> Tensor:
        """The matrix :math:`W = P L (U + \\mathrm{diag}(s e^\\theta))`."""
        lower, upper = self._factors()
        return lower.index_select(0, self.perm) @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lower, upper = self._factors()
        if x.shape[0] >= self.features:  # building W (D^3) is cheaper than a second product (B D^2)
            z = torch.addmm(self.bias, x, (lower.index_select(0, self.perm) @ upper).T)
        else:  # two products, then P on the (B, D) output rather than on the (D, D) factor
            z = (x @ upper.T @ lower.T).index_select(1, self.perm) + self.bias
        return z, self.log_diag.sum().expand(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        lower, upper = self._factors()
        y = (z - self.bias).index_select(1, self.inverse_perm)  # P^T (z - b)
        y = torch.linalg.solve_triangular(lower.T, y, upper=True, left=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper.T, y, upper=False, left=False)
        return x, (-self.log_diag.sum()).expand(z.shape[0])


class Linear(Transform):
    r"""A dense linear layer :math:`z = W x + b`, for comparison: it pays :math:`O(D^3)`.

    .. math:: \text{ladj} = \log|\det W| \quad (\texttt{torch.linalg.slogdet}, O(D^3)).

    ``forward`` is a matrix product (:math:`O(D^2)` per point) plus one ``slogdet``
    (:math:`O(D^3)` per call); ``inverse`` solves :math:`W x = z - b` (``torch.linalg.solve``,
    an :math:`O(D^3)` factorisation per call). Both are computed in float64 internally, as
    Glow does, because float32 determinants and solves lose digits quickly as :math:`W`
    becomes ill-conditioned. Nothing keeps :math:`W` invertible: a singular :math:`W` gives
    ``ladj = -inf``. Starts at the identity.

    References: Kingma & Dhariwal 2018 (Glow, the dense :math:`1 \times 1` convolution).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Linear(3)
        >>> with torch.no_grad():
        ...     _ = t.weight.mul_(2.0)
        >>> z, ladj = t(torch.randn(2, 3))
        >>> ladj.detach()  # log 8
        tensor([2.0794, 2.0794])
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = D = check_positive_int("features", features)
        self.weight = nn.Parameter(torch.eye(D))
        self.bias = nn.Parameter(torch.zeros(D))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ladj = torch.linalg.slogdet(self.weight.double()).logabsdet.to(x.dtype)
        return torch.addmm(self.bias, x, self.weight.T), _ladj(x, ladj)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weight.double()
        x = torch.linalg.solve(w.T, (z - self.bias).double(), left=False).to(z.dtype)
        return x, _ladj(z, -torch.linalg.slogdet(w).logabsdet.to(z.dtype))


class ActNorm(Transform):
    r"""Glow's activation normalisation: an elementwise affine map with data-dependent start,

    .. math:: z = e^{s} \odot x + t, \qquad \text{ladj} = \sum_{i=1}^D s_i .

    **Data-dependent initialisation.** The first call of ``forward`` (data to latent) while the
    buffer ``initialized`` is false sets :math:`s` and :math:`t` so that this batch leaves with
    mean 0 and variance 1 in every coordinate, then sets ``initialized`` to true. The flag is
    part of ``state_dict()``, so a saved and reloaded layer is not initialised twice; call
    :meth:`initialize` to choose the data yourself, or set ``initialized`` to skip it. Before
    that the layer is the identity (``inverse`` never initialises). After it, :math:`s` and
    :math:`t` are ordinary parameters.

    Both directions are explicit and cost :math:`O(D)` per point.

    References: Kingma & Dhariwal 2018 (Glow), section 3.1.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.ActNorm(2)
        >>> x = torch.randn(500, 2) * torch.tensor([3.0, 0.1]) + 5
        >>> z, ladj = t(x)  # the first batch sets mean 0, variance 1
        >>> bool(t.initialized), z.mean(0).abs().max() < 1e-4, (z.var(0, unbiased=False) - 1).abs().max() < 1e-4
        (True, tensor(True), tensor(True))
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = D = check_positive_int("features", features)
        self.log_scale = nn.Parameter(torch.zeros(D))
        self.shift = nn.Parameter(torch.zeros(D))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set :math:`s = -\\log \\mathrm{std}(x)`, :math:`t = -\\mathrm{mean}(x)\\, e^{s}` (per coordinate)."""
        check_batch("x", x, self.features)
        check_finite("x", x, "ActNorm sets its scale and shift from this batch's mean and spread: pass finite data")
        if x.shape[0] < 2:
            raise ValueError(
                f"ActNorm sets its scale from the spread of its first batch, which needs at least 2 rows; got "
                f"{x.shape[0]}. Call .initialize(data) with more rows first, or set .initialized.fill_(True)."
            )
        std = x.std(dim=0, unbiased=False).clamp_min(1e-6)  # a constant column gets scale 1e6, not inf
        self.log_scale.copy_(-std.log())
        self.shift.copy_(-x.mean(dim=0) / std)
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.initialized:
            self.initialize(x)
        return x * self.log_scale.exp() + self.shift, _ladj(x, self.log_scale.sum())

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return (z - self.shift) * (-self.log_scale).exp(), _ladj(z, -self.log_scale.sum())

    def extra_repr(self) -> str:
        return f"features={self.features}, initialized={bool(self.initialized)}"


def mixing(kind: str, features: int, seed: int | None = 0) -> Transform | None:
    """The layer that mixes the coordinates between two coupling or autoregressive layers.

    A coupling or autoregressive layer transforms its first part elementwise, with parameters
    that depend on no other coordinate, so a stack of them needs a layer in between that mixes
    the coordinates. ``kind`` is ``"reverse"`` (:class:`Reverse`), ``"permutation"`` (a random
    :class:`Permutation` drawn from ``seed``), ``"lu"`` (a learned :class:`LU`, starting from a
    random rotation drawn from ``seed``) or ``"none"`` (returns ``None``: nothing in between).
    Each costs what its layer costs: :math:`O(D)` per point for the first two, :math:`O(D^2)`
    for ``"lu"``.

    References: Dinh et al. 2017 (RealNVP, reversing the coordinates between couplings);
    Kingma & Dhariwal 2018 (Glow, the learned LU layer).

    Example:
        >>> import flowlab as fl
        >>> [type(fl.mixing(k, 4)).__name__ for k in fl.linear.MIXINGS]
        ['Reverse', 'Permutation', 'LU', 'NoneType']
    """
    features = check_positive_int("features", features)
    if not isinstance(kind, str) or kind.lower() not in MIXINGS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, MIXINGS))}; got {describe(kind)}.")
    kind = kind.lower()
    if kind == "permutation":
        return Permutation(features, seed=seed)
    if kind == "lu":
        return LU(features, seed=seed)
    check_seed("seed", seed)  # the same check for every kind
    return Reverse(features) if kind == "reverse" else None
