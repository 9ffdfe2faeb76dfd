"""flowlab.pixels: the histogram layer is a bijection of [0, L)^D with the right log-determinant,
its flow is exactly the independent-pixel model and integrates to one, and bad input is refused."""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
from flowlab.pixels import HistogramCDF, bits_per_dim, dequantize
from flowlab.testing import check_transform, density_integral

f64 = torch.float64


def _layer(levels=4, features=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, (50, features), generator=g)
    return HistogramCDF.fit(x, levels), g


def test_contract_inside_the_cells():
    layer, g = _layer()
    # points away from the knots, where the piecewise-linear CDF is differentiable
    y = torch.randint(0, 4, (16, 3), generator=g).to(f64) + 0.05 + 0.9 * torch.rand(16, 3, generator=g, dtype=f64)
    z = torch.randn(16, 3, generator=g, dtype=f64)
    check_transform(layer, y, z=z, grad=False)  # no parameters to train


def test_the_flow_is_the_independent_pixel_model():
    layer, g = _layer()
    x = torch.randint(0, 4, (200, 3), generator=g)
    y = dequantize(x.to(f64), generator=g)
    flow = fl.Flow(layer, fl.StandardNormal(3).double())
    independent = layer.probs.log().gather(0, x).sum(1)
    assert torch.allclose(flow.log_prob(y), independent, atol=1e-10)


def test_density_integrates_to_one_on_its_box_and_keeps_one_sign():
    layer, _ = _layer(levels=3, features=2)
    flow = fl.Flow(layer, fl.StandardNormal(2).double())
    assert abs(density_integral(flow, lim=(0.0, 3.0), n=300) - 1) < 1e-9
    # increasing in every coordinate: dz_j / dy_j = p / phi(z) > 0 inside every cell
    y = torch.cartesian_prod(torch.linspace(0.01, 2.99, 30, dtype=f64), torch.linspace(0.01, 2.99, 30, dtype=f64))
    z, ladj = layer(y)
    assert torch.isfinite(ladj).all()
    assert (z[1:, 1] - z[:-1, 1])[(y[1:, 0] == y[:-1, 0])].min() > 0


def test_fit_counts_with_pseudo_counts():
    x = torch.tensor([[0], [0], [1]])
    layer = HistogramCDF.fit(x, levels=3, pseudo=1.0)
    assert torch.allclose(layer.probs[:, 0], torch.tensor([3.0, 2.0, 1.0], dtype=f64) / 6)


def test_bits_per_dim_and_dequantize():
    assert math.isclose(bits_per_dim(64 * math.log(17), 64), math.log2(17))
    y = dequantize(torch.full((1000, 2), 3.0), generator=torch.Generator().manual_seed(1))
    assert bool(((y >= 3) & (y < 4)).all()) and abs(float(y.mean()) - 3.5) < 0.03


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: HistogramCDF(torch.tensor([[0.5], [0.6]])), "sum to 1"),
        (lambda: HistogramCDF(torch.tensor([[1.0], [0.0]])), "positive"),
        (lambda: HistogramCDF(torch.ones(3)), "levels, D"),
        (lambda: HistogramCDF.fit(torch.tensor([[0.5]]), levels=2), "integer levels"),
        (lambda: HistogramCDF.fit(torch.tensor([[3]]), levels=2), "lie in 0..1"),
        (lambda: HistogramCDF.fit(torch.tensor([[1]]), levels=0), "levels"),
        (lambda: _layer(levels=2, features=1)[0](torch.tensor([[2.5]], dtype=f64)), r"\[0, 2\)"),
        (lambda: dequantize(torch.zeros(2, dtype=torch.long)), "floating point"),
    ],
)
def test_bad_input_says_what_to_pass(call, words):
    with pytest.raises(ValueError, match=words):
        call()
