"""The CNF: its contract with tolerances tied to the number of RK4 steps, the h^4 error, the
forward-mode traces against autograd, Hutchinson's ladj unbiased within its standard error, the
adaptive solver, and bad input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import flowlab as fl
from flowlab.testing import autograd_jacobian, autograd_ladj, check_transform, density_integral, shaken, signed_det
from flowlab.time_mlp import TimeMLP

f64 = torch.float64


def points(n=12, d=2, seed=1):
    return 1.5 * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=f64)


def cnf(steps=8, seed=0, scale=1.0, **kw) -> fl.CNF:
    torch.manual_seed(seed)
    kw.setdefault("hidden", (16, 16))
    return shaken(fl.CNF(2, steps=steps, **kw), scale, seed, fan_in=True).double()


def tol(steps: int) -> float:
    """The contract's tolerance for RK4 with ``steps`` steps: a constant times h^4."""
    return 0.1 / steps**4


# ------------------------------------------------------------------------ the contract


@pytest.mark.parametrize("steps", [8, 16])
def test_contract_with_tolerance_tied_to_steps(steps, device):
    t = cnf(steps).to(device)
    x = points().to(device)
    check_transform(t, x, atol=tol(steps), rtol=tol(steps), grad=True)
    with torch.no_grad():
        z, ladj = t(x)
    assert (z - x).abs().max() > 0.5 and ladj.abs().max() > 0.05  # far from the identity


def test_discretised_map_is_not_exactly_invertible():
    # the tolerance above is needed: with 4 steps a tight check must fail on the round trip
    with pytest.raises(AssertionError, match="round trip"):
        check_transform(cnf(4), points(), atol=1e-9, rtol=1e-9, grad=False)


def test_contract_hutchinson_with_fixed_generator():
    # with the same probe in both directions the estimated ladj of forward and inverse cancel
    t = cnf(16, trace="hutchinson")
    x = points()
    z, ladj = t(x, generator=torch.Generator().manual_seed(0))
    x_back, ladj_back = t.inverse(z, generator=torch.Generator().manual_seed(0))
    assert (x_back - x).abs().max() < tol(16)
    assert (ladj + ladj_back).abs().max() < tol(16)


def rk4_errors(steps_list, x):
    ref = cnf(256)
    with torch.no_grad():
        z_ref, _ = ref(x)
    out = []
    for steps in steps_list:
        t = cnf(steps)
        with torch.no_grad():
            z, ladj = t(x)
            x_back, _ = t.inverse(z)
        out.append((float((z - z_ref).abs().max()), float((x_back - x).abs().max()),
                    float((ladj - autograd_ladj(t, x)).abs().max())))
    return np.array(out)


def fitted_slope(steps_list, errs):
    return np.polyfit(np.log(1.0 / np.asarray(steps_list)), np.log(errs), 1)[0]


@pytest.mark.slow
def test_rk4_errors_fall_like_h4():
    steps_list = [8, 16, 32, 64]
    errs = rk4_errors(steps_list, points(6))
    # the solution against a fine reference: order 4 (once h is small enough: from 16 steps on)
    assert 3.7 < fitted_slope(steps_list[1:], errs[1:, 0]) < 4.3, errs
    # round trip and integrated trace against the exact log-det of the discrete map: at least h^4
    for k in (1, 2):
        assert 3.7 < fitted_slope(steps_list, errs[:, k]) < 5.6, errs


@pytest.mark.parametrize("steps", [2, 4])
def test_discrete_ladj_is_the_exact_log_det_of_the_discrete_map(steps):
    # the variational equation stepped by RK4 is the derivative of the RK4 map: exact at any step count
    t = cnf(steps, trace="discrete")
    x = points()
    _, ladj = t(x)
    assert torch.allclose(ladj, autograd_ladj(t, x), atol=1e-10)
    # while the integrated trace of the same field misses it by far more
    integrated = copy.deepcopy(t)
    integrated.trace = "exact"
    assert (integrated(x)[1] - ladj).abs().max() > 1e-4
    check_transform(t, x, atol=10 * tol(steps), rtol=10 * tol(steps), grad=True)


def test_discrete_density_integrates_to_one_with_few_steps():
    flow = fl.Flow(cnf(2, trace="discrete", scale=0.5), fl.StandardNormal(2).double())
    assert abs(density_integral(flow, lim=9, n=120) - 1) < 2e-3


def test_starts_at_the_identity():
    t = fl.CNF(2, hidden=(8, 8))
    x = points().float()
    z, ladj = t(x)
    assert torch.equal(z, x) and torch.equal(ladj, torch.zeros(len(x)))


def test_rows_independent_and_float32(device):
    t = cnf(4).float().to(device)
    x = points().float().to(device)
    with torch.no_grad():
        z, ladj = t(x)
        z1, l1 = t(x[3:4])
    assert z.dtype == ladj.dtype == torch.float32 and z.device == x.device
    assert torch.allclose(z[3:4], z1, atol=1e-6) and torch.allclose(ladj[3:4], l1, atol=1e-6)


def test_density_integrates_to_one():
    flow = fl.Flow(cnf(16, scale=0.5), fl.StandardNormal(2).double())
    mass = density_integral(flow, lim=9, n=120)
    assert abs(mass - 1) < 2e-3, mass


# ------------------------------------------------------------------------ the traces


class AutogradOnly(nn.Module):
    """The same field without its forward-mode method: traces by autograd."""

    def __init__(self, field: nn.Module):
        super().__init__()
        self.inner = field

    def forward(self, t, z):
        return self.inner(t, z)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_time_mlp_jvp_against_autograd(activation):
    torch.manual_seed(0)
    g = TimeMLP(3, hidden=(8, 8), activation=activation).double()
    shaken(g, 1.0, seed=2, fan_in=True)
    z = points(6, 3)
    t = torch.tensor(0.3, dtype=f64)
    jac = autograd_jacobian(lambda v: g(t, v), z)
    out, jv = g.jvp(t, z, torch.eye(3, dtype=f64).expand(6, 3, 3))
    assert torch.allclose(out, g(t, z)) and torch.allclose(jv, jac, atol=1e-12)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_forward_mode_and_autograd_traces_agree(trace):
    t = cnf(8, trace=trace)
    slow = copy.deepcopy(t)
    slow.field = AutogradOnly(slow.field)
    x = points()
    fast_out = t(x, generator=torch.Generator().manual_seed(5))
    slow_out = slow(x, generator=torch.Generator().manual_seed(5))
    for a, b in zip(fast_out, slow_out):
        assert torch.allclose(a, b, atol=1e-12)
    # and the gradients agree too
    for m in (t, slow):
        m.zero_grad()
        z, ladj = m(x, generator=torch.Generator().manual_seed(5))
        (z.pow(2).sum() + ladj.sum()).backward()
    for p, q in zip(t.parameters(), slow.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10)


class LinearField(nn.Module):
    def __init__(self, A: torch.Tensor):
        super().__init__()
        self.A = nn.Parameter(A)

    def forward(self, t, z):
        return z @ self.A.T


def test_probe_drawn_once_per_solve():
    # for g(z) = A z the ladj is tr(A); one probe per solve gives exactly e^T A e (A with an
    # off-diagonal part, so a probe redrawn at each evaluation would give another number)
    A = torch.tensor([[0.3, 1.2], [-0.7, -0.1]], dtype=f64)
    t = fl.CNF(2, steps=4, trace="hutchinson", field=LinearField(A))
    x = points(200)
    e = fl.numerics.hutchinson_noise(x, "rademacher", torch.Generator().manual_seed(7))
    _, ladj = t(x, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(ladj, ((e @ A.T) * e).sum(1), atol=1e-12)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_ladj_unbiased_within_its_standard_error(noise):
    t = cnf(4, trace="hutchinson", noise=noise)
    exact = cnf(4)
    x = points(1).expand(4000, 2).contiguous()
    with torch.no_grad():
        _, est = t(x, generator=torch.Generator().manual_seed(11))
        _, truth = exact(x[:1])
    se = float(est.std()) / math.sqrt(len(est))
    assert se > 1e-4  # a real estimator, not the exact value
    assert abs(float(est.mean()) - float(truth)) < 4 * se


# ------------------------------------------------------------------------ the adaptive solver


def test_dopri5_matches_rk4_and_reports_evaluations():
    x = points()
    with torch.no_grad():
        z_rk4, l_rk4 = cnf(256)(x)
        sol = cnf(8, solver="dopri5", rtol=1e-8, atol=1e-8, min_step=1e-9).solve(x)
    assert (sol.value - z_rk4).abs().max() < 1e-6 and (sol.ladj - l_rk4).abs().max() < 1e-6
    assert sol.nfe > 10


@pytest.mark.slow
def test_dopri5_contract():
    # one step size for the whole batch: rows are independent only up to the tolerance
    check_transform(cnf(solver="dopri5", rtol=1e-7, atol=1e-7, min_step=1e-9), points(4), atol=1e-5, rtol=1e-5,
                    grad=False)


@pytest.mark.slow
def test_adjoint_gradients_equal_backprop():
    x = points()
    grads = []
    for adjoint in (False, True):
        t = cnf(solver="dopri5", rtol=1e-8, atol=1e-8, min_step=1e-9, adjoint=adjoint)
        z, ladj = t(x)
        (z.pow(2).sum() - ladj.sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in t.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_nfe_and_kinetic_energy():
    t = cnf(8)
    x = points()
    sol = t.solve(x, kinetic=True)
    assert sol.nfe == 32
    # the kinetic energy is the integral of |g|^2 along the path: positive, and zero at the identity
    assert (sol.kinetic > 0).all()
    assert torch.equal(fl.CNF(2, hidden=(8, 8)).solve(x.float(), kinetic=True).kinetic, torch.zeros(len(x)))
    # half the time span: the end point of 4 steps is the middle of the 8-step path
    half = t.solve(x, 0.0, 0.5)
    assert half.nfe == 16


def test_stiff_field_raises_at_the_step_floor():
    A = torch.tensor([[-3e4, 0.0], [0.0, -1.0]], dtype=f64)
    t = fl.CNF(2, solver="dopri5", rtol=1e-6, atol=1e-6, min_step=1e-3, field=LinearField(A))
    with pytest.raises(ValueError, match="minimum step"):
        t(points())


# ------------------------------------------------------------------------ folds of the fixed-step map


def folding(steps: int) -> fl.CNF:
    """A field strong enough that one RK4 step folds the plane (and four do not)."""
    torch.manual_seed(0)
    return shaken(fl.CNF(2, hidden=16, steps=steps, trace="discrete"), 3.0, seed=1, fan_in=True).double()


GRID = torch.cartesian_prod(*[torch.linspace(-3, 3, 41, dtype=f64)] * 2)


def test_signed_det_is_the_determinant_of_the_discrete_map():
    c = folding(1)
    det = c.signed_det(GRID)
    assert int((det <= 0).sum()) > 100  # one step folds a large part of the grid
    some = torch.cat([(det <= 0).nonzero()[:4, 0], (det > 0).nonzero()[:4, 0]])
    torch.testing.assert_close(det[some], signed_det(c, GRID[some]), atol=1e-10, rtol=1e-10)
    # its log-|det| is the ladj of trace="discrete", and it needs no gradients
    _, ladj = c(GRID[some])
    torch.testing.assert_close(det[some].abs().log(), ladj.detach(), atol=1e-10, rtol=1e-10)
    assert not det.requires_grad
    # any trace and any span: the same map, from 0.25 to 1
    c.trace = "exact"
    half = c.signed_det(GRID[some], 0.25, 1.0)
    torch.testing.assert_close(half, signed_det(lambda v: c.solve(v, 0.25, 1.0).value, GRID[some]))


def test_a_fold_means_mass_counted_twice_and_more_steps_remove_it():
    base = fl.StandardNormal(2).double()
    folded = density_integral(fl.Flow(folding(1), base), lim=12, n=160)
    assert folded > 1.1  # the density formula counts the folded region twice
    c = folding(4)
    assert int((c.signed_det(GRID) <= 0).sum()) == 0
    assert density_integral(fl.Flow(c, base), lim=12, n=160) == pytest.approx(1.0, abs=2e-3)


def test_safe_steps_certifies_every_step():
    c = folding(1)
    bound = c.field.lipschitz_bound()
    # the bound holds: no Jacobian of the field exceeds it
    t = torch.tensor(0.3, dtype=f64)
    with torch.no_grad():
        _, jac = c.field.jvp(t, GRID, torch.eye(2, dtype=f64).expand(len(GRID), 2, 2))
    assert float(torch.linalg.matrix_norm(jac, ord=2).max()) <= bound
    rule = c.safe_steps()
    assert rule == math.ceil(bound / 0.6961)
    a = bound / rule  # h L at the rule's steps: the RK4 step moves points by a contraction
    assert a + a**2 / 2 + a**3 / 6 + a**4 / 24 < 1
    c.steps = rule
    assert bool((c.signed_det(GRID[::40]) > 0).all())
    c.solver = "euler"
    assert c.safe_steps() == math.ceil(bound)
    assert fl.CNF(2, hidden=8).safe_steps() == 1  # the zero field of the start


def test_signed_det_and_safe_steps_refuse_what_they_cannot_check():
    with pytest.raises(ValueError, match="fixed-step map"):
        fl.CNF(2, solver="dopri5").signed_det(GRID[:3].float())
    with pytest.raises(ValueError, match="lipschitz_bound"):
        fl.CNF(2, field=LinearField(torch.eye(2))).safe_steps()


def test_hidden_int_means_two_layers():
    assert [layer.out_features for layer in TimeMLP(2, hidden=8).layers] == [8, 8, 2]
    assert [layer.out_features for layer in fl.CNF(2, hidden=5).field.layers] == [5, 5, 2]
    assert [layer.out_features for layer in TimeMLP(2, hidden=(7,)).layers] == [7, 2]


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"steps": 0}, "steps"),
        ({"steps": 10**9}, "steps must be an integer between 1 and 10000"),
        ({"probe": "uniform"}, "probe"),
        ({"adjoint": "yes", "solver": "dopri5"}, "adjoint must be True or False"),
        ({"max_steps": 10**9}, "max_steps"),
        ({"solver": "midpoint"}, "solver"),
        ({"trace": "stochastic"}, "trace"),
        ({"noise": "uniform"}, "noise"),
        ({"rtol": 0.0}, "rtol"),
        ({"atol": -1.0}, "atol"),
        ({"min_step": 0.0}, "min_step"),
        ({"adjoint": True}, "adjoint"),
        ({"trace": "discrete", "solver": "dopri5"}, "discrete"),
        ({"hidden": (0,)}, "hidden"),
        ({"activation": "relu"}, "activation"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.CNF(2, **kwargs)


def test_bad_inputs():
    t = fl.CNF(2, hidden=(8,))
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        t(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="floating"):
        t(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="field"):
        fl.CNF(2, field=lambda t, z: z)
    with pytest.raises(ValueError, match="steps must be an integer between 1 and 10000"):
        t.steps = 10**9  # the attribute is checked too
