"""The measured table of the chapter on autoregressive flows: every transformer with every
conditioner, on a 2-D and an 8-D target, over several seeds, with standard errors.

For each pair (transformer x conditioner, and the number of parts K for masked conditioners)
and each seed it trains a three-layer flow, with a fixed permutation of the coordinates between
layers and early stopping on a validation set, and records:

* the NLL (nats per point, lower is better) on the training set and on a large held-out test
  set, and the standard error of the held-out mean over the test points;
* on the 8-D target, whose density is known, the KL divergence ``D_KL(p || q) = NLL - h(p)``,
  estimated on the test points as the mean of ``log p - log q`` (a paired estimate);
* with ``--timings`` (a separate run, written to its own file): for the seed-0 model of every
  pair, milliseconds per training step (a batch of 256), to draw ``n`` samples and to evaluate
  the log-density of ``n`` points, measured robustly (see below).

Targets (generated in code, no downloads):

* ``moons`` (``flowlab.targets.moons``), 2-D: 1000 training and 500 validation points drawn
  with the seed, 5000 test points shared by every run; in 2-D, K = 2 is both the coupling and
  the fully autoregressive case, so it appears once;
* ``chain``, 8-D, a nonlinear Markov chain with a known density (:func:`chain_log_prob`):
  :math:`x_1` is a mixture of two Gaussians at :math:`\\pm 1.5` (sd 0.5) and
  :math:`x_i \\mid x_{i-1} \\sim N(1.5 \\sin(1.5 x_{i-1}), 0.5^2)`; 1000 training and 500
  validation points drawn with the seed, 20,000 test points shared by every run.

It writes the files that the book reads: ``book/data/autoregressive_runs.csv`` (one row per
pair and seed) and ``book/data/autoregressive_table.csv`` (one row per pair: means over the
seeds, and their standard errors over the seeds); with ``--timings``,
``book/data/autoregressive_timings.csv``. Regenerate them with

    python bench/autoregressive_table.py            # 3 seeds: about 50 min on a shared 2-core CPU
    python bench/autoregressive_table.py --timings  # the timings only: about 20 min
    python bench/autoregressive_table.py --quick    # a smoke test: a few steps, 2 seeds

How the timings are measured: the seed-0 model of every pair is trained exactly as in the
likelihood runs (so it is the table's seed-0 model), then every operation of every pair is
timed in ``--rounds`` interleaved rounds. In each round every operation runs once for a fixed
number of calls (about 20 ms, at least one call), the order of the operations rotating from
round to round, so that a busy spell of a shared machine slows all of them alike. A table
entry is the median over the rounds, with the fastest and the slowest round beside it. The
load average before and after the run goes into the file's header: timings taken under load
are inflated, and should be remeasured on a quiet machine with ``--timings`` (it leaves the
likelihood tables alone). All timings are single-threaded (``torch.set_num_threads(1)``).
The likelihoods depend on the seeds and, through floating-point rounding, on the machine: the
standard errors say how much.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

import flowlab as fl
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _tables, when run from elsewhere
from _tables import DATA, interleaved, load, write
from _tables import header as _header

TRANSFORMERS = {
    "affine": lambda: fl.Affine(),
    "monotonic NN": lambda: fl.MonotonicNN(hidden=8),
    "integral (UMNN)": lambda: fl.Integral(hidden=8, nodes=16),  # 16 nodes: ample for data within a few units of 0
    "spline": lambda: fl.RQSpline(bins=8, bound=4.0),
}


def chain(n: int, seed: int, features: int = 8) -> torch.Tensor:
    """``n`` points of the 8-D chain: x_1 a two-Gaussian mixture, x_i | x_(i-1) Gaussian."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, features)
    sign = torch.randint(0, 2, (n,), generator=g) * 2.0 - 1.0
    x[:, 0] = 1.5 * sign + 0.5 * torch.randn(n, generator=g)
    for i in range(1, features):
        x[:, i] = 1.5 * torch.sin(1.5 * x[:, i - 1]) + 0.5 * torch.randn(n, generator=g)
    return x


def chain_log_prob(x: torch.Tensor) -> torch.Tensor:
    """The exact log-density of :func:`chain` (normalized)."""
    def log_normal(v, mean, sd):
        return -0.5 * ((v - mean) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)

    first = torch.logsumexp(torch.stack([log_normal(x[:, 0], m, 0.5) for m in (-1.5, 1.5)]), 0) - math.log(2)
    rest = log_normal(x[:, 1:], 1.5 * torch.sin(1.5 * x[:, :-1]), 0.5).sum(-1)
    return first + rest


def datasets(name: str, seed: int):
    """Training and validation sets drawn with ``seed``, and the shared test set."""
    if name == "moons":
        return fl.targets.moons(1000, seed=10 * seed), fl.targets.moons(500, seed=10 * seed + 1), fl.targets.moons(5000, seed=999)
    return chain(1000, 10 * seed), chain(500, 10 * seed + 1), chain(20_000, 999)


def conditioner(kind, d: int, hidden: int):
    if kind == "RNN":
        return fl.RNNConditioner(d, hidden=hidden)
    return fl.MaskedConditioner(d, parts=kind, hidden=(hidden, hidden))


def build(d: int, transformer: str, kind, layers: int = 3, hidden: int = 32) -> fl.Flow:
    """``layers`` autoregressive layers with a fixed permutation of the coordinates in between."""
    blocks = []
    for i in range(layers):
        if i > 0:
            blocks.append(fl.Reverse(d) if d == 2 else fl.Permutation(d, seed=i))
        blocks.append(fl.Autoregressive(conditioner(kind, d, hidden), TRANSFORMERS[transformer]()))
    return fl.Flow(fl.Compose(*blocks), fl.StandardNormal(d))


def training_step(flow: fl.Flow, x: torch.Tensor, batch_size: int):
    """One maximum-likelihood step (a minibatch, forward, backward, Adam), as a function to time."""
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-6)
    g = torch.Generator().manual_seed(0)

    def step():
        batch = x[torch.randint(len(x), (batch_size,), generator=g)]
        loss = -flow.log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def train(name: str, d: int, transformer: str, kind, seed: int, steps: int):
    """The flow of one pair trained with one seed, and its data (train, valid, test)."""
    x_train, x_valid, x_test = datasets(name, seed)
    torch.manual_seed(seed)
    flow = build(d, transformer, kind)
    fl.fit(flow, x_train, steps=steps, lr=5e-3, batch_size=256, valid=x_valid, seed=seed, progress=False)
    return flow, (x_train, x_valid, x_test)


def describe(name: str, d: int, transformer: str, kind, flow: fl.Flow) -> dict:
    return {
        "target": name, "D": d, "transformer": transformer,
        "conditioner": "RNN" if kind == "RNN" else "masked", "K": d if kind == "RNN" else kind,
        "parameters": sum(p.numel() for p in flow.parameters()),
    }


def run(name: str, d: int, transformer: str, kind, seed: int, steps: int) -> dict:
    flow, (x_train, _, x_test) = train(name, d, transformer, kind, seed, steps)
    with torch.no_grad():
        log_q = flow.log_prob(x_test).double()
        train_nll = float(-flow.log_prob(x_train).double().mean())
    row = describe(name, d, transformer, kind, flow)
    row.update({
        "seed": seed,
        "train NLL": round(train_nll, 4),
        "held-out NLL": round(float(-log_q.mean()), 4),
        "held-out SE": round(float(log_q.std() / math.sqrt(len(log_q))), 4),
    })
    if name == "chain":
        gap = chain_log_prob(x_test).double() - log_q  # log p - log q: its mean is D_KL(p || q)
        row["KL"], row["KL SE"] = round(float(gap.mean()), 4), round(float(gap.std() / math.sqrt(len(gap))), 4)
    return row


def timings(pairs: list, steps: dict, n: int, rounds: int) -> list[dict]:
    """Interleaved timings of the seed-0 model of every pair (see the module docstring)."""
    tasks, rows = {}, {}
    for name, d, transformer, kind in pairs:
        flow, (x_train, _, x_test) = train(name, d, transformer, kind, 0, steps[name])
        key = (name, transformer, kind)
        rows[key] = describe(name, d, transformer, kind, flow)
        passes = d - 1 if kind == "RNN" else kind - 1
        rows[key]["network passes to sample"] = passes  # per layer
        rows[key]["transformer inversions to sample"] = passes + 1  # the constants of part 0, then one per pass
        x = x_test[:n]
        tasks[key + (f"ms for density of {n}",)] = torch.no_grad()(lambda flow=flow, x=x: flow.log_prob(x))
        tasks[key + (f"ms to sample {n}",)] = torch.no_grad()(
            lambda flow=flow: flow.sample(n, generator=torch.Generator().manual_seed(0)))
        tasks[key + ("ms per step",)] = training_step(flow, x_train, 256)
        print(f"trained {key}", flush=True)
    seconds = interleaved(tasks, rounds)
    for (*key, column), values in seconds.items():
        ms = 1e3 * np.array(values)
        row = rows[tuple(key)]
        row[column] = round(float(np.median(ms)), 3)
        row[f"{column} min"] = round(float(ms.min()), 3)
        row[f"{column} max"] = round(float(ms.max()), 3)
    return list(rows.values())


def summarize(runs: list[dict]) -> list[dict]:
    """One row per pair: means over the seeds and their standard errors over the seeds."""
    table = []
    keys = dict.fromkeys((r["target"], r["D"], r["transformer"], r["conditioner"], r["K"]) for r in runs)
    for key in keys:
        group = [r for r in runs if (r["target"], r["D"], r["transformer"], r["conditioner"], r["K"]) == key]
        row = dict(zip(("target", "D", "transformer", "conditioner", "K"), key))
        row["seeds"] = len(group)
        row["parameters"] = group[0]["parameters"]
        row["passes to sample"] = key[1] - 1 if key[3] == "RNN" else key[4] - 1
        for column in ("train NLL", "held-out NLL", "KL"):
            if group[0].get(column, "") != "":
                v = np.array([float(r[column]) for r in group])
                row[column] = round(float(v.mean()), 3)
                row[f"{column} SE"] = round(float(v.std(ddof=1) / math.sqrt(len(v))), 3) if len(v) > 1 else float("nan")
        table.append(row)
    return table


def read(path: Path) -> tuple[str, list[dict]]:
    """The note line and the rows of a CSV written by :func:`write`, with numbers as numbers."""
    def number(value: str):
        if value == "":
            return value
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value

    with open(path) as f:
        note = f.readline().lstrip("# ").strip()
        return note, [{k: number(v) for k, v in row.items()} for row in csv.DictReader(f)]


TIMED = ("ms per step", "ms for density of", "ms to sample")


def write_table(out: Path) -> None:
    """``autoregressive_table.csv`` from the per-seed runs and, where there are any, the median
    timings of ``autoregressive_timings.csv``, so that one file holds the whole summary."""
    note, runs = read(out / "autoregressive_runs.csv")
    rows = summarize(runs)
    if (out / "autoregressive_timings.csv").is_file():
        _, timed = read(out / "autoregressive_timings.csv")
        medians = {(t["target"], t["transformer"], t["conditioner"], t["K"]): t for t in timed}
        for row in rows:
            t = medians.get((row["target"], row["transformer"], row["conditioner"], row["K"]), {})
            row.update({c: v for c, v in t.items() if c.startswith(TIMED) and not c.endswith(("min", "max"))})
        note += "; ms columns: the medians of autoregressive_timings.csv (--timings)"
    write(out / "autoregressive_table.csv", rows, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps per pair, 2 seeds, 2 rounds (smoke test)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timings", action="store_true",
                        help="time the seed-0 models only (writes autoregressive_timings.csv)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the timings")
    parser.add_argument("--out", default=str(DATA), help="folder for the CSV files")
    parser.add_argument("--n", type=int, default=500, help="points for the sampling and density timings")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = range(2 if args.quick else args.seeds)
    targets = [("moons", 2, 1000), ("chain", 8, 1000)]
    pairs = [(name, d, transformer, kind) for name, d, _ in targets for transformer in TRANSFORMERS
             for kind in ([2, "RNN"] if d == 2 else [2, d, "RNN"])]
    steps = {name: 5 if args.quick else s for name, _, s in targets}
    out = Path(args.out)
    start_all, load_before = time.perf_counter(), load()
    if args.timings:
        rows = timings(pairs, steps, n=args.n, rounds=2 if args.quick else args.rounds)
        rounds = 2 if args.quick else args.rounds
        note = f"seed-0 models; median, min and max over {rounds} interleaved rounds"
        header = _header("bench/autoregressive_table.py --timings", note, start_all, load_before)
        write(out / "autoregressive_timings.csv", rows, header)
        if (out / "autoregressive_runs.csv").is_file():
            write_table(out)
        print(f"wrote {out / 'autoregressive_timings.csv'} in {time.perf_counter() - start_all:.0f} s")
        return
    runs = []
    for name, d, transformer, kind in pairs:
        for seed in seeds:
            row = run(name, d, transformer, kind, seed, steps[name])
            runs.append(row)
            print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    header = _header("bench/autoregressive_table.py", f"{len(seeds)} seeds", start_all, load_before)
    write(out / "autoregressive_runs.csv", runs, header)
    write_table(out)
    print(f"wrote {out} in {time.perf_counter() - start_all:.0f} s")


if __name__ == "__main__":
    main()
