"""The claims of the chapter on universality, as tests: the targets' exact densities, CDFs and
Knothe-Rosenblatt maps, the 1-D construction of flowlab.quantile_lab, and the exercise checkers
(they accept the right answers and name the typical mistakes)."""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
from flowlab import quantile_lab as ql
from flowlab.numerics import knothe_rosenblatt

f64 = torch.float64
T = fl.targets


# --------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------


def test_mixture_1d_density_cdf_and_samples_agree():
    x = torch.linspace(-9, 9, 9001, dtype=f64)[:, None]
    p = T.mixture_1d_log_prob(x).exp()
    F = T.mixture_1d_cdf(x)
    dx = 18 / 9000
    assert abs(float(p.sum() * dx) - 1) < 1e-6
    # dF/dx = p by central differences
    assert (((F[2:] - F[:-2]) / (2 * dx)) - p[1:-1]).abs().max() < 1e-5
    s = T.mixture_1d(40000, seed=0).double()
    for t in (-2.0, 0.0, 1.5):
        want = float(T.mixture_1d_cdf(torch.tensor([[t]], dtype=f64)))
        assert abs(float((s <= t).double().mean()) - want) < 4 * math.sqrt(want * (1 - want) / 40000)


@pytest.mark.parametrize("name", ["rosenbrock", "three_bumps"])
def test_2d_targets_integrate_to_one_and_their_kr_maps_whiten_the_samples(name):
    log_prob, sampler, kr = (getattr(T, f"{name}_log_prob"), getattr(T, name), getattr(T, f"{name}_kr"))
    x = torch.cartesian_prod(torch.linspace(-7, 7, 351, dtype=f64), torch.linspace(-7, 27, 851, dtype=f64))
    assert abs(float(log_prob(x).exp().sum() * 0.04**2) - 1) < 1e-3
    n = 40000
    s = sampler(n, seed=1).double()
    assert s.shape == (n, 2)
    orders = [(0, 1)] if name == "rosenbrock" else [(0, 1), (1, 0)]
    for order in orders:
        z = kr(s) if name == "rosenbrock" else kr(s, order)
        # N(0, I): mean 0 (SE 1/sqrt(n)), covariance I (SE about sqrt(2/n) on the diagonal)
        assert z.mean(0).abs().max() < 4 / math.sqrt(n)
        assert (torch.cov(z.T) - torch.eye(2, dtype=f64)).abs().max() < 4 * math.sqrt(2 / n)


def test_rosenbrock_matches_the_reverse_kl_banana_and_its_conditional_is_bimodal():
    x = T.rosenbrock(50, seed=2).double()
    assert torch.allclose(T.rosenbrock_log_prob(x), T.banana_log_prob(x) - T.banana_log_z(), atol=1e-12)
    # p(x1 | x2 = 2) has two modes where -x1 + x1 (2 - 0.5 (x1^2 - 1)) / w^2 = 0: x1^2 = 5 - 2 w^2
    x1 = torch.linspace(-4, 4, 801, dtype=f64)
    cond = T.rosenbrock_log_prob(torch.stack([x1, torch.full_like(x1, 2.0)], 1))
    peaks = ((cond[1:-1] > cond[:-2]) & (cond[1:-1] > cond[2:])).nonzero().flatten() + 1
    assert len(peaks) == 2 and torch.allclose(x1[peaks].abs(), torch.tensor(5 - 2 * 0.35**2, dtype=f64).sqrt(), atol=0.01)


def test_numerical_kr_map_in_the_other_order_whitens_the_banana():
    s = T.rosenbrock(3000, seed=3).double()
    s = s[(s[:, 0].abs() < 5.5) & (s[:, 1] < 18)]
    z = knothe_rosenblatt(T.rosenbrock_log_prob, s, ((-6, 6), (-3, 19)), order=(1, 0), cells=128)
    n = len(z)
    assert z.mean(0).abs().max() < 4 / math.sqrt(n)
    assert (torch.cov(z.T) - torch.eye(2, dtype=f64)).abs().max() < 4 * math.sqrt(2 / n)


def test_new_data_sets_are_offered_with_their_exact_densities():
    assert T.SAMPLERS["rosenbrock banana"] is T.rosenbrock
    assert T.SAMPLERS["three bumps"] is T.three_bumps
    assert T.rosenbrock_log_prob is getattr(T, f"{T.rosenbrock.__name__}_log_prob")
    assert T.three_bumps_log_prob is getattr(T, f"{T.three_bumps.__name__}_log_prob")


@pytest.mark.parametrize("sampler", [T.rosenbrock, T.three_bumps, T.mixture_1d])
def test_seeds_are_reproducible_and_leave_the_global_generator_alone(sampler):
    a, b, c = sampler(300, seed=7), sampler(300, seed=7), sampler(300, seed=8)
    assert a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(sampler(300), sampler(300))
    state = torch.random.get_rng_state()
    sampler(10, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())


def test_targets_reject_bad_input():
    with pytest.raises(ValueError, match="sum to 1"):
        T.mixture_1d(10, weights=(0.5, 0.6))
    with pytest.raises(ValueError, match="one entry per component"):
        T.mixture_1d_log_prob(torch.zeros(3, 1), weights=(1.0,), locs=(0.0, 1.0), scales=(1.0,))
    with pytest.raises(ValueError, match=r"\(n, 1\)"):
        T.mixture_1d_cdf(torch.zeros(3))
    with pytest.raises(ValueError, match="order"):
        T.three_bumps_kr(torch.zeros(2, 2), order=(1, 1))


# --------------------------------------------------------------------------------------------
# the 1-D construction
# --------------------------------------------------------------------------------------------


def test_exact_map_is_the_closed_form_quantile_map():
    z, fz = ql.exact_map((0.3, 0.7), (-2.0, 1.0), (0.4, 0.8))
    u = T.mixture_1d_cdf(fz[:, None])
    assert (u - torch.special.ndtr(z)).abs().max() < 1e-6  # PCHIP of a table on 800 cells
    # a single Gaussian: f(z) = m + s z
    z, fz = ql.exact_map((1.0,), (0.5,), (2.0,))
    assert (fz - (0.5 + 2.0 * z)).abs().max() < 1e-4


def test_record_trains_a_1d_flow_towards_the_exact_map():
    replay, flow, distance = ql.record(steps=150, every=50, n=1000)
    assert replay.steps == [0, 50, 100, 150] and len(replay.frames) == 4 and len(distance) == 4
    assert distance[-1] < 0.5 * distance[0]
    assert replay.labels()[-1].endswith(f"= {distance[-1]:.3f}")
    page = replay.html()
    assert page.count("data:image/png;base64,") == 4 and "<script>" in page  # each frame once
    assert flow.features == 1


def test_explorer_follows_its_sliders_and_trains_a_flow():
    e = ql.Explorer(steps=40)
    e.weight.value = 0.5
    e.locs[1].value = 2.0
    assert e.settings() == {"weights": (0.5, 0.5), "locs": (-2.0, 2.0), "scales": (0.4, 0.8)}
    assert e.flow is None and "new mixture" in e.status.value
    e.button.click()
    assert e.flow is not None and e.status.value.startswith("trained 40 steps")
    e.scales[0].value = 1.0  # a new mixture drops the old flow
    assert e.flow is None


# --------------------------------------------------------------------------------------------
# the ordering claim: one affine layer is exact for the banana with x1 first, not with x2 first
# --------------------------------------------------------------------------------------------


def test_one_affine_layer_needs_the_right_ordering_for_the_banana():
    x_train, x_test = T.rosenbrock(4000, seed=0), T.rosenbrock(2000, seed=1)
    true = T.rosenbrock_log_prob(x_test.double())
    gaps = {}
    for order in [(0, 1), (1, 0)]:
        torch.manual_seed(0)
        layer = fl.MAF(2, hidden=(32, 32), layers=1)
        flow = fl.Flow(layer if order == (0, 1) else fl.Compose(fl.Reverse(2), layer, fl.Reverse(2)),
                       fl.StandardNormal(2))
        fl.fit(flow, x_train, steps=400, lr=5e-3, batch_size=256, progress=False)
        with torch.no_grad():
            g = true - flow.log_prob(x_test).double()
        gaps[order] = (float(g.mean()), float(g.std() / len(g) ** 0.5))
    (good, good_se), (bad, bad_se) = gaps[(0, 1)], gaps[(1, 0)]
    assert good < 0.1 + 3 * good_se  # near the true density
    assert bad - 4 * bad_se > good + 4 * good_se + 0.2  # clearly worse, far outside the error bars


def test_explorer_draws_into_its_picture_and_trains():
    explorer = ql.Explorer(steps=20)
    first = explorer.picture.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    explorer.locs[0].value = -1.0  # a slider change redraws and forgets the trained flow
    assert explorer.picture.value != first and explorer.flow is None and "new mixture" in explorer.status.value
    before = explorer.picture.value
    explorer.train()
    assert explorer.flow is not None and explorer.status.value.startswith("trained 20 steps")
    assert explorer.picture.value != before  # the flow's map is drawn over the exact one
