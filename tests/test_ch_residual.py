"""The numerical claims of the chapter on residual flows, as tests (the planar fold, the iteration
bound, the matrix determinant lemma), and its exercise checkers (they accept the right answers,
name the typical mistakes and cannot be fooled by the library's estimators)."""

from __future__ import annotations

import math

import torch

import flowlab as fl
from flowlab.exercises import residual as ex
from flowlab.numerics import fixed_point, logdet_exact, logdet_series
from flowlab.testing import density_integral

f64 = torch.float64


# ------------------------------------------------------------------------------------------
# claims of the chapter
# ------------------------------------------------------------------------------------------

def _planar_density(u, w=torch.tensor([1.0, 0.5], dtype=f64), b=0.0):
    def log_p(x):
        h = torch.tanh(x @ w + b)
        det = 1 + (1 - h**2) * (w @ u)
        return fl.StandardNormal(2).double().log_prob(x + h[:, None] * u) + torch.log(det.abs())
    return log_p


def test_a_folded_planar_map_has_mass_above_one_and_the_constraint_restores_it():
    w = torch.tensor([1.0, 0.5], dtype=f64)
    fold = -3.0 * w / (w @ w)
    assert density_integral(_planar_density(fold), lim=8, n=400) > 1.5
    layer = fl.Planar(2).double()
    with torch.no_grad():
        layer.w.copy_(w)
        layer.u.copy_(fold)
    u_hat = layer.u_hat().detach()
    assert float(w @ u_hat) > -1
    assert abs(density_integral(_planar_density(u_hat), lim=8, n=400) - 1) < 1e-3


def test_the_a_priori_bound_holds_and_is_tight_for_a_rotation():
    g, z = ex.iteration_block(), ex.ITERATION_POINT
    assert abs(float(g(z).norm()) - 1) < 1e-12  # |x1 - x0| = 1 from x0 = z
    sol = fixed_point(lambda x: z - g(x), z.clone(), tol=1e-7)
    bound = math.ceil(math.log(1e-7) / math.log(0.9))
    assert bound <= sol.iterations <= bound + 2



# ------------------------------------------------------------------------------------------
# checkers
# ------------------------------------------------------------------------------------------

def test_check_planar_det(capsys):
    w, u, b, z = (1.0, 2.0), (0.5, -1.0), 0.5, (0.3, 0.1)
    a = w[0] * z[0] + w[1] * z[1] + b
    wu = w[0] * u[0] + w[1] * u[1]
    right = 1 + (1 - math.tanh(a) ** 2) * wu
    assert ex.check_planar_det(right, False)
    assert not ex.check_planar_det(None, None)
    assert "No answer" in capsys.readouterr().out
    assert not ex.check_planar_det(1 + wu, False)
    assert "derivative" in capsys.readouterr().out
    assert not ex.check_planar_det(1 + math.tanh(a) * wu, False)
    assert "h'(a) = 1 - tanh" in capsys.readouterr().out
    assert not ex.check_planar_det(right, True)
    assert "folds" in capsys.readouterr().out
    assert not ex.check_planar_det(2.0, False)


def test_check_iterations(capsys):
    assert ex.check_iterations(153)
    assert not ex.check_iterations(132)
    assert "1 - c" in capsys.readouterr().out
    assert not ex.check_iterations(152)
    assert "round" in capsys.readouterr().out
    assert not ex.check_iterations(200)
    assert not ex.check_iterations(None)


def _solution(g, x, v, terms):
    x = x.detach().requires_grad_(True)
    gx = g(x)
    w, total = v, torch.zeros(len(x), dtype=x.dtype)
    for k in range(1, terms + 1):
        w = torch.autograd.grad(gx, x, w, retain_graph=True)[0]
        total = total + (-1) ** (k + 1) / k * (w * v).sum(-1)
    return total


def _variant(sign=True, inverse_k=True, late=False):
    def series(g, x, v, terms):
        x = x.detach().requires_grad_(True)
        gx = g(x)
        w, total = v, torch.zeros(len(x), dtype=x.dtype)
        for k in range(1, terms + 1):
            if not late:
                w = torch.autograd.grad(gx, x, w, retain_graph=True)[0]
            total = total + ((-1) ** (k + 1) if sign else 1) / (k if inverse_k else 1) * (w * v).sum(-1)
            if late:  # the VJP after the term: term k gets v^T J^(k-1) v
                w = torch.autograd.grad(gx, x, w, retain_graph=True)[0]
        return total
    return series


def test_check_series_accepts_the_solution_and_names_mistakes(capsys):
    assert ex.check_series(_solution)
    assert "Correct" in capsys.readouterr().out
    assert not ex.check_series(_variant(sign=False))
    assert "alternates" in capsys.readouterr().out
    assert not ex.check_series(_variant(inverse_k=False))
    assert "1/k" in capsys.readouterr().out
    assert not ex.check_series(_variant(late=True))
    assert "J^(k-1)" in capsys.readouterr().out


def test_check_series_cannot_be_fooled_by_the_library(capsys):
    # the library's estimator draws its own probes, and the exact log-det is not the truncated series
    assert not ex.check_series(lambda g, x, v, terms: logdet_series(g, x, terms)[1])
    assert not ex.check_series(lambda g, x, v, terms: logdet_exact(g, x)[1])
    assert "exact log-det" in capsys.readouterr().out
    assert not ex.check_series(lambda g, x, v, terms: None)
    assert "None" in capsys.readouterr().out


def test_check_series_survives_errors(capsys):
    def broken(g, x, v, terms):
        raise RuntimeError("boom")

    assert not ex.check_series(broken)
    assert "boom" in capsys.readouterr().out
    assert not ex.check_series(lambda g, x, v, terms: torch.zeros(3))
    assert "shape" in capsys.readouterr().out
