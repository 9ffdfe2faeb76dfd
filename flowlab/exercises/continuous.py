r"""Checkers for the exercises of the chapter on continuous-time flows.

Each checker compares the student's answer with one computed here independently, prints what it
found and returns ``True`` when the answer is right. It never raises. When an answer is wrong it
is compared with the typical mistakes (the sign of the trace, the determinant instead of the
trace, a first-order step, the wrong weights or times of the Runge-Kutta stages...) and the
message names the one it matches.

Example:
    >>> from flowlab.exercises import continuous as ex
    >>> ex.check_linear_ladj(-2.0)
    Correct: ladj = T tr(A) = 2 x (-1.0) = -2.0; indeed det exp(TA) = exp(T tr A).
    True
    >>> ex.check_linear_ladj(2.0)
    Not yet: 2 is -T tr(A), the change of the log-density d log p / dt integrated. The ladj of the data-to-latent map is +T tr(A).
    False
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ._feedback import close, number

__all__ = ["A", "T", "check_linear_ladj", "check_order", "check_rk4_step"]

A = torch.tensor([[0.5, 2.0], [-1.0, -1.5]], dtype=torch.float64)
"""The matrix of the linear field :math:`g(t, z) = A z` of the first exercise."""
T = 2.0
"""The time span of the first exercise."""


def check_linear_ladj(ladj) -> bool:
    r"""The ladj of the map :math:`z(0) \mapsto z(T)` for :math:`\dot z = A z` (:data:`A`, :data:`T`)."""
    value = number("ladj", ladj)
    if value is None:
        return False
    tr, det = float(A.trace()), float(torch.linalg.det(A))
    right = T * tr
    if close(value, right, 1e-6):
        print(f"Correct: ladj = T tr(A) = {T:g} x ({tr}) = {right}; indeed det exp(TA) = exp(T tr A).")
        return True
    mistakes = [
        (-right, "is -T tr(A), the change of the log-density d log p / dt integrated. The ladj of the "
                 "data-to-latent map is +T tr(A)."),
        (tr, "is tr(A) alone: the trace is integrated over the time span, so multiply by T."),
        (-tr, "is -tr(A): the sign is that of d log p / dt, and the time span T is missing."),
        (det, "is det(A): the instantaneous change of variables uses the trace of the Jacobian of the field, "
              "not its determinant."),
        (math.log(abs(det)), "is log|det A|, the ladj of the linear map z -> A z, not of the flow of dz/dt = A z."),
        (T * math.log(abs(det)), "is T log|det A|: the field's Jacobian enters through its trace."),
        (T * det, "is T det(A): the trace, not the determinant, of the field's Jacobian."),
        (float(A.sum()) * T, "is T times the sum of all entries of A: the trace sums the diagonal only."),
    ]
    for wrong, why in mistakes:
        if close(value, wrong, 1e-6):
            print(f"Not yet: {value:g} {why}")
            return False
    print(f"Not yet: {value:g} is not it. d/dt log|det dz(t)/dz(0)| = tr(A) at every time.")
    return False


def check_order(factor) -> bool:
    r"""The factor by which the error of RK4 at the end time falls when the number of steps doubles."""
    value = number("factor", factor)
    if value is None:
        return False
    if close(value, 16.0, 1e-9):
        print("Correct: the global error of RK4 is O(h^4), so halving h divides it by 2^4 = 16.")
        return True
    mistakes = {
        2.0: "is the factor of a first-order method such as Euler (error O(h)); RK4 is of order 4.",
        4.0: "is the factor of a second-order method (midpoint, Heun); RK4 is of order 4.",
        8.0: "would be order 3; RK4 is of order 4.",
        32.0: "is the factor of the local error of one step, O(h^5); over a fixed time span 1/h steps add up to O(h^4).",
        0.0625: "is 1/16: that is how the error changes, but the question asks for the factor by which it falls.",
    }
    for wrong, why in mistakes.items():
        if close(value, wrong, 1e-9):
            print(f"Not yet: {value:g} {why}")
            return False
    print(f"Not yet: {value:g}. Write the error as C h^p for RK4's order p and halve h.")
    return False


# --------------------------------------------------------------------------------------------
# exercise 3: one Runge-Kutta step
# --------------------------------------------------------------------------------------------

_FORBIDDEN = Path(__file__).resolve().parents[1] / "numerics" / "ode.py"


class _Forbidden(Exception):
    pass


def _field(calls: list[int]) -> Callable[[Tensor, Tensor], Tensor]:
    # a non-autonomous, nonlinear field: wrong stage times or weights change the result
    def f(t, y):
        for frame in inspect.stack(context=0)[1:6]:
            if Path(frame.filename).resolve() == _FORBIDDEN:
                raise _Forbidden
        calls[0] += 1
        t = torch.as_tensor(t, dtype=y.dtype)
        return torch.stack([y[..., 1] * torch.cos(t), -torch.sin(y[..., 0]) + t * y[..., 1]], dim=-1)

    return f


def _reference(f, t, y, h, kind):
    """One step of the right method (``"rk4"``) or of a typical mistake."""
    if kind == "euler":
        return y + h * f(t, y)
    if kind == "midpoint":
        return y + h * f(t + h / 2, y + h / 2 * f(t, y))
    mid, end = (t, t) if kind == "same times" else (t + h / 2, t + h)
    k1 = f(t, y)
    k2 = f(mid, y + h / 2 * k1)
    k3 = f(mid, y + h / 2 * k2)
    k4 = f(end, y + h * k3)
    if kind == "equal weights":
        return y + h / 4 * (k1 + k2 + k3 + k4)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def check_rk4_step(rk4_step) -> bool:
    r"""Check ``rk4_step(f, t, y, h) -> y_next``: one classical Runge-Kutta step, written by hand
    (``flowlab.numerics.rk4`` and ``odeint`` are not allowed), for ``y`` of shape ``(batch, 2)``."""
    if rk4_step is None or not callable(rk4_step):
        print("No answer yet: define rk4_step(f, t, y, h) and pass the function itself.")
        return False
    y = torch.tensor([[0.3, -0.8], [1.2, 0.5], [-2.0, 0.1]], dtype=torch.float64)
    t, h = 0.4, 0.3
    calls = [0]
    f = _field(calls)
    try:
        out = rk4_step(f, t, y.clone(), h)
    except _Forbidden:
        print("Not yet: the step calls flowlab's own solver (flowlab.numerics); write the four stages yourself.")
        return False
    except Exception as e:  # noqa: BLE001 - any failure of the student's code is reported
        print(f"Not yet: rk4_step raised {type(e).__name__}: {e}")
        return False
    if not isinstance(out, Tensor) or out.shape != y.shape:
        print(f"Not yet: rk4_step should return a tensor of shape {tuple(y.shape)}, got "
              f"{getattr(out, 'shape', type(out).__name__)}.")
        return False
    plain = _field([0])
    right = _reference(plain, t, y, h, "rk4")
    if torch.allclose(out.detach().double(), right, atol=1e-10):
        if calls[0] != 4:
            print(f"Almost: the result is right, but f was evaluated {calls[0]} times; one RK4 step needs exactly 4.")
            return False
        print("Correct: four evaluations of f, stages at t, t + h/2, t + h/2 and t + h, weights 1/6, 2/6, 2/6, 1/6.")
        return True
    for kind, why in [
        ("euler", "this is an Euler step y + h f(t, y), first order."),
        ("midpoint", "this is the midpoint step (RK2), second order: RK4 has four stages."),
        ("equal weights", "the stages are right but the weights are 1/4 each; RK4 weighs them 1/6, 2/6, 2/6, 1/6."),
        ("same times", "every stage is evaluated at time t: the middle stages belong at t + h/2 and the last at t + h."),
    ]:
        if torch.allclose(out.detach().double(), _reference(plain, t, y, h, kind), atol=1e-10):
            print(f"Not yet: {why}")
            return False
    if torch.allclose(out.detach().double(), y, atol=1e-12):
        print("Not yet: rk4_step returned y unchanged.")
        return False
    err = float((out.detach().double() - right).abs().max())
    print(f"Not yet: the step differs from RK4's by up to {err:.2g}. Check each stage's time and state.")
    return False
