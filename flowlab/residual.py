r"""Residual flows: maps :math:`x + g(x)` made invertible by a contraction or by a rank constraint.

* :class:`ResidualBlock` (i-ResNet): :math:`z = x + g(x)` with :math:`\mathrm{Lip}(g) < 1`.
  Forward (data to latent) explicit, one pass of :math:`g`; inverse by Banach fixed-point iteration,
  about :math:`\log(\varepsilon) / \log c` passes. ``ladj``: exact (:math:`D` VJPs and an
  :math:`O(D^3)` determinant), truncated power series (``terms`` VJPs) or Russian roulette.
* :class:`Planar`: :math:`x = z + \hat u\, h(w^\top z + b)`, latent to data explicit in :math:`O(D)`
  with the matrix determinant lemma; data to latent by a scalar bisection, :math:`O(D)` per step.
* :class:`Sylvester`: :math:`x = z + A\, h(Bz + b)` with :math:`A = QR`, :math:`B = \tilde R Q^\top`;
  latent to data explicit, ``ladj`` an :math:`m \times m` triangular determinant, :math:`O(Dm)`;
  no data-to-latent direction.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_batch, check_positive_float, check_positive_int
from .core import Compose, Transform
from .lipschitz import SpectralLinear, check_coeff, lipschitz_mlp
from .numerics.fixed_point import MAX_ITER, fixed_point
from .numerics.jacobians import PROBES
from .numerics.logdet import MAX_TERMS, check_p, logdet_exact, logdet_roulette, logdet_series
from .numerics.roots import bisection, implicit_inverse

__all__ = ["MAX_LAYERS", "NoDataToLatent", "Planar", "PlanarFlow", "ResidualBlock", "ResidualFlow", "Sylvester",
           "SylvesterFlow"]

LADJ = ("exact", "series", "roulette")

MAX_LAYERS = 256
"""The most layers of :func:`ResidualFlow`, :func:`PlanarFlow` and :func:`SylvesterFlow`: each
layer is one more network (or map) per pass; the book's flows use 2 to 32."""


def _layers(layers) -> int:
    return check_positive_int("layers", layers, maximum=MAX_LAYERS, hint="(the book's flows use 2 to 32)")


class NoDataToLatent(NotImplementedError, ValueError):
    """A transform asked for a direction it does not have. It is a ``ValueError`` (a setting the
    caller can change) and a ``NotImplementedError`` (the direction does not exist)."""


class ResidualBlock(Transform):
    r"""An invertible residual block (i-ResNet): :math:`z = x + g(x)`, data to latent.

    :math:`g` is an MLP of :class:`~flowlab.lipschitz.SpectralLinear` layers (each of spectral norm at
    most ``coeff`` :math:`= c < 1`) and 1-Lipschitz LipSwish activations, so
    :math:`\mathrm{Lip}(g) \le c^{L} < 1` for :math:`L` linear layers. Then

    * **forward** (explicit): one pass of :math:`g`, plus the log-determinant
      :math:`\log\det(I + J_g(x))` by ``ladj="exact"`` (autograd Jacobian, the default: in low
      :math:`D` it is the cheapest), ``"series"`` (power series truncated after ``terms`` terms with
      one Hutchinson probe: biased) or ``"roulette"`` (Russian roulette: unbiased, random cost);
    * **inverse** (iterative): :math:`x = z - g(x)` by Banach fixed-point iteration
      (:func:`flowlab.numerics.fixed_point`), which raises a ``ValueError`` rather than return an
      unconverged point; gradients by implicit differentiation; ``ladj`` is minus the forward one at
      the solution.

    **The Lipschitz guarantee**, whatever loop trains the block. The spectral norms come from power
    iteration with persistent vectors, kept up to date by the layers themselves
    (:class:`~flowlab.lipschitz.SpectralLinear`): after any change of the weights, in training mode
    the next forward pass takes a step of subspace iteration (more after a large change), in
    evaluation mode it computes the exact top singular vectors first, and every :meth:`inverse`
    does too. So after any change of the weights (a
    plain optimizer loop, ``load_state_dict``, an edit by hand) :math:`\mathrm{Lip}(g) \le c^L`
    holds exactly in evaluation mode and for the inverse, and to within about 1% per layer in
    training mode (a step of iteration approaches each norm from below; plain Adam loops stayed
    within 0.5%). The inverse inverts the evaluation-mode map.

    ``hidden`` is a sequence of widths or an int :math:`h` for two hidden layers of :math:`h`
    units. ``generator`` (optional) is the source of the probes of the stochastic log-dets; the
    roulette shares its number of terms across the batch (:func:`~flowlab.numerics.logdet_roulette`).

    References: Behrmann et al. 2019 (i-ResNet); Chen et al. 2019 (Residual Flows).

    Example:
        >>> import torch, flowlab as fl
        >>> block = fl.ResidualBlock(2, hidden=16).eval()
        >>> x = torch.randn(5, 2)
        >>> z, ladj = block(x)
        >>> torch.allclose(block.inverse(z)[0], x, atol=1e-4)
        True
    """

    def __init__(
        self,
        features: int,
        hidden=(64, 64),
        coeff: float = 0.9,
        ladj: str = "exact",
        terms: int = 5,
        probe: str = "rademacher",
        p: float = 0.5,
        exact_terms: int = 2,
        generator: torch.Generator | None = None,
        tol: float | None = None,
        max_iter: int = 1000,
    ):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.coeff = check_coeff(coeff)
        if ladj not in LADJ:
            raise ValueError(f"ladj must be one of {LADJ}, got {ladj!r}.")
        if probe not in PROBES:
            raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {probe!r}.")
        hint = "(each is a vector-Jacobian product)"
        self.ladj_mode, self.probe, self.p = ladj, probe, check_p(p)
        self.terms = check_positive_int("terms", terms, maximum=MAX_TERMS, hint=hint)
        self.exact_terms = check_positive_int("exact_terms", exact_terms, minimum=0, maximum=MAX_TERMS, hint=hint)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}.")
        self.generator = generator
        self.tol = None if tol is None else check_positive_float("tol", tol)
        self.max_iter = check_positive_int("max_iter", max_iter, maximum=MAX_ITER)
        self.g = lipschitz_mlp(features, hidden, coeff)

    def spectral_layers(self) -> list[SpectralLinear]:
        return [m for m in self.g if isinstance(m, SpectralLinear)]

    @property
    def lipschitz_bound(self) -> float:
        r"""The guaranteed bound :math:`c^L` on :math:`\mathrm{Lip}(g)` (once the norms have converged)."""
        return self.coeff ** len(self.spectral_layers())

    def after_step(self) -> None:
        """One step of the norm estimate per spectral layer, right after an optimizer step
        (:func:`flowlab.fit` calls it). Not needed for the bound: without it the next training
        forward takes the step; with it, that forward does not take another."""
        for layer in self.spectral_layers():
            layer.power_step()

    def refresh(self) -> int:
        """Power iteration to convergence in every layer; returns the largest number of steps."""
        return max(layer.refresh() for layer in self.spectral_layers())

    @contextlib.contextmanager
    def _frozen(self) -> Iterator[None]:
        """The converged weights, unchanged by the many passes of an iteration."""
        self.refresh()
        layers = self.spectral_layers()
        for layer in layers:
            layer.frozen = True
        try:
            yield
        finally:
            for layer in layers:
                layer.frozen = False

    def _ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.ladj_mode == "exact":
            return logdet_exact(self.g, x)
        if self.ladj_mode == "series":
            return logdet_series(self.g, x, self.terms, self.generator, self.probe)
        return logdet_roulette(self.g, x, self.generator, self.p, self.exact_terms, self.probe)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("x", x, self.features)
        gx, ladj = self._ladj(x)
        return x + gx, ladj

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("z", z, self.features)
        if not z.is_floating_point() or not bool(torch.isfinite(z).all()):
            raise ValueError("z must be a floating point tensor of finite values (it has NaN, infinite or "
                             f"integer entries, dtype {z.dtype}): the inverse iterates x = z - g(x) from finite z.")
        with self._frozen():  # the converged contraction, the same for every iteration
            x = fixed_point(lambda x: z - self.g(x), z, tol=self.tol, max_iter=self.max_iter).x
            _, ladj = self._ladj(x)
        return x, -ladj

    def extra_repr(self) -> str:
        return f"features={self.features}, coeff={self.coeff}, ladj={self.ladj_mode!r}"


def ResidualFlow(features: int, layers: int = 4, hidden=(64, 64), coeff: float = 0.9,
                 ladj: str = "exact", **kwargs) -> Compose:
    """``layers`` residual blocks in a row (data to latent, at most :data:`MAX_LAYERS`); ``kwargs``
    go to each :class:`ResidualBlock`.

    Example:
        >>> import torch, flowlab as fl
        >>> fl.ResidualFlow(2, layers=2, hidden=8)(torch.zeros(3, 2))[1].shape
        torch.Size([3])
    """
    layers = _layers(layers)
    return Compose(*[ResidualBlock(features, hidden, coeff, ladj, **kwargs) for _ in range(layers)])


def _m(a: Tensor) -> Tensor:
    # -1 + softplus(a + log(e - 1)): increasing, > -1, and m(0) = 0 (so u = 0 is the identity)
    return -1 + F.softplus(a + math.log(math.e - 1))


class Planar(Transform):
    r"""A planar flow, latent to data: :math:`x = z + \hat u\, h(w^\top z + b)`, :math:`h = \tanh`.

    By the matrix determinant lemma, :math:`\det(I + \hat u\, h'\, w^\top) = 1 + h'(w^\top z + b)\, w^\top\hat u`.
    The map is invertible exactly when this never changes sign; as :math:`0 < h' \le 1` that is
    :math:`w^\top \hat u \ge -1`, enforced by

    .. math:: \hat u = u + \big(m(w^\top u) - w^\top u\big)\frac{w}{\lVert w\rVert^2}, \qquad
              m(a) = -1 + \mathrm{softplus}(a + \log(e - 1)) > -1,

    so :math:`w^\top \hat u = m(w^\top u)` (Rezende & Mohamed's :math:`m`, shifted so that :math:`u = 0`
    gives :math:`\hat u = 0`: the flow starts at the identity).

    * ``inverse`` (latent to data) is the **explicit** direction: :math:`O(D)`, with
      :math:`\text{ladj} = \log(1 + h'\, w^\top\hat u)`;
    * ``forward`` (data to latent) is **iterative**: with :math:`\alpha = w^\top z`, the scalar equation
      :math:`\alpha + w^\top\hat u\, h(\alpha + b) = w^\top x` is increasing in :math:`\alpha`; its root lies in
      :math:`[w^\top x - |w^\top\hat u|,\ w^\top x + |w^\top\hat u|]` (as :math:`|h| \le 1`) and is found by
      bisection, then :math:`z = x - \hat u\, h(\alpha + b)`; gradients by the implicit function theorem.

    Use the flow as ``Flow(PlanarFlow(...), base)``: sampling and reverse KL use the explicit direction.

    References: Rezende & Mohamed 2015, appendix A.1; Kong & Chaudhuri 2020.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Planar(2)
        >>> with torch.no_grad():
        ...     _ = t.u.fill_(-3.0)  # a strongly negative w^T u: still invertible
        >>> z = torch.randn(4, 2, dtype=torch.float64)
        >>> t = t.double()
        >>> x, _ = t.inverse(z)
        >>> torch.allclose(t(x)[0], z, atol=1e-10)
        True
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.w = nn.Parameter(torch.randn(features) / math.sqrt(features))
        self.u = nn.Parameter(torch.zeros(features))
        self.b = nn.Parameter(torch.zeros(()))

    def _u_hat(self) -> tuple[Tensor, Tensor]:
        wu = self.w @ self.u
        s = _m(wu)  # = w^T u_hat
        # w = 0 is a translation by u h(b), invertible for any u: then s = m(0) = 0 and no correction
        ww = (self.w @ self.w).clamp_min(torch.finfo(self.w.dtype).tiny)
        return self.u + ((s - wu) / ww) * self.w, s

    def u_hat(self) -> Tensor:
        r"""The constrained :math:`\hat u`, with :math:`w^\top \hat u > -1`."""
        return self._u_hat()[0]

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("z", z, self.features)
        u, s = self._u_hat()
        h = torch.tanh(torch.addmv(self.b, z, self.w))
        return torch.addr(z, h, u), torch.log1p((1 - h * h) * s)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("x", x, self.features)
        if not x.is_floating_point() or not bool(torch.isfinite(x).all()):
            raise ValueError("x must be a floating point tensor of finite values (it has NaN, infinite or integer "
                             f"entries, dtype {x.dtype}): the data-to-latent direction solves for each point.")
        u, s = self._u_hat()
        b = self.b
        beta = x @ self.w

        def f(alpha: Tensor) -> Tensor:  # increasing in alpha
            return alpha + s * torch.tanh(alpha + b)

        width = s.detach().abs()
        alpha = bisection(f, beta, lower=beta.detach() - width, upper=beta.detach() + width)
        alpha = implicit_inverse(f, beta, alpha, derivative=lambda a: 1 + s.detach() * (1 - torch.tanh(a + b.detach()) ** 2))
        h = torch.tanh(alpha + b)
        return x - h[:, None] * u, -torch.log1p((1 - h**2) * s)

    def extra_repr(self) -> str:
        return f"features={self.features}"


def PlanarFlow(features: int, layers: int = 8) -> Compose:
    """``layers`` planar layers (data to latent); sample and train by reverse KL in the explicit direction.

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.PlanarFlow(2, layers=4), fl.StandardNormal(2))
        >>> flow.sample(3).shape
        torch.Size([3, 2])
    """
    return Compose(*[Planar(features) for _ in range(_layers(layers))])


class Sylvester(Transform):
    r"""A Sylvester flow, latent to data: :math:`x = z + A\, h(Bz + b)`, :math:`A = QR`, :math:`B = \tilde R Q^\top`.

    :math:`Q` (:math:`D \times m`) is the first :math:`m` columns of a product of Householder
    reflections :math:`I - 2 v v^\top / \lVert v\rVert^2`, orthogonal to rounding with no iteration;
    :math:`R, \tilde R` are :math:`m \times m` upper triangular with diagonals
    :math:`r_{ii} = \tanh(\rho_i)`, :math:`\tilde r_{ii} = \tanh(\tilde\rho_i)`, and :math:`h = \tanh`.
    By the matrix determinant lemma and :math:`Q^\top Q = I_m`,

    .. math:: \det\big(I_D + A\,\mathrm{diag}(h')\,B\big) = \det\big(I_m + \mathrm{diag}(h')\,\tilde R R\big)
              = \prod_{i=1}^m \big(1 + h'_i\, \tilde r_{ii} r_{ii}\big),

    an upper triangular :math:`m \times m` determinant. As :math:`|\tilde r_{ii} r_{ii}| < 1` and
    :math:`0 < h' \le 1`, every factor is positive: the map is invertible.

    * ``inverse`` (latent to data) is the **explicit** direction, :math:`O(Dm)` per point;
    * ``forward`` (data to latent) does not exist in closed form: it raises :class:`NoDataToLatent`
      (a ``ValueError`` and a ``NotImplementedError``), so ``log_prob`` of data is not available.
      Use the flow for sampling and reverse KL, as ``Flow(SylvesterFlow(...), base)`` (the explicit
      direction is the one sampling uses), that is as a posterior approximation.

    References: van den Berg et al. 2018 (Sylvester normalizing flows, Householder variant).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Sylvester(3, m=2)
        >>> q = t.q()
        >>> torch.allclose(q.T @ q, torch.eye(2), atol=1e-6)
        True
    """

    def __init__(self, features: int, m: int | None = None, reflections: int | None = None):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.m = features if m is None else check_positive_int("m", m)
        if self.m > features:
            raise ValueError(f"m must be between 1 and features={features}, got {m}.")
        k = features if reflections is None else check_positive_int(
            "reflections", reflections, maximum=features,
            hint="(the number of features: every orthogonal matrix is a product of that many reflections)")
        self.v = nn.Parameter(torch.randn(k, features))
        upper = self.m * (self.m - 1) // 2
        self.r = nn.Parameter(torch.zeros(upper))  # the strict upper triangles of R and R~, row by row
        self.r_tilde = nn.Parameter(torch.zeros(upper))
        self.rho = nn.Parameter(torch.zeros(self.m))  # r_ii = tanh(rho) = 0: the identity at start
        self.rho_tilde = nn.Parameter(torch.full((self.m,), 0.5))
        self.b = nn.Parameter(torch.zeros(self.m))
        self.register_buffer("_upper", torch.triu_indices(self.m, self.m, offset=1), persistent=False)

    def q(self) -> Tensor:
        """The orthonormal columns :math:`Q = H_1 H_2 \\cdots H_k [:, :m]`."""
        q = torch.eye(self.features, dtype=self.v.dtype, device=self.v.device)[:, : self.m]
        for v in reversed(self.v):  # apply H_k first
            v = v / v.norm()
            q = q - 2 * v[:, None] * (v @ q)[None, :]
        return q

    def _triangle(self, strict: Tensor, diagonal: Tensor) -> Tensor:
        i, j = self._upper
        return torch.diag(torch.tanh(diagonal)).index_put((i, j), strict)

    def _triangles(self) -> tuple[Tensor, Tensor]:
        return self._triangle(self.r, self.rho), self._triangle(self.r_tilde, self.rho_tilde)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_batch("z", z, self.features)
        q = self.q()
        r, rt = self._triangles()
        pre = z @ q @ rt.T + self.b  # B z + b, with B = R~ Q^T
        h = torch.tanh(pre)
        x = z + h @ r.T @ q.T  # A h, with A = Q R
        diag = torch.tanh(self.rho) * torch.tanh(self.rho_tilde)
        return x, torch.log1p((1 - h**2) * diag).sum(-1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NoDataToLatent(
            "Sylvester has no data-to-latent direction (no closed-form inverse), so a flow of Sylvester layers "
            "has no log_prob of data. Use it where only the explicit latent-to-data direction is needed: sampling "
            "and reverse KL (flow.rsample_and_log_prob, fl.reverse_kl), as fl.Flow(fl.SylvesterFlow(...), base); "
            "for log_prob of data choose a family with both directions, such as fl.PlanarFlow or fl.ResidualFlow."
        )

    def extra_repr(self) -> str:
        return f"features={self.features}, m={self.m}"


def SylvesterFlow(features: int, layers: int = 4, m: int | None = None) -> Compose:
    """``layers`` Sylvester layers (data to latent only through their explicit ``inverse``).

    Example:
        >>> import flowlab as fl
        >>> fl.Flow(fl.SylvesterFlow(2, layers=2), fl.StandardNormal(2)).sample(3).shape
        torch.Size([3, 2])
    """
    return Compose(*[Sylvester(features, m) for _ in range(_layers(layers))])
