"""The measured table of the chapter on autoregressive flows: every transformer with every
conditioner, on a 2-D and an 8-D target.

For each pair (transformer x conditioner, and the number of parts K for masked conditioners)
it trains a three-layer flow, with a fixed permutation of the coordinates between layers, and
records:

* the held-out NLL (nats per point, lower is better; early stopping on a validation split);
* milliseconds per training step (a batch of 256 for the moons, the whole training set for the
  8-D data; the density direction: one conditioner pass per layer, then backpropagation);
* milliseconds to draw ``n`` samples (the inverse: K passes per layer, plus bisection for the
  transformers without a closed-form inverse);
* milliseconds to evaluate the log-density of ``n`` points.

Targets: ``moons`` (flowlab.targets, 2-D) and ``breast cancer`` (8 columns of
``sklearn.datasets.load_breast_cancer``, shipped with scikit-learn, log-transformed and
standardized; 60/20/20 train/valid/test split). In 2-D, K = 2 is both the coupling and the
fully autoregressive case, so it appears once.

The book loads the CSV it writes; regenerate it with

    python bench/autoregressive_table.py            # about 10 min on a 2-core CPU
    python bench/autoregressive_table.py --quick    # a smoke test: a few steps per pair

Timings are single-threaded CPU times (``torch.set_num_threads(1)``): for anything that takes
under a second, the best of five runs of repeated calls. On a shared machine they vary by tens
of percent from run to run; compare ratios, not digits.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import flowlab as fl

OUT = Path(__file__).resolve().parent.parent / "book" / "data" / "autoregressive_table.csv"

TRANSFORMERS = {
    "affine": lambda: fl.Affine(),
    "monotonic NN": lambda: fl.MonotonicNN(hidden=8),
    "integral (UMNN)": lambda: fl.Integral(hidden=8),
    "spline": lambda: fl.RQSpline(bins=8, bound=4.0),
}

# breast cancer: mean radius, texture, perimeter, area, smoothness, compactness, symmetry,
# fractal dimension (the "mean" columns without zeros)
BREAST_CANCER_COLUMNS = [0, 1, 2, 3, 4, 5, 8, 9]


def breast_cancer(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train, validation and test rows of the 8-D breast cancer data (log, then standardized
    with the training rows' mean and standard deviation)."""
    from sklearn.datasets import load_breast_cancer

    x = np.log(load_breast_cancer().data[:, BREAST_CANCER_COLUMNS])
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = n_valid = len(x) // 5
    test, valid, train = x[order[:n_test]], x[order[n_test:n_test + n_valid]], x[order[n_test + n_valid:]]
    mean, std = train.mean(0), train.std(0)
    return tuple(torch.tensor((a - mean) / std, dtype=torch.float32) for a in (train, valid, test))


def moons() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return fl.targets.moons(1000, seed=0), fl.targets.moons(500, seed=2), fl.targets.moons(5000, seed=1)


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


def training_step(flow: fl.Flow, x: torch.Tensor, batch_size: int | None):
    """One maximum-likelihood step (a minibatch, forward, backward, Adam), as a function to time."""
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)

    def step():
        batch = x if batch_size is None else x[torch.randint(len(x), (batch_size,), generator=g)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps per pair (smoke test)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--n", type=int, default=500, help="points for the sampling and density timings")
    args = parser.parse_args()
    torch.set_num_threads(1)
    targets = [
        ("moons", 2, moons(), dict(steps=1000, batch_size=256)),
        ("breast cancer", 8, breast_cancer(), dict(steps=600, batch_size=None)),
    ]
    rows = []
    start_all = time.perf_counter()
    for name, d, (x_train, x_valid, x_test), train in targets:
        kinds = [2, "RNN"] if d == 2 else [2, d, "RNN"]
        steps = 5 if args.quick else train["steps"]
        for transformer in TRANSFORMERS:
            for kind in kinds:
                torch.manual_seed(0)
                flow = build(d, transformer, kind)
                history = fl.fit(flow, x_train, steps=steps, lr=5e-3, batch_size=train["batch_size"], valid=x_valid,
                                 progress=False)
                with torch.no_grad():
                    nll = float(-flow.log_prob(x_test).mean())
                    z = x_test.repeat(-(-args.n // len(x_test)), 1)[: args.n]  # n held-out points
                    density_ms = best_ms(lambda: flow.log_prob(z))
                    sample_ms = best_ms(lambda: flow.sample(args.n, generator=torch.Generator().manual_seed(0)))
                step_ms = best_ms(training_step(flow, x_train, train["batch_size"]))  # after the NLL: it moves the flow
                row = {
                    "target": name,
                    "D": d,
                    "transformer": transformer,
                    "conditioner": "RNN" if kind == "RNN" else "masked",
                    "K": d if kind == "RNN" else kind,
                    "passes per layer": d if kind == "RNN" else kind,
                    "parameters": sum(p.numel() for p in flow.parameters()),
                    "held-out NLL": round(nll, 3),
                    "ms per step": round(step_ms, 2),
                    f"ms to sample {args.n}": round(sample_ms, 1),
                    f"ms for density of {args.n}": round(density_ms, 2),
                }
                rows.append(row)
                print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    machine = f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        f.write(f"# measured by bench/autoregressive_table.py on {machine}; "
                f"{time.perf_counter() - start_all:.0f} s in all\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out} in {time.perf_counter() - start_all:.0f} s")


if __name__ == "__main__":
    main()
