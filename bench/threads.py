#!/usr/bin/env python
r"""How many torch threads should a notebook use while the book builds?

Times a small training run, the kind a chapter does (``fl.fit`` of the default
``fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))`` for 200 steps on 1000 circles
points), in a fresh subprocess with ``torch.set_num_threads(1)``, ``(2)``, and ``(2)`` with
``OMP_WAIT_POLICY=PASSIVE`` (OpenMP worker threads sleep instead of spinning while they wait),
under three conditions:

* ``idle``: nothing else of ours runs (other users of the machine may);
* ``+1 busy process``: a Python process spinning on one core alongside, like the build's
  own process (Sphinx and the notebook client) next to the executing kernel;
* ``+1 torch process (2 threads)``: another process training with 2 torch threads, like
  two notebooks executing at once.

Runs are interleaved (repeat by repeat) and the table gives medians. A run stops after
``--budget`` seconds of training; its time for all the steps is then extrapolated from the
steps it did (marked ``~``). "median step" is the typical step, "p90 step" shows the stalls.

    python bench/threads.py            # at most about 10 minutes on 2 cores, usually less
    python bench/threads.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)

SPIN = "while True:\n    pass\n"
TORCH_LOAD = (
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "a = torch.randn(256, 256)\n"
    "w = torch.randn(256, 256, requires_grad=True)\n"
    "while True:\n"
    "    (a @ w).relu().sum().backward()\n"
)
LOADS = {
    "idle": None,
    "+1 busy process": SPIN,
    "+1 torch process (2 threads)": TORCH_LOAD,
}


def worker(threads: int, steps: int, budget: float) -> None:
    """Runs in the subprocess: prints one JSON line."""
    import torch

    torch.set_num_threads(threads)
    import flowlab as fl

    torch.manual_seed(0)
    flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
    x = fl.targets.circles(1000, seed=0)
    stamps = []
    t0 = time.perf_counter()

    def callback(step, loss):
        stamps.append(time.perf_counter())
        return stamps[-1] - t0 > budget  # stop early: extrapolate below

    history = fl.fit(flow, x, steps=steps, progress=False, callback=callback)
    total = time.perf_counter() - t0
    per_step = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
    print(json.dumps({
        "threads": torch.get_num_threads(),
        "done": len(stamps),
        "fit_s": total * steps / len(stamps),
        "median_step_ms": 1e3 * statistics.median(per_step),
        "p90_step_ms": 1e3 * sorted(per_step)[int(0.9 * (len(per_step) - 1))],
        "loss": history.loss[-1],
    }))


VARIANTS = {
    "1": (1, {}),
    "2": (2, {}),
    "2, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
}


def run_once(variant: str, steps: int, load: str | None, budget: float) -> dict:
    threads, extra_env = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    background = None
    if load is not None:
        background = subprocess.Popen([sys.executable, "-c", load], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it start (and import torch) before we measure
    try:
        t = time.perf_counter()
        load_avg = os.getloadavg()[0]
        out = subprocess.run([sys.executable, HERE, "--worker", str(threads), "--steps", str(steps),
                              "--budget", str(budget)], capture_output=True, text=True, check=True, env={**env, **extra_env})
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["run_s"] = time.perf_counter() - t
        result["load"] = load_avg
        return result
    finally:
        if background is not None:
            background.terminate()
            background.wait()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200, help="fit steps per run (default 200)")
    p.add_argument("--repeats", type=int, default=2, help="runs per cell (default 2)")
    p.add_argument("--budget", type=float, default=10.0,
                   help="seconds of training after which a run stops and is extrapolated (default 10)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   help="thread settings to compare (default all)")
    p.add_argument("--quick", action="store_true", help="1 repeat of 100 steps, 5 s budget")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.steps, args.budget)
        return 0
    if args.quick:
        args.repeats, args.steps, args.budget = 1, 100, 5.0

    print(f"# torch threads under load: {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"fl.fit of the default flow, {args.steps} steps, 1000 points; {args.repeats} repeats, "
          f"{args.budget:g} s budget per run\n")
    cells: dict[tuple[str, str], list[dict]] = {}
    start = time.perf_counter()
    for rep in range(args.repeats):
        for name, load in LOADS.items():
            for variant in args.variants:
                r = run_once(variant, args.steps, load, args.budget)
                cells.setdefault((name, variant), []).append(r)
                print(f"repeat {rep + 1}: {name:30s} threads {variant:28s}: fit {r['fit_s']:7.2f} s "
                      f"({r['done']} steps done), median step {r['median_step_ms']:7.2f} ms, run {r['run_s']:6.2f} s, "
                      f"load before {r['load']:.1f}  [{time.perf_counter() - start:.0f} s]", flush=True)

    def med(key, rs):
        return statistics.median(r[key] for r in rs)

    first = args.variants[0]
    ref = med("fit_s", cells[("idle", first)])
    print()
    print(f"| alongside | torch threads | fit {args.steps} steps (s), median [min, max] | median step (ms) "
          f"| p90 step (ms) | vs idle, threads {first} | run incl. imports (s) | load average before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (name, variant), rs in sorted(cells.items(), key=lambda kv: (list(LOADS).index(kv[0][0]), kv[0][1])):
        fits = [r["fit_s"] for r in rs]
        mark = "~" if any(r["done"] < args.steps for r in rs) else ""
        print(f"| {name} | {variant} | {mark}{med('fit_s', rs):.2f} [{min(fits):.2f}, {max(fits):.2f}] "
              f"| {med('median_step_ms', rs):.2f} | {med('p90_step_ms', rs):.2f} | {med('fit_s', rs) / ref:.2f}x "
              f"| {med('run_s', rs):.2f} | {med('load', rs):.1f} |")
    print(f"\n~: extrapolated from the steps done within the {args.budget:g} s budget.")
    print(f"total {time.perf_counter() - start:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
