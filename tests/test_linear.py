"""The linear layers (flowlab.linear) beyond the contract that tests/test_contract.py checks for
every transform: the start at the identity, the structure of each parametrisation (what it can
and cannot reach), ActNorm's visible initialisation state, the mixing choices, the Glow recipe,
and bad settings.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

import flowlab as fl
from flowlab.testing import check_transform, shaken

f64 = torch.float64
D = 5


@pytest.fixture(scope="module")
def x():
    return 2.0 * torch.randn(16, D, generator=torch.Generator().manual_seed(0), dtype=f64)


@pytest.mark.parametrize("make", [lambda: fl.Triangular(D), lambda: fl.LU(D, rotation=False), lambda: fl.Linear(D),
                                  lambda: fl.ActNorm(D)])
def test_starts_at_the_identity(make, x):
    t = make().double()
    z, ladj = t.inverse(x)  # the inverse never initialises ActNorm
    assert torch.equal(z, x) and torch.equal(ladj, torch.zeros(len(x), dtype=f64))
    if not isinstance(t, fl.ActNorm):
        z, ladj = t(x)
        assert torch.equal(z, x) and torch.equal(ladj, torch.zeros(len(x), dtype=f64))


def test_lu_starts_as_a_random_rotation(x):
    t = fl.LU(D, seed=0).double()
    W = t.weight.detach()
    torch.testing.assert_close(W @ W.T, torch.eye(D, dtype=f64), atol=1e-6, rtol=0)  # float32 parameters
    assert (W - torch.eye(D, dtype=f64)).abs().max() > 0.1  # really mixing, not the identity
    assert float(t(x)[1].detach().abs().max()) < 1e-6
    assert not torch.equal(fl.LU(D, seed=0).weight, fl.LU(D, seed=1).weight)


@pytest.mark.parametrize("kind", ["Triangular", "LU"])
def test_ladj_is_the_sum_of_theta_and_the_weight_is_the_map(kind, x):
    t = shaken(fl.Triangular(D) if kind == "Triangular" else fl.LU(D, seed=2), 0.5).double()
    z, ladj = t(x)
    torch.testing.assert_close(ladj, t.log_diag.sum().expand(len(x)))
    torch.testing.assert_close(z, x @ t.weight.T + t.bias, atol=1e-12, rtol=0)
    W = t.weight.detach()
    torch.testing.assert_close(ladj[0], torch.linalg.slogdet(W).logabsdet, atol=1e-12, rtol=0)
    if kind == "Triangular":
        assert torch.equal(W, W.tril()) and torch.allclose(W.diagonal(), t.log_diag.exp())


def test_lu_factors_have_their_structure_and_the_sign_of_det_is_fixed():
    for seed in range(6):
        t = shaken(fl.LU(4, seed=seed), seed=seed, scale=1.0).double()
        lower, upper = t._factors()
        assert torch.equal(lower.diagonal(), torch.ones(4, dtype=f64)) and torch.equal(lower, lower.tril())
        assert torch.equal(upper, upper.triu())
        P = torch.eye(4, dtype=f64)[t.perm]
        torch.testing.assert_close(t.weight, P @ lower @ upper)
        want = torch.linalg.det(P) * t.sign.prod()
        assert torch.sign(torch.linalg.det(t.weight)) == want  # whatever the parameters


def test_from_matrix_reproduces_any_invertible_matrix():
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    reflection = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    A = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=f64)
    for W in (swap, reflection, A):
        t = fl.LU.from_matrix(W.double())
        torch.testing.assert_close(t.weight, W.double(), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="singular"):
        fl.LU.from_matrix(torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ValueError, match="square"):
        fl.LU.from_matrix(torch.zeros(2, 3))


def test_lu_without_permutation_cannot_reach_a_swap():
    """With P = I and s = 1, W_11 = e^theta_1 > 0 and det W > 0: the swap (det -1) is at
    Frobenius distance at least 1 (its smallest singular value), whatever the training does."""
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=f64)
    t = fl.LU(2, rotation=False).double()
    opt = torch.optim.Adam(t.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        loss = (t.weight - swap).pow(2).sum()
        loss.backward()
        opt.step()
    W = t.weight.detach()
    assert float(W[0, 0]) > 0 and float(torch.linalg.det(W)) > 0
    assert float(loss.detach().sqrt()) >= 1 - 1e-6
    # with the permutation, it is exactly reachable
    torch.testing.assert_close(fl.LU.from_matrix(swap).double().weight, swap)


def test_triangular_mle_is_the_inverse_cholesky_factor():
    """On Gaussian data the maximum-likelihood Triangular layer is L = C^-1, b = -L mean, with
    C C^T the (1/n) sample covariance: the gradient vanishes there, and L-BFGS finds it."""
    g = torch.Generator().manual_seed(0)
    A = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.4, 0.7]], dtype=f64)
    data = torch.randn(400, 3, generator=g, dtype=f64) @ A.T + torch.tensor([1.0, -2.0, 0.5], dtype=f64)
    mean = data.mean(0)
    cov = (data - mean).T @ (data - mean) / len(data)
    L_star = torch.linalg.inv(torch.linalg.cholesky(cov))
    flow = fl.Flow(fl.Triangular(3), fl.StandardNormal(3)).double()
    t = flow.transform
    opt = torch.optim.LBFGS(t.parameters(), lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -flow.log_prob(data).mean()
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(t.weight.detach(), L_star, atol=1e-7, rtol=0)
    torch.testing.assert_close(t.bias.detach(), -L_star @ mean, atol=1e-7, rtol=0)


def test_dense_and_lu_optima_form_a_rotation_orbit():
    g = torch.Generator().manual_seed(1)
    data = torch.randn(300, 2, generator=g, dtype=f64) @ torch.tensor([[1.0, 0.0], [0.9, 0.4]], dtype=f64).T
    mean = data.mean(0)
    cov = (data - mean).T @ (data - mean) / len(data)
    W_star = torch.linalg.inv(torch.linalg.cholesky(cov))
    flow = fl.Flow(fl.Linear(2), fl.StandardNormal(2)).double()
    losses = []
    for phi in torch.linspace(0, 2 * math.pi, 13, dtype=f64):
        R = torch.stack([torch.stack([phi.cos(), -phi.sin()]), torch.stack([phi.sin(), phi.cos()])])
        with torch.no_grad():
            flow.transform.weight.copy_(R @ W_star)
            flow.transform.bias.copy_(-R @ W_star @ mean)
            losses.append(float(-flow.log_prob(data).mean()))
    assert max(losses) - min(losses) < 1e-12
    with torch.no_grad():  # off the orbit the loss is higher
        flow.transform.weight.mul_(1.1)
        assert float(-flow.log_prob(data).mean()) > max(losses) + 1e-3


# ---------------------------------------------------------------------------------- ActNorm


def test_actnorm_first_batch_sets_mean_zero_variance_one_and_the_state_is_a_buffer():
    t = fl.ActNorm(3)
    assert "initialized" in dict(t.named_buffers()) and not t.initialized
    x = torch.randn(1000, 3) * torch.tensor([5.0, 0.2, 1.0]) + torch.tensor([3.0, -1.0, 0.0])
    z, ladj = t(x)
    assert bool(t.initialized)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(ladj, -x.std(0, unbiased=False).log().sum().expand(1000), atol=1e-5, rtol=0)
    before = copy.deepcopy(t.state_dict())
    t(10 * torch.randn(50, 3))  # a later batch does not initialise again
    assert all(torch.equal(before[k], v) for k, v in t.state_dict().items())
    fresh = fl.ActNorm(3)
    fresh.load_state_dict(before)  # the flag travels with the state
    assert bool(fresh.initialized)
    torch.testing.assert_close(fresh(x)[0], z)


def test_actnorm_inverse_does_not_initialise_and_small_batches_are_refused():
    t = fl.ActNorm(2)
    t.inverse(torch.randn(10, 2))
    assert not t.initialized
    with pytest.raises(ValueError, match="at least 2 rows"):
        t(torch.randn(1, 2))
    t.double()  # the flag stays a bool when the layer is cast
    assert t.initialized.dtype == torch.bool


def test_glow_trains_and_initialises_its_actnorm_layers():
    torch.manual_seed(0)
    data = fl.targets.moons(512, seed=0) @ torch.tensor([[1.0, 0.5], [0.0, 2.0]]) + 3.0
    flow = fl.Flow(fl.Glow(2, layers=2, hidden=16), fl.StandardNormal(2))
    kinds = [type(m).__name__ for m in flow.transform]
    assert kinds == ["ActNorm", "LU", "Autoregressive"] * 2
    with torch.no_grad():
        start = float(-flow.log_prob(data).mean())  # this first batch initialises the ActNorm layers
    assert all(bool(m.initialized) for m in flow.transform if isinstance(m, fl.ActNorm))
    history = fl.fit(flow, data, steps=60, lr=1e-2, batch_size=128, progress=False)
    with torch.no_grad():
        end = float(-flow.log_prob(data).mean())
    assert end < start - 0.1, (start, end, history.loss[-1])


# ---------------------------------------------------------------------------------- mixing


def test_mixing_builds_each_kind():
    assert isinstance(fl.mixing("reverse", 4), fl.Reverse)
    p = fl.mixing("permutation", 6, seed=1)
    assert type(p) is fl.Permutation and not torch.equal(p.order, fl.mixing("permutation", 6, seed=2).order)
    assert isinstance(fl.mixing("LU", 4), fl.LU)
    assert fl.mixing("none", 4) is None
    with pytest.raises(ValueError, match="'reverse', 'permutation', 'lu', 'none'"):
        fl.mixing("shuffle", 4)


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("order", [[0.5, 1.5, 2.5], [0, 0, 1], [0, 1], [[0, 1, 2]], [1, 2, 3], [True, False, True],
                                   "012", [0, float("nan"), 1]])
def test_non_permutation_orders_are_refused(order):
    with pytest.raises(ValueError, match="order"):
        fl.Permutation(3, order=order)


def test_integer_valued_float_orders_are_accepted():
    assert fl.Permutation(3, order=[2.0, 0.0, 1.0]).order.tolist() == [2, 0, 1]


@pytest.mark.parametrize("seed", ["1", 1.5, True, -1, 2**64])
def test_seeds_must_be_integers(seed):
    makers = (lambda: fl.Permutation(3, seed=seed), lambda: fl.LU(3, seed=seed), lambda: fl.Glow(3, seed=seed),
              *(lambda kind=kind: fl.mixing(kind, 3, seed) for kind in ("reverse", "permutation", "lu", "none")))
    for make in makers:
        with pytest.raises(ValueError, match="seed must be an integer"):
            make()


def test_seed_none_draws_fresh_layers():
    assert not torch.equal(fl.LU(6, seed=None).weight, fl.LU(6, seed=None).weight)
    assert fl.Permutation(3, seed=None).order.sort().values.tolist() == [0, 1, 2]


@pytest.mark.parametrize("make", [fl.Permutation, fl.Reverse, fl.Triangular, fl.LU, fl.Linear, fl.ActNorm, fl.Glow])
def test_features_below_one_are_refused(make):
    for bad in (0, -2, 2.5):
        with pytest.raises(ValueError, match="features"):
            make(bad)


def test_glow_needs_two_features():
    with pytest.raises(ValueError, match="features >= 2"):
        fl.Glow(1)


def test_lu_forward_is_the_same_for_small_and_large_batches():
    """Batches with fewer rows than features take the two-product path, larger ones build W."""
    t = shaken(fl.LU(8, seed=1), 0.5, seed=2)
    x = torch.randn(12, 8, generator=torch.Generator().manual_seed(3), dtype=f64)
    check_transform(t, x[:3].float(), atol=1e-8, rtol=1e-8)
    with torch.no_grad():
        t64 = copy.deepcopy(t).double()
        torch.testing.assert_close(t64(x[:3])[0], t64(x)[0][:3], atol=1e-12, rtol=0)
