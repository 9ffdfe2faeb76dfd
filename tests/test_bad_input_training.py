"""Bad input to the training entry points (fit, Training, split, forward_kl, reverse_kl) and to
replays (Replay, Painter, record): a ValueError (TypeError for a wrong kind of object) that says
what to change, raised before any step has run, so that a rejected call leaves the flow as it was.
The checks themselves live in flowlab/_checks.py (tested in test_bad_input.py)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import flowlab as fl
from flowlab import replay


def snapshot(flow):
    return [p.detach().clone() for p in flow.parameters()]


def unchanged(flow, before):
    return all(torch.equal(a, b) for a, b in zip(before, flow.parameters()))


# ----------------------------------------------------------------------------- data


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
def test_fit_rejects_badly_shaped_data(bad, match, flow, device, data):
    with pytest.raises(ValueError, match=match):
        fl.fit(flow, bad(data(device)), steps=1, progress=False)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["data", "valid"])
def test_fit_rejects_non_finite_data(value, where, flow, device, data):
    x = data(device)
    bad = x.clone()
    bad[3, 1] = value
    bad[10, 0] = value
    kwargs = {"data": bad} if where == "data" else {"data": x, "valid": bad}
    before = snapshot(flow)
    with pytest.raises(ValueError, match=rf"{where} contains NaN or infinite values in 2 rows \(first: \[3, 10\]\); remove or impute"):
        fl.fit(flow, steps=1, progress=False, **kwargs)
    assert unchanged(flow, before), "a rejected call changed the flow"


def test_fit_accepts_lists_and_integer_arrays(flow):
    history = fl.fit(flow, [[0, 1], [1, 0], [2, 2]], steps=2, progress=False)
    assert history.steps == 2


def test_fit_accepts_float64_data(flow, device, data):
    history = fl.fit(flow, data(device).double(), steps=2, progress=False)
    assert history.steps == 2 and all(p.dtype == torch.float32 for p in flow.parameters())


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("steps", [0, -5, 1.5])
def test_steps_below_one(steps, flow, device, data):
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got"):
        fl.fit(flow, data(device), steps=steps, progress=False)


@pytest.mark.parametrize("lr", [0, -1e-3, math.nan, math.inf, "0.01"])
def test_lr_not_positive(lr, flow, device, data):
    with pytest.raises(ValueError, match=r"lr must be (a positive number|finite), got"):
        fl.fit(flow, data(device), steps=1, lr=lr, progress=False)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda f, x: fl.fit(f, x, batch_size=0, progress=False), r"batch_size must be an integer >= 1"),
        (lambda f, x: fl.fit(f, x, valid_every=0, progress=False), r"valid_every must be an integer >= 1"),
        (lambda f, x: fl.fit(f, x, weight_decay=-1.0, progress=False), r"weight_decay must be a finite number >= 0"),
        (lambda f, x: fl.fit(f, x, weight_decay=float("inf"), progress=False), r"weight_decay must be a finite number"),
        (lambda f, x: fl.fit(f, x, schedule="linear", progress=False), r"schedule must be 'cosine' or 'constant'"),
        (lambda f, x: fl.fit(f, x, valid=0.0, progress=False), r"valid \(the share of the data held out\) must be in"),
    ],
    ids=["batch_size", "valid_every", "weight_decay", "weight_decay_inf", "schedule", "valid_fraction"],
)
def test_impossible_settings(call, match, flow, device, data):
    with pytest.raises(ValueError, match=match):
        call(flow, data(device))


# ----------------------------------------------------------------------------- seeds


SEED_MESSAGE = r"seed must be an integer between 0 and 2\*\*64 - 1 \(or None for fresh randomness\)|seed must be an integer >= 0"


@pytest.mark.parametrize("seed", ["a", "3", 1.5, -1, True, [0]])
def test_fit_seed_must_be_an_integer(seed, flow, device, data):
    before = snapshot(flow)
    with pytest.raises(ValueError, match=SEED_MESSAGE):
        fl.fit(flow, data(device), steps=2, seed=seed, progress=False)
    assert unchanged(flow, before)


@pytest.mark.parametrize("seed", ["a", 1.5, -1, True])
def test_split_seed_must_be_an_integer(seed):
    with pytest.raises(ValueError, match=SEED_MESSAGE):
        fl.split(torch.randn(10, 2), 0.2, seed=seed)


def test_seed_none_means_fresh_randomness(flow, device, data):
    assert fl.fit(flow, data(device), steps=2, seed=None, progress=False).steps == 2
    train, valid = fl.split(torch.randn(10, 2), 0.2, seed=None)
    assert (len(train), len(valid)) == (8, 2)
    a, _ = fl.split(torch.arange(20.0).view(10, 2), 0.5, seed=3)
    b, _ = fl.split(torch.arange(20.0).view(10, 2), 0.5, seed=3)
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- callbacks


@pytest.mark.parametrize("callback", [5, "print", [print]], ids=["int", "str", "list"])
def test_callback_is_checked_before_the_first_step(callback, flow, device, data):
    before = snapshot(flow)
    with pytest.raises(TypeError, match=r"callback must be a function callback\(step, loss\)"):
        fl.fit(flow, data(device), steps=3, callback=callback, progress=False)
    assert unchanged(flow, before), "a step ran before the callback was checked"


# ----------------------------------------------------------------------------- devices


@pytest.mark.parametrize(
    "name,match",
    [
        ("gpu", r"device 'gpu' is not a torch device name \(torch calls a GPU 'cuda'\); choose one of: .*'cpu'"),
        (5, r"device must be a device name such as 'cpu' or 'cuda', got 5.*; choose one of: .*'cpu'"),
        ("cuda:99", r"the device 'cuda:99' is not available here.*; choose one of: .*'cpu'"),
    ],
    ids=["gpu", "int", "cuda:99"],
)
def test_fit_device_lists_the_available_devices(name, match, flow, data):
    before = snapshot(flow)
    with pytest.raises(ValueError, match=match):
        fl.fit(flow, data("cpu"), steps=2, device=name, progress=False)
    assert unchanged(flow, before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_fit_on_cuda_without_cuda(data):
    flow = fl.Flow(fl.MAF(2, hidden=(8,)), fl.StandardNormal(2))
    with pytest.raises(ValueError, match=r"not available here \(this torch sees no CUDA GPU\); choose one of: 'cpu'"):
        fl.fit(flow, data("cpu"), steps=2, device="cuda", progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_record_on_cuda_without_cuda(data):
    flow = fl.Flow(fl.MAF(2, hidden=(8,)), fl.StandardNormal(2))
    with pytest.raises(ValueError, match=r"not available here \(this torch sees no CUDA GPU\); choose one of: 'cpu'"):
        replay.record(flow, data("cpu"), steps=2, every=1, device="cuda")


# ----------------------------------------------------------------------------- objects of the wrong kind


@pytest.mark.parametrize(
    "call",
    [
        lambda x: fl.forward_kl(fl.MAF(2), x),
        lambda x: fl.reverse_kl(fl.MAF(2).inv, fl.targets.banana_log_prob, 8),
        lambda x: fl.fit(fl.MAF(2), x, steps=1, progress=False),
        lambda x: fl.Training(fl.MAF(2), x, steps=1),
        lambda x: replay.record(fl.MAF(2), x, steps=2, every=1),
    ],
    ids=["forward_kl", "reverse_kl", "fit", "Training", "record"],
)
def test_a_transform_where_a_flow_is_needed(call, data):
    with pytest.raises(TypeError, match=r"flowlab Flow.*fl\.Flow\(transform, fl\.StandardNormal\("):
        call(data("cpu"))


@pytest.mark.parametrize("target", [5, "banana", None], ids=["int", "str", "None"])
def test_reverse_kl_needs_a_function(target):
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2))
    with pytest.raises(TypeError, match=r"log_prob_fn must be a function"):
        fl.reverse_kl(flow, target, 8)


# ----------------------------------------------------------------------------- non-finite user log-densities


def nan_outside_the_unit_disc(x):
    return torch.where(x.norm(dim=-1) < 1, -x.pow(2).sum(-1), torch.nan)


def log_of_zero_on_the_left(x):
    return torch.where(x[:, 0] > 0, -x.pow(2).sum(-1), -torch.inf)


@pytest.mark.parametrize("log_p,shown", [(nan_outside_the_unit_disc, "nan"), (log_of_zero_on_the_left, "-inf")])
def test_reverse_kl_says_the_log_density_is_not_finite_and_where(log_p, shown):
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2))
    with pytest.raises(ValueError, match=rf"log_prob_fn returned {shown} at \d+ of 256 samples of the flow, for example at x = \["):
        fl.reverse_kl(flow, log_p, 256, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("log_p", [nan_outside_the_unit_disc, log_of_zero_on_the_left], ids=["nan", "-inf"])
def test_fit_by_reverse_kl_blames_the_log_density_not_the_learning_rate(log_p):
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2))
    before = snapshot(flow)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "training stopped ... try a smaller learning rate" warning
        with pytest.raises(ValueError, match=r"log_prob_fn returned (nan|-inf) at \d+ of \d+ samples"):
            fl.fit(flow, log_p, steps=5, progress=False)
    assert unchanged(flow, before)


# ----------------------------------------------------------------------------- replays


FRAME = b"\x89PNG fake"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(frames=[FRAME, FRAME], steps=[0], loss=[1.0]), r"2 frames,? (and )?1 steps"),
        (dict(frames=[FRAME], steps=[0, 5], loss=[1.0] * 5), r"1 frames,? (and )?2 steps"),
        (dict(frames=[FRAME, FRAME], steps=[0, 20], loss=[1.0] * 5), r"the last frame is at step 20 but (the )?loss has 5"),
        (dict(frames=[FRAME, FRAME], steps=[5, 0], loss=[1.0] * 5), r"steps must (not decrease|be increasing)"),
        (dict(frames=[], steps=[], loss=[]), r"frames must be a non-empty|at least one frame"),
        (dict(frames=[FRAME], steps=[0], loss=[1.0], valid_step=[1], valid_nll=[]), r"valid_step and valid_nll (must have the same length|differ in length)"),
        (dict(frames=[FRAME], steps=[0], loss=[1.0], fps=0), r"fps must be a positive number"),
        (dict(frames=[FRAME], steps=[0], loss=[1.0], fps=math.inf), r"fps must be finite"),
        (dict(frames=[FRAME], steps=[0], loss=[1.0], extent=math.inf), r"extent must be finite"),
        (dict(frames=[FRAME], steps=[0], loss=[1.0], extent=-1.0), r"extent must be a positive number"),
    ],
    ids=["frames>steps", "steps>frames", "steps>loss", "decreasing", "empty", "valid", "fps0", "fps-inf", "extent-inf", "extent<0"],
)
def test_replay_parts_must_agree(kwargs, match):
    with pytest.raises(ValueError, match=match):
        replay.Replay(**kwargs)


def test_a_consistent_replay_still_plays():
    r = replay.Replay([FRAME, FRAME], [0, 3], [1.0, 0.5, 0.25])
    assert "step 3" in r.html()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(extent=math.inf), r"extent must be finite"),
        (dict(extent=math.nan), r"extent must be a positive number"),
        (dict(extent=0), r"extent must be a positive number"),
        (dict(cmap="virdis"), r"cmap.*matplotlib colour map.*'vi"),
        (dict(level=12), r"level must be an integer between 0 and 9"),
        (dict(grid=1), r"grid must be an integer >= 2"),
    ],
    ids=["extent-inf", "extent-nan", "extent-0", "cmap", "level", "grid"],
)
def test_painter_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        replay.Painter(**kwargs)


def test_painter_colour_map_of_the_wrong_kind():
    with pytest.raises(ValueError, match=r"cmap must be"):
        replay.Painter(cmap=5)


# ----------------------------------------------------------------------------- divergence


def params_finite(flow):
    return all(torch.isfinite(p).all() for p in flow.parameters())


def test_no_warning_when_training_is_fine(flow, device, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = fl.fit(flow, data(device), steps=5, progress=False)
    assert history.message == "" and history.steps == 5


def test_huge_data_never_leaves_nan_parameters(device):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        flow = fl.Flow(fl.MAF(2, hidden=(16,)), fl.StandardNormal(2)).to(device)
    x = fl.targets.circles(256, seed=0).to(device)
    before = snapshot(flow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fl.fit(flow, x * 1e30, steps=20, progress=False)  # finite data whose squared norm overflows float32
    assert params_finite(flow) and unchanged(flow, before)  # no step had a finite loss: nothing changed


@pytest.mark.parametrize("make", [lambda: fl.MAF(2, hidden=(16,)), lambda: fl.SplineAutoregressive(2, hidden=(16,), layers=2)],
                         ids=["MAF", "spline"])
def test_a_huge_learning_rate_never_leaves_nan_parameters(make, device):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        flow = fl.Flow(make(), fl.StandardNormal(2)).to(device)
    x = fl.targets.circles(256, seed=0).to(device)
    with torch.no_grad():
        start = float(-flow.log_prob(x).mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fl.fit(flow, x, steps=50, lr=1e6, batch_size=None, progress=False)
    assert params_finite(flow)
    with torch.no_grad():  # the flow still works, and is no worse than where it started
        assert torch.isfinite(flow.log_prob(x)).all() and torch.isfinite(flow.sample(100)).all()
        assert float(-flow.log_prob(x).mean()) <= start + 1e-3
