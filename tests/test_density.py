"""A trained flow's density is a density: it integrates to one, and its samples follow it."""

from __future__ import annotations

import pytest
import torch

import flowlab as fl
from flowlab.testing import cell_probabilities, density_integral, sample_frequencies

LIM = 6.0  # the box [-6, 6]^2: the flow's tails are standard normal there, the mass outside ~1e-8


@pytest.fixture(scope="module")
def trained(device):
    """The book's default 2-D spline flow, trained briefly on the circles, in float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        flow = fl.Flow(fl.SplineAutoregressive(2, hidden=(32, 32)), fl.StandardNormal(2))
    x = fl.targets.circles(512, seed=0)
    history = fl.fit(flow, x, steps=200, lr=1e-2, device=device, progress=False)
    assert history.loss[-1] < history.loss[0] - 0.5, "the flow did not learn: the density tests would be trivial"
    return flow.double()


def test_trained_flow_integrates_to_one(trained):
    assert abs(density_integral(trained, LIM, 400) - 1) < 1e-2


def test_trained_flow_samples_follow_its_density(trained, device):
    cells = 12
    p = cell_probabilities(trained, LIM, cells, 20)
    assert abs(float(p.sum()) - 1) < 1e-2
    g = torch.Generator(device=device).manual_seed(0)
    samples = trained.sample(100_000, generator=g)
    freq = sample_frequencies(samples, LIM, cells)
    # one standard error of a frequency is at most sqrt(0.25 / 1e5) = 0.0016
    assert (freq - p).abs().max() < 0.01
    assert p.max() > 0.03  # not flat: the comparison has something to compare


def test_integral_of_known_densities(device):
    """density_integral itself, on closed forms: a normal and a correlated Gaussian."""
    normal = fl.StandardNormal(2).to(device).double()
    assert abs(density_integral(normal, 6.0, 200) - 1) < 1e-8  # the mass outside is 3.9e-9
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64, device=device)
    mvn = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64, device=device), cov)
    assert abs(density_integral(mvn.log_prob, 7.0, 300, device=device) - 1) < 1e-6
    # half the box holds half the mass
    assert abs(density_integral(normal, [(0.0, 6.0), (-6.0, 6.0)], 200) - 0.5) < 1e-8


def test_pushforward_density_matches_histogram(device):
    """Density of x = f(z), z ~ N(0, I), by the change of variables, against samples of f(z)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        t = fl.Autoregressive(fl.MaskedConditioner(2, parts=2, hidden=(16,)), fl.RQSpline(bins=6, bound=3.0))
    fl.testing.shaken(t, 0.3, seed=1)  # non-trivial, yet smooth enough for the grid
    flow = fl.Flow(t, fl.StandardNormal(2)).to(device).double()
    z = torch.randn(100_000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(device)
    with torch.no_grad():
        x, _ = t.inverse(z)
    p = cell_probabilities(flow, LIM, 12, 20)
    assert abs(float(p.sum()) - 1) < 1e-3
    assert (sample_frequencies(x, LIM, 12) - p).abs().max() < 0.01
