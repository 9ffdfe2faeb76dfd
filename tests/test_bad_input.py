"""Bad input gets a ValueError (a TypeError that is also a ValueError for a wrong kind of object)
that names the argument, the value and what to pass instead: never a deep traceback, a silent NaN
or a hang. The training entry points (fit, split, the KL objectives, replays) are checked in
test_bad_input_training.py."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import flowlab as fl
from flowlab import _checks as C
from flowlab import nn as fnn
from flowlab import numerics


def test_a_wrong_kind_of_object_is_both_a_type_and_a_value_error():
    with pytest.raises(TypeError) as info:
        fl.Flow(fl.MAF(2), None)
    assert isinstance(info.value, ValueError)  # code that catches ValueError (the dashboard) sees it too


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
def test_wrong_number_of_features(call, flow, device, data):
    with pytest.raises(ValueError, match=r"must have shape \(batch, \d\), got"):
        call(flow, data(device))


def test_single_point_without_batch_dimension(flow, device, data):
    with pytest.raises(ValueError, match=r"shape \(batch, 2\).*x\.unsqueeze\(0\)"):
        flow.log_prob(data(device)[0])


@pytest.mark.parametrize("x", ["circles", None, b"xy"], ids=["str", "None", "bytes"])
def test_log_prob_of_something_that_is_not_an_array(x, flow):
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor of shape \(batch, 2\), got"):
        flow.log_prob(x)


# ----------------------------------------------------------------------------- 1. dtype


@pytest.mark.parametrize(
    "convert",
    [lambda x: x.double(), lambda x: x.long(), lambda x: x.int(), lambda x: x.half(), lambda x: x.double().cpu().numpy(),
     lambda x: x.cpu().tolist()],
    ids=["float64", "int64", "int32", "float16", "numpy-float64", "list"],
)
def test_log_prob_converts_its_input_to_the_flow_dtype(convert, flow, device, data):
    x = data(device).round()  # integer-valued, so that int and float16 inputs hold the same points
    expected = flow.log_prob(x)
    got = flow.log_prob(convert(x))
    assert got.dtype == torch.float32 and got.device == expected.device
    assert torch.allclose(got, expected, atol=1e-6)


def test_a_float64_flow_converts_float32_input_and_samples_in_float64(flow, device, data):
    x = data(device)
    low = flow.log_prob(x)
    flow = flow.double()
    high = flow.log_prob(x)  # float32 input, float64 flow
    assert high.dtype == torch.float64 and torch.allclose(high.float(), low, atol=1e-5)
    assert flow.sample(5).dtype == torch.float64
    xs, lp = flow.rsample_and_log_prob(5)
    assert xs.dtype == lp.dtype == torch.float64


def test_a_base_in_another_dtype_joins_the_transform_dtype():
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).double(), fl.StandardNormal(2))  # a float32 base
    assert flow.base.sample(2).dtype == torch.float64
    x, log_p = flow.rsample_and_log_prob(16)
    assert x.dtype == torch.float64
    assert torch.allclose(flow.log_prob(x), log_p, atol=1e-10)  # the density of its own samples agrees


@pytest.mark.parametrize(
    "make", [lambda: fl.MAF(2, hidden=(8,)), lambda: fl.SplineAutoregressive(2, hidden=(8,), layers=1),
             lambda: fl.RNNFlow(2, hidden=4, layers=1)],
    ids=["MAF", "spline", "RNN"],
)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_a_bare_transform_names_both_dtypes(make, direction):
    t = make()
    call = t if direction == "forward" else t.inverse
    name = "x" if direction == "forward" else "z"
    with pytest.raises(ValueError, match=rf"{name} has dtype torch.float64 but the .* parameters have dtype torch.float32: pass {name}.float\(\)"):
        call(torch.randn(3, 2, dtype=torch.float64))
    if direction == "forward":  # (an inverse may promote integers to float by itself, correctly)
        with pytest.raises(ValueError, match=r"x has dtype torch.int64 .* pass x.float\(\)"):
            call(torch.ones(3, 2, dtype=torch.long))


def test_log_prob_refuses_complex_input(flow):
    with pytest.raises(ValueError, match=r"x must hold real numbers, got dtype torch.complex64"):
        flow.log_prob(torch.zeros(3, 2, dtype=torch.complex64))


def test_log_prob_refuses_input_on_another_device():
    flow = fl.Flow(fl.MAF(2, hidden=(8,)), fl.StandardNormal(2)).to("meta")  # a second device on any machine
    with pytest.raises(ValueError, match=r"x is on cpu but the flow is on meta: pass x.to\('meta'\)"):
        flow.log_prob(torch.zeros(3, 2))


# ----------------------------------------------------------------------------- 2. argument forms


MASKED_BUILDERS = {
    "MAF": lambda h: fl.MAF(2, hidden=h),
    "IAF": lambda h: fl.IAF(2, hidden=h),
    "RealNVP": lambda h: fl.RealNVP(2, hidden=h, layers=1),
    "NeuralSplineFlow": lambda h: fl.NeuralSplineFlow(2, hidden=h, layers=1),
    "SplineAutoregressive": lambda h: fl.SplineAutoregressive(2, hidden=h, layers=1),
    "MonotonicFlow": lambda h: fl.MonotonicFlow(2, hidden=h, units=2, layers=1),
    "UMNNFlow": lambda h: fl.UMNNFlow(2, hidden=h, units=2, nodes=8, layers=1),
}


def conditioners(t):
    return [m for m in t.modules() if isinstance(m, fl.MaskedConditioner)]


@pytest.mark.parametrize("name", list(MASKED_BUILDERS))
def test_hidden_as_one_int_means_two_layers_of_that_width(name):
    t = MASKED_BUILDERS[name](6)
    assert [c.hidden for c in conditioners(t)] == [(6, 6)]
    x = torch.randn(5, 2, dtype=torch.float64)
    t = t.double()
    z, _ = t(x)
    assert torch.allclose(t.inverse(z)[0], x, atol=1e-6)  # a working flow, not just a built one


@pytest.mark.parametrize("name", list(MASKED_BUILDERS))
@pytest.mark.parametrize(
    "hidden,match",
    [
        (None, r"hidden must be an integer width, such as 64 .* or a sequence of widths, such as \(64, 64\); got None"),
        ("64", r"hidden must be an integer width.* got '64'"),
        (64.0, r"hidden must be an integer width.* got 64.0"),
        ((64, 0), r"hidden: every hidden size must be an integer >= 1, got hidden=\(64, 0\)"),
        ((8, 2.5), r"hidden: every hidden size must be an integer >= 1, got hidden=\(8, 2.5\)"),
        (0, r"hidden must be an integer >= 1, got 0"),
    ],
    ids=["None", "str", "float", "zero-width", "float-width", "zero"],
)
def test_hidden_in_a_form_that_cannot_work(name, hidden, match):
    with pytest.raises(ValueError, match=match):
        MASKED_BUILDERS[name](hidden)


@pytest.mark.parametrize(
    "build",
    [
        lambda h: fl.MaskedConditioner(3, hidden=h, outputs=2),
        lambda h: fnn.MaskedMLP(3, 2, 3, hidden=h),
    ],
    ids=["MaskedConditioner", "MaskedMLP"],
)
def test_the_networks_take_the_same_hidden_forms(build):
    a, b = build(5), build((5, 5))
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    with pytest.raises(TypeError, match=r"hidden must be an integer width"):
        build(None)
    with pytest.raises(ValueError, match=r"hidden: every hidden size must be an integer >= 1"):
        build([5, -1])


def test_rnn_hidden_is_one_number():
    with pytest.raises(ValueError, match=r"hidden must be an integer >= 1 \(the size of the GRU's state: one number, such as 64\), got \(64, 64\)"):
        fl.RNNConditioner(3, hidden=(64, 64))


@pytest.mark.parametrize("units", [0, -2, 2.5, None])
@pytest.mark.parametrize("build", [fl.MonotonicFlow, fl.UMNNFlow], ids=["MonotonicFlow", "UMNNFlow"])
def test_units_is_named_units(build, units):
    with pytest.raises(ValueError, match=r"^units must be an integer >= 1"):
        build(2, units=units)


@pytest.mark.parametrize("seed", ["a", "7", 1.5, 2.0, -1, True, 2**64, [1]])
@pytest.mark.parametrize("sampler", ["circles", "moons", "eight_gaussians", "banana", "two_modes"])
def test_target_seeds_must_be_integers(sampler, seed):
    with pytest.raises(ValueError, match=r"seed must be an integer between 0 and 2\*\*64 - 1 \(or None for fresh randomness\)"):
        getattr(fl.targets, sampler)(10, seed=seed)


def test_target_seeds_accept_none_and_numpy_integers():
    assert torch.equal(fl.targets.circles(10, seed=np.int64(3)), fl.targets.circles(10, seed=3))
    assert fl.targets.circles(10, seed=None).shape == (10, 2)


@pytest.mark.parametrize(
    "value,hint", [("42", "Pass the number 42, not the string '42'."), (3.0, "Pass 3, without the decimal point.")]
)
def test_check_seed_says_what_to_pass(value, hint):
    with pytest.raises(ValueError) as info:
        C.check_seed("seed", value)
    assert hint in str(info.value)


def test_check_seed_accepts_the_whole_64_bit_range():
    assert C.check_seed("seed", 0) == 0 and C.check_seed("seed", 2**64 - 1) == 2**64 - 1
    assert C.seeded_generator("seed", 2**64 - 1).initial_seed() == 2**64 - 1


# ----------------------------------------------------------------------------- 3. objects of the wrong kind


@pytest.mark.parametrize(
    "base,match",
    [
        (torch.distributions.Normal(0.0, 1.0), r"base must be a flowlab base distribution such as fl.StandardNormal\(2\), got the torch distribution Normal"),
        (None, r"base must be a flowlab base distribution .* got None"),
        (fl.StandardNormal, r"got the class flowlab.StandardNormal itself: call it"),
        (2, r"base must be a flowlab base distribution .* got 2"),
        (torch.nn.Linear(2, 2), r"base must be a flowlab base distribution .* got Linear"),
    ],
    ids=["torch-Normal", "None", "class", "int", "module"],
)
def test_flow_with_a_base_of_the_wrong_kind(base, match):
    with pytest.raises(TypeError, match=match):
        fl.Flow(fl.MAF(2), base)


@pytest.mark.parametrize(
    "transform,match",
    [
        (torch.nn.Linear(2, 2), r"transform must be a flowlab Transform such as fl.MAF\(2\), got Linear"),
        (fl.MAF, r"got the function MAF: call it to build one"),
        (fl.Reverse, r"got the class flowlab.Reverse itself: call it"),
        (None, r"transform must be a flowlab Transform .* got None"),
    ],
    ids=["module", "builder", "class", "None"],
)
def test_flow_with_a_transform_of_the_wrong_kind(transform, match):
    with pytest.raises(TypeError, match=match):
        fl.Flow(transform, fl.StandardNormal(2))


@pytest.mark.parametrize(
    "transform",
    [lambda: fl.MAF(3), lambda: fl.MAF(3).inv, lambda: fl.Compose(fl.Reverse(3), fl.MAF(3)), lambda: fl.SplineAutoregressive(3)],
    ids=["MAF", "IAF", "Compose", "spline"],
)
def test_flow_with_mismatched_features_fails_at_construction(transform):
    with pytest.raises(ValueError, match=r"the transform works on 3 features but the base distribution has 2: use fl.StandardNormal\(3\)"):
        fl.Flow(transform(), fl.StandardNormal(2))


def test_compose_of_transforms_of_different_sizes():
    with pytest.raises(ValueError, match=r"Compose joins transforms of one size, but these work on 2 and 3 features"):
        fl.Compose(fl.MAF(3), fl.Reverse(2))
    with pytest.raises(TypeError, match=r"Compose takes flowlab Transforms: argument 1 must be a flowlab Transform"):
        fl.Compose(fl.Reverse(2), torch.nn.Linear(2, 2))


@pytest.mark.parametrize(
    "conditioner,match",
    [
        (torch.nn.Linear(2, 2), r"conditioner must be a flowlab conditioner such as fl.MaskedConditioner\(features\) .* got Linear"),
        (fl.MaskedConditioner, r"got the class flowlab.MaskedConditioner itself: call it"),
        (fl.Affine(), r"got the transformer Affine: the conditioner comes first, fl.Autoregressive\(conditioner, transformer\)"),
        (None, r"conditioner must be a flowlab conditioner .* got None"),
        (lambda x: x, r"conditioner must be a flowlab conditioner .* got the function"),
    ],
    ids=["module", "class", "swapped", "None", "function"],
)
def test_autoregressive_with_a_non_conditioner(conditioner, match):
    with pytest.raises(TypeError, match=match):
        fl.Autoregressive(conditioner, fl.Affine())


@pytest.mark.parametrize("transformer", [fl.RQSpline, torch.nn.Identity(), "spline"], ids=["class", "module", "str"])
def test_autoregressive_with_a_non_transformer(transformer):
    with pytest.raises(TypeError, match=r"transformer must be a flowlab Transformer such as fl.RQSpline\(\)"):
        fl.Autoregressive(fl.MaskedConditioner(2), transformer)


TRANSFORMERS = [fl.Affine(), fl.RQSpline(bins=4), fl.MonotonicNN(hidden=3), fl.Integral(hidden=3, nodes=8)]


@pytest.mark.parametrize("tau", TRANSFORMERS, ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_a_transformer_given_the_wrong_number_of_parameters(tau, direction):
    call = tau if direction == "forward" else tau.inverse
    x = torch.randn(5, 2)
    assert call(x, torch.zeros(5, 2, tau.params))[0].shape == x.shape  # the right number works
    for c in (torch.zeros(5, 2, tau.params + 1), torch.zeros(5, 2 * tau.params), None):
        with pytest.raises(ValueError, match=rf"takes c of shape \(batch, features, {tau.params}\), {tau.params} parameters per entry of x \(x has shape \(5, 2\)\); got c of"):
            call(x, c)


@pytest.mark.parametrize("generator", [0, "seed", torch.Generator], ids=["int", "str", "class"])
def test_sample_with_a_seed_instead_of_a_generator(generator, flow):
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator, such as torch.Generator\(\).manual_seed\(0\), or None"):
        flow.sample(3, generator=generator)


def test_check_callable_and_check_flow():
    with pytest.raises(TypeError, match=r"callback must be a function callback\(step, loss\), got 5"):
        C.check_callable("callback", 5, "a function callback(step, loss)")
    C.check_callable("callback", print, "a function")
    with pytest.raises(TypeError, match=r"flow must be a flowlab Flow, got the transform Compose: wrap it .* fl.Flow\(transform, fl.StandardNormal\(features\)\)"):
        fl.core.check_flow("flow", fl.MAF(2, layers=2))
    with pytest.raises(TypeError, match=r"flow must be a flowlab Flow such as .* got None"):
        fl.core.check_flow("flow", None)


# ----------------------------------------------------------------------------- 4. devices


@pytest.mark.parametrize(
    "device,match",
    [
        ("gpu", r"device 'gpu' is not a torch device name \(torch calls a GPU 'cuda'\); choose one of: .*'cpu'"),
        ("GPU:0", r"device 'GPU:0' is not a torch device name \(torch calls a GPU 'cuda'\)"),
        ("graphics", r"device 'graphics' is not a torch device name; choose one of: .*'cpu'"),
        (5, r"device must be a device name such as 'cpu' or 'cuda', got 5 \(for GPU number 5, pass 'cuda:5'\); choose one of: .*'cpu'"),
        (None, r"device must be a device name .* got None; choose one of"),
        ("cuda:99", r"the device 'cuda:99' is not available here .*; choose one of: .*'cpu'"),
        ("meta", r"the device 'meta' is not available here; choose one of"),
    ],
    ids=["gpu", "GPU:0", "graphics", "int", "None", "cuda:99", "meta"],
)
def test_check_device_lists_the_available_devices(device, match):
    with pytest.raises(ValueError, match=match):
        fl.device.check_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda():
    with pytest.raises(ValueError, match=r"the device 'cuda' \(cuda:0\) is not available here \(this torch sees no CUDA GPU\); choose one of: 'cpu'"):
        fl.device.check_device("cuda")


def test_check_device_accepts_what_exists():
    assert fl.device.check_device("cpu") == torch.device("cpu")
    assert fl.device.check_device(" CPU ") == torch.device("cpu")
    assert fl.device.check_device(torch.device("cpu")) == torch.device("cpu")
    for name in fl.available_devices():
        assert str(fl.device.check_device(name)) == name
    if torch.cuda.is_available():
        assert fl.device.check_device("cuda") == torch.device("cuda:0")


# ----------------------------------------------------------------------------- 5. non-finite values


@pytest.mark.parametrize("value,kind", [(math.nan, "NaN"), (math.inf, "infinite"), (-math.inf, "infinite")])
def test_log_prob_rejects_non_finite_points(value, kind, flow, device, data):
    x = data(device)
    x[7, 1] = value
    x[20, 0] = value
    with pytest.raises(ValueError, match=rf"x contains {kind} values in 2 rows \(first: \[7, 20\]\); the density is defined at finite points only"):
        flow.log_prob(x)


def test_log_prob_names_both_kinds(flow, device, data):
    x = data(device)
    x[1, 0], x[2, 1] = math.nan, math.inf
    with pytest.raises(ValueError, match=r"x contains NaN and infinite values in 2 rows \(first: \[1, 2\]\)"):
        flow.log_prob(x)


def test_huge_finite_points_are_not_refused(flow, device, data):
    # 1e30 is finite in float32: log_prob answers (with -inf, the true density underflows), fit decides
    assert not torch.isfinite(flow.log_prob(data(device) * 1e30)).any()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda T: T.circles(10, noise=1e39), r"noise must be a positive number at most 1e\+06 \(the samples are float32\), got 1e\+39"),
        (lambda T: T.moons(10, noise=1e39), r"noise must be a positive number at most 1e\+06"),
        (lambda T: T.moons(10, noise=math.nan), r"noise must be a positive number .*got nan"),
        (lambda T: T.eight_gaussians(10, radius=1e300), r"radius must be a positive number at most 1e\+06"),
        (lambda T: T.eight_gaussians(10, std=math.inf), r"std must be finite"),
        (lambda T: T.banana(10, curvature=math.nan), r"curvature must be a finite number, got nan"),
        (lambda T: T.banana(10, curvature=math.inf), r"curvature must be a finite number, got inf"),
        (lambda T: T.banana(10, curvature=1e30), r"curvature must be a number between -1e\+06 and 1e\+06"),
        (lambda T: T.banana(10, width=1e39), r"width must be a positive number at most 1e\+06"),
        (lambda T: T.banana_log_prob(torch.zeros(2, 2), curvature=math.nan), r"curvature must be a finite number"),
        (lambda T: T.two_modes(10, weight=math.nan), r"weight \(of the left mode\) must be in \(0, 1\)"),
        (lambda T: T.two_modes(10, separation=1e39), r"separation must be a positive number at most 1e\+06"),
        (lambda T: T.circles(10, factor=math.nan), r"factor \(inner radius / outer radius\) must be in \(0, 1\)"),
        (lambda T: T.circles(10, factor="0.5"), r"factor .* must be in \(0, 1\), a number strictly between 0 and 1, got '0.5'"),
        (lambda T: T.ring_log_prob(torch.zeros(2, 2), width=1e-400), r"width must be a positive number"),
        (lambda T: T.ring_log_z(radius=1e39), r"radius must be a positive number at most 1e\+06"),
    ],
    ids=lambda v: "" if callable(v) else v[:20],
)
def test_targets_refuse_absurd_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call(fl.targets)


def test_targets_at_the_largest_accepted_parameters_stay_finite():
    # the bound is sound: at 1e6 the samples and their exact log-densities are finite in float32
    T = fl.targets
    samples = [T.circles(500, noise=1e6, seed=0), T.moons(500, noise=1e6, seed=0),
               T.eight_gaussians(500, radius=1e6, std=1e6, seed=0), T.banana(500, scale=1e6, width=1e6, curvature=1e6, seed=0),
               T.two_modes(500, separation=1e6, std=1e6, seed=0)]
    assert all(bool(torch.isfinite(s).all()) for s in samples)
    assert bool(torch.isfinite(T.circles_log_prob(samples[0], noise=1e6)).all())
    assert bool(torch.isfinite(T.eight_gaussians_log_prob(samples[2], radius=1e6, std=1e6)).all())
    assert bool(torch.isfinite(T.banana_log_prob(samples[3], scale=1e6, width=1e6, curvature=1e6)).all())
    assert bool(torch.isfinite(T.two_modes_log_prob(samples[4], separation=1e6, std=1e6)).all())


def test_check_finite_names_rows_and_passes_finite_tensors():
    C.check_finite("x", torch.zeros(3, 2))
    x = torch.zeros(10, 2)
    x[[2, 4, 6], 1] = math.nan
    with pytest.raises(ValueError, match=r"x contains NaN values in 3 rows \(first: \[2, 4, 6\]\); remove or impute them"):
        C.check_finite("x", x)


# ----------------------------------------------------------------------------- 6. hangs


def test_bisection_max_expand_is_bounded():
    y = torch.tensor([0.5])
    with pytest.raises(ValueError, match=r"max_expand must be an integer between 0 and 1100 \(more doublings overflow even a float64 bracket\), got 1000000"):
        numerics.bisection(torch.tanh, y, max_expand=10**6)
    with pytest.raises(ValueError, match=r"max_expand must be an integer between 0 and 1100"):
        numerics.bisection(torch.tanh, y, max_expand=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bisection_stops_when_the_bracket_reaches_infinity(dtype):
    # tanh < 2 everywhere: the bracket doubles until it is infinite, then stops (about 130 or
    # 1030 doublings), well before max_expand
    y = torch.tensor([0.0, 2.0], dtype=dtype)
    with pytest.raises(ValueError, match=r"could not bracket the root of f\(x\) = y for 1 entries after \d+ doublings") as info:
        numerics.bisection(torch.tanh, y, max_expand=numerics.MAX_EXPAND)
    doublings = int(re.search(r"after (\d+) doublings", str(info.value)).group(1))
    assert doublings < (140 if dtype == torch.float32 else 1040)
    # within range, a far root is still found: the bound does not cut off a useful search
    x = numerics.bisection(lambda v: v, torch.tensor([1e300], dtype=torch.float64), max_expand=numerics.MAX_EXPAND)
    assert torch.allclose(x, torch.tensor([1e300], dtype=torch.float64))


@pytest.mark.parametrize(
    "call",
    [
        lambda: fl.UMNNFlow(2, nodes=10**4),
        lambda: fl.Integral(nodes=10**4),
        lambda: numerics.legendre_nodes(10**4),
        lambda: numerics.gauss_legendre(torch.cos, 0.0, 1.0, n=10**4),
    ],
    ids=["UMNNFlow", "Integral", "legendre_nodes", "gauss_legendre"],
)
def test_quadrature_nodes_are_bounded(call):
    with pytest.raises(ValueError, match=r"(nodes|n) must be an integer between 1 and 1024 .*got 10000"):
        call()


def test_the_largest_rule_is_still_exact():
    t, w = numerics.legendre_nodes(numerics.MAX_NODES, torch.float64)
    assert float(w.sum()) == pytest.approx(2.0, abs=1e-12) and bool((t.diff() > 0).all())


# ----------------------------------------------------------------------------- the checks for replays


def test_check_recording():
    fl.replay.check_recording([b"a", b"b"], [0, 10], [1.0] * 10)
    cases = [
        (([b"a", b"b"], [0], [1.0]), r"frames and steps must have one entry per snapshot, got 2 frames and 1 steps"),
        (([], [], []), r"a replay needs at least one frame"),
        (([b"a"], [20], [1.0] * 5), r"the last frame is at step 20 but loss has 5 entries"),
        (([b"a", b"b"], [10, 0], [1.0] * 10), r"steps must not decrease"),
        (([b"a"], [-1], []), r"steps must be integers >= 0"),
        (([b"a"], [1.5], []), r"steps must be integers >= 0"),
        (([b"a"], [0], [], [5], []), r"valid_step and valid_nll must have the same length, got 1 and 0"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            fl.replay.check_recording(*args)
    with pytest.raises(TypeError, match=r"every frame must be PNG bytes"):
        fl.replay.check_recording(["a"], [0], [])
    with pytest.raises(TypeError, match=r"steps must be a list"):
        fl.replay.check_recording([b"a"], 0, [])


def test_check_colormap():
    assert C.check_colormap("cmap", "magma") == "magma"
    with pytest.raises(ValueError, match=r"cmap 'virdis' is not a known matplotlib colour map name; did you mean 'viridis'"):
        C.check_colormap("cmap", "virdis")
    with pytest.raises(ValueError, match=r"cmap 'zzzzzz' is not a known matplotlib colour map name; choose one of the \d+ names, such as"):
        C.check_colormap("cmap", "zzzzzz")
    with pytest.raises(TypeError, match=r"cmap must be a string"):
        C.check_colormap("cmap", 5)


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


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda f, x: fl.MAF(2, layers=0), r"layers must be an integer >= 1"),
        (lambda f, x: fl.MAF(2, hidden=(0,)), r"hidden size must be an integer >= 1"),
        (lambda f, x: fl.MaskedConditioner(0), r"features must be an integer >= 1"),
        (lambda f, x: fl.StandardNormal(0), r"features must be an integer >= 1"),
        (lambda f, x: f.sample(0), r"n must be an integer >= 1"),
        (lambda f, x: f.sample(2.0), r"n must be an integer >= 1, got 2.0 \(pass 2, without the decimal point\)"),
        (lambda f, x: fl.Affine(scale_bound=0), r"scale_bound must be a positive number"),
        (lambda f, x: fl.Compose(), r"Compose needs at least one transform"),
        (lambda f, x: fl.Compose(torch.nn.Linear(2, 2)), r"Compose takes flowlab Transforms"),
        (lambda f, x: fl.Flow(torch.nn.Linear(2, 2), fl.StandardNormal(2)), r"transform must be a flowlab Transform"),
        (lambda f, x: fl.Autoregressive(fl.MaskedConditioner(2), torch.nn.Identity()), r"transformer must be a flowlab Transformer"),
        (lambda f, x: f.transform[0].inverse(x, passes=-1), r"passes must be an integer >= 0"),
        (lambda f, x: fl.targets.circles(0), r"n must be an integer >= 1"),
        (lambda f, x: fl.targets.circles(10, factor=1.5), r"factor .* must be in \(0, 1\)"),
        (lambda f, x: fl.targets.circles(10, noise=0), r"noise must be a positive number"),
        (lambda f, x: fl.targets.eight_gaussians(10, std=-1), r"std must be a positive number"),
    ],
    ids=lambda v: v.split(" ")[0][:24] if isinstance(v, str) else "",
)
def test_other_impossible_settings(call, match, flow, device, data):
    with pytest.raises(ValueError, match=match):
        call(flow, data(device))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: fl.RQSpline(min_width="0.01"), r"min_width must be a positive number, got '0.01'"),
        (lambda: fl.RQSpline(bins=8, min_width=0.2), r"min_width \* bins must be in \(0, 1\), got 0.2 \* 8: lower min_width or bins"),
        (lambda: fl.RQSpline(min_derivative=1.5), r"min_derivative must be in \(0, 1\)"),
        (lambda: fl.MonotonicNN(min_derivative=0), r"min_derivative must be in \(0, 1\)"),
        (lambda: fl.MonotonicNN(hidden=0), r"hidden must be an integer >= 1 \(the number of sigmoid units\), got 0"),
        (lambda: fl.Integral(hidden=0), r"hidden must be an integer >= 1 \(the number of tanh units of the integrand\)"),
        (lambda: numerics.bisection(torch.tanh, torch.tensor([0, 1])), r"y must be a floating point tensor, got a tensor of dtype torch.int64: pass y.float\(\)"),
    ],
    ids=["min_width-str", "min_width-bins", "spline-min_derivative", "nn-min_derivative", "nn-hidden", "integral-hidden", "bisection-int"],
)
def test_transformer_and_numerics_settings(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("kwargs", [dict(std=0.0), dict(std=-1.0), dict(radius=-2.0)], ids=["std0", "std-1", "radius-2"])
def test_eight_gaussians_log_prob_checks_its_settings(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=rf"{name} must be a positive number"):
        fl.targets.eight_gaussians_log_prob(torch.zeros(3, 2), **kwargs)
