"""The exercise checkers of every chapter.

Each checker accepts the right answer, also written other ways (numpy types, rounded to the
digits asked, a bootstrap error bar, a warning on stderr), refuses the typical wrong answers and
names them, never raises, and cannot be fooled: not by a library shortcut reached through an
alias, a helper or a tensor subclass, not by a reference of its own (there is none to import),
not by reading its frame, and not with inputs it did not draw itself.
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

import flowlab as fl
from flowlab import exercises
from flowlab.exercises import (autoregressive, change_of_variables, circles, composition, continuous,
                               flow_matching, jacobians, linear, objectives, practice, residual, tarflow,
                               universality)

f64 = torch.float64
NORMAL = torch.distributions.Normal(0.0, 1.0)
BASE = fl.StandardNormal(2).double()


# --------------------------------------------------------------------------------------------
# right answers of the chapters' solutions
# --------------------------------------------------------------------------------------------


def lognormal(x):
    return NORMAL.log_prob(torch.log(x)) - torch.log(x)


def banana(x):
    return torch.stack([x[:, 0] / 2, x[:, 1] - x[:, 0] ** 2], dim=1), x.new_full((len(x),), -math.log(2))


def linear_density(x, A=change_of_variables.A, b=change_of_variables.b):
    z = torch.linalg.solve(A, (x - b).T).T
    return BASE.log_prob(z) - torch.linalg.slogdet(A).logabsdet


def compose_inverse(layers, z):
    ladj = z.new_zeros(len(z))
    for t in reversed(layers):
        z, l = t.inverse(z)
        ladj = ladj + l
    return z, ladj


def log_prob(layers, x):
    total = x.new_zeros(len(x))
    for t in layers:
        x, l = t(x)
        total = total + l
    return BASE.log_prob(x) + total


def paired(a, b):
    d = a - b
    return float(d.mean()), float(d.std()) / math.sqrt(len(d))


def invert(layer, z):
    x, _ = layer.transformer.inverse(z, layer.conditioner.initial(z))
    for _ in range(layer.passes):
        x, _ = layer.transformer.inverse(z, layer.conditioner(x))
    return x


def mask(features, parts):
    part = fl.MaskedConditioner(features, parts=parts).part
    return part[:, None] > part[None, :]


def optimum(x):
    m = x.mean(0)
    S = (x - m).T @ (x - m) / len(x)
    L = torch.linalg.inv(torch.linalg.cholesky(S))
    return L, -L @ m


def tri_forward(x, lower, log_diag, bias):
    L = lower.tril(-1) + torch.diag(log_diag.exp())
    return x @ L.T + bias, log_diag.sum().expand(len(x))


def tri_inverse(z, lower, log_diag, bias):
    L = lower.tril(-1) + torch.diag(log_diag.exp())
    y = z - bias
    x = torch.zeros_like(y)
    for i in range(len(log_diag)):
        x[:, i] = (y[:, i] - x[:, :i] @ L[i, :i]) / L[i, i]
    return x, -log_diag.sum().expand(len(z))


def series(g, x, v, terms, inverse_k=True):
    x = x.detach().requires_grad_(True)
    gx = g(x)
    w, total = v, torch.zeros(len(x), dtype=x.dtype)
    for k in range(1, terms + 1):
        w = torch.autograd.grad(gx, x, w, retain_graph=True)[0]
        total = total + (-1) ** (k + 1) / (k if inverse_k else 1) * (w * v).sum(-1)
    return total


def icdf(u):
    return torch.sqrt(-2 * torch.log1p(-u))


def my_ess(log_w):
    w = torch.exp(log_w - log_w.max())
    return float(w.sum() ** 2 / (w**2).sum())


def rk4_step(f, t, y, h):
    k1 = f(t, y)
    k2 = f(t + h / 2, y + h / 2 * k1)
    k3 = f(t + h / 2, y + h / 2 * k2)
    k4 = f(t + h, y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def cfm_loss(field, x, eps, t):
    z = (1 - t)[:, None] * x + t[:, None] * eps
    return (field(t, z) - (eps - x)).square().sum(1).mean()


def cfm_by_rows(field, x, eps, t):  # a loop over the rows, one time each, a Python float
    total = 0.0
    for i in range(len(x)):
        z = (1 - t[i]) * x[i : i + 1] + t[i] * eps[i : i + 1]
        total += float(((field(t[i : i + 1], z) - (eps[i] - x[i])) ** 2).sum())
    return total / len(x)


def cfm_variant(field, x, eps, t, noise_first=False, target_sign=1, ends=False, reduce="norm2"):
    """The loss with one of the typical slips."""
    a, b = (eps, x) if noise_first or ends else (x, eps)
    z = (1 - t)[:, None] * a + t[:, None] * b
    target = target_sign * ((x - eps) if noise_first else (eps - x))
    r = field(t, z) - target
    return {"norm2": r.square().sum(1).mean(), "coords": r.square().mean(), "norm": r.norm(dim=1).mean(),
            "rows": r.square().sum()}[reduce]


FLOOR = math.pi / 2 * float(flow_matching.S.sum())


def bootstrap(a, b, resamples=400):
    d = a - b
    g = torch.Generator().manual_seed(1)
    means = torch.stack([d[torch.randint(len(d), (len(d),), generator=g)].mean() for _ in range(resamples)])
    return d.mean(), means.std()


KL_F = math.log(0.5) + (1 + 1) / (2 * 0.25) - 0.5
KL_R = math.log(2) + (0.25 + 1) / 2 - 0.5
LIMIT = (math.sqrt(7) / 4, math.sqrt(0.28) / 0.64)
REACH = {"a": True, "b": False, "c": False, "d": False, "e": True, "f": False}
PLANAR = 1 + (1 - math.tanh(1.0) ** 2) * -1.5


@pytest.fixture(scope="module")
def flow():
    torch.manual_seed(0)
    return fl.Flow(fl.MAF(2, hidden=(16,), layers=2), fl.StandardNormal(2))


def weights(flow, n=1000, seed=5):
    with torch.no_grad():
        x, log_q = flow.rsample_and_log_prob(n, generator=torch.Generator().manual_seed(seed))
        return fl.targets.two_modes_log_prob(x) - log_q


def jacobi_sweeps(layer, z, tol):
    x = layer.transformer.inverse(z, layer.conditioner.initial(z))[0]
    sweeps = 0
    while sweeps < layer.passes:
        new = layer.transformer.inverse(z, layer.conditioner(x))[0]
        sweeps += 1
        change = float((new - x).abs().max())
        x = new
        if change <= tol:
            break
    return x, sweeps


def sweeps_for_loop(layer, z, tol):
    x = layer.transformer.inverse(z, layer.conditioner.initial(z))[0]
    for sweep in range(1, layer.passes + 1):
        previous, x = x, layer.transformer.inverse(z, layer.conditioner(x))[0]
        if float((x - previous).abs().max()) <= tol:
            return x, sweep
    return x, layer.passes


def to_bits(log_p_v, dims, levels):
    return (-log_p_v + dims * math.log(levels / 2)) / (dims * math.log(2))


def judge(capsys, check, *args, **kwargs):
    verdict = check(*args, **kwargs)
    out = capsys.readouterr().out
    assert "could not use this answer" not in out, out  # never an error of the checker itself
    assert all(len(line) <= 79 for line in out.splitlines()), out
    return bool(verdict), out


# every checker with the right answer, and the same answer written other ways
RIGHT = {
    "lognormal": (change_of_variables.check_log_density, lognormal),
    "lognormal, numpy": (change_of_variables.check_log_density, lambda x: lognormal(x).numpy()),
    "lognormal, float32": (change_of_variables.check_log_density, lambda x: lognormal(x.float())),
    "banana": (change_of_variables.check_banana, banana),
    "banana, lists": (change_of_variables.check_banana, lambda x: tuple(v.tolist() for v in banana(x))),
    "linear density": (change_of_variables.check_linear_log_density, linear_density),
    "compose inverse": (composition.check_compose_inverse, compose_inverse),
    "log prob": (composition.check_log_prob, log_prob),
    "affine": (composition.check_affine_composition, 3.0, -7.5, math.log(3)),
    "affine, 3 digits": (composition.check_affine_composition, 3, np.float32(-7.5), 1.10),
    "paired": (circles.check_paired_difference, paired),
    "paired, population std": (circles.check_paired_difference,
                               lambda a, b: ((a - b).mean(), (a - b).std(correction=0) / len(a) ** 0.5)),
    "paired, bootstrap": (circles.check_paired_difference, bootstrap),
    "base term": (objectives.check_base_term, 10, -5 * math.log(2 * math.pi * math.e)),
    "base term, rounded": (objectives.check_base_term, 10, -14.19),
    "base term, tensor": (objectives.check_base_term, 2, torch.tensor(-math.log(2 * math.pi * math.e))),
    "kls": (objectives.check_gaussian_kls, KL_F, KL_R),
    "kls, rounded": (objectives.check_gaussian_kls, 2.81, 0.818),
    "moments": (objectives.check_moment_matching, 0.0, 9.25),
    "moments, numpy": (objectives.check_moment_matching, np.float64(0), np.array([9.25])),
    "triangular logdet": (jacobians.check_triangular_logdet, lambda L: L.diagonal().abs().log().sum()),
    "triangular logdet, a loop": (jacobians.check_triangular_logdet,
                                  lambda L: sum(math.log(abs(v)) for v in L.diagonal().tolist())),
    "low rank": (jacobians.check_low_rank_logdet,
                 lambda U, V: torch.linalg.slogdet(torch.eye(U.shape[1], dtype=U.dtype) + V.T @ U).logabsdet),
    "low rank, numpy k x k": (jacobians.check_low_rank_logdet,
                              lambda U, V: np.linalg.slogdet(np.eye(U.shape[1]) + V.numpy().T @ U.numpy())[1]),
    "cubic, from 2.53 ms": (jacobians.check_cubic_extrapolation, 2.5349e-3, 2.53e-3 * 24**3),
    "invert": (autoregressive.check_invert, invert),
    "mask": (autoregressive.check_mask, mask),
    "mask, numpy ints": (autoregressive.check_mask, lambda d, K: np.asarray(mask(d, K), dtype=int)),
    "passes": (autoregressive.check_passes, 4, 16, 16, 4),
    "passes, other types": (autoregressive.check_passes, 4.0, np.int64(16), torch.tensor(16), 4),
    "optimum": (linear.check_optimum, optimum),
    "reach": (linear.check_reachable, REACH),
    "reach, numpy bools": (linear.check_reachable, {k: np.bool_(v) for k, v in REACH.items()}),
    "triangular": (linear.check_triangular, tri_forward, tri_inverse),
    "planar": (residual.check_planar_det, PLANAR, False),
    "planar, as printed": (residual.check_planar_det, 0.370, np.float64(-1.5) >= -1),
    "iterations": (residual.check_iterations, 153),
    "iterations, float": (residual.check_iterations, 153.0),
    "series": (residual.check_series, series),
    "kr": (universality.check_gaussian_kr, torch.linalg.inv(torch.linalg.cholesky(universality.SIGMA))),
    "kr, lists": (universality.check_gaussian_kr, [[0.5, 0.0], [-0.5, 1.0]]),
    "ordering": (universality.check_ordering, "x2 first"),
    "ordering, tuple": (universality.check_ordering, (1, 0)),
    "icdf": (universality.check_inverse_cdf, icdf),
    "icdf, another form": (universality.check_inverse_cdf, lambda u: (-2 * torch.log(1 - u)).sqrt()),
    "icdf, warns": (universality.check_inverse_cdf, lambda u: icdf(torch.tensor(u))),
    "ess limit": (practice.check_ess_limit, *LIMIT),
    "ess limit, rounded": (practice.check_ess_limit, 0.661, 0.827),
    "collapse": (practice.check_collapse, -math.log(2), 1.0),
    "collapse, rounded": (practice.check_collapse, -0.693, 1),
    "ess": (practice.check_ess, my_ess),
    "ess, logsumexp": (practice.check_ess, lambda lw: torch.exp(2 * lw.logsumexp(0) - (2 * lw).logsumexp(0))),
    "linear ladj": (continuous.check_linear_ladj, -2.0),
    "linear ladj, closed form": (continuous.check_linear_ladj,
                                 torch.linalg.slogdet(torch.linalg.matrix_exp(continuous.T * continuous.A)).logabsdet),
    "order": (continuous.check_order, 16),
    "rk4": (continuous.check_rk4_step, rk4_step),
    "cfm loss": (flow_matching.check_cfm_loss, cfm_loss),
    "cfm loss, by rows": (flow_matching.check_cfm_loss, cfm_by_rows),
    "cfm loss, numpy scalar": (flow_matching.check_cfm_loss, lambda *a: np.float64(cfm_loss(*a).item())),
    "cfm loss, shape (1,)": (flow_matching.check_cfm_loss, lambda *a: cfm_loss(*a).reshape(1)),
    "straight steps": (flow_matching.check_straight_steps, 1),
    "straight steps, other types": (flow_matching.check_straight_steps, np.int64(1)),
    "straight steps, tensor": (flow_matching.check_straight_steps, torch.tensor(1.0)),
    "floor": (flow_matching.check_gaussian_floor, FLOOR),
    "floor, 3 digits": (flow_matching.check_gaussian_floor, round(FLOOR, 2)),
    "floor, float32": (flow_matching.check_gaussian_floor, np.float32(FLOOR)),
    "sweeps": (tarflow.check_sweeps, jacobi_sweeps),
    "sweeps, a for loop": (tarflow.check_sweeps, sweeps_for_loop),
    "bits": (tarflow.check_bits, to_bits),
    "bits, another form": (tarflow.check_bits,
                           lambda lp, d, levels: -(lp + d * math.log(2 / levels)) / d / math.log(2)),
    "bits, numpy": (tarflow.check_bits, lambda lp, d, levels: to_bits(lp, d, levels).numpy()),
}


@pytest.mark.parametrize("case", list(RIGHT))
def test_right_answers_pass(case, capsys):
    check, *args = RIGHT[case]
    ok, out = judge(capsys, check, *args)
    assert ok and "Correct" in out, out


def test_the_importance_estimate_right_and_rounded(flow, capsys):
    log_w = weights(flow)
    log_c = torch.logsumexp(log_w, 0) - math.log(1000)
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
    assert judge(capsys, objectives.check_importance_estimate, flow, log_w, log_c, ess)[0]
    assert judge(capsys, objectives.check_importance_estimate, flow, log_w.numpy(), float(f"{float(log_c):.3g}"),
                 float(f"{float(ess):.3g}"))[0]


def test_right_answers_on_other_instances(capsys):
    """The parameters a course variant uses: the checkers judge those instances, not the book's."""
    A, b = torch.tensor([[2.0, 0.0], [-1.0, 0.8]], dtype=f64), torch.tensor([0.5, 2.0], dtype=f64)
    assert judge(capsys, change_of_variables.check_linear_log_density, lambda x: linear_density(x, A, b), A=A, b=b)[0]
    assert not judge(capsys, change_of_variables.check_linear_log_density, linear_density, A=A, b=b)[0]
    assert judge(capsys, composition.check_affine_composition, 1.5, 1.0, math.log(1.5),
                 maps=((3.0, -2.0), (0.25, 1.0), (2.0, 0.0)))[0]
    assert judge(capsys, objectives.check_base_term, 7, -3.5 * math.log(2 * math.pi * math.e))[0]
    assert judge(capsys, objectives.check_moment_matching, 0.0, 4.49, separation=4.0, std=0.7)[0]
    assert judge(capsys, autoregressive.check_passes, 3, 9, 9, 3, layers=3, features=12, parts=4)[0]
    assert judge(capsys, residual.check_iterations, math.ceil(math.log(1e-5 * 0.2) / math.log(0.8)), c=0.8,
                 eps=1e-5)[0]
    assert judge(capsys, continuous.check_order, 81, ratio=3)[0]
    assert judge(capsys, practice.check_collapse, math.log(0.3), 1.0, weight=0.3)[0]
    assert judge(capsys, practice.check_ess_limit, math.sqrt(2 * 1.5**2 - 1) / 1.5**2,
                 math.sqrt(2 * 0.9**2 - 1) / 0.9**2, s_wide=1.5, s_narrow=0.9)[0]
    sigma = torch.tensor([[9.0, 3.0], [3.0, 5.0]], dtype=f64)
    assert judge(capsys, universality.check_gaussian_kr, [[1 / 3, 0.0], [-1 / 6, 0.5]], sigma=sigma)[0]
    assert judge(capsys, residual.check_planar_det, 1 + (1 - math.tanh(0.1) ** 2) * 0.2, True,
                 w=(1.0, -1.0), u=(0.6, 0.4), b=0.0, z=(0.3, 0.2))[0]
    assert judge(capsys, flow_matching.check_gaussian_floor, math.pi / 2 * 3.5, s=(0.5, 3.0))[0]
    assert not judge(capsys, flow_matching.check_gaussian_floor, FLOOR, s=(0.5, 3.0))[0]


def test_the_checkers_math_against_independent_computations(capsys):
    # the ESS limit against quadrature of p^2 / q
    t = np.linspace(-30, 30, 200_001)
    limits = []
    for s in (2.0, 0.8):
        p2_over_q = np.exp(-(t**2)) / (2 * math.pi) / (np.exp(-(t**2) / (2 * s * s)) / (s * math.sqrt(2 * math.pi)))
        limits.append(1 / (p2_over_q.sum() * (t[1] - t[0])))
    assert judge(capsys, practice.check_ess_limit, *limits)[0]
    # the KLs against a large Monte Carlo estimate, judged by its standard error
    x = torch.randn(400_000, generator=torch.Generator().manual_seed(3), dtype=f64)
    p, q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(1.0, 0.5)
    y = 1 + 0.5 * x
    kl_f, kl_r = float((p.log_prob(x) - q.log_prob(x)).mean()), float((q.log_prob(y) - p.log_prob(y)).mean())
    assert judge(capsys, objectives.check_gaussian_kls, kl_f, kl_r, n=400_000)[0]
    # the linear ladj against a CNF that integrates the linear field
    class Linear(torch.nn.Module):
        def forward(self, t, z):
            return z @ continuous.A.T

    cnf = fl.CNF(2, steps=16, field=Linear())
    ladj = cnf.solve(torch.zeros(1, 2, dtype=f64), 0.0, continuous.T)[1]
    assert judge(capsys, continuous.check_linear_ladj, float(ladj.detach()))[0]
    # the RK4 order against flowlab's RK4 on a linear ODE
    A = torch.tensor([[-0.2, 1.5], [-1.5, -0.2]], dtype=f64)
    y0 = torch.tensor([[1.0, 0.0]], dtype=f64)
    exact = y0 @ torch.linalg.matrix_exp(A).T
    errs = [float((fl.numerics.rk4(lambda t, y: y @ A.T, y0, steps=n) - exact).abs().max()) for n in (32, 64)]
    assert judge(capsys, continuous.check_order, round(errs[0] / errs[1]))[0]
    # the flow-matching floor against the loss of the exact marginal field, by Monte Carlo
    g = torch.Generator().manual_seed(0)
    n, s = 400_000, flow_matching.S
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=f64)
    x = mu + s * torch.randn(n, 3, generator=g, dtype=f64)
    eps = torch.randn(n, 3, generator=g, dtype=f64)
    t = torch.rand(n, 1, generator=g, dtype=f64)
    z = (1 - t) * x + t * eps
    best = -mu + (t - (1 - t) * s**2) / ((1 - t) ** 2 * s**2 + t**2) * (z - (1 - t) * mu)
    per_row = (best - (eps - x)).square().sum(1)
    assert abs(float(per_row.mean()) - FLOOR) < 4 * float(per_row.std()) / math.sqrt(n)
    # the collapsed proposal is what the exercise says: equal weights Z/2
    log_w = practice.collapsed_proposal_log_weights()
    assert float(log_w.std()) < 1e-6
    assert fl.diagnostics.log_z(log_w)[0] - fl.targets.two_modes_log_z() == pytest.approx(-math.log(2), abs=1e-6)


def test_the_input_builders_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    layers = composition.layers()
    autoregressive.layer("rnn")
    assert torch.equal(torch.rand(3), before)
    x = torch.randn(10, 2, dtype=f64)
    with torch.no_grad():  # the composition's layers do not commute
        assert float((fl.Compose(*layers)(x)[0] - fl.Compose(*reversed(layers))(x)[0]).abs().max()) > 0.1


# --------------------------------------------------------------------------------------------
# typical wrong answers: refused, and the mistake named
# --------------------------------------------------------------------------------------------

WRONG = {
    "lognormal, no log-det": (change_of_variables.check_log_density, lambda x: NORMAL.log_prob(torch.log(x)),
                              "forgot the log-det"),
    "lognormal, sign": (change_of_variables.check_log_density,
                        lambda x: NORMAL.log_prob(torch.log(x)) + torch.log(x), "wrong sign"),
    "lognormal, base at x": (change_of_variables.check_log_density,
                             lambda x: NORMAL.log_prob(x) - torch.log(x), "evaluated at x"),
    "lognormal, shape (n, 1)": (change_of_variables.check_log_density, lambda x: lognormal(x)[:, None], "squeeze"),
    "banana, inverse map": (change_of_variables.check_banana,
                            lambda x: (torch.stack([2 * x[:, 0], x[:, 1] + 4 * x[:, 0] ** 2], 1), banana(x)[1]),
                            "inverse map"),
    "banana, ladj sign": (change_of_variables.check_banana, lambda x: (banana(x)[0], -banana(x)[1]), "wrong sign"),
    "banana, scalar ladj": (change_of_variables.check_banana, lambda x: (banana(x)[0], torch.tensor(-0.69)),
                            "single number"),
    "linear, no shift": (change_of_variables.check_linear_log_density,
                         lambda x: linear_density(x + change_of_variables.b), "subtract the shift"),
    "linear, the chapter's matrix": (change_of_variables.check_linear_log_density,
                                     lambda x: linear_density(x, torch.tensor([[1.2, 0.0], [0.7, 0.6]], dtype=f64),
                                                              torch.tensor([0.5, -0.5], dtype=f64)),
                                     "another matrix"),
    "inverse, wrong order": (composition.check_compose_inverse,
                             lambda ls, z: compose_inverse(list(reversed(ls)), z), "wrong order"),
    "inverse, ladj at z": (composition.check_compose_inverse,
                           lambda ls, z: (compose_inverse(ls, z)[0], sum(t.inverse(z)[1] for t in ls)), "not at z"),
    "log prob, all at x": (composition.check_log_prob,
                           lambda ls, x: BASE.log_prob(composition_forward(ls, x)) + sum(t(x)[1] for t in ls),
                           "data point x"),
    "affine, reversed": (composition.check_affine_composition, 3.0, -5.0, math.log(3), "reverse order"),
    "paired, unpaired error bar": (circles.check_paired_difference,
                                   lambda a, b: (paired(a, b)[0], math.hypot(a.std() / len(a) ** 0.5,
                                                                             b.std() / len(b) ** 0.5)), "unpaired"),
    "paired, sign": (circles.check_paired_difference, lambda a, b: paired(b, a), "wrong sign"),
    "paired, no sqrt(n)": (circles.check_paired_difference, lambda a, b: (paired(a, b)[0], float((a - b).std())),
                           "sqrt(n)"),
    "base term, entropy": (objectives.check_base_term, 10, 5 * math.log(2 * math.pi * math.e), "entropy"),
    "kls, swapped": (objectives.check_gaussian_kls, KL_R, KL_F, "swapped"),
    "kls, off by 0.06 and 0.014": (objectives.check_gaussian_kls, KL_F + 0.06, KL_R + 0.014, "Monte Carlo"),
    "kls, off by 0.06 with 10^5 samples": (objectives.check_gaussian_kls, KL_F + 0.06, KL_R, 100_000, "n = 100000"),
    "moments, one bump": (objectives.check_moment_matching, 3.0, 0.25, "sits on one bump"),
    "triangular, trace": (jacobians.check_triangular_logdet, lambda L: L.diagonal().sum(), "trace"),
    "triangular, no abs": (jacobians.check_triangular_logdet, lambda L: L.diagonal().log().sum(), "NaN"),
    "triangular, overflow": (jacobians.check_triangular_logdet, lambda L: L.diagonal().prod().abs().log(),
                             "overflows"),
    "low rank, no identity": (jacobians.check_low_rank_logdet, lambda U, V: torch.linalg.slogdet(V.T @ U)[1],
                              "identity is missing"),
    "invert, from zero with D passes": (autoregressive.check_invert, lambda l, z: _from_zero(l, z, l.features),
                                        "network passes"),
    "invert, conditioner fed z": (autoregressive.check_invert,
                                  lambda l, z: l.transformer.inverse(z, l.conditioner(z))[0], "fed z"),
    "invert, one pass short": (autoregressive.check_invert, lambda l, z: _passes(l, z, l.passes - 1),
                               "only the first"),
    "mask, sees itself": (autoregressive.check_mask, lambda d, K: ~mask(d, K).T, "sees itself"),
    "mask, transposed": (autoregressive.check_mask, lambda d, K: mask(d, K).T, "transposed"),
    "passes, K per layer": (autoregressive.check_passes, 4, 20, 20, 4, "K - 1 per layer"),
    "optimum, unbiased covariance": (linear.check_optimum, lambda x: _optimum_divided(x, len(x) - 1), "n - 1"),
    "optimum, C not inverted": (linear.check_optimum, lambda x: (torch.linalg.cholesky(torch.cov(x.T, correction=0)),
                                                                 -x.mean(0)), "C itself"),
    "reach, by the determinant": (linear.check_reachable, dict(REACH, d=True), "determinant only"),
    "triangular, scalar ladj": (linear.check_triangular, lambda *a: (tri_forward(*a)[0], a[2].sum()), tri_inverse,
                                "single number"),
    "triangular, x @ L": (linear.check_triangular,
                          lambda x, lo, th, b: (x @ (lo.tril(-1) + torch.diag(th.exp())) + b, th.sum().expand(len(x))),
                          tri_inverse, "L^T"),
    "triangular, inverse ladj sign": (linear.check_triangular, tri_forward,
                                      lambda *a: (tri_inverse(*a)[0], -tri_inverse(*a)[1]), "wrong sign"),
    "planar, no h'": (residual.check_planar_det, 1 - 1.5, False, "derivative"),
    "planar, invertible": (residual.check_planar_det, PLANAR, True, "folds"),
    "iterations, no 1/(1-c)": (residual.check_iterations, 132, "c^k alone"),
    "series, no 1/k": (residual.check_series, lambda g, x, v, n: series(g, x, v, n, inverse_k=False), "1/k"),
    "kr, L itself": (universality.check_gaussian_kr, torch.linalg.cholesky(universality.SIGMA), "L itself"),
    "ordering, x1": (universality.check_ordering, "x1 first", "bimodal"),
    "icdf, decreasing": (universality.check_inverse_cdf, lambda u: torch.sqrt(-2 * torch.log(u)), "decreases"),
    "ess limit, 1 + chi^2": (practice.check_ess_limit, 1 / LIMIT[0], LIMIT[1], "inverse"),
    "collapse, sign": (practice.check_collapse, math.log(2), 1.0, "sign"),
    "collapse, ess 0.5": (practice.check_collapse, -math.log(2), 0.5, "equal"),
    "ess, no max": (practice.check_ess, lambda lw: float(lw.exp().sum() ** 2 / (lw.exp() ** 2).sum()), "max"),
    "linear ladj, sign": (continuous.check_linear_ladj, 2.0, "log-density"),
    "order, Euler": (continuous.check_order, 2, "first-order"),
    "rk4, Euler": (continuous.check_rk4_step, lambda f, t, y, h: y + h * f(t, y), "Euler"),
    "rk4, 5 evaluations": (continuous.check_rk4_step, lambda f, t, y, h: (f(t, y), rk4_step(f, t, y, h))[1],
                           "5 times"),
    "cfm loss, noise at t = 0": (flow_matching.check_cfm_loss, lambda *a: cfm_variant(*a, noise_first=True),
                                 "noise at t = 0"),
    "cfm loss, flipped target": (flow_matching.check_cfm_loss, lambda *a: cfm_variant(*a, target_sign=-1),
                                 "wrong sign"),
    "cfm loss, ends swapped": (flow_matching.check_cfm_loss, lambda *a: cfm_variant(*a, ends=True), "ends swapped"),
    "cfm loss, mean over coordinates": (flow_matching.check_cfm_loss, lambda *a: cfm_variant(*a, reduce="coords"),
                                        "averaged over the coordinates"),
    "cfm loss, sum over rows": (flow_matching.check_cfm_loss, lambda *a: cfm_variant(*a, reduce="rows"),
                                "sum over the rows"),
    "cfm loss, norm not squared": (flow_matching.check_cfm_loss, lambda *a: cfm_variant(*a, reduce="norm"),
                                   "not squared"),
    "straight steps, RK4": (flow_matching.check_straight_steps, 4, "RK4"),
    "straight steps, zero": (flow_matching.check_straight_steps, 0, "at least 1"),
    "straight steps, curved": (flow_matching.check_straight_steps, 16, "curved"),
    "straight steps, not whole": (flow_matching.check_straight_steps, 1.5, "whole number"),
    "floor, zero": (flow_matching.check_gaussian_floor, 0.0, "never disagree"),
    "floor, variances": (flow_matching.check_gaussian_floor, math.pi / 2 * float((flow_matching.S**2).sum()),
                         "variances"),
    "floor, standard normal data": (flow_matching.check_gaussian_floor, math.pi / 2 * 3, "standard normal data"),
    "floor, twice": (flow_matching.check_gaussian_floor, 2 * FLOOR, "twice the floor"),
    "floor, no pi / 2": (flow_matching.check_gaussian_floor, float(flow_matching.S.sum()), "pi / 2"),
    "floor, zero field": (flow_matching.check_gaussian_floor, float((1 + flow_matching.S**2).sum()), "zero field"),
    "floor, one digit": (flow_matching.check_gaussian_floor, round(FLOOR, 1), "not it"),
    "sweeps, every pass": (tarflow.check_sweeps, lambda l, z, tol: (_passes(l, z, l.passes), l.passes), "at most tol"),
    "sweeps, one that confirms": (tarflow.check_sweeps, lambda l, z, tol: _confirming(l, z, tol), "nothing left to"),
    "sweeps, constants counted": (tarflow.check_sweeps,
                                  lambda l, z, tol: (jacobi_sweeps(l, z, tol)[0], jacobi_sweeps(l, z, tol)[1] + 1),
                                  "each network pass once"),
    "sweeps, z fed": (tarflow.check_sweeps, lambda l, z, tol: _fed_z(l, z, tol), "fed z"),
    "bits, no correction": (tarflow.check_bits, lambda lp, d, levels: -lp / (d * math.log(2)), "missing"),
    "bits, correction sign": (tarflow.check_bits,
                              lambda lp, d, levels: (-lp - d * math.log(levels / 2)) / (d * math.log(2)), "wrong sign"),
    "bits, width 1/L": (tarflow.check_bits, lambda lp, d, levels: (-lp + d * math.log(levels)) / (d * math.log(2)),
                        "not 1/L"),
    "bits, nats": (tarflow.check_bits, lambda lp, d, levels: (-lp + d * math.log(levels / 2)) / d,
                   "nats per dimension"),
    "bits, per image": (tarflow.check_bits, lambda lp, d, levels: (-lp + d * math.log(levels / 2)) / math.log(2),
                        "bits per image"),
}


def _confirming(layer, z, tol):
    """One sweep more once K - 1 are made: it only confirms the fixed point."""
    x, sweeps = jacobi_sweeps(layer, z, tol)
    if sweeps == layer.passes:
        x, sweeps = layer.transformer.inverse(z, layer.conditioner(x))[0], sweeps + 1
    return x, sweeps


def _fed_z(layer, z, tol):
    x, sweeps = layer.transformer.inverse(z, layer.conditioner.initial(z))[0], 0
    while sweeps < layer.passes:
        new = layer.transformer.inverse(z, layer.conditioner(z))[0]
        sweeps += 1
        if float((new - x).abs().max()) <= tol:
            return new, sweeps
        x = new
    return x, sweeps


def composition_forward(layers, x):
    for t in layers:
        x = t(x)[0]
    return x


def _passes(layer, z, passes):
    x, _ = layer.transformer.inverse(z, layer.conditioner.initial(z))
    for _ in range(passes):
        x, _ = layer.transformer.inverse(z, layer.conditioner(x))
    return x


def _from_zero(layer, z, passes):
    x = torch.zeros_like(z)
    for _ in range(passes):
        x, _ = layer.transformer.inverse(z, layer.conditioner(x))
    return x


def _optimum_divided(x, n):
    m = x.mean(0)
    L = torch.linalg.inv(torch.linalg.cholesky((x - m).T @ (x - m) / n))
    return L, -L @ m


@pytest.mark.parametrize("case", list(WRONG))
def test_typical_mistakes_are_refused_and_named(case, capsys):
    check, *args, says = WRONG[case]
    ok, out = judge(capsys, check, *args)
    assert not ok, out
    assert "Not yet" in out and says in out, out


def test_the_importance_estimate_mistakes(flow, capsys):
    log_w = weights(flow)
    log_c = torch.logsumexp(log_w, 0) - math.log(1000)
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
    check = objectives.check_importance_estimate
    for args, says in [((log_w, log_w.mean(), ess), "ELBO"),
                       ((log_w, torch.logsumexp(log_w, 0), ess), "divide by n"),
                       ((log_w, log_c, ess / 1000), "fraction"),
                       ((-log_w, log_c, ess), "wrong sign"),
                       ((log_w[:, None], log_c, ess), "squeeze"),  # shape (1000, 1)
                       ((weights(flow, seed=6), log_c, ess), "manual_seed(5)")]:
        ok, out = judge(capsys, check, flow, *args)
        assert not ok and says in out, out
    ok, out = judge(capsys, check, None, log_w, log_c, ess)  # flow=None
    assert not ok and "pass the trained flow" in out, out


# --------------------------------------------------------------------------------------------
# the ways of fooling a checker
# --------------------------------------------------------------------------------------------

LN = torch.distributions.LogNormal
MVN = torch.distributions.MultivariateNormal
Compose = fl.Compose
ess_from_the_library = fl.diagnostics.ess


def _lognormal_helper(x):
    return LN(0.0, 1.0).log_prob(x)


SHORTCUTS = {
    "LogNormal through an alias": (change_of_variables.check_log_density, lambda x: LN(0.0, 1.0).log_prob(x)),
    "LogNormal in a helper": (change_of_variables.check_log_density, lambda x: _lognormal_helper(x)),
    "LogNormal as a bound method": (change_of_variables.check_log_density, LN(0.0, 1.0).log_prob),
    "scipy after tolist": (change_of_variables.check_log_density,
                           lambda x: torch.tensor(scipy.stats.lognorm.logpdf(x.tolist(), 1.0))),
    "MultivariateNormal through an alias": (change_of_variables.check_linear_log_density,
                                            lambda x: MVN(change_of_variables.b, change_of_variables.A
                                                          @ change_of_variables.A.T).log_prob(x)),
    "Compose through an alias": (composition.check_compose_inverse, lambda ls, z: Compose(*ls).inverse(z)),
    "Flow for the density": (composition.check_log_prob,
                             lambda ls, x: fl.Flow(Compose(*ls), fl.StandardNormal(2).double()).log_prob(x)),
    "slogdet of a subclass stripped": (jacobians.check_triangular_logdet,
                                       lambda L: L.as_subclass(torch.Tensor).slogdet()[1]),
    "matrix_power(L, -1)": (jacobians.check_triangular_logdet,
                            lambda L: -torch.linalg.matrix_power(L, -1).diagonal().abs().log().sum()),
    "tensorinv": (jacobians.check_triangular_logdet,
                  lambda L: -torch.linalg.tensorinv(L, ind=1).diagonal().abs().log().sum()),
    "an SVD": (jacobians.check_triangular_logdet, lambda L: torch.linalg.svdvals(L).log().sum()),
    "eig": (jacobians.check_triangular_logdet, lambda L: torch.linalg.eigvals(L).abs().log().sum()),
    "numpy slogdet": (jacobians.check_triangular_logdet, lambda L: np.linalg.slogdet(L.numpy())[1]),
    "numpy slogdet of the d x d matrix": (jacobians.check_low_rank_logdet,
                                          lambda U, V: np.linalg.slogdet(np.eye(len(U)) + U.numpy() @ V.numpy().T)[1]),
    "the layer's inverse through the class": (autoregressive.check_invert,
                                              lambda l, z: fl.Autoregressive.inverse(l, z)[0]),
    "a solver for the triangular inverse": (linear.check_triangular, tri_forward,
                                            lambda z, lo, th, b: (torch.linalg.solve_triangular(
                                                lo.tril(-1) + torch.diag(th.exp()), (z - b).T, upper=False).T,
                                                -th.sum().expand(len(z)))),
    "numpy inv for the triangular inverse": (linear.check_triangular, tri_forward,
                                             lambda z, lo, th, b: (torch.from_numpy(
                                                 (z - b).numpy() @ np.linalg.inv(
                                                     (lo.tril(-1) + torch.diag(th.exp())).numpy()).T),
                                                 -th.sum().expand(len(z)))),
    "the full Jacobian": (residual.check_series,
                          lambda g, x, v, n: series(lambda y: g(y) + 0 * torch.autograd.functional.jacobian(
                              lambda w: g(w).sum(0), y).sum(), x, v, n)),
    "scipy's quantile": (universality.check_inverse_cdf, lambda u: torch.from_numpy(scipy.stats.rayleigh.ppf(u))),
    "a flowlab quantile table": (universality.check_inverse_cdf,
                                 lambda u: fl.numerics.quantile(u, *_rayleigh_table())),
    "dg.ess through an alias": (practice.check_ess, ess_from_the_library),
    "dg.ess in a lambda": (practice.check_ess, lambda lw: fl.diagnostics.ess(lw)),
    "flowlab's RK4": (continuous.check_rk4_step, lambda f, t, y, h: fl.numerics.rk4(f, y, t, t + h, steps=1)),
    "the layer's Jacobi through the class": (tarflow.check_sweeps, lambda l, z, tol: (
        fl.Autoregressive.jacobi(l, z, tol).x, fl.Autoregressive.jacobi(l, z, tol).sweeps)),
    "flowlab's jacobi iteration": (tarflow.check_sweeps, lambda l, z, tol: tuple(fl.numerics.jacobi(
        lambda x: l.transformer.inverse(z, l.conditioner(x))[0],
        l.transformer.inverse(z, l.conditioner.initial(z))[0], l.passes, tol))[:2]),
}


def _rayleigh_table():
    grid = torch.linspace(0, 12, 4001, dtype=f64)
    return grid, 1 - torch.exp(-grid**2 / 2)


@pytest.mark.parametrize("case", list(SHORTCUTS))
def test_forbidden_shortcuts_are_refused_however_reached(case, capsys):
    check, *args = SHORTCUTS[case]
    ok, out = judge(capsys, check, *args)
    assert not ok, out
    assert "Correct" not in out, out


def test_no_reference_is_left_to_import():
    """The answer keys that graders found as checker attributes are gone; what remains private
    builds inputs, watches calls or judges an answer (it never hands out the right one)."""
    gone = {"_reference", "_true_mask", "_sweeps", "ess_limit", "_rayleigh_quantile", "_reachable",
            "_planar_numbers", "gaussian_kl", "_gaussian_kl", "_ess", "_triangular", "_call", "_close", "_as"}
    modules = [autoregressive, change_of_variables, circles, composition, continuous, flow_matching, jacobians,
               linear, objectives, practice, residual, tarflow, universality]
    for module in modules:
        assert not gone & set(vars(module)), module.__name__
        private = {n for n, v in vars(module).items() if n.startswith("_") and callable(v) and not n.startswith("__")
                   and getattr(v, "__module__", None) == module.__name__}
        allowed = {"_watched_call", "_std_normal_log_prob", "_forbidden", "_pair", "_setup", "_diagnose_invert",
                   "_big_triangular", "_is_inf", "_check_triangular_value", "_check_low_rank_value",
                   "_gaussian_data", "_diagnose_points", "_maps", "_judge_series", "_matrix", "_agree", "_choice",
                   "_kl_sd", "_field", "_typical"}
        assert private <= allowed, (module.__name__, private - allowed)


def _thief(shape_of):
    """A student function that searches the checker's frames for a value shaped like the answer
    (``shape_of(args)``) other than its own arguments, and returns it."""

    def steal(*args):
        want = shape_of(args)
        frame = sys._getframe(1)
        while frame is not None:
            for name, value in frame.f_locals.items():
                if isinstance(value, torch.Tensor) and tuple(value.shape) == want and all(value is not a for a in args):
                    return value.clone()
            frame = frame.f_back
        return torch.zeros(want, dtype=f64)

    return steal


THIEVES = {
    "lognormal": (change_of_variables.check_log_density, _thief(lambda a: tuple(a[0].shape))),
    "linear density": (change_of_variables.check_linear_log_density, _thief(lambda a: (len(a[0]),))),
    "invert": (autoregressive.check_invert, _thief(lambda a: tuple(a[1].shape))),
    "icdf": (universality.check_inverse_cdf, _thief(lambda a: tuple(a[0].shape))),
    "optimum": (linear.check_optimum, lambda x: (_thief(lambda a: (x.shape[1], x.shape[1]))(x),
                                                _thief(lambda a: (x.shape[1],))(x))),
    "rk4": (continuous.check_rk4_step, lambda f, t, y, h: _thief(lambda a: tuple(y.shape))(y)),
    "cfm loss": (flow_matching.check_cfm_loss, _thief(lambda a: ())),
    "sweeps": (tarflow.check_sweeps, lambda l, z, tol: (_thief(lambda a: tuple(z.shape))(l, z, tol), l.passes)),
    "bits": (tarflow.check_bits, _thief(lambda a: tuple(a[0].shape))),
}


@pytest.mark.parametrize("case", list(THIEVES))
def test_the_checkers_frames_hold_no_answer(case, capsys):
    check, thief = THIEVES[case]
    ok, out = judge(capsys, check, thief)
    assert not ok, out


def test_no_two_calls_draw_the_same_inputs():
    """Fresh inputs at every call: a function that remembers the first call's answer fails the next."""
    seen = {}

    def memorizing(x):
        key = float(x.sum())
        seen.setdefault("first", (key, lognormal(x)))
        return seen["first"][1] if key != seen["first"][0] else lognormal(x)

    assert change_of_variables.check_log_density(memorizing)
    assert not change_of_variables.check_log_density(memorizing)
    remembered = {}

    def remembering(field, x, eps, t):
        remembered.setdefault("value", float(cfm_loss(field, x, eps, t)))
        return remembered["value"]

    assert flow_matching.check_cfm_loss(remembering)
    assert not flow_matching.check_cfm_loss(remembering)


def test_multiple_choice_self_check_reveals_nothing(capsys):
    """The self-check of a graded multiple-choice question says the same for every option."""
    outs = set()
    for option in ("x1 first", "x2 first", "both", "neither"):
        assert exercises.answered(prediction=option, choices=("x1 first", "x2 first", "both", "neither"))
        outs.add(capsys.readouterr().out.replace(repr(option), "OPTION"))
    assert len(outs) == 1
    for verdict in (True, False, np.bool_(True)):
        assert exercises.answered(det=0.37, invertible=verdict)
    assert not exercises.answered(det=None)
    assert not exercises.answered(prediction="sideways", choices=("x1 first", "x2 first"))


# --------------------------------------------------------------------------------------------
# a checker never raises, and shows no Out[] in a notebook
# --------------------------------------------------------------------------------------------


def _raises(*args):
    raise ZeroDivisionError("division by zero")


def _stub(*args):
    raise NotImplementedError


ODD = [None, "x", object(), float("nan"), float("inf"), {}, (), [1.0, 2.0], torch.tensor([1.0, 2.0]),
       np.array([[-3.5]]), _raises, _stub, lambda *a: None, lambda *a: "x", lambda *a: (None, None),
       lambda *a: torch.full((3,), float("nan"))]

CHECKERS = [(name, fn) for module in (autoregressive, change_of_variables, circles, composition, continuous,
                                      flow_matching, jacobians, linear, objectives, practice, residual, tarflow,
                                      universality)
            for name, fn in vars(module).items() if name.startswith("check_")]


@pytest.mark.parametrize("name, check", CHECKERS, ids=[n for n, _ in CHECKERS])
def test_no_checker_raises_on_an_odd_answer(name, check, capsys):
    required = [p for p in inspect.signature(check).parameters.values() if p.default is inspect.Parameter.empty]
    for odd in ODD:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nor does it leave a warning on stderr
            verdict = check(*[odd] * len(required))
        out = capsys.readouterr().out
        assert not verdict and "Correct" not in out and out.strip(), (odd, out)


def test_a_verdict_prints_as_a_bool_and_shows_no_out_in_a_notebook():
    verdict = continuous.check_order(16)
    assert verdict == True and repr(verdict) == "True" and bool(continuous.check_order(3)) is False  # noqa: E712
    assert hasattr(verdict, "_ipython_display_")
