"""flowlab.energy: the energy distance between samples, unbiased, against its closed form."""

import math

import pytest
import torch

from flowlab.energy import energy_distance, to_normal


def _closed_form_1d(mu: float) -> float:
    # P = N(0, 1), Q = N(mu, 1): X - Y ~ N(-mu, 2), and E|N(m, s^2)| = s sqrt(2/pi) exp(-m^2 / 2s^2)
    # + m (1 - 2 Phi(-m / s)); E|X - X'| = E|Y - Y'| = 2 / sqrt(pi).
    s = math.sqrt(2.0)
    phi = 0.5 * (1 + math.erf(-mu / s / math.sqrt(2)))
    cross = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * phi)
    return 2 * cross - 2 * (2 / math.sqrt(math.pi))


@pytest.mark.parametrize("mu", [0.0, 0.5, 2.0])
def test_unbiased_for_the_closed_form(mu):
    g = torch.Generator().manual_seed(int(10 * mu))
    values = torch.tensor(
        [energy_distance(torch.randn(50, 1, generator=g), mu + torch.randn(60, 1, generator=g)) for _ in range(400)]
    )
    se = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean()) - _closed_form_1d(mu)) < 4 * se


def test_symmetric_and_invariant_to_a_common_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=g, dtype=torch.float64)
    y = 2 * torch.randn(200, 3, generator=g, dtype=torch.float64)
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x))
    assert energy_distance(x + 5, y + 5) == pytest.approx(energy_distance(x, y), abs=1e-8)
    assert energy_distance(x, y) > 0.1


def test_to_normal_reads_a_gaussian_as_one_and_a_wider_one_as_not():
    g = torch.Generator().manual_seed(3)
    d, sd = to_normal(torch.randn(1000, 2, generator=g), seed=1)
    assert sd > 0 and abs(d) < 4 * sd
    d_wide, _ = to_normal(1.5 * torch.randn(1000, 2, generator=g), seed=1)
    assert d_wide > 10 * sd


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: energy_distance(torch.zeros(5), torch.zeros(5, 1)), "x"),
        (lambda: energy_distance(torch.zeros(5, 2), torch.zeros(1, 2)), "y"),
        (lambda: energy_distance(torch.zeros(5, 2), torch.zeros(5, 3)), "x and y"),
        (lambda: energy_distance(torch.full((3, 2), float("nan")), torch.zeros(3, 2)), "x"),
        (lambda: to_normal(torch.zeros(5, 2), repeats=1), "repeats"),
        (lambda: energy_distance("points", torch.zeros(3, 2)), "x"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
