"""The checkers of the chapter on flow matching accept the solutions (also written another way)
and name the typical mistakes."""

from __future__ import annotations

import math

import numpy as np
import torch

from flowlab.exercises import flow_matching as ex


def run(capsys, fn, *args, **kwargs):
    ok = fn(*args, **kwargs)
    return ok, capsys.readouterr().out


# ------------------------------------------------------------------------ the conditional loss


def solution(field, x, eps, t):
    z = (1 - t)[:, None] * x + t[:, None] * eps
    return (field(t, z) - (eps - x)).square().sum(1).mean()


def test_cfm_loss_accepts_the_solution(capsys):
    for seed in (0, 1, None):
        ok, out = run(capsys, ex.check_cfm_loss, solution, seed=seed)
        assert ok and out.startswith("Correct"), out


def test_cfm_loss_accepts_other_forms(capsys):
    def by_rows(field, x, eps, t):  # a loop over the rows, one time each, a Python float
        total = 0.0
        for i in range(len(x)):
            z = (1 - t[i]) * x[i : i + 1] + t[i] * eps[i : i + 1]
            total += float(((field(t[i : i + 1], z) - (eps[i] - x[i])) ** 2).sum())
        return total / len(x)

    def numpy_scalar(field, x, eps, t):
        return np.float64(solution(field, x, eps, t).item())

    for answer in (by_rows, numpy_scalar, lambda *a: solution(*a).reshape(1)):
        ok, out = run(capsys, ex.check_cfm_loss, answer, seed=3)
        assert ok, out


def test_cfm_loss_names_the_mistakes(capsys):
    def other_convention(field, x, eps, t):  # noise at t = 0
        z = (1 - t)[:, None] * eps + t[:, None] * x
        return (field(t, z) - (x - eps)).square().sum(1).mean()

    def flipped(field, x, eps, t):
        z = (1 - t)[:, None] * x + t[:, None] * eps
        return (field(t, z) - (x - eps)).square().sum(1).mean()

    def swapped_ends(field, x, eps, t):
        z = t[:, None] * x + (1 - t)[:, None] * eps
        return (field(t, z) - (eps - x)).square().sum(1).mean()

    def per_coordinate(field, x, eps, t):
        z = (1 - t)[:, None] * x + t[:, None] * eps
        return (field(t, z) - (eps - x)).square().mean()

    def summed(field, x, eps, t):
        return solution(field, x, eps, t) * len(x)

    def not_squared(field, x, eps, t):
        z = (1 - t)[:, None] * x + t[:, None] * eps
        return (field(t, z) - (eps - x)).norm(dim=1).mean()

    for answer, phrase in [
        (other_convention, "noise at t = 0"),
        (flipped, "wrong sign"),
        (swapped_ends, "ends swapped"),
        (per_coordinate, "averaged over the coordinates"),
        (summed, "sum over the rows"),
        (not_squared, "not squared"),
    ]:
        ok, out = run(capsys, ex.check_cfm_loss, answer, seed=5)
        assert not ok and phrase in out, (answer.__name__, out)


def test_cfm_loss_stubs_and_errors(capsys):
    def stub(field, x, eps, t):
        return None

    def raises(field, x, eps, t):
        raise NotImplementedError

    def broken(field, x, eps, t):
        return x @ t

    for answer, phrase in [(None, "No answer yet"), (stub, "returned None"), (raises, "stub"), (broken, "raised"),
                           (lambda *a: torch.ones(3), "single number"), (lambda *a: "1.0", "number")]:
        ok, out = run(capsys, ex.check_cfm_loss, answer, seed=0)
        assert not ok and phrase in out, (answer, out)


def test_cfm_loss_inputs_are_drawn_at_each_call(capsys):
    # a function that returns the right value for one draw fails on another
    seen = {}

    def memorised(field, x, eps, t):
        if not seen:
            seen["value"] = float(solution(field, x, eps, t))
        return seen["value"]

    ok1, _ = run(capsys, ex.check_cfm_loss, memorised)
    ok2, _ = run(capsys, ex.check_cfm_loss, memorised)
    assert ok1 and not ok2


# ------------------------------------------------------------------------ the steps of a straight field


def test_straight_steps(capsys):
    for right in (1, 1.0, np.int64(1), torch.tensor(1)):
        ok, out = run(capsys, ex.check_straight_steps, right)
        assert ok and out.startswith("Correct")
    for wrong, phrase in [(4, "RK4"), (0, "at least 1"), (16, "curved"), (1.5, "whole number"), (None, "answer")]:
        ok, out = run(capsys, ex.check_straight_steps, wrong)
        assert not ok and phrase in out, (wrong, out)


# ------------------------------------------------------------------------ the floor for a Gaussian


def test_gaussian_floor_accepts_the_formula_and_three_digits(capsys):
    right = math.pi / 2 * float(ex.S.sum())
    for answer in (right, round(right, 2), torch.tensor(right), np.float32(right)):
        ok, out = run(capsys, ex.check_gaussian_floor, answer)
        assert ok and out.startswith("Correct"), out
    ok, _ = run(capsys, ex.check_gaussian_floor, round(right, 1))
    assert not ok


def test_gaussian_floor_matches_a_monte_carlo_estimate():
    # the checker's value is the loss of the exact marginal field, estimated independently
    g = torch.Generator().manual_seed(0)
    n, s = 400_000, ex.S
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    x = mu + s * torch.randn(n, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 3, generator=g, dtype=torch.float64)
    t = torch.rand(n, 1, generator=g, dtype=torch.float64)
    z = (1 - t) * x + t * eps
    best = -mu + (t - (1 - t) * s**2) / ((1 - t) ** 2 * s**2 + t**2) * (z - (1 - t) * mu)
    per_row = (best - (eps - x)).square().sum(1)
    mean, se = float(per_row.mean()), float(per_row.std()) / math.sqrt(n)
    assert abs(mean - math.pi / 2 * float(s.sum())) < 4 * se


def test_gaussian_floor_names_the_mistakes(capsys):
    s = ex.S
    for wrong, phrase in [
        (0.0, "never disagree"),
        (math.pi / 2 * float((s**2).sum()), "variances"),
        (math.pi / 2 * 3, "standard normal data"),
        (math.pi * float(s.sum()), "twice the floor"),
        (float(s.sum()), "pi / 2"),
        (float((1 + s**2).sum()), "zero field"),
        (None, "answer"),
    ]:
        ok, out = run(capsys, ex.check_gaussian_floor, wrong)
        assert not ok and phrase in out, (wrong, out)


def test_gaussian_floor_for_other_deviations(capsys):
    s = torch.tensor([0.5, 3.0])
    ok, _ = run(capsys, ex.check_gaussian_floor, math.pi / 2 * 3.5, s=s)
    assert ok
