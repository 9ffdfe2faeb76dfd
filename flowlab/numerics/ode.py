r"""Ordinary differential equations :math:`\dot y = f(t, y)` and the trace of a Jacobian.

* :func:`euler` and :func:`rk4` take ``steps`` fixed steps of size :math:`h = (t_1 - t_0) / n`:
  a known cost (1 and 4 evaluations of :math:`f` per step), errors :math:`O(h)` and
  :math:`O(h^4)`, and gradients by plain backpropagation through the steps;
* :func:`odeint` chooses between them and the adaptive Dormand-Prince pair ``"dopri5"`` of
  ``torchdiffeq`` (with or without the adjoint method), always with explicit scalar tolerances,
  a minimum step and a cap on the number of steps, and reports the number of evaluations;
* the traces a continuous flow integrates along, :math:`\operatorname{tr}\,\partial f/\partial y`,
  live in :mod:`flowlab.numerics.jacobians` (:func:`~flowlab.numerics.trace_exact`,
  :func:`~flowlab.numerics.trace_hutchinson`, :func:`~flowlab.numerics.probes`).

Every request for work is capped: at most :data:`MAX_STEPS` fixed steps, or adaptive steps.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import check_positive_float, check_positive_int

__all__ = ["MAX_STEPS", "ODESolution", "SOLVERS", "euler", "odeint", "rk4"]

SOLVERS = ("euler", "rk4", "dopri5")
"""The solvers of :func:`odeint`: two with fixed steps (flowlab's own) and torchdiffeq's adaptive one."""

MAX_STEPS = 10_000
"""The most steps a solve may take, fixed (``steps``) or adaptive (``max_steps``): 40,000
evaluations of the field with RK4. Beyond that, a tighter adaptive solve (``solver="dopri5"``)
is the cheaper way to accuracy, and a field that needs more is too stiff for these solvers."""


def _time(name: str, value) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def _check_state(f, y0) -> None:
    if not callable(f):
        raise ValueError(f"f must be a function f(t, y) returning dy/dt, got {type(f).__name__}.")
    if not isinstance(y0, Tensor) or not y0.is_floating_point():
        got = f"a tensor of dtype {y0.dtype}" if isinstance(y0, Tensor) else type(y0).__name__
        raise ValueError(f"y0 must be a floating point tensor, got {got}.")
    if not bool(torch.isfinite(y0).all()):
        raise ValueError("y0 contains NaN or infinite values: the initial state must be finite.")


def _steps(steps) -> int:
    return check_positive_int("steps", steps, maximum=MAX_STEPS,
                              hint="(for more accuracy use solver='dopri5' with tighter rtol and atol)")


def _eval(f: Callable, t: float, y: Tensor) -> Tensor:
    dy = f(y.new_tensor(t), y)
    if not isinstance(dy, Tensor) or dy.shape != y.shape:
        raise ValueError(f"f(t, y) must return a tensor of the shape of y, {tuple(y.shape)}; "
                         f"got {getattr(dy, 'shape', type(dy).__name__)}.")
    return dy


def _finite(y: Tensor, solver: str, steps: int, f: Callable, t0: float, y0: Tensor) -> Tensor:
    if not bool(torch.isfinite(y).all()):
        with torch.no_grad():
            start = _eval(f, t0, y0)
        if not bool(torch.isfinite(start).all()):
            raise ValueError(f"f returned NaN or infinite values at the initial state (t = {t0:g}): the field "
                             "itself is not finite there, whatever the steps.")
        raise ValueError(f"{solver} with steps={steps} produced NaN or infinite values: the solution blows up "
                         "or the steps are too large for this f; use more steps or a smaller time span.")
    return y


def euler(f: Callable[[Tensor, Tensor], Tensor], y0: Tensor, t0=0.0, t1=1.0, steps: int = 16) -> Tensor:
    r"""The explicit Euler method: ``steps`` steps :math:`y_{k+1} = y_k + h\,f(t_k, y_k)`,
    :math:`h = (t_1 - t_0)/n`, :math:`t_k = t_0 + k h`.

    First order: the error at :math:`t_1` falls like :math:`h`. One evaluation of ``f`` per step.
    ``t1 < t0`` integrates backwards in time. ``f(t, y)`` receives ``t`` as a 0-dimensional tensor
    of ``y``'s dtype and device. A residual block :math:`x + h\,g(x)` is one Euler step.

    Example:
        >>> import torch
        >>> y = euler(lambda t, y: -y, torch.ones(1, dtype=torch.float64), steps=1000)
        >>> round(float(y), 4)  # exp(-1) = 0.3679; the first-order error is visible
        0.3677
    """
    _check_state(f, y0)
    t0, t1, steps = _time("t0", t0), _time("t1", t1), _steps(steps)
    h, y = (t1 - t0) / steps, y0
    for k in range(steps):
        y = y + h * _eval(f, t0 + k * h, y)
    return _finite(y, "euler", steps, f, t0, y0)


def rk4(f: Callable[[Tensor, Tensor], Tensor], y0: Tensor, t0=0.0, t1=1.0, steps: int = 8) -> Tensor:
    r"""The classical fourth-order Runge-Kutta method with ``steps`` fixed steps of size
    :math:`h = (t_1 - t_0)/n`:

    .. math::
        k_1 = f(t_k, y_k),\quad k_2 = f(t_k + \tfrac h2, y_k + \tfrac h2 k_1),\quad
        k_3 = f(t_k + \tfrac h2, y_k + \tfrac h2 k_2),\quad k_4 = f(t_k + h, y_k + h k_3),

    .. math:: y_{k+1} = y_k + \tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4).

    Fourth order: for a smooth ``f`` the error at :math:`t_1` falls like :math:`h^4`. Exactly
    :math:`4n` evaluations of ``f``; gradients by backpropagation through the steps (exact
    gradients of the discrete map). ``t1 < t0`` integrates backwards; running the steps backwards
    inverts the forward steps only up to the same :math:`O(h^4)`.

    Example:
        >>> import torch
        >>> y = rk4(lambda t, y: -y, torch.ones(1, dtype=torch.float64), steps=8)
        >>> abs(float(y) - torch.e**-1) < 1e-5
        True
    """
    _check_state(f, y0)
    t0, t1, steps = _time("t0", t0), _time("t1", t1), _steps(steps)
    h, y = (t1 - t0) / steps, y0
    for k in range(steps):
        t = t0 + k * h
        k1 = _eval(f, t, y)
        k2 = _eval(f, t + h / 2, y + (h / 2) * k1)
        k3 = _eval(f, t + h / 2, y + (h / 2) * k2)
        k4 = _eval(f, t + h, y + h * k3)
        y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return _finite(y, "rk4", steps, f, t0, y0)


class ODESolution(NamedTuple):
    """The state at the end time and the number of evaluations of ``f`` it took (forward pass only)."""

    y: Tensor
    nfe: int


class _Counted(nn.Module):
    """``f`` with a count of its calls, and a step floor enforced through torchdiffeq's callbacks."""

    def __init__(self, f: Callable, min_step: float):
        super().__init__()
        if isinstance(f, nn.Module):
            self.f = f
        else:
            self._fn = f
        self.min_step = min_step
        self.nfe = 0
        self.floor_steps = 0
        self.start: tuple[Tensor, Tensor] | None = None  # (t0, y0), to tell a bad field from a blow-up

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.nfe += 1
        f = self.f if hasattr(self, "f") else self._fn
        dy = f(t, y)
        if not isinstance(dy, Tensor) or dy.shape != y.shape:
            raise ValueError(f"f(t, y) must return a tensor of the shape of y, {tuple(y.shape)}; "
                             f"got {getattr(dy, 'shape', type(dy).__name__)}.")
        return dy

    def _floor(self, t0: Tensor, y: Tensor | None, dt: Tensor) -> None:
        # a first step at the floor can come from the crude initial-step guess (e.g. f = 0 at the
        # start); two in a row mean the controller cannot grow the step: the problem is stiff
        self.floor_steps = self.floor_steps + 1 if abs(float(dt.detach())) <= self.min_step * (1 + 1e-6) else 0
        if self.floor_steps >= 2:
            raise self.failure(t0, y, f"reached the minimum step min_step={self.min_step:g}")

    def failure(self, t0, y: Tensor | None, what: str) -> ValueError:
        """The error for a failed solve. A state or a field value that is NaN or infinite is named
        as such (no step size can fix it); otherwise the problem is too stiff for the tolerances."""
        t = float(t0.detach()) if isinstance(t0, Tensor) else float(t0)
        if self.start is not None:
            with torch.no_grad():
                t_start, y_start = self.start
                if not bool(torch.isfinite(self.forward(t_start, y_start)).all()):
                    return ValueError(f"dopri5 {what}: f returned NaN or infinite values at the initial state "
                                      f"(t = {float(t_start):g}): the field itself is not finite there.")
        if y is not None:
            with torch.no_grad():
                if not bool(torch.isfinite(y).all()):
                    return ValueError(f"dopri5 {what} at t={t:.4g}: the state became NaN or infinite there, "
                                      "the solution blows up.")
                dy = self.forward(torch.as_tensor(t, dtype=y.dtype, device=y.device), y)
                if not bool(torch.isfinite(dy).all()):
                    return ValueError(f"dopri5 {what} at t={t:.4g}: f returned NaN or infinite values at a finite "
                                      "state (the field itself is not finite there), which no step size can fix.")
        return ValueError(
            f"dopri5 {what} at t={t:.4g} after {self.nfe} evaluations: the ODE is too stiff for these tolerances. "
            "Loosen rtol/atol, regularise the vector field (e.g. its kinetic energy), or use solver='rk4' with "
            "more steps."
        )

    # torchdiffeq calls these before each adaptive step (forward and adjoint solves); the adjoint's
    # state is not a state of f, so it is not evaluated in the message
    def callback_step(self, t0, y0, dt):
        self._floor(t0, y0, dt)

    def callback_step_adjoint(self, t0, y0, dt):
        self._floor(t0, None, dt)


def odeint(
    f: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t0=0.0,
    t1=1.0,
    *,
    solver: str = "rk4",
    steps: int = 8,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    min_step: float = 1e-4,
    max_steps: int = 10_000,
    adjoint: bool = False,
) -> ODESolution:
    r"""Solve :math:`\dot y = f(t, y)`, :math:`y(t_0) = y_0`, and return :math:`y(t_1)` with the
    number of evaluations of ``f``.

    * ``solver="euler"`` or ``"rk4"``: :func:`euler` or :func:`rk4` with ``steps`` fixed steps
      (``steps`` or ``4 * steps`` evaluations, whatever ``f`` is); tolerances are not used.
    * ``solver="dopri5"``: the adaptive Dormand-Prince 5(4) pair of ``torchdiffeq`` (Chen et al.,
      2018). A step is accepted when the embedded error estimate satisfies
      :math:`\lVert e\rVert_{\text{rms}} \le 1` with :math:`e_i = \text{err}_i / (\text{atol} +
      \text{rtol}\,|y_i|)`, one norm for the whole batch. The scalar tolerances are always passed
      explicitly (torchdiffeq's defaults, rtol 1e-7 and atol 1e-9, make a CPU CNF crawl). When the
      step the controller wants falls to ``min_step`` (a stiff or exploding ``f``; torchdiffeq
      would otherwise accept it silently or fail with "underflow in dt"), or after ``max_steps``
      steps, this raises a ``ValueError`` instead. ``adjoint=True`` computes gradients by solving
      the adjoint ODE backwards (memory independent of the number of steps); it needs ``f`` to be
      an ``nn.Module`` holding the parameters.

    ``nfe`` counts the evaluations of the forward solve only (not those of a backward pass).

    Example:
        >>> import torch
        >>> y0 = torch.ones(1, dtype=torch.float64)
        >>> odeint(lambda t, y: -y, y0, solver="rk4", steps=8).nfe
        32
        >>> sol = odeint(lambda t, y: -y, y0, solver="dopri5", rtol=1e-6, atol=1e-8)
        >>> abs(float(sol.y) - torch.e**-1) < 1e-6, sol.nfe > 6
        (True, True)

    References:
        Dormand & Prince (1980), A family of embedded Runge-Kutta formulae; Chen et al. (2018),
        Neural ordinary differential equations.
    """
    _check_state(f, y0)
    t0, t1 = _time("t0", t0), _time("t1", t1)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    steps = _steps(steps)
    rtol, atol = check_positive_float("rtol", rtol), check_positive_float("atol", atol)
    min_step = check_positive_float("min_step", min_step)
    max_steps = check_positive_int("max_steps", max_steps, maximum=MAX_STEPS,
                                   hint="(a field that needs more adaptive steps is too stiff: loosen rtol and atol)")
    if not isinstance(adjoint, bool):
        raise ValueError(f"adjoint must be True or False, got {adjoint!r}.")
    if solver != "dopri5":
        if adjoint:
            raise ValueError(f"adjoint=True needs solver='dopri5'; with solver={solver!r} gradients "
                             "come from backpropagation through the fixed steps.")
        step = rk4 if solver == "rk4" else euler
        return ODESolution(step(f, y0, t0, t1, steps), (4 if solver == "rk4" else 1) * steps)
    if adjoint and not isinstance(f, nn.Module):
        raise TypeError(f"adjoint=True needs f to be an nn.Module (its parameters get the gradients), "
                        f"got {type(f).__name__}.")
    if t0 == t1 or y0.numel() == 0:
        return ODESolution(y0, 0)
    if min_step > abs(t1 - t0) / 10:
        raise ValueError(f"min_step={min_step:g} must be at most a tenth of the time span |t1 - t0| = {abs(t1 - t0):g}: "
                         "it is the floor below which a step means the ODE is too stiff; pass a smaller min_step.")

    import torchdiffeq  # imported here: only the adaptive solver needs it

    counted = _Counted(f, min_step)
    t = torch.tensor([t0, t1], dtype=y0.dtype, device=y0.device)
    counted.start = (t[0], y0.detach())
    options = {"min_step": min_step, "max_num_steps": max_steps}
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kwargs = {"adjoint_params": tuple(counted.parameters())} if adjoint else {}
    try:
        y = solve(counted, y0, t, rtol=rtol, atol=atol, method="dopri5", options=options, **kwargs)[-1]
    except AssertionError as e:  # torchdiffeq signals its failures with assert
        if "max_num_steps" in str(e):
            raise ValueError(f"dopri5 took max_steps={max_steps} steps without reaching t1={t1:g} "
                             f"({counted.nfe} evaluations): loosen rtol/atol, or use solver='rk4'.") from None
        raise counted.failure(t0, None, f"failed ({e})") from None
    return ODESolution(y, counted.nfe)
