r"""Iterative and reference numerics, each checked against a closed form in the tests.

The package re-exports the public names of its modules, one concept each:

* :mod:`.roots`: :func:`bisection` solves :math:`f(x) = y` for an increasing :math:`f`,
  elementwise; :func:`implicit_inverse` gives a root computed without a graph the gradients of
  the implicit function theorem;
* :mod:`.quadrature`: Gauss-Legendre nodes (:func:`legendre_nodes`), :func:`gauss_legendre` over
  tensors of bounds, and :func:`box_grid`, the one builder of grids on a 2-D box (cell centres or
  Gauss-Legendre nodes, with weights, dtype and device);
* :mod:`.jacobians`: :func:`jacobian`, :func:`jacobian_ladj` (slow and sure: :math:`D` backward
  passes and :math:`O(D^3)` per sample), :func:`trace_exact`, :func:`trace_hutchinson` and the
  Hutchinson :func:`probes`;
* :mod:`.cdf`: CDF tables by quadrature, monotone (PCHIP) interpolation, generalised inverses and
  quantiles, and the Knothe-Rosenblatt map of a 2-D density;
* :mod:`.ode`: fixed-step Euler and RK4, and :func:`odeint` with torchdiffeq's adaptive dopri5;
* :mod:`.fixed_point`: Banach fixed-point iteration with implicit gradients (the inverse of a
  residual block), raising a ValueError with the residual when it does not converge;
* :mod:`.jacobi`: Jacobi sweeps for a triangular system (the inverse of an autoregressive
  layer), exact after at most one sweep per part, stopped earlier at a tolerance;
* :mod:`.logdet`: :math:`\log|\det(I + J)|` exactly, by the truncated power series with Hutchinson
  probes, and by the Russian roulette.

Every request for work is capped (:data:`MAX_EXPAND`, :data:`MAX_NODES`, :data:`MAX_GRID`,
:data:`MAX_TERMS`, :data:`MIN_P`, :data:`MAX_STEPS`, :data:`MAX_ITER`, :data:`MAX_SWEEPS`), with a ValueError that says
the cap and what to do instead.
"""

from .cdf import MAX_CELLS, cdf_table, generalized_inverse, knothe_rosenblatt, pchip, quantile
from .fixed_point import MAX_ITER, FixedPoint, fixed_point
from .jacobi import MAX_SWEEPS, Jacobi, jacobi
from .jacobians import (
    PROBES,
    hutchinson_noise,
    jacobian,
    jacobian_ladj,
    jacobian_rows,
    probes,
    trace_exact,
    trace_hutchinson,
)
from .logdet import MAX_TERMS, MIN_P, logdet_exact, logdet_roulette, logdet_series, series_bound
from .ode import MAX_STEPS, SOLVERS, ODESolution, euler, odeint, rk4
from .quadrature import MAX_GRID, MAX_NODES, as_box, box_grid, cell_nodes, gauss_legendre, legendre_nodes
from .roots import MAX_EXPAND, bisection, implicit_inverse

__all__ = [
    "FixedPoint",
    "Jacobi",
    "MAX_CELLS",
    "MAX_EXPAND",
    "MAX_GRID",
    "MAX_ITER",
    "MAX_NODES",
    "MAX_STEPS",
    "MAX_SWEEPS",
    "MAX_TERMS",
    "MIN_P",
    "ODESolution",
    "PROBES",
    "SOLVERS",
    "as_box",
    "bisection",
    "box_grid",
    "cdf_table",
    "cell_nodes",
    "euler",
    "fixed_point",
    "gauss_legendre",
    "generalized_inverse",
    "hutchinson_noise",
    "implicit_inverse",
    "jacobi",
    "jacobian",
    "jacobian_ladj",
    "jacobian_rows",
    "knothe_rosenblatt",
    "legendre_nodes",
    "logdet_exact",
    "logdet_roulette",
    "logdet_series",
    "odeint",
    "pchip",
    "probes",
    "quantile",
    "rk4",
    "series_bound",
    "trace_exact",
    "trace_hutchinson",
]
