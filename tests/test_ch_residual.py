"""The numerical claims of the chapter on residual flows, as tests (the planar fold, the iteration
bound, the matrix determinant lemma), and its exercise checkers (they accept the right answers,
name the typical mistakes and cannot be fooled by the library's estimators)."""

from __future__ import annotations

import math

import torch

import flowlab as fl
from flowlab.exercises import residual as ex
from flowlab.numerics import fixed_point
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
