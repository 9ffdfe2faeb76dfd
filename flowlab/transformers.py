r"""Transformers: univariate, strictly increasing maps :math:`\tau_c` with parameters :math:`c`.

A transformer acts elementwise. ``forward(x, c)`` returns :math:`(\tau_c(x),\ \log \tau_c'(x))`
and ``inverse(y, c)`` returns :math:`(\tau_c^{-1}(y),\ \log (\tau_c^{-1})'(y))`, all of shape
``(batch, features)``, with ``c`` of shape ``(batch, features, params)``. Zero parameters give
the identity, so a flow whose conditioner outputs small values starts near the identity.

Costs are per coordinate (a flow pays them :math:`D` times per point): :class:`Affine` is
:math:`O(1)` both ways; :class:`RQSpline` is :math:`O(K)` both ways (:math:`K` bins: the knots,
then a binary search); :class:`MonotonicNN` and :class:`Integral` are explicit one way and
invert by bisection, :math:`\log_2(\text{bracket} / \text{tolerance})` evaluations of the map
(some 25 in float32, 50 in float64).

References: Papamakarios et al. 2021, section 3.1 (transformers); Wehenkel & Louppe 2021
(graphical normalizing flows: a transformer is any monotone map, paired with any conditioner).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_fraction, check_positive_float, check_positive_int, renamed
from .numerics import MAX_NODES, bisection, gauss_legendre, implicit_inverse


class Transformer(nn.Module):
    r"""Base class: a univariate, strictly increasing map :math:`\tau_c` with ``params``
    parameters per coordinate.

    ``forward(x, c)`` returns :math:`(\tau_c(x), \log \tau_c'(x))` and ``inverse(y, c)``
    returns :math:`(\tau_c^{-1}(y), -\log \tau_c'(\tau_c^{-1}(y)))`, elementwise; a flow's
    log-determinant is the sum of these log-derivatives over the coordinates. Each subclass
    states its cost in each direction.

    References: Papamakarios et al. 2021, section 3.1.

    Example:
        >>> import torch, flowlab as fl
        >>> tau = fl.Affine()
        >>> y, log_slope = tau(torch.ones(1, 2), torch.zeros(1, 2, tau.params))  # zero parameters: the identity
        >>> y, log_slope
        (tensor([[1., 1.]]), tensor([[0., 0.]]))
    """

    params: int

    def _check(self, x: Tensor, c: Tensor) -> None:
        """``c`` holds ``params`` parameters per entry of ``x``: a shape check, nothing more."""
        if not isinstance(c, Tensor) or c.dim() != x.dim() + 1 or c.shape[-1] != self.params:
            got = f"shape {tuple(c.shape)}" if isinstance(c, Tensor) else type(c).__name__
            raise ValueError(
                f"{self!r} takes c of shape (batch, features, {self.params}), {self.params} parameters per entry of x "
                f"(x has shape {tuple(x.shape)}); got c of {got}. A conditioner paired with it in "
                "fl.Autoregressive is built with the right number (conditioner.build(transformer.params))."
            )

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class Affine(Transformer):
    r"""The affine transformer :math:`\tau_c(x) = e^{s} x + t` with a bounded log-scale.

    With :math:`c = (t, u)`, the log-scale is :math:`s = S \tanh(u / S)` so that
    :math:`|s| < S` (``scale_bound``), which keeps training stable. The log-derivative is
    :math:`s`; both directions are explicit and cost :math:`O(1)` per coordinate.

    References: Dinh et al. 2017 (RealNVP); Papamakarios et al. 2017 (MAF).

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
        self._check(x, c)
        shift, s = self._shift_logscale(c)
        return x * s.exp() + shift, s

    def inverse(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        self._check(y, c)
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
    :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})`, so both directions are explicit. Each costs
    :math:`O(K)` per coordinate for :math:`K` bins: the knots from the parameters (a softmax
    and a cumulative sum), then :math:`O(\log K)` for the search and :math:`O(1)` for the
    map. Parameters per coordinate: ``3 * bins - 1`` (widths, heights, inner derivatives).
    The log-derivative is

    .. math::
        \log \tau'(x) = 2 \log \frac{s_k}{\text{den}} + \log\big(d_{k+1}\xi^2 + 2 s_k \xi(1-\xi)
        + d_k (1-\xi)^2\big),

    with den the denominator above.

    References: Durkan et al. 2019 (neural spline flows); Gregory & Delbourgo 1982 (the
    rational-quadratic spline).

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
        min_width = check_positive_float("min_width", min_width)
        if not min_width * self.bins < 1:
            raise ValueError(f"min_width * bins must be in (0, 1), got {min_width} * {self.bins}: lower min_width or bins.")
        self.min_width = min_width
        self.min_derivative = min_derivative = check_fraction("min_derivative", min_derivative)
        # softplus(u + shift) + min_derivative == 1 at u = 0: zero parameters give the identity
        self._shift = math.log(math.expm1(1 - min_derivative))
        self.params = 3 * self.bins - 1

    def _knots(self, c: Tensor) -> Tensor:
        """Knot abscissae, ordinates and derivatives stacked as ``(..., 3, bins + 1)``."""
        K, B = self.bins, self.bound
        wh = c[..., : 2 * K].unflatten(-1, (2, K))
        wh = (wh - wh.amax(dim=-1, keepdim=True).detach()).exp()  # a softmax, faster than F.softmax on 8 bins
        wh = torch.cumsum(wh / wh.sum(dim=-1, keepdim=True), dim=-1) * (2 * B * (1 - self.min_width * K))
        wh = F.pad(wh + torch.arange(1, K + 1, dtype=c.dtype, device=c.device) * (2 * B * self.min_width), (1, 0)) - B
        d = F.pad(self.min_derivative + F.softplus(c[..., 2 * K :] + self._shift), (1, 1), value=1.0)
        return torch.cat((wh, d.unsqueeze(-2)), dim=-2)

    def _bin_ends(self, knots: Tensor, v: Tensor, row: int) -> tuple[Tensor, Tensor]:
        """Binary search for the bin of ``v`` among the knots in ``row`` (0: x, 1: y); returns
        the (x, y, d) triples at the bin's left and right ends, each ``(..., 3)``."""
        k = (torch.searchsorted(knots[..., row, :].contiguous(), v.unsqueeze(-1)) - 1).clamp_(0, self.bins - 1)
        k = torch.cat((k, k + 1), dim=-1).unsqueeze(-2).expand(*knots.shape[:-1], 2)
        ends = knots.gather(-1, k)
        return ends[..., 0], ends[..., 1]

    @staticmethod
    def _log_derivative(s: Tensor, d0: Tensor, a: Tensor, t: Tensor, xi: Tensor, den: Tensor) -> Tensor:
        r"""The log-derivative of the docstring, with :math:`a = s_k - d_k` and
        :math:`t = d_k + d_{k+1} - 2 s_k`: its numerator is :math:`d_k + \xi (2a + t \xi)`."""
        return 2 * torch.log(s / den) + torch.log(d0 + xi * (2 * a + t * xi))

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x, c)
        B = self.bound
        knots = self._knots(c)
        inside = (x > -B) & (x < B)
        xc = x.clamp(-B, B)
        lo, hi = self._bin_ends(knots, xc, 0)
        x0, y0, d0 = lo.unbind(-1)
        x1, y1, d1 = hi.unbind(-1)
        w, h = x1 - x0, y1 - y0
        s = h / w
        xi = ((xc - x0) / w).clamp(0, 1)
        t = d0 + d1 - 2 * s
        a = s - d0
        den = s + t * xi * (1 - xi)
        # the same rational quadratic as in the docstring, with fewer operations:
        # s xi^2 + d0 xi (1 - xi) = xi (d0 + a xi)
        y = y0 + h * xi * (d0 + a * xi) / den
        ld = self._log_derivative(s, d0, a, t, xi, den)
        return torch.where(inside, y, x), torch.where(inside, ld, 0.0)

    def inverse(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        self._check(y, c)
        B = self.bound
        knots = self._knots(c)
        inside = (y > -B) & (y < B)
        yc = y.clamp(-B, B)
        lo, hi = self._bin_ends(knots, yc, 1)
        x0, y0, d0 = lo.unbind(-1)
        x1, y1, d1 = hi.unbind(-1)
        w, h = x1 - x0, y1 - y0
        s = h / w
        dy = yc - y0
        t = d0 + d1 - 2 * s
        a = h * (s - d0) + dy * t
        b = h * d0 - dy * t
        cc = -s * dy
        disc = (b * b - 4 * a * cc).clamp(min=0)
        xi = (2 * cc / (-b - disc.sqrt())).clamp(0, 1)
        den = s + t * xi * (1 - xi)
        ld = self._log_derivative(s, d0, s - d0, t, xi, den)
        return torch.where(inside, x0 + xi * w, y), torch.where(inside, -ld, 0.0)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, bound={self.bound}"


class MonotonicNN(Transformer):
    r"""A deep sigmoidal transformer (neural autoregressive flow, Huang et al. 2018): a
    composition and a conic combination of monotone functions.

    With ``units`` = :math:`H` sigmoid units of slopes :math:`a_k > 0`, offsets :math:`b_k` and
    weights :math:`w_k > 0`, :math:`\sum_k w_k = 1`, and a small share :math:`\epsilon`
    (``min_derivative``) of the identity,

    .. math::
        \tau_c(x) = (1 - \epsilon)\, \sigma^{-1}\!\Big(\sum_{k=1}^{H} w_k\, \sigma(u_k)\Big)
        + \epsilon x, \qquad u_k = a_k x + b_k,

    .. math::
        \tau_c'(x) = (1 - \epsilon)\, \frac{\sum_k w_k a_k\, \sigma(u_k)\,\sigma(-u_k)}{p\,(1 - p)}
        + \epsilon,

    where :math:`p = \sum_k w_k \sigma(u_k)` and :math:`\sigma^{-1}` is the logit. Every piece is
    increasing, so :math:`\tau_c` is strictly increasing for every parameter value, with
    :math:`\tau_c' > \epsilon`: without that share, components far apart leave plateaus on
    which :math:`\tau_c'` is like :math:`e^{-1000}`, increasing on paper but flat in floating
    point, so not invertible. Since the logit is increasing, the logit term lies between
    :math:`\min_k u_k(x)` and :math:`\max_k u_k(x)`, so :math:`\tau_c` lies between the lines
    :math:`\ell_k(x) = ((1 - \epsilon) a_k + \epsilon)\, x + (1 - \epsilon) b_k`: it is unbounded
    both ways, a bijection of :math:`\mathbb{R}`. Everything is computed in log space
    (:math:`\log p` and :math:`\log(1 - p)` by log-sum-exp), which stays finite far in the tails.

    Parameters per coordinate: ``3 * units``, :math:`c = (\tilde a, b, \tilde w)` with
    :math:`\log a_k = S \tanh(\tilde a_k / S)` (:math:`S` = ``scale_bound``) and
    :math:`w = \operatorname{softmax}(\tilde w)`. Zero parameters give :math:`a_k = 1`,
    :math:`b_k = 0`, so the logit term is :math:`x`: the identity.

    ``forward`` is explicit: :math:`O(H)` per coordinate. ``inverse`` has no closed form: it
    brackets the root between the lines,
    :math:`\min_k \ell_k^{-1}(y) \le \tau_c^{-1}(y) \le \max_k \ell_k^{-1}(y)`, runs
    :func:`flowlab.numerics.bisection` to full precision (:math:`O(H)` per step, some 25
    steps in float32 and 50 in float64) and gets its gradients from
    :func:`flowlab.numerics.implicit_inverse`. ``hidden`` is the former name of ``units``.

    References: Huang et al. 2018 (neural autoregressive flows); Papamakarios et al. 2021,
    section 3.1.3.

    Example:
        >>> import torch, flowlab as fl
        >>> tau = fl.MonotonicNN(units=4)
        >>> c = torch.randn(5, 2, tau.params, dtype=torch.float64)
        >>> x = torch.randn(5, 2, dtype=torch.float64)
        >>> y, ld = tau(x, c)
        >>> torch.allclose(tau.inverse(y, c)[0], x, atol=1e-10)
        True
    """

    def __init__(self, units: int = 8, scale_bound: float = 3.0, min_derivative: float = 1e-2, *,
                 hidden: int | None = None):
        super().__init__()
        name, units = renamed("units", units, 8, "hidden", hidden)
        self.units = check_positive_int(name, units, hint="(the number of sigmoid units)")
        self.scale_bound = check_positive_float("scale_bound", scale_bound)
        self.min_derivative = check_fraction("min_derivative", min_derivative)
        self.params = 3 * self.units

    def _units(self, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-slopes, offsets and log-weights, each ``(..., units)``."""
        a, b, w = c.unflatten(-1, (3, self.units)).unbind(-2)
        S = self.scale_bound
        return S * torch.tanh(a / S), b, F.log_softmax(w, dim=-1)

    def _map(self, x: Tensor, log_a: Tensor, b: Tensor, log_w: Tensor) -> tuple[Tensor, Tensor]:
        eps = self.min_derivative
        u = log_a.exp() * x.unsqueeze(-1) + b
        up, down = F.logsigmoid(u), F.logsigmoid(-u)
        log_p = torch.logsumexp(log_w + up, dim=-1)
        log_q = torch.logsumexp(log_w + down, dim=-1)  # log(1 - p)
        log_dp = torch.logsumexp(log_w + log_a + up + down, dim=-1)
        y = (1 - eps) * (log_p - log_q) + eps * x
        log_dy = torch.logaddexp(log_dp - log_p - log_q + math.log1p(-eps), x.new_tensor(math.log(eps)))
        return y, log_dy

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x, c)
        return self._map(x, *self._units(c))

    def inverse(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        self._check(y, c)
        log_a, b, log_w = self._units(c)
        eps = self.min_derivative

        def f(v: Tensor) -> Tensor:
            return self._map(v, log_a, b, log_w)[0]

        with torch.no_grad():
            ends = (y.unsqueeze(-1) - (1 - eps) * b) / ((1 - eps) * log_a.exp() + eps)
            x = bisection(f, y, ends.amin(-1), ends.amax(-1))
        x = implicit_inverse(f, y, x, lambda v: self._map(v, log_a, b, log_w)[1].exp())
        return x, -self._map(x, log_a, b, log_w)[1]

    def extra_repr(self) -> str:
        return f"units={self.units}, scale_bound={self.scale_bound}, min_derivative={self.min_derivative}"


class Integral(Transformer):
    r"""The integral of a positive function (unconstrained monotonic neural network, UMNN,
    Wehenkel & Louppe 2019):

    .. math::
        \tau_c(x) = \beta + \int_0^x g_c(t)\,dt, \qquad \tau_c'(x) = g_c(x) > 0.

    The integrand is a tiny network with ``units`` = :math:`H` tanh units whose weights are the
    parameters :math:`c`, reading :math:`\operatorname{asinh} t` (about :math:`t` near zero,
    :math:`\pm\log 2|t|` far out):

    .. math::
        g_c(t) = \exp h(\operatorname{asinh} t), \qquad
        h(u) = \sum_{k=1}^{H} \frac{S}{H} \tanh(\tilde v_k)\, \tanh\big(s_k u + b_k + o_k\big),
        \qquad s_k = 2\,\sigma(\omega_k) \in (0, 2),

    with fixed offsets :math:`o_k` spread over :math:`[-2, 2]` and :math:`S` = ``scale_bound``.
    So :math:`|h| < S`: the integrand lies in :math:`(e^{-S}, e^{S})` for every parameter value,
    :math:`e^{-S}|x| < |\tau_c(x) - \beta| < e^{S}|x|`, and :math:`\tau_c` is a strictly
    increasing bijection of :math:`\mathbb{R}`. Parameters per coordinate: ``1 + 3 * units``,
    :math:`c = (\beta, \omega, b, \tilde v)`. Zero parameters give :math:`g = 1`,
    :math:`\beta = 0`: the identity.

    **Quadrature.** With :math:`t = \sinh u`, the integral becomes

    .. math:: \int_0^x g_c(t)\,dt = \int_0^{\operatorname{asinh} x} e^{h(u)} \cosh u\,du,

    an interval of length at most 10 for :math:`|x| \le 10^4`, on which the integrand varies on
    a scale of at least :math:`1/2` (the bounded slopes :math:`s_k`). It is computed by
    :func:`flowlab.numerics.gauss_legendre` with ``nodes`` points; ``forward`` and ``inverse``
    use the same rule, so a round trip is exact up to the bisection tolerance. The
    log-derivative returned is :math:`\log g_c(x)`, the derivative of the *exact* integral; the
    autograd derivative of the quadrature differs from it by the quadrature error, which falls
    geometrically with ``nodes``: with the default 64 it is below :math:`10^{-8}` (relative) for
    :math:`|x| \le 10^4` and any parameter value (the tests check :math:`10^{-7}`). More than
    :data:`flowlab.numerics.MAX_NODES` (1024) nodes are refused: they cannot help, and the rule
    costs :math:`O(n^3)` to compute.

    ``forward`` is explicit: one quadrature, :math:`O(H n)` per coordinate for :math:`n` =
    ``nodes``. ``inverse`` brackets the root with the bounds above, runs
    :func:`flowlab.numerics.bisection` (one quadrature per step, some 25 steps in float32 and
    50 in float64) and gets its gradients from :func:`flowlab.numerics.implicit_inverse` with
    :math:`\tau_c' = g_c`. ``hidden`` is the former name of ``units``.

    References: Wehenkel & Louppe 2019 (unconstrained monotonic neural networks).

    Example:
        >>> import torch, flowlab as fl
        >>> tau = fl.Integral(units=4)
        >>> c = torch.randn(5, 2, tau.params, dtype=torch.float64)
        >>> x = torch.randn(5, 2, dtype=torch.float64)
        >>> y, ld = tau(x, c)
        >>> torch.allclose(tau.inverse(y, c)[0], x, atol=1e-10)
        True
    """

    def __init__(self, units: int = 8, nodes: int = 64, scale_bound: float = 3.0, *, hidden: int | None = None):
        super().__init__()
        name, units = renamed("units", units, 8, "hidden", hidden)
        self.units = check_positive_int(name, units, hint="(the number of tanh units of the integrand)")
        self.nodes = check_positive_int(
            "nodes", nodes, maximum=MAX_NODES, hint="(64 already give a relative error below 1e-8)"
        )
        self.scale_bound = check_positive_float("scale_bound", scale_bound)
        self.params = 1 + 3 * self.units

    def _integrand(self, c: Tensor):
        r"""The shift :math:`\beta` and the network :math:`u \mapsto h(u) = \log g_c(\sinh u)`."""
        H = self.units
        beta = c[..., 0]
        omega, b, v = c[..., 1:].unflatten(-1, (3, H)).unbind(-2)
        slope = 2 * torch.sigmoid(omega)
        offset = b + torch.linspace(-2.0, 2.0, H, dtype=c.dtype, device=c.device) * (H > 1)
        amplitude = (self.scale_bound / H) * torch.tanh(v)

        def h(u: Tensor) -> Tensor:
            return (amplitude * torch.tanh(slope * u.unsqueeze(-1) + offset)).sum(-1)

        return beta, h

    def _map(self, x: Tensor, beta: Tensor, h) -> Tensor:
        return beta + gauss_legendre(lambda u: h(u).exp() * torch.cosh(u), 0.0, torch.asinh(x), self.nodes)

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x, c)
        beta, h = self._integrand(c)
        return self._map(x, beta, h), h(torch.asinh(x))

    def inverse(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        self._check(y, c)
        beta, h = self._integrand(c)
        S = self.scale_bound + 0.1  # a little slack for rounding
        with torch.no_grad():
            r = y - beta
            ends = torch.stack((r * math.exp(-S), r * math.exp(S)))
            x = bisection(lambda v: self._map(v, beta, h), y, ends.amin(0), ends.amax(0))
        x = implicit_inverse(lambda v: self._map(v, beta, h), y, x, lambda v: h(torch.asinh(v)).exp())
        return x, -h(torch.asinh(x))

    def extra_repr(self) -> str:
        return f"units={self.units}, nodes={self.nodes}, scale_bound={self.scale_bound}"
