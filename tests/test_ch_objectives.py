"""The numerical checks of the chapter on the objectives (forward and reverse KL), as tests."""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
from flowlab.train import reverse_kl

T = fl.targets


def grid_log_integral(log_prob, x_range, y_range, n=1200) -> float:
    """log of the integral of exp(log_prob) over a rectangle, by the midpoint rule (float64)."""
    xs = torch.linspace(*x_range, n + 1, dtype=torch.float64)
    ys = torch.linspace(*y_range, n + 1, dtype=torch.float64)
    xc, yc = (xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2
    yy, xx = torch.meshgrid(yc, xc, indexing="ij")
    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    return float(torch.logsumexp(log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)), 0)) + math.log(cell)


# ------------------------------------------------------------------ targets: log C by integration


def test_banana_log_z_by_integration():
    # the banana reaches x2 = kappa (x1^2 - s^2): integrate far enough up
    assert grid_log_integral(T.banana_log_prob, (-7, 7), (-4, 25)) == pytest.approx(T.banana_log_z(), abs=1e-5)
    lp = lambda x: T.banana_log_prob(x, scale=0.7, width=0.2, curvature=1.0)
    assert grid_log_integral(lp, (-5, 5), (-3, 25)) == pytest.approx(T.banana_log_z(0.7, 0.2), abs=1e-5)


def test_ring_log_z_by_integration():
    assert grid_log_integral(T.ring_log_prob, (-4, 4), (-4, 4)) == pytest.approx(T.ring_log_z(), abs=1e-6)
    # a ring so thick that it reaches the origin, where the closed form's exp term matters
    lp = lambda x: T.ring_log_prob(x, radius=0.5, width=1.0)
    assert grid_log_integral(lp, (-9, 9), (-9, 9)) == pytest.approx(T.ring_log_z(0.5, 1.0), abs=1e-6)


def test_two_modes_log_z_by_integration():
    assert T.two_modes_log_z() == pytest.approx(math.log(math.pi))
    assert grid_log_integral(T.two_modes_log_prob, (-7, 7), (-4, 4)) == pytest.approx(T.two_modes_log_z(), abs=1e-6)
    lp = lambda x: T.two_modes_log_prob(x, separation=2.0, std=0.8, weight=0.3)
    assert grid_log_integral(lp, (-7, 7), (-6, 6)) == pytest.approx(T.two_modes_log_z(0.8), abs=1e-6)


def test_registry_of_densities():
    chapter = {"banana", "ring", "two modes"}  # the densities of this chapter (other chapters add more)
    assert chapter <= set(T.DENSITIES) and chapter <= set(T.LOG_Z)
    x = torch.randn(5, 2)
    for name, log_prob in T.DENSITIES.items():
        out = log_prob(x)
        assert out.shape == (5,) and torch.isfinite(out).all(), name
        with pytest.raises(ValueError):
            log_prob(torch.randn(5, 3))


def test_samplers_match_their_densities():
    # E[log p(X)] under the samples = -entropy; for the banana the entropy is log(2 pi e s w)
    x = T.banana(200_000, seed=0)
    nll = float(-(T.banana_log_prob(x) - T.banana_log_z()).mean())
    assert nll == pytest.approx(math.log(2 * math.pi * math.e * 0.35), abs=0.01)
    x = T.two_modes(100_000, seed=0)
    assert float((x[:, 0] < 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    assert float(x[:, 0].var()) == pytest.approx(9.25, rel=0.02)
    assert float(x[:, 1].var()) == pytest.approx(0.25, rel=0.02)
    x = T.two_modes(100_000, weight=0.2, seed=0)
    assert float((x[:, 0] < 0).float().mean()) == pytest.approx(0.2, abs=0.01)
    assert torch.equal(T.two_modes(10, seed=3), T.two_modes(10, seed=3))
    with pytest.raises(ValueError, match="weight"):
        T.two_modes(10, weight=1.0)


# ------------------------------------------------------------------ the constants


def test_base_term_is_minus_the_entropy_of_the_base():
    base = fl.StandardNormal(2)
    z = base.sample(200_000, generator=torch.Generator().manual_seed(0))
    assert float(base.log_prob(z).mean()) == pytest.approx(-math.log(2 * math.pi * math.e), abs=0.01)


def conditioner_passes(flow, action) -> int:
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in flow.modules() if isinstance(m, fl.MaskedConditioner)]
    try:
        with torch.no_grad():
            action()
    finally:
        for h in hooks:
            h.remove()
    return len(calls)


@pytest.mark.parametrize("make, density, sample", [
    (lambda: fl.MAF(8), 1, 7),
    (lambda: fl.MAF(8).inv, 7, 1),
    (lambda: fl.MAF(8, parts=2), 1, 1),  # coupling: one network pass each way
])
def test_cheap_directions(make, density, sample):
    flow = fl.Flow(make(), fl.StandardNormal(8))
    assert conditioner_passes(flow, lambda: flow.log_prob(torch.randn(4, 8))) == density
    assert conditioner_passes(flow, lambda: flow.rsample_and_log_prob(4)) == sample


# ------------------------------------------------------------------ trained flows


@pytest.fixture(scope="module")
def banana_flows():
    torch.manual_seed(0)
    fwd = fl.Flow(fl.MAF(2, hidden=(32, 32), layers=4), fl.StandardNormal(2))
    fl.fit(fwd, T.banana(2000, seed=0), steps=300, lr=5e-3, batch_size=256, progress=False)
    torch.manual_seed(0)
    rev = fl.Flow(fl.MAF(2, hidden=(32, 32), layers=4).inv, fl.StandardNormal(2))
    history = fl.fit(rev, T.banana_log_prob, steps=300, lr=5e-3, batch_size=256, progress=False)
    return fwd, rev, history


def test_forward_kl_is_nll_minus_entropy(banana_flows):
    fwd, _, _ = banana_flows
    x = T.banana(20_000, seed=1)
    with torch.no_grad():
        log_q = fwd.log_prob(x)
    log_p = T.banana_log_prob(x) - T.banana_log_z()
    entropy = math.log(2 * math.pi * math.e * 0.35)
    kl = float(-log_q.mean()) - entropy
    assert -0.02 < kl < 0.1  # non-negative up to Monte Carlo error, and small after training
    assert float((log_p - log_q).mean()) == pytest.approx(kl, abs=0.02)


def test_reverse_kl_loss_plus_log_c_goes_to_the_kl(banana_flows):
    _, rev, history = banana_flows
    log_c = T.banana_log_z()
    assert history.loss[0] + log_c > 1.0
    assert -0.02 < sum(history.loss[-50:]) / 50 + log_c < 0.05
    with torch.no_grad():
        z = rev.base.sample(100_000, generator=torch.Generator().manual_seed(2))
        x, ladj = rev.transform.inverse(z)
        terms = [rev.base.log_prob(z).mean(), -ladj.mean(), -T.banana_log_prob(x).mean(), log_c]
        kl = float(sum(terms))
        loss = float(reverse_kl(rev, T.banana_log_prob, 100_000, generator=torch.Generator().manual_seed(2)))
    assert kl == pytest.approx(loss + log_c, abs=1e-4)  # the notes' four terms are the loss plus log C
    assert -0.01 < kl < 0.05


def gaussian_flow():
    return fl.Flow(fl.Autoregressive(fl.MaskedConditioner(2, parts=1), fl.Affine()), fl.StandardNormal(2))


def test_gaussian_fits_cover_and_seek():
    x = T.two_modes(2000, seed=0)
    torch.manual_seed(0)
    fwd = gaussian_flow()
    fl.fit(fwd, x, steps=200, lr=1e-1, batch_size=None, progress=False)
    torch.manual_seed(0)
    rev = gaussian_flow()
    fl.fit(rev, T.two_modes_log_prob, steps=500, lr=1e-1, batch_size=256, progress=False)
    s = fwd.sample(100_000, generator=torch.Generator().manual_seed(3))
    # forward KL for a Gaussian family = moment matching (of the training sample)
    assert torch.allclose(s.mean(0), x.mean(0), atol=0.05)
    assert torch.allclose(s.var(0), x.var(0), rtol=0.03)
    s = rev.sample(100_000, generator=torch.Generator().manual_seed(3))
    assert abs(float(s[:, 0].mean())) == pytest.approx(3.0, abs=0.1)  # on one bump
    assert float(s[:, 0].var()) < 0.4 and float(s[:, 1].var()) == pytest.approx(0.25, abs=0.02)


# ------------------------------------------------------------------ importance sampling


@torch.no_grad()
def importance_log_c(flow, log_prob_fn, n, seed=0):
    x, log_q = flow.rsample_and_log_prob(n, generator=torch.Generator().manual_seed(seed))
    log_w = log_prob_fn(x) - log_q
    log_c = torch.logsumexp(log_w, 0) - math.log(n)
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
    return float(log_c), float(ess) / n, float(log_w.mean())


def fixed_gaussian(mean, std):
    """A Gaussian proposal as a flow (parameters set by hand)."""
    flow = gaussian_flow()
    layer = flow.transform
    s = -math.log(std)
    u = layer.transformer.scale_bound * math.atanh(s / layer.transformer.scale_bound)
    with torch.no_grad():  # a one-part conditioner's parameters are its constants, (features, outputs)
        layer.conditioner.net.copy_(torch.tensor([[-mean[0] / std, u], [-mean[1] / std, u]]))
    return flow


def test_importance_sampling_with_a_covering_proposal():
    q = fixed_gaussian((0.0, 0.0), 2.5)
    log_c, ess, elbo = importance_log_c(q, T.two_modes_log_prob, 200_000)
    assert log_c == pytest.approx(T.two_modes_log_z(), abs=0.02)
    assert 0.05 < ess < 0.5
    assert elbo < log_c  # the lower bound -L


def test_importance_sampling_with_a_mode_seeking_proposal_misses_half():
    q = fixed_gaussian((3.0, 0.0), 0.5)  # exactly the right bump
    log_c, ess, elbo = importance_log_c(q, T.two_modes_log_prob, 20_000)
    assert log_c == pytest.approx(T.two_modes_log_z() - math.log(2), abs=1e-3)
    assert ess > 0.99  # a perfect-looking ESS for a wrong answer
    assert elbo == pytest.approx(log_c, abs=1e-3)


def test_importance_sampling_with_the_trained_reverse_flow(banana_flows):
    _, rev, _ = banana_flows
    log_c, ess, elbo = importance_log_c(rev, T.banana_log_prob, 20_000)
    assert log_c == pytest.approx(T.banana_log_z(), abs=0.01)
    assert ess > 0.8 and elbo <= log_c + 1e-6
