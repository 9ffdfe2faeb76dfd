"""The two experiments of the composition chapter, repeated over seeds.

Seed ``s`` draws the 1000 training points of the moons (``fl.targets.moons(1000, seed=10 s)``;
seed 0 gives the chapter's), the 500 validation points (``seed=10 s + 2``), the initial weights
(``torch.manual_seed(s)``) and the mini-batches (``seed=s``). Every run is scored on the
chapter's 5000 test points (``fl.targets.moons(5000, seed=1)``).

1. **The number of layers**: ``fl.MAF(2, hidden=(32, 32), layers=L, scale_bound=1.0)`` for
   L = 1, 2, 4, 8 (the chapter builds the same stacks by hand), 400 steps of ``fl.fit`` with
   batches of 256 at learning rate 5e-3 and early stopping on the validation points; the
   held-out NLL of each run.
2. **The normalizing trajectory**: ``fl.SplineAutoregressive(2, hidden=(32, 32), layers=4)``
   trained for 300 steps (batches of 256, learning rate 5e-3, the last parameters kept, as
   ``fl.replay.record`` does in the chapter); the held-out NLL and, after each of the four
   spline layers, the energy distance of the first 1000 test points to the standard normal
   (``flowlab.energy.to_normal``), with the data themselves as stage 0.

It writes ``book/data/composition_layers.csv`` and ``book/data/composition_stages.csv`` (one
row per run), which the chapter reads with :func:`flowlab.runs.read`. From the repository
root:

    python bench/composition_seeds.py            # 5 seeds: about 2 min on a 2-core CPU
    python bench/composition_seeds.py --quick    # 2 seeds, 20 steps: a smoke test
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
from flowlab.energy import to_normal


def data(seed: int):
    return fl.targets.moons(1000, seed=10 * seed), fl.targets.moons(500, seed=10 * seed + 2)


def layers_run(layers: int, seed: int, steps: int, x_test: torch.Tensor) -> dict:
    x_train, x_valid = data(seed)
    torch.manual_seed(seed)
    flow = fl.Flow(fl.MAF(2, hidden=(32, 32), layers=layers, scale_bound=1.0), fl.StandardNormal(2))
    fl.fit(flow, x_train, steps=steps, lr=5e-3, batch_size=256, valid=x_valid, seed=seed, progress=False)
    with torch.no_grad():
        log_q = flow.log_prob(x_test).double()
    return {"layers": layers, "seed": seed, "held-out NLL": round(float(-log_q.mean()), 4),
            "held-out SE": round(float(log_q.std() / math.sqrt(len(log_q))), 4)}


def stages_run(seed: int, steps: int, x_test: torch.Tensor) -> dict:
    x_train, _ = data(seed)
    torch.manual_seed(seed)
    flow = fl.Flow(fl.SplineAutoregressive(2, hidden=(32, 32), layers=4), fl.StandardNormal(2))
    run = fl.Training(flow, x_train, steps, 5e-3, 256, None, seed=seed)
    for _ in run:
        pass
    run.finish(keep_best=False)
    row = {"seed": seed}
    with torch.no_grad():
        row["held-out NLL"] = round(float(-flow.log_prob(x_test).double().mean()), 4)
        path = flow.transform.trajectory(x_test[:1000])
        spline_stages = [0] + [i + 1 for i, t in enumerate(flow.transform.transforms) if not isinstance(t, fl.Reverse)]
        for stage, i in enumerate(spline_stages):
            distance, null_sd = to_normal(path[i], repeats=10)
            row[f"energy after layer {stage}"] = round(distance, 5)
        row["energy null sd"] = round(null_sd, 5)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 steps (smoke test)")
    parser.add_argument("--out", default=str(DATA))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = range(2 if args.quick else args.seeds)
    started, load_before = time.perf_counter(), load()
    x_test = fl.targets.moons(5000, seed=1)
    layer_rows, stage_rows = [], []
    for seed in seeds:
        for layers in (1, 2, 4, 8):
            layer_rows.append(layers_run(layers, seed, 20 if args.quick else 400, x_test))
            print(layer_rows[-1], flush=True)
        stage_rows.append(stages_run(seed, 20 if args.quick else 300, x_test))
        print(stage_rows[-1], flush=True)
    note = header("bench/composition_seeds.py", f"{len(seeds)} seeds", started, load_before)
    out = Path(args.out)
    write(out / "composition_layers.csv", layer_rows, note)
    write(out / "composition_stages.csv", stage_rows, note)
    print(f"wrote {out}: {note}")


if __name__ == "__main__":
    main()
