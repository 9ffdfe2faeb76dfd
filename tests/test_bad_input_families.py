"""Bad and unusual input for the families added after the first ones (residual, continuous, the
CDF and Knothe-Rosenblatt helpers, the diagnostics, the new targets, the quantile lab, the
numerics under them): a ValueError that names the argument the user passed and says what to pass,
never a hang, a silent number or a misleading message; valid but degenerate input works.

One section per class of failure; each case is cheap (no training, tiny grids)."""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
from flowlab import diagnostics as dg
from flowlab import numerics as N
from flowlab import quantile_lab as ql

f64 = torch.float64
nan, inf = float("nan"), float("inf")
T = fl.targets


def _half(x):
    return 0.5 * x


def _const(value):
    return lambda x: torch.full((len(x),), value, dtype=x.dtype)


GRID3 = torch.tensor([0.0, 1.0, 2.0], dtype=f64)
TABLE3 = torch.tensor([0.0, 0.5, 1.0], dtype=f64)


# ----------------------------------------------------------------------------- 1. every request for work is capped


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: N.rk4(lambda t, y: -y, torch.ones(4, 2), steps=10**9), r"steps must be an integer between 1 and 10000 .*dopri5"),
        (lambda: N.euler(lambda t, y: -y, torch.ones(4, 2), steps=10**9), r"steps must be an integer between 1 and 10000"),
        (lambda: N.odeint(lambda t, y: -y, torch.ones(1, 2), solver="dopri5", max_steps=10**9), r"max_steps must be an integer between 1 and 10000"),
        (lambda: fl.CNF(2, steps=10**9), r"steps must be an integer between 1 and 10000"),
        (lambda: fl.CNF(2).solve(torch.zeros(3, 2), 0, 1e12), r"time span \|end - start\| = 1e\+12 is longer than 1000"),
        (lambda: fl.CNF(2, steps=5000).solve(torch.zeros(3, 2), 0, 10), r"steps \* \|end - start\| = 5000 \* 10 asks for 50000 fixed steps"),
        (lambda: N.logdet_series(_half, torch.zeros(3, 2), terms=10**9), r"terms must be an integer between 1 and 1000"),
        (lambda: N.logdet_roulette(_half, torch.zeros(3, 2), p=1e-12), r"p \(the stopping probability of the roulette\) must be a number in \[0.01, 1\)"),
        (lambda: N.logdet_roulette(_half, torch.zeros(3, 2), exact_terms=10**9), r"exact_terms must be an integer between 0 and 1000"),
        (lambda: fl.ResidualBlock(2, terms=10**9), r"terms must be an integer between 1 and 1000"),
        (lambda: fl.ResidualBlock(2, p=1e-9), r"p \(the stopping probability"),
        (lambda: fl.ResidualBlock(2, max_iter=10**9), r"max_iter must be an integer between 1 and 100000"),
        (lambda: N.fixed_point(_half, torch.zeros(2, 2), max_iter=10**9), r"max_iter must be an integer between 1 and 100000"),
        (lambda: fl.ResidualFlow(2, layers=10**6), r"layers must be an integer between 1 and 256"),
        (lambda: fl.PlanarFlow(2, layers=10**6), r"layers must be an integer between 1 and 256"),
        (lambda: fl.SylvesterFlow(2, layers=10**6), r"layers must be an integer between 1 and 256"),
        (lambda: fl.Sylvester(2, reflections=10**6), r"reflections must be an integer between 1 and 2"),
        (lambda: fl.ResidualBlock(2, hidden=10**6), r"hidden: every hidden width must be at most 4096"),
        (lambda: fl.CNF(2, hidden=(10**6,)), r"hidden: every hidden width must be at most 4096"),
        (lambda: ql.exact_map((0.5, 0.5), (-1.0, 1.0), (0.5, 0.5), cells=10**7), r"cells must be an integer between 1 and 100000"),
        (lambda: N.cdf_table(torch.exp, torch.linspace(0, 1, 10**6)), r"grid has 999999 cells, more than 100000"),
        (lambda: N.knothe_rosenblatt(_const(0.0), torch.zeros(1, 2), 3, cells=10**4), r"cells \* nodes = 80000 is more than 4096"),
        (lambda: N.box_grid(1.0, cells=10**4, nodes=8), r"box_grid: cells=\(10000, 10000\) with nodes=8 makes 6,400,000,000 points"),
        (lambda: dg.quadrature_grid(points=10**4), r"points must be an integer between 1 and 1024"),
        (lambda: dg.log_z_quadrature(_const(0.0), points=10**4), r"points must be an integer between 1 and 1024"),
        (lambda: T.funnel_marginal_log_prob(torch.zeros(2), nodes=10**5), r"nodes must be an integer between 1 and 1024"),
        (lambda: T.energy_log_z("U1", panels=10**6), r"panels must be an integer between 1 and 1024"),
        (lambda: T.circles(10**12), r"n must be at most 10,000,000 samples per call"),
        (lambda: T.funnel(10**12), r"n must be at most 10,000,000"),
        (lambda: T.three_bumps(10**12), r"n must be at most 10,000,000"),
        (lambda: dg.random_walk_mh(T.banana_log_prob, torch.zeros(1000, 2), 10**6, 0.5), r"steps \* chains = 1000000 \* 1000 is more than 10,000,000 states"),
        (lambda: ql.record(steps=10**9), r"steps must be an integer between 1 and 20000"),
        (lambda: ql.record(steps=2000, every=1), r"makes 2001 snapshots, more than 200: raise every to at least 11"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 2 else "",
)
def test_requests_for_work_are_capped(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_the_caps_leave_the_useful_range_alone():
    # the largest allowed requests still run (briefly)
    y = N.euler(lambda t, y: -y, torch.ones(1, 1, dtype=f64), steps=N.MAX_STEPS)
    assert abs(float(y) - math.exp(-1)) < 1e-4  # first order: about exp(-1) h / 2
    _, ladj = N.logdet_roulette(_half, torch.zeros(2, 2, dtype=f64), torch.Generator().manual_seed(0), p=N.MIN_P)
    assert torch.isfinite(ladj).all()


# ----------------------------------------------------------------------------- 2. quadrature never turns inf/NaN into numbers


BANANA_BOX = (-7, 7, -4, 20)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: dg.kl_quadrature(T.banana_log_prob, _const(-inf), BANANA_BOX, 32), r"log_q is -inf \(zero density\) at every quadrature node"),
        (lambda: dg.kl_quadrature(_const(-inf), T.banana_log_prob, BANANA_BOX, 32), r"log_p is -inf \(zero density\) at every quadrature node"),
        (lambda: dg.log_z_quadrature(_const(inf), points=8), r"log_prob_fn returned NaN or \+inf at 64 of the 64 quadrature nodes"),
        (lambda: dg.log_z_quadrature(_const(nan), points=8), r"log_prob_fn returned NaN or \+inf"),
        (lambda: dg.log_z_quadrature(_const(-inf), points=8), r"log_prob_fn is -inf \(zero density\) at every quadrature node"),
        (lambda: dg.chi2_quadrature(T.banana_log_prob, _const(nan), BANANA_BOX, 32), r"log_q returned NaN"),
        (lambda: dg.chi2_quadrature(T.banana_log_prob, lambda x: x[:, 0], BANANA_BOX, 32), None),
        (lambda: dg.log_z_quadrature(lambda x: x, points=8), r"log_prob_fn must map \(n, 2\) points to shape \(n,\)"),
        (lambda: dg.log_z_quadrature(_const(0.0), box=(1, 0, 0, 1)), r"box must hold finite intervals with low < high"),
        (lambda: dg.log_z_quadrature(_const(0.0), box="square"), r"box must be a number L"),
    ],
    ids=["kl-q-zero", "kl-p-zero", "logz-inf", "logz-nan", "logz-zero", "chi2-nan", "chi2-fine", "shape", "box-order", "box-str"],
)
def test_quadrature_refuses_what_is_not_a_density(call, match):
    if match is None:  # a proper (if odd) pair of densities gives a finite, non-negative number
        value = call()
        assert math.isfinite(value) and value >= -1e-9
        return
    with pytest.raises(ValueError, match=match):
        call()


def test_kl_and_chi2_are_infinite_where_q_vanishes_under_p():
    box = (-6, 6, -6, 6)
    p = lambda x: -0.5 * (x**2).sum(-1)  # noqa: E731
    half_q = lambda x: torch.where(x[:, 0] > 0, -0.5 * (x**2).sum(-1), torch.full_like(x[:, 0], -inf))  # noqa: E731
    assert dg.kl_quadrature(p, half_q, box, 64) == math.inf
    assert dg.chi2_quadrature(p, half_q, box, 64) == math.inf
    # the other way round, p = 0 where q lives: those points contribute nothing
    kl = dg.kl_quadrature(half_q, p, box, 64)
    assert kl == pytest.approx(math.log(2), abs=1e-3)  # KL(p restricted to a half || p) = log 2


# ----------------------------------------------------------------------------- 3. the CDF helpers check tables and levels


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: N.quantile(torch.tensor([0.5], dtype=f64), GRID3, torch.tensor([0.0, 1.0, 0.5], dtype=f64)), r"cdf must be a non-decreasing table"),
        (lambda: N.quantile(torch.tensor([0.5], dtype=f64), GRID3, torch.tensor([0.0, nan, 1.0], dtype=f64)), r"cdf must hold finite floating point values"),
        (lambda: N.quantile(torch.tensor([0.5], dtype=f64), GRID3, torch.tensor([0.0, 0.5, 0.9], dtype=f64)), None),
        (lambda: N.quantile(torch.tensor([0.95], dtype=f64), GRID3, torch.tensor([0.0, 0.5, 0.9], dtype=f64)), r"some levels u exceed the table's last value 0.9"),
        (lambda: N.quantile(torch.tensor([nan], dtype=f64), GRID3, TABLE3), r"u contains NaN or infinite values"),
        (lambda: N.quantile(torch.tensor([1.5], dtype=f64), GRID3, TABLE3), r"u must hold levels in \[0, 1\], got values from 1.5 to 1.5"),
        (lambda: N.quantile(torch.tensor([-0.1], dtype=f64), GRID3, TABLE3), r"u must hold levels in \[0, 1\]"),
        (lambda: N.quantile(torch.tensor([1, 0]), GRID3, TABLE3), r"u must be a floating point tensor of levels"),
        (lambda: N.quantile(torch.tensor([0.5], dtype=f64), torch.tensor([0.0, 2.0, 1.0]), TABLE3), r"grid must be finite and strictly increasing"),
        (lambda: N.quantile(torch.tensor([0.5], dtype=f64), torch.tensor([0.0, nan, 1.0]), TABLE3), r"grid must be finite and strictly increasing"),
        (lambda: N.pchip(torch.tensor([nan], dtype=f64), GRID3, TABLE3), r"x contains NaN or infinite values"),
        (lambda: N.pchip(torch.tensor([0.5], dtype=f64), GRID3, torch.tensor([0.0, inf, 1.0], dtype=f64)), r"fp contains NaN or infinite values"),
        (lambda: N.generalized_inverse(torch.special.ndtr, torch.tensor([nan], dtype=f64), -1.0, 1.0), r"u contains NaN"),
        (lambda: N.generalized_inverse(lambda x: x[:1], torch.tensor([0.5, 0.6], dtype=f64), -1.0, 1.0), r"F must be applied elementwise"),
        (lambda: N.generalized_inverse(lambda x: x * nan, torch.tensor([0.5], dtype=f64), -1.0, 1.0), r"F returned NaN"),
        (lambda: N.cdf_table(lambda t: torch.full_like(t, nan), GRID3), r"density returned negative, complex or NaN values"),
        (lambda: N.cdf_table(lambda t: torch.zeros_like(t), GRID3), r"the density's integral over \[0, 2\] is 0"),
        (lambda: N.cdf_table(lambda t: torch.full_like(t, inf), GRID3), r"the density's integral over \[0, 2\] is inf"),
    ],
    ids=["non-monotone", "nan-table", "table-short-ok", "table-short", "nan-level", "level-above", "level-below", "int-levels",
         "grid-order", "grid-nan", "pchip-nan-x", "pchip-inf-fp", "ginv-nan", "ginv-shape", "ginv-F-nan", "table-nan",
         "table-zero", "table-inf"],
)
def test_cdf_helpers_check_tables_and_levels(call, match):
    if match is None:
        assert torch.isfinite(call()).all()
        return
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: N.knothe_rosenblatt(_const(-inf), torch.zeros(1, 2, dtype=f64), 4, cells=8), r"log_prob is -inf \(zero density\) on the whole box"),
        (lambda: N.knothe_rosenblatt(_const(nan), torch.zeros(1, 2, dtype=f64), 4, cells=8), r"log_prob returned NaN or \+inf inside the box"),
        (lambda: N.knothe_rosenblatt(lambda x: x, torch.zeros(1, 2, dtype=f64), 4, cells=8), r"log_prob must map \(n, 2\) points to \(n,\) log-densities"),
        (lambda: N.knothe_rosenblatt(_const(0.0), torch.tensor([[nan, 0.0]]), 4, cells=8), r"x contains NaN or infinite values"),
        (lambda: N.knothe_rosenblatt(_const(0.0), torch.zeros(1, 2), 4, order="xy"), r"order must be \(0, 1\)"),
        (lambda: N.knothe_rosenblatt(_const(0.0), torch.zeros(1, 2), ((0, 1), (1, 0))), r"box must hold finite intervals"),
    ],
    ids=["zero", "nan", "shape", "x-nan", "order", "box"],
)
def test_knothe_rosenblatt_checks_its_density(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- 5. seeds go through one check


@pytest.mark.parametrize(
    "sampler",
    [T.funnel, T.three_bumps, T.rosenbrock, T.mixture_1d, T.circles, T.banana],
    ids=["funnel", "three_bumps", "rosenbrock", "mixture_1d", "circles", "banana"],
)
@pytest.mark.parametrize("seed", [2.5, "abc", 2**70, -1, True])
def test_seeds_are_refused_not_rounded(sampler, seed):
    with pytest.raises(ValueError, match=r"seed must be an integer between 0 and 2\*\*64 - 1"):
        sampler(10, seed=seed)


def test_seeds_that_are_integers_work_and_differ():
    assert torch.equal(T.funnel(10, seed=2), T.funnel(10, seed=2))
    assert not torch.equal(T.funnel(10, seed=2), T.funnel(10, seed=3))
    assert torch.equal(T.three_bumps(5, seed=2**64 - 1), T.three_bumps(5, seed=2**64 - 1))


@pytest.mark.parametrize(
    "call",
    [
        lambda: T.logistic_data(seed=1.5),
        lambda: T.logistic_data(seed=None),
        lambda: T.logistic_log_prob(torch.zeros(2, 2), seed="0"),
        lambda: ql.panel(seed=0.5),
        lambda: ql.record(seed=1.5),
    ],
    ids=["logistic_data", "logistic_data-None", "logistic_log_prob", "panel", "record"],
)
def test_other_seeds(call):
    with pytest.raises(ValueError, match=r"seed must be an integer"):
        call()


# ----------------------------------------------------------------------------- 6, 7. the new targets check their parameters and inputs


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: T.rosenbrock(3, curvature=nan), r"curvature must be a finite number, got nan"),
        (lambda: T.rosenbrock(3, curvature=inf), r"curvature must be a finite number"),
        (lambda: T.rosenbrock(3, curvature=1e39), r"curvature must be a number between -1e\+06 and 1e\+06"),
        (lambda: T.rosenbrock(3, scale=1e30), r"scale must be a positive number at most 1e\+06"),
        (lambda: T.rosenbrock_log_prob(torch.zeros(1, 2), width=0), r"width must be a positive number"),
        (lambda: T.rosenbrock_kr(torch.zeros(1, 2), curvature=nan), r"curvature must be a finite number"),
        (lambda: T.funnel(3, scale=1e30), r"scale must be a positive number at most 20"),
        (lambda: T.funnel_log_prob(torch.zeros(1, 2), scale=nan), r"scale must be a positive number"),
        (lambda: T.funnel_log_z(scale=-1), r"scale must be a positive number"),
        (lambda: T.logistic_log_prob(torch.zeros(1, 2), prior_std=0), r"prior_std must be a positive number"),
        (lambda: T.mixture_1d(3, weights=(0.5, nan), locs=(0, 1), scales=(1, 1)), r"weights must be positive and sum to 1"),
        (lambda: T.mixture_1d(3, weights=(1.0,), locs=(1e300,), scales=(1.0,)), r"locs and scales must be at most 1e6"),
        (lambda: T.three_bumps_log_prob(torch.zeros(2, 2, dtype=torch.complex64)), r"x must hold real numbers, got dtype torch.complex64"),
        (lambda: T.three_bumps_kr(torch.zeros(2, 2), order=(1, 1)), r"order must be \(0, 1\)"),
        (lambda: T.u1_log_prob(torch.zeros(2, 3)), r"z must have shape \(batch, 2\)"),
        (lambda: T.log_z("nope"), r"name must be one of"),
    ],
    ids=["curv-nan", "curv-inf", "curv-big", "scale-big", "width0", "kr-curv", "funnel-scale", "funnel-nan",
         "funnel-logz", "prior", "mixture-nan", "mixture-big", "complex", "kr-order", "u1-shape", "log_z-name"],
)
def test_new_targets_check_their_settings(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "log_prob",
    [T.three_bumps_log_prob, T.rosenbrock_log_prob, T.funnel_log_prob, T.logistic_log_prob, T.u1_log_prob,
     T.u3_log_prob, T.banana_log_prob, T.circles_log_prob, T.two_modes_log_prob, T.three_bumps_kr],
    ids=["three_bumps", "rosenbrock", "funnel", "logistic", "U1", "U3", "banana", "circles", "two_modes", "kr"],
)
def test_integer_points_are_floats(log_prob):
    ints = torch.tensor([[0, 1], [1, -1]])
    assert torch.allclose(log_prob(ints), log_prob(ints.float()))
    assert torch.isfinite(log_prob(ints)).all()


def test_integer_points_of_the_1d_mixture():
    ints = torch.tensor([[0], [1]])
    assert torch.allclose(T.mixture_1d_log_prob(ints), T.mixture_1d_log_prob(ints.float()))
    assert torch.allclose(T.mixture_1d_cdf(ints), T.mixture_1d_cdf(ints.float()))


# ----------------------------------------------------------------------------- 8. NaN input is named as NaN input


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: N.rk4(lambda t, y: -y, torch.tensor([[nan, 1.0]])), r"y0 contains NaN or infinite values"),
        (lambda: N.euler(lambda t, y: -y, torch.tensor([[inf, 1.0]])), r"y0 contains NaN or infinite values"),
        (lambda: N.odeint(lambda t, y: -y, torch.tensor([[nan, 1.0]]), solver="dopri5"), r"y0 contains NaN"),
        (lambda: N.rk4(lambda t, y: y * nan, torch.ones(1, 2)), r"f returned NaN or infinite values at the initial state"),
        (lambda: N.odeint(lambda t, y: y * nan, torch.ones(1, 2), solver="dopri5"), r"f returned NaN or infinite values"),
        (lambda: N.fixed_point(_half, torch.tensor([[nan, 1.0]])), r"x0 contains NaN or infinite values"),
        (lambda: N.fixed_point(lambda v: v * nan, torch.ones(1, 2)), r"the map returned NaN or infinite values at the first iteration"),
        (lambda: fl.ResidualBlock(2).inverse(torch.tensor([[nan, 1.0]])), r"z must be a floating point tensor of finite values"),
        (lambda: fl.CNF(2).solve(torch.tensor([[nan, 1.0]])), r"x contains NaN or infinite values"),
        (lambda: fl.CNF(2, solver="dopri5")(torch.tensor([[nan, 1.0]])), r"x contains NaN or infinite values"),
        (lambda: fl.Planar(2)(torch.tensor([[nan, 1.0]])), r"x must be a floating point tensor of finite values"),
    ],
    ids=["rk4", "euler", "dopri5", "rk4-field", "dopri5-field", "fixed_point", "fixed_point-map", "iresnet",
         "cnf", "cnf-dopri5", "planar"],
)
def test_nan_input_is_named_as_such(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    text = str(info.value)
    assert "more steps" not in text and "too stiff" not in text and "not a contraction" not in text


def test_a_blow_up_is_still_called_one():
    with pytest.raises(ValueError, match=r"rk4 with steps=1 produced NaN or infinite values: the solution blows up"):
        N.rk4(lambda t, y: y**3, torch.full((1, 1), 1e30, dtype=f64), steps=1)


# ----------------------------------------------------------------------------- 9. NaN that passes silently


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: dg.log_weights(fl.Flow(fl.MAF(2).inv, fl.StandardNormal(2)), _const(nan), 10), r"log_prob_fn returned NaN or \+inf"),
        (lambda: dg.independence_mh(torch.zeros(3, 2, 2), torch.full((3, 2), nan)), r"log_w contains NaN or \+inf"),
        (lambda: dg.independence_mh(torch.zeros(3, 2, 2), torch.full((3, 2), -inf)), r"every proposal of some chain has weight zero"),
        (lambda: dg.random_walk_mh(_const(nan), torch.zeros(2, 2), 5, 0.5), r"log_prob_fn returned NaN or \+inf"),
        (lambda: dg.random_walk_mh(T.banana_log_prob, torch.tensor([[nan, 0.0]]), 5, 0.5), r"start must hold finite floating point values"),
    ],
    ids=["log_weights", "imh-nan", "imh-zero", "rwmh-nan", "rwmh-start"],
)
def test_nan_in_the_samplers_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- 10. valid but degenerate input works


def test_empty_batches():
    empty = torch.zeros(0, 2)
    for transform in (fl.ResidualBlock(2), fl.ResidualBlock(2, ladj="series"), fl.ResidualBlock(2, ladj="roulette"),
                      fl.Planar(2), fl.CNF(2, hidden=8), fl.CNF(2, hidden=8, solver="dopri5"),
                      fl.CNF(2, hidden=8, trace="discrete")):
        z, ladj = transform(empty)
        assert z.shape == (0, 2) and ladj.shape == (0,)
    assert fl.ResidualBlock(2).inverse(empty)[0].shape == (0, 2)
    assert fl.CNF(2, hidden=8).signed_det(empty).shape == (0,)
    assert N.quantile(torch.zeros(0, dtype=f64), GRID3, TABLE3).shape == (0,)
    assert ql.exact_map((0.5, 0.5), (-1.0, 1.0), (0.5, 0.5), z=torch.zeros(0))[1].shape == (0,)
    assert N.knothe_rosenblatt(_const(0.0), torch.zeros(0, 2), 3, cells=4).shape == (0, 2)
    assert N.rk4(lambda t, y: -y, torch.zeros(0, 2)).shape == (0, 2)


def test_one_row_and_float64():
    x = torch.tensor([[0.3, -0.2]], dtype=f64)
    for transform in (fl.ResidualBlock(2, hidden=8), fl.Planar(2), fl.CNF(2, hidden=8)):
        transform = transform.double()
        z, ladj = transform(x)
        assert z.dtype == f64 and ladj.shape == (1,)
    assert dg.ess(torch.tensor([0.3])) == 1.0


def test_ess_and_log_z_are_shift_invariant():
    assert dg.ess([1e308, 1e308]) == pytest.approx(2.0)
    lw = torch.tensor([0.0, -1.0, 0.5], dtype=f64)
    assert dg.ess(lw + 700.0) == pytest.approx(dg.ess(lw))  # e^700 and its square overflow unshifted
    estimate, se = dg.log_z(lw + 700.0)
    assert estimate == pytest.approx(dg.log_z(lw)[0] + 700.0) and se == pytest.approx(dg.log_z(lw)[1])
    assert dg.ess(torch.tensor([3, 3])) == pytest.approx(2.0)  # integer log-weights


def test_ess_refuses_complex_and_empty_weights():
    with pytest.raises(ValueError, match=r"log_w must hold real log-weights, got dtype torch.complex64"):
        dg.ess(torch.tensor([1 + 1j, 0j]))
    with pytest.raises(ValueError, match=r"log_w must be a 1-D tensor of real log-weights"):
        dg.ess([1 + 1j, 2])
    with pytest.raises(ValueError, match=r"at least one log-weight"):
        dg.ess(torch.zeros(0))
    with pytest.raises(ValueError, match=r"at least 2 log-weights"):
        dg.log_z(torch.zeros(1))


def test_planar_with_w_zero_is_a_translation():
    t = fl.Planar(2).double()
    with torch.no_grad():
        t.w.zero_()
        t.u.copy_(torch.tensor([0.5, -1.0]))
        t.b.fill_(0.7)
    z = torch.randn(4, 2, dtype=f64)
    x, ladj = t.inverse(z)
    assert torch.allclose(x, z + math.tanh(0.7) * torch.tensor([0.5, -1.0], dtype=f64))
    assert torch.equal(ladj, torch.zeros(4, dtype=f64))
    z_back, ladj_back = t(x)
    assert torch.allclose(z_back, z) and torch.isfinite(ladj_back).all()


def test_dopri5_min_step_must_fit_the_span():
    with pytest.raises(ValueError, match=r"min_step=10 must be at most a tenth of the time span \|t1 - t0\| = 1"):
        N.odeint(lambda t, y: -y, torch.ones(1, 2), solver="dopri5", min_step=10)


# ----------------------------------------------------------------------------- 11-13. messages name the user's argument; callables and settings checked


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: ql.exact_map((0.5, 0.5), (-1.0, 1.0), (0.5, 0.5), cells=0), r"^cells must be an integer between 1 and 100000"),
        (lambda: ql.exact_map((0.5, 0.5), (-1.0, 1.0), (0.5, 0.5), z=torch.tensor([nan])), r"^z contains NaN"),
        (lambda: dg.quadrature_grid(points=0), r"^points must be an integer between 1 and 1024"),
        (lambda: dg.quadrature_grid(points=8, cells=0), r"^cells must be an integer >= 1"),
        (lambda: N.fixed_point(lambda v: v[:, :1], torch.zeros(5, 2)), r"the map must return a tensor of the shape of its input, \(5, 2\)"),
        (lambda: N.fixed_point("T", torch.zeros(5, 2)), r"T must be a function"),
        (lambda: N.logdet_exact(lambda v: v[:, :1], torch.zeros(5, 2)), r"g must map \(batch, D\) to \(batch, D\)"),
        (lambda: N.jacobian(lambda v: v.sum(1), torch.zeros(5, 2)), r"fn must map \(batch, D\) to \(batch, D\)"),
        (lambda: N.rk4(lambda t, y: y[:, :1], torch.zeros(5, 2)), r"f\(t, y\) must return a tensor of the shape of y"),
        (lambda: N.rk4("f", torch.zeros(5, 2)), r"f must be a function f\(t, y\)"),
        (lambda: fl.CNF(2).solve(torch.zeros(2, 2), end=nan), r"^end must be a finite number \(a time\), got nan"),
        (lambda: fl.CNF(2).solve(torch.zeros(2, 2), start="0"), r"^start must be a finite number"),
        (lambda: fl.CNF(2).solve(torch.zeros(2, 2), kinetic="yes"), r"^kinetic must be True or False"),
        (lambda: fl.CNF(2, solver="dopri5", adjoint="yes"), r"^adjoint must be True or False, got 'yes'"),
        (lambda: fl.CNF(2, noise="uniform"), r"^noise must be 'rademacher' or 'gaussian'"),
        (lambda: fl.CNF(2, probe="uniform"), r"^probe must be 'rademacher' or 'gaussian'"),
        (lambda: fl.CNF(2, solver="dopri5").signed_det(torch.zeros(1, 2)), r"signed_det checks a fixed-step map"),
        (lambda: ql.record(every=0), r"^every must be an integer >= 1"),
        (lambda: ql.record(n=0), r"^n must be an integer >= 1"),
        (lambda: ql.Explorer(steps=0), r"^steps must be an integer between 1 and 20000"),
        (lambda: ql.panel(weights=(0.5, 0.6)), r"weights must be positive and sum to 1"),
        (lambda: fl.ResidualBlock(2, hidden="big"), r"hidden must be an integer width"),
        (lambda: fl.ResidualBlock(2, generator=0), r"^generator must be a torch.Generator or None"),
        (lambda: fl.ResidualBlock(2, tol=-1), r"^tol must be a positive number"),
        (lambda: fl.ResidualBlock(2, probe="uniform"), r"^probe must be 'rademacher' or 'gaussian'"),
        (lambda: N.logdet_roulette(_half, torch.zeros(2, 2), shared="yes"), r"^shared must be True"),
        (lambda: N.gauss_legendre(torch.cos, 0.0, nan), r"the bounds a and b must be finite"),
        (lambda: N.box_grid(((0, 1), (0, nan))), r"^box must hold finite intervals"),
        (lambda: N.box_grid(1.0, cells=(2, 3, 4)), r"^cells must be an integer or two integers"),
    ],
    ids=lambda v: "",
)
def test_messages_name_the_argument_passed(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_callables_that_ignore_their_input():
    # no autograd error: a map that ignores x has a zero Jacobian
    c = torch.ones(3, 2)
    assert torch.equal(N.jacobian(lambda x: c, torch.zeros(3, 2)), torch.zeros(3, 2, 2))
    for estimator in (N.logdet_exact, lambda g, x: N.logdet_series(g, x, 3), N.logdet_roulette):
        assert torch.equal(estimator(lambda x: 0.1 * c, torch.zeros(3, 2))[1], torch.zeros(3))
    a = torch.tensor(0.3, requires_grad=True)
    x = N.fixed_point(lambda v: a.expand(2, 2), torch.zeros(2, 2)).x
    (grad,) = torch.autograd.grad(x.sum(), a)
    assert float(grad) == 4.0


# ----------------------------------------------------------------------------- 14. Sylvester's missing direction


def test_sylvester_log_prob_is_a_value_error_that_explains():
    flow = fl.Flow(fl.SylvesterFlow(2, layers=2), fl.StandardNormal(2))
    with pytest.raises(ValueError, match=r"no log_prob of data.*fl.PlanarFlow or fl.ResidualFlow") as info:
        flow.log_prob(torch.zeros(3, 2))
    assert isinstance(info.value, NotImplementedError)  # code that caught the old error still does
    assert flow.sample(3).shape == (3, 2)  # the explicit direction works


def test_a_diverging_reverse_kl_fit_of_a_residual_flow_stops_with_a_message():
    # lr = 1e3: the weights explode; the inverse (sampling) still converges, since the norms are
    # exact for it and its tolerance follows the size of the points, so fit's divergence check
    # stops the run instead of an error from inside the fixed point
    torch.manual_seed(0)
    flow = fl.Flow(fl.ResidualFlow(2, layers=2, hidden=16), fl.StandardNormal(2))
    with pytest.warns(RuntimeWarning, match="Try a smaller learning rate"):
        history = fl.fit(flow, T.banana_log_prob, steps=30, lr=1e3, progress=False)
    assert "training stopped" in history.message
    assert all(torch.isfinite(p).all() for p in flow.parameters())


def test_non_finite_weights_give_nan_not_a_linear_algebra_error():
    from flowlab.lipschitz import SpectralLinear

    layer = SpectralLinear(4, 4)
    with torch.no_grad():
        layer.weight[0, 0] = nan
    assert torch.isnan(layer(torch.zeros(2, 4))).all()  # training mode
    assert torch.isnan(layer.eval()(torch.zeros(2, 4))).all()
