#!/usr/bin/env python
r"""flowlab's CNF next to zuko's continuous flow and a torchdiffeq FFJORD-style baseline, on the circles.

The same vector field in every model: an MLP from ``[z, cos(pi k t), sin(pi k t)]`` (k = 1, 2, 3)
through two hidden layers of 64 tanh units to ``dz/dt`` (4,866 parameters), exact trace, t in
[0, 1], standard normal base. Data: ``flowlab.targets.circles(1000, seed=0)``; Adam, lr 1e-2,
batches of 128 drawn with the same generator for every model, ``--steps`` steps.

Models:

* ``flowlab rk4``:      ``fl.CNF(2, steps=8, trace="exact")``, 8 fixed RK4 steps (32 evaluations);
* ``flowlab rk4 discrete``: the same with ``trace="discrete"`` (the exact log-det of the 8-step map);
* ``flowlab dopri5``:   ``fl.CNF(2, solver="dopri5", rtol=TOL, atol=TOL)`` (torchdiffeq, backprop through the solver);
* ``zuko``:             ``zuko.flows.CNF`` (its own dopri45 with the adaptive checkpoint adjoint), same TOL;
* ``ffjord``:           an FFJORD-style ``odefunc`` (brute-force divergence by autograd, as in ffjord's toy
                        runs) with ``torchdiffeq.odeint_adjoint``, dopri5, same TOL.

Training is interleaved: the steps are split into rounds and in each round every model trains its
next chunk (the order rotates), so a noisy, shared machine slows all of them alike; ms/step is the
median over rounds. After training, each model's held-out NLL on 5000 fresh points with its own
solver, and (to expose what the fixed-step models claim) the NLL of the same field solved by dopri5
at 1e-6 with the exact trace, next to the true density's. For the fixed-step models, the number of
points of a 200 x 200 grid on [-3, 3]^2 where the trained map folds (``CNF.signed_det`` <= 0) and
the steps the safe-step rule asks for (``CNF.safe_steps``).

Run from the repository root (peers: ``pip install -r bench/requirements.txt``):

    python bench/continuous.py            # 300 steps, a few minutes on 2 cores
    python bench/continuous.py --quick    # 30 steps, smoke run
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from importlib.metadata import version

import torch
from torch import nn

import flowlab as fl

HIDDEN, FREQS = (64, 64), 3


def embed(t: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    w = torch.arange(1, FREQS + 1, dtype=like.dtype, device=like.device) * math.pi * t
    return torch.cat([w.cos(), w.sin()]).expand(n, -1)


class FFJORDFunc(nn.Module):
    """FFJORD's odefunc for the toy runs: concatenated time input, brute-force divergence."""

    def __init__(self):
        super().__init__()
        sizes = [2 + 2 * FREQS, *HIDDEN, 2]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, t, states):
        z = states[0]
        with torch.enable_grad():
            z = z.requires_grad_(True)
            dz = self.net(torch.cat([z, embed(t, len(z), z)], dim=1))
            div = sum(torch.autograd.grad(dz[:, i].sum(), z, create_graph=True)[0][:, i] for i in range(2))
        return dz, -div


class FFJORD(nn.Module):
    def __init__(self, tol: float):
        super().__init__()
        self.func, self.tol = FFJORDFunc(), tol

    def log_prob(self, x):
        from torchdiffeq import odeint_adjoint

        t = torch.tensor([0.0, 1.0])
        z, dlogp = odeint_adjoint(self.func, (x, x.new_zeros(len(x))), t, rtol=self.tol, atol=self.tol,
                                  method="dopri5")
        z, dlogp = z[-1], dlogp[-1]
        return -0.5 * z.pow(2).sum(1) - math.log(2 * math.pi) - dlogp


class Zuko(nn.Module):
    def __init__(self, tol: float):
        super().__init__()
        import zuko

        self.flow = zuko.flows.CNF(2, freqs=FREQS, atol=tol, rtol=tol, exact=True, hidden_features=HIDDEN,
                                   activation=nn.Tanh)

    def log_prob(self, x):
        return self.flow().log_prob(x)


class Flowlab(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.flow = fl.Flow(fl.CNF(2, hidden=HIDDEN, freqs=FREQS, **kwargs), fl.StandardNormal(2))

    def log_prob(self, x):
        return self.flow.log_prob(x)

    def field(self):
        return self.flow.transform.field


def build(tol: float) -> dict[str, nn.Module]:
    models = {}
    for name, make in [
        ("flowlab rk4", lambda: Flowlab(steps=8, trace="exact")),
        ("flowlab rk4 discrete", lambda: Flowlab(steps=8, trace="discrete")),
        ("flowlab dopri5", lambda: Flowlab(solver="dopri5", rtol=tol, atol=tol)),
        ("zuko", lambda: Zuko(tol)),
        ("ffjord", lambda: FFJORD(tol)),
    ]:
        torch.manual_seed(0)
        models[name] = make()
    return models


def ode_nll(model, x) -> tuple[float, float] | None:
    """The NLL of a flowlab model's field solved accurately (dopri5 at 1e-6, exact trace)."""
    if not isinstance(model, Flowlab):
        return None
    accurate = fl.Flow(fl.CNF(2, solver="dopri5", rtol=1e-6, atol=1e-6, min_step=1e-8, field=model.field()),
                       fl.StandardNormal(2))
    with torch.no_grad():
        lp = accurate.log_prob(x)
    return float(-lp.mean()), float(lp.std() / math.sqrt(len(lp)))


def folds(model) -> str:
    """Folded points of a 200 x 200 grid, and the safe-step rule, for a fixed-step flowlab model."""
    if not isinstance(model, Flowlab) or model.flow.transform.solver == "dopri5":
        return ""
    cnf = model.flow.transform
    axis = torch.linspace(-3, 3, 200)
    det = cnf.signed_det(torch.cartesian_prod(axis, axis))
    return f"  folds at {int((det <= 0).sum())} of 40000 grid points (rule: {cnf.safe_steps()} steps)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-4, help="rtol = atol of the adaptive solvers")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="30 steps in 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 30, 3
    torch.set_num_threads(args.threads)
    chunk = max(1, args.steps // args.rounds)

    x_train = fl.targets.circles(1000, seed=0)
    x_test = fl.targets.circles(5000, seed=12345)
    models = build(args.tol)
    names = list(models)
    optimizers = {n: torch.optim.Adam(m.parameters(), lr=1e-2) for n, m in models.items()}
    generators = {n: torch.Generator().manual_seed(0) for n in names}
    per_round = {n: [] for n in names}
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}, "
          f"zuko {version('zuko')}, torchdiffeq {version('torchdiffeq')}; {args.steps} steps, tol {args.tol:g}")
    print("parameters: " + ", ".join(f"{n} {sum(p.numel() for p in m.parameters()):,}" for n, m in models.items()))
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            m, opt, g = models[n], optimizers[n], generators[n]
            start = time.perf_counter()
            for _ in range(chunk):
                x = x_train[torch.randint(len(x_train), (128,), generator=g)]
                loss = -m.log_prob(x).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            per_round[n].append(1e3 * (time.perf_counter() - start) / chunk)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {per_round[n][-1]:.0f} ms" for n in names), flush=True)

    true_lp = fl.targets.circles_log_prob(x_test)
    print(f"\ntrue density: held-out NLL {float(-true_lp.mean()):.3f} ± {float(true_lp.std() / math.sqrt(len(true_lp))):.3f}")
    rows = {}
    for n, m in models.items():
        with torch.no_grad() if not isinstance(m, FFJORD) else torch.enable_grad():
            lp = m.log_prob(x_test).detach()
        rows[n] = (statistics.median(per_round[n]), float(-lp.mean()), float(lp.std() / math.sqrt(len(lp))),
                   ode_nll(m, x_test))
    peers = [n for n in names if not n.startswith("flowlab")]
    fastest = min(peers, key=lambda n: rows[n][0])
    best = min(peers, key=lambda n: rows[n][1])
    print(f"{'model':22s} {'ms/step':>8s} {'/ ' + fastest:>12s} {'held-out NLL':>15s} {'- ' + best:>10s} "
          f"{'NLL of the ODE (dopri5 1e-6)':>29s}")
    for n, (ms, nll, se, ode) in rows.items():
        ode_s = f"{ode[0]:.3f} ± {ode[1]:.3f}" if ode else "(own solver is adaptive)"
        print(f"{n:22s} {ms:8.1f} {ms / rows[fastest][0]:12.2f} {nll:9.3f} ± {se:.3f} {nll - rows[best][1]:+10.3f} "
              f"{ode_s:>29s}{folds(models[n])}")


if __name__ == "__main__":
    main()
