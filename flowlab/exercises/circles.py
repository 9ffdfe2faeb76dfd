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
    >>> ex.check_paired_difference(lambda a, b: (float((a - b).mean()), float((a - b).std()) / math.sqrt(len(a))))
    Correct: the mean difference is -0.0497 +- 0.0022 nats (paired); the unpaired error bar would be 0.0446, 20 times wider.
    True
"""

from __future__ import annotations

import math

import torch

from ._feedback import close as _close
from ._feedback import number as _number

__all__ = ["check_paired_difference", "paired_columns"]


def paired_columns(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point NLLs of two models on the same ``n`` points (float64): both find the same points
    hard (a shared term of standard deviation 2), and model ``a`` is 0.05 nats better on average."""
    g = torch.Generator().manual_seed(seed)
    shared = 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    a = 2.00 + shared + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    b = 2.05 + shared + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return a, b


def check_paired_difference(paired_difference) -> bool:
    r"""Exercise: ``paired_difference(nll_a, nll_b)`` returns the mean of :math:`a_i - b_i` and its
    paired standard error :math:`\operatorname{sd}(a - b)/\sqrt n` (either ``std`` convention).

    Tried on `paired_columns`; names the usual slips: ``b - a``, the unpaired error bar, the
    standard deviation without :math:`\sqrt n`."""
    if not callable(paired_difference):
        print("Not yet: pass your function itself, check_paired_difference(paired_difference), not its result.")
        return False
    a, b = paired_columns()
    n = len(a)
    try:
        result = paired_difference(a.clone(), b.clone())
    except Exception as error:  # noqa: BLE001 - any mistake in the student's code is reported, not raised
        print(f"Not yet: paired_difference raised {type(error).__name__}: {error}")
        return False
    if result is None:
        print("No answer yet: paired_difference should return two numbers, (mean difference, standard error).")
        return False
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        print(f"Not yet: paired_difference should return two numbers, (mean difference, standard error); got {result!r}.")
        return False
    mean, se = _number("the mean difference", result[0]), _number("the standard error", result[1])
    if mean is None or se is None:
        return False
    d = a - b
    right_mean, right_se = float(d.mean()), float(d.std()) / math.sqrt(n)
    unpaired = math.sqrt(float(a.var()) / n + float(b.var()) / n)
    if _close(mean, -right_mean, 1e-6) and not _close(mean, right_mean, 1e-6):
        print(f"Not yet: the mean difference has the wrong sign ({mean:.4f}): take nll_a - nll_b, not nll_b - nll_a.")
        return False
    if not _close(mean, right_mean, 1e-6):
        print(f"Not yet: the mean difference should be the mean of nll_a - nll_b, {right_mean:.4f}; got {mean:.4f}.")
        return False
    if abs(se - right_se) <= 1e-3 * right_se:  # sample or population std: they differ by 1/(2n)
        print(f"Correct: the mean difference is {mean:.4f} +- {se:.4f} nats (paired); the unpaired error bar would "
              f"be {unpaired:.4f}, {unpaired / right_se:.0f} times wider.")
        return True
    if abs(se - unpaired) <= 1e-3 * unpaired:
        print(f"Not yet: {se:.4f} is the unpaired error bar, sqrt(se_a^2 + se_b^2). Both models find the same points "
              "hard, so take the standard error of the per-point differences nll_a - nll_b instead.")
    elif abs(se - right_se * math.sqrt(n)) <= 1e-3 * right_se * math.sqrt(n):
        print(f"Not yet: {se:.4f} is the standard deviation of the differences; the standard error of their mean "
              f"divides it by sqrt(n) = sqrt({n}).")
    else:
        print(f"Not yet: the paired standard error is sd(nll_a - nll_b) / sqrt(n) = {right_se:.4f}; got {se:.4f}.")
    return False
