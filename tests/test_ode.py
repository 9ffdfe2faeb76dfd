"""flowlab.numerics.ode against closed forms: the linear ODE (solution expm(A t) y0), the orders
of Euler and RK4, dopri5 with its tolerances, step floor and adjoint, and the trace estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from flowlab.numerics import euler, hutchinson_noise, odeint, rk4, trace_exact, trace_hutchinson

f64 = torch.float64
A = torch.tensor([[-0.5, 2.0, 0.0], [-2.0, -0.3, 0.4], [0.1, 0.0, -1.0]], dtype=f64)
Y0 = torch.tensor([[1.0, -0.5, 2.0], [0.3, 0.7, -1.2]], dtype=f64)
T = 1.5


def linear(t, y):
    return y @ A.T


def exact():
    return Y0 @ torch.linalg.matrix_exp(A * T).T


def errors(method, steps):
    return [float((method(linear, Y0, 0.0, T, steps=n) - exact()).abs().max()) for n in steps]


def slope(steps, errs):
    return np.polyfit(np.log(1.0 / np.asarray(steps)), np.log(errs), 1)[0]


def test_rk4_fourth_order_on_the_linear_ode():
    steps = [4, 8, 16, 32, 64]
    errs = errors(rk4, steps)
    assert errs[-1] < 1e-7
    assert 3.8 < slope(steps, errs) < 4.2, errs


def test_euler_first_order_on_the_linear_ode():
    steps = [64, 128, 256, 512]
    errs = errors(euler, steps)
    assert 0.9 < slope(steps, errs) < 1.1, errs


def test_backwards_in_time_inverts_up_to_the_order():
    y1 = rk4(linear, Y0, 0.0, T, steps=32)
    back = rk4(linear, y1, T, 0.0, steps=32)
    err = float((back - Y0).abs().max())
    assert 0 < err < 1e-6


def test_odeint_fixed_counts_and_matches():
    sol = odeint(linear, Y0, 0.0, T, solver="rk4", steps=10)
    assert sol.nfe == 40
    assert torch.equal(sol.y, rk4(linear, Y0, 0.0, T, steps=10))
    assert odeint(linear, Y0, 0.0, T, solver="euler", steps=10).nfe == 10


@pytest.mark.parametrize("tol", [1e-4, 1e-7])
def test_dopri5_against_expm_and_counts(tol):
    sol = odeint(linear, Y0, 0.0, T, solver="dopri5", rtol=tol, atol=tol, min_step=1e-9)
    err = float((sol.y - exact()).abs().max())
    assert err < 50 * tol
    assert sol.nfe >= 8


def test_dopri5_more_evaluations_for_tighter_tolerances():
    loose = odeint(linear, Y0, 0.0, T, solver="dopri5", rtol=1e-3, atol=1e-3)
    tight = odeint(linear, Y0, 0.0, T, solver="dopri5", rtol=1e-8, atol=1e-8, min_step=1e-9)
    assert tight.nfe > 2 * loose.nfe


def test_dopri5_backwards_in_time():
    y1 = exact()
    sol = odeint(linear, y1, T, 0.0, solver="dopri5", rtol=1e-8, atol=1e-8, min_step=1e-9)
    assert float((sol.y - Y0).abs().max()) < 1e-5


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(A.clone())

    def forward(self, t, y):
        return y @ self.A.T


def test_adjoint_gradient_equals_backprop_and_closed_form():
    grads = []
    for adjoint in (False, True):
        f = Linear()
        y = odeint(f, Y0, 0.0, T, solver="dopri5", rtol=1e-8, atol=1e-8, min_step=1e-9, adjoint=adjoint).y
        y.sum().backward()
        grads.append(f.A.grad)
    # closed form: d/dA sum(expm(A T) y0) by autograd through matrix_exp
    a = A.clone().requires_grad_(True)
    (Y0 @ torch.linalg.matrix_exp(a * T).T).sum().backward()
    for g in grads:
        assert torch.allclose(g, a.grad, atol=1e-5)


def test_stiff_problem_hits_the_step_floor_with_a_clear_message():
    def stiff(t, y):
        return -1e5 * (y - torch.cos(t))

    y0 = torch.zeros(1, 1, dtype=f64)
    with pytest.raises(ValueError, match="minimum step"):
        odeint(stiff, y0, 0.0, 1.0, solver="dopri5", rtol=1e-6, atol=1e-6, min_step=1e-3)


def test_max_steps_gives_a_value_error():
    def fast(t, y):
        return torch.cos(200 * t) * y.new_ones(y.shape)

    with pytest.raises(ValueError, match="max_num_steps|max_steps"):
        odeint(fast, torch.zeros(1, 1, dtype=f64), 0.0, 10.0, solver="dopri5", rtol=1e-8, atol=1e-8,
               min_step=1e-12, max_steps=20)


def test_blow_up_gives_a_value_error():
    with pytest.raises(ValueError, match="NaN or infinite"):
        rk4(lambda t, y: y**2, torch.ones(1, 1, dtype=f64), 0.0, 50.0, steps=4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"solver": "rk45"}, "solver"),
        ({"solver": "dopri5", "rtol": 0.0}, "rtol"),
        ({"solver": "dopri5", "atol": -1e-3}, "atol"),
        ({"solver": "dopri5", "min_step": 0.0}, "min_step"),
        ({"solver": "rk4", "adjoint": True}, "adjoint"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odeint(linear, Y0, 0.0, 1.0, **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="nn.Module"):
        odeint(linear, Y0, solver="dopri5", adjoint=True)
    with pytest.raises(ValueError, match="y0"):
        odeint(linear, [1.0, 2.0])
    with pytest.raises(ValueError, match="t1"):
        odeint(linear, Y0, 0.0, float("nan"))
    with pytest.raises(ValueError, match="shape of y"):
        rk4(lambda t, y: y[:, :1], Y0)


# ------------------------------------------------------------------------ traces


def field(y):
    # a nonlinear map with a dense, non-symmetric Jacobian
    return torch.tanh(y @ A.T) * y.roll(1, dims=1) + y**3


def test_trace_exact_against_the_jacobian():
    y = torch.randn(6, 3, dtype=f64, requires_grad=True)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: field(v[None])[0], r) for r in y.detach()])
    assert torch.allclose(trace_exact(field(y), y), jac.diagonal(dim1=1, dim2=2).sum(1), atol=1e-12)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_unbiased_within_its_standard_error(kind):
    y = torch.randn(1, 3, dtype=f64).expand(4000, 3).clone().requires_grad_(True)
    out = field(y)
    est = trace_hutchinson(out, y, hutchinson_noise(y, kind, torch.Generator().manual_seed(1)), create_graph=False)
    truth = float(trace_exact(out, y, create_graph=False)[0])
    se = float(est.std()) / math.sqrt(len(est))
    assert se > 0
    assert abs(float(est.mean()) - truth) < 4 * se


def test_noise_from_the_generator():
    like = torch.zeros(5, 4, dtype=f64)
    a = hutchinson_noise(like, "rademacher", torch.Generator().manual_seed(3))
    b = hutchinson_noise(like, "rademacher", torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == f64 and set(a.unique().tolist()) == {-1.0, 1.0}
    g = hutchinson_noise(like, "gaussian", torch.Generator().manual_seed(3))
    assert g.shape == like.shape and g.std() > 0.3
    with pytest.raises(ValueError, match="rademacher"):
        hutchinson_noise(like, "uniform")
