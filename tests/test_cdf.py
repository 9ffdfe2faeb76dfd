"""flowlab.numerics.cdf against closed forms: Gaussian and mixture CDFs and quantiles, the
generalised inverse at atoms and flats, PCHIP's monotonicity, and the Knothe-Rosenblatt map
of a Gaussian (linear: the inverse Cholesky factor), of the banana and of a 2-D mixture."""

from __future__ import annotations

import pytest
import torch

import flowlab as fl
from flowlab.numerics import cdf_table, generalized_inverse, knothe_rosenblatt, pchip, quantile

f64 = torch.float64
Phi, Phi_inv = torch.special.ndtr, torch.special.ndtri


def test_cdf_table_is_phi_and_mass_is_sqrt_two_pi():
    grid = torch.linspace(-9, 9, 181, dtype=f64)
    F, M = cdf_table(lambda t: 3.0 * torch.exp(-(t**2) / 2), grid)  # unnormalised on purpose
    assert (F - Phi(grid)).abs().max() < 1e-12
    assert abs(float(M) - 3.0 * (2 * torch.pi) ** 0.5) < 1e-10
    assert F[0] == 0 and F[-1] == 1


def test_cdf_table_batch_of_densities_matches_mixture_cdf():
    grid = torch.linspace(-10, 10, 201, dtype=f64)
    locs = torch.tensor([-1.0, 0.5, 2.0], dtype=f64)[:, None, None]
    F, _ = cdf_table(lambda t: torch.exp(-((t - locs) ** 2) / 2), grid)
    assert F.shape == (3, 201)
    assert (F - Phi(grid - locs[:, :, 0])).abs().max() < 1e-12
    # a two-component mixture against its closed-form CDF
    Fm, _ = cdf_table(lambda t: fl.targets.mixture_1d_log_prob(t.reshape(-1, 1)).exp().reshape(t.shape), grid)
    assert (Fm - fl.targets.mixture_1d_cdf(grid[:, None])).abs().max() < 1e-10


def test_pchip_reproduces_lines_and_preserves_monotonicity():
    xp = torch.tensor([0.0, 0.3, 1.0, 1.5, 3.0], dtype=f64)
    x = torch.linspace(-1, 4, 501, dtype=f64)
    assert (pchip(x, xp, 2 * xp - 1) - (2 * x.clamp(0, 3) - 1)).abs().max() < 1e-14
    steps = torch.tensor([0.0, 0.0, 0.9, 0.9, 1.0], dtype=f64)
    y = pchip(x, xp, steps)
    assert (y[1:] >= y[:-1] - 1e-15).all() and y.min() >= 0 and y.max() <= 1
    flat = (x >= 0.0) & (x <= 0.3)
    assert (y[flat] == 0).all()  # a flat stretch stays flat
    # smooth data: small error, shrinking with the cell width
    errs = []
    for n in (41, 81, 161):
        g = torch.linspace(-5, 5, n, dtype=f64)
        errs.append(float((pchip(x, g, Phi(g)) - Phi(x.clamp(-5, 5))).abs().max()))
    assert errs[2] < 1e-5 and errs[2] < errs[1] / 4 < errs[0] / 16


def test_pchip_batched_rows():
    xp = torch.linspace(-4, 4, 81, dtype=f64)
    shifts = torch.tensor([[-1.0], [0.0], [1.5]], dtype=f64)
    x = torch.randn(3, 10, dtype=f64, generator=torch.Generator().manual_seed(0))
    y = pchip(x, xp, xp + shifts)
    assert (y - (x.clamp(-4, 4) + shifts)).abs().max() < 1e-13


def test_generalized_inverse_with_an_atom_and_a_flat():
    # 0.3 at an atom at 0, the rest N(0, 1) scaled by 0.7
    F = lambda x: 0.7 * Phi(x) + 0.3 * (x >= 0).to(x.dtype)  # noqa: E731
    u = torch.tensor([0.1, 0.35, 0.36, 0.5, 0.65, 0.9], dtype=f64)
    q = generalized_inverse(F, u, -10.0, 10.0)
    want = torch.where(u <= 0.35, Phi_inv(u / 0.7), torch.where(u <= 0.65, 0.0, Phi_inv((u - 0.3) / 0.7)))
    assert (q - want).abs().max() < 1e-12
    # uniform on [0, 1] u [2, 3]: F is flat at 1/2 on [1, 2]; the inf is the left end
    G = lambda x: (x.clamp(0, 1) + (x - 2).clamp(0, 1)) / 2  # noqa: E731
    q = generalized_inverse(G, torch.tensor([0.25, 0.5, 0.5 + 1e-9, 1.0], dtype=f64), -1.0, 4.0)
    assert torch.allclose(q, torch.tensor([0.5, 1.0, 2.0 + 2e-9, 3.0], dtype=f64), atol=1e-11)


def test_generalized_inverse_samples_have_the_target_cdf():
    # F^{-1}(U) ~ F for the atom-plus-normal law: frequencies within 4 standard errors
    F = lambda x: 0.7 * Phi(x) + 0.3 * (x >= 0).to(x.dtype)  # noqa: E731
    u = torch.rand(20000, dtype=f64, generator=torch.Generator().manual_seed(1))
    x = generalized_inverse(F, u, -10.0, 10.0)
    for t in (-1.0, -1e-9, 0.0, 0.8):
        p = float(F(torch.tensor(t, dtype=f64)))
        assert abs(float((x <= t).double().mean()) - p) < 4 * (p * (1 - p) / len(u)) ** 0.5 + 1e-12


def test_quantile_is_phi_inverse_and_inverts_the_table():
    grid = torch.linspace(-9, 9, 361, dtype=f64)
    F, _ = cdf_table(lambda t: torch.exp(-(t**2) / 2), grid)
    u = torch.linspace(1e-4, 1 - 1e-4, 99, dtype=f64)
    q = quantile(u, grid, F)
    assert (q - Phi_inv(u)).abs().max() < 3e-5  # PCHIP of F on cells of 0.05: error O(h^3)
    assert (pchip(q, grid, F) - u).abs().max() < 1e-12


def _gauss(L: torch.Tensor, mu: torch.Tensor):
    P = torch.cholesky_inverse(L)
    return lambda x: -0.5 * (((x - mu) @ P) * (x - mu)).sum(-1)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_kr_map_of_a_gaussian_is_the_inverse_cholesky_factor(order):
    Sigma = torch.tensor([[1.5, -0.9], [-0.9, 1.0]], dtype=f64)
    mu = torch.tensor([0.3, -0.5], dtype=f64)
    L = torch.linalg.cholesky(Sigma)
    x = mu + torch.randn(200, 2, dtype=f64, generator=torch.Generator().manual_seed(2)) @ L.T
    x = x[(x - mu).abs().max(1).values < 5]
    z = knothe_rosenblatt(_gauss(L, mu), x, ((-8, 8), (-8, 8)), order=order, cells=128)
    perm = list(order)  # lower triangular in the chosen order
    Lp = torch.linalg.cholesky(Sigma[perm][:, perm])
    want = torch.linalg.solve_triangular(Lp, (x - mu)[:, perm].T, upper=False).T
    out = torch.empty_like(want)
    out[:, perm] = want
    assert (z - out).abs().max() < 1e-6


@pytest.mark.slow
def test_kr_map_of_the_banana_and_of_the_mixture_match_closed_forms():
    T = fl.targets
    x = T.rosenbrock(500, seed=3).double()
    x = x[(x[:, 0].abs() < 4.5) & (x[:, 1] < 12)]
    z = knothe_rosenblatt(T.rosenbrock_log_prob, x, ((-7, 7), (-4, 26)), cells=256)
    assert (z - T.rosenbrock_kr(x)).abs().max() < 1e-5
    y = T.three_bumps(500, seed=4).double()
    for order in [(0, 1), (1, 0)]:
        err = [float((knothe_rosenblatt(T.three_bumps_log_prob, y, ((-7, 7), (-7, 7)), order=order, cells=c)
                       - T.three_bumps_kr(y, order)).abs().max()) for c in (128, 256)]
        assert err[1] < 1e-4 and err[1] < err[0] / 3  # interpolation error, falling about as h^3


@pytest.mark.slow
def test_kr_jacobian_is_triangular_and_carries_the_density():
    """dz_first/dx_second = 0, and log p(x) = log phi(z) + log|det dz/dx| (central differences)."""
    T = fl.targets
    x = torch.tensor([[-0.7, 0.1], [0.4, -0.6], [1.2, 0.9]], dtype=f64)
    h = 1e-4
    box = ((-7, 7), (-7, 7))
    J = torch.zeros(3, 2, 2, dtype=f64)
    for k in range(2):
        e = torch.zeros(2, dtype=f64)
        e[k] = h
        J[:, :, k] = (knothe_rosenblatt(T.three_bumps_log_prob, x + e, box, cells=256)
                      - knothe_rosenblatt(T.three_bumps_log_prob, x - e, box, cells=256)) / (2 * h)
    assert J[:, 0, 1].abs().max() == 0  # z1 never sees x2
    assert (J[:, 0, 0] > 0).all() and (J[:, 1, 1] > 0).all()
    z = knothe_rosenblatt(T.three_bumps_log_prob, x, box, cells=256)
    log_phi = -0.5 * (z**2).sum(1) - torch.log(torch.tensor(2 * torch.pi, dtype=f64))
    lhs = T.three_bumps_log_prob(x)
    # the slopes of the interpolant are accurate to O(h^2) only (cells of 0.055 here)
    assert (lhs - (log_phi + torch.log(J[:, 0, 0] * J[:, 1, 1]))).abs().max() < 1e-2


def test_bad_input_raises_value_errors():
    grid = torch.linspace(-1, 1, 11, dtype=f64)
    with pytest.raises(ValueError, match="strictly increasing"):
        cdf_table(torch.exp, grid.flip(0))
    with pytest.raises(ValueError, match="negative"):
        cdf_table(lambda t: -torch.ones_like(t), grid)
    with pytest.raises(ValueError, match="widen the grid"):
        cdf_table(torch.zeros_like, grid)
    with pytest.raises(ValueError, match="F\\(upper\\) < u"):
        generalized_inverse(Phi, torch.tensor([0.99], dtype=f64), -1.0, 1.0)
    with pytest.raises(ValueError, match="fp must be"):
        pchip(grid, grid, [0.0] * 11)
    with pytest.raises(ValueError, match="len\\(grid\\)"):
        quantile(torch.tensor([0.5], dtype=f64), grid, torch.zeros(5, dtype=f64))
    log_p = _gauss(torch.eye(2, dtype=f64), torch.zeros(2, dtype=f64))
    with pytest.raises(ValueError, match="outside box"):
        knothe_rosenblatt(log_p, torch.tensor([[9.0, 0.0]], dtype=f64), ((-8, 8), (-8, 8)))
    with pytest.raises(ValueError, match="order"):
        knothe_rosenblatt(log_p, torch.zeros(1, 2, dtype=f64), ((-8, 8), (-8, 8)), order=(0, 0))
    with pytest.raises(ValueError, match="box"):
        knothe_rosenblatt(log_p, torch.zeros(1, 2, dtype=f64), ((-8, 8), (8, -8)))
