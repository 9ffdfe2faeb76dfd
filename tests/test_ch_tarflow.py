"""The numerical claims of the TarFlow chapter, as tests: the dependency pattern of one layer of
the chapter's TarFlow (patches of the 8x8 digits), its Jacobi inverse against the sequential one
(equal to the bit at ``tol=0``, never more than K - 1 sweeps), bits per dimension with the
bin-width correction, the committed checkpoint (its SHA-256 as recorded, its test bits/dim as
in the table, the seeds and the command of the table), and the notebook's form (its exercise
checkers are tested with the others', in test_ch_exercises.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import math
from pathlib import Path

import pytest
import torch
from sklearn.datasets import load_digits

import flowlab as fl
from flowlab import runs
from flowlab.pixels import HistogramCDF, bits_per_dim, dequantize
from flowlab.tarflow import patches

f64 = torch.float64
REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "book" / "data"
ARCH = dict(shape=(8, 8), patch=2, hidden=64, layers=4, depth=2, heads=4)
LEVELS, D = 17, 64


def bench_script():
    """``bench/tarflow_digits.py`` as a module (its settings and data helpers)."""
    spec = importlib.util.spec_from_file_location("tarflow_digits", REPO / "bench" / "tarflow_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chapter_flow(scale=0.5, seed=0):
    """The chapter's TarFlow in float64, its weights moved away from the identity."""
    torch.manual_seed(seed)
    return fl.testing.shaken(fl.TarFlow(D, **ARCH), scale, seed, fan_in=True).double()


# -------------------------------------------------------------------------------- one layer


def test_one_layer_is_block_lower_triangular_in_token_order():
    layer = chapter_flow(1.0)[1]
    x = torch.randn(1, D, dtype=f64, generator=torch.Generator().manual_seed(3))
    J = fl.numerics.jacobian(layer, x)[0].detach()
    part = layer.conditioner.part
    assert layer.conditioner.parts == 16 and layer.passes == 15
    assert float(J[part[None, :] > part[:, None]].abs().max()) == 0.0  # nothing above the blocks
    below = part[None, :] < part[:, None]
    assert float((J[below] != 0).float().mean()) > 0.99  # every earlier patch is read
    assert torch.allclose(torch.linalg.slogdet(J)[1], layer(x)[1][0], atol=1e-10)


def test_the_patch_order_holds_each_two_by_two_square_together():
    order = patches(8, 8, 2).view(16, 4)
    rows, cols = order // 8, order % 8
    assert bool(((rows.max(1).values - rows.min(1).values) == 1).all())
    assert bool(((cols.max(1).values - cols.min(1).values) == 1).all())
    assert sorted(order.flatten().tolist()) == list(range(64))


# ---------------------------------------------------------------------------- Jacobi sweeps


def test_jacobi_at_tol_zero_is_the_sequential_inverse_to_the_bit():
    flow = chapter_flow()
    z = torch.randn(32, D, dtype=f64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x, ladj = flow.inverse(z)
        sol = flow.jacobi(z, 0.0)
    assert torch.equal(sol.x, x) and torch.allclose(sol.ladj, ladj, atol=1e-12)
    assert len(sol.sweeps) == 4 and all(1 <= s <= 15 for s in sol.sweeps)


@pytest.mark.parametrize("tol", [1e-1, 1e-3, 1e-6])
def test_jacobi_never_needs_more_than_k_minus_one_sweeps_and_stops_within_tol(tol):
    flow = chapter_flow()
    z = torch.randn(32, D, dtype=f64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        sol = flow.jacobi(z, tol)
    assert all(1 <= s <= 15 for s in sol.sweeps)
    assert all(r <= tol or s == 15 for r, s in zip(sol.residuals, sol.sweeps))
    with torch.no_grad():  # a looser tolerance never takes more sweeps
        loose = flow.jacobi(z, 10 * tol)
    assert all(a <= b for a, b in zip(loose.sweeps, sol.sweeps))


def test_each_sweep_makes_one_more_patch_exact():
    layer = chapter_flow(1.0)[1]
    z = torch.randn(8, D, dtype=f64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        exact = layer.inverse(z)[0]
        part = layer.conditioner.part
        for sweeps in range(16):
            x = layer.inverse(z, passes=sweeps)[0]
            error = (x - exact).abs().amax(0)
            assert float(error[part <= sweeps].max()) < 1e-12, sweeps


# --------------------------------------------------------------------------- bits per dimension


def test_bin_width_correction_gives_log2_levels_for_the_uniform_model():
    """Uniform on [-1, 1)^D in v = 2y/L - 1 is uniform over the L levels: log2 L bits/dim, once
    D log(L/2) is added to -log p_V."""
    script = bench_script()
    y = dequantize(torch.randint(0, LEVELS, (50, D)).double(), generator=torch.Generator().manual_seed(0))
    v, ladj = script.to_pixels_space(y)
    assert bool(((v >= -1) & (v < 1)).all())
    assert torch.allclose(ladj, torch.full((50,), D * math.log(2 / LEVELS), dtype=f64))
    nll_v = torch.full((50,), D * math.log(2.0), dtype=f64)  # -log of the density (1/2)^D
    assert torch.allclose(bits_per_dim(nll_v - ladj, D), torch.full((50,), math.log2(LEVELS), dtype=f64))
    assert float(bits_per_dim(nll_v, D)[0]) == pytest.approx(1.0)  # forgetting the correction: 1 bit/dim


def test_independent_pixels_through_the_histogram_layer():
    pixels = torch.tensor(load_digits().data, dtype=f64)[:400]
    layer = HistogramCDF.fit(pixels, LEVELS, pseudo=1.0)
    y = dequantize(pixels, generator=torch.Generator().manual_seed(1))
    flow = fl.Flow(layer, fl.StandardNormal(D).double())
    counts = torch.stack([torch.bincount(pixels[:, j].long(), minlength=LEVELS) for j in range(D)], 1).double() + 1
    log_p = (counts / counts.sum(0)).log().gather(0, y.floor().long()).sum(1)
    assert torch.allclose(flow.log_prob(y), log_p, atol=1e-9)
    assert float(bits_per_dim(-log_p.mean(), D)) < math.log2(LEVELS)


# --------------------------------------------------------------------- the committed results


def test_checkpoint_matches_its_hash_and_the_table():
    meta = json.loads((DATA / "tarflow_digits.json").read_text())
    blob = (DATA / meta["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == meta["sha256"]
    assert len(blob) == meta["bytes"] < 5_000_000
    table = runs.read(DATA / "tarflow_digits.csv")
    seeds = table.groupby("model").seed.nunique()
    assert set(table.model) == set(bench_script().MODELS)
    assert seeds.min() == seeds.max() >= 2
    assert meta["command"] == f"python bench/tarflow_digits.py --seeds {seeds.max()}"
    assert table.attrs["notes"][0].startswith(f"measured by {meta['command']} on ")

    ckpt = torch.load(io.BytesIO(blob), weights_only=True)
    settings = ckpt["settings"]
    flow = fl.Flow(fl.TarFlow(D, **{k: settings[k] for k in ARCH}), fl.StandardNormal(D))
    flow.transform.load_state_dict(ckpt["state_dict"])
    data = bench_script().digits()
    assert torch.equal(ckpt["probs"], data["cdf"].probs)
    z_test, ladj_test = data["cdf"](data["y"]["test"])
    with torch.no_grad():
        nll = -(flow.log_prob(z_test.float()).double() + ladj_test)
    row = table[(table.model == "TarFlow") & (table.seed == settings["seed"])]
    assert float(bits_per_dim(nll.mean(), D)) == pytest.approx(float(row.test_bits.iloc[0]), abs=2e-6)


# ---------------------------------------------------------------------------- the notebook


def test_notebook_is_stored_without_outputs_and_names_the_command():
    nb = json.loads((REPO / "book" / "tarflow.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "python bench/tarflow_digits.py --seeds 3" in text
    assert any("".join(c["source"]).startswith("# replay: plays without a kernel") for c in code)
    sources = ["".join(c["source"]) for c in code]
    for checker in ("check.check_sweeps(", "check.check_bits("):
        assert sum(checker in s for s in sources) == 2  # the stub and the folded solution
