r"""Checkers for the exercises of the opening chapter (two circles): error bars of held-out NLLs.

Two models scored on the same held-out points are best compared point by point. With per-point
NLLs :math:`a_i` and :math:`b_i`, :math:`i = 1, \dots, n`, the difference of the mean NLLs is
:math:`\bar d = \frac1n \sum_i d_i` with :math:`d_i = a_i - b_i`, and its standard error is the
*paired* one, :math:`\operatorname{sd}(d) / \sqrt n`. The unpaired
:math:`\sqrt{\operatorname{se}(a)^2 + \operatorname{se}(b)^2}` ignores that both models find the
same points hard, and is larger by as much as the two columns are correlated.

Example:
    >>> import math
    >>> from flowlab.exercises import circles as ex
    >>> ex.check_paired_difference(lambda a, b: ((a - b).mean(), (a - b).std() / math.sqrt(len(a))))
    Correct: the mean of nll_a - nll_b and its paired standard error sd / sqrt(n),
    on two columns of the checker's own, where the unpaired error bar is more than
    ten times wider.
    True
"""

from __future__ import annotations

import math

import torch

from ._feedback import agrees, call, checker, fresh_seed, number, say

__all__ = ["check_paired_difference", "paired_columns"]

# a bootstrap standard error from B >= 200 resamples has a relative standard deviation of about
# 1 / sqrt(2 B) = 0.05: three of those are accepted
_SE_SLACK = 3 / math.sqrt(2 * 200)


def paired_columns(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point NLLs of two models on the same ``n`` points (float64): both find the same points
    hard (a shared term of standard deviation 2), and model ``a`` is 0.05 nats better on average."""
    g = torch.Generator().manual_seed(seed)
    shared = 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    a = 2.00 + shared + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    b = 2.05 + shared + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return a, b


@checker
def check_paired_difference(paired_difference, seed: int | None = None) -> bool:
    r"""Exercise: ``paired_difference(nll_a, nll_b)`` returns the mean of :math:`a_i - b_i` and its
    paired standard error :math:`\operatorname{sd}(a - b)/\sqrt n` (either ``std`` convention,
    or a bootstrap estimate from 200 or more resamples).

    Tried on :func:`paired_columns` of a size and seed drawn at each call; names the usual slips:
    ``b - a``, the unpaired error bar, the standard deviation without :math:`\sqrt n`."""
    seed = fresh_seed() if seed is None else seed
    n = 2000 + seed % 3000
    a, b = paired_columns(n, seed)
    ok, result = call(paired_difference, a.clone(), b.clone(), name="paired_difference")
    if not ok:
        return False
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        say("Not yet: paired_difference should return two numbers, (mean difference, standard error); "
            f"got {type(result).__name__}.")
        return False
    mean, se = number("the mean difference", result[0]), number("the standard error", result[1])
    if mean is None or se is None:
        return False
    d = a - b
    right_mean, right_se = float(d.mean()), float(d.std()) / math.sqrt(n)
    unpaired = math.sqrt(float(a.var()) / n + float(b.var()) / n)
    if not agrees(mean, right_mean):
        if agrees(mean, -right_mean):
            say(f"Not yet: the mean difference has the wrong sign ({mean:.4f}): take nll_a - nll_b, not "
                "nll_b - nll_a.")
        else:
            say("Not yet: the mean difference should be the mean of nll_a - nll_b over the points.")
        return False
    if abs(se / right_se - 1) <= _SE_SLACK:
        say("Correct: the mean of nll_a - nll_b and its paired standard error sd / sqrt(n), on two columns of "
            "the checker's own" + (", where the unpaired error bar is more than ten times wider." if
                                   unpaired > 10 * right_se else "."))
        return True
    if abs(se / unpaired - 1) <= _SE_SLACK:
        say("Not yet: that is the unpaired error bar, sqrt(se_a^2 + se_b^2). Both models find the same points "
            "hard, so take the standard error of the per-point differences nll_a - nll_b instead.")
    elif abs(se / (right_se * math.sqrt(n)) - 1) <= _SE_SLACK:
        say("Not yet: that is the standard deviation of the differences; the standard error of their mean "
            "divides it by sqrt(n).")
    elif abs(se / (right_se / math.sqrt(n)) - 1) <= _SE_SLACK:
        say("Not yet: that is the standard deviation divided by n; the standard error of a mean of n values "
            "divides it by sqrt(n).")
    else:
        say(f"Not yet: the standard error is {se / right_se:.2g} times the paired one, sd(nll_a - nll_b) / "
            "sqrt(n).")
    return False
