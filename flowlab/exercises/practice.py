r"""Checkers for the exercises of the chapter on flows in practice (importance sampling, ESS).

Each checker compares the student's answer with one it computes itself, says what it found and
returns a true verdict when the answer is right; it never raises. Numbers are accepted to three
significant digits or more. A wrong answer is compared with the typical mistakes
(:math:`1 + \chi^2` instead of its inverse, the target and the proposal swapped, ESS/N instead of
ESS, weights exponentiated without subtracting the maximum...) and the message names the one it
matches.

Example:
    >>> from flowlab.exercises import practice as ex
    >>> import math
    >>> ex.check_collapse(-math.log(2), 1.0)
    Correct: every weight is w = Z/2, so log Z-hat - log Z = log(1/2) = -0.693
    while ESS/N = 1: a perfect-looking sample and a wrong answer.
    Measured with 4000 samples: log Z-hat - log Z = -0.6931 (reported SE 0.0000),
    ESS/N = 1.0000.
    True
    >>> ex.check_collapse(math.log(2), 1.0)
    Not yet: the sign. The proposal sees only part of the mass, so Z-hat is too
    small: Z/2, not 2Z.
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._feedback import Watch, agrees, call, checker, close, fresh_seed, number, say

__all__ = ["check_collapse", "check_ess", "check_ess_limit", "collapsed_proposal_log_weights"]


@checker
def check_ess_limit(wide, narrow, s_wide: float = 2.0, s_narrow: float = 0.8) -> bool:
    r"""Check the limits of ESS/N for the proposals :math:`q = N(0, s^2)` with ``s_wide`` (the
    answer ``wide``) and ``s_narrow`` (``narrow``), for the target :math:`N(0, 1)`."""
    values = {"ess_limit_wide": (number("ess_limit_wide", wide), s_wide),
              "ess_limit_narrow": (number("ess_limit_narrow", narrow), s_narrow)}
    if any(v is None for v, _ in values.values()):
        return False

    def limit(s):  # 1 / (1 + chi^2(p || q)), 0 where chi^2 is infinite
        return math.sqrt(2 * s * s - 1) / (s * s) if 2 * s * s > 1 else 0.0

    ok = True
    for name, (v, s) in values.items():
        right = limit(s)
        if agrees(v, right):
            continue
        ok = False
        chi2 = 1 / right - 1 if right > 0 else math.inf
        if agrees(v, 1 + chi2):
            say(f"Not yet: {name} = {v:.4g} is 1 + chi^2 = E_q[w^2]/E_q[w]^2; the ESS fraction is its inverse.")
        elif agrees(v, chi2):
            say(f"Not yet: {name} = {v:.4g} is chi^2 itself; the limit of ESS/N is 1/(1 + chi^2).")
        elif agrees(v, limit(1 / s)) and not agrees(limit(1 / s), right):
            say(f"Not yet: {name} = {v:.4g} swaps the roles: chi^2(p || q) integrates p^2/q, with p = N(0, 1) the "
                "target and q the proposal.")
        elif v > 1 or v < 0:
            say(f"Not yet: {name} = {v:.4g}, but ESS/N lies between 0 and 1.")
        else:
            say(f"Not yet: {name} = {v:.4g} is not right. Compute the Gaussian integral of p^2/q for s = {s}.")
    if ok:
        say(f"Correct: sqrt(2 s^2 - 1) / s^2 gives {limit(s_wide):.3f} for s = {s_wide:g} and "
            f"{limit(s_narrow):.3f} for s = {s_narrow:g}; chi^2 is infinite for s <= 1/sqrt(2).")
    return ok


def collapsed_proposal_log_weights(n: int = 4000, seed: int = 0, weight: float = 0.5) -> torch.Tensor:
    r"""Log-weights of :func:`flowlab.targets.two_modes_log_prob` (left bump of mass ``weight``)
    under a proposal that is exactly its left bump, :math:`N((-3, 0), 0.5^2 I)`, from ``n`` samples."""
    import flowlab as fl

    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([-3.0, 0.0], dtype=torch.float64)
    x = centre + 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    log_q = -((x - centre) ** 2).sum(-1) / (2 * 0.25) - math.log(2 * math.pi * 0.25)
    return fl.targets.two_modes_log_prob(x, weight=weight) - log_q


@checker
def check_collapse(error, ess_fraction, weight: float = 0.5) -> bool:
    r"""Check the predicted limit of :math:`\log \hat Z - \log Z` and the sample ESS/N for a proposal
    that is exactly the left bump (of mass ``weight``) of the two bumps; then measure both and
    print them."""
    import flowlab as fl

    e, f = number("predicted_error", error), number("predicted_ess", ess_fraction)
    if e is None or f is None:
        return False
    right = math.log(weight)
    if not agrees(e, right):
        if agrees(e, -right):
            say(f"Not yet: the sign. The proposal sees only part of the mass, so Z-hat is too small: "
                f"{'Z/2, not 2Z' if weight == 0.5 else f'{weight:g} Z, not Z / {weight:g}'}.")
        elif agrees(e, 0.0):
            say("Not yet: the mean of the weights estimates the mass that q proposes, not all of Z: the other bump "
                "is never proposed.")
        elif agrees(e, right / 2) or agrees(e, weight - 1):
            say(f"Not yet: the error is on the log scale: log({weight:g} Z) - log Z = log {weight:g}.")
        else:
            say(f"Not yet: predicted_error = {e:.4g}. What is each weight w = p~(x)/q(x) on the covered bump?")
        return False
    if not agrees(f, 1.0, digits=2):
        if agrees(f, weight, digits=2):
            say(f"Not yet: the sample ESS only sees the samples drawn: all weights are equal, so ESS/N = 1 "
                f"({weight:g} would be the share of the mass that is covered).")
        elif agrees(f, 0.0, digits=2):
            say("Not yet: 0 is the limit 1/(1 + chi^2) with chi^2(p || q) infinite here; the sample ESS/N, computed "
                "from the drawn weights only, is different.")
        else:
            say(f"Not yet: predicted_ess = {f:.4g}. Are the weights equal on the covered bump?")
        return False
    log_w = collapsed_proposal_log_weights(weight=weight)
    estimate, se = fl.diagnostics.log_z(log_w)
    measured = (estimate - fl.targets.two_modes_log_z(), fl.diagnostics.ess(log_w) / len(log_w))
    say(f"Correct: every weight is w = {'Z/2' if weight == 0.5 else f'{weight:g} Z'}, so log Z-hat - log Z = "
        f"log({'1/2' if weight == 0.5 else f'{weight:g}'}) = {right:.3f} while ESS/N = 1: a perfect-looking sample "
        "and a wrong answer.")
    say(f"Measured with {len(log_w)} samples: log Z-hat - log Z = {measured[0]:+.4f} (reported SE {se:.4f}), "
        f"ESS/N = {measured[1]:.4f}.")
    return True


@checker
def check_ess(my_ess: Callable, seed: int | None = None) -> bool:
    r"""Check ``my_ess(log_w) -> float``, the effective sample size :math:`(\sum w)^2/\sum w^2`
    from log-weights, on small, large (hundreds) and very unequal log-weights drawn at each call;
    ``flowlab.diagnostics`` (whose ``ess`` is the answer) is refused however it is reached."""
    g = torch.Generator().manual_seed(fresh_seed() if seed is None else seed)
    shift = float(torch.randint(-50, 50, (1,), generator=g))
    cases = [
        torch.randn(200, generator=g, dtype=torch.float64),
        700.0 + shift + 2.0 * torch.randn(500, generator=g, dtype=torch.float64),  # exp overflows in float64
        -800.0 + shift + 0.1 * torch.randn(300, generator=g, dtype=torch.float64),  # exp underflows to 0
        torch.cat([torch.zeros(1, dtype=torch.float64), -30.0 + torch.randn(99, generator=g, dtype=torch.float64)]),
    ]
    for log_w in cases:
        watch = Watch(modules=("flowlab.diagnostics",))
        ok, out = call(my_ess, log_w.clone(), name="my_ess", watch=watch)
        if watch.used:
            say(f"Not yet: your function uses {watch.used[0]}, the library's answer to this exercise: compute the "
                "ESS yourself.")
            return False
        if not ok:
            return False
        value = number("my_ess(log_w)", out)
        if value is None:
            say(f"  (for log-weights around {float(log_w.mean()):.0f}, exp(log_w) overflows or underflows: "
                "subtract log_w.max() first.)")
            return False
        right = float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)))
        if close(value, right):
            continue
        n = len(log_w)
        if close(value, right / n):
            say(f"Not yet: you returned ESS/N = {value:.4g}; the checker asks for the ESS itself ({right:.4g}).")
        elif close(value, n) and not close(right, n, 1e-3):
            say(f"Not yet: you returned N = {n} for unequal weights (ESS {right:.4g}). Is the sum of squares of "
                "the weights, not of the log-weights?")
        elif close(value, float(log_w.sum() ** 2 / (log_w**2).sum())):
            say("Not yet: that is the formula applied to the log-weights. Apply it to the weights w = exp(log_w).")
        else:
            say(f"Not yet: my_ess returned {value:.4g} for log-weights around {float(log_w.mean()):.0f}; expected "
                f"{right:.4g}. Subtract log_w.max() before exponentiating.")
        return False
    say("Correct: the ESS is unchanged when every weight is multiplied by one constant, so subtracting the largest "
        "log-weight first keeps exp() in range.")
    return True
