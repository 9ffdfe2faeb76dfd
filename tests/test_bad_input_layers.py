"""Bad input to the layers themselves, called directly (not through a flow): every public
transform refuses a batch of the wrong shape, dtype or device with a ``ValueError`` that names
the argument and says which conversion to make; the linear layers refuse NaN data and
settings of the wrong kind.
"""

from __future__ import annotations

import pytest
import torch
from test_contract import CASES, D, ready  # the one list of public transforms

import flowlab as fl

IDS = list(CASES)


def directions(name: str, t):
    """(method, argument name) for each direction the case has."""
    both = [(t.forward, "x"), (t.inverse, "z")]
    return both if CASES[name].both_ways else both[1:]


@pytest.mark.parametrize("name", IDS)
def test_wrong_shapes_are_refused_with_the_argument_named(name):
    t = ready(CASES[name].make())
    for direction, arg in directions(name, t):
        for bad in (torch.randn(4, D + 1), torch.randn(D), torch.randn(2, 3, D)):
            with pytest.raises(ValueError, match=rf"^{arg} must have shape \(batch, {D}\)"):
                direction(bad)
        with pytest.raises(ValueError, match=rf"^{arg} must be a torch.Tensor"):
            direction([[0.0] * D])


@pytest.mark.parametrize("name", [n for n in IDS if any(p.is_floating_point() for p in CASES[n].make().parameters())])
def test_other_dtypes_are_refused_with_the_conversion_to_make(name):
    """A float64 batch into a float32 layer (the classic numpy mistake), and integers: the message
    says to pass ``x.float()`` or to convert the layer; after that conversion the call works."""
    t = ready(CASES[name].make())
    for direction, arg in directions(name, t):
        for dtype in (torch.float64, torch.int64):
            bad = torch.ones(3, D, dtype=dtype)
            with pytest.raises(ValueError, match=rf"^{arg} has dtype {dtype} but the .* pass {arg}\.float\(\)"):
                direction(bad)
        with torch.no_grad():
            y, ladj = direction(torch.ones(3, D, dtype=torch.float64).float())
        assert y.dtype == ladj.dtype == torch.float32


@pytest.mark.parametrize("name", ["LU", "Triangular", "Linear", "ActNorm", "MAF", "Reverse", "CNF", "ResidualBlock"])
def test_another_device_is_refused_with_the_move_to_make(name):
    """A batch on another device (here the meta device, which every machine has)."""
    t = ready(CASES[name].make())
    for direction, arg in directions(name, t):
        with pytest.raises(ValueError, match=rf"^{arg} is on meta but the .* pass {arg}\.to\('cpu'\)"):
            direction(torch.ones(3, D, device="meta"))


def test_the_reported_case_lu_with_float64():
    with pytest.raises(ValueError) as e:
        fl.LU(2)(torch.randn(4, 2, dtype=torch.float64))
    assert str(e.value).startswith("x has dtype torch.float64 but the LU's parameters have dtype torch.float32: "
                                   "pass x.float(), or convert the model with .to(torch.float64).")


def test_a_flow_still_converts_its_input():
    """The rule of Flow.log_prob is unchanged: it converts, the layers below it then agree."""
    flow = fl.Flow(fl.Compose(fl.ActNorm(2), fl.LU(2)), fl.StandardNormal(2))
    assert flow.log_prob(torch.randn(5, 2, dtype=torch.float64)).dtype == torch.float32


# ------------------------------------------------------------------ NaN and settings of the linear layers


def test_actnorm_refuses_to_initialise_from_nan_data():
    t = fl.ActNorm(2)
    data = torch.randn(10, 2)
    data[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x contains NaN values in 1 rows \(first: \[3\]\).*ActNorm"):
        t.initialize(data)
    with pytest.raises(ValueError, match="NaN"):
        t(data)  # the first forward initialises: the same check
    assert not t.initialized and torch.equal(t.log_scale, torch.zeros(2))  # nothing was set


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_lu_from_matrix_refuses_non_finite_matrices(bad):
    w = torch.eye(3)
    w[1, 2] = bad
    with pytest.raises(ValueError, match="weight contains .* values .*finite"):
        fl.LU.from_matrix(w)


def test_lu_from_matrix_refuses_complex_matrices():
    with pytest.raises(ValueError, match="real numbers"):
        fl.LU.from_matrix(torch.eye(2, dtype=torch.complex64))


@pytest.mark.parametrize("rotation", ["no", "False", 0, 1, None, 0.0])
def test_lu_rotation_must_be_a_bool(rotation):
    with pytest.raises(ValueError, match="rotation must be True .* or False"):
        fl.LU(3, rotation=rotation)


@pytest.mark.parametrize("kind", ["shuffle", None, 3, "LU "])
def test_mixing_kind_is_checked_by_the_recipes_too(kind):
    with pytest.raises(ValueError, match="'reverse', 'permutation', 'lu', 'none'"):
        fl.mixing(kind, 3)
    with pytest.raises(ValueError, match="mixing must be one of"):
        fl.SplineAutoregressive(3, layers=1, mixing=kind)  # refused even where no mixing layer is needed


@pytest.mark.parametrize("seed", [1.5, "2", True, -3])
def test_recipe_seeds_go_through_the_one_check(seed):
    for make in (lambda: fl.MAF(3, layers=2, mixing="permutation", seed=seed), lambda: fl.Glow(3, seed=seed),
                 lambda: fl.RNNFlow(3, layers=1, seed=seed)):
        with pytest.raises(ValueError, match="^seed must be an integer between 0 and 2\\*\\*64 - 1"):
            make()
