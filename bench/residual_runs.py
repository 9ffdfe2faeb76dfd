"""The seed sweeps of the chapter on residual flows, too slow to run in the chapter.

Two experiments, each writing one table into ``book/data/`` that the chapter reads:

* ``cheat`` -> ``residual_cheat.csv``. "Biased models cheat", with residual flows that fit the
  moons: ``fl.ResidualFlow(2, layers=8, hidden=(32, 32), coeff=0.97)`` trained by ``fl.fit``
  (400 steps, learning rate 1e-2, batches of 256) on ``fl.targets.moons(1000, seed=0)`` with
  the log-determinant estimated by the power series truncated after one term, after two terms,
  or computed exactly. Per run: the held-out NLL on ``moons(5000, seed=1)`` under the density the
  model was trained with (the series averaged over probes, computed exactly from the Jacobian)
  and under its true density (the exact log-determinant), the total mass of both on a
  180 x 180 grid over [-4.5, 4.5]^2, and the number of grid points where the Jacobian
  determinant of the trained map is negative (a fold). The same seeds train a spline flow of
  about the same size for the same 400 steps (``fl.SplineAutoregressive(2, hidden=(16, 16),
  layers=2)``, learning rate 5e-3); a Gaussian with the training set's mean and covariance is
  the trivial baseline.
* ``posterior`` -> ``residual_posterior.csv``. The chapter's reverse-KL fits of the four
  energies U1-U4 (planar flows with 2, 8 and 32 layers, a Sylvester flow with 3 layers, an IAF):
  120 Adam steps of 256 samples, learning rate 2e-2, for every seed; per run the true KL
  (loss plus log Z) on 4096 samples with its standard error over the samples, and the ESS as a
  fraction of the samples.

Regenerate them with

    python bench/residual_runs.py                  # both, 5 seeds: 15-30 min on 2 cores
    python bench/residual_runs.py --only cheat     # or posterior
    python bench/residual_runs.py --quick          # a smoke test

Single-threaded CPU. The numbers depend on the seeds and, through floating-point rounding, on
the machine: the spread over seeds says how much.
"""

from __future__ import annotations

import argparse
import time

import torch

import flowlab as fl
from _tables import load, save
from flowlab.testing import density_integral

MODES = {"series, n = 1": ("series", 1), "series, n = 2": ("series", 2), "exact": ("exact", None)}


def expected_series(block, x, terms=None):
    """log|det(I + J)| of one block (terms=None), or the n-term series averaged over probes,
    sum_k (-1)^(k+1) tr(J^k) / k, computed from the Jacobian."""
    jac = fl.numerics.jacobian(block.g, x)
    eye = torch.eye(2, dtype=x.dtype).expand_as(jac)
    if terms is None:
        return torch.linalg.slogdet(eye + jac).logabsdet
    power, total = eye, x.new_zeros(len(x))
    for k in range(1, terms + 1):
        power = power @ jac
        total = total + (-1) ** (k + 1) / k * power.diagonal(dim1=1, dim2=2).sum(-1)
    return total


def log_density(flow, x, terms=None):
    """The log-density the flow was trained with (``terms``) or its true one (``None``)."""
    ladj = x.new_zeros(len(x))
    with torch.no_grad():
        for block in flow.transform:
            ladj = ladj + expected_series(block, x, terms)
            x = x + block.g(x)
    return flow.base.log_prob(x) + ladj


def residual_flow(mode, seed):
    torch.manual_seed(seed)
    kind, terms = MODES[mode]
    return fl.Flow(fl.ResidualFlow(2, layers=8, hidden=(32, 32), coeff=0.97, ladj=kind, terms=terms or 1,
                                   generator=torch.Generator().manual_seed(seed)), fl.StandardNormal(2))


def cheat(seeds, quick):
    x_train, x_test = fl.targets.moons(1000, seed=0), fl.targets.moons(5000, seed=1)
    steps = 30 if quick else 400
    gaussian = torch.distributions.MultivariateNormal(x_train.mean(0), torch.cov(x_train.T))
    rows = [dict(model="Gaussian", seed="", true_nll=float(-gaussian.log_prob(x_test).mean()))]
    axis = torch.linspace(-4.5, 4.5, 120)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    for seed in seeds:
        for mode, (_, terms) in MODES.items():
            flow = residual_flow(mode, seed)
            clock = time.process_time()
            fl.fit(flow, x_train, steps=steps, lr=1e-2, batch_size=256, progress=False, seed=seed)
            seconds = time.process_time() - clock
            own, true = log_density(flow, x_test, terms), log_density(flow, x_test)
            with torch.no_grad():
                det = torch.linalg.det(fl.numerics.jacobian(lambda v: flow.transform(v)[0], grid))
            rows.append(dict(model=mode, seed=seed, own_nll=float(-own.mean()), true_nll=float(-true.mean()),
                             true_nll_se=float(true.std() / len(true) ** 0.5),
                             own_mass=density_integral(lambda g: log_density(flow, g, terms), lim=4.5, n=180, dtype=torch.float32),
                             true_mass=density_integral(lambda g: log_density(flow, g), lim=4.5, n=180, dtype=torch.float32),
                             folds=int((det < 0).sum()), min_det=float(det.min()), cpu=round(seconds, 1)))
            print(rows[-1], flush=True)
        torch.manual_seed(seed)
        spline = fl.Flow(fl.SplineAutoregressive(2, hidden=(16, 16), layers=2), fl.StandardNormal(2))
        clock = time.process_time()
        fl.fit(spline, x_train, steps=steps, lr=5e-3, batch_size=256, progress=False, seed=seed)
        with torch.no_grad():
            lp = spline.log_prob(x_test)
        rows.append(dict(model="spline", seed=seed, true_nll=float(-lp.mean()),
                         true_nll_se=float(lp.std() / len(lp) ** 0.5), cpu=round(time.process_time() - clock, 1)))
        print(rows[-1], flush=True)
    return rows


MODELS = {
    "planar K=2": lambda: fl.PlanarFlow(2, layers=2),
    "planar K=8": lambda: fl.PlanarFlow(2, layers=8),
    "planar K=32": lambda: fl.PlanarFlow(2, layers=32),
    "Sylvester x3": lambda: fl.SylvesterFlow(2, layers=3),
    "IAF": lambda: fl.IAF(2, hidden=(3,), layers=2),
}


def reverse_kl_fit(flow, log_p_target, steps=120, n=256, lr=2e-2):
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    for _ in range(steps):
        x, log_q = flow.rsample_and_log_prob(n)
        loss = (log_q - log_p_target(x)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return flow


def posterior(seeds, quick):
    rows = []
    for seed in seeds:
        for target in ("U1", "U2", "U3", "U4"):
            log_p, log_z = fl.targets.DENSITIES[target], fl.targets.LOG_Z[target]
            for name, make in MODELS.items():
                torch.manual_seed(seed)
                flow = fl.Flow(make(), fl.StandardNormal(2))
                reverse_kl_fit(flow, log_p, steps=10 if quick else 120)
                _, log_w = fl.diagnostics.log_weights(flow, log_p, 4096,
                                                      generator=torch.Generator().manual_seed(1 + 1000 * seed))
                kl = -log_w + log_z
                rows.append(dict(target=target, model=name, seed=seed, kl=float(kl.mean()),
                                 kl_se=float(kl.std() / len(kl) ** 0.5),
                                 ess=fl.diagnostics.ess(log_w) / len(log_w)))
            print(seed, target, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=("cheat", "posterior"), action="append")
    parser.add_argument("--quick", action="store_true", help="2 seeds, short runs: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.seeds = 2
    torch.set_num_threads(1)
    for name in args.only or ("cheat", "posterior"):
        started, load_before = time.perf_counter(), load()
        rows = cheat(range(args.seeds), args.quick) if name == "cheat" else posterior(range(args.seeds), args.quick)
        command = f"python bench/residual_runs.py --only {name}" + (" --quick" if args.quick else "")
        save(f"residual_{name}.csv", rows, command, f"seeds {args.seeds}", started, load_before, args.quick)


if __name__ == "__main__":
    main()
