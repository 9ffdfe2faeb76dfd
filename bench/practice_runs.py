"""The seed sweep of the chapter on flows in practice: mode collapse on the two-mode target.

The chapter's spline flow (``fl.NeuralSplineFlow(2, hidden=(32, 32), layers=3, bins=8,
bound=6.0)``) is trained for 300 Adam steps (learning rate 5e-3, 256 samples or data points per
step) on ``fl.targets.two_modes_log_prob`` (two round bumps at +-3, exact log Z) in three ways:

* ``forward KL``: maximum likelihood on 2000 exact samples;
* ``reverse KL``: on the flow's own samples (``fl.reverse_kl``);
* ``importance-weighted forward KL``: the forward KL estimated from the flow's own samples with
  self-normalised importance weights, loss ``-sum_i w_i log q(x_i)``, ``w = softmax(log p~ - log q)``
  computed without gradients (the estimator of neural importance sampling, Mueller et al. 2019).

For every seed and method it records, by quadrature on the box [-7, 7] x [-4.5, 4.5] (120 nodes
per axis), KL(q || p) and KL(p || q), the exact ESS limit 1/(1 + chi^2(p || q)); and from 2000
samples of the flow the share in the left mode, the sample ESS / N and the error of log Z-hat.
It writes ``book/data/practice_collapse.csv``, which the chapter reads. Regenerate it with

    python bench/practice_runs.py            # 5 seeds: a few minutes on 2 cores
    python bench/practice_runs.py --quick    # a smoke test

Single-threaded CPU; the numbers depend on the seeds, and on the machine through rounding.
"""

from __future__ import annotations

import argparse
import time

import torch

import flowlab as fl
from flowlab import diagnostics as dg
from _tables import load, save

TARGET = fl.targets.two_modes_log_prob
BOX, NODES = (-7.0, 7.0, -4.5, 4.5), 120


def spline_flow(seed):
    torch.manual_seed(seed)
    return fl.Flow(fl.NeuralSplineFlow(2, hidden=(32, 32), layers=3, bins=8, bound=6.0), fl.StandardNormal(2))


def weighted_forward_kl(flow, log_prob, n, generator=None):
    """The forward KL from the flow's own samples, with self-normalised importance weights."""
    with torch.no_grad():
        x = flow.sample(n, generator=generator)
        w = torch.softmax(log_prob(x) - flow.log_prob(x), 0)
    return -(w * flow.log_prob(x)).sum()


def losses(seed, data):
    g = torch.Generator().manual_seed(1 + 1000 * seed)
    return {
        "forward KL": lambda f: fl.forward_kl(f, data[torch.randint(len(data), (256,), generator=g)]),
        "reverse KL": lambda f: fl.reverse_kl(f, TARGET, 256, generator=g),
        "importance-weighted forward KL": lambda f: weighted_forward_kl(f, TARGET, 256, generator=g),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = 20 if args.quick else 300
    seeds = range(2 if args.quick else args.seeds)
    data = fl.targets.two_modes(2000, seed=0)
    log_z = fl.targets.two_modes_log_z()
    rows, started, load_before = [], time.perf_counter(), load()
    for seed in seeds:
        for name, loss_fn in losses(seed, data).items():
            flow = spline_flow(seed)
            optimizer = torch.optim.Adam(flow.parameters(), lr=5e-3)
            for _ in range(steps):
                loss = loss_fn(flow)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                log_q = lambda x, flow=flow: flow.log_prob(x.float())  # noqa: E731
                x, log_w = dg.log_weights(flow, TARGET, 2000, generator=torch.Generator().manual_seed(5))
                rows.append(dict(seed=seed, method=name, kl_qp=dg.kl_quadrature(log_q, TARGET, BOX, NODES),
                                 kl_pq=dg.kl_quadrature(TARGET, log_q, BOX, NODES),
                                 limit=1 / (1 + dg.chi2_quadrature(TARGET, log_q, BOX, NODES)),
                                 left=float((x[:, 0] < 0).float().mean()), ess=dg.ess(log_w) / len(log_w),
                                 log_z_error=dg.log_z(log_w)[0] - log_z))
            print(rows[-1], flush=True)
    save("practice_collapse.csv", rows, "python bench/practice_runs.py", f"{len(seeds)} seeds x {steps} steps",
         started, load_before, args.quick)


if __name__ == "__main__":
    main()
