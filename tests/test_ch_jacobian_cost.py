"""The numerical checks of the chapter on the cost of Jacobian determinants, as tests.

No test here times anything: the chapter's timings are illustrations, too noisy on a shared
machine to assert on. What is tested is every identity the chapter relies on.
"""

from __future__ import annotations



import numpy as np
import pytest
import torch

import flowlab as fl
from flowlab import numerics


def perturbed(transform, scale=0.3, seed=0):
    """A transform moved away from the identity, so that its Jacobian has visible structure."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in transform.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return transform


@pytest.mark.parametrize("d", [2, 5, 16])
def test_autoregressive_jacobian_is_lower_triangular(d):
    torch.manual_seed(0)
    layer = perturbed(fl.MAF(d, hidden=(32, 32)).double())
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
    transform = perturbed(make(d).double(), scale=0.1)
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
