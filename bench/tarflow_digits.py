"""TarFlow on scikit-learn's 8x8 digits: the seeds and the checkpoint behind the capstone chapter.

Data and protocol are those of the practice chapter: the 1797 digits of ``load_digits`` (17 grey
levels, D = 64), split by ``torch.randperm(1797, generator=Generator().manual_seed(0))`` into
1200 training, 300 validation and 297 test images; the validation and test images dequantised
once, ``y = x + u`` with ``u ~ U[0, 1)`` drawn from one generator seeded 1 (training, validation,
test, in that order); test bits per dimension are the mean NLL of the dequantised test images,
in nats, divided by ``64 log 2``. The fixed first layer is the practice chapter's
``flowlab.pixels.HistogramCDF`` (the independent-pixel model as a flow layer, histograms of the
training images with one pseudo-count per level), and every trained flow sits on top of it,
in its latent space ``z``.

Models, each trained with seeds 0..``--seeds``-1 (the seed draws the initial weights, the
mini-batches and, for the last three, the training noise):

* ``coupling``: the practice chapter's coupling flow (four affine coupling layers, a random
  permutation before each, ``fl.MAF(64, hidden=(64,), parts=2, scale_bound=2.0)``) trained as
  practice trains it: 250 steps of 64 images, lr 2e-3, the parameters of the lowest validation
  NLL kept (checked every 20 steps), on the training images dequantised once;
* ``coupling, TarFlow's training``: the same flow trained like the TarFlow below, to separate
  what the conditioner brings from what the longer training with fresh noise brings;
* ``coupling, 4x longer``: the same again with four times the steps (6000), to see whether the
  coupling flow only needed more of its cheaper steps;
* ``TarFlow``: ``fl.TarFlow(64, shape=(8, 8), patch=2, hidden=64, layers=4, depth=2, heads=4)``
  (16 patches of 2 x 2 pixels, K = 16 parts per layer), trained for 1500 steps of 64 images
  (lr 1e-3, cosine schedule, validation every 50 steps, the best parameters kept) on ten copies
  of the training images, each copy with its own dequantisation noise and Gaussian noise of
  standard deviation ``NOISE`` = 0.2 added in ``z`` (TarFlow's noise augmentation); the
  validation and test images get no Gaussian noise;
* ``TarFlow, pixels``: TarFlow's own likelihood recipe, without the histogram layer: the
  dequantised pixels scaled to [-1, 1) (``v = 2 y / 17 - 1``, bins of width 2/17, so the
  density of ``y`` is that of ``v`` times ``(2/17)^64``: the bin-width correction), uniform
  dequantisation only, otherwise trained like ``TarFlow``.

It writes ``book/data/tarflow_digits.csv`` (one row per model and seed: test bits/dim, the step
of the best validation NLL, CPU seconds, parameters), ``book/data/tarflow_digits.pt`` (seed 0's
``TarFlow``: its parameters, the histogram layer's probabilities, and samples of a fixed latent
batch every 100 steps with its training curve, for the chapter's replay) and
``book/data/tarflow_digits.json`` (the checkpoint's SHA-256, which the chapter checks, the
settings and this command). Run it from the repository root:

    python bench/tarflow_digits.py --seeds 3           # the book's table: see its first line for the time
    python bench/tarflow_digits.py --seeds 3 --models "coupling, 4x longer"   # one model again, the others kept
    python bench/tarflow_digits.py --quick --out /tmp/tarflow   # a smoke test: 2 seeds, 40 steps

The command written into the table and the json names every setting that differs from the
defaults, ``--seeds`` always, so that it reproduces the files it wrote.

Single-threaded CPU. The numbers depend on the seeds, and through rounding on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits

import flowlab as fl
import flowlab.runs
from flowlab.pixels import HistogramCDF, bits_per_dim, dequantize
from flowlab.tarflow import denoise

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _tables, when run from elsewhere
from _tables import DATA, header, load, write

LEVELS, D = 17, 64
NOISE = 0.2  # training noise of the TarFlow, in the latent space of the histogram layer
COPIES = 10  # dequantised (and noised) copies of the training images
STEPS = 1500  # steps of the TarFlow trainings
TARFLOW = dict(shape=(8, 8), patch=2, hidden=64, layers=4, depth=2, heads=4)
SNAPSHOT_EVERY, SNAPSHOT_SAMPLES = 100, 24
COMMAND = "python bench/tarflow_digits.py"
MODELS = ("coupling", "coupling, TarFlow's training", "coupling, 4x longer", "TarFlow", "TarFlow, pixels")


def digits() -> dict:
    """The practice chapter's split and dequantisation of the digits (module docstring)."""
    pixels = torch.tensor(load_digits().data, dtype=torch.float64)
    order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(0))
    px = {"train": pixels[order[:1200]], "valid": pixels[order[1200:1500]], "test": pixels[order[1500:]]}
    rng = torch.Generator().manual_seed(1)
    y = {name: dequantize(p, generator=rng) for name, p in px.items()}
    return {"px": px, "y": y, "cdf": HistogramCDF.fit(px["train"], LEVELS, pseudo=1.0)}


def to_pixels_space(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``v = 2 y / 17 - 1`` and the log-determinant ``64 log(2/17)`` of that scaling."""
    scale = 2 / LEVELS
    return y * scale - 1, torch.full((len(y),), D * math.log(scale), dtype=y.dtype)


def coupling_flow(seed: int) -> fl.Flow:
    """The practice chapter's coupling flow (its ``digits_flow``)."""
    torch.manual_seed(seed)
    blocks = []
    for i in range(4):
        blocks += [fl.Permutation(D, seed=100 * seed + i), fl.MAF(D, hidden=(64,), parts=2, scale_bound=2.0)]
    return fl.Flow(fl.Compose(*blocks), fl.StandardNormal(D))


def tarflow(seed: int) -> fl.Flow:
    torch.manual_seed(seed)
    return fl.Flow(fl.TarFlow(D, **TARFLOW), fl.StandardNormal(D))


def training_copies(data: dict, seed: int, latent, noise: float) -> torch.Tensor:
    """``COPIES`` copies of the training images, each dequantised afresh, mapped by ``latent``
    and given Gaussian noise of standard deviation ``noise`` there."""
    g = torch.Generator().manual_seed(1000 + seed)
    z = torch.cat([latent(dequantize(data["px"]["train"], generator=g))[0] for _ in range(COPIES)])
    return (z + noise * torch.randn(z.shape, generator=g, dtype=z.dtype)).float()


def test_bits(flow: fl.Flow, z: torch.Tensor, ladj: torch.Tensor) -> float:
    with torch.no_grad():
        nll = -(flow.log_prob(z.float()).double() + ladj)
    return float(bits_per_dim(nll.mean(), D))


def snapshot(flow: fl.Flow, cdf: HistogramCDF, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer images of the latent batch ``z0``, without and with the denoising step."""
    flow.eval()
    with torch.no_grad():
        noisy = flow.transform.inverse(z0)[0]
    clean = denoise(flow, noisy, NOISE)
    flow.train()
    images = [cdf.inverse(v.double())[0].floor().clamp(0, LEVELS - 1).to(torch.uint8) for v in (noisy, clean)]
    return images[0], images[1]


def run(name: str, seed: int, data: dict, steps: int, record: bool = False) -> tuple[dict, dict | None]:
    cdf = data["cdf"]
    pixels = name == "TarFlow, pixels"
    latent = to_pixels_space if pixels else cdf
    z_valid = latent(data["y"]["valid"])[0].float()
    z_test, ladj_test = latent(data["y"]["test"])
    if name == "coupling":
        flow, x, settings = coupling_flow(seed), latent(data["y"]["train"])[0].float(), dict(
            steps=min(steps, 250), lr=2e-3, valid_every=20)
    else:
        flow = coupling_flow(seed) if name.startswith("coupling") else tarflow(seed)
        x = training_copies(data, seed, latent, 0.0 if pixels else NOISE)
        settings = dict(steps=4 * steps if name == "coupling, 4x longer" else steps,
                        lr=2e-3 if name.startswith("coupling") else 1e-3, valid_every=50)
    run_ = fl.Training(flow, x, batch_size=64, valid=z_valid, seed=seed, **settings)
    z0 = torch.randn(SNAPSHOT_SAMPLES, D, generator=torch.Generator().manual_seed(0))
    shots = {"step": [], "noisy": [], "denoised": []}

    def shoot():
        noisy, clean = snapshot(flow, cdf, z0)
        shots["step"].append(run_.step_count)
        shots["noisy"].append(noisy)
        shots["denoised"].append(clean)

    cpu = time.process_time()
    if record:
        shoot()  # step 0: the identity on top of the histogram layer, that is independent pixels
    for _ in run_:
        if record and (run_.step_count % SNAPSHOT_EVERY == 0 or run_.done):
            shoot()
    history = run_.finish(keep_best=True)
    cpu = time.process_time() - cpu
    row = {"model": name, "seed": seed, "test_bits": round(test_bits(flow, z_test, ladj_test), 6),
           "best_step": history.best_step, "steps": settings["steps"], "cpu_s": round(cpu, 1),
           "parameters": sum(p.numel() for p in flow.parameters())}
    print(row, flush=True)
    if not record:
        return row, None
    checkpoint = {
        "state_dict": {k: v.detach().clone() for k, v in flow.transform.state_dict().items()},
        "settings": dict(TARFLOW, noise=NOISE, seed=seed, steps=steps),
        "probs": cdf.probs.clone(),
        "replay": {"step": shots["step"], "noisy": torch.stack(shots["noisy"]),
                   "denoised": torch.stack(shots["denoised"]), "loss": [round(v, 4) for v in history.loss],
                   "valid_step": list(history.valid_step), "valid_nll": [round(v, 4) for v in history.valid_nll],
                   "best_step": history.best_step},
    }
    return row, checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 of every model (default 3)")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"steps of the TarFlow trainings (default {STEPS})")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 40 steps: a smoke test")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="the models to train; the rows of the others in an existing table are kept")
    parser.add_argument("--out", type=Path, default=DATA, help="folder for the three files (default book/data)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds, steps = (range(2), 40) if args.quick else (range(args.seeds), args.steps)
    data = digits()
    rows, checkpoint, started, load_before = [], None, time.perf_counter(), load()
    for seed in seeds:
        for name in args.models:
            row, ckpt = run(name, seed, data, steps, record=(name == "TarFlow" and seed == 0))
            rows.append(row)
            checkpoint = ckpt or checkpoint
    command = COMMAND + (" --quick" if args.quick else f" --seeds {args.seeds}")
    if args.steps != STEPS and not args.quick:
        command += f" --steps {args.steps}"
    if tuple(args.models) != MODELS:
        command += " --models " + " ".join(f'"{m}"' for m in args.models)
    note = header(command, "test bits/dim of the 8x8 digits (practice chapter's split), per model and seed",
                  started, load_before)
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "tarflow_digits.csv"
    if table.exists() and tuple(args.models) != MODELS:  # keep the other models' rows and how they were measured
        earlier = fl.runs.read(table)
        kept = earlier[~earlier.model.isin(args.models)].to_dict("records")
        rows = kept + rows
        note = " | ".join(earlier.attrs["notes"] + [note])
    write(table, rows, note)
    if checkpoint is not None:
        path = args.out / "tarflow_digits.pt"
        torch.save(checkpoint, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        meta = {"file": path.name, "sha256": digest, "bytes": path.stat().st_size, "command": command,
                "settings": checkpoint["settings"], "measured": note}
        (args.out / "tarflow_digits.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"checkpoint {path} ({meta['bytes']} bytes), sha256 {digest}")


if __name__ == "__main__":
    main()
