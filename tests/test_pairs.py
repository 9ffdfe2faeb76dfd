"""Every conditioner with every transformer: any pair is an autoregressive flow that keeps the
contract (round trips both ways, log-det against autograd, the two log-dets cancel, gradients
reach every parameter from both directions), in float64.
"""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
from flowlab.conditioners import MaskedConditioner, RNNConditioner
from flowlab.testing import check_transform
from flowlab.transformers import Affine, Integral, MonotonicNN, RQSpline

D = 3
f64 = torch.float64

CONDITIONERS = {
    "K1": lambda: MaskedConditioner(D, parts=1, hidden=(8,)),
    "K2": lambda: MaskedConditioner(D, parts=2, hidden=(8,)),
    "KD": lambda: MaskedConditioner(D, parts=D, hidden=(8,)),
    "RNN": lambda: RNNConditioner(D, hidden=6),
}
TRANSFORMERS = {
    "Affine": Affine,
    "RQSpline": lambda: RQSpline(bins=4, bound=3.0),
    "MonotonicNN": lambda: MonotonicNN(hidden=3),
    "Integral": lambda: Integral(hidden=3),
}
PAIRS = [(c, t) for c in CONDITIONERS for t in TRANSFORMERS]


def perturb_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Noise on every parameter, so the layer is far from the identity it starts at."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = 1 / math.sqrt(p.shape[1]) if p.dim() > 1 else 0.5
            p.add_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def layer(cond: str, trans: str, seed: int = 0) -> fl.Autoregressive:
    return perturb_(fl.Autoregressive(CONDITIONERS[cond](), TRANSFORMERS[trans]()), seed).double()


def inputs(n: int = 6, seed: int = 1) -> torch.Tensor:
    """Gaussian rows and rows beyond the spline bound."""
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, D, generator=g, dtype=f64)
    tails = torch.tensor([[4.0, -5.0, 0.5], [-6.0, 3.5, 7.0]], dtype=f64)
    return torch.cat([x, tails])


@pytest.mark.parametrize("cond,trans", PAIRS, ids=[f"{c}-{t}" for c, t in PAIRS])
def test_pair_keeps_the_contract(cond, trans, device):
    t = layer(cond, trans).to(device)
    x = inputs().to(device)
    check_transform(t, x, atol=1e-7, rtol=1e-7, grad=True)
    # each direction on its own sends a gradient to every trainable parameter
    trainable = [(n, p) for n, p in t.named_parameters() if p.requires_grad]
    for direction in (t.forward, t.inverse):
        y, ladj = direction(x)
        grads = torch.autograd.grad((y.pow(2) + y).sum() + ladj.sum(), [p for _, p in trainable])
        dead = [n for (n, _), g in zip(trainable, grads) if not (torch.isfinite(g).all() and g.any())]
        assert not dead, f"{direction.__name__}: no gradient reaches {dead}"
    with torch.no_grad():
        z, ladj = t(x)
    assert (z - x).abs().max() > 0.1 and ladj.abs().max() > 0.01  # far from the identity


@pytest.mark.parametrize("cond", ["K1", "K2", "KD", "RNN"])
def test_first_part_gets_learned_constants(cond):
    """The parameters of the first part (all of them for K = 1) do not depend on x."""
    c = CONDITIONERS[cond]()
    c.build(4)
    c = perturb_(c).double()
    x = inputs()
    first = c.part == 0 if cond != "RNN" else torch.arange(D) == 0
    out = c(x)
    assert torch.equal(out[:, first], out[:1, first].expand_as(out[:, first]))  # same for every x
    if (~first).any():
        assert out[:, ~first].std(0).min() > 0  # the others depend on x


@pytest.mark.parametrize("cond", ["K2", "KD", "RNN"])
@pytest.mark.parametrize("trans", list(TRANSFORMERS))
def test_inverse_takes_exactly_passes_sweeps(cond, trans, device):
    t = layer(cond, trans, seed=2).to(device)
    passes = {"K2": 1, "KD": D - 1, "RNN": D - 1}[cond]  # part 0 from the constants, no pass
    assert t.passes == passes
    x = inputs().to(device)
    with torch.no_grad():
        z, _ = t(x)
        exact, _ = t.inverse(z, passes=passes)
        short, _ = t.inverse(z, passes=passes - 1)
    assert torch.allclose(exact, x, atol=1e-10, rtol=0)
    assert (short - x).abs().max() > 1e-3


def test_rnn_conditioner_is_autoregressive():
    """d c_i / d x_j is zero for j >= i and non-zero for j < i."""
    c = perturb_(RNNConditioner(D, hidden=6, outputs=2)).double()
    J = torch.autograd.functional.jacobian(lambda v: c(v.unsqueeze(0)).squeeze(0), inputs()[0])  # (i, p, j)
    nonzero = J.abs().amax(dim=1) > 0
    assert torch.equal(nonzero, torch.ones(D, D, dtype=torch.bool).tril(-1))


@pytest.mark.parametrize(
    "name,factory",
    [
        ("IAF", lambda: fl.autoregressive.IAF(D, hidden=(8,), layers=2)),
        ("RealNVP", lambda: fl.autoregressive.RealNVP(D, hidden=(8,), layers=2)),
        ("NeuralSplineFlow", lambda: fl.autoregressive.NeuralSplineFlow(D, hidden=(8,), bins=4, layers=2)),
        ("MonotonicFlow", lambda: fl.autoregressive.MonotonicFlow(D, hidden=(8,), units=3, layers=2)),
        ("UMNNFlow", lambda: fl.autoregressive.UMNNFlow(D, hidden=(8,), units=3, nodes=32, layers=2)),
        ("RNNFlow", lambda: fl.autoregressive.RNNFlow(D, hidden=6, layers=2)),
    ],
)
def test_recipes(name, factory):
    t = perturb_(factory(), seed=3).double()
    x = inputs()
    check_transform(t, x, atol=1e-7, rtol=1e-7, grad=False)
    # fresh (unperturbed) recipes start at, or near, the identity (two layers: one reversal)
    with torch.no_grad():
        z, ladj = factory().double()(x)
    assert (z - x.flip(-1)).abs().max() < 0.2 and ladj.abs().max() < 0.2


def test_recipe_settings():
    ar = fl.autoregressive
    assert isinstance(ar.IAF(2), fl.Inverse)
    assert all(layer.passes == 1 for layer in ar.RealNVP(4, layers=3) if isinstance(layer, fl.Autoregressive))
    assert ar.NeuralSplineFlow(4, layers=1).passes == 1  # coupling: one network pass each way
    assert ar.NeuralSplineFlow(4, layers=1, parts=None).passes == 3
    assert ar.RNNFlow(3, layers=1).passes == 2
    assert len(ar.MonotonicFlow(2, layers=3)) == 5  # three layers and two reversals
    with pytest.raises(ValueError, match="Transformer"):
        ar.RNNFlow(3, transformer="spline")
    with pytest.raises(ValueError):
        ar.RealNVP(1)
