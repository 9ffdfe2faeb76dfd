"""How fast the live trainer's view updates: view updates per second and first-picture latency.

Runs :class:`flowlab.live.Trainer` headless (no browser: the widgets' values are set exactly
as in a notebook) for a few seconds per flow family (every transformer with every conditioner,
and the Glow, residual, planar and continuous families, at the dashboard's defaults: 4 layers,
64 hidden units), on the CPU and on each CUDA device, and prints a table. Then it measures the
first Start of a dashboard in fresh Python processes, as a student meets it after starting a
kernel: ``import flowlab``, build the default dashboard, press Start at once. The budget
(DESIGN.md): the first picture that shows a trained step within 0.5 s of Start (also the first
Start in a fresh process), and at least 10 view updates per second for every 2-D family. Also
prints the size of a replay of two configurations.

    python bench/live.py            # about 2 min on a 2-core CPU
    python bench/live.py --seconds 5 --no-replay --fresh 0
    python bench/live.py --families MAF "continuous (CNF)"

On a shared machine the times are upper bounds: the script prints the load average before and
after. The view thread's CPU time per picture depends little on the load: a picture every
1/15 s needs at most 67 ms of it (the training thread takes the rest of the CPU and competes
for the GIL, so the view gets about half of a core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

import flowlab as fl
import flowlab.live
import flowlab.replay

REPLAYS = [
    dict(family="spline autoregressive", layers=3, hidden=64, bins=8),
    dict(family="MAF", layers=4, hidden=64),
]

# A student's first Start: a fresh process, the chapter's import, the default dashboard, Start at once.
FRESH = """
import json, sys, time
t0 = time.perf_counter()
import flowlab as fl
t1 = time.perf_counter()
trainer = fl.live.Trainer(target=sys.argv[1])
t2 = time.perf_counter()
time.sleep(float(sys.argv[2]))
trainer.start()
ok = trainer.wait(steps=30, timeout=120)
trainer.stop()
print(json.dumps(dict(import_s=t1 - t0, build_s=t2 - t1, ok=ok, **trainer.stats())))
"""


def load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def measure(device: str, config: dict, seconds: float, target: str) -> dict:
    trainer = fl.live.Trainer(target=target, device=device, steps=10**7, **config)
    t0 = time.perf_counter()
    trainer.start()
    time.sleep(seconds)
    trainer.stop()
    stats = trainer.stats()
    stats["wall_s"] = time.perf_counter() - t0
    stats["message"] = trainer.message if trainer.error else ""
    return stats


def fresh_start(target: str, pause: float) -> dict:
    """The first Start in a new Python process (``pause`` seconds after the dashboard is built)."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, "-c", FRESH, target, str(pause)], capture_output=True, text=True, env=env,
                         check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="training time per configuration")
    parser.add_argument("--target", default="circles")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay sizes")
    parser.add_argument("--fresh", type=int, default=3, help="fresh processes for the first Start (0: none)")
    parser.add_argument("--families", nargs="*", default=list(fl.live.FAMILIES), help="families to measure")
    args = parser.parse_args()

    devices = [d for d in fl.available_devices() if d == "cpu" or d.startswith("cuda")]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load():.1f}, devices: {', '.join(devices)}")
    print(f"{'device':8} {'flow':36} {'updates/s':>9} {'first frame':>11} {'first step shown':>16} "
          f"{'steps/s':>8} {'frames':>6} {'view CPU/frame':>14}")
    for device in devices:
        for family in args.families:
            config = dict(family=family, layers=4, hidden=64)
            s = measure(device, config, args.seconds, args.target)
            name = f"{family} x4"
            print(f"{device:8} {name:36} {s['updates_per_s']:9.1f} {s['first_frame_s'] * 1000:9.0f}ms "
                  f"{s['first_step_frame_s'] * 1000:14.0f}ms "
                  f"{s['steps_per_s']:8.0f} {s['frames']:6d} {s['view_cpu_s'] * 1000:12.1f}ms {s['message']}")
    if args.fresh:
        print(f"\nfirst Start in a fresh process (default dashboard on {args.target}), load average {load():.1f}")
        print(f"{'Start':>18} {'import flowlab':>14} {'build':>7} {'first step shown':>16} {'updates/s':>9}")
        for pause, when in ((0.0, "at once"), (2.0, "2 s after build")):
            for _ in range(args.fresh):
                s = fresh_start(args.target, pause)
                print(f"{when:>18} {s['import_s']:13.2f}s {s['build_s']:6.2f}s {s['first_step_frame_s'] * 1000:14.0f}ms "
                      f"{s['updates_per_s']:9.1f}")
    if not args.no_replay:
        print()
        print(f"{'replay':34} {'frames':>6} {'size':>9} {'record time':>11}")
        for config in REPLAYS:
            trainer = fl.live.Trainer(target=args.target, device="cpu", steps=500, **config)
            t0 = time.perf_counter()
            replay = trainer.record(every=10)
            dt = time.perf_counter() - t0
            name = f"{config['family']} x{config['layers']}, 500 steps"
            print(f"{name:34} {len(replay.frames):6d} {replay.nbytes / 1e6:7.2f}MB {dt:10.1f}s")
    print(f"\nload average at the end: {load():.1f}")


if __name__ == "__main__":
    main()
