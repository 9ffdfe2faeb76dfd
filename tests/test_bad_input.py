"""Bad input gets a ValueError that says what to change; diverging training never leaves NaN."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import flowlab as fl


@pytest.fixture
def flow(device):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return fl.Flow(fl.MAF(2, hidden=(8,)), fl.StandardNormal(2)).to(device)


def data(device, n=64):
    return fl.targets.moons(n, seed=0).to(device)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "call",
    [
        lambda f, x: f.log_prob(x[:, :1]),
        lambda f, x: f.log_prob(torch.cat([x, x], dim=1)),
        lambda f, x: f.transform(x[:, :1]),
        lambda f, x: f.transform.inverse(x[:, :1]),
        lambda f, x: f.base.log_prob(x[:, :1]),
        lambda f, x: fl.Reverse(3)(x),
        lambda f, x: fl.Permutation(3).inverse(x),
        lambda f, x: fl.targets.circles_log_prob(x[:, :1]),
        lambda f, x: fl.targets.eight_gaussians_log_prob(x[:, :1]),
    ],
    ids=["log_prob-1col", "log_prob-4col", "forward", "inverse", "base", "Reverse", "Permutation", "circles_lp", "eight_lp"],
)
def test_wrong_number_of_features(call, flow, device):
    with pytest.raises(ValueError, match=r"must have shape \(batch, \d\), got"):
        call(flow, data(device))


def test_single_point_without_batch_dimension(flow, device):
    with pytest.raises(ValueError, match=r"shape \(batch, 2\).*x\.unsqueeze\(0\)"):
        flow.log_prob(data(device)[0])


@pytest.mark.parametrize(
    "bad,match",
    [
        (lambda x: x[:, :1], r"data has 1 columns but the flow has 2 features"),
        (lambda x: x[0], r"data must have shape \(n, D\), got \(2,\)"),
        (lambda x: x[None], r"data must have shape \(n, D\), got \(1, 64, 2\)"),
        (lambda x: x[:0], r"data is empty: it needs at least one row"),
        (lambda x: "circles", r"data must be an array or tensor of shape \(n, D\)"),
    ],
    ids=["columns", "1-d", "3-d", "empty", "string"],
)
def test_fit_rejects_badly_shaped_data(bad, match, flow, device):
    with pytest.raises(ValueError, match=match):
        fl.fit(flow, bad(data(device)), steps=1, progress=False)


# ----------------------------------------------------------------------------- non-finite data


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["data", "valid"])
def test_fit_rejects_non_finite_data(value, where, flow, device):
    x = data(device)
    bad = x.clone()
    bad[3, 1] = value
    bad[10, 0] = value
    kwargs = {"data": bad} if where == "data" else {"data": x, "valid": bad}
    before = [p.detach().clone() for p in flow.parameters()]
    with pytest.raises(ValueError, match=rf"{where} contains NaN or infinite values in 2 rows \(first: \[3, 10\]\); remove or impute"):
        fl.fit(flow, steps=1, progress=False, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, flow.parameters())), "a rejected call changed the flow"


def test_fit_accepts_lists_and_integer_arrays(flow):
    history = fl.fit(flow, [[0, 1], [1, 0], [2, 2]], steps=2, progress=False)
    assert history.steps == 2


# ----------------------------------------------------------------------------- impossible settings


@pytest.mark.parametrize("parts", [0, -1, 4, 2.0, True, "2"])
@pytest.mark.parametrize(
    "build",
    [
        lambda p: fl.MaskedConditioner(3, parts=p),
        lambda p: fl.MAF(3, parts=p),
        lambda p: fl.SplineAutoregressive(3, parts=p),
    ],
    ids=["MaskedConditioner", "MAF", "SplineAutoregressive"],
)
def test_parts_outside_one_to_features(build, parts):
    with pytest.raises(ValueError, match=r"parts must be an integer between 1 and features=3, got"):
        build(parts)


@pytest.mark.parametrize("bins", [0, -3, 2.5])
def test_bins_below_one(bins):
    with pytest.raises(ValueError, match=r"bins must be an integer >= 1, got"):
        fl.RQSpline(bins=bins)
    with pytest.raises(ValueError, match=r"bins must be an integer >= 1, got"):
        fl.SplineAutoregressive(2, bins=bins)


@pytest.mark.parametrize("bound", [0, -1.0, math.nan, math.inf])
def test_bound_not_positive(bound):
    with pytest.raises(ValueError, match=r"bound must be (a positive number|finite), got"):
        fl.RQSpline(bound=bound)
    with pytest.raises(ValueError, match=r"bound must be (a positive number|finite), got"):
        fl.SplineAutoregressive(2, bound=bound)


@pytest.mark.parametrize("steps", [0, -5, 1.5])
def test_steps_below_one(steps, flow, device):
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got"):
        fl.fit(flow, data(device), steps=steps, progress=False)


@pytest.mark.parametrize("lr", [0, -1e-3, math.nan, math.inf])
def test_lr_not_positive(lr, flow, device):
    with pytest.raises(ValueError, match=r"lr must be (a positive number|finite), got"):
        fl.fit(flow, data(device), steps=1, lr=lr, progress=False)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda f, x: fl.fit(f, x, batch_size=0, progress=False), r"batch_size must be an integer >= 1"),
        (lambda f, x: fl.fit(f, x, valid_every=0, progress=False), r"valid_every must be an integer >= 1"),
        (lambda f, x: fl.fit(f, x, weight_decay=-1.0, progress=False), r"weight_decay must be >= 0"),
        (lambda f, x: fl.fit(f.transform, x, progress=False), r"fit trains a flowlab Flow, got"),
        (lambda f, x: fl.MAF(2, layers=0), r"layers must be an integer >= 1"),
        (lambda f, x: fl.MAF(2, hidden=(0,)), r"hidden size must be an integer >= 1"),
        (lambda f, x: fl.MaskedConditioner(0), r"features must be an integer >= 1"),
        (lambda f, x: fl.StandardNormal(0), r"features must be an integer >= 1"),
        (lambda f, x: f.sample(0), r"n must be an integer >= 1"),
        (lambda f, x: fl.Affine(scale_bound=0), r"scale_bound must be a positive number"),
        (lambda f, x: fl.Permutation(3, order=[0, 0, 1]), r"order must be a permutation of 0..2"),
        (lambda f, x: fl.Compose(), r"Compose needs at least one transform"),
        (lambda f, x: fl.Compose(torch.nn.Linear(2, 2)), r"Compose takes flowlab Transforms"),
        (lambda f, x: fl.Flow(torch.nn.Linear(2, 2), fl.StandardNormal(2)), r"transform must be a flowlab Transform"),
        (lambda f, x: fl.Autoregressive(fl.MaskedConditioner(2), torch.nn.Identity()), r"transformer must be a flowlab Transformer"),
        (lambda f, x: f.transform.inverse(x, passes=0), r"passes must be an integer >= 1"),
        (lambda f, x: fl.targets.circles(0), r"n must be an integer >= 1"),
        (lambda f, x: fl.targets.circles(10, factor=1.5), r"factor .* must be in \(0, 1\)"),
        (lambda f, x: fl.targets.circles(10, noise=0), r"noise must be a positive number"),
        (lambda f, x: fl.targets.eight_gaussians(10, std=-1), r"std must be a positive number"),
    ],
    ids=lambda v: v.split(" ")[0][:24] if isinstance(v, str) else "",
)
def test_other_impossible_settings(call, match, flow, device):
    with pytest.raises(ValueError, match=match):
        call(flow, data(device))


@pytest.mark.parametrize("kwargs", [dict(std=0.0), dict(std=-1.0), dict(radius=-2.0)], ids=["std0", "std-1", "radius-2"])
def test_eight_gaussians_log_prob_checks_its_settings(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=rf"{name} must be a positive number"):
        fl.targets.eight_gaussians_log_prob(torch.zeros(3, 2), **kwargs)


# ----------------------------------------------------------------------------- divergence


def params_finite(flow):
    return all(torch.isfinite(p).all() for p in flow.parameters())


MAKE_FLOW = [lambda: fl.MAF(2, hidden=(16,)), lambda: fl.SplineAutoregressive(2, hidden=(16,), layers=2)]


def seeded_flow(make, device):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return fl.Flow(make(), fl.StandardNormal(2)).to(device)


def check_stopped_cleanly(flow, history, x):
    assert params_finite(flow)
    assert "Try a smaller lr or standardized data" in history.message
    assert history.steps < 50 and all(math.isfinite(v) for v in history.loss)
    with torch.no_grad():  # the flow still works: finite densities and samples
        assert torch.isfinite(flow.log_prob(x)).all()
        assert torch.isfinite(flow.sample(100)).all()


@pytest.mark.parametrize("make_flow", MAKE_FLOW, ids=["MAF", "spline"])
def test_divergence_on_huge_data_keeps_finite_parameters(make_flow, device):
    flow = seeded_flow(make_flow, device)
    x = fl.targets.circles(256, seed=0).to(device)
    before = [p.detach().clone() for p in flow.parameters()]
    with pytest.warns(RuntimeWarning, match=r"training stopped at step 0: the loss became inf"):
        history = fl.fit(flow, x * 1e30, steps=50, progress=False)  # finite data; its squared norm overflows float32
    check_stopped_cleanly(flow, history, x)
    # the first loss is already infinite: nothing may have changed
    assert history.steps == 0
    assert all(torch.equal(a, b) for a, b in zip(before, flow.parameters()))


@pytest.mark.parametrize("make_flow", MAKE_FLOW, ids=["MAF", "spline"])
def test_divergence_on_huge_lr_stops_with_a_message(make_flow, device):
    flow = seeded_flow(make_flow, device)
    x = fl.targets.circles(256, seed=0).to(device)
    with pytest.warns(RuntimeWarning, match=r"training stopped at step \d+"):
        # full batches: the training loss is then the loss on all of x, compared below
        history = fl.fit(flow, x, steps=50, lr=1e6, batch_size=None, progress=False)
    check_stopped_cleanly(flow, history, x)
    # what is kept is good: no worse than where training started
    with torch.no_grad():
        assert float(-flow.log_prob(x).mean()) <= history.loss[0] + 1e-3


def test_no_warning_when_training_is_fine(flow, device):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = fl.fit(flow, data(device), steps=5, progress=False)
    assert history.message == "" and history.steps == 5
