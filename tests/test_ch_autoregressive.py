"""The numerical claims of the chapter on autoregressive flows, as tests (monotone transformers,
the Jacobian pattern of K-part conditioners, exactly K - 1 network passes to invert, the log-determinant as
a sum of log tau'), the cached table and the script behind it, and the exercise checkers of the
chapter (they accept the right answers and name the typical mistakes).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

import flowlab as fl

f64 = torch.float64
D = 6
REPO = Path(__file__).resolve().parent.parent

TRANSFORMERS = {
    "affine": (lambda: fl.Affine(), 0.5),
    "monotonic NN": (lambda: fl.MonotonicNN(hidden=4), 2.0),
    "integral (UMNN)": (lambda: fl.Integral(hidden=4), 2.0),
    "spline": (lambda: fl.RQSpline(bins=6, bound=3.0), 1.0),
}
KINDS = [2, 3, D, "RNN"]


def _shaken(transform, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in transform.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return transform.double().requires_grad_(False)


def _layer(kind, transformer=None, seed=0):
    torch.manual_seed(0)
    cond = fl.RNNConditioner(D, hidden=16) if kind == "RNN" else fl.MaskedConditioner(D, parts=kind, hidden=(32, 32))
    tau = transformer if transformer is not None else fl.RQSpline(bins=6, bound=4.0)
    return _shaken(fl.Autoregressive(cond, tau), seed=seed)


def _part(layer):
    c = layer.conditioner
    return c.part if isinstance(c, fl.MaskedConditioner) else torch.arange(D)


@pytest.fixture(scope="module")
def x():
    return torch.randn(5, D, generator=torch.Generator().manual_seed(1), dtype=f64)


# --------------------------------------------------------------------------------------------
# transformers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TRANSFORMERS))
def test_transformers_are_monotone_with_the_reported_derivative_and_invert(name):
    make, scale = TRANSFORMERS[name]
    tau = make()
    xs = torch.linspace(-5, 5, 401, dtype=f64)[:, None]
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        c = (scale * torch.randn(1, 1, tau.params, generator=g, dtype=f64)).expand(len(xs), 1, -1)
        v = xs.clone().requires_grad_(True)
        y, log_dy = tau(v, c)
        (dy,) = torch.autograd.grad(y.sum(), v)
        assert float(y.detach().diff(dim=0).min()) > 0
        torch.testing.assert_close(log_dy.detach(), dy.log(), atol=1e-7, rtol=0)
        torch.testing.assert_close(tau.inverse(y.detach(), c)[0], xs, atol=1e-9, rtol=0)


def test_the_spline_is_the_identity_outside_its_bound():
    tau = fl.RQSpline(bins=6, bound=3.0).double()
    xs = torch.tensor([[-5.0], [-3.5], [3.5], [5.0]], dtype=f64)
    c = torch.randn(4, 1, tau.params, dtype=f64)
    y, ld = tau(xs, c)
    torch.testing.assert_close(y, xs)
    torch.testing.assert_close(ld, torch.zeros_like(ld))


# --------------------------------------------------------------------------------------------
# conditioners: pattern, passes, log-determinant
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_jacobian_pattern_is_block_triangular(kind, x):
    layer = _layer(kind, seed=kind if kind != "RNN" else 0)
    part = _part(layer)
    J = fl.numerics.jacobian(layer, x[:1])[0]
    nonzero = J.abs() > 1e-12
    expected = (part[:, None] > part[None, :]) | torch.eye(D, dtype=torch.bool)
    assert torch.equal(nonzero, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_conditioner_dependencies_and_constant_first_part(kind, x):
    layer = _layer(kind)
    cond, part = layer.conditioner, _part(layer)
    depends = torch.zeros(D, D, dtype=torch.bool)
    for j in range(D):
        bumped = x.clone()
        bumped[:, j] += 1.0
        depends[:, j] = (cond(bumped) - cond(x)).abs().amax(dim=(0, 2)) > 1e-12
    assert torch.equal(depends, part[:, None] > part[None, :])
    assert not depends[part == 0].any()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(TRANSFORMERS))
def test_ladj_is_the_sum_of_log_derivatives_and_the_autograd_logdet(name, kind, x):
    layer = _layer(kind, TRANSFORMERS[name][0](), seed=1)
    _, ladj = layer(x)
    by_hand = layer.transformer(x, layer.conditioner(x))[1].sum(-1)
    torch.testing.assert_close(ladj, by_hand, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, fl.numerics.jacobian_ladj(layer, x), atol=1e-8, rtol=0)


def test_without_permutation_the_first_part_stays_elementwise():
    """The claim behind the order experiment: stacked coupling layers without a permutation
    transform the first part elementwise (x_1 never depends on x_2), while the permutation
    [0, 2, 1, 3] lets x_2 depend on x_1."""
    torch.manual_seed(0)

    def stack(between):
        blocks = []
        for i in range(3):
            if i:
                blocks.append(between())
            blocks.append(fl.Autoregressive(fl.MaskedConditioner(4, parts=2, hidden=(8, 8)), fl.Affine()))
        return _shaken(fl.Compose(*blocks))

    x4 = torch.randn(3, 4, dtype=f64)
    with torch.no_grad():
        J_none = fl.numerics.jacobian(stack(lambda: fl.Permutation(4, order=[0, 1, 2, 3])), x4)
        J_mixed = fl.numerics.jacobian(stack(lambda: fl.Permutation(4, order=[0, 2, 1, 3])), x4)
    assert float(J_none[:, :2, :2].triu(1).abs().max() + J_none[:, :2, :2].tril(-1).abs().max()) == 0
    assert float(J_none[:, :2, 2:].abs().max()) == 0
    assert float(J_mixed[:, 1, 0].abs().min()) > 0  # z_2 depends on x_1


# --------------------------------------------------------------------------------------------
# the cached table and its script
# --------------------------------------------------------------------------------------------


def _read(name):
    path = REPO / "book" / "data" / name
    with open(path) as f:
        assert f.readline().startswith("# measured by bench/autoregressive_table.py")
        return list(csv.DictReader(f))


def test_the_cached_tables_have_every_pair_with_standard_errors():
    rows, runs = _read("autoregressive_table.csv"), _read("autoregressive_runs.csv")
    pairs = {(r["target"], r["transformer"], r["conditioner"], int(r["K"])) for r in rows}
    for t in TRANSFORMERS:
        assert ("moons", t, "masked", 2) in pairs and ("moons", t, "RNN", 2) in pairs
        for cond, K in (("masked", 2), ("masked", 8), ("RNN", 8)):
            assert ("chain", t, cond, K) in pairs
    for r in rows:
        assert int(r["seeds"]) >= 2  # a standard error over seeds needs at least two
        for column in ("train NLL", "held-out NLL", "held-out NLL SE", "ms per step", "ms to sample 500",
                       "ms for density of 500"):
            assert float(r[column]) == float(r[column])  # a number, not NaN
        assert float(r["held-out NLL SE"]) >= 0
        if r["target"] == "chain":
            assert float(r["KL"]) > -3 * float(r["KL SE"]) - 0.01  # a divergence: not below zero
        assert int(r["passes to sample"]) == (int(r["D"]) - 1 if r["conditioner"] == "RNN" else int(r["K"]) - 1)
    # the summary is the mean of the per-seed runs
    for r in rows:
        group = [float(u["held-out NLL"]) for u in runs
                 if (u["target"], u["transformer"], u["conditioner"], u["K"]) == (r["target"], r["transformer"], r["conditioner"], r["K"])]
        assert len(group) == int(r["seeds"])
        assert abs(sum(group) / len(group) - float(r["held-out NLL"])) < 2e-3


def test_the_table_script_builds_its_flows_and_data():
    spec = importlib.util.spec_from_file_location("autoregressive_table", REPO / "bench" / "autoregressive_table.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    train, valid, test = bench.datasets("chain", seed=0)
    assert train.shape == (1000, 8) and len(valid) == 500 and len(test) == 20_000
    torch.testing.assert_close(bench.datasets("chain", seed=0)[2], bench.datasets("chain", seed=1)[2])  # shared test set
    assert not torch.equal(bench.datasets("chain", seed=0)[0], bench.datasets("chain", seed=1)[0])
    for t in bench.TRANSFORMERS:
        for kind in (2, 8, "RNN"):
            flow = bench.build(8, t, kind)
            assert flow.log_prob(train[:4]).shape == (4,)


def test_the_chain_density_is_normalized_and_matches_its_samples():
    """The exact density of the 8-D target: its 2-D marginal of (x_1, x_2) integrates to 1, and
    its mean log-density on samples equals minus the entropy computed term by term."""
    import math

    spec = importlib.util.spec_from_file_location("autoregressive_table", REPO / "bench" / "autoregressive_table.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from flowlab.testing import density_integral

    integral = density_integral(lambda x: bench.chain_log_prob(x), lim=5.0, n=500)  # features = 2 on the grid
    assert abs(integral - 1) < 1e-3
    x = bench.chain(200_000, seed=5).double()
    log_p = bench.chain_log_prob(x)
    # the conditionals are Gaussian with sd 0.5: each contributes its entropy 0.5 log(2 pi e 0.25)
    h_rest = 7 * 0.5 * math.log(2 * math.pi * math.e * 0.25)
    h_first = float(-bench.chain_log_prob(x[:, :1]).mean())  # the 1-D marginal of x_1
    se = float(log_p.std()) / math.sqrt(len(x))
    assert abs(float(-log_p.mean()) - (h_first + h_rest)) < 4 * se + 1e-3
