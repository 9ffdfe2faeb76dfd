"""The two flows of the circles chapter, trained with several seeds.

The chapter trains each configuration once (seed 0). This script repeats both trainings with
``--seeds`` seeds; seed ``s`` draws the 1000 training points (``fl.targets.circles(1000,
seed=s)``), the initial weights (``torch.manual_seed(s)``) and, for ``fl.fit``, the mini-batches
(``seed=s``). Seed 0 is the chapter's own run.

* **classic**: ``fl.SplineAutoregressive(2, hidden=(256, 256), bins=8, bound=3, layers=1)``,
  2000 full-batch Adam steps at learning rate 5e-3 (the hand-written loop of the chapter);
* **default**: ``fl.SplineAutoregressive(2)`` trained by ``fl.fit(flow, x, steps=2000,
  lr=5e-3, seed=s)`` (batches of 32, cosine schedule).

For every run it records, on the 20,000 test points of the chapter
(``fl.targets.circles(20000, seed=12345)``), the held-out NLL and the divergence
``D_KL(p || q)`` from the true density (the mean of ``log p - log q``: a paired estimate), the
training NLL minus the true density's training NLL (negative: the flow fits its own points
better than the truth does), and the log-density in the gap between the two rings: on the
circle of the radius where the true density is lowest, at the angle of 45 degrees (the ray the
chapter plots) and as the median and the maximum over 720 angles (a seam of mass across the
gap raises the maximum).

It writes ``book/data/circles_seeds.csv`` (one row per configuration and seed), which the
chapter reads with :func:`flowlab.runs.read`. Run it from the repository root:

    python bench/circles_seeds.py             # 5 seeds: about 4 min on a 2-core CPU
    python bench/circles_seeds.py --quick     # 2 seeds, 50 steps: a smoke test
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

import flowlab as fl
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _tables, when run from elsewhere
from _tables import DATA, header, load, write


def gap_radius() -> float:
    """The radius between the two rings where the true density is lowest."""
    r = torch.linspace(0.9, 1.8, 9001, dtype=torch.float64)
    log_p = fl.targets.circles_log_prob(torch.stack([r, torch.zeros_like(r)], 1))
    return float(r[log_p.argmin()])


def on_circle(radius: float, angles: torch.Tensor) -> torch.Tensor:
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], 1)


def classic(x: torch.Tensor, steps: int) -> fl.Flow:
    flow = fl.Flow(fl.SplineAutoregressive(2, hidden=(256, 256), bins=8, bound=3, layers=1), fl.StandardNormal(2))
    optimizer = torch.optim.Adam(flow.parameters(), lr=5e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -flow.log_prob(x).mean()
        loss.backward()
        optimizer.step()
    return flow


def default(x: torch.Tensor, steps: int, seed: int) -> fl.Flow:
    flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
    fl.fit(flow, x, steps=steps, lr=5e-3, seed=seed, progress=False)
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 50 steps (smoke test)")
    parser.add_argument("--out", default=str(DATA / "circles_seeds.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds, steps = (range(2), 50) if args.quick else (range(args.seeds), args.steps)
    started, load_before = time.perf_counter(), load()

    x_test = fl.targets.circles(20000, seed=12345)
    radius = gap_radius()
    ring = on_circle(radius, torch.arange(720) * (2 * math.pi / 720))
    ray = on_circle(radius, torch.tensor([math.pi / 4]))
    with torch.no_grad():
        log_p = fl.targets.circles_log_prob(x_test).double()
    rows = []
    for seed in seeds:
        x = fl.targets.circles(1000, seed=seed)
        true_train = float(-fl.targets.circles_log_prob(x).double().mean())
        for name in ("classic", "default"):
            torch.manual_seed(seed)
            flow = classic(x, steps) if name == "classic" else default(x, steps, seed)
            with torch.no_grad():
                log_q = flow.log_prob(x_test).double()
                gap = flow.log_prob(ring).double()
                row = {
                    "config": name,
                    "seed": seed,
                    "train NLL": round(float(-flow.log_prob(x).double().mean()), 4),
                    "train NLL - truth": round(float(-flow.log_prob(x).double().mean()) - true_train, 4),
                    "held-out NLL": round(float(-log_q.mean()), 4),
                    "KL": round(float((log_p - log_q).mean()), 4),
                    "KL SE": round(float((log_p - log_q).std() / math.sqrt(len(log_q))), 4),
                    "gap radius": round(radius, 4),
                    "gap log-density at 45 deg": round(float(flow.log_prob(ray)), 3),
                    "gap log-density median": round(float(gap.median()), 3),
                    "gap log-density max": round(float(gap.max()), 3),
                }
            rows.append(row)
            print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    with torch.no_grad():
        truth = float(fl.targets.circles_log_prob(ray))
    rows.append({"config": "truth", "seed": "", "gap radius": round(radius, 4), "gap log-density at 45 deg": round(truth, 3),
                 "gap log-density median": round(truth, 3), "gap log-density max": round(truth, 3)})
    note = header("bench/circles_seeds.py", f"{len(seeds)} seeds, {steps} steps", started, load_before)
    write(args.out, rows, note)
    print(f"wrote {args.out}: {note}")


if __name__ == "__main__":
    main()
