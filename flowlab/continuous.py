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

**When a fixed-step map is a diffeomorphism.** The ODE's own flow never folds: its Jacobian
determinant is :math:`\exp\int \operatorname{tr} J\,dt > 0`. A fixed-step solve is a different map,
the composition of its steps, and a step can fold the plane when it is large for the field. With
:math:`L` a bound on :math:`\lVert \partial g/\partial z\rVert_2` and :math:`a = hL`, an Euler step
:math:`z + h g` moves points by a map of Lipschitz constant at most :math:`a`, and an RK4 step by one
of at most :math:`a + a^2/2 + a^3/6 + a^4/24`. When that is below 1 the step is the identity plus a
contraction: injective, onto, with an invertible Jacobian (the residual-block argument), so a
diffeomorphism, and so is the composition. That gives the sufficient rule
:math:`hL < 1` (Euler) or :math:`hL < 0.6961` (RK4): :meth:`CNF.safe_steps` computes the steps it
asks for from the field's weights. Where the rule does not hold, the map may still be one; check
it where it matters with :meth:`CNF.signed_det`: a determinant :math:`\le 0` at a point means
the map folds there, the density formula (which uses :math:`\lvert\det\rvert`) counts some points
twice, and the "density" integrates to more than 1.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ._checks import check_batch, check_positive_float, check_positive_int
from .core import Transform
from .numerics.jacobians import PROBES, jacobian_rows, probes, trace_exact, trace_hutchinson
from .numerics.ode import MAX_STEPS, SOLVERS, odeint
from .time_mlp import TimeMLP

__all__ = ["CNF", "CNFSolution", "MAX_SPAN"]

TRACES = ("exact", "hutchinson", "discrete")

MAX_SPAN = 1000.0
"""The longest time span :meth:`CNF.solve` integrates over (the field is trained on [0, 1]; its
time embedding is periodic, so far spans only repeat it)."""

RK4_SAFE = 0.6961
"""The largest :math:`a = hL` with :math:`a + a^2/2 + a^3/6 + a^4/24 < 1`: an RK4 step of size
:math:`h` of a field with Lipschitz constant :math:`L` is then a diffeomorphism."""


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
                    middle = (jacobian_rows(dz, zz, create) @ self._directions(s)).reshape(n, d * d)
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
    of the field with ``solver="rk4"``, ``steps`` with ``"euler"`` (at most
    :data:`~flowlab.numerics.MAX_STEPS`), and as many as the tolerances need with ``"dopri5"``
    (``torchdiffeq``; ``adjoint=True`` for the adjoint method). With fixed steps, the transform
    is the *discrete* map of the solver: it inverts only up to :math:`O(h^4)` (RK4,
    :math:`h = 1/\text{steps}`), and its integrated trace equals the log-determinant of that
    discrete map only up to the same order.

    * ``trace="exact"``: :math:`\operatorname{tr} J` from :math:`D` directions (the right choice
      in low dimension: 2 in 2-D);
    * ``trace="hutchinson"``: :math:`\varepsilon^\top J \varepsilon` from one direction, with a probe
      ``probe="rademacher"`` or ``"gaussian"`` (``noise=`` is another name for it) drawn once per
      solve from the ``generator`` given to ``forward``/``inverse``/``solve`` (torch's global one
      when ``None``): an unbiased estimate of the ladj.
    * ``trace="discrete"`` (fixed steps only): no trace at all, but the Jacobian
      :math:`V = \partial z/\partial x` carried along by the variational equation
      :math:`\dot V = J V` (:math:`D` directions, as for the exact trace) and
      :math:`\text{ladj} = \log|\det V(1)|` (:math:`O(D^3)`). A Runge-Kutta step of the augmented
      system is the derivative of the step itself, so this is the exact log-|determinant| of the
      discrete map, whatever ``steps`` is: a trained model cannot gain likelihood from the
      solver's error (with the integrated trace and few steps it can, and does). The density is
      then exact as long as the discrete map is a diffeomorphism, which it need not be when the
      steps are large for the field: see :meth:`signed_det` and :meth:`safe_steps` (and the
      module docstring for the rule).

    The default field is :class:`flowlab.time_mlp.TimeMLP` (``hidden``, an int meaning two
    hidden layers of that width, ``freqs``, ``activation``), whose last layer starts at zero: the
    flow starts as the identity. Any ``field`` module ``(t, z) -> dz`` may be given instead
    (traces then by autograd). ``rtol``, ``atol``, ``min_step`` and ``max_steps`` go to the
    adaptive solver (:func:`flowlab.numerics.odeint`).

    References: Chen et al. (2018), Neural ordinary differential equations; Grathwohl et al.
    (2019), FFJORD: free-form continuous dynamics for scalable reversible generative models.

    Example:
        >>> import torch, flowlab as fl
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> cnf = fl.CNF(2, hidden=16, steps=8)
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
        >>> bool((cnf.signed_det(x) > 0).all())  # no fold at these points
        True
    """

    def __init__(
        self,
        features: int,
        hidden=(64, 64),
        steps: int = 8,
        trace: str = "exact",
        solver: str = "rk4",
        *,
        probe: str = "rademacher",
        noise: str | None = None,
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
        self.steps = steps
        if trace not in TRACES:
            raise ValueError(f"trace must be one of {TRACES}, got {trace!r}.")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
        name, probe = ("noise", noise) if noise is not None else ("probe", probe)
        if probe not in PROBES:
            raise ValueError(f"{name} must be 'rademacher' or 'gaussian', got {probe!r}.")
        if trace == "discrete" and solver == "dopri5":
            raise ValueError("trace='discrete' is the log-det of a fixed-step map: use solver='rk4' or 'euler', "
                             "or trace='exact' with solver='dopri5'.")
        if not isinstance(adjoint, bool):
            raise ValueError(f"adjoint must be True or False, got {adjoint!r}.")
        if adjoint and solver != "dopri5":
            raise ValueError(f"adjoint=True needs solver='dopri5', got solver={solver!r}.")
        self.trace, self.solver, self.probe, self.adjoint = trace, solver, probe, adjoint
        self.rtol, self.atol = check_positive_float("rtol", rtol), check_positive_float("atol", atol)
        self.min_step = check_positive_float("min_step", min_step)
        self.max_steps = check_positive_int("max_steps", max_steps, maximum=MAX_STEPS,
                                            hint="(a field that needs more adaptive steps is too stiff)")
        if field is not None and not isinstance(field, nn.Module):
            raise TypeError(f"field must be an nn.Module mapping (t, z) to dz/dt, got {type(field).__name__}.")
        self.field = field if field is not None else TimeMLP(features, hidden, freqs=freqs, activation=activation)

    @property
    def steps(self) -> int:
        """The number of fixed steps per unit of time (RK4 or Euler), 1 to :data:`~flowlab.numerics.MAX_STEPS`."""
        return self._steps

    @steps.setter
    def steps(self, value) -> None:
        self._steps = check_positive_int("steps", value, maximum=MAX_STEPS,
                                         hint="(for more accuracy use solver='dopri5' with tighter rtol and atol)")

    def _times(self, x: Tensor, start, end) -> tuple[float, float, int]:
        check_batch("x", x, self.features)
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating point tensor, got {x.dtype}: pass x.float() or x.double().")
        times = []
        for name, value in (("start", start), ("end", end)):
            if isinstance(value, Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number (a time), got {value!r}.")
            times.append(float(value))
        span = abs(times[1] - times[0])
        if span > MAX_SPAN:
            raise ValueError(f"the time span |end - start| = {span:g} is longer than {MAX_SPAN:g}: the field is "
                             "trained on [0, 1]; pass start and end within a few units of it.")
        steps = max(1, math.ceil(self.steps * span - 1e-9))
        if self.solver != "dopri5" and steps > MAX_STEPS:
            raise ValueError(f"steps * |end - start| = {self.steps} * {span:g} asks for {steps} fixed steps, more than "
                             f"{MAX_STEPS}: shorten the span or lower steps.")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or infinite values: a CNF moves finite points only.")
        return times[0], times[1], steps

    def _integrate(self, x: Tensor, start: float, end: float, steps: int, trace: str,
                   generator: torch.Generator | None, kinetic: bool) -> tuple[Tensor, int]:
        noise = probes(x, self.probe, generator) if trace == "hutchinson" else None
        d = self.features
        dynamics = _Augmented(self.field, trace, noise, kinetic, d)
        if trace == "discrete":  # V(start) = I
            middle = torch.eye(d, dtype=x.dtype, device=x.device).reshape(1, d * d).expand(len(x), d * d)
        else:
            middle = x.new_zeros(len(x), 1)
        s0 = torch.cat([x, middle] + ([x.new_zeros(len(x), 1)] if kinetic else []), dim=1)
        s, nfe = odeint(dynamics, s0, start, end, solver=self.solver, steps=steps, rtol=self.rtol, atol=self.atol,
                        min_step=self.min_step, max_steps=self.max_steps, adjoint=self.adjoint)
        return s, nfe

    def solve(
        self,
        x: Tensor,
        start: float = 0.0,
        end: float = 1.0,
        generator: torch.Generator | None = None,
        kinetic: bool = False,
    ) -> CNFSolution:
        r"""Integrate from time ``start`` to ``end`` (either order, within or beyond [0, 1], a span
        of at most :data:`MAX_SPAN`).

        Returns a :class:`CNFSolution`: the points at ``end``, the integrated trace (the ladj of
        the map from ``start`` to ``end``), the number of field evaluations and, with
        ``kinetic=True``, :math:`\int_{\text{start}}^{\text{end}} \lVert g(t, z(t))\rVert^2 dt`
        per point (the regulariser of Finlay et al., 2020). Fixed-step solvers take
        :math:`\lceil \text{steps} \cdot |\text{end} - \text{start}| \rceil` steps, so the step
        size is the same as for the whole interval.
        """
        start, end, steps = self._times(x, start, end)
        if not isinstance(kinetic, bool):
            raise ValueError(f"kinetic must be True or False, got {kinetic!r}.")
        s, nfe = self._integrate(x, start, end, steps, self.trace, generator, kinetic)
        d = self.features
        if self.trace == "discrete":
            ladj = torch.linalg.slogdet(s[:, d : d + d * d].reshape(len(x), d, d)).logabsdet
        else:
            ladj = s[:, d]
        return CNFSolution(s[:, :d], ladj, nfe, s[:, -1] if kinetic else None)

    def signed_det(self, x: Tensor, start: float = 0.0, end: float = 1.0) -> Tensor:
        r"""The signed determinant :math:`\det \partial z(\text{end}) / \partial x` of the map this
        CNF computes with its fixed steps, at each row of ``x`` (``(batch,)``).

        It carries the Jacobian :math:`V` along the solve by the variational equation, as
        ``trace="discrete"`` does, whatever this CNF's ``trace`` is: a Runge-Kutta step of the
        augmented system is the derivative of the step itself, so :math:`\det V` is exactly the
        determinant of the discrete map, sign included. Cost: one solve with :math:`D + 1`
        directions per field evaluation (three in 2-D; forward mode for the default field), without
        gradients, so a grid of a few thousand points takes a fraction of a second: far cheaper
        than an autograd Jacobian per point (:func:`flowlab.testing.signed_det`, which it matches).

        **What it means.** The ODE's own flow always has :math:`\det > 0`. A value :math:`\le 0`
        at some point means the fixed steps fold the plane there: the map is not injective, the
        density it reports (with :math:`\lvert\det\rvert`) counts points twice and integrates to
        more than 1. Use more steps (:meth:`safe_steps` gives a number that rules folds out).
        ``count = int((cnf.signed_det(grid) <= 0).sum())`` is the number of folded points of a
        grid. With ``solver="dopri5"`` there is no fixed-step map to check: it raises ``ValueError``.

        Example:
            >>> import torch, flowlab as fl
            >>> cnf = fl.CNF(2, hidden=8, steps=4).double()
            >>> cnf.signed_det(torch.zeros(3, 2, dtype=torch.float64))  # the identity at the start
            tensor([1., 1., 1.], dtype=torch.float64)
        """
        if self.solver == "dopri5":
            raise ValueError("signed_det checks a fixed-step map (solver='rk4' or 'euler'); with dopri5 the solve "
                             "follows the ODE's flow to the tolerance, and that flow never folds (det > 0). Use "
                             "flowlab.testing.folds(cnf, x) to check the solver's actual map.")
        start, end, steps = self._times(x, start, end)
        d = self.features
        with torch.no_grad():
            s, _ = self._integrate(x, start, end, steps, "discrete", None, False)
            return torch.linalg.det(s[:, d : d + d * d].reshape(len(x), d, d))

    def safe_steps(self) -> int:
        r"""The fewest fixed steps per unit time for which every step is certainly a diffeomorphism:
        :math:`\lceil L / a^* \rceil` with :math:`L` the field's Lipschitz bound
        (:meth:`flowlab.time_mlp.TimeMLP.lipschitz_bound`, the product of its weights' spectral
        norms) and :math:`a^*` = 0.6961 for RK4, 1 for Euler (module docstring). A sufficient
        rule, often pessimistic: fewer steps may well not fold; :meth:`signed_det` checks the
        points that matter. Needs the default field (or one with a ``lipschitz_bound`` method).

        Example:
            >>> import flowlab as fl
            >>> fl.CNF(2, hidden=8).safe_steps()  # the zero field of the start: any step is safe
            1
        """
        bound = getattr(self.field, "lipschitz_bound", None)
        if not callable(bound):
            raise ValueError(f"safe_steps needs a field with a lipschitz_bound() method, such as TimeMLP; "
                             f"this field is a {type(self.field).__name__}. Check folds with signed_det instead.")
        if self.solver == "dopri5":
            raise ValueError("safe_steps is a rule for fixed steps (solver='rk4' or 'euler').")
        a_star = RK4_SAFE if self.solver == "rk4" else 1.0
        return max(1, math.ceil(float(bound()) / a_star))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        sol = self.solve(x, 0.0, 1.0, generator=generator)
        return sol.value, sol.ladj

    def inverse(self, z: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        sol = self.solve(z, 1.0, 0.0, generator=generator)
        return sol.value, sol.ladj

    def extra_repr(self) -> str:
        extra = f", rtol={self.rtol:g}, atol={self.atol:g}" if self.solver == "dopri5" else f", steps={self.steps}"
        return f"features={self.features}, solver={self.solver!r}, trace={self.trace!r}{extra}"
