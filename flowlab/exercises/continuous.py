r"""Checkers for the exercises of the chapter on continuous-time flows.

Each checker compares the student's answer with one it computes itself (after the student's
code has run), says what it found and returns a true verdict when the answer is right; it never
raises. Numbers are accepted to three significant digits or more. A wrong answer is compared
with the typical mistakes (the sign of the trace, the determinant instead of the trace, a
first-order step, the wrong weights or times of the Runge-Kutta stages...) and the message names
the one it matches.

Example:
    >>> from flowlab.exercises import continuous as ex
    >>> ex.check_linear_ladj(-2.0)
    Correct: ladj = T tr(A) = 2 x (-1) = -2; indeed det exp(TA) = exp(T tr A).
    True
    >>> ex.check_linear_ladj(2.0)
    Not yet: 2 is -T tr(A), the change of the log-density d log p / dt integrated.
    The ladj of the data-to-latent map is +T tr(A).
    False
"""

from __future__ import annotations

import math

import torch

from ._feedback import Watch, agrees, call, checker, fresh_seed, number, say, tensor

__all__ = ["A", "T", "check_linear_ladj", "check_order", "check_rk4_step"]

A = torch.tensor([[0.5, 2.0], [-1.0, -1.5]], dtype=torch.float64)
"""The matrix of the linear field :math:`g(t, z) = A z` of the first exercise."""
T = 2.0
"""The time span of the first exercise."""


@checker
def check_linear_ladj(ladj, A=A, T=T) -> bool:
    r"""The ladj of the map :math:`z(0) \mapsto z(T)` for :math:`\dot z = A z` (by default
    :data:`A` and :data:`T`), to three significant digits or more."""
    value = number("ladj", ladj)
    if value is None:
        return False
    A = torch.as_tensor(A, dtype=torch.float64)
    tr, det = float(A.trace()), float(torch.linalg.det(A))
    right = T * tr
    if agrees(value, right):
        say(f"Correct: ladj = T tr(A) = {T:g} x ({tr:g}) = {right:g}; indeed det exp(TA) = exp(T tr A).")
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
        if agrees(value, wrong):
            say(f"Not yet: {value:g} {why}")
            return False
    say(f"Not yet: {value:g} is not it. d/dt log|det dz(t)/dz(0)| = tr(A) at every time.")
    return False


@checker
def check_order(factor, ratio: int = 2) -> bool:
    r"""The factor by which the error of RK4 at the end time falls when the number of steps is
    multiplied by ``ratio`` (2: doubled)."""
    value = number("factor", factor)
    if value is None:
        return False
    right = float(ratio) ** 4
    if agrees(value, right):
        say(f"Correct: the global error of RK4 is O(h^4), so dividing h by {ratio} divides it by {ratio}^4 = "
            f"{right:g}.")
        return True
    mistakes = [
        (ratio, "is the factor of a first-order method such as Euler (error O(h)); RK4 is of order 4."),
        (ratio**2, "is the factor of a second-order method (midpoint, Heun); RK4 is of order 4."),
        (ratio**3, "would be order 3; RK4 is of order 4."),
        (ratio**5, "is the factor of the local error of one step, O(h^5); over a fixed time span 1/h steps add up "
                   "to O(h^4)."),
        (ratio**-4, f"is 1/{right:g}: that is how the error changes, but the question asks for the factor by which "
                    "it falls."),
    ]
    for wrong, why in mistakes:
        if agrees(value, wrong):
            say(f"Not yet: {value:g} {why}")
            return False
    say(f"Not yet: {value:g}. Write the error as C h^p for RK4's order p and divide h by {ratio}.")
    return False


# --------------------------------------------------------------------------------------------
# exercise 3: one Runge-Kutta step
# --------------------------------------------------------------------------------------------

_SOLVERS = ("flowlab.numerics", "torchdiffeq", "scipy.integrate")


@checker
def check_rk4_step(rk4_step, seed: int | None = None) -> bool:
    r"""Check ``rk4_step(f, t, y, h) -> y_next``: one classical Runge-Kutta step, written by hand
    (``flowlab.numerics``, ``torchdiffeq`` and ``scipy.integrate`` are refused), for ``y`` of
    shape ``(batch, 2)``, on a non-autonomous nonlinear field, a state, a time and a step drawn
    at each call; ``f`` must be evaluated exactly 4 times."""
    g = torch.Generator().manual_seed(fresh_seed() if seed is None else seed)
    alpha, beta, gamma = (0.5 + torch.rand(3, generator=g, dtype=torch.float64)).tolist()
    y = torch.randn(3, 2, generator=g, dtype=torch.float64)
    t, h = float(torch.rand(1, generator=g)), 0.1 + 0.3 * float(torch.rand(1, generator=g))

    def f(t, y):  # wrong stage times or weights change the result
        t = torch.as_tensor(t, dtype=y.dtype)
        return torch.stack([y[..., 1] * torch.cos(alpha * t), -torch.sin(beta * y[..., 0]) + gamma * t * y[..., 1]],
                           dim=-1)

    watch = Watch(modules=_SOLVERS, count=[f])
    ok, out = call(rk4_step, f, t, y.clone(), h, name="rk4_step", watch=watch)
    if watch.used:
        say(f"Not yet: the step calls a library solver ({watch.used[0]}); write the four stages yourself.")
        return False
    if not ok:
        return False
    got = tensor("rk4_step(f, t, y, h)", out, y.shape, "the new state, the shape of y")
    if got is None:
        return False

    def step(kind):  # one step of RK4 or of a typical mistake, computed after the call
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

    calls = watch.count(f)
    if torch.allclose(got, step("rk4"), atol=1e-10):
        if calls != 4:
            say(f"Not yet: the result is right, but f was evaluated {calls} times; one RK4 step needs exactly 4.")
            return False
        say("Correct: four evaluations of f, stages at t, t + h/2, t + h/2 and t + h, weights 1/6, 2/6, 2/6, 1/6.")
        return True
    for kind, why in [
        ("euler", "this is an Euler step y + h f(t, y), first order."),
        ("midpoint", "this is the midpoint step (RK2), second order: RK4 has four stages."),
        ("equal weights", "the stages are right but the weights are 1/4 each; RK4 weighs them 1/6, 2/6, 2/6, 1/6."),
        ("same times", "every stage is evaluated at time t: the middle stages belong at t + h/2 and the last at t + h."),
    ]:
        if torch.allclose(got, step(kind), atol=1e-10):
            say(f"Not yet: {why}")
            return False
    if torch.allclose(got, y, atol=1e-12):
        say("Not yet: rk4_step returned y unchanged.")
        return False
    say(f"Not yet: the step differs from RK4's by up to {float((got - step('rk4')).abs().max()):.2g}. Check each "
        "stage's time and state.")
    return False
