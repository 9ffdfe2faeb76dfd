"""The transform contract, checked generically over every public transform.

Each transform gets random, non-trivial parameters (every parameter is perturbed, so the maps are
far from the identity they start at) and inputs that include points beyond the spline bound. To
cover a new transform, add one line to ``TRANSFORMS``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

import flowlab as fl
from flowlab.testing import autograd_jacobian, check_transform

D = 4
H = (16, 16)


def ar(parts, transformer):
    return lambda: fl.Autoregressive(fl.MaskedConditioner(D, parts=parts, hidden=H), transformer())


# name, factory: one line per transform (add new transforms here)
TRANSFORMS = [
    ("Reverse", lambda: fl.Reverse(D)),
    ("Permutation", lambda: fl.Permutation(D, seed=1)),
    ("AR-K1-Affine", ar(1, fl.Affine)),
    ("AR-K2-Affine", ar(2, fl.Affine)),
    ("AR-KD-Affine", ar(D, fl.Affine)),
    ("AR-K1-RQSpline", ar(1, fl.RQSpline)),
    ("AR-K2-RQSpline", ar(2, fl.RQSpline)),
    ("AR-KD-RQSpline", ar(D, fl.RQSpline)),
    ("AR-K3-RQSpline-bins5", lambda: fl.Autoregressive(fl.MaskedConditioner(D, parts=3, hidden=H), fl.RQSpline(bins=5, bound=2.5))),
    ("MAF", lambda: fl.MAF(D, hidden=H, layers=2)),
    ("MAF-coupling", lambda: fl.MAF(D, hidden=H, layers=2, parts=2)),
    ("MAF.inv", lambda: fl.MAF(D, hidden=H, layers=2).inv),
    ("SplineAutoregressive", lambda: fl.SplineAutoregressive(D)),
    ("SplineAutoregressive-opening-example", lambda: fl.SplineAutoregressive(D, hidden=(256, 256), bins=8, bound=3, layers=1)),
    ("Compose-mixture", lambda: fl.Compose(fl.MAF(D, hidden=H), fl.Permutation(D, seed=2), fl.SplineAutoregressive(D, hidden=H, layers=1, parts=2), fl.Reverse(D), ar(3, fl.Affine)().inv)),
    ("Inverse-spline", lambda: fl.Inverse(fl.SplineAutoregressive(D, hidden=H, layers=2))),
    ("Inverse-Compose", lambda: fl.Inverse(fl.Compose(ar(2, fl.RQSpline)(), fl.Reverse(D), fl.MAF(D, hidden=H)))),
    ("AR-KD-MonotonicNN", ar(D, lambda: fl.MonotonicNN(hidden=4))),
    ("AR-K2-Integral", ar(2, lambda: fl.Integral(hidden=4))),
    ("RNN-RQSpline", lambda: fl.Autoregressive(fl.RNNConditioner(D, hidden=8), fl.RQSpline())),
    ("IAF", lambda: fl.IAF(D, hidden=H, layers=2)),
    ("RealNVP", lambda: fl.RealNVP(D, hidden=H, layers=2)),
    ("NeuralSplineFlow", lambda: fl.NeuralSplineFlow(D, hidden=H, layers=2)),
    ("RNNFlow", lambda: fl.RNNFlow(D, hidden=8, transformer=fl.Affine())),
    ("Triangular", lambda: fl.Triangular(D)),
    ("LU", lambda: fl.LU(D, rotation=False)),
    ("Linear", lambda: fl.Linear(D)),
]

PERMUTATIONS = {"Reverse", "Permutation"}


def perturb_(module: torch.nn.Module, seed: int = 0, scale: float = 1.0) -> torch.nn.Module:
    """Add noise to every parameter (in place, on the CPU, reproducibly): weights get noise of
    standard deviation ``scale / sqrt(fan_in)``, biases and learned constants ``0.5 * scale``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            is_weight = name.endswith("weight") and p.dim() > 1
            std = scale / math.sqrt(p.shape[1]) if is_weight else 0.5 * scale
            p.add_(std * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
    return module


def make(factory, device, seed=0):
    """The transform with reproducible random parameters, in float64 on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = factory()
    return perturb_(t, seed).to(device=device, dtype=torch.float64)


def inputs(device, n=12, seed=1):
    """Gaussian points plus rows with coordinates beyond every spline bound used here (<= 4)."""
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, D, generator=g, dtype=torch.float64)
    tails = torch.tensor(
        [[5.0, -5.0, 0.5, -0.3], [-6.0, 0.2, 7.0, -4.5], [0.1, 3.5, -3.5, 10.0], [-9.0, -8.0, 8.5, 4.2]],
        dtype=torch.float64,
    )
    return torch.cat([x, tails]).to(device)


@pytest.mark.parametrize("name,factory", TRANSFORMS, ids=[n for n, _ in TRANSFORMS])
def test_contract(name, factory, device):
    t = make(factory, device)
    x = inputs(device)
    check_transform(t, x, atol=1e-7, rtol=1e-7, grad=False)
    # in float32 too, both directions keep the shape, dtype and device
    t32, x32 = copy.deepcopy(t).float(), x.float()
    with torch.no_grad():
        for y, ladj in (t32(x32), t32.inverse(x32)):
            assert y.shape == x.shape and ladj.shape == x.shape[:1]
            assert y.dtype == ladj.dtype == torch.float32
            assert y.device == ladj.device == x.device
            assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
    # the random parameters make the map far from the identity
    with torch.no_grad():
        z, ladj = t(x)
    assert (z - x).abs().max() > 0.5
    if name not in PERMUTATIONS:
        assert ladj.abs().max() > 0.1


@pytest.mark.parametrize(
    "name,factory",
    [(n, f) for n, f in TRANSFORMS if n not in PERMUTATIONS],
    ids=[n for n, _ in TRANSFORMS if n not in PERMUTATIONS],
)
def test_gradients_reach_every_parameter(name, factory, device):
    t = make(factory, device)
    check_transform(t, inputs(device), atol=1e-7, rtol=1e-7, grad=True)


def test_parts_one_is_elementwise(device):
    """With parts=1 the transformer's parameters are learned constants: the map is elementwise."""
    t = make(ar(1, fl.RQSpline), device)
    x = inputs(device)
    J = autograd_jacobian(t, x)
    off = J - torch.diag_embed(J.diagonal(dim1=-2, dim2=-1))
    assert torch.equal(off, torch.zeros_like(off))


@pytest.mark.parametrize("name,factory", TRANSFORMS, ids=[n for n, _ in TRANSFORMS])
def test_fresh_transforms_start_near_the_identity(name, factory, device):
    """Before training, each map is the identity up to a reordering of the coordinates
    (the stacks put a Reverse between layers): its Jacobian is close to a permutation matrix."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        t = factory().to(device=device, dtype=torch.float64)
    J = autograd_jacobian(t, inputs(device))
    P = J.round()
    assert (J - P).abs().max() < 0.1
    assert torch.equal(P.abs().sum(-1), torch.ones_like(P[..., 0])) and torch.equal(P.sum(-2), torch.ones_like(P[..., 0]))
    with torch.no_grad():
        assert t(inputs(device))[1].abs().max() < 0.1


@pytest.mark.parametrize("parts", [1, 2, 3, D])
def test_masked_conditioner_block_pattern(parts, device):
    """d c_i / d x_j is zero unless part(j) < part(i), and non-zero for every such pair."""
    outputs = 3
    c = make(lambda: fl.MaskedConditioner(D, parts=parts, hidden=(32, 32), outputs=outputs), device)
    part = c.part.to(device)
    allowed = part[None, :] < part[:, None]  # (i, j)
    x = inputs(device, n=6)
    J = autograd_jacobian(lambda v: c(v).flatten(1), x).unflatten(1, (D, outputs))  # (n, i, p, j)
    nonzero = J.abs().amax(dim=(0, 2)) > 0  # (i, j), over samples and parameters
    assert torch.equal(nonzero, allowed), f"dependency pattern\n{nonzero.int()}\nexpected\n{allowed.int()}"
    assert J.abs().amax(dim=(0, 2))[~allowed].eq(0).all()  # exactly zero, not just small


def test_narrow_hidden_layers_keep_or_refuse_the_autoregressive_pattern(device):
    """hidden=(2,) with parts=4: either a ValueError that asks for wider layers, or all dependencies."""
    try:
        factory = lambda: fl.MaskedConditioner(D, parts=D, hidden=(2,), outputs=1)  # noqa: E731
        c = make(factory, device)
    except ValueError as e:
        assert "hidden" in str(e)
        return
    allowed = torch.ones(D, D, dtype=torch.bool, device=device).tril(-1)
    J = autograd_jacobian(lambda v: c(v).flatten(1), inputs(device, n=40))
    assert torch.equal(J.abs().amax(0) > 0, allowed)


@pytest.mark.parametrize("parts", [2, 3, D])
@pytest.mark.parametrize("transformer", [fl.Affine, fl.RQSpline])
def test_inverse_takes_parts_minus_one_network_passes(parts, transformer, device):
    """Part 0's parameters are constants: inverting K parts takes K - 1 network passes (a
    coupling layer one), counted on the network itself, and one pass fewer is not exact."""
    t = make(ar(parts, transformer), device)
    assert t.passes == parts - 1
    x = inputs(device)
    calls = []
    hook = t.conditioner.net.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            z, ladj = t(x)
            assert len(calls) == 1  # the density direction: one network pass
            calls.clear()
            default, ladj_default = t.inverse(z)
            assert len(calls) == parts - 1  # the inverse: K - 1 network passes
            short, _ = t.inverse(z, passes=parts - 2)
    finally:
        hook.remove()
    assert torch.allclose(default, x, atol=1e-9, rtol=1e-9)
    assert torch.allclose(ladj_default, -ladj, atol=1e-9, rtol=1e-9)
    # one pass fewer: the last part is still wrong; the earlier parts are already exact
    last = t.conditioner.part.to(device) == parts - 1
    assert (short - x)[:, last].abs().max() > 1e-5  # a thousand times the error of an exact inverse
    assert torch.allclose(short[:, ~last], x[:, ~last], atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("parts", [1, 2, D])
def test_initial_gives_part_zero_exactly_without_the_network(parts, device):
    c = make(lambda: fl.MaskedConditioner(D, parts=parts, hidden=(8,), outputs=3), device)
    first = c.part.to(device) == 0
    x = inputs(device)
    assert torch.equal(c.initial(x)[:, first], c(x)[:, first])
    assert c.initial(x).shape == (len(x), D, 3)


def test_standard_normal_log_prob(device):
    base = fl.StandardNormal(D).to(device).double()
    z = inputs(device)
    reference = torch.distributions.Normal(z.new_zeros(()), z.new_ones(())).log_prob(z).sum(-1)
    assert torch.allclose(base.log_prob(z), reference, atol=1e-12, rtol=1e-12)
    mvn = torch.distributions.MultivariateNormal(z.new_zeros(D), torch.eye(D, dtype=z.dtype, device=device))
    assert torch.allclose(base.log_prob(z), mvn.log_prob(z), atol=1e-12, rtol=1e-12)
    s = base.sample(5)
    assert s.shape == (5, D) and s.dtype == torch.float64 and s.device == z.device


@pytest.mark.parametrize("name", ["MAF", "MAF.inv", "SplineAutoregressive", "Compose-mixture"])
def test_rsample_and_log_prob_matches_log_prob(name, device):
    factory = dict(TRANSFORMS)[name]
    flow = fl.Flow(make(factory, device), fl.StandardNormal(D).to(device).double())
    g = torch.Generator(device=device).manual_seed(0)
    x, lp = flow.rsample_and_log_prob(64, generator=g)
    assert x.shape == (64, D) and lp.shape == (64,)
    assert x.dtype == torch.float64 and x.device == flow.base._anchor.device
    assert torch.allclose(lp, flow.log_prob(x), atol=1e-8, rtol=1e-8)
    # the samples are differentiable in the parameters (what the reverse KL needs)
    lp.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())
    # same generator seed, same samples
    g.manual_seed(0)
    assert torch.equal(flow.sample(64, generator=g), x.detach())
