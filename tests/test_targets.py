"""The 2-D targets: exact densities are normalized and match their samplers; seeds reproduce."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

import flowlab as fl
from flowlab.testing import cell_probabilities, density_integral, sample_frequencies

T = fl.targets


@pytest.mark.parametrize("noise,factor", [(0.05, 0.5), (0.1, 0.3)])
def test_circles_log_prob_integrates_to_one(noise, factor, device):
    log_prob = lambda x: T.circles_log_prob(x, noise=noise, factor=factor)  # noqa: E731
    assert abs(density_integral(log_prob, 4.0, 800, device=device) - 1) < 1e-6


def test_eight_gaussians_log_prob_integrates_to_one(device):
    assert abs(density_integral(T.eight_gaussians_log_prob, 4.0, 800, device=device) - 1) < 1e-6
    wide = lambda x: T.eight_gaussians_log_prob(x, radius=1.0, std=0.5)  # noqa: E731
    assert abs(density_integral(wide, 5.0, 400, device=device) - 1) < 1e-6


@pytest.mark.parametrize(
    "sampler,log_prob,lim",
    [(T.circles, T.circles_log_prob, 2.5), (T.eight_gaussians, T.eight_gaussians_log_prob, 3.0)],
    ids=["circles", "eight_gaussians"],
)
def test_samples_follow_the_exact_density(sampler, log_prob, lim, device):
    """Cell probabilities from the density against the frequencies of 200k samples."""
    cells, n = 10, 200_000
    x = sampler(n, seed=0).to(device=device, dtype=torch.float64)
    p = cell_probabilities(log_prob, lim, cells, 40, device=device)
    freq = sample_frequencies(x, lim, cells)
    # one standard error of a frequency is at most sqrt(0.25 / 2e5) = 0.0011
    assert (freq - p).abs().max() < 0.005
    # the mass outside the box agrees too
    assert abs((1 - float(p.sum())) - (1 - float(freq.sum()))) < 0.005
    # the mean log-density of the samples is the negative entropy: two estimates agree
    h = 2 * lim / (cells * 40)
    axis = torch.linspace(-lim + h / 2, lim - h / 2, cells * 40, dtype=torch.float64, device=device)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
    lp = log_prob(grid)
    entropy_grid = -float((lp.exp() * lp).sum()) * h * h
    entropy_mc = -float(log_prob(x).mean())
    assert abs(entropy_grid - entropy_mc) < 0.02


def test_circles_are_standardized():
    x = T.circles(200_000, seed=3).double()
    assert x.dtype == torch.float64 and x.shape == (200_000, 2)
    # standard errors: 1/sqrt(n) = 0.0022 for the mean, about 0.002 for the variance
    assert x.mean(0).abs().max() < 0.01
    assert (x.var(0) - 1).abs().max() < 0.01


@pytest.mark.parametrize("sampler", [T.circles, T.moons, T.eight_gaussians], ids=["circles", "moons", "eight_gaussians"])
def test_seeds(sampler):
    a, b, c = sampler(500, seed=7), sampler(500, seed=7), sampler(500, seed=8)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(sampler(500), sampler(500))  # seed=None: fresh randomness
    # a seed does not touch torch's global generator
    state = torch.random.get_rng_state()
    sampler(10, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())


def test_samplers_by_name():
    for name, sampler in T.SAMPLERS.items():
        assert sampler(10, seed=0).shape == (10, 2), name


def test_log_z_is_computed_on_first_use_not_at_import():
    # a fresh interpreter: importing flowlab runs no quadrature and imports none of the heavy
    # libraries the targets, numerics, residual and continuous modules could need
    code = (
        "import sys, flowlab as fl\n"
        "print(fl.targets.log_z.cache_info().currsize)\n"
        "print(sorted(m for m in ('scipy', 'torchdiffeq', 'ipywidgets') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "0" and out[1] == "[]"


def test_log_z_mapping_and_function_agree():
    from flowlab.targets.energies import energy_log_z

    assert set(T.LOG_Z) == set(T.DENSITIES) and len(T.LOG_Z) == len(T.DENSITIES)
    assert T.LOG_Z["U2"] == T.log_z("U2") == energy_log_z("U2")
    assert T.LOG_Z.get("banana") == T.banana_log_z() and T.LOG_Z.get("nope") is None
    assert "funnel" in T.LOG_Z and T.LOG_Z["funnel"] == pytest.approx(math.log(6 * math.pi))
    with pytest.raises(KeyError):
        T.LOG_Z["nope"]
    # each value is the log of the integral of exp(log_prob)
    for name in ("ring", "two modes", "U1"):
        mass = density_integral(lambda x: T.DENSITIES[name](x) - T.LOG_Z[name], lim=8.0, n=400)
        assert mass == pytest.approx(1.0, abs=2e-4), name
