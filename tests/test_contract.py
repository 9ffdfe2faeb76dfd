"""The transform contract, checked over one list that holds every public transform.

``CASES`` names, for each case, the public name it covers: a class of ``flowlab.__all__`` that
derives from ``fl.Transform``, or a function there that returns one (a recipe).
:func:`test_every_public_transform_is_in_the_list` fails when a new one is missing. Each case is
built with its parameters shaken (:func:`flowlab.testing.shaken`), so the map is far from the
identity it starts at, and checked with :func:`flowlab.testing.check_transform` in float64 on
inputs that include points beyond the spline bounds: round trips, log-determinants against the
autograd Jacobian, gradients to every parameter.

To cover a new transform, add a ``Case`` to ``CASES``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import flowlab as fl
from flowlab.nn import degrees
from flowlab.testing import autograd_jacobian, autograd_ladj, check_transform

D = 4
H = (16, 16)
f64 = torch.float64


@dataclass(frozen=True)
class Case:
    """One transform of the contract list.

    ``public``: the public name it covers. ``make``: builds it (fresh, before shaking).
    ``tol``: tolerance of the round trips and log-determinants (RK4 is not exactly invertible).
    ``scale``: how far :func:`~flowlab.testing.shaken` moves the parameters (``fan_in`` noise).
    ``both_ways``: False for the transforms with only an explicit ``inverse`` (Sylvester).
    ``identity_start``: a fresh one is the identity up to an order of the coordinates.
    ``moves``: the shaken map moves points by more than 0.5 somewhere.
    ``rows``: Gaussian rows besides the four rows in the tails (fewer for the bisection inverses,
    whose autograd Jacobian is the slowest part of the suite).
    """

    public: str
    make: Callable[[], fl.Transform]
    tol: float = 1e-7
    scale: float = 1.0
    both_ways: bool = True
    identity_start: bool = True
    moves: bool = True
    rows: int = 12


def ar(parts, transformer):
    if parts == "RNN":
        return lambda: fl.Autoregressive(fl.RNNConditioner(D, units=8), transformer())
    if parts in TRANSFORMER_PARTS:  # a causal transformer over K = D (or 2) tokens
        return lambda: fl.Autoregressive(
            fl.TransformerConditioner(D, parts=TRANSFORMER_PARTS[parts], hidden=8, heads=2), transformer())
    return lambda: fl.Autoregressive(fl.MaskedConditioner(D, parts=parts, hidden=H), transformer())


TRANSFORMERS = {
    "Affine": fl.Affine,
    "RQSpline": lambda: fl.RQSpline(bins=5, bound=2.5),
    "MonotonicNN": lambda: fl.MonotonicNN(units=3),
    "Integral": lambda: fl.Integral(units=3, nodes=32),
}
TRANSFORMER_PARTS = {"transformer": D, "transformer2": 2}
CONDITIONERS = (1, 2, 3, D, "RNN", *TRANSFORMER_PARTS)


def parts_count(kind) -> int:
    """K, the number of parts of a conditioner kind of ``CONDITIONERS``."""
    return D if kind == "RNN" else TRANSFORMER_PARTS.get(kind, kind)

CASES: dict[str, Case] = {
    # the linear layers
    "Reverse": Case("Reverse", lambda: fl.Reverse(D), moves=True),
    "Permutation": Case("Permutation", lambda: fl.Permutation(D, seed=1)),
    "Triangular": Case("Triangular", lambda: fl.Triangular(D)),
    "LU": Case("LU", lambda: fl.LU(D, seed=1), identity_start=False),
    "LU-identity": Case("LU", lambda: fl.LU(D, rotation=False)),
    "LU-from-matrix": Case("LU", lambda: fl.LU.from_matrix(torch.randn(D, D, generator=torch.Generator().manual_seed(2))),
                           identity_start=False),
    "Linear": Case("Linear", lambda: fl.Linear(D)),
    "ActNorm": Case("ActNorm", lambda: fl.ActNorm(D)),
    "mixing-permutation": Case("mixing", lambda: fl.mixing("permutation", D, seed=3)),
    "mixing-lu": Case("mixing", lambda: fl.mixing("lu", D, seed=3), identity_start=False),
    # every conditioner with every transformer
    **{f"AR-K{k}-{name}": Case("Autoregressive", ar(k, make), rows=12 if name in ("Affine", "RQSpline") else 4)
       for k in CONDITIONERS for name, make in TRANSFORMERS.items()},
    # compositions and inverses
    "Compose-mixture": Case("Compose", lambda: fl.Compose(
        fl.MAF(D, hidden=H), fl.Permutation(D, seed=2), fl.SplineAutoregressive(D, hidden=H, layers=1, parts=2),
        fl.Reverse(D), ar(3, fl.Affine)().inv)),
    "Inverse-spline": Case("Inverse", lambda: fl.Inverse(fl.SplineAutoregressive(D, hidden=H, layers=2))),
    "Inverse-Compose": Case("Inverse", lambda: fl.Inverse(fl.Compose(ar(2, fl.RQSpline)(), fl.Reverse(D), fl.MAF(D, hidden=H)))),
    # the recipes
    "MAF": Case("MAF", lambda: fl.MAF(D, hidden=H, layers=2)),
    "MAF-coupling-lu": Case("MAF", lambda: fl.MAF(D, hidden=H, layers=2, parts=2, mixing="lu", seed=1),
                            identity_start=False),
    "IAF": Case("IAF", lambda: fl.IAF(D, hidden=H, layers=2)),
    "RealNVP": Case("RealNVP", lambda: fl.RealNVP(D, hidden=H, layers=2)),
    "NeuralSplineFlow": Case("NeuralSplineFlow", lambda: fl.NeuralSplineFlow(D, hidden=H, layers=2, mixing="permutation")),
    "SplineAutoregressive": Case("SplineAutoregressive", lambda: fl.SplineAutoregressive(D)),
    "SplineAutoregressive-opening-example": Case("SplineAutoregressive", lambda: fl.SplineAutoregressive(
        D, hidden=(256, 256), bins=8, bound=3, layers=1)),
    "MonotonicFlow": Case("MonotonicFlow", lambda: fl.MonotonicFlow(D, hidden=H, units=3, layers=2), rows=4),
    "UMNNFlow": Case("UMNNFlow", lambda: fl.UMNNFlow(D, hidden=H, units=3, nodes=32, layers=2), rows=4),
    "RNNFlow": Case("RNNFlow", lambda: fl.RNNFlow(D, units=8, transformer=fl.Affine(), mixing="none")),
    "Glow": Case("Glow", lambda: fl.Glow(D, layers=2, hidden=H, seed=4), identity_start=False),
    "TarFlow": Case("TarFlow", lambda: fl.TarFlow(D, hidden=8, heads=2, layers=2)),
    "TarFlow-patches-spline": Case("TarFlow", lambda: fl.TarFlow(
        D, hidden=8, heads=2, layers=3, shape=(2, 2), transformer=fl.RQSpline(bins=5, bound=2.5))),
    "TarFlow-two-parts": Case("TarFlow", lambda: fl.TarFlow(D, hidden=8, heads=2, layers=2, parts=2)),
    # the residual family: i-ResNet blocks start from random weights; planar and Sylvester at the identity
    "ResidualBlock": Case("ResidualBlock", lambda: fl.ResidualBlock(D, hidden=H), tol=1e-6, scale=0.5,
                          identity_start=False, moves=False),
    "ResidualFlow": Case("ResidualFlow", lambda: fl.ResidualFlow(D, layers=2, hidden=H), tol=1e-6, scale=0.5,
                         identity_start=False),
    "Planar": Case("Planar", lambda: fl.Planar(D), tol=1e-6, scale=0.5, moves=False),
    "PlanarFlow": Case("PlanarFlow", lambda: fl.PlanarFlow(D, layers=3), tol=1e-6, scale=0.5),
    "Sylvester": Case("Sylvester", lambda: fl.Sylvester(D, m=3), both_ways=False, moves=False),
    "SylvesterFlow": Case("SylvesterFlow", lambda: fl.SylvesterFlow(D, layers=2), both_ways=False),
    # continuous: 16 RK4 steps, so round trips hold to about 0.1 / 16^4
    "CNF": Case("CNF", lambda: fl.CNF(D, hidden=H, steps=16), tol=2e-6, scale=0.5, rows=4),
    "CNF-discrete": Case("CNF", lambda: fl.CNF(D, hidden=H, steps=8, trace="discrete"), tol=3e-5, scale=0.5, rows=4),
}
IDS = list(CASES)


def public_transforms() -> set[str]:
    """The names in ``flowlab.__all__`` of the transform classes (the abstract ``Transform``
    aside) and of the functions annotated to return a transform."""
    found = set()
    for name in fl.__all__:
        obj = getattr(fl, name)
        if isinstance(obj, type):
            if issubclass(obj, fl.Transform) and obj is not fl.Transform:
                found.add(name)
        elif inspect.isfunction(obj):
            returns = str(inspect.signature(obj).return_annotation)
            if "Transform" in returns or "Compose" in returns:
                found.add(name)
    return found


def test_public_transforms_are_found():
    """The finder itself: it sees classes and recipes, old and new (so the next test can fail)."""
    found = public_transforms()
    assert {"LU", "ActNorm", "Glow", "ResidualBlock", "Planar", "Sylvester", "CNF", "MAF", "IAF", "mixing",
            "Compose", "Inverse", "SylvesterFlow"} <= found
    assert not {"Transform", "Flow", "StandardNormal", "MaskedConditioner", "RQSpline", "fit"} & found


def test_every_public_transform_is_in_the_list():
    missing = sorted(public_transforms() - {case.public for case in CASES.values()})
    assert not missing, f"public transforms without a case in CASES: {missing}"


def ready(t: torch.nn.Module) -> torch.nn.Module:
    """ActNorm layers marked initialised (their shaken parameters then define them), and the
    spectral norms of residual blocks converged."""
    for m in t.modules():
        if isinstance(m, fl.ActNorm):
            m.initialized.fill_(True)
        if isinstance(m, fl.ResidualBlock):
            m.refresh()
    return t


def make(name: str, device, seed: int = 0) -> torch.nn.Module:
    """The case's transform with reproducible shaken parameters, in float64 on ``device``."""
    case = CASES[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = case.make()
    t = fl.testing.shaken(ready(t), case.scale, seed, fan_in=True).to(device=device, dtype=f64)
    return ready(t)


def inputs(device, n=12, seed=1):
    """Gaussian points plus rows with coordinates beyond every spline bound used here (<= 4)."""
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, D, generator=g, dtype=f64)
    tails = torch.tensor(
        [[5.0, -5.0, 0.5, -0.3], [-6.0, 0.2, 7.0, -4.5], [0.1, 3.5, -3.5, 10.0], [-9.0, -8.0, 8.5, 4.2]],
        dtype=f64,
    )
    return torch.cat([x, tails]).to(device)


@pytest.mark.parametrize("name", IDS)
def test_contract(name, device):
    """Round trips, log-determinants against autograd and gradients to every parameter, in
    float64; in float32 both directions keep the shape, dtype and device; the shaken map is far
    from the identity."""
    case, t = CASES[name], make(name, device)
    x = inputs(device, n=case.rows)
    if case.both_ways:
        check_transform(t, x, atol=case.tol, rtol=case.tol, grad=True)
        directions = (t.forward, t.inverse)
    else:  # only the explicit inverse: its log-determinant and its gradients
        y, ladj = t.inverse(x)
        auto = autograd_ladj(t.inverse, x)
        assert torch.allclose(ladj, auto, atol=case.tol, rtol=case.tol), (ladj - auto).abs().max()
        grads = torch.autograd.grad((y.pow(2) + y).sum() + ladj.sum(), list(t.parameters()))
        assert all(torch.isfinite(g).all() and g.any() for g in grads)
        directions = (t.inverse,)
    t32, x32 = copy.deepcopy(t).float(), x.float()
    with torch.no_grad():
        for direction in directions:
            y, ladj = getattr(t32, direction.__name__)(x32)
            assert y.shape == x.shape and ladj.shape == x.shape[:1]
            assert y.dtype == ladj.dtype == torch.float32 and y.device == ladj.device == x.device
            assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
        y, ladj = directions[0](x)
    if case.moves:
        assert (y - x).abs().max() > 0.5
    if not isinstance(t, fl.Permutation):  # a permutation changes no volume
        assert ladj.abs().max() > 0.01


@pytest.mark.parametrize("name", [n for n in IDS if CASES[n].identity_start])
def test_fresh_transforms_start_at_the_identity(name, device):
    """Before training, each map is the identity up to an order of the coordinates (the recipes
    put a reversal between layers): its Jacobian is close to a permutation matrix."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        t = CASES[name].make().to(device=device, dtype=f64)
    x = inputs(device, n=CASES[name].rows)
    fn = t.forward if CASES[name].both_ways else t.inverse
    if isinstance(t, fl.ActNorm):
        fn = t.inverse  # its forward initialises it from the batch
    J = autograd_jacobian(fn, x)
    P = J.round()
    assert (J - P).abs().max() < 0.1
    assert torch.equal(P.abs().sum(-1), torch.ones_like(P[..., 0])) and torch.equal(P.sum(-2), torch.ones_like(P[..., 0]))
    with torch.no_grad():
        assert fn(x)[1].abs().max() < 0.1


# ------------------------------------------------------------------------- conditioners


def conditioner(kind, outputs=3):
    if kind == "RNN":
        return fl.RNNConditioner(D, units=8, outputs=outputs)
    if kind in TRANSFORMER_PARTS:
        return fl.TransformerConditioner(D, parts=TRANSFORMER_PARTS[kind], hidden=8, heads=2, outputs=outputs)
    return fl.MaskedConditioner(D, parts=kind, hidden=(32, 32), outputs=outputs)


def parts_of(c) -> torch.Tensor:
    """The part of each feature; for the recurrent conditioner every feature is its own part."""
    return c.part if hasattr(c, "part") else torch.arange(D)


@pytest.mark.parametrize("kind", CONDITIONERS)
def test_conditioner_dependency_pattern(kind, device):
    """d c_i / d x_j is zero unless part(j) < part(i) (exactly zero, not just small), and non-zero
    for every such pair."""
    c = fl.testing.shaken(conditioner(kind), 1.0, fan_in=True).to(device=device, dtype=f64)
    part = parts_of(c).to(device)
    allowed = part[None, :] < part[:, None]  # (i, j)
    J = autograd_jacobian(lambda v: c(v).flatten(1), inputs(device, n=6)).unflatten(1, (D, 3))  # (n, i, p, j)
    nonzero = J.abs().amax(dim=(0, 2)) > 0
    assert torch.equal(nonzero, allowed), f"dependency pattern\n{nonzero.int()}\nexpected\n{allowed.int()}"


@pytest.mark.parametrize("kind", CONDITIONERS)
def test_first_part_gets_learned_constants_without_a_network_pass(kind, device):
    """``initial`` gives part 0's parameters exactly (the same for every x), as ``forward`` does."""
    c = fl.testing.shaken(conditioner(kind), 1.0, fan_in=True).to(device=device, dtype=f64)
    x = inputs(device)
    first = parts_of(c).to(device) == 0
    out = c(x)
    assert torch.allclose(c.initial(x)[:, first], out[:, first], atol=1e-12, rtol=0)  # GRU: batch 1 vs 16
    assert torch.equal(out[:, first], out[:1, first].expand_as(out[:, first]))
    assert c.initial(x).shape == (len(x), D, 3)


def test_narrow_hidden_layers_keep_the_pattern_and_lose_the_predicted_dependencies():
    """Fewer hidden units than parts - 1: the degrees are spread over 0..K-2, and part i sees
    part j exactly when some degree m has j <= m < i (one hidden layer)."""
    features, width = 9, 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        c = fl.testing.shaken(fl.MaskedConditioner(features, hidden=(width,), outputs=1), 1.0, fan_in=True).double()
    present = degrees(width, features)
    assert present.tolist() == [0, 2, 5]
    i, j = torch.arange(features)[:, None], torch.arange(features)[None, :]
    predicted = ((present[None, None, :] >= j[..., None]) & (present[None, None, :] < i[..., None])).any(-1)
    x = 3 * torch.randn(200, features, generator=torch.Generator().manual_seed(0), dtype=f64)  # wakes every ReLU
    J = autograd_jacobian(lambda v: c(v).flatten(1), x)
    assert torch.equal(J.abs().amax(0) > 0, predicted)
    assert torch.equal(predicted & (j >= i), torch.zeros_like(predicted))  # still autoregressive


@pytest.mark.parametrize("kind", [2, 3, D, "RNN", *TRANSFORMER_PARTS])
@pytest.mark.parametrize("transformer", list(TRANSFORMERS))
def test_inverse_takes_parts_minus_one_network_passes(kind, transformer, device):
    """Part 0's parameters are constants: inverting K parts takes K - 1 passes of the network (a
    coupling layer one; the recurrent conditioner D - 1 GRU sweeps after one GRU step), counted
    on the network itself; one pass fewer leaves the last part wrong and the others exact."""
    t = make(f"AR-K{kind}-{transformer}", device)
    passes = parts_count(kind) - 1
    assert t.passes == passes
    net = t.conditioner.gru if kind == "RNN" else t.conditioner.net
    calls = []
    hook = net.register_forward_hook(lambda *a: calls.append(1))
    x = inputs(device)
    try:
        with torch.no_grad():
            z, ladj = t(x)
            assert len(calls) == 1  # the density direction: one network pass
            calls.clear()
            exact, ladj_exact = t.inverse(z)
            assert len(calls) == passes + (kind == "RNN")  # plus initial's one GRU step
            short, _ = t.inverse(z, passes=passes - 1)
    finally:
        hook.remove()
    assert torch.allclose(exact, x, atol=1e-9, rtol=1e-9)
    assert torch.allclose(ladj_exact, -ladj, atol=1e-9, rtol=1e-9)
    last = parts_of(t.conditioner).to(device) == passes
    assert (short - x)[:, last].abs().max() > 1e-5  # a thousand times the error of an exact inverse
    assert torch.allclose(short[:, ~last], x[:, ~last], atol=1e-9, rtol=1e-9)


def test_parts_one_is_elementwise(device):
    """With parts=1 the transformer's parameters are learned constants: the map is elementwise."""
    J = autograd_jacobian(make("AR-K1-RQSpline", device), inputs(device))
    off = J - torch.diag_embed(J.diagonal(dim1=-2, dim2=-1))
    assert torch.equal(off, torch.zeros_like(off))


# ------------------------------------------------------------------------- recipes and flows


def test_recipe_settings():
    assert isinstance(fl.IAF(2), fl.Inverse)
    assert all(layer.passes == 1 for layer in fl.RealNVP(4, layers=3) if isinstance(layer, fl.Autoregressive))
    assert fl.NeuralSplineFlow(4, layers=1)[0].passes == 1  # coupling: one network pass each way
    assert fl.NeuralSplineFlow(4, layers=1, parts=None)[0].passes == 3
    assert fl.RNNFlow(3, layers=1)[0].passes == 2
    assert len(fl.MonotonicFlow(2, layers=3)) == 5  # three layers and two reversals
    assert isinstance(fl.MAF(2), fl.Compose) and len(fl.MAF(2)) == 1  # a recipe is always a Compose
    kinds = [type(t).__name__ for t in fl.SplineAutoregressive(3, layers=3, mixing="permutation", seed=5)]
    assert kinds == ["Autoregressive", "Permutation", "Autoregressive", "Permutation", "Autoregressive"]
    assert len(fl.MAF(3, layers=3, mixing="none")) == 3
    with pytest.raises(ValueError, match="transformer"):
        fl.RNNFlow(3, transformer="spline")
    with pytest.raises(ValueError, match="mixing must be one of"):
        fl.MAF(3, layers=2, mixing="shuffle")
    with pytest.raises(ValueError):
        fl.RealNVP(1)


def test_recipes_draw_each_mixing_layer_from_seed_plus_its_position():
    """The mixing layer before layer i comes from seed + i: the same as ``fl.mixing(kind, D, seed + i)``."""
    t = fl.MAF(5, layers=3, mixing="permutation", seed=7)
    assert [m.order.tolist() for m in t if isinstance(m, fl.Permutation)] == [
        fl.mixing("permutation", 5, seed=7 + i).order.tolist() for i in (1, 2)]


def test_standard_normal_log_prob(device):
    base = fl.StandardNormal(D).to(device).double()
    z = inputs(device)
    reference = torch.distributions.Normal(z.new_zeros(()), z.new_ones(())).log_prob(z).sum(-1)
    assert torch.allclose(base.log_prob(z), reference, atol=1e-12, rtol=1e-12)
    s = base.sample(5)
    assert s.shape == (5, D) and s.dtype == f64 and s.device == z.device


@pytest.mark.parametrize("name", ["MAF", "IAF", "SplineAutoregressive", "Compose-mixture", "Glow"])
def test_rsample_and_log_prob_matches_log_prob(name, device):
    flow = fl.Flow(make(name, device), fl.StandardNormal(D))
    assert flow.dtype == f64 and flow.device == torch.device(device)
    g = torch.Generator(device=device).manual_seed(0)
    x, lp = flow.rsample_and_log_prob(64, generator=g)
    assert x.shape == (64, D) and lp.shape == (64,) and x.dtype == f64 and x.device == flow.device
    assert torch.allclose(lp, flow.log_prob(x), atol=1e-8, rtol=1e-8)
    # the samples are differentiable in the parameters (what the reverse KL needs)
    lp.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())
    # same generator seed, same samples
    g.manual_seed(0)
    assert torch.equal(flow.sample(64, generator=g), x.detach())
