"""The checkers of the chapter on continuous-time flows accept the solutions and name the typical mistakes."""

from __future__ import annotations

import torch

import flowlab as fl
from flowlab.exercises import continuous as ex


def run(capsys, fn, *args):
    ok = fn(*args)
    return ok, capsys.readouterr().out


# ------------------------------------------------------------------------ the ladj of a linear flow


def test_linear_ladj_accepts_the_solution(capsys):
    ok, out = run(capsys, ex.check_linear_ladj, ex.T * float(ex.A.trace()))
    assert ok and out.startswith("Correct")


def test_linear_ladj_accepts_the_closed_form(capsys):
    # log|det expm(T A)|, computed another way, is right too
    value = torch.linalg.slogdet(torch.linalg.matrix_exp(ex.T * ex.A)).logabsdet
    ok, _ = run(capsys, ex.check_linear_ladj, value)
    assert ok


def test_linear_ladj_matches_a_solved_cnf(capsys):
    # the exercise's answer is what a CNF with the linear field integrates
    class Linear(torch.nn.Module):
        def forward(self, t, z):
            return z @ ex.A.T

    cnf = fl.CNF(2, steps=16, field=Linear())
    _, ladj = cnf.solve(torch.zeros(1, 2, dtype=torch.float64), 0.0, ex.T)[:2]
    ok, _ = run(capsys, ex.check_linear_ladj, float(ladj.detach()))
    assert ok


def test_linear_ladj_names_the_mistakes(capsys):
    tr, det = float(ex.A.trace()), float(torch.linalg.det(ex.A))
    for wrong, phrase in [
        (-ex.T * tr, "log-density"),
        (tr, "multiply by T"),
        (det, "not its determinant"),
        (ex.T * det, "not the determinant"),
        (float(ex.A.sum()) * ex.T, "diagonal only"),
    ]:
        ok, out = run(capsys, ex.check_linear_ladj, wrong)
        assert not ok and phrase in out, (wrong, out)


def test_linear_ladj_bad_answers(capsys):
    for answer, phrase in [(None, "No answer yet"), ("two", "should be a number"), (float("nan"), "NaN"),
                           (torch.ones(2), "single number")]:
        ok, out = run(capsys, ex.check_linear_ladj, answer)
        assert not ok and phrase in out
    ok, out = run(capsys, ex.check_linear_ladj, 3.7)
    assert not ok and out.startswith("Not yet")


# ------------------------------------------------------------------------ the order of RK4


def test_order_accepts_16(capsys):
    ok, out = run(capsys, ex.check_order, 16)
    assert ok and "2^4" in out


def test_order_names_the_mistakes(capsys):
    for wrong, phrase in [(2, "first-order"), (4, "second-order"), (32, "local error"), (1 / 16, "falls")]:
        ok, out = run(capsys, ex.check_order, wrong)
        assert not ok and phrase in out, (wrong, out)
    ok, out = run(capsys, ex.check_order, None)
    assert not ok and "No answer yet" in out


def test_order_agrees_with_the_solver():
    # the answer the checker wants is what flowlab's RK4 does on the linear ODE
    A = torch.tensor([[-0.2, 1.5], [-1.5, -0.2]], dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    exact = y0 @ torch.linalg.matrix_exp(A).T
    errs = [float((fl.numerics.rk4(lambda t, y: y @ A.T, y0, steps=n) - exact).abs().max()) for n in (32, 64)]
    assert abs(errs[0] / errs[1] - 16) < 1.5


# ------------------------------------------------------------------------ one RK4 step


def rk4_step(f, t, y, h):
    k1 = f(t, y)
    k2 = f(t + h / 2, y + h / 2 * k1)
    k3 = f(t + h / 2, y + h / 2 * k2)
    k4 = f(t + h, y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def test_rk4_step_accepts_the_solution(capsys):
    ok, out = run(capsys, ex.check_rk4_step, rk4_step)
    assert ok and out.startswith("Correct")


def test_rk4_step_refuses_flowlabs_solver(capsys):
    def shortcut(f, t, y, h):
        return fl.numerics.rk4(f, y, t, t + h, steps=1)

    def shortcut_odeint(f, t, y, h):
        return fl.numerics.odeint(f, y, t, t + h, solver="rk4", steps=1).y

    for fn in (shortcut, shortcut_odeint):
        ok, out = run(capsys, ex.check_rk4_step, fn)
        assert not ok and "flowlab's own solver" in out


def test_rk4_step_names_the_mistakes(capsys):
    def euler(f, t, y, h):
        return y + h * f(t, y)

    def midpoint(f, t, y, h):
        return y + h * f(t + h / 2, y + h / 2 * f(t, y))

    def equal_weights(f, t, y, h):
        k1 = f(t, y)
        k2 = f(t + h / 2, y + h / 2 * k1)
        k3 = f(t + h / 2, y + h / 2 * k2)
        k4 = f(t + h, y + h * k3)
        return y + h / 4 * (k1 + k2 + k3 + k4)

    def same_times(f, t, y, h):
        k1 = f(t, y)
        k2 = f(t, y + h / 2 * k1)
        k3 = f(t, y + h / 2 * k2)
        k4 = f(t, y + h * k3)
        return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    def wasteful(f, t, y, h):
        f(t, y)
        return rk4_step(f, t, y, h)

    for fn, phrase in [(euler, "Euler"), (midpoint, "midpoint"), (equal_weights, "1/4"),
                       (same_times, "t + h/2"), (wasteful, "exactly 4"), (lambda f, t, y, h: y, "unchanged"),
                       (lambda f, t, y, h: None, "should return a tensor"), (None, "No answer yet")]:
        ok, out = run(capsys, ex.check_rk4_step, fn)
        assert not ok and phrase in out, (fn, out)


def test_rk4_step_reports_an_exception(capsys):
    def broken(f, t, y, h):
        raise RuntimeError("oops")

    ok, out = run(capsys, ex.check_rk4_step, broken)
    assert not ok and "RuntimeError" in out
