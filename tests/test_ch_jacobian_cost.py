"""The numerical checks of the chapter on the cost of Jacobian determinants, as tests.

No test here times anything: the chapter's timings are illustrations, too noisy on a shared
machine to assert on. What is tested is every identity the chapter relies on.
"""

from __future__ import annotations


import math

import numpy as np
import pytest
import torch

import flowlab as fl
from flowlab.testing import shaken
from flowlab import numerics
from flowlab.exercises import jacobians as ex


@pytest.mark.parametrize("d", [2, 5, 16])
def test_autoregressive_jacobian_is_lower_triangular(d):
    torch.manual_seed(0)
    layer = shaken(fl.MAF(d, hidden=(32, 32)).double())
    x = torch.randn(6, d, dtype=torch.float64)
    with torch.no_grad():
        J = numerics.jacobian(layer, x)
    assert J.shape == (6, d, d)
    assert float(J.triu(1).abs().max()) == 0.0
    assert float(J.diagonal(dim1=-2, dim2=-1).abs().min()) > 0


@pytest.mark.parametrize("make", [
    lambda d: fl.MAF(d, hidden=(32, 32)),
    lambda d: fl.MAF(d, hidden=(32, 32), layers=3),
    lambda d: fl.MAF(d, hidden=(32, 32), parts=2),
    lambda d: fl.SplineAutoregressive(d, hidden=(16,), layers=2),
])
def test_structured_ladj_equals_slogdet_of_the_autograd_jacobian(make):
    torch.manual_seed(0)
    d = 6
    transform = shaken(make(d).double(), scale=0.1)
    x = torch.randn(8, d, dtype=torch.float64)
    with torch.no_grad():
        z, ladj = transform(x)
        assert torch.allclose(ladj, numerics.jacobian_ladj(transform, x), atol=1e-9)
        # the sampling direction too: the IAF's cheap direction
        x_back, ladj_inv = transform.inverse(z)
        assert torch.allclose(ladj_inv, numerics.jacobian_ladj(transform.inverse, z), atol=1e-8)
        assert torch.allclose(ladj + ladj_inv, torch.zeros_like(ladj), atol=1e-8)


def test_brute_force_training_follows_the_structured_one():
    """Same start, same batches: the losses of the two trainings agree step by step."""
    d = 4
    g = torch.Generator().manual_seed(0)
    A = torch.tril(0.5 * torch.randn(d, d, generator=g), -1) + torch.diag(0.5 + torch.rand(d, generator=g))
    data = torch.randn(512, d, generator=g) @ A.T

    def train(brute_force):
        torch.manual_seed(0)
        flow = fl.Flow(fl.MAF(d, hidden=(16,), layers=2), fl.StandardNormal(d))
        optimizer = torch.optim.Adam(flow.parameters(), lr=5e-3)
        batches = torch.Generator().manual_seed(1)
        losses = []
        for _ in range(8):
            batch = data[torch.randint(len(data), (64,), generator=batches)]
            if brute_force:
                z, _ = flow.transform(batch)
                ladj = numerics.jacobian_ladj(lambda v: flow.transform(v)[0], batch)
                loss = -(flow.base.log_prob(z) + ladj).mean()
            else:
                loss = -flow.log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return np.array(losses)

    cheap, brute = train(False), train(True)
    assert len(set(cheap.round(6))) > 1  # the parameters did move
    assert np.abs(cheap - brute).max() < 1e-4


# ------------------------------------------------------------------ exercise checkers


def test_check_triangular_logdet(capsys):
    L = ex.lower_triangular(6)
    assert (L.diagonal() < 0).any()
    assert ex.check_triangular_logdet(lambda L: L.diagonal().abs().log().sum())
    assert ex.check_triangular_logdet(lambda L: float(sum(math.log(abs(v)) for v in L.diagonal().tolist())))
    assert "Correct" in capsys.readouterr().out
    # the forbidden shortcuts are refused, though they give the right number
    for shortcut in (lambda L: torch.linalg.slogdet(L).logabsdet, lambda L: torch.det(L).abs().log(),
                     lambda L: L.slogdet()[1]):
        assert not ex.check_triangular_logdet(shortcut)
        assert "forbids" in capsys.readouterr().out
    assert not ex.check_triangular_logdet(lambda L: L.diagonal().sum())
    assert "trace" in capsys.readouterr().out
    assert not ex.check_triangular_logdet(lambda L: L.diagonal().prod())
    assert "det L itself" in capsys.readouterr().out
    # no abs: right by accident on the matrix with two negative entries, NaN on the one with one
    assert not ex.check_triangular_logdet(lambda L: L.diagonal().prod().log())
    assert "negative" in capsys.readouterr().out
    assert not ex.check_triangular_logdet(lambda L: L.diagonal().log().sum())
    assert "negative" in capsys.readouterr().out
    # the log of the product overflows on the large matrix
    assert not ex.check_triangular_logdet(lambda L: L.diagonal().prod().abs().log())
    assert "overflows" in capsys.readouterr().out
    assert not ex.check_triangular_logdet(lambda L: None)
    assert "Not answered yet" in capsys.readouterr().out
    assert not ex.check_triangular_logdet(lambda L: torch.zeros(3))
    assert "single number" in capsys.readouterr().out


def test_check_low_rank_logdet(capsys):
    def right(U, V):
        return torch.linalg.slogdet(torch.eye(U.shape[1], dtype=U.dtype) + V.T @ U).logabsdet

    assert ex.check_low_rank_logdet(right)
    assert "Correct" in capsys.readouterr().out
    assert not ex.check_low_rank_logdet(lambda U, V: torch.linalg.slogdet(torch.eye(len(U), dtype=U.dtype) + U @ V.T)[1])
    assert "forbids" in capsys.readouterr().out
    assert not ex.check_low_rank_logdet(lambda U, V: torch.linalg.slogdet(V.T @ U).logabsdet)
    assert "identity is missing" in capsys.readouterr().out
    assert not ex.check_low_rank_logdet(lambda U, V: torch.trace(V.T @ U))
    assert "first term" in capsys.readouterr().out
    assert not ex.check_low_rank_logdet(lambda U, V: None)


def test_check_cubic_extrapolation(capsys):
    t = 0.01
    ratio = 12288 / 512
    assert ex.check_cubic_extrapolation(t, t * ratio**3)
    assert not ex.check_cubic_extrapolation(t, t * ratio)
    assert "linear" in capsys.readouterr().out
    assert not ex.check_cubic_extrapolation(t, t * ratio**2)
    assert "quadratic" in capsys.readouterr().out
    assert not ex.check_cubic_extrapolation(t, t * ratio * 3)
    assert "third power" in capsys.readouterr().out
    assert not ex.check_cubic_extrapolation(t, None)


def test_check_slope(capsys):
    d = np.array([2, 4, 8, 16, 32, 64, 128, 256, 512])
    t = 1e-4 + 1e-7 * d**2.0
    keep = d >= 64
    right = np.polyfit(np.log(d[keep]), np.log(t[keep]), 1)[0]
    assert ex.check_slope(d, t, right, d_min=64)
    assert not ex.check_slope(d, t, np.polyfit(np.log(d), np.log(t), 1)[0], d_min=64)
    assert "over all d" in capsys.readouterr().out
    assert not ex.check_slope(d, t, np.polyfit(d[keep], t[keep], 1)[0], d_min=64)
    assert "linear axes" in capsys.readouterr().out
    assert not ex.check_slope(d, t, np.polyfit(np.log(t[keep]), np.log(d[keep]), 1)[0], d_min=64)
    assert "swapped" in capsys.readouterr().out
    assert ex.check_slope(d, t, round(right, 2), d_min=64)  # as the chapter's table prints it
    assert not ex.check_slope(d, t, right + 0.02, d_min=64)
    assert not ex.check_slope(d, t, None)
    assert not ex.check_slope(d, t[:3], 1.0)
