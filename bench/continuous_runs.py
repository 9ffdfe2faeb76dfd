"""The seed sweeps of the chapter on continuous-time flows, too slow to run in the chapter.

Three experiments, each writing one table into ``book/data/`` that the chapter reads:

* ``circles`` -> ``continuous_circles.csv``. The chapter's CNF (a ``TimeMLP`` field with two
  hidden layers of 64, ``trace="discrete"``) trained on ``fl.targets.circles(1000, seed=0)``
  with 4, 8 and 16 RK4 steps, and the spline flow of the circles chapter, each for 130 steps
  (the chapter's recipe), for every seed. Per run: held-out NLL on 5000 test points and its gap
  to the true density (a paired mean with its standard error over the test points), the number
  of points of a 100 x 100 grid over [-2.2, 2.2]^2 where the Jacobian determinant of the trained
  map is negative (a fold), the smallest determinant, the total mass on [-4, 4]^2 (400 x 400
  midpoint rule), twice the mass on the folded grid cells (the mass a fold counts twice), the
  largest Jacobian norm of the field along the grid's trajectories. Also per seed: the CNF
  with 4 RK4 steps trained with the integrated trace (``trace="exact"``), whose ladj is not
  that of its map: its held-out NLL and its total mass.
* ``nfe`` -> ``continuous_nfe.csv``. The same field trained with the adaptive solver dopri5
  (``torchdiffeq``, rtol = atol = 1e-3, exact trace), with and without the kinetic penalty 0.1:
  the number of field evaluations of every training step's forward solve (the growth FFJORD
  reports), and the held-out NLL at the end.
* ``topology`` -> ``continuous_topology.csv``. Two Gaussian bumps (``fl.targets.two_modes``,
  standard deviation 0.5) at separations 3 to 8: a CNF with 8 RK4 steps and a spline flow, each
  trained until its held-out NLL is within ``--gap`` nats (default 0.05) of the truth (checked
  every 50 steps, at most 800 steps), so that every separation is fitted about equally well.
  Per run: the steps used, the gap reached, the mass in the bridge |x1| < 0.5, |x2| < 3 (and the
  true one), and for the CNF the largest Jacobian norm of the field along the test points'
  trajectories and the fewest RK4 steps that invert the trained field to 1e-4.

Regenerate them with

    python bench/continuous_runs.py                      # all three: 20-40 min on 2 cores
    python bench/continuous_runs.py --only circles       # or nfe, or topology
    python bench/continuous_runs.py --quick              # a smoke test: 2 seeds, short runs

Single-threaded CPU. The numbers depend on the seeds and, through floating-point rounding, on
the machine: the spread over seeds says how much.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

import flowlab as fl
from _tables import load, save
from flowlab.testing import density_integral

BASE = fl.StandardNormal(2)


def train(cnf, data, steps=130, lr=5e-2, batch_size=128, kinetic=0.0, seed=0, on_step=None):
    """The chapter's loop: maximum likelihood (plus ``kinetic`` times the kinetic energy), Adam
    with a cosine schedule; ``on_step(step, solution)`` after every step."""
    optimizer = torch.optim.Adam(cnf.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    g = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        x = data[torch.randint(len(data), (batch_size,), generator=g)]
        sol = cnf.solve(x, kinetic=kinetic > 0)
        loss = -(BASE.log_prob(sol.value) + sol.ladj).mean()
        if kinetic > 0:
            loss = loss + kinetic * sol.kinetic.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if on_step is not None and on_step(step, sol):
            break


def new_cnf(seed=0, **kwargs):
    torch.manual_seed(seed)
    return fl.CNF(2, hidden=(64, 64), trace="discrete", **kwargs)


def as_map(cnf):
    """A float64 copy of ``cnf`` whose solve gives the map alone (the trace mode does not change it)."""
    c = copy.deepcopy(cnf).double()
    c.trace = "exact"
    return c


def grid(lim, n):
    axis = torch.linspace(-lim, lim, n, dtype=torch.float64)
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def determinants(cnf, points):
    """det of the Jacobian of the discrete map at each point (``CNF.signed_det``), in float64."""
    return as_map(cnf).signed_det(points)


def largest_jacobian(cnf, points):
    """The largest spectral norm of the field's Jacobian at the points carried to k / steps."""
    c = as_map(cnf)
    worst = 0.0
    with torch.no_grad():
        for k in range(c.steps + 1):
            t = k / c.steps
            zt = c.solve(points, 0.0, t).value if k else points
            time_t = torch.tensor(t, dtype=torch.float64)
            jac = fl.numerics.jacobian(lambda z: c.field(time_t, z), zt)
            worst = max(worst, float(torch.linalg.matrix_norm(jac, ord=2).max()))
    return worst


def steps_needed(cnf, points, tol=1e-4, options=(4, 6, 8, 12, 16, 24, 32, 48, 64)):
    c = as_map(cnf)
    with torch.no_grad():
        for n in options:
            c.steps = n
            if float((c.inverse(c(points)[0])[0] - points).abs().max()) < tol:
                return n
    return ""


def mean_se(v):
    v = v.detach().double()
    return float(v.mean()), float(v.std() / len(v) ** 0.5)


def circles(seeds, quick):
    x_train = fl.targets.circles(1000, seed=0)
    x_test = fl.targets.circles(5000, seed=12345)
    truth = fl.targets.circles_log_prob(x_test)
    fold_grid = grid(2.2, 40 if quick else 100)
    rows = []
    for seed in seeds:
        for rk4 in (4, 8, 16):
            clock = time.process_time()
            cnf = new_cnf(seed, steps=rk4)
            train(cnf, x_train, steps=20 if quick else 130, seed=seed)
            seconds = time.process_time() - clock
            flow = fl.Flow(cnf, BASE)
            with torch.no_grad():
                nll = mean_se(-flow.log_prob(x_test))
                gap = mean_se(truth - flow.log_prob(x_test))
            det = determinants(cnf, fold_grid)
            flow64 = fl.Flow(copy.deepcopy(cnf).double(), BASE.double())
            mass = density_integral(flow64, lim=4.0, n=60 if quick else 400)
            with torch.no_grad():  # the mass counted twice: twice the mass on the folded cells
                cell = (4.4 / (int(len(det) ** 0.5) - 1)) ** 2
                excess = 2 * float(flow64.log_prob(fold_grid[det < 0]).exp().sum()) * cell
            rows.append(dict(seed=seed, model=f"CNF, {rk4} RK4 steps", rk4=rk4, nll=nll[0], nll_se=nll[1],
                             gap=gap[0], gap_se=gap[1], folds=int((det < 0).sum()), grid_points=len(det),
                             min_det=float(det.min()), mass=mass, excess=excess,
                             max_jacobian=largest_jacobian(cnf, fold_grid[:: 4 if quick else 16]),
                             cpu=round(seconds, 2)))
            print(rows[-1], flush=True)
        clock = time.process_time()  # the integrated trace with 4 steps: not the ladj of the map
        cheat = new_cnf(seed, steps=4)
        cheat.trace = "exact"
        train(cheat, x_train, steps=20 if quick else 130, seed=seed)
        with torch.no_grad():
            nll = mean_se(-fl.Flow(cheat, BASE).log_prob(x_test))
        rows.append(dict(seed=seed, model="CNF, 4 RK4 steps, integrated trace", rk4=4, nll=nll[0], nll_se=nll[1],
                         mass=density_integral(fl.Flow(copy.deepcopy(cheat).double(), BASE.double()), lim=4.0,
                                               n=60 if quick else 400),
                         cpu=round(time.process_time() - clock, 2)))
        print(rows[-1], flush=True)
        clock = time.process_time()
        torch.manual_seed(seed)
        spline = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
        fl.fit(spline, x_train, steps=20 if quick else 130, lr=5e-3, batch_size=128, seed=seed, progress=False)
        with torch.no_grad():
            nll = mean_se(-spline.log_prob(x_test))
            gap = mean_se(truth - spline.log_prob(x_test))
        rows.append(dict(seed=seed, model="spline flow", rk4="", nll=nll[0], nll_se=nll[1], gap=gap[0], gap_se=gap[1],
                         cpu=round(time.process_time() - clock, 2)))
        print(rows[-1], flush=True)
    return rows


def nfe(seeds, quick):
    x_train = fl.targets.circles(1000, seed=0)
    x_test = fl.targets.circles(2000, seed=12345)
    truth = fl.targets.circles_log_prob(x_test)
    rows = []
    for seed in seeds:
        for kinetic in (0.0, 0.1):
            torch.manual_seed(seed)
            cnf = fl.CNF(2, hidden=(64, 64), solver="dopri5", rtol=1e-3, atol=1e-3, trace="exact")
            clock = time.process_time()
            counts = []
            train(cnf, x_train, steps=20 if quick else 130, kinetic=kinetic, seed=seed,
                  on_step=lambda step, sol: counts.append((step, sol.nfe)))
            seconds = time.process_time() - clock
            with torch.no_grad():
                gap = mean_se(truth - fl.Flow(cnf, BASE).log_prob(x_test))
            for step, n in counts:
                rows.append(dict(seed=seed, kinetic=kinetic, step=step, nfe=n, gap=gap[0], gap_se=gap[1],
                                 cpu=round(seconds, 1)))
            print(seed, kinetic, counts[0], counts[-1], gap, round(seconds, 1), flush=True)
    return rows


def topology(seeds, quick, target):
    rows = []
    for separation in (3.0, 4.0, 5.0, 6.0, 7.0, 8.0):
        data = fl.targets.two_modes(1000, separation=separation, seed=0)
        test = fl.targets.two_modes(3000, separation=separation, seed=1)

        def truth(x, s=separation):
            return fl.targets.two_modes_log_prob(x, separation=s) - fl.targets.two_modes_log_z()

        band = ((-0.5, 0.5), (-3.0, 3.0))
        true_bridge = density_integral(truth, lim=band, n=120)
        for seed in seeds:
            for model in ("CNF, 8 RK4 steps", "spline flow"):
                clock = time.process_time()
                if model == "spline flow":
                    torch.manual_seed(seed)  # bound 6: the bumps at +-4 stay inside the spline's interval
                    flow = fl.Flow(fl.SplineAutoregressive(2, bound=6.0), fl.StandardNormal(2))
                else:
                    flow = fl.Flow(new_cnf(seed, steps=8), BASE)
                used = {"steps": 0, "gap": float("nan")}

                def check(step, *_, flow=flow):
                    used["steps"] = step
                    if step % 50:
                        return False
                    with torch.no_grad():
                        used["gap"] = float((truth(test) - flow.log_prob(test)).mean())
                    return used["gap"] <= target

                limit = 40 if quick else 800
                if model == "spline flow":
                    fl.fit(flow, data, steps=limit, lr=5e-3, batch_size=128, seed=seed, progress=False,
                           callback=lambda step, loss: check(step))
                else:
                    train(flow.transform, data, steps=limit, lr=2e-2, seed=seed, on_step=lambda step, sol: check(step))
                seconds = time.process_time() - clock
                with torch.no_grad():
                    gap = mean_se(truth(test) - flow.log_prob(test))
                row = dict(separation=separation, seed=seed, model=model, steps=used["steps"], gap=gap[0],
                           gap_se=gap[1], bridge=density_integral(flow.double(), lim=band, n=120),
                           true_bridge=true_bridge, cpu=round(seconds, 1))
                flow.float()
                if model != "spline flow":
                    pts = test[:100].double()
                    row.update(max_jacobian=largest_jacobian(flow.transform, pts),
                               rk4_needed=steps_needed(flow.transform, pts))
                rows.append(row)
                print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=("circles", "nfe", "topology"), action="append")
    parser.add_argument("--gap", type=float, default=0.05, help="target NLL gap of the topology runs (nats)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, short runs: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.seeds = 2
    torch.set_num_threads(1)
    seeds = range(args.seeds)
    for name in args.only or ("circles", "nfe", "topology"):
        started, load_before = time.perf_counter(), load()
        if name == "circles":
            rows = circles(seeds, args.quick)
        elif name == "nfe":
            rows = nfe(seeds if not args.quick else range(1), args.quick)
        else:
            rows = topology(seeds, args.quick, args.gap)
        command = f"python bench/continuous_runs.py --only {name}" + (" --quick" if args.quick else "")
        save(f"continuous_{name}.csv", rows, command, f"seeds {args.seeds}", started, load_before, args.quick)


if __name__ == "__main__":
    main()
