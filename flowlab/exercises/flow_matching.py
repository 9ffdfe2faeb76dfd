r"""Checkers for the exercises of the chapter on flow matching.

Each checker compares the student's answer with one it computes itself, says what it found and
returns a true verdict when the answer is right; it never raises. :func:`check_cfm_loss` calls
the student's function on a vector field, points and times that it draws at each call, and
computes the right loss only after the function has returned. A wrong answer is compared with
the typical mistakes (the time convention of libraries that put the noise at :math:`t = 0`, a
flipped target, a mean over coordinates, the variance instead of the standard deviation...) and
the message names the one it matches.

Example:
    >>> from flowlab.exercises import flow_matching as ex
    >>> ex.check_straight_steps(1)
    Correct: along a straight path at constant speed the velocity never changes, so
    one Euler step from the base lands exactly on the end of the path.
    True
    >>> ex.check_gaussian_floor(0.0)
    Not yet: 0 would mean that the lines through a point never disagree. Many pairs
    (x, eps) pass through the same point at the same time with different velocities
    eps - x: the floor is their conditional variance.
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._feedback import agrees, call, checker, close, fresh_seed, number, say

__all__ = ["S", "check_cfm_loss", "check_gaussian_floor", "check_straight_steps"]

S = torch.tensor([2.0, 0.3, 1.0], dtype=torch.float64)
"""The standard deviations of the Gaussian data of the floor exercise."""


def _field(seed: int) -> torch.nn.Module:
    """A random time-conditioned field in float64 (not the identity start)."""
    from ..testing import shaken
    from ..time_mlp import TimeMLP

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        field = TimeMLP(2, (16, 16))
    return shaken(field, scale=0.6, seed=seed, fan_in=True).double().requires_grad_(False)


def _typical(value: float, mistakes, same: Callable[[float, float], bool], prefix: str = "") -> bool:
    """Say which typical mistake of the table ``(wrong value, why)`` the answer is, if any."""
    why = next((why for wrong, why in mistakes if same(value, wrong)), None)
    if why is not None:
        say(f"Not yet: {prefix}{why}")
    return why is not None


@checker
@torch.no_grad()
def check_cfm_loss(cfm_loss: Callable, n: int = 64, seed: int | None = None) -> bool:
    r"""Check ``cfm_loss(field, x, eps, t)``: the mean over rows of
    :math:`\lVert g(t, z_t) - (\varepsilon - x)\rVert^2` with :math:`z_t = (1-t)x + t\varepsilon`
    (data at :math:`t = 0`), on a field, ``n`` points and times drawn at each call (``seed``
    fixes them), to a relative 1e-8."""
    seed = fresh_seed() % 2**31 if seed is None else seed
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, 2, generator=g, dtype=torch.float64) + torch.randn(2, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    ok, out = call(cfm_loss, _field(seed), x.clone(), eps.clone(), t.clone(), name="cfm_loss")
    if not ok:
        return False
    value = number("the value of cfm_loss", out)
    if value is None:
        return False
    field = _field(seed)  # a fresh copy: the student's function had the other one

    def loss(z, target):  # the loss of a point and a target, on this call's inputs
        return float((field(t, z) - target).square().sum(1).mean())

    tt = t[:, None]
    path, other_time = (1 - tt) * x + tt * eps, (1 - tt) * eps + tt * x
    right = loss(path, eps - x)
    if close(value, right, 1e-8):
        say("Correct: z_t = (1 - t) x + t eps, target eps - x, the squared norm averaged over the rows.")
        return True
    mistakes = [
        (loss(other_time, x - eps), "this is the loss in the time convention of libraries that put the noise at "
         "t = 0 and the data at t = 1 (z_t = (1 - t) eps + t x, target x - eps). In this book the data sit at "
         "t = 0: z_t = (1 - t) x + t eps, and the velocity is eps - x."),
        (loss(path, x - eps), "the target has the wrong sign: along z_t = (1 - t) x + t eps the velocity is "
         "dz_t/dt = eps - x."),
        (loss(other_time, eps - x), "z_t has its ends swapped: at t = 0 it should be the data x, at t = 1 the "
         "base point eps."),
        (right / 2, "this is the squared error averaged over the coordinates as well; the loss of this chapter "
         "sums the squares over the coordinates (the squared norm) and averages over the rows."),
        (right * n, "this is the sum over the rows; take the mean."),
        (float((field(t, path) - (eps - x)).norm(dim=1).mean()), "the norm is not squared."),
        (loss(path, torch.zeros_like(x)), "the target is missing: the field is compared with eps - x."),
    ]
    if _typical(value, mistakes, lambda a, b: close(a, b, 1e-8)):
        return False
    say(f"Not yet: cfm_loss returned {value:.6g}, the loss is {right:.6g} on the checker's inputs. Check the "
        "point z_t, the time given to the field (one per row) and the target eps - x.")
    return False


@checker
def check_straight_steps(steps) -> bool:
    r"""The number of Euler steps that integrate a field with straight, constant-speed paths
    exactly: 1 (``1.0``, ``np.int64(1)`` and a one-element tensor are accepted)."""
    value = number("steps", steps)
    if value is None:
        return False
    if value == 1:
        say("Correct: along a straight path at constant speed the velocity never changes, so one Euler step "
            "from the base lands exactly on the end of the path.")
        return True
    if value == 4:
        say("Not yet: 4 is the number of field evaluations in one RK4 step. Euler's method needs fewer here: "
            "how does the velocity change along a straight path at constant speed?")
    elif value < 1 or value != round(value):
        say(f"Not yet: {value:g} is not a number of steps; give a whole number of at least 1.")
    else:
        say(f"Not yet: {value:g} steps would be needed for a curved path. Along a straight path at constant "
            "speed the velocity never changes: what does one Euler step do then?")
    return False


@checker
def check_gaussian_floor(floor, s=S) -> bool:
    r"""The minimum of the conditional flow-matching loss (straight path, independent pairs) for
    data :math:`\mathcal N(\mu, \operatorname{diag}(s^2))` and a standard normal base:
    :math:`\frac{\pi}{2}\sum_i s_i`, to three significant digits or more."""
    value = number("floor_3d", floor)
    if value is None:
        return False
    s = torch.as_tensor(s, dtype=torch.float64)
    d, total = len(s), float(s.sum())
    right = math.pi / 2 * total
    if agrees(value, right):
        say(f"Correct: (pi / 2) x ({' + '.join(f'{v:g}' for v in s.tolist())}) = {right:.4f}; each coordinate "
            "contributes pi s / 2, whatever the mean.")
        return True
    mistakes = [
        (0.0, "would mean that the lines through a point never disagree. Many pairs (x, eps) pass through the same "
              "point at the same time with different velocities eps - x: the floor is their conditional variance."),
        (math.pi / 2 * float((s**2).sum()), "uses the variances s^2; the floor grows with the standard deviations: "
                                            "the integral of s^2 / ((1 - t)^2 s^2 + t^2) over t is pi s / 2."),
        (math.pi / 2 * d, "is the floor for standard normal data (s = 1 in every coordinate)."),
        (math.pi * total, "is twice the floor: the integral of s^2 / ((1 - t)^2 s^2 + t^2) over [0, 1] is pi s / 2."),
        (total, "is the sum of the standard deviations; the integral over t adds a factor pi / 2."),
        (float((1 + s**2).sum()), "is E||eps - x||^2 without the mean, the loss of the zero field, not the "
                                  "smallest loss: the best field predicts part of eps - x from z_t."),
        (math.pi / 2 * total / d, "is the floor divided by the dimension: the loss sums over the coordinates."),
    ]
    if _typical(value, mistakes, agrees, f"{value:g} "):
        return False
    say(f"Not yet: {value:g} is not it. Compute Var[eps - X | z_t] per coordinate from the joint Gaussian of "
        "(eps - X, z_t), then integrate it over t in [0, 1].")
    return False
