r"""Checkers for the exercises of the chapter on flows in practice (importance sampling, ESS).

Each checker compares the student's answer with one computed here independently, prints what
it found and returns ``True`` when the answer is right. It never raises. A wrong answer is
compared with the typical mistakes (:math:`1 + \chi^2` instead of its inverse, the target and the
proposal swapped, ESS/N instead of ESS, weights exponentiated without subtracting the maximum...)
and the message names the one it matches.

Example:
    >>> from flowlab.exercises import practice as ex
    >>> import math
    >>> ex.check_collapse(-math.log(2), 1.0)
    Correct: every weight is Z/2, so log Z-hat - log Z = -log 2 = -0.693 while ESS/N = 1: a perfect-looking sample and a wrong answer.
    Measured with 4000 samples: log Z-hat - log Z = -0.6931 (reported SE 0.0000), ESS/N = 1.0000.
    True
    >>> ex.check_collapse(math.log(2), 1.0)
    Not yet: the sign. The proposal sees half of the mass, so Z-hat is too small: Z/2, not 2Z.
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import diagnostics
from ..targets import two_modes_log_prob, two_modes_log_z
from ._feedback import close, number
from .change_of_variables import _call

__all__ = ["check_collapse", "check_ess", "check_ess_limit", "collapsed_proposal_log_weights", "ess_limit"]


def ess_limit(s: float) -> float:
    r"""The limit of ESS/N for target :math:`N(0, 1)` and proposal :math:`N(0, s^2)` in 1-D:
    :math:`\sqrt{2s^2 - 1}/s^2` for :math:`s > 1/\sqrt 2`, and 0 (infinite :math:`\chi^2`) otherwise.

    Example:
        >>> round(ess_limit(1.0), 12), ess_limit(0.5)
        (1.0, 0.0)
    """
    return math.sqrt(2 * s * s - 1) / (s * s) if 2 * s * s > 1 else 0.0


def check_ess_limit(wide, narrow) -> bool:
    r"""Check the limits of ESS/N for :math:`q = N(0, 2^2)` (``wide``) and :math:`q = N(0, 0.8^2)`
    (``narrow``) with target :math:`N(0, 1)`."""
    answers = {"ess_limit_wide": (wide, 2.0), "ess_limit_narrow": (narrow, 0.8)}
    ok = True
    for name, (value, s) in answers.items():
        v = number(name, value)
        if v is None:
            return False
        right = ess_limit(s)
        if close(v, right, 1e-3):
            continue
        ok = False
        chi2 = 1 / right - 1
        swapped = ess_limit(1 / s)  # p = N(0, s^2), q = N(0, 1) is the same as rescaling by 1/s
        if close(v, 1 + chi2, 1e-3):
            print(f"Not yet: {name} = {v:.4g} is 1 + chi^2 = E_q[w^2]/E_q[w]^2; the ESS fraction is its inverse.")
        elif close(v, chi2, 1e-3):
            print(f"Not yet: {name} = {v:.4g} is chi^2 itself; the limit of ESS/N is 1/(1 + chi^2).")
        elif close(v, swapped, 1e-3) and not close(swapped, right, 1e-3):
            print(f"Not yet: {name} = {v:.4g} swaps the roles: chi^2(p || q) integrates p^2/q, with p = N(0, 1) "
                  "the target and q the proposal.")
        elif v > 1 or v < 0:
            print(f"Not yet: {name} = {v:.4g}, but ESS/N lies between 0 and 1.")
        else:
            print(f"Not yet: {name} = {v:.4g} is not right. Compute the Gaussian integral of p^2/q for s = {s}.")
    if ok:
        print(f"Correct: sqrt(2 s^2 - 1) / s^2 gives {ess_limit(2.0):.3f} for s = 2 and {ess_limit(0.8):.3f} for "
              "s = 0.8; chi^2 is infinite for s <= 1/sqrt(2).")
    return ok


def collapsed_proposal_log_weights(n: int = 4000, seed: int = 0) -> torch.Tensor:
    r"""Log-weights of :func:`flowlab.targets.two_modes_log_prob` under a proposal that is exactly
    its left bump, :math:`N((-3, 0), 0.5^2 I)`, from ``n`` samples."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([-3.0, 0.0], dtype=torch.float64)
    x = centre + 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    log_q = -((x - centre) ** 2).sum(-1) / (2 * 0.25) - math.log(2 * math.pi * 0.25)
    return two_modes_log_prob(x) - log_q


def check_collapse(error, ess_fraction) -> bool:
    r"""Check the predicted limit of :math:`\log \hat Z - \log Z` and the sample ESS/N for a proposal
    that is exactly one of two equal bumps; then measure both and print them."""
    e, f = number("predicted_error", error), number("predicted_ess", ess_fraction)
    if e is None or f is None:
        return False
    log_w = collapsed_proposal_log_weights()
    estimate, se = diagnostics.log_z(log_w)
    measured = (estimate - two_modes_log_z(), diagnostics.ess(log_w) / len(log_w))
    right = -math.log(2)
    if not close(e, right, 1e-3):
        if close(e, -right, 1e-3):
            print("Not yet: the sign. The proposal sees half of the mass, so Z-hat is too small: Z/2, not 2Z.")
        elif close(e, 0.0, 1e-3):
            print("Not yet: Z-hat is unbiased only when q covers all of p; here half of the mass is never proposed.")
        elif close(e, -0.5, 1e-3) or close(e, math.log(0.5) / 2, 1e-3):
            print("Not yet: the error is on the log scale: log(Z/2) - log Z = -log 2.")
        else:
            print(f"Not yet: predicted_error = {e:.4g}. What is each weight w = p~(x)/q(x) on the covered bump?")
        return False
    if not close(f, 1.0, 1e-2):
        if close(f, 0.5, 1e-2):
            print("Not yet: the sample ESS only sees the samples drawn: all weights are equal, so ESS/N = 1 "
                  "(0.5 would be the share of the mass that is covered).")
        elif close(f, 0.0, 1e-2):
            print("Not yet: 0 is the exact limit 1/(1 + chi^2), which is infinite here; the sample ESS/N, computed "
                  "from the drawn weights only, is different.")
        else:
            print(f"Not yet: predicted_ess = {f:.4g}. Are the weights equal on the covered bump?")
        return False
    print(f"Correct: every weight is Z/2, so log Z-hat - log Z = -log 2 = {right:.3f} while ESS/N = 1: a perfect-looking "
          "sample and a wrong answer.")
    print(f"Measured with 4000 samples: log Z-hat - log Z = {measured[0]:+.4f} (reported SE {se:.4f}), "
          f"ESS/N = {measured[1]:.4f}.")
    return True


def check_ess(my_ess: Callable) -> bool:
    r"""Check ``my_ess(log_w) -> float``, the effective sample size :math:`(\sum w)^2/\sum w^2`
    from log-weights, on small, large (hundreds) and very unequal log-weights, with
    :func:`flowlab.diagnostics.ess` blocked during the call."""
    g = torch.Generator().manual_seed(0)
    cases = [
        torch.randn(200, generator=g, dtype=torch.float64),
        700.0 + 2.0 * torch.randn(500, generator=g, dtype=torch.float64),  # exp overflows in float64
        -800.0 + 0.1 * torch.randn(300, generator=g, dtype=torch.float64),  # exp underflows to 0
        torch.cat([torch.zeros(1, dtype=torch.float64), torch.full((99,), -30.0, dtype=torch.float64)]),
    ]
    original = diagnostics.ess

    def blocked(*args, **kwargs):
        raise RuntimeError("dg.ess is the answer of this exercise: compute the ESS yourself")

    for log_w in cases:
        right = original(log_w)
        diagnostics.ess = blocked
        try:
            ok, out = _call(my_ess, log_w.clone(), name="my_ess")
        finally:
            diagnostics.ess = original
        if not ok:
            return False
        value = number("my_ess(log_w)", out)
        if value is None:
            print(f"  (for log-weights around {float(log_w.mean()):.0f}, exp(log_w) overflows or underflows: "
                  "subtract log_w.max() first.)")
            return False
        if close(value, right, 1e-6):
            continue
        n = len(log_w)
        if close(value, right / n, 1e-6):
            print(f"Not yet: you returned ESS/N = {value:.4g}; the checker asks for the ESS itself ({right:.4g}).")
        elif close(value, n, 1e-6) and not close(right, n, 1e-3):
            print(f"Not yet: you returned N = {n} for unequal weights (ESS {right:.4g}). Is the sum of squares of "
                  "the weights, not of the log-weights?")
        elif close(value, float(log_w.sum() ** 2 / (log_w**2).sum()), 1e-6):
            print("Not yet: that is the formula applied to the log-weights. Apply it to the weights w = exp(log_w).")
        else:
            print(f"Not yet: my_ess returned {value:.4g} for log-weights around {float(log_w.mean()):.0f}; "
                  f"expected {right:.4g}. Subtract log_w.max() before exponentiating.")
        return False
    print("Correct: the ESS is unchanged when every weight is multiplied by one constant, so subtracting the "
          "largest log-weight first keeps exp() in range.")
    return True
