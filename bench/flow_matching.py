#!/usr/bin/env python
r"""Flow matching: flowlab against torchcfm, and the seed sweep of the flow-matching chapter.

``peers``: flowlab's :func:`flowlab.objectives.flow_matching` trained by :class:`flowlab.Training`
next to torchcfm's ``ConditionalFlowMatcher`` (I-CFM, ``sigma=0``) and
``ExactOptimalTransportConditionalFlowMatcher`` (OT-CFM, POT's exact plan) in the loop of
torchcfm's 2-D notebooks. The same field in every model: ``flowlab.time_mlp.TimeMLP(2, (64, 64))``
(tanh, 3 time frequencies, 4,866 parameters, last layer at zero), the same initial weights, Adam
with the same learning rate and cosine schedule, the same batch size and number of steps, on
``flowlab.targets.circles(1000, seed=0)``. torchcfm runs its own time convention (noise at
:math:`t = 0`, data at 1) and its loss is the mean over coordinates (flowlab's is the sum: the
printed losses are both in flowlab's units). Training is interleaved in rounds (the order
rotates), so a shared machine slows every model alike; ms/step is the median over rounds. After
training, every field is evaluated by the same flowlab code: the held-out NLL of 5000 fresh
points through the ODE solved by dopri5 at 1e-5 with the exact trace (torchcfm's field with
its time reversed, :math:`g(t, z) = -v(1 - t, z)`), and the function evaluations dopri5 needs
at 1e-4 to sample 2000 points.

``table``: the measurements of the chapter ``book/flow_matching.ipynb`` over several seeds
(each seed: the initial weights, the mini-batches and the flow-matching draws; the data are the
chapter's). Per seed it trains, on the circles,

* ``ML``: maximum likelihood as in the continuous-time chapter (4 RK4 steps with the exact
  log-determinant of that map, batch 128, lr 5e-2, 130 steps);
* ``FM``: flow matching with the same field, linear path, independent pairs (batch 512, lr 5e-2,
  ``--fm-steps`` steps: about the same CPU time as ``ML``);
* ``FM-OT``: the same with exact minibatch OT pairs (batch 128);
* ``reflow``: ``FM``'s field trained further on fixed pairs (base point, ``FM``'s sample of it);
* ``VP``: flow matching on the variance-preserving path;
* ``floor``: flow matching on Gaussian data, whose loss floor is known;

and records for each: the CPU seconds of training, the held-out NLL of the ODE (dopri5 1e-5,
exact trace), the NLL of the 4-step RK4 map (exact for that map), its mass on a grid and its
folds (grid points with a signed Jacobian determinant <= 0; also those of the 16-step map),
dopri5's evaluations to sample, the
straightness of the sample paths and the Euler steps needed to sample within 0.05 of the ODE's
samples. It writes ``book/data/flow_matching_runs.csv`` (one row per model and seed).

    python bench/flow_matching.py peers            # 2000 steps, about 2 min on 2 cores
    python bench/flow_matching.py peers --quick    # smoke run
    python bench/flow_matching.py table            # 5 seeds, about 5 min on 2 cores
    python bench/flow_matching.py table --quick    # 2 seeds, short trainings, to /tmp

peers needs torchcfm and POT (``pip install torchcfm==1.0.7 pot==0.9.7.post1``: MIT licensed,
for this benchmark only). Times on a shared machine are upper bounds: the script prints the load.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

import flowlab as fl
from flowlab.objectives import flow_matching
from flowlab.testing import density_integral
from flowlab.time_mlp import TimeMLP

HIDDEN = (64, 64)
DATA = Path(__file__).resolve().parent.parent / "book" / "data"
GRID = torch.linspace(-3, 3, 101)  # the fold check's lattice


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


# ------------------------------------------------------------------------------ evaluation


class Reversed(nn.Module):
    """A field trained in torchcfm's time (noise at t = 0) as a field in the CNF's (data at t = 0)."""

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field

    def forward(self, t, z):
        return -self.field(1 - t, z)


def ode_nll(field: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Held-out NLL and its standard error over the points, by the ODE solved accurately."""
    accurate = fl.Flow(fl.CNF(2, solver="dopri5", rtol=1e-5, atol=1e-5, min_step=1e-7, field=field),
                       fl.StandardNormal(2))
    with torch.no_grad():
        lp = accurate.log_prob(x)
    return float(-lp.mean()), float(lp.std() / math.sqrt(len(lp)))


def sample_nfe(field: nn.Module, n: int = 2000, tol: float = 1e-4) -> int:
    """dopri5's function evaluations to sample ``n`` points (from t = 1 to 0) at ``rtol = atol = tol``."""
    cnf = fl.CNF(2, solver="dopri5", rtol=tol, atol=tol, field=field)
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return cnf.solve(z, 1.0, 0.0).nfe


def fixed_map(field: nn.Module, steps: int) -> fl.Flow:
    """The flow of ``steps`` RK4 steps of ``field`` with the exact log-determinant of that map."""
    cnf = fl.CNF(2, hidden=HIDDEN, steps=steps, trace="discrete")
    cnf.field = field
    return fl.Flow(cnf, fl.StandardNormal(2))


def map_report(field: nn.Module, x: torch.Tensor, steps: int = 4) -> dict:
    """NLL, grid mass and folds of the ``steps``-step RK4 map of ``field``, and the folds of its 16-step map."""
    flow = fixed_map(field, steps)
    grid = torch.cartesian_prod(GRID, GRID)
    with torch.no_grad():
        lp = flow.log_prob(x)
        det = flow.transform.signed_det(grid)
        det16 = fixed_map(field, 16).transform.signed_det(grid)
    return {f"NLL {steps} steps": float(-lp.mean()), f"mass {steps} steps": density_integral(flow, lim=3.0, n=100),
            f"folds {steps} steps": int((det <= 0).sum()), "folds 16 steps": int((det16 <= 0).sum())}


def paths(field: nn.Module, n: int = 2000) -> dict:
    r"""Straightness :math:`\mathbb E\int_0^1 \lVert g\rVert^2 dt - \mathbb E\lVert z_1 - z_0\rVert^2`
    (0 for straight paths at constant speed; Liu et al. 2023) of the sample paths from ``n`` base
    points, and the fewest Euler steps whose samples lie within 0.05 (mean distance) of the
    ODE's (RK4, 64 steps)."""
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        sol = fl.CNF(2, steps=64, field=field).solve(z, 1.0, 0.0, kinetic=True)
        straightness = float(sol.kinetic.abs().mean() - (sol.value - z).pow(2).sum(1).mean())
        errors = {}
        for steps in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64):
            x = fl.CNF(2, steps=steps, solver="euler", field=field).solve(z, 1.0, 0.0).value
            errors[steps] = float((x - sol.value).norm(dim=1).mean())
    needed = next((s for s, e in errors.items() if e < 0.05), math.inf)
    return {"straightness": straightness, "Euler steps": needed, "Euler error 1 step": errors[1],
            "Euler error 4 steps": errors[4]}


# ------------------------------------------------------------------------------ peers


class FlowlabRun:
    def __init__(self, x, steps, lr, batch, coupling):
        torch.manual_seed(0)
        self.flow = fl.Flow(fl.CNF(2, hidden=HIDDEN), fl.StandardNormal(2))
        objective = "flow_matching" if coupling == "independent" else partial(flow_matching, coupling=coupling)
        self.run = fl.Training(self.flow, x, steps, lr, batch, objective=objective, seed=0)

    def train(self, n):
        return [self.run.step() for _ in range(n)][-1]

    def field(self):
        return self.flow.transform.field


class TorchCFMRun:
    """The loop of torchcfm's 2-D notebooks, with the same field, optimizer and schedule."""

    def __init__(self, x, steps, lr, batch, coupling):
        from torchcfm.conditional_flow_matching import (
            ConditionalFlowMatcher,
            ExactOptimalTransportConditionalFlowMatcher,
        )

        torch.manual_seed(0)
        self.model = TimeMLP(2, HIDDEN)
        self.matcher = ConditionalFlowMatcher(sigma=0.0) if coupling == "independent" else \
            ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, steps)
        self.x, self.batch = x, batch
        self.g = torch.Generator().manual_seed(0)

    def train(self, n):
        for _ in range(n):
            self.optimizer.zero_grad()
            x1 = self.x[torch.randint(len(self.x), (self.batch,), generator=self.g)]
            x0 = torch.randn_like(x1)
            t, xt, ut = self.matcher.sample_location_and_conditional_flow(x0, x1)
            vt = self.model(t, xt)
            loss = torch.mean((vt - ut) ** 2)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
        return 2 * float(loss.detach())  # in flowlab's units: the sum over the 2 coordinates

    def field(self):
        return Reversed(self.model)


def peers(args) -> None:
    from importlib.metadata import version

    torch.set_num_threads(args.threads)
    x, test = fl.targets.circles(1000, seed=0), fl.targets.circles(5000, seed=12345)
    runs = {}
    for coupling in ("independent", "ot"):
        suffix = "" if coupling == "independent" else " OT"
        runs["flowlab" + suffix] = FlowlabRun(x, args.steps, args.lr, args.batch, coupling)
        runs["torchcfm" + suffix] = TorchCFMRun(x, args.steps, args.lr, args.batch, coupling)
    names = list(runs)
    chunk = args.steps // args.rounds
    per_round, losses = {n: [] for n in names}, {}
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}, "
          f"torchcfm {version('torchcfm')}, POT {version('pot')}; {args.steps} steps, batch {args.batch}, "
          f"lr {args.lr:g} (cosine); load average before: {load()}")
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            start = time.perf_counter()
            losses[n] = runs[n].train(chunk)
            per_round[n].append(1e3 * (time.perf_counter() - start) / chunk)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {per_round[n][-1]:.2f} ms" for n in names), flush=True)
    print(f"load average after training: {load()}")
    true = fl.targets.circles_log_prob(test)
    print(f"\ntrue density: held-out NLL {float(-true.mean()):.3f}")
    print(f"{'model':14s} {'ms/step median [min, max]':>27s} {'last loss':>10s} {'held-out NLL (ODE)':>19s} "
          f"{'dopri5 NFE to sample':>21s}")
    ms = {}
    for n in names:
        ms[n] = statistics.median(per_round[n])
        nll, se = ode_nll(runs[n].field(), test)
        print(f"{n:14s} {ms[n]:8.2f} [{min(per_round[n]):.2f}, {max(per_round[n]):.2f}]      {losses[n]:10.3f} "
              f"{nll:11.3f} ± {se:.3f} {sample_nfe(runs[n].field()):21d}")
    for suffix in ("", " OT"):
        a, b = ms["flowlab" + suffix], ms["torchcfm" + suffix]
        print(f"flowlab{suffix} ms/step / torchcfm{suffix} ms/step = {a:.2f} / {b:.2f} = {a / b:.2f}")


# ------------------------------------------------------------------------------ the chapter's table


def new_cnf(seed: int, steps: int = 4) -> fl.Flow:
    torch.manual_seed(seed)
    return fl.Flow(fl.CNF(2, hidden=HIDDEN, steps=steps, trace="discrete"), fl.StandardNormal(2))


def timed_fit(flow, x, **kwargs) -> float:
    start = time.process_time()
    fl.fit(flow, x, progress=False, **kwargs)
    return time.process_time() - start


def reflow_pairs(field: nn.Module, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` base points and the samples the field's ODE (RK4, 32 steps) makes of them."""
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(10_000 + seed))
    with torch.no_grad():
        return fl.CNF(2, steps=32, field=field).solve(z, 1.0, 0.0).value, z


def floor_run(seed: int, steps: int) -> dict:
    """Flow matching on Gaussian data N(mu, diag(s^2)): the plateau of the loss against its floor."""
    mu, s = torch.tensor([1.0, -0.5]), torch.tensor([1.5, 0.5])
    x = mu + s * torch.randn(4000, 2, generator=torch.Generator().manual_seed(seed))
    flow = new_cnf(seed)
    start = time.process_time()
    history = fl.fit(flow, x, steps=steps, lr=2e-2, batch_size=512, progress=False, seed=seed,
                     objective="flow_matching")
    tail = torch.tensor(history.loss[-steps // 4:])
    return {"cpu s": time.process_time() - start, "loss plateau": float(tail.mean()),
            "floor": math.pi / 2 * float(s.sum())}


def table(args) -> None:
    torch.set_num_threads(1)
    x, test = fl.targets.circles(1000, seed=0), fl.targets.circles(5000, seed=12345)
    rows = []
    began = time.perf_counter()
    for seed in range(args.seeds):
        models = {}
        flow = new_cnf(seed)
        t = timed_fit(flow, x, steps=args.ml_steps, lr=5e-2, batch_size=128, seed=seed)
        models["ML"] = (flow, t, args.ml_steps)
        flow = new_cnf(seed)
        t = timed_fit(flow, x, steps=args.fm_steps, lr=5e-2, batch_size=512, seed=seed, objective="flow_matching")
        models["FM"] = (flow, t, args.fm_steps)
        flow = new_cnf(seed)
        t = timed_fit(flow, x, steps=args.ot_steps, lr=5e-2, batch_size=128, seed=seed,
                      objective=partial(flow_matching, coupling="ot"))
        models["FM-OT"] = (flow, t, args.ot_steps)
        start = time.process_time()
        pairs, z = reflow_pairs(models["FM"][0].transform.field, 2000, seed)
        flow = new_cnf(seed)
        flow.load_state_dict(models["FM"][0].state_dict())
        fl.fit(flow, pairs, steps=args.reflow_steps, lr=1e-2, batch_size=None, seed=seed, progress=False,
               objective=partial(flow_matching, coupling=z))
        models["reflow"] = (flow, time.process_time() - start, args.reflow_steps)
        flow = new_cnf(seed)
        t = timed_fit(flow, x, steps=args.fm_steps, lr=5e-2, batch_size=512, seed=seed,
                      objective=partial(flow_matching, path="vp"))
        models["VP"] = (flow, t, args.fm_steps)
        for name, (flow, cpu, steps) in models.items():
            field = flow.transform.field
            nll, se = ode_nll(field, test)
            row = {"model": name, "seed": seed, "training steps": steps, "cpu s": cpu, "ms per step": 1e3 * cpu / steps,
                   "NLL ODE": nll, "NLL ODE SE": se, **map_report(field, test), "dopri5 NFE to sample": sample_nfe(field),
                   **paths(field)}
            rows.append(row)
            print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        row = {"model": "floor", "seed": seed, "training steps": args.floor_steps, **floor_run(seed, args.floor_steps)}
        rows.append(row)
        print(row, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(out, "w", newline="") as f:
        f.write(f"# measured by bench/flow_matching.py table on {platform.processor() or platform.machine()}, "
                f"torch {torch.__version__}, 1 thread; {args.seeds} seeds; {time.perf_counter() - began:.0f} s in "
                f"all; load average at the end {load()}\n")
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("peers", help="flowlab against torchcfm")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="200 steps in 4 rounds")
    t = sub.add_parser("table", help="the chapter's seed sweep")
    t.add_argument("--seeds", type=int, default=5)
    t.add_argument("--ml-steps", type=int, default=130)
    t.add_argument("--fm-steps", type=int, default=2000)
    t.add_argument("--ot-steps", type=int, default=2000)
    t.add_argument("--reflow-steps", type=int, default=600)
    t.add_argument("--floor-steps", type=int, default=800)
    t.add_argument("--out", default=str(DATA / "flow_matching_runs.csv"))
    t.add_argument("--quick", action="store_true", help="2 seeds, short trainings, written to /tmp")
    args = parser.parse_args()
    if args.command == "peers":
        if args.quick:
            args.steps, args.rounds = 200, 4
        peers(args)
    else:
        if args.quick:
            args.seeds, args.ml_steps, args.fm_steps, args.ot_steps = 2, 10, 100, 50
            args.reflow_steps, args.floor_steps, args.out = 50, 100, "/tmp/flow_matching_runs.csv"
        table(args)


if __name__ == "__main__":
    main()
