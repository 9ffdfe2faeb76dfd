"""The numerical claims of the chapter on composing flows, as tests, and the exercise checkers
of that chapter (they accept the right answers and name the typical mistakes).
"""

from __future__ import annotations

import copy

import pytest
import torch

import flowlab as fl

f64 = torch.float64


def _shaken(transform, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in transform.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return transform


@pytest.fixture(scope="module")
def layers():
    torch.manual_seed(0)
    ls = [
        _shaken(fl.MAF(2, hidden=(16, 16)), 0.3, seed=1),
        fl.Reverse(2),
        _shaken(fl.Autoregressive(fl.MaskedConditioner(2, hidden=(16, 16)), fl.RQSpline(bins=8, bound=3.0)), 0.1, seed=2),
    ]
    return [t.double().requires_grad_(False) for t in ls]


def _jacobian(transform, point):
    return torch.autograd.functional.jacobian(lambda v: transform(v[None])[0][0], point)


def _autograd_ladj(transform, points):
    return torch.stack([torch.linalg.slogdet(_jacobian(transform, p)).logabsdet for p in points])


def _ladj_by_layers(layer_list, points):
    total = points.new_zeros(len(points))
    for t in layer_list:
        points, l = t(points)
        total = total + l
    return total


def test_the_inverse_undoes_the_last_layer_first(layers):
    composed = fl.Compose(*layers)
    x = 1.5 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(0), dtype=f64)
    z, _ = composed(x)
    torch.testing.assert_close(composed.inverse(z)[0], x, atol=1e-10, rtol=0)
    by_hand, wrong = z, z
    for t in reversed(layers):
        by_hand, _ = t.inverse(by_hand)
    for t in layers:
        wrong, _ = t.inverse(wrong)
    torch.testing.assert_close(by_hand, x, atol=1e-10, rtol=0)
    assert float((wrong - x).abs().max()) > 1.0


def test_the_chain_rule_for_jacobians(layers):
    composed = fl.Compose(*layers)
    x0 = torch.tensor([0.5, -0.3], dtype=f64)
    x1 = layers[0](x0[None])[0][0]
    x2 = layers[1](x1[None])[0][0]
    J1, J2, J3 = _jacobian(layers[0], x0), _jacobian(layers[1], x1), _jacobian(layers[2], x2)
    J = _jacobian(composed, x0)
    torch.testing.assert_close(J, J3 @ J2 @ J1, atol=1e-12, rtol=0)
    logdet = float(torch.linalg.slogdet(J).logabsdet)
    assert logdet == pytest.approx(sum(float(torch.linalg.slogdet(M).logabsdet) for M in (J1, J2, J3)), abs=1e-12)
    wrong = sum(float(torch.linalg.slogdet(M).logabsdet) for M in (J1, J2, _jacobian(layers[2], x0)))
    assert abs(wrong - logdet) > 1e-2


def test_composed_ladj_is_the_sum_and_the_autograd_logdet(layers):
    composed = fl.Compose(*layers)
    x = 1.5 * torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=f64)
    ladj = composed(x)[1]
    torch.testing.assert_close(ladj, _ladj_by_layers(layers, x), atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, _autograd_ladj(composed, x), atol=1e-10, rtol=0)
    # the per-layer log-dets must be taken at each layer's own input, not at x
    at_x = sum(t(x)[1] for t in layers)
    assert float((at_x - ladj).abs().max()) > 1e-2


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    flow = fl.Flow(fl.SplineAutoregressive(2, hidden=(16, 16), layers=4), fl.StandardNormal(2))
    fl.fit(flow, fl.targets.moons(500, seed=0), steps=80, batch_size=256, progress=False)
    return flow


def test_a_trained_composition_keeps_the_rules(trained):
    t = copy.deepcopy(trained.transform).double().requires_grad_(False)
    assert len(t) == 7  # four spline layers with a Reverse between consecutive ones
    x = fl.targets.moons(8, seed=1).double()
    torch.testing.assert_close(t(x)[1], _ladj_by_layers(t.transforms, x), atol=1e-12, rtol=0)
    torch.testing.assert_close(t(x)[1], _autograd_ladj(t, x), atol=1e-9, rtol=0)


def test_trajectories_in_both_directions(trained):
    x = fl.targets.moons(200, seed=3)
    with torch.no_grad():
        path = trained.transform.trajectory(x)
        z, _ = trained.transform(x)
        assert len(path) == len(trained.transform) + 1
        torch.testing.assert_close(path[0], x)
        torch.testing.assert_close(path[-1], z)
        # the sampling direction: undo the last transform first, and come back to x
        back = [z]
        for t in reversed(trained.transform.transforms):
            back.append(t.inverse(back[-1])[0])
        torch.testing.assert_close(back[-1], x, atol=1e-4, rtol=0)
        for a, b in zip(back, reversed(path)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def _maf_stack(n_layers):
    blocks = []
    for i in range(n_layers):
        if i > 0:
            blocks.append(fl.Reverse(2))
        blocks.append(fl.Autoregressive(fl.MaskedConditioner(2, hidden=(32, 32)), fl.Affine(scale_bound=1.0)))
    return fl.Compose(*blocks)


def test_more_layers_fit_the_moons_better():
    x_train, x_test = fl.targets.moons(1000, seed=0), fl.targets.moons(2000, seed=1)
    nll = {}
    for n_layers in (1, 4):
        torch.manual_seed(0)
        flow = fl.Flow(_maf_stack(n_layers), fl.StandardNormal(2))
        fl.fit(flow, x_train, steps=250, lr=5e-3, batch_size=256, progress=False)
        with torch.no_grad():
            nll[n_layers] = float(-flow.log_prob(x_test).mean())
    assert nll[4] < nll[1] - 0.2
