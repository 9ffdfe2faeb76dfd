"""flowlab.diagnostics against closed forms: two Gaussians (ESS limit 1/(1 + chi^2), KL, chi^2),
the unbiasedness of Z-hat within its standard error, quadrature exactness, and the stationary
distribution and acceptance rate of the Metropolis-Hastings samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import flowlab as fl
from flowlab import diagnostics as dg

f64 = torch.float64


def gaussian(mean, std):
    """log N(x; mean, std^2 I) in D dimensions, for x of shape (n, D)."""
    mean = torch.as_tensor(mean, dtype=f64)

    def log_prob(x):
        d = x.shape[-1]
        return -0.5 * ((x - mean.to(x.dtype)) ** 2).sum(-1) / std**2 - d * math.log(std * math.sqrt(2 * math.pi))

    return log_prob


def kl_closed(mp, sp, mq, sq):
    """KL(N(mp, sp^2 I) || N(mq, sq^2 I)), summed over coordinates."""
    mp, mq = np.asarray(mp, float), np.asarray(mq, float)
    return float(np.sum(np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5))


def chi2_closed(mp, sp, sq):
    """chi^2(N(mp, sp^2 I) || N(0, sq^2 I)) = prod_d int p_d^2 / q_d - 1 (needs 2 sq^2 > sp^2)."""
    a = 1 / sp**2 - 1 / (2 * sq**2)
    total = 1.0
    for m in np.asarray(mp, float):
        total *= sq / (sp**2 * math.sqrt(2 * math.pi)) * math.sqrt(math.pi / a) * math.exp(m**2 / (sp**4 * a) - m**2 / sp**2)
    return total - 1


# --------------------------------------------------------------------------------------------
# ESS and log Z
# --------------------------------------------------------------------------------------------


def test_ess_limits():
    assert dg.ess(torch.zeros(50, dtype=f64)) == pytest.approx(50)
    assert dg.ess(torch.tensor([0.0, -1e4, -1e4])) == pytest.approx(1.0)
    lw = torch.randn(100, dtype=f64, generator=torch.Generator().manual_seed(0))
    assert dg.ess(lw + 1000.0) == pytest.approx(dg.ess(lw), rel=1e-12)  # no overflow, scale free
    assert dg.ess(lw - 1000.0) == pytest.approx(dg.ess(lw), rel=1e-12)


@pytest.mark.parametrize("sq", [1.5, 2.5])
def test_ess_fraction_tends_to_one_over_one_plus_chi2(sq):
    # p = N(0, I) unnormalized by a factor 7, q = N(0, sq^2 I): ESS/N -> 1 / (1 + chi^2(p || q))
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x = sq * torch.randn(n, 2, dtype=f64, generator=g)
    log_w = gaussian([0, 0], 1.0)(x) + math.log(7) - gaussian([0, 0], sq)(x)
    limit = 1 / (1 + chi2_closed([0, 0], 1.0, sq))
    assert dg.ess(log_w) / n == pytest.approx(limit, abs=0.01)


def test_log_z_is_unbiased_within_its_standard_error():
    # Z-hat is unbiased for Z; the reported SE of log Z-hat matches the spread over repeats
    log_z_true, n, repeats = math.log(7), 2000, 200
    g = torch.Generator().manual_seed(2)
    estimates, ses = [], []
    for _ in range(repeats):
        x = 1.5 * torch.randn(n, 2, dtype=f64, generator=g)
        log_w = gaussian([0.3, 0], 1.0)(x) + log_z_true - gaussian([0, 0], 1.5)(x)
        est, se = dg.log_z(log_w)
        estimates.append(est)
        ses.append(se)
    z_hat = np.exp(estimates)
    assert abs(z_hat.mean() - 7) < 3 * z_hat.std(ddof=1) / math.sqrt(repeats)
    assert np.std(estimates, ddof=1) == pytest.approx(np.mean(ses), rel=0.15)


def test_log_z_of_equal_weights():
    estimate, se = dg.log_z(torch.full((10,), 3.0, dtype=f64))
    assert estimate == pytest.approx(3.0, abs=1e-12) and se == pytest.approx(0.0, abs=1e-6)


def test_log_weights_are_target_minus_flow():
    torch.manual_seed(0)
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2))
    x, log_w = dg.log_weights(flow, fl.targets.banana_log_prob, 64, generator=torch.Generator().manual_seed(0))
    assert x.shape == (64, 2) and log_w.shape == (64,)
    with torch.no_grad():
        expected = fl.targets.banana_log_prob(x) - flow.log_prob(x)
    assert torch.allclose(log_w, expected, atol=1e-4)


# --------------------------------------------------------------------------------------------
# quadrature
# --------------------------------------------------------------------------------------------


def test_quadrature_grid_is_exact_for_polynomials():
    x, log_dA = dg.quadrature_grid((-1.0, 2.0, 0.0, 3.0), points=5)
    dA = log_dA.exp()
    # int x1^3 x2^4 over [-1, 2] x [0, 3] = (16 - 1)/4 * 3^5/5
    assert float((dA * x[:, 0] ** 3 * x[:, 1] ** 4).sum()) == pytest.approx(15 / 4 * 243 / 5, rel=1e-12)


def test_composite_quadrature_and_boxes_as_pairs():
    # cells x points nodes per axis: exact for degree 2 points - 1 in each cell, so for the whole box
    x, log_dA = dg.quadrature_grid(((-1.0, 2.0), (0.0, 3.0)), points=3, cells=4)
    assert x.shape == (144, 2)
    assert float((log_dA.exp() * x[:, 0] ** 5 * x[:, 1]).sum()) == pytest.approx(63 / 6 * 4.5, rel=1e-12)
    log_p = lambda x: gaussian([0.5, -1.0], 0.7)(x)  # noqa: E731
    assert dg.log_z_quadrature(log_p, ((-8, 8), (-8, 8)), 8, cells=32) == pytest.approx(0.0, abs=1e-10)


def test_log_z_quadrature_of_a_gaussian():
    log_p = lambda x: gaussian([0.5, -1.0], 0.7)(x) + 2.0  # noqa: E731
    assert dg.log_z_quadrature(log_p, (-8, 8, -8, 8), 120) == pytest.approx(2.0, abs=1e-10)


@pytest.mark.parametrize("mp, sp, sq", [([0.0, 0.0], 1.0, 2.0), ([1.0, -0.5], 0.8, 1.3)])
def test_kl_and_chi2_by_quadrature_match_closed_forms(mp, sp, sq):
    box = (-16, 16, -16, 16)
    p, q = gaussian(mp, sp), gaussian([0, 0], sq)
    unnormalized_p = lambda x: p(x) + 5.0  # noqa: E731 - normalized on the box
    assert dg.kl_quadrature(unnormalized_p, q, box, 240) == pytest.approx(kl_closed(mp, sp, [0, 0], sq), abs=1e-8)
    assert dg.kl_quadrature(q, unnormalized_p, box, 240) == pytest.approx(kl_closed([0, 0], sq, mp, sp), abs=1e-8)
    assert dg.chi2_quadrature(unnormalized_p, q, box, 240) == pytest.approx(chi2_closed(mp, sp, sq), rel=1e-8)


def test_quadrature_of_a_flow_integrates_to_one():
    torch.manual_seed(0)
    flow = fl.Flow(fl.NeuralSplineFlow(2, hidden=(16,), layers=2), fl.StandardNormal(2)).double()
    # the spline's second derivative jumps at the knots, so the error falls only algebraically
    assert math.exp(dg.log_z_quadrature(flow.log_prob, (-9, 9, -9, 9), 400)) == pytest.approx(1.0, abs=2e-5)
    assert dg.kl_quadrature(flow.log_prob, flow.log_prob, (-9, 9, -9, 9), 60) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Metropolis-Hastings
# --------------------------------------------------------------------------------------------


def test_imh_with_the_exact_proposal_always_accepts():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, 2, dtype=f64, generator=g)
    log_w = gaussian([0, 0], 1.0)(x.view(-1, 2)).view(100, 3) * 0 + 1.7  # w = Z everywhere
    states, accepted = dg.independence_mh(x, log_w, generator=g)
    assert bool(accepted.all()) and torch.equal(states, x)


def test_imh_is_exact_and_its_acceptance_rate_matches_quadrature():
    # target N(0, 1), proposal N(0, 1.5^2), in 1-D through a (steps, chains, 1) tensor
    sq, steps, chains = 1.5, 4000, 50
    g = torch.Generator().manual_seed(3)
    x = sq * torch.randn(steps, chains, 1, dtype=f64, generator=g)
    log_w = (-0.5 * x**2 + 0.5 * (x / sq) ** 2).squeeze(-1)
    states, accepted = dg.independence_mh(x, log_w, generator=g)
    kept = states[500:].flatten()
    assert float(kept.mean()) == pytest.approx(0.0, abs=0.03)
    assert float(kept.var()) == pytest.approx(1.0, abs=0.05)
    # E[min(1, w(y)/w(x))], x ~ p, y ~ q, by a 2-D Riemann sum
    t = np.linspace(-9, 9, 1501)
    dt = t[1] - t[0]
    p = np.exp(-t**2 / 2) / math.sqrt(2 * math.pi)
    q = np.exp(-t**2 / (2 * sq**2)) / (sq * math.sqrt(2 * math.pi))
    w = p / q
    expected = float((p[:, None] * q[None, :] * np.minimum(1, w[None, :] / w[:, None])).sum() * dt * dt)
    assert float(accepted.double().mean()) == pytest.approx(expected, abs=0.01)


def test_random_walk_keeps_the_target():
    g = torch.Generator().manual_seed(4)
    start = torch.randn(400, 1, dtype=f64, generator=g)  # already in equilibrium
    states, accepted = dg.random_walk_mh(lambda x: -0.5 * (x**2).sum(-1), start, 300, 1.0, generator=g)
    assert states.shape == (300, 400, 1) and accepted.shape == (299, 400)
    assert float(states.mean()) == pytest.approx(0.0, abs=0.04)
    assert float(states.var()) == pytest.approx(1.0, abs=0.06)
    assert 0.5 < float(accepted.double().mean()) < 0.85


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


def test_bad_input_is_rejected_with_a_message():
    with pytest.raises(ValueError, match="log_w"):
        dg.ess(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        dg.log_z(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="every weight is zero"):
        dg.ess(torch.full((3,), -math.inf))
    with pytest.raises(ValueError, match="box"):
        dg.quadrature_grid((1, 0, 0, 1))
    with pytest.raises(ValueError, match="points"):
        dg.quadrature_grid((0, 1, 0, 1), points=0)
    with pytest.raises(TypeError, match="flow"):
        dg.log_weights("not a flow", fl.targets.banana_log_prob, 10)
    with pytest.raises(ValueError, match="log_w must have shape"):
        dg.independence_mh(torch.zeros(5, 2, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="step_size"):
        dg.random_walk_mh(fl.targets.banana_log_prob, torch.zeros(2, 2), 10, 0.0)
