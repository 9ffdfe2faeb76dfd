#!/usr/bin/env python
r"""flowlab's ``LU`` next to zuko's ``LULinearTransform`` and nflows' ``LULinear``.

For each dimension D = 2, 4, ..., 1024, one LU-parametrised linear layer per library, with
random (not identity) parameters, applied to a batch of ``--batch`` points (default 256):

* **forward + ladj**: the image and the log-determinant, data to latent
  (flowlab ``t(x)``, zuko ``t.call_and_ladj(x)``, nflows ``t(x)``);
* **inverse**: the preimage and its log-determinant (flowlab ``t.inverse(z)``, zuko
  ``t.inv.call_and_ladj(z)``, nflows ``t.inverse(z)``).

zuko's transform is rebuilt from its parameter at every call (``LULinearTransform(LU)``), as
zuko's lazy modules do; building it only splits the matrix into its two triangles.

Timings run without autograd (``torch.no_grad``) on ``--threads`` CPU threads (default 1). Each
number is the median over ``--rounds`` rounds of the mean time per call over a loop of about
``--budget`` seconds; in each round the libraries take turns in a rotating order, so that a
noisy, shared machine slows all of them alike. The table reports ms per call and the ratio
flowlab / fastest peer (below 1: flowlab is faster).

Run from the repository root, with the peers installed (``pip install -r bench/requirements.txt``):

    python bench/linear.py             # 4-5 minutes on a shared 2-core machine (zuko's inverse at D = 1024 takes seconds per call)
    python bench/linear.py --quick     # D up to 256, fewer rounds
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from importlib.metadata import version

import torch

import flowlab as fl

LIBRARIES = ("flowlab", "zuko", "nflows")


def make(lib: str, D: int, seed: int = 0):
    """``(forward, inverse)`` callables of one library's LU layer with random parameters."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return 0.3 * torch.randn(*shape, generator=g)

    if lib == "flowlab":
        t = fl.LU(D, seed=seed)
        with torch.no_grad():
            for p in t.parameters():
                p.add_(rand(*p.shape))
        return t, t.inverse
    if lib == "zuko":
        from zuko.transforms import LULinearTransform

        LU = torch.nn.Parameter(torch.eye(D) + rand(D, D))
        return (lambda x: LULinearTransform(LU).call_and_ladj(x)), (lambda z: LULinearTransform(LU).inv.call_and_ladj(z))
    if lib == "nflows":
        from nflows.transforms.lu import LULinear

        t = LULinear(D, identity_init=True)
        with torch.no_grad():
            for p in t.parameters():
                p.add_(rand(*p.shape))
        return t, t.inverse
    raise ValueError(f"unknown library {lib!r}; choose from {LIBRARIES}.")


def per_call_ms(fn, x, budget: float) -> float:
    fn(x)  # warm up
    n, start = 0, time.perf_counter()
    while True:
        fn(x)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return 1e3 * elapsed / n


def check_agreement(D: int, batch: int) -> None:
    """Each library's inverse undoes its forward, and its ladj matches log|det| of its matrix."""
    x = torch.randn(batch, D)
    for lib in LIBRARIES:
        fwd, inv = make(lib, D)
        with torch.no_grad():
            z, ladj = fwd(x)
            back, ladj_inv = inv(z)
        err = float((back - x).abs().max())
        if err > 1e-3 or not torch.allclose(ladj, -ladj_inv, atol=1e-4):
            raise SystemExit(f"{lib} at D = {D}: round trip off by {err:.2g}, or the two ladj do not cancel.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--budget", type=float, default=0.01, help="seconds per timing loop")
    parser.add_argument("--quick", action="store_true", help="D up to 256, 3 rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dims = [2**k for k in range(1, 9 if args.quick else 11)]
    rounds = 3 if args.quick else args.rounds

    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__} ({args.threads} thread(s)), "
          f"zuko {version('zuko')}, nflows {version('nflows')}; batch {args.batch}; median of {rounds} rounds")
    check_agreement(16, 64)
    header = (f"{'D':>5s} | " + " ".join(f"{lib + ' fwd':>11s}" for lib in LIBRARIES) + f" {'ratio':>6s} | "
              + " ".join(f"{lib + ' inv':>11s}" for lib in LIBRARIES) + f" {'ratio':>6s}")
    print("ms per call; ratio = flowlab / fastest peer")
    print(header)
    worst = {"fwd": 0.0, "inv": 0.0}
    for D in dims:
        layers = {lib: make(lib, D) for lib in LIBRARIES}
        x = torch.randn(args.batch, D, generator=torch.Generator().manual_seed(1))
        times = {(lib, d): [] for lib in LIBRARIES for d in ("fwd", "inv")}
        with torch.no_grad():
            for r in range(rounds):
                order = LIBRARIES[r % 3:] + LIBRARIES[: r % 3]
                for lib in order:
                    fwd, inv = layers[lib]
                    times[lib, "fwd"].append(per_call_ms(fwd, x, args.budget))
                    times[lib, "inv"].append(per_call_ms(inv, x, args.budget))
        med = {k: statistics.median(v) for k, v in times.items()}
        cells = []
        for d in ("fwd", "inv"):
            ratio = med["flowlab", d] / min(med[lib, d] for lib in LIBRARIES[1:])
            worst[d] = max(worst[d], ratio)
            cells.append(" ".join(f"{med[lib, d]:11.4f}" for lib in LIBRARIES) + f" {ratio:6.2f}")
        print(f"{D:5d} | " + " | ".join(cells), flush=True)
    print(f"worst ratio: forward {worst['fwd']:.2f}, inverse {worst['inv']:.2f} (target: at most 1 at every D)")


if __name__ == "__main__":
    main()
