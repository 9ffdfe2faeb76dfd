"""Residual flows: the fixed point and the log-det estimators against closed forms, spectral
normalisation, the contract of ResidualBlock / Planar / Sylvester in float64, and the energies U1-U4."""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
from flowlab.testing import shaken
from flowlab.lipschitz import LipSwish, SpectralLinear, lipschitz_mlp
from flowlab.numerics import fixed_point, logdet_exact, logdet_roulette, logdet_series, series_bound
from flowlab.testing import autograd_ladj, check_transform, density_integral

f64 = torch.float64


def _matrix(eigenvalues, seed=0):
    """A non-symmetric 2 x 2 (or D x D) matrix with the given real eigenvalues."""
    g = torch.Generator().manual_seed(seed)
    d = len(eigenvalues)
    p = torch.eye(d, dtype=f64) + 0.4 * torch.randn(d, d, generator=g, dtype=f64)
    return p @ torch.diag(torch.tensor(eigenvalues, dtype=f64)) @ torch.linalg.inv(p)


# ------------------------------------------------------------------------------------------
# fixed point
# ------------------------------------------------------------------------------------------

def test_fixed_point_linear_closed_form_and_bound():
    a = _matrix([0.6, -0.3])
    c = float(torch.linalg.matrix_norm(a, ord=2))
    assert c < 1
    y = torch.randn(7, 2, dtype=f64, generator=torch.Generator().manual_seed(1))
    sol = fixed_point(lambda x: y - x @ a.T, torch.zeros_like(y), tol=1e-12)
    exact = torch.linalg.solve(torch.eye(2, dtype=f64) + a, y.T).T
    assert torch.allclose(sol.x, exact, atol=1e-11)
    assert sol.residual <= 1e-12
    # the a-priori bound c^k/(1-c) |x1 - x0| <= tol holds after at most this many iterations
    first = float(y.norm(dim=1).max())
    bound = math.ceil(math.log(1e-12 * (1 - c) / first) / math.log(c)) + 1
    assert sol.iterations <= bound


def test_fixed_point_gradcheck():
    a = (0.4 * _matrix([0.8, -0.5])).requires_grad_(True)
    y = torch.randn(3, 2, dtype=f64, generator=torch.Generator().manual_seed(2), requires_grad=True)

    def solve(y, a):
        return fixed_point(lambda x: y - torch.tanh(x @ a.T), torch.zeros_like(y), tol=1e-13).x

    assert torch.autograd.gradcheck(solve, (y, a), atol=1e-7)


def test_fixed_point_raises_when_not_contracting():
    y = torch.ones(2, 2, dtype=f64)
    with pytest.raises(ValueError, match="stopped decreasing"):
        fixed_point(lambda x: y - x, torch.zeros_like(y))  # Lipschitz 1: the residual never falls
    with pytest.raises(ValueError, match="residual"):
        fixed_point(lambda x: y - 3 * x, torch.zeros_like(y))  # expanding
    with pytest.raises(ValueError, match="max_iter"):
        fixed_point(lambda x: y - 0.99 * x, torch.zeros_like(y), max_iter=5)


# ------------------------------------------------------------------------------------------
# log-det estimators, on linear maps g(x) = A x with known eigenvalues
# ------------------------------------------------------------------------------------------

EIGS = [0.7, -0.4]


def _linear(a):
    return lambda x: x @ a.T


def test_logdet_exact_closed_form():
    for eigs in (EIGS, [0.5, 0.2, -0.6]):
        a = _matrix(eigs)
        _, l = logdet_exact(_linear(a), torch.randn(4, len(eigs), dtype=f64))
        assert torch.allclose(l, torch.tensor(sum(math.log(1 + e) for e in eigs), dtype=f64).expand(4))


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
@pytest.mark.parametrize("terms", [1, 3])
def test_logdet_series_mean_is_the_truncated_series(terms, probe):
    a = _matrix(EIGS)
    n = 40000
    _, l = logdet_series(_linear(a), torch.zeros(n, 2, dtype=f64), terms, torch.Generator().manual_seed(3), probe)
    truncated = sum((-1) ** (k + 1) / k * sum(e**k for e in EIGS) for k in range(1, terms + 1))
    se = float(l.std()) / math.sqrt(n)
    assert abs(float(l.mean()) - truncated) < 4 * se + 1e-12
    # and the bias against the exact log-det is within the worst-case bound for c = ||A||
    c = float(torch.linalg.matrix_norm(a, ord=2))
    exact = sum(math.log(1 + e) for e in EIGS)
    if c < 1:
        assert abs(truncated - exact) <= series_bound(c, 2, terms)


def test_logdet_roulette_is_unbiased():
    a = _matrix(EIGS)
    n = 40000
    exact = sum(math.log(1 + e) for e in EIGS)
    # one number of terms per row: independent estimates
    _, l = logdet_roulette(_linear(a), torch.zeros(n, 2, dtype=f64), torch.Generator().manual_seed(4), shared=False)
    se = float(l.std()) / math.sqrt(n)
    assert abs(float(l.mean()) - exact) < 4 * se
    # with one exact term only the truncation at 1 is still corrected
    _, l1 = logdet_roulette(_linear(a), torch.zeros(n, 2, dtype=f64), torch.Generator().manual_seed(5), exact_terms=1,
                            shared=False)
    assert abs(float(l1.mean()) - exact) < 4 * float(l1.std()) / math.sqrt(n)
    # one number of terms per call (the default): unbiased over calls
    g = torch.Generator().manual_seed(6)
    calls = torch.stack([logdet_roulette(_linear(a), torch.zeros(8, 2, dtype=f64), g)[1].mean() for _ in range(3000)])
    assert abs(float(calls.mean()) - exact) < 4 * float(calls.std()) / math.sqrt(len(calls))


def _tanh_block(seed=0):
    """g(x) = tanh(x A^T + b) / 2 with ||A|| < 1.8: a contraction with parameters A and b."""
    g = torch.Generator().manual_seed(seed)
    a = (0.6 * torch.randn(2, 2, generator=g, dtype=f64)).requires_grad_(True)
    b = (0.3 * torch.randn(2, generator=g, dtype=f64)).requires_grad_(True)
    return (lambda x: 0.5 * torch.tanh(x @ a.T + b)), [a, b]


def _gradient(estimate, params):
    return torch.cat([p.flatten() for p in torch.autograd.grad(estimate.sum(), params)])


@pytest.mark.parametrize("shared", [True, False])
def test_roulette_gradient_is_unbiased(shared):
    # the Neumann gradient: its mean over draws is the gradient of the exact log-det
    fn, params = _tanh_block()
    x = torch.tensor([[0.4, -0.3], [1.0, 0.5], [-0.7, 0.2]], dtype=f64, requires_grad=True)
    exact = _gradient(logdet_exact(fn, x)[1], params + [x])
    gen = torch.Generator().manual_seed(11)
    draws = torch.stack([_gradient(logdet_roulette(fn, x, gen, shared=shared)[1], params + [x]) for _ in range(1500)])
    se = draws.std(0) / math.sqrt(len(draws))
    z = (draws.mean(0) - exact) / se
    assert z.abs().max() < 4.5, z
    assert (se < 0.05 * exact.abs().max()).all()  # the test can see a wrong gradient


def test_series_gradient_is_that_of_the_truncated_series():
    fn, params = _tanh_block(1)
    x = torch.tensor([[0.2, 0.1], [-0.5, 0.8]], dtype=f64, requires_grad=True)
    jac = fl.numerics.jacobian(fn, x)
    truncated = sum((-1) ** (k + 1) / k * torch.linalg.matrix_power(jac, k).diagonal(dim1=1, dim2=2).sum(-1)
                    for k in range(1, 4))
    exact = _gradient(truncated, params + [x])
    gen = torch.Generator().manual_seed(12)
    draws = torch.stack([_gradient(logdet_series(fn, x, 3, gen)[1], params + [x]) for _ in range(1500)])
    z = (draws.mean(0) - exact) / (draws.std(0) / math.sqrt(len(draws)))
    assert z.abs().max() < 4.5, z


def test_estimators_reject_bad_settings():
    g = _linear(_matrix(EIGS))
    x = torch.zeros(2, 2, dtype=f64)
    with pytest.raises(ValueError, match="terms"):
        logdet_series(g, x, 0)
    with pytest.raises(ValueError, match="probe"):
        logdet_series(g, x, 2, probe="uniform")
    with pytest.raises(ValueError, match="p "):
        logdet_roulette(g, x, p=1.0)
    with pytest.raises(ValueError, match=r"p \(the stopping probability of the roulette\) must be a number in \[0.01, 1\)"):
        logdet_roulette(g, x, p=1e-12)
    with pytest.raises(ValueError, match="terms must be an integer between 1 and 1000"):
        logdet_series(g, x, 10**9)
    with pytest.raises(ValueError, match="exact_terms must be an integer between 0 and 1000"):
        logdet_roulette(g, x, exact_terms=10**6)


def test_noise_from_the_generator():
    g = _linear(_matrix(EIGS))
    x = torch.zeros(6, 2, dtype=f64)
    one = logdet_roulette(g, x, torch.Generator().manual_seed(9))[1]
    two = logdet_roulette(g, x, torch.Generator().manual_seed(9))[1]
    assert torch.equal(one, two)


# ------------------------------------------------------------------------------------------
# Lipschitz layers
# ------------------------------------------------------------------------------------------

def test_spectral_linear_norm_after_refresh_and_power_steps():
    layer = SpectralLinear(5, 7, coeff=0.7)
    with torch.no_grad():
        layer.weight.mul_(10)
    true = float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
    estimates = []
    for _ in range(5):
        layer.power_step()
        estimates.append(float(layer.sigma().detach()))
    assert all(e <= true + 1e-5 for e in estimates)  # power iteration approaches from below
    layer.eval()  # converges
    assert abs(float(layer.sigma().detach()) - true) < 1e-4 * true
    assert float(torch.linalg.matrix_norm(layer.weight_hat().detach(), ord=2)) <= 0.7 + 1e-5


def test_lipswish_is_1_lipschitz():
    act = LipSwish()
    with torch.no_grad():
        act.beta.fill_(3.0)
    x = torch.linspace(-20, 20, 4001, requires_grad=True)
    slope = torch.autograd.grad(act(x).sum(), x)[0]
    assert slope.abs().max() <= 1.0


@pytest.mark.parametrize("coeff", [1.0, 1.5, 0.0, -0.2])
def test_bad_coeff(coeff):
    with pytest.raises(ValueError, match="coeff"):
        fl.ResidualBlock(2, coeff=coeff)
    with pytest.raises(ValueError, match="coeff"):
        lipschitz_mlp(2, coeff=coeff)


def test_bad_terms_and_mode():
    with pytest.raises(ValueError, match="terms"):
        fl.ResidualBlock(2, terms=0)
    with pytest.raises(ValueError, match="ladj"):
        fl.ResidualBlock(2, ladj="hutchinson")


# ------------------------------------------------------------------------------------------
# ResidualBlock
# ------------------------------------------------------------------------------------------

def _block(seed=0, **kw):
    torch.manual_seed(seed)
    block = shaken(fl.ResidualBlock(2, hidden=(16, 16), **kw), scale=0.5, seed=seed)
    block.refresh()
    return block


def test_residual_block_contract():
    # the norms are converged in float64 before the check (check_transform works on a float64 copy)
    block = _block().double()
    block.refresh()
    x = 2 * torch.randn(9, 2, generator=torch.Generator().manual_seed(0), dtype=f64)
    check_transform(block, x)
    flow = fl.ResidualFlow(3, layers=2, hidden=(8,)).double().eval().train()
    check_transform(flow, torch.randn(5, 3, dtype=f64))


def test_residual_block_is_a_contraction_after_eval():
    block = _block(coeff=0.95)
    with torch.no_grad():  # a large update: the stored power-iteration vectors are now stale
        for layer in block.spectral_layers():
            layer.weight.add_(3 * torch.randn_like(layer.weight))
    block.eval()
    for layer in block.spectral_layers():
        # power iteration converges to the norm from below, to about 1e-5 relative in float32
        assert float(torch.linalg.matrix_norm(layer.weight_hat().detach(), ord=2)) <= 0.95 * (1 + 1e-4)


def test_after_step_is_one_power_step_and_fit_calls_it():
    block = _block()
    layer = block.spectral_layers()[0]
    with torch.no_grad():
        layer.weight.add_(torch.randn_like(layer.weight))
    u = layer.u.clone()
    block.after_step()
    layer2 = _block().spectral_layers()[0]
    with torch.no_grad():
        layer2.weight.copy_(layer.weight)
        layer2.u.copy_(u)
        layer2.v.copy_(torch.zeros_like(layer2.v))
    layer2.power_step()
    assert torch.allclose(layer.u, layer2.u)

    calls = []

    class Counted(fl.ResidualBlock):
        def after_step(self):
            calls.append(1)
            super().after_step()

    flow = fl.Flow(Counted(2, hidden=(8,)), fl.StandardNormal(2))
    fl.fit(flow, fl.targets.moons(64, seed=0), steps=3, progress=False, valid=None)
    assert len(calls) == 3


def _norms(flow):
    with torch.no_grad():
        return [float(torch.linalg.matrix_norm(layer.weight_hat(), ord=2))
                for block in flow.transform for layer in block.spectral_layers()]


def test_lipschitz_bound_holds_in_a_plain_adam_loop():
    # the loop of fit's docstring, without flowlab's per-step hook: the layers keep their norms
    # themselves. Lower singular values overtake the first here (a single power vector let the
    # norm reach 1.31, no update at all 11.8)
    x = fl.targets.moons(1000, seed=0)
    torch.manual_seed(0)
    flow = fl.Flow(fl.ResidualFlow(2, layers=4, hidden=32, coeff=0.9), fl.StandardNormal(2))
    optimizer = torch.optim.Adam(flow.parameters(), lr=2e-2)
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(100):
        loss = -flow.log_prob(x[torch.randint(len(x), (64,), generator=g)]).mean()
        worst = max(worst, max(_norms(flow)))  # the weights as this forward pass used them
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert worst <= 0.9 * 1.01, worst
    assert max(_norms(flow)) > 0.9 * 0.99  # the cap was reached: the test measured something
    flow.eval()
    assert max(_norms(flow)) <= 0.9 * (1 + 1e-5)
    # inverting does not change the map: the inverse inverts the evaluation-mode map
    with torch.no_grad():
        z, _ = flow.transform(x[:50])
        x_back, _ = flow.transform.inverse(z)
        z_again, _ = flow.transform(x[:50])
    assert torch.equal(z, z_again)
    assert (x_back - x[:50]).abs().max() < 1e-4


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_lipschitz_bound_after_load_state_dict_and_hand_edits(mode):
    torch.manual_seed(0)
    source = fl.ResidualBlock(2, hidden=16, coeff=0.8)
    with torch.no_grad():  # weights far above the cap, with stale power-iteration vectors
        for layer in source.spectral_layers():
            layer.weight.add_(3 * torch.randn_like(layer.weight))
    block = fl.ResidualBlock(2, hidden=16, coeff=0.8).train(mode == "train")
    block.load_state_dict(source.state_dict())
    tol = 1e-5 if mode == "eval" else 1e-2
    block(torch.zeros(1, 2))
    assert max(_norms(fl.Flow(fl.Compose(block), fl.StandardNormal(2)))) <= 0.8 * (1 + tol)
    with torch.no_grad():  # an edit by hand: a new direction, 20 times the old norm
        for layer in block.spectral_layers():
            layer.weight.add_(20 * torch.randn_like(layer.weight))
    block(torch.zeros(1, 2))
    assert max(_norms(fl.Flow(fl.Compose(block), fl.StandardNormal(2)))) <= 0.8 * (1 + tol)


@pytest.mark.parametrize("mode", ["series", "roulette"])
def test_stochastic_modes(mode):
    block = _block(ladj=mode, terms=3).double()
    x = torch.tensor([[0.3, -0.2]], dtype=f64).expand(10, 2)  # one point, 10 probes per call
    block.generator = torch.Generator().manual_seed(2)
    with torch.no_grad():  # the roulette shares its number of terms within a call: average over calls
        l = torch.stack([block(x)[1].mean() for _ in range(1500)])
    exact = autograd_ladj(lambda v: v + block.g(v), x[:1])
    se = float(l.std()) / math.sqrt(len(l))
    if mode == "roulette":
        assert abs(float(l.mean()) - float(exact)) < 4 * se
    else:
        with torch.no_grad():
            jac = fl.numerics.jacobian(block.g, x[:1])[0]
        truncated = sum((-1) ** (k + 1) / k * torch.trace(torch.linalg.matrix_power(jac, k)) for k in range(1, 4))
        assert abs(float(l.mean()) - float(truncated)) < 4 * se


# ------------------------------------------------------------------------------------------
# Planar and Sylvester
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("u_scale", [-4.0, -0.5, 0.5, 3.0])
def test_planar_contract_both_branches(u_scale):
    t = fl.Planar(2)
    with torch.no_grad():
        t.w.copy_(torch.tensor([1.2, -0.7]))
        t.u.copy_(u_scale * t.w / t.w.norm() ** 2 + torch.tensor([0.3, 0.4]))
        t.b.fill_(0.3)
    s = float(t.w.detach() @ t.u_hat().detach())
    assert s > -1
    assert (s < 0) == (u_scale < 0)
    z = torch.linspace(-3, 3, 12)[:, None] * torch.tensor([[1.0, 0.4]])  # both signs of w^T z + b
    check_transform(t, z)


def test_planar_flow_density_integrates_to_one():
    torch.manual_seed(1)
    flow = fl.Flow(shaken(fl.PlanarFlow(2, layers=3), scale=0.8), fl.StandardNormal(2)).double()
    assert abs(density_integral(flow, lim=9, n=300) - 1) < 2e-3


def test_sylvester_orthogonal_q_and_ladj():
    torch.manual_seed(0)
    t = shaken(fl.Sylvester(3, m=2), scale=0.7).double()
    q = t.q()
    assert torch.allclose(q.T @ q, torch.eye(2, dtype=f64), atol=1e-12)
    z = 2 * torch.randn(6, 3, dtype=f64)
    x, ladj = t.inverse(z)
    assert torch.allclose(ladj, autograd_ladj(t.inverse, z), atol=1e-10)
    with pytest.raises(NotImplementedError, match="reverse KL"):
        t(x)
    with pytest.raises(ValueError, match="no log_prob of data"):  # the same error is a ValueError
        fl.Flow(fl.Compose(t), fl.StandardNormal(3)).double().log_prob(x)
    # gradients reach every parameter in the explicit direction
    flow = fl.Flow(fl.Compose(t), fl.StandardNormal(3)).double()
    loss = fl.reverse_kl(flow, lambda v: -0.5 * (v**2).sum(-1), 64)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in t.parameters())


def test_sylvester_starts_at_identity():
    t = fl.Sylvester(2)
    z = torch.randn(5, 2)
    x, ladj = t.inverse(z)
    assert torch.equal(x, z) and torch.equal(ladj, torch.zeros(5))


# ------------------------------------------------------------------------------------------
# energies
# ------------------------------------------------------------------------------------------

def test_energy_log_z():
    from flowlab.targets.energies import SCALE, energy_log_z

    assert abs(energy_log_z("U1") - 1.8775) < 5e-5
    for name, width in (("U2", 0.4), ("U3", 0.7), ("U4", 0.75)):
        assert abs(energy_log_z(name) - math.log(2 * math.pi * SCALE * width)) < 1e-9
        assert fl.targets.LOG_Z[name] == energy_log_z(name)
    box = ((-12, 12), (-8, 6))
    lz = fl.targets.LOG_Z["U3"]
    mass = density_integral(lambda z: fl.targets.DENSITIES["U3"](z) - lz, lim=box, n=600)
    assert abs(mass - 1) < 2e-3
