"""flowlab.numerics against closed forms: roots, implicit gradients, quadrature, exact log-dets."""

from __future__ import annotations

import math

import pytest
import torch

from flowlab.numerics import (
    as_box,
    bisection,
    box_grid,
    cell_nodes,
    gauss_legendre,
    implicit_inverse,
    jacobian,
    jacobian_ladj,
    jacobian_rows,
    legendre_nodes,
    probes,
    trace_exact,
)

f64 = torch.float64


# ---------------------------------------------------------------- bisection


def test_bisection_matches_closed_form_and_expands_the_bracket():
    y = torch.tensor([-500.0, -3.0, -1e-3, 0.0, 0.5, 7.0, 1e4], dtype=f64)
    x = bisection(torch.sinh, y, lower=0.0, upper=1.0)  # most roots lie outside [0, 1]
    assert torch.allclose(x, torch.asinh(y), atol=1e-13, rtol=0)
    assert not x.requires_grad


def test_bisection_elementwise_bounds_and_tolerance():
    y = torch.tensor([[1.0, 2.0], [3.0, 10.0]], dtype=f64)
    lower = torch.zeros(2, 2, dtype=f64)
    upper = torch.tensor([[1.0, 2.0], [2.0, 3.0]], dtype=f64)
    f = lambda x: x**3 + x  # noqa: E731
    x = bisection(f, y, lower, upper, tol=1e-3)
    exact = bisection(f, y, lower, upper)
    assert torch.allclose(f(exact), y, atol=1e-12)
    assert (x - exact).abs().max() <= 0.5e-3


def test_bisection_float32_stops_at_machine_precision():
    y = torch.tensor([-1e4, 1e-6, 123.456, 1e5], dtype=torch.float32)
    x = bisection(lambda v: 2 * v, y, -1.0, 1.0)
    assert x.dtype == torch.float32
    assert torch.allclose(x, y / 2, rtol=1e-6, atol=1e-6)


def test_bisection_cannot_bracket_raises():
    with pytest.raises(ValueError, match="could not bracket"):
        bisection(torch.tanh, torch.tensor([0.5, 2.0], dtype=f64))  # tanh never reaches 2
    with pytest.raises(ValueError, match="could not bracket"):
        bisection(lambda x: -x, torch.tensor([3.0], dtype=f64), 0.0, 1.0)  # decreasing


def test_bisection_reports_non_convergence_and_bad_input():
    y = torch.tensor([0.3], dtype=f64)
    with pytest.raises(ValueError, match="did not converge"):
        bisection(torch.sinh, y, -1.0, 1.0, max_iter=5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        bisection(torch.sinh, torch.tensor([float("nan")], dtype=f64))
    with pytest.raises(ValueError, match="f returned NaN"):
        bisection(lambda x: x.log(), torch.tensor([0.0], dtype=f64), -2.0, -1.0)
    with pytest.raises(ValueError, match="lower must not exceed upper"):
        bisection(torch.sinh, y, 1.0, -1.0)
    with pytest.raises(ValueError, match="tol"):
        bisection(torch.sinh, y, tol=0.0)
    with pytest.raises(ValueError, match="floating point"):
        bisection(torch.sinh, [0.3])


# ---------------------------------------------------------------- implicit gradients


def _sinh_problem():
    """f(x) = theta * sinh(x) + beta, whose inverse is asinh((y - beta) / theta)."""
    theta = torch.tensor([1.5, 0.7, 3.0], dtype=f64, requires_grad=True)
    beta = torch.tensor([0.2, -1.0, 0.5], dtype=f64, requires_grad=True)
    y = torch.tensor([2.0, -3.0, 40.0], dtype=f64, requires_grad=True)
    return theta, beta, y, (lambda x: theta * torch.sinh(x) + beta), (lambda x: theta * torch.cosh(x))


@pytest.mark.parametrize("with_derivative", [True, False])
def test_implicit_gradients_match_closed_form(with_derivative):
    theta, beta, y, f, df = _sinh_problem()
    root = bisection(f, y)
    x = implicit_inverse(f, y, root, df if with_derivative else None)
    assert torch.equal(x.detach(), root)  # the value is the root, untouched
    w = torch.tensor([0.3, -1.2, 2.0], dtype=f64)
    got = torch.autograd.grad((w * x).sum(), (y, theta, beta))
    closed = torch.asinh((y - beta) / theta)
    want = torch.autograd.grad((w * closed).sum(), (y, theta, beta))
    for g, e in zip(got, want):
        assert torch.allclose(g, e, atol=1e-12, rtol=1e-10)
    # dx/dy = 1 / f'(x) and dx/dtheta = -sinh(x) / f'(x), written out
    xs = closed.detach()
    assert torch.allclose(got[0], w / (theta * torch.cosh(xs)), atol=1e-12)
    assert torch.allclose(got[1], -w * torch.sinh(xs) / (theta * torch.cosh(xs)), atol=1e-12)


def test_implicit_inverse_gradcheck():
    def solve(y, theta):
        f = lambda x: theta * x + x**3  # noqa: E731
        return implicit_inverse(f, y, bisection(f, y))

    y = torch.tensor([-2.0, 0.1, 5.0], dtype=f64, requires_grad=True)
    theta = torch.tensor([0.5, 1.0, 2.0], dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(solve, (y, theta), eps=1e-6, atol=1e-7)


def test_implicit_inverse_tiny_derivative_stays_finite():
    y = torch.zeros(1, dtype=f64, requires_grad=True)
    x = implicit_inverse(lambda v: v**3, y, torch.zeros(1, dtype=f64), lambda v: 3 * v**2)
    assert x.item() == 0.0 and torch.isfinite(torch.autograd.grad(x.sum(), y)[0]).all()


# ---------------------------------------------------------------- quadrature


def test_legendre_nodes():
    for n in (1, 2, 5, 32):
        t, w = legendre_nodes(n, f64)
        assert t.shape == w.shape == (n,)
        assert (w > 0).all() and math.isclose(float(w.sum()), 2.0, abs_tol=1e-13)
        assert (t.abs() < 1).all() and (t.diff() > 0).all()
    with pytest.raises(ValueError):
        legendre_nodes(0)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_gauss_legendre_exact_for_polynomials(n):
    degree = 2 * n - 1
    a = torch.tensor([-1.0, 0.5, 2.0], dtype=f64)
    b = torch.tensor([1.5, 3.0, -1.0], dtype=f64)  # b < a too
    q = gauss_legendre(lambda t: t**degree + 2, a, b, n)
    exact = (b ** (degree + 1) - a ** (degree + 1)) / (degree + 1) + 2 * (b - a)
    assert torch.allclose(q, exact, atol=1e-12, rtol=1e-12)


def test_gauss_legendre_elementwise_with_gradients():
    theta = torch.tensor([[0.5, -1.0], [2.0, 0.1]], dtype=f64, requires_grad=True)
    b = torch.tensor([[1.0, 2.0], [-0.5, 3.0]], dtype=f64, requires_grad=True)
    q = gauss_legendre(lambda t: torch.exp(theta * t), 0.0, b, n=20)
    exact = torch.expm1(theta * b) / theta
    assert torch.allclose(q, exact, atol=1e-13, rtol=1e-13)
    got = torch.autograd.grad(q.sum(), (theta, b))
    want = torch.autograd.grad(exact.sum(), (theta, b))
    for g, e in zip(got, want):
        assert torch.allclose(g, e, atol=1e-12, rtol=1e-12)
    assert torch.allclose(got[1], torch.exp(theta * b).detach(), atol=1e-12)  # d/db = f(b)


def test_gauss_legendre_converges_for_an_analytic_integrand():
    b = torch.tensor(10.0, dtype=f64)
    errors = [abs(float(gauss_legendre(torch.cos, 0.0, b, n)) - math.sin(10)) for n in (4, 8, 16)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6


def test_gauss_legendre_bad_integrand_shape():
    with pytest.raises(ValueError, match="shape"):
        gauss_legendre(lambda t: t.sum(0), 0.0, torch.ones(3, dtype=f64), 4)


# ---------------------------------------------------------------- exact log-determinants


def test_jacobian_ladj_linear_map_and_its_gradient():
    A = torch.tensor([[2.0, 1.0, 0.0], [0.5, -3.0, 1.0], [0.0, 1.0, 1.5]], dtype=f64, requires_grad=True)
    x = torch.randn(4, 3, dtype=f64)
    ladj = jacobian_ladj(lambda v: v @ A.T, x)
    assert torch.allclose(ladj, torch.linalg.slogdet(A).logabsdet.expand(4), atol=1e-12)
    (grad,) = torch.autograd.grad(ladj.sum(), A)
    assert torch.allclose(grad, 4 * torch.linalg.inv(A).T, atol=1e-12)  # d log|det A| / dA = A^{-T}


def test_jacobian_ladj_elementwise_map_and_gradient_in_x():
    x = torch.randn(5, 3, dtype=f64, requires_grad=True)
    ladj = jacobian_ladj(torch.tanh, x)
    closed = torch.log1p(-torch.tanh(x) ** 2).sum(-1)
    assert torch.allclose(ladj, closed, atol=1e-12)
    got = torch.autograd.grad(ladj.sum(), x)[0]
    want = torch.autograd.grad(closed.sum(), x)[0]
    assert torch.allclose(got, want, atol=1e-10)


def test_jacobian_of_a_transform_and_bad_input():
    import flowlab as fl

    t = fl.MAF(3, hidden=(8,)).double()
    x = torch.randn(4, 3, dtype=f64)
    J = jacobian(t, x)
    assert J.shape == (4, 3, 3)
    assert torch.allclose(J.triu(1), torch.zeros_like(J))  # autoregressive: lower triangular
    assert torch.allclose(jacobian_ladj(t, x), t(x)[1], atol=1e-12)
    with torch.no_grad():
        assert not jacobian_ladj(t, x).requires_grad
    with pytest.raises(ValueError, match=r"\(batch, D\)"):
        jacobian(t, torch.zeros(3, dtype=f64))
    with pytest.raises(ValueError, match="fn must map"):
        jacobian(lambda v: v[:, :2], x)


# ---------------------------------------------------------------- the grid builder


@pytest.mark.parametrize("nodes", [1, 3, 8])
def test_box_grid_integrates_polynomials_of_its_degree_exactly(nodes):
    box = ((-1.0, 2.0), (0.5, 3.0))
    x, w = box_grid(box, cells=(3, 2), nodes=nodes)
    assert x.shape == ((3 * nodes) * (2 * nodes), 2) and w.shape == (len(x),) and x.dtype == f64
    k = 2 * nodes - 1  # the largest degree the rule integrates exactly in each coordinate
    exact = (2.0 ** (k + 1) - (-1.0) ** (k + 1)) / (k + 1) * (3.0**2 - 0.5**2) / 2
    assert float((w * x[:, 0] ** k * x[:, 1]).sum()) == pytest.approx(exact, rel=1e-12)
    assert float(w.sum()) == pytest.approx(3.0 * 2.5, rel=1e-12)


def test_box_grid_cell_centres_order_dtype_and_device():
    x, w = box_grid(2.0, cells=4, dtype=torch.float32, device="cpu")  # [-2, 2]^2, cells of width 1
    assert x.dtype == torch.float32 and w.dtype == torch.float32
    grid = x.reshape(4, 4, 2)
    assert grid[:, 0, 0].tolist() == [-1.5, -0.5, 0.5, 1.5]  # the first coordinate along the first axis
    assert grid[0, :, 1].tolist() == [-1.5, -0.5, 0.5, 1.5]
    assert torch.equal(w, torch.ones(16))
    # a midpoint-rule integral of a smooth density converges like h^2
    normal = lambda v: torch.exp(-0.5 * (v**2).sum(-1)) / (2 * math.pi)  # noqa: E731
    errors = [abs(float((w * normal(x)).sum()) - 1) for x, w in (box_grid(8.0, cells=n) for n in (20, 40))]
    assert errors[1] < errors[0] / 3.5


def test_cell_nodes_and_as_box():
    x, w = cell_nodes(torch.tensor([0.0, 1.0, 3.0], dtype=f64), nodes=2)
    assert float(w.sum()) == pytest.approx(3.0) and float((w * x**3).sum()) == pytest.approx(81 / 4)
    assert as_box(3) == ((-3.0, 3.0), (-3.0, 3.0))
    assert as_box((0, 1)) == ((0.0, 1.0), (0.0, 1.0))
    assert as_box([[0, 1], [2, 5]]) == ((0.0, 1.0), (2.0, 5.0))
    for bad in ("box", (1, 0), ((0, 1),), ((0, 1), (0, math.inf)), True):
        with pytest.raises(ValueError, match="box"):
            as_box(bad)


# ---------------------------------------------------------------- jacobian rows, traces and probes


def test_jacobian_rows_of_a_non_square_output_and_the_trace():
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=f64, requires_grad=True)
    out = torch.stack([x[:, 0] * x[:, 1], x[:, 1] ** 2, x[:, 0]], dim=1)
    jac = jacobian_rows(out, x)
    assert jac.shape == (2, 3, 2)
    assert jac[1].tolist() == [[-1.0, 3.0], [0.0, -2.0], [1.0, 0.0]]
    square = out[:, :2]
    assert torch.allclose(trace_exact(square, x), x[:, 1] + 2 * x[:, 1])


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_probes_have_identity_second_moment(kind):
    v = probes(torch.zeros(200000, 2, dtype=f64), kind, torch.Generator().manual_seed(0))
    second = v.T @ v / len(v)
    assert torch.allclose(second, torch.eye(2, dtype=f64), atol=0.02)
    with pytest.raises(ValueError, match="rademacher"):
        probes(v, "uniform")
