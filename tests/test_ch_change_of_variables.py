"""The numerical claims of the chapter on the change of variables formula, as tests, and the
exercise checkers of that chapter (they accept the right answers and name the typical mistakes).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

import flowlab as fl

f64 = torch.float64
NORMAL = torch.distributions.Normal(torch.tensor(0.0, dtype=f64), torch.tensor(1.0, dtype=f64))


# ------------------------------------------------------------------------------------------
# the 1-D maps of the chapter, in flowlab's convention (data -> latent with the log-derivative)
# ------------------------------------------------------------------------------------------


def _spline_map():
    spline = fl.RQSpline(bins=6, bound=3.0).double()
    heights = torch.tensor([0.5, 2.0, 0.5, 0.5, 2.0, 0.5], dtype=f64)
    slopes = torch.tensor([1.0, 1.0, 0.5, 1.0, 1.0], dtype=f64)
    c = torch.cat([
        torch.zeros(6, dtype=f64),
        heights.log(),
        torch.log(torch.expm1(slopes - spline.min_derivative)) - spline._shift,
    ]).view(1, 1, -1)

    def to_latent(x):
        z, ld = spline(x[:, None], c.expand(len(x), 1, -1))
        return z[:, 0], ld[:, 0]

    def to_data(z):
        return spline.inverse(z[:, None], c.expand(len(z), 1, -1))[0][:, 0]

    return to_latent, to_data


MAPS_1D = {
    "affine": ((lambda x: (2 * (x - 1), torch.full_like(x, math.log(2)))), (lambda z: 0.5 * z + 1), (-1.0, 3.0)),
    "sinh": ((lambda x: (torch.asinh(x), -0.5 * torch.log1p(x**2))), torch.sinh, (-5.0, 5.0)),
    "spline": (*_spline_map(), (-4.0, 4.0)),
}


def _log_density(to_latent, x, with_ladj=True):
    z, ladj = to_latent(x)
    return NORMAL.log_prob(z) + (ladj if with_ladj else 0)


def _residuals(samples, log_density, lo, hi, bins=60, sub=50):
    edges = torch.linspace(lo, hi, bins + 1, dtype=f64)
    counts = torch.histogram(samples, bins=edges).hist
    width = (edges[1:] - edges[:-1]) / sub
    mids = edges[:-1, None] + width[:, None] * (torch.arange(sub, dtype=f64) + 0.5)
    p = (log_density(mids.flatten()).exp().view(-1, sub) * width[:, None]).sum(1)
    return (counts - len(samples) * p) / (len(samples) * p * (1 - p)).clamp(min=1e-12).sqrt()


@pytest.mark.parametrize("name", list(MAPS_1D))
def test_histogram_of_f_of_z_matches_the_density(name):
    to_latent, to_data, (lo, hi) = MAPS_1D[name]
    z = torch.randn(100_000, generator=torch.Generator().manual_seed(0), dtype=f64)
    x = to_data(z)
    r = _residuals(x, lambda v: _log_density(to_latent, v), lo, hi)
    assert 0.6 < float((r**2).mean()) < 1.5
    assert float(r.abs().max()) < 5
    r_bad = _residuals(x, lambda v: _log_density(to_latent, v, with_ladj=False), lo, hi)
    assert float((r_bad**2).mean()) > 50  # without the log-derivative the histogram disagrees


@pytest.mark.parametrize("name", list(MAPS_1D))
def test_1d_density_integrates_to_one(name):
    to_latent, _, _ = MAPS_1D[name]
    xx = torch.linspace(-60, 60, 200_001, dtype=f64)
    assert abs(float(torch.trapezoid(_log_density(to_latent, xx).exp(), xx)) - 1) < 1e-4
    without = float(torch.trapezoid(_log_density(to_latent, xx, with_ladj=False).exp(), xx))
    assert abs(without - 1) > 0.05


# ------------------------------------------------------------------------------------------
# 2-D: a shaken spline autoregressive layer and a shaken MAF
# ------------------------------------------------------------------------------------------


def _shaken(transform, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in transform.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return transform.double().requires_grad_(False)


@pytest.fixture(scope="module")
def layer():
    torch.manual_seed(0)
    return _shaken(fl.Autoregressive(fl.MaskedConditioner(2, hidden=(32, 32)), fl.RQSpline(bins=8, bound=3.0)), 0.15)


def _autograd_ladj(fn, x):
    values = []
    for xi in x:
        J = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0][0], xi)
        values.append(torch.linalg.slogdet(J).logabsdet)
    return torch.stack(values)


def test_ladj_matches_the_autograd_jacobian(layer):
    torch.manual_seed(1)
    maf = _shaken(fl.MAF(2, hidden=(32, 32), layers=3), 0.1)
    x = 1.5 * torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=f64)
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=f64)
    for t in (layer, maf):
        torch.testing.assert_close(t(x)[1], _autograd_ladj(t, x), atol=1e-10, rtol=0)
        torch.testing.assert_close(t.inverse(z)[1], _autograd_ladj(t.inverse, z), atol=1e-10, rtol=0)
        zx, ladj = t(x)
        torch.testing.assert_close(ladj + t.inverse(zx)[1], torch.zeros(6, dtype=f64), atol=1e-10, rtol=0)
    # the autoregressive layer's Jacobian is triangular: z1 does not depend on x2
    J = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    assert J[0, 1] == 0


def test_determinant_is_the_area_ratio(layer):
    h = 1e-4
    square = torch.tensor([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=f64) * h / 2
    for x0 in torch.tensor([[0.0, 0.0], [-1.0, 1.5], [1.2, -0.7]], dtype=f64):
        image, _ = layer(x0 + square)
        xs, ys = image[:, 0], image[:, 1]
        area = 0.5 * abs(float((xs * ys.roll(-1) - xs.roll(-1) * ys).sum()))
        assert area / h**2 == pytest.approx(float(layer(x0[None])[1].exp()), rel=1e-3)


def test_2d_histogram_matches_the_density(layer):
    flow = fl.Flow(layer, fl.StandardNormal(2).double())
    n, cells, sub = 100_000, 30, 4
    with torch.no_grad():
        x = flow.sample(n, generator=torch.Generator().manual_seed(1))
    edges = torch.linspace(-3, 3, cells + 1, dtype=f64)
    counts = torch.histogramdd(x, bins=[edges, edges]).hist
    fine = (edges[1] - edges[0]) / sub
    mids = torch.linspace(-3 + fine / 2, 3 - fine / 2, cells * sub, dtype=f64)
    m1, m2 = torch.meshgrid(mids, mids, indexing="ij")
    with torch.no_grad():
        p = flow.log_prob(torch.stack([m1.flatten(), m2.flatten()], 1)).exp() * fine**2
    expected = n * p.view(cells, sub, cells, sub).sum((1, 3))
    enough = expected >= 20
    r = (counts - expected)[enough] / expected[enough].sqrt()
    assert enough.sum() > 300
    assert 0.7 < float((r**2).mean()) < 1.3


def test_2d_density_integrates_to_one_and_not_without_ladj(layer):
    base = fl.StandardNormal(2).double()
    L, m = 8.0, 300
    step = 2 * L / m
    c = torch.linspace(-L + step / 2, L - step / 2, m, dtype=f64)
    g1, g2 = torch.meshgrid(c, c, indexing="ij")
    with torch.no_grad():
        z, ladj = layer(torch.stack([g1.flatten(), g2.flatten()], 1))
        with_ladj = float((base.log_prob(z) + ladj).exp().sum() * step**2)
        without = float(base.log_prob(z).exp().sum() * step**2)
    assert with_ladj == pytest.approx(1.0, abs=2e-3)
    assert abs(without - 1) > 5e-3
    from flowlab.testing import density_integral

    assert density_integral(fl.Flow(layer, base), lim=L, n=m) == pytest.approx(with_ladj, abs=1e-9)


def test_contraction_trades_the_two_terms():
    x = fl.targets.moons(1000, seed=0)
    base = fl.StandardNormal(2)
    scores = {s: float(base.log_prob(s * x).mean()) + 2 * math.log(s) for s in (3.0, 1.5, 1.0, 0.5, 0.1, 0.01)}
    base_terms = [float(base.log_prob(s * x).mean()) for s in scores]
    assert base_terms == sorted(base_terms)  # the base term alone rewards squeezing
    assert max(scores, key=scores.get) == 1.0  # the log-likelihood does not


def test_a_trained_flow_keeps_the_formula():
    torch.manual_seed(0)
    flow = fl.Flow(fl.SplineAutoregressive(2, hidden=(16, 16), layers=2), fl.StandardNormal(2))
    fl.fit(flow, fl.targets.moons(500, seed=0), steps=60, batch_size=256, progress=False)
    trained = copy.deepcopy(flow).double().requires_grad_(False)
    x = fl.targets.moons(5, seed=1).double()
    torch.testing.assert_close(trained.transform(x)[1], _autograd_ladj(trained.transform, x), atol=1e-9, rtol=0)
    from flowlab.testing import density_integral

    assert density_integral(trained, lim=6, n=300) == pytest.approx(1.0, abs=5e-3)
