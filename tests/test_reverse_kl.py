"""Training by the reverse KL: `reverse_kl` against closed forms, and `fit` given a log-density."""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
from flowlab.train import reverse_kl


def gaussian_flow(mean, std) -> fl.Flow:
    """A flow whose density is exactly N(mean, diag(std^2)): one autoregressive layer with a
    single part (learned constants) and an affine transformer, parameters set by hand."""
    mean = torch.as_tensor(mean, dtype=torch.float64)
    std = torch.as_tensor(std, dtype=torch.float64)
    layer = fl.Autoregressive(fl.MaskedConditioner(len(mean), parts=1), fl.Affine())
    flow = fl.Flow(layer, fl.StandardNormal(len(mean))).double()
    # data -> latent: z = exp(s) x + t, so x = (z - t) exp(-s) ~ N(-t exp(-s), exp(-2s))
    s = -torch.log(std)
    t = -mean * torch.exp(s)
    bound = layer.transformer.scale_bound
    u = bound * torch.atanh(s / bound)
    with torch.no_grad():  # a one-part conditioner's parameters are its constants, (features, outputs)
        layer.conditioner.net.copy_(torch.stack([t, u], dim=1))
    return flow


def gaussian_kl(m1, s1, m2, s2) -> float:
    """KL(N(m1, diag s1^2) || N(m2, diag s2^2)), summed over coordinates."""
    return sum(math.log(b / a) + (a**2 + (x - y) ** 2) / (2 * b**2) - 0.5 for x, a, y, b in zip(m1, s1, m2, s2))


def unnormalized_gaussian(mean, std, log_c):
    """log(C N(x; mean, diag std^2)) with a known log C."""
    mean = torch.as_tensor(mean, dtype=torch.float64)
    std = torch.as_tensor(std, dtype=torch.float64)

    def log_prob(x):
        return log_c + torch.distributions.Normal(mean, std).log_prob(x).sum(-1)

    return log_prob


def test_gaussian_flow_helper_has_the_requested_density():
    flow = gaussian_flow([1.0, -2.0], [0.5, 2.0])
    x = torch.randn(7, 2, dtype=torch.float64)
    want = torch.distributions.Normal(torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64))
    assert torch.allclose(flow.log_prob(x), want.log_prob(x).sum(-1), atol=1e-10)


@pytest.mark.parametrize(
    "q_mean, q_std, p_mean, p_std, log_c",
    [([0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0], 0.0), ([1.0, -2.0], [0.5, 2.0], [0.0, 1.0], [1.5, 1.0], 2.3)],
)
def test_reverse_kl_matches_the_closed_form(q_mean, q_std, p_mean, p_std, log_c):
    flow = gaussian_flow(q_mean, q_std)
    log_prob = unnormalized_gaussian(p_mean, p_std, log_c)
    n = 200_000
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x, log_q = flow.rsample_and_log_prob(n, generator=g)
        terms = log_q - log_prob(x)
        loss = reverse_kl(flow, log_prob, n, generator=torch.Generator().manual_seed(0))
    assert float(loss) == pytest.approx(float(terms.mean()), abs=1e-10)  # the same estimator
    want = gaussian_kl(q_mean, q_std, p_mean, p_std) - log_c  # E[loss] = KL(q || p) - log C
    tol = 4 * float(terms.std()) / math.sqrt(n) + 1e-9
    assert abs(float(loss) - want) <= tol


def test_reverse_kl_is_exact_when_the_flow_is_the_target():
    flow = gaussian_flow([0.5, -0.5], [1.2, 0.7])
    log_prob = unnormalized_gaussian([0.5, -0.5], [1.2, 0.7], 1.7)
    with torch.no_grad():
        loss = reverse_kl(flow, log_prob, 1000)
    assert float(loss) == pytest.approx(-1.7, abs=1e-9)  # every term is log q - log q - log C


def test_reverse_kl_sends_gradients_through_the_samples():
    torch.manual_seed(0)
    flow = fl.Flow(fl.MAF(2, hidden=(8,), layers=2).inv, fl.StandardNormal(2))
    loss = reverse_kl(flow, fl.targets.banana_log_prob, 64)
    loss.backward()
    grads = [p.grad for p in flow.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_reverse_kl_rejects_bad_arguments():
    flow = fl.Flow(fl.MAF(2).inv, fl.StandardNormal(2))
    with pytest.raises(ValueError, match="log_prob_fn"):
        reverse_kl(flow, torch.zeros(3), 8)
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        reverse_kl(flow, lambda x: x, 8)  # returns (8, 2)
    with pytest.raises(ValueError, match="n must be"):
        reverse_kl(flow, fl.targets.banana_log_prob, 0)


def test_fit_trains_by_reverse_kl_when_given_a_function():
    torch.manual_seed(0)
    flow = fl.Flow(fl.Autoregressive(fl.MaskedConditioner(2, parts=1), fl.Affine()), fl.StandardNormal(2))
    log_c = 0.7
    target = lambda x: log_c + torch.distributions.Normal(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0])).log_prob(x).sum(-1)
    history = fl.fit(flow, target, steps=400, lr=5e-2, batch_size=256, progress=False)
    assert history.steps == 400
    assert history.loss[0] > history.loss[-1]
    # the loss + log C is the reverse KL: non-negative on average, near zero at the optimum
    assert -0.05 < sum(history.loss[-50:]) / 50 + log_c < 0.05
    s = flow.sample(50_000, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(s.mean(0), torch.tensor([1.0, -1.0]), atol=0.05)
    assert torch.allclose(s.std(0), torch.tensor([0.5, 2.0]), atol=0.05)


def test_fit_reverse_kl_is_reproducible_and_uses_batch_size():
    calls = []

    def target(x):
        calls.append(len(x))
        return fl.targets.banana_log_prob(x)

    def run():
        torch.manual_seed(0)
        flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2))
        return fl.fit(flow, target, steps=5, batch_size=32, progress=False, seed=3).loss

    assert run() == run()
    assert set(calls) == {32}


def test_fit_reverse_kl_default_batch_callback_and_validation_samples():
    torch.manual_seed(0)
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2))
    seen = []
    history = fl.fit(
        flow, fl.targets.two_modes_log_prob, steps=6, progress=False,
        valid=fl.targets.two_modes(100, seed=0), valid_every=3, callback=lambda step, loss: seen.append(step) or step >= 4,
    )
    assert history.steps == 4 and seen == [1, 2, 3, 4]
    assert history.valid_step == [3] and len(history.valid_nll) == 1
    assert "callback" in history.message


def test_fit_reverse_kl_rejects_a_validation_fraction():
    flow = fl.Flow(fl.MAF(2).inv, fl.StandardNormal(2))
    with pytest.raises(ValueError, match="valid"):
        fl.fit(flow, fl.targets.banana_log_prob, steps=2, valid=0.2, progress=False)


def test_fit_reverse_kl_names_a_log_density_that_returns_nan():
    """A NaN from the user's log-density is the user's to fix: fit says so (and where), and no
    step has changed the flow."""
    torch.manual_seed(0)
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2))
    before = [p.detach().clone() for p in flow.parameters()]
    with pytest.raises(ValueError, match=r"log_prob_fn returned nan at 32 of 32 samples .* x = \["):
        fl.fit(flow, lambda x: torch.full((len(x),), float("nan")), steps=5, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, flow.parameters()))


def test_fit_reverse_kl_stops_when_the_loss_stays_non_finite():
    """Non-finite losses that are not a NaN of the log-density (here the log-density
    is +inf, so the loss is -inf) are bad steps: ten in a row stop training with a warning."""
    torch.manual_seed(0)
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2))
    before = [p.detach().clone() for p in flow.parameters()]
    with pytest.warns(RuntimeWarning, match="stopped at step 10"):
        history = fl.fit(flow, lambda x: torch.full((len(x),), float("inf")), steps=50, progress=False)
    assert history.steps == 10 and len(history.skipped) == 10
    assert all(torch.equal(a, b) for a, b in zip(before, flow.parameters()))


def test_fit_on_data_still_works():
    torch.manual_seed(0)
    flow = fl.Flow(fl.MAF(2, hidden=(8,)), fl.StandardNormal(2))
    history = fl.fit(flow, fl.targets.moons(200, seed=0), steps=20, progress=False, valid=0.2)
    assert history.steps == 20 and history.valid_nll
