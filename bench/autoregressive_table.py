"""The measured table of the chapter on autoregressive flows: every transformer with every
conditioner, on a 2-D and an 8-D target, over several seeds, with standard errors.

For each pair (transformer x conditioner, and the number of parts K for masked conditioners)
and each seed it trains a three-layer flow, with a fixed permutation of the coordinates between
layers and early stopping on a validation set, and records:

* the NLL (nats per point, lower is better) on the training set and on a large held-out test
  set, and the standard error of the held-out mean over the test points;
* on the 8-D target, whose density is known, the KL divergence ``D_KL(p || q) = NLL - h(p)``,
  estimated on the test points as the mean of ``log p - log q`` (a paired estimate);
* for seed 0 only: milliseconds per training step (a batch of 256), to draw ``n`` samples (the
  inverse: K - 1 network passes per layer for a masked conditioner, D - 1 GRU sweeps for the
  recurrent one, plus bisection for the transformers without a closed-form inverse), and to
  evaluate the log-density of ``n`` points.

Targets (generated in code, no downloads):

* ``moons`` (``flowlab.targets.moons``), 2-D: 1000 training and 500 validation points drawn
  with the seed, 5000 test points shared by every run; in 2-D, K = 2 is both the coupling and
  the fully autoregressive case, so it appears once;
* ``chain``, 8-D, a nonlinear Markov chain with a known density (:func:`chain_log_prob`):
  :math:`x_1` is a mixture of two Gaussians at :math:`\\pm 1.5` (sd 0.5) and
  :math:`x_i \\mid x_{i-1} \\sim N(1.5 \\sin(1.5 x_{i-1}), 0.5^2)`; 1000 training and 500
  validation points drawn with the seed, 20,000 test points shared by every run.

It writes two files that the book reads: ``book/data/autoregressive_runs.csv`` (one row per
pair and seed) and ``book/data/autoregressive_table.csv`` (one row per pair: means over the
seeds, and their standard errors over the seeds). Regenerate them with

    python bench/autoregressive_table.py            # 3 seeds: about 15-25 min on a 2-core CPU
    python bench/autoregressive_table.py --quick    # a smoke test: a few steps, 2 seeds

Timings are single-threaded CPU times (``torch.set_num_threads(1)``): for anything that takes
under a second, the best of five runs of repeated calls. On a shared machine they vary by tens
of percent from run to run; compare ratios, not digits. The likelihoods depend on the seeds
and, through floating-point rounding, on the machine: the standard errors say how much.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import flowlab as fl

DATA = Path(__file__).resolve().parent.parent / "book" / "data"

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


def best_ms(fn, repeat: int = 5, budget: float = 0.05) -> float:
    """Milliseconds per call of ``fn``: the best of ``repeat`` runs, each repeating the call
    until it lasts about ``budget`` seconds (one run of one call for calls over a second)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > 1.0:
        return 1e3 * first
    calls = max(1, int(budget / max(first, 1e-6)))
    runs = []
    for _ in range(repeat if first < 0.2 else 2):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls)
    return 1e3 * min(runs)


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


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(name: str, d: int, transformer: str, kind, seed: int, steps: int, n: int, timings: bool) -> dict:
    x_train, x_valid, x_test = datasets(name, seed)
    torch.manual_seed(seed)
    flow = build(d, transformer, kind)
    fl.fit(flow, x_train, steps=steps, lr=5e-3, batch_size=256, valid=x_valid, seed=seed, progress=False)
    with torch.no_grad():
        log_q = flow.log_prob(x_test).double()
        train_nll = float(-flow.log_prob(x_train).double().mean())
    row = {
        "target": name, "D": d, "transformer": transformer,
        "conditioner": "RNN" if kind == "RNN" else "masked", "K": d if kind == "RNN" else kind,
        "seed": seed, "parameters": sum(p.numel() for p in flow.parameters()),
        "train NLL": round(train_nll, 4),
        "held-out NLL": round(float(-log_q.mean()), 4),
        "held-out SE": round(float(log_q.std() / math.sqrt(len(log_q))), 4),
    }
    if name == "chain":
        gap = chain_log_prob(x_test).double() - log_q  # log p - log q: its mean is D_KL(p || q)
        row["KL"], row["KL SE"] = round(float(gap.mean()), 4), round(float(gap.std() / math.sqrt(len(gap))), 4)
    if timings:
        with torch.no_grad():
            z = x_test[:n]
            row[f"ms for density of {n}"] = round(best_ms(lambda: flow.log_prob(z)), 2)
            row[f"ms to sample {n}"] = round(best_ms(lambda: flow.sample(n, generator=torch.Generator().manual_seed(0))), 1)
        row["ms per step"] = round(best_ms(training_step(flow, x_train, 256)), 2)
    return row


def summarize(runs: list[dict]) -> list[dict]:
    """One row per pair: means over the seeds and their standard errors over the seeds."""
    table = []
    keys = dict.fromkeys((r["target"], r["D"], r["transformer"], r["conditioner"], r["K"]) for r in runs)
    for key in keys:
        group = [r for r in runs if (r["target"], r["D"], r["transformer"], r["conditioner"], r["K"]) == key]
        first = next(r for r in group if "ms per step" in r)
        row = dict(zip(("target", "D", "transformer", "conditioner", "K"), key))
        row["seeds"] = len(group)
        row["parameters"] = group[0]["parameters"]
        row["passes to sample"] = key[1] - 1 if key[3] == "RNN" else key[4] - 1
        for column in ("train NLL", "held-out NLL", "KL"):
            if column in group[0]:
                v = np.array([r[column] for r in group])
                row[column] = round(float(v.mean()), 3)
                row[f"{column} SE"] = round(float(v.std(ddof=1) / math.sqrt(len(v))), 3) if len(v) > 1 else float("nan")
        for column in first:
            if column.startswith("ms"):
                row[column] = first[column]
        table.append(row)
    return table


def write(path: Path, rows: list[dict], header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(c for r in rows for c in r))
    with open(path, "w", newline="") as f:
        f.write(f"# {header}\n")
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps per pair, 2 seeds (smoke test)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(DATA), help="folder for the two CSV files")
    parser.add_argument("--n", type=int, default=500, help="points for the sampling and density timings")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = range(2 if args.quick else args.seeds)
    targets = [("moons", 2, 1000), ("chain", 8, 1000)]
    runs = []
    start_all = time.perf_counter()
    for name, d, steps in targets:
        kinds = [2, "RNN"] if d == 2 else [2, d, "RNN"]
        for transformer in TRANSFORMERS:
            for kind in kinds:
                for seed in seeds:
                    row = run(name, d, transformer, kind, seed, 5 if args.quick else steps, args.n, timings=seed == 0)
                    runs.append(row)
                    print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    machine = f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread"
    header = (f"measured by bench/autoregressive_table.py on {machine}; {len(seeds)} seeds; "
              f"{time.perf_counter() - start_all:.0f} s in all")
    out = Path(args.out)
    write(out / "autoregressive_runs.csv", runs, header)
    write(out / "autoregressive_table.csv", summarize(runs), header)
    print(f"wrote {out} in {time.perf_counter() - start_all:.0f} s")


if __name__ == "__main__":
    main()
