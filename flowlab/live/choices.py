"""What the dashboard offers: its targets and its flow families, built from the public API.

A *target* is what a flow learns: :class:`DataTarget` (samples, learned by maximum likelihood)
or :class:`DensityTarget` (an unnormalized log-density, learned by the reverse KL). Both hand
:class:`flowlab.Training` its ``data`` (a tensor or a function) and its held-out ``valid`` set,
and tell the picture what to draw in grey (``points``, ``extent``).

A *family* is a public recipe of flowlab with the dashboard's knobs plugged in
(:data:`FAMILIES`); no flow is built here in any other way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import targets as _targets
from .._checks import as_data, check_positive_int
from ..autoregressive import IAF, MAF, MonotonicFlow, RNNFlow, SplineAutoregressive, UMNNFlow
from ..continuous import CNF
from ..core import Transform
from ..numerics.quadrature import box_grid
from ..glow import Glow
from ..residual import PlanarFlow, ResidualFlow
from ..pictures import extent_for
from ..transformers import Affine, Integral, MonotonicNN, RQSpline


class DataTarget:
    """A target known through samples, learned by maximum likelihood (the forward KL).

    ``sampler(n, seed=...)`` draws the data; ``n`` training points (seed 0) and ``n_valid``
    held-out points (seed 1) are drawn once. ``log_prob`` (optional) is the exact density;
    when given, the loss plot shows its NLL on the held-out points, the best any flow can do.
    """

    objective = "forward KL"
    reference_label = "true density"
    points_label = "data"

    def __init__(self, name: str, sampler: Callable | None = None, log_prob: Callable | None = None,
                 n: int = 1000, n_valid: int = 1000, data=None):
        self.name = name
        if data is not None:
            self.data = as_data("data", data)
            self.valid = None
        else:
            self.data = as_data(name, sampler(check_positive_int("n", n), seed=0))
            self.valid = as_data(name, sampler(check_positive_int("n_valid", n_valid), seed=1))
        self.features = self.data.shape[1]
        self.reference = None
        if log_prob is not None and self.valid is not None:
            self.reference = float(-log_prob(self.valid).mean())
        self.points = self.data.detach().cpu()
        self.extent = extent_for(self.points) if self.features == 2 else 4.0


class DensityTarget:
    r"""A target known through an unnormalized log-density, learned by the reverse KL:
    minimize :math:`\mathbb E_{x \sim q}[\log q(x) - \log \tilde p(x)]` with samples of the flow
    (:func:`flowlab.train.reverse_kl`; the dashboard's batch size is the number of samples).

    The loss is the reverse KL minus the log-normalizer :math:`\log Z`, so it can be negative;
    with ``log_z`` given, the loss plot marks :math:`-\log Z`, the best possible value. The
    picture shows, in grey, points drawn from the density on a fine grid; ``extent`` (half-width
    of the view) is found from the density when not given.
    """

    objective = "reverse KL"
    reference_label = "best possible"
    points_label = "samples of the target density"
    valid = None

    def __init__(self, name: str, log_prob: Callable[[Tensor], Tensor], log_z: float | None = None,
                 extent: float | None = None, n_points: int = 1000):
        if not callable(log_prob):
            raise TypeError(f"log_prob must be a function of x of shape (n, 2), got {type(log_prob).__name__}.")
        self.name = name
        self.data = log_prob
        self.features = 2
        self.reference = None if log_z is None else -float(log_z)
        # where the density lives: a fine grid on [-8, 8]^2, resampled by density
        cells, half = 160, 8.0
        width = 2 * half / cells
        grid, _ = box_grid(half, cells=cells, dtype=torch.get_default_dtype())
        with torch.no_grad():
            logp = log_prob(grid)
        if not isinstance(logp, Tensor) or logp.shape != (len(grid),) or not torch.isfinite(logp).any():
            raise ValueError(f"log_prob of {name!r} must map (n, 2) points to n values, finite somewhere.")
        mass = torch.softmax(torch.nan_to_num(logp, nan=-math.inf), 0)
        radius = grid.abs().amax(1)
        order = radius.argsort()
        inside = radius[order][torch.searchsorted(mass[order].cumsum(0), torch.tensor(0.995)).clamp(max=len(grid) - 1)]
        self.extent = extent if extent is not None else max(0.5, math.ceil(1.15 * float(inside) * 2) / 2)
        g = torch.Generator().manual_seed(0)
        pick = torch.multinomial(mass, check_positive_int("n_points", n_points), replacement=True, generator=g)
        self.points = grid[pick] + (torch.rand(n_points, 2, generator=g) - 0.5) * width


TARGETS: dict[str, Callable[[], DataTarget | DensityTarget]] = {}
"""Extra targets by name: each value is a function without arguments that returns a target
(for example ``lambda: DensityTarget("my banana", my_log_prob)``). The data sets of
:data:`flowlab.targets.SAMPLERS` and the densities of :data:`flowlab.targets.DENSITIES` are
always offered as well."""


def _builtin_targets() -> dict[str, Callable[[], DataTarget | DensityTarget]]:
    found: dict = {}
    for name, sampler in _targets.SAMPLERS.items():
        log_prob = getattr(_targets, f"{sampler.__name__}_log_prob", None)
        found[name] = lambda name=name, sampler=sampler, log_prob=log_prob: DataTarget(name, sampler, log_prob)
    log_z = getattr(_targets, "LOG_Z", {})
    for name, log_prob in getattr(_targets, "DENSITIES", {}).items():
        found[name] = lambda name=name, log_prob=log_prob: DensityTarget(name, log_prob, log_z.get(name))
    return found


def target_names() -> list[str]:
    """The names the ``target`` setting accepts."""
    return list({**_builtin_targets(), **TARGETS})


def make_target(name: str) -> DataTarget | DensityTarget:
    makers = {**_builtin_targets(), **TARGETS}
    if name not in makers:
        raise ValueError(f"unknown target {name!r}; choose one of: {', '.join(makers)}.")
    return makers[name]()


@dataclass(frozen=True)
class Family:
    """A flow family of the dashboard: ``build(features, settings) -> Transform`` calls a public
    recipe with the settings it uses, named in ``knobs`` (the dashboard hides the others).
    ``may_fold`` marks a family whose map is not injective by construction: after each run the
    dashboard counts the grid points where it folds the plane (:func:`flowlab.testing.folds`).
    ``objective`` is what :class:`flowlab.Training` minimizes on data (``None``: maximum
    likelihood)."""

    build: Callable[[int, dict], Transform]
    knobs: tuple[str, ...] = ()
    may_fold: bool = False
    objective: str | None = None


def objective_name(family: str, target) -> str:
    """What the dashboard's caption calls the objective of ``family`` on ``target``."""
    objective = FAMILIES[family].objective
    return objective.replace("_", " ") if objective is not None else target.objective


def _two(s: dict) -> tuple[int, int]:
    return (s["hidden"], s["hidden"])


def _mixed(recipe: Callable[..., Transform]) -> Callable[[int, dict], Transform]:
    """A family whose ``recipe(d, s, layers=..., mixing=..., seed=...)`` stacks its layers with
    the ``mixing`` setting's layer between them (:func:`flowlab.linear.mixing`; "reverse" is the
    recipes' own stack)."""
    return lambda d, s: recipe(d, s, layers=s["layers"], mixing=s["mixing"], seed=s["seed"])


FAMILIES: dict[str, Family] = {
    "spline autoregressive": Family(
        _mixed(lambda d, s, **stack: SplineAutoregressive(d, _two(s), s["bins"], s["bound"], parts=s["parts"], **stack)),
        ("bins", "bound", "parts", "mixing")),
    "MAF": Family(_mixed(lambda d, s, **stack: MAF(d, _two(s), parts=s["parts"], **stack)), ("parts", "mixing")),
    "IAF (inverse MAF)": Family(lambda d, s: IAF(d, _two(s), s["layers"], s["parts"]), ("parts",)),
    "monotonic NN, masked": Family(
        _mixed(lambda d, s, **stack: MonotonicFlow(d, _two(s), parts=s["parts"], **stack)), ("parts", "mixing")),
    "integral (UMNN), masked": Family(
        _mixed(lambda d, s, **stack: UMNNFlow(d, _two(s), nodes=16, parts=s["parts"], **stack)), ("parts", "mixing")),
    "affine, recurrent (GRU)": Family(
        _mixed(lambda d, s, **stack: RNNFlow(d, s["hidden"], Affine(), **stack)), ("mixing",)),
    "spline, recurrent (GRU)": Family(
        _mixed(lambda d, s, **stack: RNNFlow(d, s["hidden"], RQSpline(s["bins"], s["bound"]), **stack)),
        ("bins", "bound", "mixing")),
    "monotonic NN, recurrent (GRU)": Family(
        _mixed(lambda d, s, **stack: RNNFlow(d, s["hidden"], MonotonicNN(), **stack)), ("mixing",)),
    "integral (UMNN), recurrent (GRU)": Family(
        _mixed(lambda d, s, **stack: RNNFlow(d, s["hidden"], Integral(nodes=16), **stack)), ("mixing",)),
    "Glow (ActNorm, LU, affine coupling)": Family(lambda d, s: Glow(d, s["layers"], _two(s), seed=s["seed"])),
    "residual (i-ResNet)": Family(lambda d, s: ResidualFlow(d, s["layers"], _two(s))),
    "planar": Family(lambda d, s: PlanarFlow(d, 2 * s["layers"])),
    "continuous (CNF)": Family(lambda d, s: CNF(d, _two(s), steps=max(s["layers"], 4), trace="discrete"),
                               may_fold=True),
    "flow matching (CNF)": Family(lambda d, s: CNF(d, _two(s), steps=max(s["layers"], 4), trace="discrete"),
                                  may_fold=True, objective="flow_matching"),
}
"""Flow families by name. Every transformer of :mod:`flowlab.transformers` appears with a
masked conditioner (K parts) and with the recurrent one; the integral transformer uses 16
quadrature nodes to stay interactive. Between their layers goes the ``mixing`` setting's layer
(reverse, a random permutation, a learned LU layer, or none). Glow steps are ActNorm, LU and an
affine coupling layer. The residual families are i-ResNet blocks (exact
log-determinant in 2-D) and planar flows (twice ``layers`` planar maps: each is a single bent
hyperplane); Sylvester flows are left out, as they have no density to draw.

The continuous flow is the map of ``max(layers, 4)`` RK4 steps, with the exact log-determinant
of that discrete map (``trace="discrete"``), so that the solver's error cannot inflate its
likelihood. Its density is then exact for the discrete map wherever that map is injective,
which holds when the steps are small for the field; a fixed-step solve of a field that varies
quickly can fold the plane (the Jacobian determinant changes sign), and there the formula
counts points twice. The dashboard checks for folds on its grid after every run. The
flow-matching family is the same CNF, trained by :func:`flowlab.objectives.flow_matching`
(no ODE solve per step) instead of maximum likelihood; its pictures are drawn the same way."""
