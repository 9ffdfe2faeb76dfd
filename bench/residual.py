#!/usr/bin/env python
r"""flowlab's residual flows next to normflows' (``Residual`` + ``LipschitzMLP``, and ``Planar``).

Two comparisons at equal architecture, each trained with the same hand-written loop, in one run:

* **i-ResNet, density estimation** on ``fl.targets.moons`` (1000 training points, 5000 held out):
  4 residual blocks, each an MLP 2 -> 64 -> 64 -> 2 with spectral norm <= 0.9 per layer and
  LipSwish, standard normal base, Adam lr 3e-3, batch 256. Each log-det estimator of flowlab is
  paired with normflows' same estimator:

  - exact 2x2 log-det: ``ladj="exact"`` against ``brute_force=True``;
  - Russian roulette, p = 0.5 and 2 exact terms: ``ladj="roulette"`` against normflows' default
    (``geom_p=0.5, n_exact_terms=2``). Both draw one number of terms per batch and take the
    gradient from one Neumann VJP (Chen et al. 2019). normflows' count is 2 + Geometric on
    {1, 2, ...} (4 terms on average), flowlab's 2 + Geometric on {0, 1, ...} (3): the row
    "equal expected terms" gives flowlab 3 exact terms, 4 on average as well;
  - the series truncated after 5 terms: ``ladj="series", terms=5`` against ``n_power_series=5``.

  Spectral norms: flowlab's layers update their own estimate in every training forward (a step of
  subspace iteration on four singular pairs; the plain loop calls nothing else); normflows' layers
  use their stored estimate in the forward pass and are updated by ``nf.utils.update_lipschitz(model,
  1)`` after each optimizer step (one power iteration per layer: the least that keeps the bound
  moving with the weights). Held-out NLL is computed with the exact log-det for every model, twice:
  with the norms as training left them, and after each library's own refresh to convergence (only
  the latter is guaranteed to be a contraction, so a normalised density).
* **Planar, reverse KL** on ``U1`` of Rezende & Mohamed (log Z = 1.8775): K = 16 planar layers
  (``--planar-layers``)
  with tanh, 256 samples per step, Adam lr 5e-3. Both libraries sample in the explicit direction.
  Quality is the true KL = E_q[log q - log p] + log Z on 20,000 fresh samples (± SE).

Steps are split into rounds; in each round every model trains its next chunk (the order rotates),
so a shared machine slows all alike; ms/step is the median over rounds. The ratio column is
flowlab's time over the peer's (below 1: flowlab is faster).

    pip install -r bench/requirements.txt
    python bench/residual.py            # 1000 steps per model (several minutes on 2 cores)
    python bench/residual.py --quick    # 100 steps
    python bench/residual.py --only roulette   # only the roulette pairs (and planar unless --no-planar)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from importlib.metadata import version

import torch

import flowlab as fl

HIDDEN, BLOCKS, COEFF = (64, 64), 4, 0.9


def _normflows():
    import normflows as nf

    return nf


# ------------------------------------------------------------------------------------------
# models and their training steps
# ------------------------------------------------------------------------------------------

def flowlab_resflow(**ladj):
    flow = fl.Flow(fl.ResidualFlow(2, layers=BLOCKS, hidden=HIDDEN, coeff=COEFF, **ladj), fl.StandardNormal(2))

    def nll(x):
        return -flow.log_prob(x).mean()

    after = None  # the plain loop: the layers keep their spectral norms themselves

    def evaluate(x):
        exact = fl.Flow(fl.Compose(*[_exact(block) for block in flow.transform]), flow.base)
        with torch.no_grad():
            as_trained = -exact.log_prob(x)  # training mode: the norms as the last step left them
        exact.eval()  # the exact top singular pairs
        with torch.no_grad():
            out = -exact.log_prob(x)
        flow.train()
        return as_trained, out

    return flow, nll, after, evaluate


def _exact(block):
    """The same block (shared weights and norm state) with the exact log-det."""
    twin = fl.ResidualBlock(2, hidden=HIDDEN, coeff=COEFF)
    twin.g = block.g
    return twin


def normflows_resflow(brute_force: bool, n_power_series=None):
    nf = _normflows()
    flows = []
    for _ in range(BLOCKS):
        net = nf.nets.LipschitzMLP([2, *HIDDEN, 2], init_zeros=True, lipschitz_const=COEFF)
        flows.append(nf.flows.Residual(net, reduce_memory=True, brute_force=brute_force, n_power_series=n_power_series))
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), flows)

    def nll(x):
        return model.forward_kld(x)

    def after():
        nf.utils.update_lipschitz(model, 1)  # the forward pass uses the stored norms: update them

    def evaluate(x):
        model.eval()  # in eval mode normflows switches to the exact 2x2 log-det
        with torch.no_grad():
            as_trained = -model.log_prob(x)  # the norms as training left them
        nf.utils.update_lipschitz(model, 200)  # as normflows' example before evaluation
        with torch.no_grad():
            out = -model.log_prob(x)
        model.train()
        return as_trained, out

    return model, nll, after, evaluate


def flowlab_planar(k: int):
    flow = fl.Flow(fl.PlanarFlow(2, layers=k), fl.StandardNormal(2))
    target = fl.targets.DENSITIES["U1"]

    def loss(n):
        x, log_q = flow.rsample_and_log_prob(n)
        return (log_q - target(x)).mean()

    def kl(n):
        with torch.no_grad():
            x, log_q = flow.rsample_and_log_prob(n)
            return log_q - target(x)

    return flow, loss, kl


def normflows_planar(k: int):
    nf = _normflows()
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), [nf.flows.Planar((2,)) for _ in range(k)])
    target = fl.targets.DENSITIES["U1"]

    def loss(n):
        x, log_q = model.sample(n)  # explicit direction: latent to data with the log-det
        return (log_q - target(x)).mean()

    def kl(n):
        with torch.no_grad():
            x, log_q = model.sample(n)
            return log_q - target(x)

    return model, loss, kl


# ------------------------------------------------------------------------------------------
# interleaved training
# ------------------------------------------------------------------------------------------

def load() -> str:
    """The load average now (a shared machine slows every model alike, but the times are upper bounds)."""
    try:
        with open("/proc/loadavg") as f:
            return "load " + " ".join(f.read().split()[:3])
    except OSError:
        return "load unknown"


def train_interleaved(jobs: dict, steps: int, rounds: int) -> dict[str, float]:
    """jobs: name -> (params, step_fn); returns the median ms/step over rounds."""
    chunk = max(1, steps // rounds)
    times = {name: [] for name in jobs}
    names = list(jobs)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            step = jobs[name]
            start = time.perf_counter()
            for _ in range(chunk):
                step()
            times[name].append(1e3 * (time.perf_counter() - start) / chunk)
    return {name: statistics.median(t) for name, t in times.items()}


def make_step(params, loss_fn, after=None, lr=3e-3):
    """One optimizer step of the plain loop: loss, backward, step (and ``after``, if given)."""
    opt = torch.optim.Adam(params, lr=lr)

    def step():
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after is not None:
            after()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="run only the i-ResNet pairs whose name contains this")
    parser.add_argument("--no-planar", action="store_true", help="skip the planar comparison")
    parser.add_argument("--planar-layers", type=int, default=16, help="K, the number of planar layers")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 100, 5
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, normflows {version('normflows')}, {args.threads} thread(s), "
          f"{args.steps} steps, {args.rounds} rounds, {load()}")

    # --- i-ResNet density estimation ---
    x_train, x_test = fl.targets.moons(1000, seed=0), fl.targets.moons(5000, seed=1)
    gen = torch.Generator().manual_seed(0)
    batches = [x_train[torch.randint(len(x_train), (256,), generator=gen)] for _ in range(args.steps)]
    pairs = {  # estimator: (flowlab model, normflows model)
        "exact 2x2 log-det": (("flowlab exact", lambda: flowlab_resflow(ladj="exact")),
                              ("normflows brute force", lambda: normflows_resflow(True))),
        "roulette, p 0.5, 2 exact terms": (("flowlab roulette", lambda: flowlab_resflow(ladj="roulette")),
                                           ("normflows roulette", lambda: normflows_resflow(False))),
        "roulette, equal expected terms (4)": (
            ("flowlab roulette, 3 exact", lambda: flowlab_resflow(ladj="roulette", exact_terms=3)),
            ("normflows roulette", None)),
        "series, 5 terms": (("flowlab series 5", lambda: flowlab_resflow(ladj="series", terms=5)),
                            ("normflows series 5", lambda: normflows_resflow(False, n_power_series=5))),
    }
    pairs = {k: v for k, v in pairs.items() if not args.only or args.only in k}
    builders = {name: build for pair in pairs.values() for name, build in pair if build is not None}
    models, jobs = {}, {}
    for name, build in builders.items():
        torch.manual_seed(0)
        model, nll, after, evaluate = build()
        counter = iter(range(10**9))
        params = [p for p in model.parameters() if p.requires_grad]
        jobs[name] = make_step(params, lambda nll=nll, counter=counter: nll(batches[next(counter) % len(batches)]), after)
        models[name] = (model, evaluate)
    ms = train_interleaved(jobs, args.steps, args.rounds)
    rows = {}
    for name, (model, evaluate) in models.items():
        as_trained, values = evaluate(x_test)
        rows[name] = (sum(p.numel() for p in model.parameters() if p.requires_grad), ms[name],
                      float(as_trained.mean()), float(values.mean()), float(values.std()) / math.sqrt(len(values)))
    print(f"\ni-ResNet on moons: 4 blocks of 2-64-64-2, coeff 0.9, batch 256, Adam 3e-3 ({load()})")
    print("held-out NLL with the exact log-det: 'as trained' with the norms as training left them (not")
    print("guaranteed to be a contraction), 'refreshed' after converging the norms (a true density)")
    print(f"{'model':28s} {'params':>7s} {'ms/step':>8s} {'as trained':>11s} {'refreshed':>16s}")
    for name, (n, t, trained, m, se) in rows.items():
        print(f"{name:28s} {n:7d} {t:8.2f} {trained:11.3f} {m:9.3f} ± {se:.3f}")
    print(f"\n{'estimator':36s} {'flowlab / normflows, ms per step':>34s}")
    for estimator, ((ours, _), (theirs, _)) in pairs.items():
        print(f"{estimator:36s} {rows[ours][1] / rows[theirs][1]:34.2f}")

    if args.no_planar:
        return
    # --- planar reverse KL ---
    log_z = fl.targets.LOG_Z["U1"]
    models, jobs = {}, {}
    for name, build in (("flowlab PlanarFlow", flowlab_planar), ("normflows Planar", normflows_planar)):
        torch.manual_seed(0)
        model, loss, kl = build(args.planar_layers)
        jobs[name] = make_step(list(model.parameters()), lambda loss=loss: loss(256), lr=5e-3)
        models[name] = (model, kl)
    ms = train_interleaved(jobs, args.steps, args.rounds)
    print(f"\nPlanar, reverse KL on U1 (log Z = 1.8775): K = {args.planar_layers}, 256 samples per step, Adam 5e-3 "
          f"({load()})")
    print(f"{'model':34s} {'params':>7s} {'ms/step':>8s} {'flowlab/peer':>12s} {'true KL':>16s}")
    base = ms["flowlab PlanarFlow"]
    for name, (model, kl) in models.items():
        torch.manual_seed(1)
        v = kl(20000) + log_z
        print(f"{name:34s} {sum(p.numel() for p in model.parameters()):7d} {ms[name]:8.2f} {base / ms[name]:12.2f} "
              f"{float(v.mean()):9.4f} ± {float(v.std()) / math.sqrt(len(v)):.4f}")


if __name__ == "__main__":
    main()
