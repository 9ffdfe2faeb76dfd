"""What a brute-force log-determinant costs a training step, as the dimension grows.

The chapter on the cost of Jacobians trains one flow in d = 16 twice: with the layer's own
log-determinant and with the brute-force one. This script measures the time of one training
step for d = 4, 8, ..., 128 and three ways of getting the log-determinant:

* **structured**: ``flow.log_prob`` (the layers' own ``ladj``, a sum of logarithms);
* **loop**: ``flowlab.numerics.jacobian_ladj``, the Jacobian by d backward passes in a Python
  loop (kept differentiable), then ``torch.linalg.slogdet``;
* **jacrev**: ``torch.func.vmap(torch.func.jacrev(...))``, the same Jacobian with the d
  backward passes vectorized into batched operations, then ``slogdet``.

The flow is ``fl.MAF(d, hidden=(h, h), layers=2)`` with ``h = max(64, d)`` (a masked network
needs at least d - 1 hidden units), the data a correlated Gaussian, a batch of 256 points,
and a step is the loss, its backward pass and an Adam update. The three losses are checked to
agree before timing. Timings interleave: in each of ``--rounds`` rounds every (d, method) runs
a fixed number of steps (about ``--budget`` seconds, at least one), in an order that rotates
from round to round. The table gives the median milliseconds per step over the rounds, and
the step-time ratios brute force / structured computed within each round, then their median
(and the smallest and largest over the rounds).

It writes ``book/data/jacobian_cost_steps.csv``, which the chapter reads with
:func:`flowlab.runs.read`. From the repository root:

    python bench/jacobian_cost.py             # about 3 min on a 2-core CPU
    python bench/jacobian_cost.py --quick     # d up to 16, 2 rounds: a smoke test
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

import flowlab as fl
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _tables, when run from elsewhere
from _tables import DATA, header, interleaved, load, write
from flowlab import numerics


def jacrev_ladj(fn, x: torch.Tensor) -> torch.Tensor:
    """log|det| of the Jacobian of ``fn`` at each row of ``x``, by ``vmap(jacrev(...))``."""
    jacobians = torch.func.vmap(torch.func.jacrev(lambda v: fn(v[None])[0]))(x)
    return torch.linalg.slogdet(jacobians).logabsdet


def step_functions(d: int, batch: int = 256) -> dict:
    g = torch.Generator().manual_seed(0)
    a = torch.tril(0.5 * torch.randn(d, d, generator=g), -1) + torch.diag(0.5 + torch.rand(d, generator=g))
    x = torch.randn(batch, d, generator=g) @ a.T
    torch.manual_seed(0)
    flow = fl.Flow(fl.MAF(d, hidden=(max(64, d),) * 2, layers=2), fl.StandardNormal(d))
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-9)  # the cost of a step, not its progress

    def to_latent(v):
        return flow.transform(v)[0]

    def loss(method: str) -> torch.Tensor:
        if method == "structured":
            return -flow.log_prob(x).mean()
        z, _ = flow.transform(x)
        ladj = numerics.jacobian_ladj(to_latent, x) if method == "loop" else jacrev_ladj(to_latent, x)
        return -(flow.base.log_prob(z) + ladj).mean()

    values = {m: float(loss(m).detach()) for m in ("structured", "loop", "jacrev")}
    if max(abs(v - values["structured"]) for v in values.values()) > 1e-3 * (1 + abs(values["structured"])):
        raise AssertionError(f"d = {d}: the three losses disagree: {values}")

    def step(method: str):
        def run():
            optimizer.zero_grad()
            loss(method).backward()
            optimizer.step()

        return run

    return {m: step(m) for m in values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per (d, method) and round")
    parser.add_argument("--quick", action="store_true", help="d up to 16, 2 rounds (smoke test)")
    parser.add_argument("--out", default=str(DATA / "jacobian_cost_steps.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    dims = (4, 8, 16) if args.quick else (4, 8, 16, 32, 64, 128)
    rounds = 2 if args.quick else args.rounds
    started, load_before = time.perf_counter(), load()
    tasks = {}
    for d in dims:
        for method, fn in step_functions(d).items():
            tasks[d, method] = fn
    seconds = interleaved(tasks, rounds, args.budget)
    rows = []
    for d in dims:
        ms = {m: 1e3 * np.array(seconds[d, m]) for m in ("structured", "loop", "jacrev")}
        row = {"d": d, "hidden": max(64, d), "rounds": rounds}
        for m, v in ms.items():
            row[f"ms {m}"] = round(float(np.median(v)), 3)
        for m in ("loop", "jacrev"):
            ratio = ms[m] / ms["structured"]  # within each round
            row[f"{m} / structured"] = round(float(np.median(ratio)), 2)
            row[f"{m} / structured min"] = round(float(ratio.min()), 2)
            row[f"{m} / structured max"] = round(float(ratio.max()), 2)
        rows.append(row)
        print(row, flush=True)
    note = header("bench/jacobian_cost.py", f"median over {rounds} interleaved rounds", started, load_before)
    write(args.out, rows, note)
    print(f"wrote {args.out}: {note}")
    assert all(math.isfinite(r["loop / structured"]) for r in rows)


if __name__ == "__main__":
    main()
