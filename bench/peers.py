#!/usr/bin/env python
r"""flowlab next to zuko, nflows and flowtorch on the notes' opening example.

One autoregressive rational-quadratic spline layer in 2-D, the same in every library:

* masked (MADE) conditioner 2 -> 256 -> 256 -> 2 x 23, ReLU (78,382 parameters);
* 8 bins on [-3, 3], identity (linear) tails outside, standard normal base;
* data ``flowlab.targets.circles(1000, seed=0)``; full-batch Adam, lr 5e-3, 2000 steps,
  the same hand-written loop for every library; ``fl.fit`` is reported on its own row (one
  uninterrupted run, timed as a whole).

Training is interleaved: the steps are split into rounds and in each round every library
trains its next chunk of steps (the order rotates from round to round), so that a noisy,
shared machine slows all of them alike. ms/step is the median over rounds. After training:
held-out NLL on 20,000 fresh points, ``log_prob`` of 100,000 points (no grad) and sampling
100,000 points, each timed ``--repeats`` times (interleaved, median).

Directions differ between the libraries and are part of what is compared: flowlab, zuko and
nflows evaluate the density in one conditioner pass and sample by inverting (one pass per
coordinate); flowtorch's bijector maps latent to data, so its ``log_prob`` inverts the bijector
(one pass per coordinate) and its sampling is a single pass.

Run from the repository root:

    pip install -r bench/requirements.txt
    python bench/peers.py              # full run (a few minutes on 2 cores)
    python bench/peers.py --quick      # short smoke run
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version

import torch

import flowlab as fl

LIBRARIES = ("flowlab", "flowlab fit", "zuko", "nflows", "flowtorch")
BINS, BOUND, HIDDEN = 8, 3.0, (256, 256)


# ----------------------------------------------------------------------------- the models
@dataclass
class Entry:
    """One library's model with uniform ``log_prob(x)`` and ``sample(n)``."""

    name: str
    module: torch.nn.Module
    log_prob: callable
    sample: callable
    note: str = ""
    optimizer: torch.optim.Optimizer | None = None
    runner: "FitRunner | None" = None
    ms_per_step: list[float] = field(default_factory=list)
    loss: float = float("nan")
    results: dict = field(default_factory=dict)


def make_flowlab(name: str = "flowlab") -> Entry:
    flow = fl.Flow(fl.SplineAutoregressive(2, hidden=HIDDEN, bins=BINS, bound=BOUND, layers=1), fl.StandardNormal(2))
    return Entry(name, flow, flow.log_prob, flow.sample)


def make_zuko() -> Entry:
    import zuko
    from zuko.transforms import MonotonicRQSTransform

    # zuko.flows.NSF fixes the spline's bound at MonotonicRQSTransform's default (5) and gives no
    # argument for it. NSF is MAF with a spline univariate, so this is NSF(2, transforms=1, bins=8,
    # hidden_features=(256, 256)) with bound 3.
    flow = zuko.flows.MAF(
        2,
        transforms=1,
        univariate=functools.partial(MonotonicRQSTransform, bound=BOUND, slope=1e-3),
        shapes=[(BINS,), (BINS,), (BINS - 1,)],
        hidden_features=HIDDEN,
    )
    return Entry(
        "zuko",
        flow,
        lambda x: flow().log_prob(x),
        lambda n: flow().sample((n,)),
        note="NSF via MAF(univariate=MonotonicRQSTransform(bound=3))",
    )


def make_nflows() -> Entry:
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.autoregressive import MaskedPiecewiseRationalQuadraticAutoregressiveTransform

    # MADE without residual blocks: initial layer 2 -> 256 (ReLU), num_blocks=1 feed-forward
    # block 256 -> 256 (ReLU), final layer 256 -> 2 x 23: the same two hidden layers.
    transform = MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
        features=2,
        hidden_features=HIDDEN[0],
        num_blocks=len(HIDDEN) - 1,
        use_residual_blocks=False,
        num_bins=BINS,
        tails="linear",
        tail_bound=BOUND,
    )
    flow = Flow(transform, StandardNormal([2]))
    return Entry("nflows", flow, flow.log_prob, flow.sample)


def make_flowtorch(order: str = "quadratic") -> Entry:
    import flowtorch.bijectors as bij
    import flowtorch.distributions as dist
    import flowtorch.parameters as params

    base = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1)
    # order="quadratic" is the rational-quadratic spline; flowtorch's default ("linear", the one
    # the notes use implicitly) is a linear-rational spline with 4K-1 parameters per coordinate.
    # permutation [0, 1]: x_2 depends on x_1, as in the other libraries (the default is random).
    bijector = bij.SplineAutoregressive(
        params.DenseAutoregressive(hidden_dims=HIDDEN, permutation=torch.LongTensor([0, 1])),
        count_bins=BINS,
        bound=BOUND,
        order=order,
    )
    flow = dist.Flow(base, bijector)

    def sample(n: int) -> torch.Tensor:
        return flow.sample((n,)).as_subclass(torch.Tensor)

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        return flow.log_prob(x).as_subclass(torch.Tensor)

    name = "flowtorch" if order == "quadratic" else "flowtorch (linear)"
    return Entry(name, flow, log_prob, sample, note=f"order={order!r}")


# ----------------------------------------------------------------------------- training
def train_steps(entry: Entry, x: torch.Tensor, steps: int) -> float:
    """The notes' loop, identical for every library."""
    opt = entry.optimizer
    for _ in range(steps):
        opt.zero_grad()
        loss = -entry.log_prob(x).mean()
        loss.backward()
        opt.step()
    return float(loss.detach())


class FitRunner:
    """Runs ``fl.fit`` for all the steps in one call, in the main thread, when its turn first
    comes. (Pausing ``fit`` in a worker thread between rounds was tried: the paused thread's
    OpenMP workers kept slowing every other library.) Its ms/step is therefore one value over
    all the steps, not a median over rounds."""

    def __init__(self, flow: fl.Flow, x: torch.Tensor, chunks: list[int]):
        self.flow, self.x, self.steps = flow, x, sum(chunks)
        self.count = 0  # steps done so far
        self.last_loss = float("nan")
        self.history = None

    def chunk(self) -> int:
        """The whole ``fit`` the first time; 0 afterwards. Returns the number of steps done."""
        if self.history is not None:
            return 0
        # the notes' workload: full batch (batch_size=None), lr 5e-3; fit's other defaults
        self.history = fl.fit(self.flow, self.x, steps=self.steps, lr=5e-3, batch_size=None, progress=False)
        self.count = self.history.steps
        if self.history.loss:
            self.last_loss = self.history.loss[-1]
        return self.count


def split(steps: int, rounds: int) -> list[int]:
    rounds = max(1, min(rounds, steps))
    return [steps // rounds + (1 if i < steps % rounds else 0) for i in range(rounds)]


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="training steps per library (default 2000)")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds the steps are split into (default 10)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of the log_prob/sample timings (default 3)")
    p.add_argument("--n-time", type=int, default=100_000, help="points for the log_prob/sample timings")
    p.add_argument("--n-test", type=int, default=20_000, help="held-out points for the NLL")
    p.add_argument("--seed", type=int, default=0, help="seed for the initial parameters")
    p.add_argument("--libs", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES),
                   help="libraries to run (default all; flowlab is needed for the ratio line)")
    p.add_argument("--flowtorch-linear", action="store_true",
                   help="also run flowtorch's default linear-rational spline (order='linear')")
    p.add_argument("--quick", action="store_true",
                   help="short run: 200 steps, 4 rounds, 20,000 points, 2 repeats (unless given explicitly)")
    args = p.parse_args(argv)
    if args.quick:
        for name, value in (("steps", 200), ("rounds", 4), ("n_time", 20_000), ("repeats", 2)):
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Computing _log_abs_det_jacobian")

    print(f"# flowlab vs peers: {time.strftime('%Y-%m-%d %H:%M:%S')}")
    libs = {m: version(m) for m in ("torch", "flowlab", "zuko", "nflows", "flowtorch")}
    print("versions: " + ", ".join(f"{k} {v}" for k, v in libs.items()) + f", python {platform.python_version()}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {load[0]:.2f}"
          if load[0] != "?" else f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    print(f"steps {args.steps} in {args.rounds} rounds, timings on {args.n_time} points, {args.repeats} repeats\n")

    x = fl.targets.circles(1000, seed=0).float()
    x_test = fl.targets.circles(args.n_test, seed=12345).float()
    x_time = fl.targets.circles(args.n_time, seed=777).float()
    true_nll = float(-fl.targets.circles_log_prob(x_test).mean())

    all_makers = dict(zip(LIBRARIES, [make_flowlab, functools.partial(make_flowlab, "flowlab fit"), make_zuko,
                                      make_nflows, make_flowtorch]))
    makers = [all_makers[name] for name in LIBRARIES if name in args.libs]
    if args.flowtorch_linear:
        makers.append(functools.partial(make_flowtorch, "linear"))
    # warm-up on throwaway copies: first calls pay for lazy initialization in torch
    for make in makers:
        torch.manual_seed(args.seed + 1)
        w = make()
        opt = torch.optim.Adam(w.module.parameters(), lr=5e-3)
        for _ in range(3):
            opt.zero_grad()
            (-w.log_prob(x).mean()).backward()
            opt.step()
        with torch.no_grad():
            w.log_prob(x_test[:1000]), w.sample(1000)

    entries: list[Entry] = []
    chunks = split(args.steps, args.rounds)
    for make in makers:
        torch.manual_seed(args.seed)
        e = make()
        if e.name == "flowlab fit":
            e.runner = FitRunner(e.module, x, chunks)
        else:
            e.optimizer = torch.optim.Adam(e.module.parameters(), lr=5e-3)
        entries.append(e)

    print("parameters (all trainable):")
    for e in entries:
        n = sum(p.numel() for p in e.module.parameters() if p.requires_grad)
        e.results["params"] = n
        print(f"  {e.name:20s} {n:>8,d}  {e.note}")
    print()

    # interleaved training
    start = time.perf_counter()
    for r, k in enumerate(chunks):
        order = entries[r % len(entries):] + entries[: r % len(entries)]
        for e in order:
            if e.runner is None:
                dt, e.loss = timed(functools.partial(train_steps, e, x, k))
                done = k
            else:
                dt, done = timed(e.runner.chunk)
                e.loss = e.runner.last_loss if e.runner.count else float("nan")
            if done:  # fit may stop early (its divergence guard): then it has no more steps to time
                e.ms_per_step.append(1e3 * dt / done)
        print(f"round {r + 1}/{len(chunks)} ({k} steps): "
              + ", ".join(f"{e.name} {e.ms_per_step[-1]:.2f}" if e.ms_per_step else f"{e.name} -" for e in entries)
              + f" ms/step  [{time.perf_counter() - start:.0f} s]", flush=True)
    for e in entries:
        if e.runner is not None:
            if e.runner.history.message:
                print(f"  note: fl.fit says: {e.runner.history.message}")
    print()

    # evaluation
    for e in entries:
        e.module.eval()
        with torch.no_grad():
            e.results["nll"] = float(-e.log_prob(x_test).mean())
        e.results["lp"], e.results["sample"], e.results["sample_nll"] = [], [], []
    with torch.no_grad():
        for rep in range(args.repeats):
            order = entries[rep % len(entries):] + entries[: rep % len(entries)]
            for e in order:
                dt, _ = timed(lambda: e.log_prob(x_time))
                e.results["lp"].append(dt)
            for e in order:
                torch.manual_seed(1000 + rep)
                dt, s = timed(lambda: e.sample(args.n_time))
                e.results["sample"].append(dt)
                e.results["sample_nll"].append(float(-fl.targets.circles_log_prob(s).nan_to_num(-1e4).mean()))

    # report
    def med(v):
        return statistics.median(v)

    n_k = f"{args.n_time // 1000}k"
    print(f"| library | parameters | ms/step (median [min, max] over {len(chunks)} rounds) | final train loss "
          f"| held-out NLL | log_prob {n_k} (ms) | sample {n_k} (ms) | true NLL of samples |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for e in entries:
        r = e.results
        ms = e.ms_per_step
        print(f"| {e.name} | {r['params']:,} | {med(ms):.2f} [{min(ms):.2f}, {max(ms):.2f}] | {e.loss:.4f} "
              f"| {r['nll']:.4f} | {1e3 * med(r['lp']):.0f} | {1e3 * med(r['sample']):.0f} "
              f"| {med(r['sample_nll']):.3f} |")
    print(f"| true density | | | | {true_nll:.4f} | | | |")
    print()
    by_name = {e.name: med(e.ms_per_step) for e in entries}
    peers = {k: v for k, v in by_name.items() if not k.startswith("flowlab")}
    if peers:
        fastest = min(peers, key=peers.get)
        for ours, label in (("flowlab", "flowlab"), ("flowlab fit", "fl.fit")):
            if ours in by_name:
                print(f"{label} ms/step / fastest peer ms/step = {by_name[ours]:.2f} / {peers[fastest]:.2f} "
                      f"= {by_name[ours] / peers[fastest]:.2f} (fastest peer: {fastest})")
    print(f"held-out NLL on {args.n_test} points of circles(seed=12345); true density's NLL {true_nll:.4f}. "
          f"'true NLL of samples' = -mean log p_true over the {args.n_time} samples (sanity check of sampling).")
    print(f"total {time.perf_counter() - start:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
