"""The seed sweeps of the chapter on universality: how close trained flows get to the exact
(Knothe-Rosenblatt) maps, over training runs rather than one run each.

Three experiments, all written to ``book/data/universality_runs.csv`` (column ``experiment``):

* ``1-D``: the chapter's 1-D spline flow (``flowlab.quantile_lab.spline_flow``: one
  rational-quadratic spline, 8 bins) trained for 400 steps (learning rate 1e-2, batches of 256)
  on 250, 2000 and 16000 samples of the two-bump mixture; for every seed a new training sample
  (``mixture_1d(n, seed=20 + seed)``) and a new initialisation. Recorded: the mean distance
  ``|T_flow(x) - Phi^-1(F(x))|`` on 4000 held-out points (``seed=11``), every 40 steps, and the
  NLL gap to the true density at the end.
* ``banana``: one affine (``fl.MAF``) or spline (``fl.SplineAutoregressive``) autoregressive
  layer, 32 x 32 hidden units, in the order x1 -> x2 or x2 -> x1, trained for 800 steps on 4000
  samples of the Rosenbrock banana; the mean distance to the exact map of the same order and
  the NLL gap, on the chapter's held-out points.
* ``depth``: affine coupling stacks (``fl.RealNVP``, 1, 4 and 8 layers) and one spline coupling
  layer (``fl.NeuralSplineFlow``) trained for 600 steps on 4000 samples of the three bumps; the
  NLL gap to the truth on 3000 held-out points.

Regenerate with

    python bench/universality_runs.py            # 10 seeds (1-D) and 5 seeds (2-D): 5-10 min on 2 cores
    python bench/universality_runs.py --quick    # a smoke test

Single-threaded CPU; the numbers depend on the seeds and, through rounding, on the machine.
"""

from __future__ import annotations

import argparse
import time

import torch

import flowlab as fl
from flowlab import quantile_lab as ql
from flowlab.numerics import knothe_rosenblatt
from _tables import load, save

T = fl.targets
BOX_BANANA = ((-6.0, 6.0), (-3.0, 19.0))


def one_d(seeds, quick):
    x_held = T.mixture_1d(4000, seed=11)
    latent = torch.special.ndtri(T.mixture_1d_cdf(x_held.double()))
    true_lp = T.mixture_1d_log_prob(x_held.double())
    rows = []
    for n in (250, 2000, 16000):
        for seed in seeds:
            torch.manual_seed(seed)
            flow = ql.spline_flow()

            def distance():
                with torch.no_grad():
                    return float((flow.transform(x_held)[0][:, 0].double() - latent).abs().mean())

            curve = [(0, distance())]
            fl.fit(flow, T.mixture_1d(n, seed=20 + seed), steps=40 if quick else 400, lr=1e-2, batch_size=256,
                   progress=False, seed=seed, callback=lambda step, loss: curve.append((step, distance()))
                   if step % 40 == 0 else None)
            with torch.no_grad():
                gap = float((true_lp - flow.log_prob(x_held).double()).mean())
            for step, d in curve:
                rows.append(dict(experiment="1-D", model="spline, 8 bins", n=n, seed=seed, step=step, distance=d,
                                 gap=gap if step == curve[-1][0] else ""))
        print("1-D", n, flush=True)
    return rows


def one_layer(kind, order, seed=0):
    torch.manual_seed(seed)
    if kind == "affine":
        layer = fl.MAF(2, hidden=(32, 32), layers=1)
    else:
        layer = fl.SplineAutoregressive(2, hidden=(32, 32), layers=1, bins=8, bound=5.0)
    core = layer if order == (0, 1) else fl.Compose(fl.Reverse(2), layer, fl.Reverse(2))
    return fl.Flow(core, fl.StandardNormal(2))


def banana(seeds, quick):
    x_train = T.rosenbrock(4000, seed=0)
    x_test = T.rosenbrock(3000, seed=1)
    x_test = x_test[(x_test[:, 0].abs() < 5.5) & (x_test[:, 1] < 18)]
    true_lp = T.rosenbrock_log_prob(x_test.double())
    kr = {o: knothe_rosenblatt(T.rosenbrock_log_prob, x_test.double(), BOX_BANANA, order=o, cells=128)
          for o in [(0, 1), (1, 0)]}
    rows = []
    for seed in seeds:
        for kind in ("affine", "spline"):
            for order in [(0, 1), (1, 0)]:
                flow = one_layer(kind, order, seed)
                fl.fit(flow, x_train, steps=40 if quick else 800, lr=5e-3, batch_size=256, progress=False, seed=seed)
                with torch.no_grad():
                    d = (flow.transform(x_test)[0].double() - kr[order]).norm(dim=1)
                    gap = true_lp - flow.log_prob(x_test).double()
                rows.append(dict(experiment="banana", model=kind, order="x1 -> x2" if order == (0, 1) else "x2 -> x1",
                                 seed=seed, distance=float(d.mean()), gap=float(gap.mean())))
        print("banana", seed, flush=True)
    return rows


STACKS = {
    "affine coupling x1": lambda: fl.RealNVP(2, hidden=(32, 32), layers=1),
    "affine coupling x4": lambda: fl.RealNVP(2, hidden=(32, 32), layers=4),
    "affine coupling x8": lambda: fl.RealNVP(2, hidden=(32, 32), layers=8),
    "spline coupling x1": lambda: fl.NeuralSplineFlow(2, hidden=(32, 32), layers=1, bound=5.0),
}


def depth(seeds, quick):
    xm_train, xm_test = T.three_bumps(4000, seed=0), T.three_bumps(3000, seed=1)
    true_m = T.three_bumps_log_prob(xm_test.double())
    rows = []
    for seed in seeds:
        for label, make in STACKS.items():
            torch.manual_seed(seed)
            flow = fl.Flow(make(), fl.StandardNormal(2))
            fl.fit(flow, xm_train, steps=40 if quick else 600, lr=5e-3, batch_size=256, progress=False, seed=seed)
            with torch.no_grad():
                gap = true_m - flow.log_prob(xm_test).double()
            rows.append(dict(experiment="depth", model=label, seed=seed, gap=float(gap.mean())))
        print("depth", seed, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the 2-D experiments (the 1-D one uses twice as many)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = range(2 if args.quick else args.seeds)
    started, load_before = time.perf_counter(), load()
    seeds_1d = range(2 if args.quick else 2 * args.seeds)
    rows = one_d(seeds_1d, args.quick) + banana(seeds, args.quick) + depth(seeds, args.quick)
    save("universality_runs.csv", rows, "python bench/universality_runs.py",
         f"{len(seeds_1d)} seeds (1-D), {len(seeds)} seeds (2-D)", started, load_before, args.quick)


if __name__ == "__main__":
    main()
