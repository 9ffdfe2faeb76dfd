"""Flow matching: the conditional loss against hand computations, its gradient against the
marginal loss's (Gaussian data, where the marginal velocity is known in closed form), its floor,
the closed-form field carrying the data onto the base in the CNF's own time, the OT coupling
against brute force, the VP path, the training option, the dashboard family, and bad input."""

from __future__ import annotations

import itertools
import math
from functools import partial

import pytest
import torch
from torch import nn

import flowlab as fl
from flowlab.objectives import COUPLINGS, MAX_OT_BATCH, PATHS, flow_matching
from flowlab.testing import density_integral, shaken
from flowlab.time_mlp import TimeMLP

f64 = torch.float64
MU = torch.tensor([0.7, -0.4], dtype=f64)
S = torch.tensor([1.3, 0.6], dtype=f64)


def gaussian_data(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MU + S * torch.randn(n, 2, generator=g, dtype=f64)


class GaussianField(nn.Module):
    r"""The marginal velocity of the linear path for data N(MU, diag(S^2)) and a standard normal
    base, in the CNF's time (data at t = 0): :math:`E[\varepsilon - x \mid z_t = z]`, per coordinate
    :math:`-\mu + \frac{t - (1 - t)s^2}{(1 - t)^2 s^2 + t^2}(z - (1 - t)\mu)`."""

    def forward(self, t, z):
        t = torch.as_tensor(t, dtype=z.dtype).reshape(-1, 1)
        var = (1 - t) ** 2 * S**2 + t**2
        return -MU + (t - (1 - t) * S**2) / var * (z - (1 - t) * MU)


def cnf_flow(hidden=(16, 16), seed=0, **kwargs) -> fl.Flow:
    torch.manual_seed(seed)
    cnf = fl.CNF(2, hidden=hidden, **kwargs)
    shaken(cnf, scale=0.5, seed=seed, fan_in=True)
    return fl.Flow(cnf, fl.StandardNormal(2)).double()


# ------------------------------------------------------------------------ the loss itself


@pytest.mark.parametrize("path", PATHS)
def test_loss_is_the_regression_on_the_conditional_velocity(path):
    flow = cnf_flow()
    x = gaussian_data(64, 1)
    loss = flow_matching(flow, x, path=path, generator=torch.Generator().manual_seed(5))
    # the same draws, in the same order: the base samples, then the times
    g = torch.Generator().manual_seed(5)
    eps = torch.randn(64, 2, generator=g, dtype=f64)
    t = torch.rand(64, generator=g, dtype=f64)
    if path == "linear":
        a, s = 1 - t, t
    else:
        a, s = torch.cos(math.pi * t / 2), torch.sin(math.pi * t / 2)
    z = a[:, None] * x + s[:, None] * eps
    # the target is the time derivative of the path at fixed (x, eps): central differences
    h = 1e-6
    if path == "linear":
        ah, sh, al, sl = 1 - (t + h), t + h, 1 - (t - h), t - h
    else:
        ah, sh = torch.cos(math.pi * (t + h) / 2), torch.sin(math.pi * (t + h) / 2)
        al, sl = torch.cos(math.pi * (t - h) / 2), torch.sin(math.pi * (t - h) / 2)
    velocity = ((ah - al)[:, None] * x + (sh - sl)[:, None] * eps) / (2 * h)
    field = torch.stack([flow.transform.field(ti, zi[None])[0] for ti, zi in zip(t, z)])  # one time at a time
    want = (field - velocity).pow(2).sum(1).mean()
    assert torch.allclose(loss, want, rtol=1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_path_ends_at_the_data_and_at_the_base(path):
    from flowlab.objectives import _path

    a, s, _, _ = _path(path, torch.tensor([0.0, 1.0], dtype=f64))
    assert torch.allclose(a.flatten(), torch.tensor([1.0, 0.0], dtype=f64), atol=1e-15)
    assert torch.allclose(s.flatten(), torch.tensor([0.0, 1.0], dtype=f64), atol=1e-15)
    if path == "vp":
        t = torch.rand(100, dtype=f64)
        a, s, _, _ = _path(path, t)
        assert torch.allclose(a**2 + s**2, torch.ones_like(a))  # variance preserving


def test_gradient_reaches_every_parameter():
    flow = cnf_flow(hidden=(8, 8))
    flow_matching(flow, gaussian_data(32, 0)).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_same_gradient_as_the_marginal_loss():
    # L_CFM - L_FM does not depend on the parameters: on the same draws, the per-sample gradients of
    # the two losses differ by a term of mean zero. Their means agree within the standard error.
    flow = cnf_flow(hidden=(8, 8), seed=3)
    field, marginal = flow.transform.field, GaussianField()
    params = list(field.parameters())
    g = torch.Generator().manual_seed(0)
    diffs, grads = [], []
    for _ in range(40):
        x = gaussian_data(500, int(torch.randint(10**6, (1,), generator=g)))
        eps = torch.randn(500, 2, generator=g, dtype=f64)
        t = torch.rand(500, generator=g, dtype=f64)
        z = (1 - t)[:, None] * x + t[:, None] * eps
        v = field(t, z)
        cfm = (v - (eps - x)).pow(2).sum(1).mean()
        fm = (v - marginal(t, z)).pow(2).sum(1).mean()
        gc = torch.cat([q.flatten() for q in torch.autograd.grad(cfm, params, retain_graph=True)])
        gm = torch.cat([q.flatten() for q in torch.autograd.grad(fm, params)])
        diffs.append(gc - gm)
        grads.append(gm)
    d, gm = torch.stack(diffs), torch.stack(grads)
    se = d.std(0) / math.sqrt(len(d))
    z_scores = d.mean(0) / se
    assert float(z_scores.abs().max()) < 5, float(z_scores.abs().max())
    # and the check has power: the gradient itself is many standard errors away from zero
    assert float((gm.mean(0).abs() / se).max()) > 20


def test_the_marginal_field_carries_the_data_onto_the_base():
    # integrated as a CNF (data at t = 0, forward to t = 1), the closed-form marginal velocity
    # maps N(MU, diag S^2) onto N(0, I): the CNF's log_prob is the data's Gaussian log-density
    cnf = fl.CNF(2, steps=200, field=GaussianField())
    flow = fl.Flow(cnf, fl.StandardNormal(2).double())
    x = gaussian_data(50, 2)
    true = torch.distributions.Normal(MU, S).log_prob(x).sum(1)
    with torch.no_grad():
        got = flow.log_prob(x)
    assert float((got - true).abs().max()) < 1e-6
    with torch.no_grad():
        samples = flow.sample(20000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(samples.mean(0), MU, atol=4 * float(S.max()) / math.sqrt(20000))
    assert torch.allclose(samples.std(0), S, rtol=0.03)


def test_floor_of_the_loss_for_gaussian_data():
    # the perfect field's loss is the conditional variance of the velocity: (pi / 2) sum(S)
    flow = fl.Flow(fl.CNF(2, field=GaussianField()), fl.StandardNormal(2).double())
    g = torch.Generator().manual_seed(1)
    x = gaussian_data(200_000, 7)
    per_row = []
    for chunk in x.split(20_000):
        eps = torch.randn(chunk.shape, generator=g, dtype=f64)
        t = torch.rand(len(chunk), generator=g, dtype=f64)
        z = (1 - t)[:, None] * chunk + t[:, None] * eps
        per_row.append((GaussianField()(t, z) - (eps - chunk)).pow(2).sum(1))
    per_row = torch.cat(per_row)
    floor = math.pi / 2 * float(S.sum())
    mean, se = float(per_row.mean()), float(per_row.std()) / math.sqrt(len(per_row))
    assert abs(mean - floor) < 4 * se
    # flow_matching itself gives the same value, within its standard error over repeated batches
    values = torch.stack([flow_matching(flow, gaussian_data(4000, k), generator=g) for k in range(40)])
    assert abs(float(values.mean()) - floor) < 4 * float(values.std()) / math.sqrt(40)


def test_the_floor_is_the_minimum():
    # any other field does worse, paired on the same draws
    g = torch.Generator().manual_seed(2)
    x = gaussian_data(100_000, 3)
    eps = torch.randn(x.shape, generator=g, dtype=f64)
    t = torch.rand(len(x), generator=g, dtype=f64)
    z = (1 - t)[:, None] * x + t[:, None] * eps
    best = (GaussianField()(t, z) - (eps - x)).pow(2).sum(1)
    for shift in (0.05, -0.05):
        other = (GaussianField()(t, z) + shift - (eps - x)).pow(2).sum(1)
        d = other - best
        assert float(d.mean()) > 4 * float(d.std()) / math.sqrt(len(d))


# ------------------------------------------------------------------------ couplings


def test_ot_coupling_is_the_best_permutation():
    flow = cnf_flow()
    x = gaussian_data(6, 4)
    from flowlab.objectives import _ot_pairs

    eps = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=f64)
    paired = _ot_pairs(x, eps)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, eps.tolist()))  # a permutation
    cost = float((x - paired).pow(2).sum())
    best = min(float((x - eps[list(p)]).pow(2).sum()) for p in itertools.permutations(range(6)))
    assert cost == pytest.approx(best, rel=1e-12)
    # and flow_matching uses it: same draws, re-paired
    g = torch.Generator().manual_seed(9)
    loss = flow_matching(flow, x, coupling="ot", generator=g)
    g = torch.Generator().manual_seed(9)
    eps = torch.randn(6, 2, generator=g, dtype=f64)
    t = torch.rand(6, generator=g, dtype=f64)
    e = _ot_pairs(x, eps)
    z = (1 - t)[:, None] * x + t[:, None] * e
    want = (flow.transform.field(t, z) - (e - x)).pow(2).sum(1).mean()
    assert torch.allclose(loss, want)


def test_fixed_pairs():
    flow = cnf_flow()
    x = gaussian_data(10, 0)
    z = torch.randn(10, 2, dtype=f64)
    g = torch.Generator().manual_seed(0)
    loss = flow_matching(flow, x, coupling=z, generator=g)
    t = torch.rand(10, generator=torch.Generator().manual_seed(0), dtype=f64)  # no base draw: times only
    zt = (1 - t)[:, None] * x + t[:, None] * z
    assert torch.allclose(loss, (flow.transform.field(t, zt) - (z - x)).pow(2).sum(1).mean())
    with pytest.raises(ValueError, match="coupling.*shape"):
        flow_matching(flow, x, coupling=z[:5])


def test_one_row_and_an_empty_batch():
    flow = cnf_flow()
    for coupling in COUPLINGS:
        assert torch.isfinite(flow_matching(flow, gaussian_data(1, 0), coupling=coupling))
    assert torch.isnan(flow_matching(flow, torch.zeros(0, 2, dtype=f64)))


def test_float32_data_on_a_float64_flow():
    flow = cnf_flow()
    loss = flow_matching(flow, gaussian_data(8, 0).float())
    assert loss.dtype == f64


# ------------------------------------------------------------------------ training


def test_training_by_flow_matching_fits_a_gaussian():
    torch.manual_seed(0)
    flow = fl.Flow(fl.CNF(2, hidden=(32, 32), steps=8, trace="discrete"), fl.StandardNormal(2)).double()
    x, test = gaussian_data(2000, 0), gaussian_data(2000, 1)
    history = fl.fit(flow, x, steps=600, lr=2e-2, batch_size=256, progress=False, objective="flow_matching")
    floor = math.pi / 2 * float(S.sum())
    tail = torch.tensor(history.loss[-200:], dtype=f64)
    assert abs(float(tail.mean()) - floor) < 0.1 * floor
    with torch.no_grad():
        nll = -flow.log_prob(test)
    entropy = float(torch.distributions.Normal(MU, S).entropy().sum())
    assert abs(float(nll.mean()) - entropy) < 0.05 + 3 * float(nll.std()) / math.sqrt(len(nll))
    # the trained CNF is an ordinary CNF: a density that integrates to one, without folds
    assert float(density_integral(flow, lim=(-5, 6), n=120)) == pytest.approx(1.0, abs=5e-3)
    grid = torch.cartesian_prod(*(torch.linspace(-5, 6, 40, dtype=f64),) * 2)
    assert bool((flow.transform.signed_det(grid) > 0).all())


def test_objective_option_calls_the_function_given():
    flow = cnf_flow(hidden=(8, 8))
    seen = []

    def objective(flow, x, generator=None):
        seen.append(len(x))
        return flow_matching(flow, x, coupling="ot", generator=generator)

    run = fl.Training(flow, gaussian_data(100, 0), steps=3, batch_size=20, objective=objective)
    losses = list(run)
    assert seen == [20, 20, 20] and all(math.isfinite(v) for v in losses)
    run = fl.Training(flow, gaussian_data(100, 0), steps=2, batch_size=20,
                      objective=partial(flow_matching, path="vp"))
    assert len(list(run)) == 2


def test_training_with_fixed_pairs_uses_all_rows():
    flow = cnf_flow(hidden=(8, 8))
    x, z = gaussian_data(50, 0), torch.randn(50, 2, dtype=f64)
    h = fl.fit(flow, x, steps=3, batch_size=None, progress=False, objective=partial(flow_matching, coupling=z))
    assert h.steps == 3
    with pytest.raises(ValueError, match="coupling"):
        fl.fit(flow, x, steps=1, batch_size=10, progress=False, objective=partial(flow_matching, coupling=z))


def test_the_default_objective_is_still_maximum_likelihood():
    flow = cnf_flow(hidden=(8, 8), steps=2)
    x = gaussian_data(16, 0)
    run = fl.Training(flow, x, steps=1, batch_size=None)
    want = float(fl.forward_kl(flow, x).detach())
    assert run.step() == pytest.approx(want)


# ------------------------------------------------------------------------ the time input


def test_time_mlp_takes_a_time_per_row():
    g = shaken(TimeMLP(2, (8, 8)), scale=0.5, fan_in=True).double()
    z = torch.randn(7, 2, dtype=f64)
    t = torch.rand(7, dtype=f64)
    rows = torch.cat([g(ti, zi[None]) for ti, zi in zip(t, z)])
    assert torch.allclose(g(t, z), rows)
    eye = torch.eye(2, dtype=f64).expand(7, 2, 2)
    out, jv = g.jvp(t, z, eye)
    rows = [g.jvp(ti, zi[None], eye[:1]) for ti, zi in zip(t, z)]
    assert torch.allclose(out, torch.cat([r[0] for r in rows]))
    assert torch.allclose(jv, torch.cat([r[1] for r in rows]))


# ------------------------------------------------------------------------ the dashboard


def test_dashboard_family_trains_by_flow_matching():
    from flowlab.live.choices import FAMILIES, objective_name
    from flowlab.live.session import Session

    assert FAMILIES["flow matching (CNF)"].objective == "flow_matching"
    s = Session(target="moons", family="flow matching (CNF)", hidden=16, steps=30, batch_size=64)
    assert objective_name(s.settings["family"], s.target_object) == "flow matching"
    s.start()
    assert s.wait(timeout=120)
    assert s.step_count == 30 and not s.message_is_error, s.message
    assert s.run.objective is flow_matching
    replay = s.record(steps=10, every=5, grid=16)
    assert replay.steps == [0, 5, 10]


# ------------------------------------------------------------------------ bad input


def test_bad_input():
    flow = cnf_flow()
    x = gaussian_data(8, 0)
    with pytest.raises(ValueError, match="CNF"):
        flow_matching(fl.Flow(fl.MAF(2), fl.StandardNormal(2)), x.float())
    with pytest.raises(ValueError, match="Flow"):
        flow_matching(flow.transform, x)
    with pytest.raises(ValueError, match="path"):
        flow_matching(flow, x, path="cosine")
    with pytest.raises(ValueError, match="coupling"):
        flow_matching(flow, x, coupling="optimal")
    with pytest.raises(ValueError, match=r"shape \(batch, 2\)"):
        flow_matching(flow, x[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        flow_matching(flow, torch.full((3, 2), math.nan, dtype=f64))
    with pytest.raises(ValueError, match="coupling='ot'"):
        flow_matching(flow, torch.zeros(MAX_OT_BATCH + 1, 2, dtype=f64), coupling="ot")
    with pytest.raises(ValueError, match="objective"):
        fl.Training(flow, x, objective="flow matching")
    with pytest.raises(ValueError, match="reverse KL"):
        fl.Training(flow, fl.targets.banana_log_prob, objective="flow_matching")
    with pytest.raises(ValueError, match="CNF"):
        fl.Training(fl.Flow(fl.MAF(2), fl.StandardNormal(2)), x.float(), objective="flow_matching")
