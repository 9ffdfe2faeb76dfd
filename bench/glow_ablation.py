"""The mini Glow ablation of the chapter on linear flows, over many seeds, with NLL curves.

Data (generated in code): three independent pairs of moons (``flowlab.targets.moons``) side by
side, then one fixed random rotation of R^6, so that every coordinate mixes all three pairs;
20,000 training points (enough that no model overfits within the training run), 4000 test
points shared by every run.

Every flow has four affine coupling layers (``fl.MaskedConditioner(6, parts=2, hidden=(32,
32))`` with ``fl.Affine()``: part 0 is coordinates 0-2, part 1 is coordinates 3-5, transformed
conditionally on part 0), and between them one of

* ``reverse``: ``fl.Reverse(6)``, as RealNVP;
* ``permutation``: a new random ``fl.Permutation`` in each place (drawn from the seed);
* ``interleave``: a fixed schedule of permutations, the same for every seed, that sends each
  coordinate to part 1 exactly twice and separates every pair of coordinates that share a
  half in the first layer at least once (except one pair per half, which three coordinates
  on two sides cannot avoid). It tests the explanation of the chapter: the reversal keeps
  the halves together, a random permutation breaks them up but may leave a coordinate on one
  side for several layers;
* ``lu``: a learned ``fl.LU`` layer started from a random rotation;
* ``Glow``: ``fl.Glow(6, layers=4, hidden=(32, 32))``, four steps of ActNorm, LU and coupling.

Each of the ``--seeds`` seeds (default 10) trains every arm with ``fl.fit`` for ``--steps``
steps (default 3000; Adam, learning rate 5e-3 with the cosine schedule, batches of 256; the
seed sets the initialisation, the permutations, the rotations and the batches) and records the
test NLL (nats per point) every ``--every`` steps: the curves of the chapter. A Gaussian with
the sample mean and covariance of the training set is the trivial baseline.

It writes ``book/data/glow_ablation.csv`` (one row per arm, seed and checkpoint), which the
chapter reads. Regenerate it with

    python bench/glow_ablation.py            # 10 seeds x 5 arms x 3000 steps: 5-10 min on 2 cores
    python bench/glow_ablation.py --quick    # a smoke test: 2 seeds, 200 steps

Single-threaded CPU (``torch.set_num_threads(1)``). The NLLs depend on the seeds and, through
floating-point rounding, on the machine: the spread over seeds says how much.
"""

from __future__ import annotations

import argparse
import time

import torch

import flowlab as fl
from _tables import load, save

ARMS = ("reverse", "permutation", "interleave", "lu", "Glow")

# The coordinates in part 1 (transformed) of the four coupling layers of the "interleave" arm,
# written as the order of the original coordinates before each layer (the last three are part 1).
ORDERS = ([0, 1, 2, 3, 4, 5], [3, 4, 5, 0, 1, 2], [1, 2, 5, 0, 3, 4], [0, 3, 4, 1, 2, 5])


def interleave(k: int) -> fl.Permutation:
    """The permutation between layer ``k`` and ``k + 1`` of the fixed schedule ``ORDERS``."""
    before, after = ORDERS[k], ORDERS[k + 1]
    return fl.Permutation(6, order=[before.index(c) for c in after])


def rotation() -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    q, r = torch.linalg.qr(torch.randn(6, 6, generator=g))
    return q * torch.sign(torch.diagonal(r))


def moons6(n: int, seed: int) -> torch.Tensor:
    x = torch.cat([fl.targets.moons(n, seed=10 * seed + k) for k in range(3)], dim=1)
    return x @ rotation().T


def coupling_flow(arm: str, seed: int, layers: int = 4, hidden: int = 32) -> fl.Flow:
    torch.manual_seed(seed)
    if arm == "Glow":
        return fl.Flow(fl.Glow(6, layers=layers, hidden=(hidden, hidden), seed=seed), fl.StandardNormal(6))
    blocks = []
    for i in range(layers):
        if i > 0:
            blocks.append(interleave(i - 1) if arm == "interleave" else fl.mixing(arm, 6, seed=100 * seed + i))
        blocks.append(fl.Autoregressive(fl.MaskedConditioner(6, parts=2, hidden=(hidden, hidden)), fl.Affine()))
    return fl.Flow(fl.Compose(*blocks), fl.StandardNormal(6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 200 steps: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.every = 2, 200, 50
    torch.set_num_threads(1)
    train, test = moons6(20000, 0), moons6(4000, 2)
    rows = []
    gaussian = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    rows.append(("Gaussian", "", 0, round(float(-gaussian.log_prob(test).mean()), 5), ""))
    started, load_before = time.perf_counter(), load()
    for seed in range(args.seeds):
        for arm in ARMS:
            flow = coupling_flow(arm, seed)
            clock = time.process_time()

            def checkpoint(step, loss, flow=flow, arm=arm, seed=seed, clock=clock):
                if step % args.every == 0:
                    with torch.no_grad():
                        flow.eval()
                        nll = float(-flow.log_prob(test).mean())
                        flow.train()
                    rows.append((arm, seed, step, round(nll, 5), round(time.process_time() - clock, 2)))

            fl.fit(flow, train, steps=args.steps, lr=5e-3, batch_size=256, seed=seed, progress=False,
                   callback=checkpoint)
            print(f"seed {seed} {arm:12s} test NLL {rows[-1][3]:.3f} ({rows[-1][4]:.1f} CPU s)", flush=True)
    table = [dict(zip(("arm", "seed", "step", "test NLL", "CPU s"), row)) for row in rows]
    save("glow_ablation.csv", table, "python bench/glow_ablation.py", f"{args.seeds} seeds x {args.steps} steps",
         started, load_before, args.quick)


if __name__ == "__main__":
    main()
