r"""The error bars and verdicts behind a chapter's printed claims, on top of :mod:`flowlab.runs`.

Two kinds of spread meet in the book. Over **test points** of one trained model, a mean log-density
(or a mean distance) has the standard error :math:`s/\sqrt n` (:func:`mean_se`); it says how well
the test set pins down *that* model's value. Over **training runs** (seeds), the spread says how
much the value depends on the run; :func:`flowlab.runs.interval` and
:func:`flowlab.runs.paired` give Student-t intervals for it. :func:`verdict` turns a paired
comparison of two methods run on the same seeds into the sentence a chapter prints: which one is
lower and by how much, or that the interval of the difference contains zero, so that the runs do
not tell them apart. Each costs :math:`O(n)`. :func:`say` prints such sentences within the
79 characters of a code box.

References: Student (1908), "The probable error of a mean", *Biometrika* 6(1), 1-25.

Example:
    >>> from flowlab.claims import verdict
    >>> verdict([1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.2, 1.9, 2.1, 2.0], "a", "b")
    'a is lower than b by 1.030 ± 0.083 (95% t-interval of the paired difference over 5 runs)'
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

from .runs import _values, paired

__all__ = ["mean_se", "say", "verdict"]


def mean_se(values) -> tuple[float, float]:
    r"""The mean of ``values`` (a sequence or a tensor of per-point values) and its standard error
    :math:`s/\sqrt n`, with the sample standard deviation :math:`s` (``n - 1`` in the denominator).

    Example:
        >>> mean_se([1.0, 2.0, 3.0])
        (2.0, 0.5773502691896257)
    """
    if hasattr(values, "detach"):
        values = values.detach().double().flatten().tolist()
    v = _values("values", values)
    n = len(v)
    mean = sum(v) / n
    return mean, math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1) / n)


def verdict(a: Sequence[float], b: Sequence[float], name_a: str = "a", name_b: str = "b", level: float = 0.95,
            digits: int = 3) -> str:
    r"""One sentence on two methods run with the same seeds (``a`` and ``b`` in the same seed
    order, or ``pandas.Series`` indexed by seed): which is lower, by how much, with the ``level``
    t-interval of the paired difference (:func:`flowlab.runs.paired`); or, when that interval
    contains zero, that the runs do not tell them apart.

    Example:
        >>> verdict([1.0, 1.2, 0.8], [1.1, 1.0, 1.0], "reverse", "permutation")
        'reverse and permutation are not distinguishable: -0.033 ± 0.517 (95% t-interval of the paired difference over 3 runs)'
    """
    d = paired(a, b, level)
    tail = f"({100 * d.level:g}% t-interval of the paired difference over {d.n} runs)"
    if not d.excludes(0.0):
        return f"{name_a} and {name_b} are not distinguishable: {d.mean:+.{digits}f} ± {d.half:.{digits}f} {tail}"
    low, high = (name_a, name_b) if d.mean < 0 else (name_b, name_a)
    return f"{low} is lower than {high} by {abs(d.mean):.{digits}f} ± {d.half:.{digits}f} {tail}"


def say(*parts, sep: str = " ", width: int = 79) -> None:
    """``print(*parts, sep=sep)``, with every printed line longer than ``width`` characters broken
    at spaces; a continuation keeps the line's indentation plus two spaces. Only the line breaks
    differ from ``print``: a sentence fits the book's code boxes and a narrow notebook pane.

    Example:
        >>> say("over 5 seeds: " + "the spline flow is lower than the CNF " * 3, width=40)
        over 5 seeds: the spline flow is lower
          than the CNF the spline flow is lower
          than the CNF the spline flow is lower
          than the CNF
    """
    lines = []
    for line in sep.join(str(p) for p in parts).split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip(" "))] + "  "
        lines.append(textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False))
    print("\n".join(lines))
