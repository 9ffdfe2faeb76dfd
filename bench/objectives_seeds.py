"""Mode covering and mode seeking in the objectives chapter, repeated over seeds.

The chapter fits the two-bump target (``fl.targets.two_modes``) once with each objective:
a MAF by the forward KL on 2000 samples, an IAF of the same size by the reverse KL on the
unnormalized density, 400 steps each (batches of 256, learning rate 5e-3). Which bump the IAF
settles on, and how much mass the MAF leaves between the bumps, depend on the seed. This
script repeats both fits with ``--seeds`` seeds: seed ``s`` draws the initial weights
(``torch.manual_seed(s)``), the mini-batches or base samples (``seed=s``) and, for the MAF,
the 2000 training points (``fl.targets.two_modes(2000, seed=s)``; seed 0 is the chapter's run).

For every fit, from 20,000 samples of the trained flow: the share in the left half
(``x1 < 0``), the share between the bumps (``|x1| < 1.5``), and the importance-sampling
estimate of ``log C`` (20,000 proposals) minus its exact value ``log pi``.

It writes ``book/data/objectives_seeds.csv`` (one row per objective and seed), which the
chapter reads with :func:`flowlab.runs.read`. From the repository root:

    python bench/objectives_seeds.py            # 10 seeds: about 2 min on a 2-core CPU
    python bench/objectives_seeds.py --quick    # 2 seeds, 20 steps: a smoke test
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


def fit(objective: str, seed: int, steps: int) -> fl.Flow:
    torch.manual_seed(seed)
    transform = fl.MAF(2, hidden=(32, 32), layers=4)
    if objective == "forward KL (MAF)":
        flow = fl.Flow(transform, fl.StandardNormal(2))
        fl.fit(flow, fl.targets.two_modes(2000, seed=seed), steps=steps, lr=5e-3, batch_size=256, seed=seed,
               progress=False)
    else:
        flow = fl.Flow(transform.inv, fl.StandardNormal(2))
        fl.fit(flow, fl.targets.two_modes_log_prob, steps=steps, lr=5e-3, batch_size=256, seed=seed, progress=False)
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 steps (smoke test)")
    parser.add_argument("--out", default=str(DATA / "objectives_seeds.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds, steps = (range(2), 20) if args.quick else (range(args.seeds), 400)
    started, load_before = time.perf_counter(), load()
    log_c = fl.targets.two_modes_log_z()
    rows = []
    for seed in seeds:
        for objective in ("forward KL (MAF)", "reverse KL (IAF)"):
            flow = fit(objective, seed, steps)
            with torch.no_grad():
                x, log_q = flow.rsample_and_log_prob(20000, generator=torch.Generator().manual_seed(4))
                log_w = fl.targets.two_modes_log_prob(x) - log_q
            row = {
                "objective": objective,
                "seed": seed,
                "left half": round(float((x[:, 0] < 0).double().mean()), 4),
                "between": round(float((x[:, 0].abs() < 1.5).double().mean()), 4),
                "log C_hat - log C": round(float(torch.logsumexp(log_w.double(), 0)) - math.log(len(x)) - log_c, 4),
            }
            rows.append(row)
            print(row, flush=True)
    note = header("bench/objectives_seeds.py", f"{len(seeds)} seeds, {steps} steps", started, load_before)
    write(args.out, rows, note)
    print(f"wrote {args.out}: {note}")


if __name__ == "__main__":
    main()
