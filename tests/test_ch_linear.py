"""The numerical claims of the chapter on linear flows, as tests (the reachability bounds of an LU
layer without a permutation, float64 against float32 for dense log-dets and inverses, the
benchmark script's agreement check), and the exercise checkers of the chapter: they accept the
right answers, name the typical mistakes, and refuse forbidden shortcuts (``slogdet``, solvers).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

import flowlab as fl
from flowlab.exercises import linear as ex

f64 = torch.float64
REPO = Path(__file__).resolve().parent.parent


def _fit_matrix(layer, target, iters=300):
    layer = layer.double()
    opt = torch.optim.LBFGS(layer.parameters(), lr=1, max_iter=iters, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (layer.weight - target).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((layer.weight - target).pow(2).sum().sqrt())


# --------------------------------------------------------------------------------------------
# claims of the chapter
# --------------------------------------------------------------------------------------------


def test_lu_without_permutation_reaches_exactly_the_matrices_with_positive_w11_and_det():
    """Distance 0 for the reachable matrices of the exercise; for the others at least the bound
    the chapter states (1 for the swap and the reflection, sqrt 2 for -I, sigma_min for f)."""
    bounds = {"b": 1.0, "c": 1.0, "d": math.sqrt(2), "f": float(torch.linalg.svdvals(torch.tensor(ex.MATRICES["f"]))[-1])}
    for key, W in ex.MATRICES.items():
        dist = _fit_matrix(fl.LU(2, rotation=False), torch.tensor(W, dtype=f64))
        if key in bounds:
            assert dist >= bounds[key] - 1e-6, (key, dist)
            assert dist <= bounds[key] + 1e-3, (key, dist)  # and the fit gets to the bound
        else:
            assert dist < 1e-6, (key, dist)


def test_dense_float32_inverse_is_much_worse_than_float64_on_ill_conditioned_matrices():
    d = 64
    g = torch.Generator().manual_seed(0)
    Q1 = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))[0]
    Q2 = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))[0]
    sigma = torch.logspace(0, -5, d, dtype=f64)  # kappa = 1e5
    W = (Q1 * sigma) @ Q2.T
    eye = torch.eye(d, dtype=f64)
    err32 = float((torch.linalg.inv(W.float()).double() @ W - eye).abs().max())
    err64 = float((torch.linalg.inv(W) @ W - eye).abs().max())
    assert err32 > 1e-4 and err64 < 1e-9
    assert abs(float(torch.linalg.slogdet(W).logabsdet) - float(sigma.log().sum())) < 1e-9
    # fl.Linear computes in float64 even when its parameters are float32
    t = fl.Linear(d)
    with torch.no_grad():
        t.weight.copy_(W.float())
    ladj = t(torch.zeros(1, d))[1]
    want = float(torch.linalg.slogdet(W.float().double()).logabsdet)
    assert abs(float(ladj.detach()) - want) < 1e-5


def test_the_benchmark_script_checks_and_builds_each_library():
    spec = importlib.util.spec_from_file_location("bench_linear", REPO / "bench" / "linear.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    fwd, inv = bench.make("flowlab", 8)
    x = torch.randn(4, 8)
    with torch.no_grad():
        z, ladj = fwd(x)
        torch.testing.assert_close(inv(z)[0], x, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown library"):
        bench.make("other", 4)
