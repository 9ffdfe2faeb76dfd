r"""Continuous normalizing flows: a transform defined by an ODE.

A time-dependent vector field :math:`g_\theta(t, z)` moves every point along
:math:`\dot z(t) = g_\theta(t, z(t))`; data :math:`x = z(0)` is carried to the latent
:math:`z(1)`. The log-determinant obeys the instantaneous change of variables (Chen et al., 2018),

.. math::
    \frac{d}{dt} \log\left|\det \frac{\partial z(t)}{\partial x}\right|
    = \operatorname{tr} \frac{\partial g_\theta}{\partial z}(t, z(t)),
    \qquad\text{so}\qquad
    \frac{d \log p_t(z(t))}{dt} = -\operatorname{tr} \frac{\partial g_\theta}{\partial z},

and is integrated along with the state. Costs per evaluation of the augmented field: one pass of
the network plus :math:`D` tangent directions for the exact trace (or for the Jacobian of the
discrete map, plus one :math:`O(D^3)` log-determinant at the end), or one direction for
Hutchinson's estimate. Both directions cost the same: the inverse integrates the same ODE
backwards; neither is explicit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ._checks import check_batch, check_positive_float, check_positive_int
from .core import Transform
from .numerics.ode import SOLVERS, hutchinson_noise, odeint, trace_exact, trace_hutchinson
from .time_mlp import TimeMLP

__all__ = ["CNF", "CNFSolution"]

TRACES = ("exact", "hutchinson", "discrete")


class CNFSolution(NamedTuple):
    """The end point, the integrated trace (the ``ladj`` of the map from start to end), the number of
    evaluations of the vector field, and :math:`\\int \\lVert g\\rVert^2 dt` (``None`` unless asked for)."""

    value: Tensor
    ladj: Tensor
    nfe: int
    kinetic: Tensor | None


class _Augmented(nn.Module):
    r"""The field on the augmented state ``[z, ladj or V, (kinetic)]``, with the probe fixed for one solve.

    For ``trace="discrete"`` the second block is the Jacobian :math:`V = \partial z(t)/\partial x`
    (flattened), driven by the variational equation :math:`\dot V = J V`."""

    def __init__(self, field: nn.Module, trace: str, noise: Tensor | None, kinetic: bool, features: int):
        super().__init__()
        self.field, self.trace, self.noise, self.kinetic, self.d = field, trace, noise, kinetic, features

    def _directions(self, s: Tensor) -> Tensor:
        n, d = s.shape[0], self.d
        if self.trace == "hutchinson":
            return self.noise.unsqueeze(-1)
        if self.trace == "discrete":
            return s[:, d : d + d * d].reshape(n, d, d)
        return torch.eye(d, dtype=s.dtype, device=s.device).expand(n, d, d)

    def forward(self, t: Tensor, s: Tensor) -> Tensor:
        d, n = self.d, s.shape[0]
        z = s[:, :d]
        if hasattr(self.field, "jvp"):  # forward-mode tangents: no second backward pass
            dz, jv = self.field.jvp(t, z, self._directions(s))
            if self.trace == "hutchinson":
                middle = (self.noise * jv[..., 0]).sum(1, keepdim=True)
            elif self.trace == "discrete":
                middle = jv.reshape(n, d * d)
            else:
                middle = jv.diagonal(dim1=1, dim2=2).sum(1, keepdim=True)
        else:  # any field: vector-Jacobian products by autograd
            create = torch.is_grad_enabled()
            with torch.enable_grad():
                zz = z if z.requires_grad else z.detach().requires_grad_(True)
                dz = self.field(t, zz)
                if self.trace == "hutchinson":
                    middle = trace_hutchinson(dz, zz, self.noise, create_graph=create).unsqueeze(1)
                elif self.trace == "exact":
                    middle = trace_exact(dz, zz, create_graph=create).unsqueeze(1)
                else:
                    rows = [torch.autograd.grad(dz[:, i].sum(), zz, create_graph=create, retain_graph=True)[0]
                            for i in range(d)]
                    middle = (torch.stack(rows, dim=1) @ self._directions(s)).reshape(n, d * d)
            if not create:
                dz, middle = dz.detach(), middle.detach()
        parts = [dz, middle]
        if self.kinetic:
            parts.append(dz.pow(2).sum(1, keepdim=True))
        return torch.cat(parts, dim=1)


class CNF(Transform):
    r"""A continuous normalizing flow (Chen et al., 2018; FFJORD, Grathwohl et al., 2019).

    ``forward`` (data to latent) solves :math:`\dot z = g_\theta(t, z)` from :math:`t = 0`,
    :math:`z(0) = x`, to :math:`t = 1` together with

    .. math:: \text{ladj}(x) = \int_0^1 \operatorname{tr} \frac{\partial g_\theta}{\partial z}(t, z(t))\,dt
              \;=\; \log\left|\det \frac{\partial z(1)}{\partial x}\right|,

    and ``inverse`` integrates the same system from :math:`t = 1` back to :math:`0`. Neither
    direction is explicit: both are numerical solves of equal cost, ``4 * steps`` evaluations
    of the field with ``solver="rk4"``, ``steps`` with ``"euler"``, and as many as the
    tolerances need with ``"dopri5"`` (``torchdiffeq``; ``adjoint=True`` for the adjoint method).
    With fixed steps, the transform is the *discrete* map of the solver: it inverts only up to
    :math:`O(h^4)` (RK4, :math:`h = 1/\text{steps}`), and its integrated trace equals the
    log-determinant of that discrete map only up to the same order.

    * ``trace="exact"``: :math:`\operatorname{tr} J` from :math:`D` directions (the right choice
      in low dimension: 2 in 2-D);
    * ``trace="hutchinson"``: :math:`\varepsilon^\top J \varepsilon` from one direction, with a probe
      ``noise="rademacher"`` or ``"gaussian"`` drawn once per solve from the ``generator`` given
      to ``forward``/``inverse``/``solve`` (torch's global one when ``None``): an unbiased
      estimate of the ladj.
    * ``trace="discrete"`` (fixed steps only): no trace at all, but the Jacobian
      :math:`V = \partial z/\partial x` carried along by the variational equation
      :math:`\dot V = J V` (:math:`D` directions, as for the exact trace) and
      :math:`\text{ladj} = \log|\det V(1)|` (:math:`O(D^3)`). A Runge-Kutta step of the augmented
      system is the derivative of the step itself, so this is the exact log-determinant of the
      discrete map, whatever ``steps`` is: a trained model cannot gain likelihood from the
      solver's error (with the integrated trace and few steps it can, and does).

    The default field is :class:`flowlab.time_mlp.TimeMLP` (``hidden``, ``freqs``,
    ``activation``), whose last layer starts at zero: the flow starts as the identity. Any
    ``field`` module ``(t, z) -> dz`` may be given instead (traces then by autograd).
    ``rtol``, ``atol``, ``min_step`` and ``max_steps`` go to the adaptive solver
    (:func:`flowlab.numerics.odeint`).

    References: Chen et al. (2018), Neural ordinary differential equations; Grathwohl et al.
    (2019), FFJORD: free-form continuous dynamics for scalable reversible generative models.

    Example:
        >>> import torch, flowlab as fl
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> cnf = fl.CNF(2, hidden=(16, 16), steps=8)
        >>> with torch.no_grad():
        ...     for p in cnf.parameters():
        ...         _ = p.add_(0.3 * torch.randn_like(p))
        >>> x = torch.randn(5, 2, dtype=torch.float64)
        >>> cnf = cnf.double()
        >>> z, ladj = cnf(x)
        >>> x_back, ladj_back = cnf.inverse(z)
        >>> bool((x_back - x).abs().max() < 1e-4), bool((ladj + ladj_back).abs().max() < 1e-4)
        (True, True)
        >>> cnf.solve(x).nfe  # 8 RK4 steps
        32
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        steps: int = 8,
        trace: str = "exact",
        solver: str = "rk4",
        *,
        noise: str = "rademacher",
        rtol: float = 1e-3,
        atol: float = 1e-3,
        min_step: float = 1e-4,
        max_steps: int = 10_000,
        adjoint: bool = False,
        freqs: int = 3,
        activation: str = "tanh",
        field: nn.Module | None = None,
    ):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.steps = check_positive_int("steps", steps)
        if trace not in TRACES:
            raise ValueError(f"trace must be one of {TRACES}, got {trace!r}.")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
        if noise not in ("rademacher", "gaussian"):
            raise ValueError(f"noise must be 'rademacher' or 'gaussian', got {noise!r}.")
        if trace == "discrete" and solver == "dopri5":
            raise ValueError("trace='discrete' is the log-det of a fixed-step map: use solver='rk4' or 'euler', "
                             "or trace='exact' with solver='dopri5'.")
        if adjoint and solver != "dopri5":
            raise ValueError(f"adjoint=True needs solver='dopri5', got solver={solver!r}.")
        self.trace, self.solver, self.noise, self.adjoint = trace, solver, noise, bool(adjoint)
        self.rtol, self.atol = check_positive_float("rtol", rtol), check_positive_float("atol", atol)
        self.min_step = check_positive_float("min_step", min_step)
        self.max_steps = check_positive_int("max_steps", max_steps)
        if field is not None and not isinstance(field, nn.Module):
            raise TypeError(f"field must be an nn.Module mapping (t, z) to dz/dt, got {type(field).__name__}.")
        self.field = field if field is not None else TimeMLP(features, hidden, freqs=freqs, activation=activation)

    def solve(
        self,
        x: Tensor,
        start: float = 0.0,
        end: float = 1.0,
        generator: torch.Generator | None = None,
        kinetic: bool = False,
    ) -> CNFSolution:
        r"""Integrate from time ``start`` to ``end`` (either order, within or beyond [0, 1]).

        Returns a :class:`CNFSolution`: the points at ``end``, the integrated trace (the ladj of
        the map from ``start`` to ``end``), the number of field evaluations and, with
        ``kinetic=True``, :math:`\int_{\text{start}}^{\text{end}} \lVert g(t, z(t))\rVert^2 dt`
        per point (the regulariser of Finlay et al., 2020). Fixed-step solvers take
        :math:`\lceil \text{steps} \cdot |\text{end} - \text{start}| \rceil` steps, so the step
        size is the same as for the whole interval.
        """
        check_batch("x", x, self.features)
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating point tensor, got {x.dtype}.")
        span = abs(float(end) - float(start))
        steps = max(1, math.ceil(self.steps * span - 1e-9))
        noise = hutchinson_noise(x, self.noise, generator) if self.trace == "hutchinson" else None
        d = self.features
        dynamics = _Augmented(self.field, self.trace, noise, kinetic, d)
        if self.trace == "discrete":  # V(start) = I
            middle = torch.eye(d, dtype=x.dtype, device=x.device).reshape(1, d * d).expand(len(x), d * d)
        else:
            middle = x.new_zeros(len(x), 1)
        s0 = torch.cat([x, middle] + ([x.new_zeros(len(x), 1)] if kinetic else []), dim=1)
        s, nfe = odeint(dynamics, s0, start, end, solver=self.solver, steps=steps, rtol=self.rtol, atol=self.atol,
                        min_step=self.min_step, max_steps=self.max_steps, adjoint=self.adjoint)
        if self.trace == "discrete":
            ladj = torch.linalg.slogdet(s[:, d : d + d * d].reshape(len(x), d, d)).logabsdet
        else:
            ladj = s[:, d]
        return CNFSolution(s[:, :d], ladj, nfe, s[:, -1] if kinetic else None)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        sol = self.solve(x, 0.0, 1.0, generator=generator)
        return sol.value, sol.ladj

    def inverse(self, z: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        sol = self.solve(z, 1.0, 0.0, generator=generator)
        return sol.value, sol.ladj

    def extra_repr(self) -> str:
        extra = f", rtol={self.rtol:g}, atol={self.atol:g}" if self.solver == "dopri5" else f", steps={self.steps}"
        return f"features={self.features}, solver={self.solver!r}, trace={self.trace!r}{extra}"
