"""TarFlow's pieces: the Jacobi inverse (a fixed point exact after K - 1 sweeps, equal to the
sequential inverse), the transformer conditioner, the TarFlow recipe with patches, and the
Tweedie denoising step against the closed form of a Gaussian. The float64 contract of
``TransformerConditioner`` with every transformer, and of ``TarFlow``, is in test_contract.py."""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
from flowlab.numerics import MAX_SWEEPS, jacobi
from flowlab.numerics.jacobi import default_tol
from flowlab.tarflow import denoise, patches

f64 = torch.float64


def shaken_layer(conditioner, transformer=None, scale=1.0, seed=0):
    """An autoregressive layer in float64 with every parameter moved far from the identity."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = fl.Autoregressive(conditioner, transformer or fl.Affine())
    return fl.testing.shaken(layer, scale, seed, fan_in=True).double()


def points(n=16, d=8, seed=1):
    return 1.5 * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=f64)


# ------------------------------------------------------------------------------ numerics.jacobi


def test_jacobi_solves_a_triangular_linear_system_in_d_minus_one_sweeps():
    """x = z - N x with N strictly lower triangular (nilpotent): the sweeps reach the solution of
    (I + N) x = z exactly after D - 1 sweeps from x0 = z (whose first coordinate is exact), and
    one sweep fewer leaves the last coordinate wrong."""
    d = 6
    g = torch.Generator().manual_seed(0)
    n = torch.randn(d, d, generator=g, dtype=f64).tril(-1)
    z = torch.randn(5, d, generator=g, dtype=f64)
    exact = torch.linalg.solve_triangular(torch.eye(d, dtype=f64) + n, z.T, upper=False).T
    sol = jacobi(lambda x: z - x @ n.T, z.clone(), sweeps=d - 1)
    assert sol.sweeps == d - 1
    assert torch.allclose(sol.x, exact, atol=1e-12, rtol=0)
    short = jacobi(lambda x: z - x @ n.T, z.clone(), sweeps=d - 2).x
    assert (short - exact)[:, -1].abs().max() > 1e-3
    assert torch.allclose(short[:, :-1], exact[:, :-1], atol=1e-12, rtol=0)


def test_jacobi_with_tol_zero_stops_at_the_first_sweep_that_changes_nothing():
    d = 5
    n = torch.zeros(d, d, dtype=f64)
    n[1, 0] = 2.0  # only coordinate 1 depends on another one: exact after one sweep
    z = torch.ones(3, d, dtype=f64)
    sol = jacobi(lambda x: z - x @ n.T, z.clone(), sweeps=d - 1, tol=0.0)
    assert sol.sweeps == 2 and sol.residual == 0.0  # one sweep to solve, one that changes nothing
    assert torch.equal(sol.x[:, 1], torch.full((3,), -1.0, dtype=f64))


def test_jacobi_gradients_are_those_of_the_exact_solution():
    d = 4
    g = torch.Generator().manual_seed(1)
    w = (0.7 * torch.randn(d, d, generator=g, dtype=f64)).requires_grad_(True)
    z = torch.randn(3, d, generator=g, dtype=f64, requires_grad=True)
    n = w.tril(-1)
    x = jacobi(lambda x: z - x @ n.T, z, sweeps=d - 1).x
    gz, gn = torch.autograd.grad((x**2).sum(), (z, w))
    exact = torch.linalg.solve_triangular(torch.eye(d, dtype=f64) + w.tril(-1), z.T, upper=False).T
    ez, en = torch.autograd.grad((exact**2).sum(), (z, w))
    assert torch.allclose(gz, ez, atol=1e-12) and torch.allclose(gn, en, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sweeps=-1), "sweeps must be an integer between 0"),
        (dict(sweeps=MAX_SWEEPS + 1), "sweeps must be an integer between 0"),
        (dict(sweeps=2.0), "sweeps must be an integer"),
        (dict(sweeps=2, tol=-1e-3), "tol must be a finite number >= 0"),
        (dict(sweeps=2, tol=float("nan")), "tol must be a finite number >= 0"),
        (dict(sweeps=2, tol=True), "tol must be a finite number >= 0"),
    ],
)
def test_jacobi_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jacobi(lambda x: x, torch.zeros(2, 3), **kwargs)


def test_jacobi_refuses_a_bad_map_or_start():
    with pytest.raises(ValueError, match="T must be a function"):
        jacobi("x", torch.zeros(2, 3), 2)
    with pytest.raises(ValueError, match="x0 must be a floating point tensor"):
        jacobi(lambda x: x, torch.zeros(2, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"the map must return a tensor of the shape of its input, \(2, 3\)"):
        jacobi(lambda x: x[:, :2], torch.zeros(2, 3), 2)


# ------------------------------------------------------------------- Autoregressive.jacobi


CONDITIONERS = {
    "transformer": lambda: fl.TransformerConditioner(8, hidden=8, heads=2),
    "transformer, 4 parts": lambda: fl.TransformerConditioner(8, parts=4, hidden=8, heads=2),
    "masked": lambda: fl.MaskedConditioner(8, hidden=(16, 16)),
    "recurrent": lambda: fl.RNNConditioner(8, units=8),
}


@pytest.mark.parametrize("transformer", [fl.Affine, lambda: fl.RQSpline(bins=5, bound=2.5)], ids=["affine", "spline"])
@pytest.mark.parametrize("kind", list(CONDITIONERS))
def test_jacobi_equals_the_sequential_inverse_within_k_minus_one_sweeps(kind, transformer):
    """float64, shaken parameters: with tol=0 the Jacobi inverse is the sequential one, bit for
    bit, after at most K - 1 network passes (counted on the network), and it inverts the layer."""
    layer = shaken_layer(CONDITIONERS[kind](), transformer())
    x = points()
    z, ladj = layer(x)
    sequential, ladj_seq = layer.inverse(z)
    net = layer.conditioner.gru if kind == "recurrent" else layer.conditioner.net
    calls = []
    hook = net.register_forward_hook(lambda *a: calls.append(1))
    try:
        sol = layer.jacobi(z, tol=0.0)
    finally:
        hook.remove()
    assert 1 <= sol.sweeps <= layer.passes
    assert len(calls) == sol.sweeps + (kind == "recurrent")  # plus initial's one GRU step
    assert torch.equal(sol.x, sequential) and torch.equal(sol.ladj, ladj_seq)
    assert torch.allclose(sol.x, x, atol=1e-9) and torch.allclose(sol.ladj, -ladj, atol=1e-9)
    x2, l2 = layer.inverse(z, method="jacobi", tol=0.0)
    assert torch.equal(x2, sol.x) and torch.equal(l2, sol.ladj)


def test_the_bound_is_reached_when_every_part_reacts_strongly():
    """Strongly coupled shaken weights: tol=0 needs all K - 1 sweeps (no sweep before the last
    leaves the point unchanged), and stopping one short leaves the last part wrong by far more
    than rounding (the earlier parts exact)."""
    layer = shaken_layer(fl.TransformerConditioner(8, hidden=8, heads=2), scale=2.0)
    x = points()
    z, _ = layer(x)
    assert layer.jacobi(z, tol=0.0).sweeps == layer.passes == 7
    short = layer.jacobi(z, passes=6).x
    assert (short - x)[:, -1].abs().max() > 1e-10
    assert torch.allclose(short[:, :-1], x[:, :-1], atol=1e-12)


def test_jacobi_stops_early_on_a_weakly_coupled_layer_and_says_how_far_it_moved():
    """A fresh masked layer is close to the identity (weights scaled by 1e-2): the sweeps stop
    changing anything above 1e-10 long before K - 1 = 15, and the point is that close."""
    torch.manual_seed(0)
    layer = fl.Autoregressive(fl.MaskedConditioner(16, hidden=(32, 32)), fl.Affine()).double()
    x = points(d=16)
    z, _ = layer(x)
    sol = layer.jacobi(z, tol=1e-10)
    assert sol.sweeps < layer.passes and sol.residual <= 1e-10
    assert torch.allclose(sol.x, x, atol=1e-9)


def test_the_default_tolerance_follows_the_dtype():
    torch.manual_seed(0)
    layer = fl.Autoregressive(fl.TransformerConditioner(8, hidden=8, heads=2), fl.Affine())
    fl.testing.shaken(layer, 0.3, fan_in=True)
    z = torch.randn(4, 8)
    x, _ = layer.inverse(z, method="jacobi")
    assert torch.allclose(x, layer.inverse(z)[0], atol=1e-4)
    assert default_tol(torch.float32) == 1e-5 and default_tol(f64) == 1e-10


def test_inverse_method_and_tol_are_checked():
    layer = fl.Autoregressive(fl.MaskedConditioner(3), fl.Affine())
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="method must be 'sequential'.*or 'jacobi'"):
        layer.inverse(z, method="gauss-seidel")
    with pytest.raises(ValueError, match="pass it with method='jacobi'"):
        layer.inverse(z, tol=1e-3)
    with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
        layer.inverse(z, method="jacobi", tol=-1.0)
    with pytest.raises(ValueError, match=r"^z must have shape \(batch, 3\)"):
        layer.jacobi(torch.zeros(2, 4))


# ---------------------------------------------------------------------- TransformerConditioner


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(parts=3), r"parts must divide features=8 .* choose one of \[1, 2, 4, 8\]"),
        (dict(parts=9), "parts must be an integer between 1 and features=8"),
        (dict(hidden=10, heads=4), "heads must divide hidden=10"),
        (dict(depth=0), "depth must be an integer between 1 and 64"),
        (dict(hidden=0), "hidden must be an integer >= 1"),
    ],
)
def test_transformer_conditioner_refuses_impossible_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.TransformerConditioner(8, **kwargs)


def test_transformer_conditioner_shares_its_weights_across_positions_and_sizes():
    """The same attention weights serve every token: the parameter count grows with the number
    of tokens only through the position vectors."""
    sizes = [sum(p.numel() for p in fl.TransformerConditioner(d, hidden=16, heads=2, outputs=2).parameters())
             for d in (8, 16)]
    assert sizes[1] - sizes[0] == 8 * 16 + 0 * 2  # 8 more tokens: 8 position vectors of width 16


def test_one_part_has_no_network_and_an_empty_batch_works():
    c = fl.TransformerConditioner(4, parts=1, outputs=2)
    assert c.net is None and c.passes == 0 and c(torch.zeros(3, 4)).shape == (3, 4, 2)
    layer = fl.Autoregressive(fl.TransformerConditioner(4, hidden=8, heads=2), fl.Affine())
    z, ladj = layer(torch.zeros(0, 4))
    assert z.shape == (0, 4) and ladj.shape == (0,)
    assert layer.inverse(torch.zeros(0, 4), method="jacobi")[0].shape == (0, 4)


# ---------------------------------------------------------------------------------- TarFlow


def test_patches_put_each_square_together():
    order = patches(8, 8, 2)
    assert sorted(order.tolist()) == list(range(64))
    rows, cols = order // 8, order % 8
    for k in range(16):  # patch k: a 2 x 2 square
        r, c = rows[4 * k : 4 * k + 4], cols[4 * k : 4 * k + 4]
        assert r.max() - r.min() == 1 and c.max() - c.min() == 1
    assert patches(4, 6, 1).tolist() == list(range(24))
    with pytest.raises(ValueError, match="patch must divide the height 8 and the width 6"):
        patches(8, 6, 4)


def test_tarflow_layers_patches_and_alternating_orders():
    t = fl.TarFlow(64, shape=(8, 8), patch=2, layers=3, hidden=16, heads=2)
    kinds = [type(b).__name__ for b in t]
    assert kinds == ["Permutation", "Autoregressive", "Reverse", "Autoregressive", "Reverse", "Autoregressive"]
    assert torch.equal(t[0].order, patches(8, 8, 2))
    assert all(b.passes == 15 and b.conditioner.size == 4 for b in t if isinstance(b, fl.Autoregressive))
    spline = fl.TarFlow(16, layers=2, hidden=8, heads=2, transformer=fl.RQSpline(bins=4))
    a, b = spline[0].transformer, spline[2].transformer
    assert isinstance(a, fl.RQSpline) and a is not b  # each layer its own copy


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shape=(8, 4)), r"shape \(8, 4\) has 32 pixels but features=64"),
        (dict(shape=(8, 8), patch=3), "patch must divide the height 8 and the width 8"),
        (dict(shape=(8, 8), patch=2, parts=8), "parts=8 but shape .* gives 16 patches"),
        (dict(patch=2), "patch=2 needs the image's shape"),
        (dict(shape=8), r"shape must be \(height, width\)"),
        (dict(transformer="affine"), "transformer must be a flowlab Transformer"),
        (dict(layers=0), "layers must be an integer >= 1"),
    ],
)
def test_tarflow_refuses_impossible_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.TarFlow(64, **kwargs)


def test_tarflow_jacobi_sampling_matches_the_sequential_inverse():
    """float64, shaken: every layer's sweeps stay within K - 1, the Jacobi inverse agrees with
    the sequential one to the tolerance's order, and with tol=0 exactly."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        t = fl.TarFlow(16, shape=(4, 4), patch=2, layers=3, hidden=8, heads=2)
    t = fl.testing.shaken(t, 0.5, fan_in=True).double()
    z = torch.randn(32, 16, generator=torch.Generator().manual_seed(2), dtype=f64)
    x, ladj = t.inverse(z)
    sol = t.jacobi(z, tol=0.0)
    assert len(sol.sweeps) == 3 and all(1 <= s <= 3 for s in sol.sweeps)
    assert torch.equal(sol.x, x) and torch.equal(sol.ladj, ladj)
    rough = t.jacobi(z, tol=1e-6)
    assert torch.allclose(rough.x, x, atol=1e-4)
    for sweeps, residual in zip(rough.sweeps, rough.residuals):  # stopped at tol, or exact at the bound
        assert residual <= 1e-6 or sweeps == 3
    x2, _ = t.inverse(z, method="jacobi", tol=1e-6)
    assert torch.equal(x2, rough.x)
    flow = fl.Flow(t, fl.StandardNormal(16))
    assert torch.allclose(flow.log_prob(x), flow.base.log_prob(z) - ladj, atol=1e-9)


# ---------------------------------------------------------------------------------- denoise


def test_denoise_is_tweedie_exactly_for_a_gaussian():
    """x ~ N(0, s^2 I), y = x + sigma eps: the noisy data are N(0, (s^2 + sigma^2) I), a flow
    with that density gives E[x | y] = s^2 / (s^2 + sigma^2) y exactly, and on samples the
    error x - E[x | y] has mean zero and is uncorrelated with y (within 4 standard errors)."""
    s, sigma, d = 1.5, 0.5, 3
    layer = fl.Triangular(d).double()
    with torch.no_grad():
        layer.log_diag.fill_(-0.5 * math.log(s**2 + sigma**2))
    flow = fl.Flow(layer, fl.StandardNormal(d))
    g = torch.Generator().manual_seed(0)
    x = s * torch.randn(20000, d, generator=g, dtype=f64)
    y = x + sigma * torch.randn(x.shape, generator=g, dtype=f64)
    out = denoise(flow, y, sigma)
    assert torch.allclose(out, s**2 / (s**2 + sigma**2) * y, atol=1e-12)
    err = x - out
    se = err.std(0) / math.sqrt(len(x))
    assert bool((err.mean(0).abs() < 4 * se).all())
    cov = (err * y).mean(0)
    assert bool((cov.abs() < 4 * (err * y).std(0) / math.sqrt(len(x))).all())
    assert float((err**2).mean()) < float(((x - y) ** 2).mean())  # closer than the noisy points


def test_denoise_refuses_bad_input():
    flow = fl.Flow(fl.TarFlow(2, hidden=8, heads=2), fl.StandardNormal(2))
    with pytest.raises(ValueError, match="noise must be a positive number"):
        denoise(flow, torch.zeros(3, 2), 0.0)
    with pytest.raises(ValueError, match="flow must be a flowlab Flow"):
        denoise(flow.transform, torch.zeros(3, 2), 0.1)
    with pytest.raises(ValueError, match="y must be a torch.Tensor"):
        denoise(flow, [[0.0, 0.0]], 0.1)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        denoise(flow, torch.zeros(3, 5), 0.1)
