"""The univariate transformers on their own: monotone for every parameter value, the identity at
zero parameters, finite at the bounds and for extreme parameters, implicit gradients of the
bisection inverses, and clear errors for impossible settings.
"""

from __future__ import annotations

import pytest
import torch

from flowlab.conditioners import MaskedConditioner, RNNConditioner
from flowlab.numerics import bisection
from flowlab.transformers import Affine, Integral, MonotonicNN, RQSpline

f64 = torch.float64

TRANSFORMERS = {
    "Affine": Affine,
    "RQSpline": lambda: RQSpline(bins=5, bound=3.0),
    "MonotonicNN": lambda: MonotonicNN(units=4),
    "Integral": lambda: Integral(units=4),
}
NAMES = list(TRANSFORMERS)


def params(tau, batch: int, features: int, scale: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, features, tau.params, generator=g, dtype=f64)


@pytest.mark.parametrize("name", NAMES)
def test_strictly_increasing_on_a_dense_grid(name):
    tau = TRANSFORMERS[name]()
    grid = torch.linspace(-8, 8, 1601, dtype=f64)
    c = params(tau, 1, 12, scale=2.0).expand(grid.numel(), 12, tau.params)  # 12 random maps
    x = grid[:, None].expand(-1, 12).clone().requires_grad_(True)
    y, ld = tau(x, c)
    assert torch.isfinite(y).all() and torch.isfinite(ld).all()
    assert (y.diff(dim=0) > 0).all()
    # and the log-derivative is that of the map (autograd, pointwise)
    (slope,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(slope.log(), ld, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_zero_parameters_give_the_identity(name):
    tau = TRANSFORMERS[name]()
    x = torch.linspace(-10, 10, 41, dtype=f64)[:, None]
    c = torch.zeros(41, 1, tau.params, dtype=f64)
    for y, ld in (tau(x, c), tau.inverse(x, c)):
        assert torch.allclose(y, x, atol=1e-12) and torch.allclose(ld, torch.zeros_like(ld), atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1e3, -1e3])
def test_extreme_parameters_stay_finite(name, scale):
    """Parameters of order 1e3, at and beyond the spline bound: finite values, log-derivatives
    and gradients, in both directions; the round trip still holds."""
    tau = TRANSFORMERS[name]()
    x = torch.tensor([-50.0, -3.0, -3.0 + 1e-9, -1.0, 0.0, 0.7, 3.0 - 1e-9, 3.0, 4.0, 1e3], dtype=f64)[:, None]
    c = (scale * torch.rand(x.shape[0], 1, tau.params, generator=torch.Generator().manual_seed(1), dtype=f64))
    c.requires_grad_(True)
    y, ld = tau(x, c)
    xb, ldb = tau.inverse(y, c)
    for t in (y, ld, xb, ldb):
        assert torch.isfinite(t).all()
    (grad,) = torch.autograd.grad((y + ld + xb + ldb).sum(), c)
    assert torch.isfinite(grad).all()
    assert torch.allclose(xb, x, atol=1e-6, rtol=1e-9)


def test_spline_at_and_beyond_the_bound():
    tau = RQSpline(bins=4, bound=2.0)
    c = params(tau, 1, 1, scale=1.0).expand(7, 1, tau.params)
    x = torch.tensor([-5.0, -2.0, -2.0 + 1e-12, 0.0, 2.0 - 1e-12, 2.0, 5.0], dtype=f64)[:, None]
    y, ld = tau(x, c)
    assert torch.isfinite(y).all() and torch.isfinite(ld).all()
    assert torch.equal(y[[0, 1, 5, 6]], x[[0, 1, 5, 6]])  # identity at and beyond the bound
    assert torch.allclose(y[[2, 4]], x[[2, 4]], atol=1e-9)  # continuous at the bound
    assert torch.allclose(ld[[2, 4]], torch.zeros(2, 1, dtype=f64), atol=1e-9)  # d = 1 at the ends


@pytest.mark.parametrize("cls", [MonotonicNN, Integral])
def test_bisection_inverse_gradients(cls):
    """The inverse's gradients (implicit differentiation) against finite differences."""
    tau = cls(units=2, **({"nodes": 16} if cls is Integral else {}))
    g = torch.Generator().manual_seed(3)
    y = (2 * torch.randn(3, 1, generator=g, dtype=f64)).requires_grad_(True)
    c = torch.randn(3, 1, tau.params, generator=g, dtype=f64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y, c: tau.inverse(y, c), (y, c), eps=1e-6, atol=1e-6)


def test_monotonic_nn_has_no_flat_plateaus():
    """Two sigmoids far apart: without a share of the identity the map would be flat (derivative
    about e^-1000) between them; here it stays invertible in float32 too."""
    tau = MonotonicNN(units=2)
    c = torch.tensor([[[0.0, 0.0, 1000.0, -1000.0, 0.0, 0.0]]]).expand(201, 1, 6)
    x = torch.linspace(-500, 500, 201)[:, None]
    y, ld = tau(x, c)
    assert (ld > torch.log(torch.tensor(tau.min_derivative)) - 1e-6).all()
    assert torch.allclose(tau.inverse(y, c)[0], x, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("cls", [MonotonicNN, Integral])
def test_inverse_ladj_is_minus_forward_at_the_root(cls):
    tau = cls(units=3)
    c = params(tau, 20, 2, scale=1.5)
    y = 5 * torch.randn(20, 2, generator=torch.Generator().manual_seed(2), dtype=f64)
    x, ldi = tau.inverse(y, c)
    yb, ld = tau(x, c)
    assert torch.allclose(yb, y, atol=1e-10) and torch.allclose(ldi, -ld, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RQSpline(bins=0),
        lambda: RQSpline(bins=2.5),
        lambda: RQSpline(bound=0.0),
        lambda: RQSpline(bound=-1.0),
        lambda: RQSpline(bound=float("nan")),
        lambda: RQSpline(bins=4, min_width=0.3),
        lambda: RQSpline(min_derivative=1.5),
        lambda: Affine(scale_bound=0.0),
        lambda: MonotonicNN(units=0),
        lambda: MonotonicNN(units=-2),
        lambda: MonotonicNN(hidden=0),
        lambda: MonotonicNN(scale_bound=-1.0),
        lambda: MonotonicNN(min_derivative=0.0),
        lambda: MonotonicNN(min_derivative=1.0),
        lambda: Integral(units=0),
        lambda: Integral(units=4, hidden=5),
        lambda: Integral(nodes=0),
        lambda: Integral(scale_bound=0.0),
        lambda: RNNConditioner(3, units=0),
        lambda: RNNConditioner(3, hidden=0),
        lambda: RNNConditioner(0),
        lambda: RNNConditioner(3, outputs=0),
        lambda: MaskedConditioner(3, parts=4),
        lambda: MaskedConditioner(3, hidden=(0,)),
    ],
)
def test_bad_settings_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_units_is_the_width_of_a_transformer_and_hidden_its_former_name():
    """``units`` counts a transformer's units (and a GRU's state); ``hidden=`` still means the same."""
    assert MonotonicNN(units=5).params == MonotonicNN(hidden=5).params == 15
    assert Integral(units=5).params == Integral(hidden=5).params == 16
    assert RNNConditioner(3, units=7).units == RNNConditioner(3, hidden=7).units == 7
    with pytest.raises(ValueError, match="hidden is the former name of units"):
        MonotonicNN(units=4, hidden=5)


def test_conditioner_without_transformer_and_rebuild():
    c = RNNConditioner(3, units=4)
    with pytest.raises(ValueError, match="pair it with a transformer"):
        c(torch.zeros(2, 3))
    c.build(5)
    c.build(5)  # the same size again is fine
    with pytest.raises(ValueError, match="built for 5"):
        c.build(6)


def test_bisection_that_cannot_bracket_says_so():
    with pytest.raises(ValueError, match="could not bracket the root"):
        bisection(torch.sigmoid, torch.tensor([0.5, 1.5], dtype=f64), max_expand=10)
