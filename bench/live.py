"""How fast the live trainer's view updates: view updates per second and first-frame latency.

Runs :class:`flowlab.live.Trainer` headless (no browser: the widgets' values are set exactly
as in a notebook) for a few seconds per flow family (every transformer with every conditioner,
at the dashboard's defaults: 4 layers, 64 hidden units), on the CPU and on each CUDA device,
and prints a table. The budget (DESIGN.md): first frame within 1 s of Start, at least 10 view
updates per second for 2-D flows. Also prints the size of a replay of two configurations.

    python bench/live.py            # about 1 min on a 2-core CPU
    python bench/live.py --seconds 5 --no-replay
    python bench/live.py --families MAF "spline autoregressive"
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import flowlab as fl
import flowlab.live
import flowlab.replay

REPLAYS = [
    dict(family="spline autoregressive", layers=3, hidden=64, bins=8),
    dict(family="MAF", layers=4, hidden=64),
]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="training time per configuration")
    parser.add_argument("--target", default="circles")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay sizes")
    parser.add_argument("--families", nargs="*", default=list(fl.live.FAMILIES), help="families to measure")
    args = parser.parse_args()

    devices = [d for d in fl.available_devices() if d == "cpu" or d.startswith("cuda")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.1f}, devices: {', '.join(devices)}")
    print(f"{'device':8} {'flow':36} {'updates/s':>9} {'first frame':>11} {'first step shown':>16} "
          f"{'steps/s':>8} {'frames':>6}")
    for device in devices:
        for family in args.families:
            config = dict(family=family, layers=4, hidden=64)
            s = measure(device, config, args.seconds, args.target)
            name = f"{family} x4"
            print(f"{device:8} {name:36} {s['updates_per_s']:9.1f} {s['first_frame_s'] * 1000:9.0f}ms "
                  f"{s['first_step_frame_s'] * 1000:14.0f}ms "
                  f"{s['steps_per_s']:8.0f} {s['frames']:6d} {s['message']}")
    if args.no_replay:
        return
    print()
    print(f"{'replay':34} {'frames':>6} {'size':>9} {'record time':>11}")
    for config in REPLAYS:
        trainer = fl.live.Trainer(target=args.target, device="cpu", steps=500, **config)
        t0 = time.perf_counter()
        replay = trainer.record(every=10)
        dt = time.perf_counter() - t0
        name = f"{config['family']} x{config['layers']}, 500 steps"
        print(f"{name:34} {len(replay.frames):6d} {replay.nbytes / 1e6:7.2f}MB {dt:10.1f}s")


if __name__ == "__main__":
    main()
