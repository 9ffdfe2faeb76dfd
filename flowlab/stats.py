r"""Error bars for the numbers the book reports: over test points, and over training runs.

A number measured on a trained model varies from one training run (seed) to the next, often
far more than its standard error over the test points says. With :math:`n` runs giving values
:math:`v_1, \dots, v_n`, the mean :math:`\bar v` has the standard error
:math:`s / \sqrt n` (:math:`s` the sample standard deviation), and with few runs the
interval must use Student's :math:`t` quantile with :math:`n - 1` degrees of freedom:

.. math:: \bar v \pm t_{n-1,\,(1+\gamma)/2}\, \frac{s}{\sqrt n}

covers the true mean with probability :math:`\gamma` when the values are roughly normal. With
3 runs, :math:`t_{2,\,0.975} = 4.30`, not the 2 of "two standard errors", which would cover only
about 82 % of the time. Two methods run on the same seeds are compared by their **paired**
differences :math:`a_i - b_i`, which cancel the part of the seed-to-seed noise they share.

* :func:`mean_se`: the mean and its standard error (over test points or runs);
* :func:`interval`: the mean and the half-width of its :math:`t` interval;
* :func:`paired`: the same for the differences of two paired samples;
* :func:`compare`: a sentence saying which of two paired samples is lower, or that the
  interval of their difference contains zero.

Each costs :math:`O(n)`. References: Student (1908); any text on the paired t-test, e.g.
Wasserman (2004), *All of Statistics*, section 10.

Example:
    >>> from flowlab import stats
    >>> m, h = stats.interval([1.0, 2.0, 3.0])   # 2 +- 4.30 * 1 / sqrt(3)
    >>> round(m, 3), round(h, 3)
    (2.0, 2.484)
    >>> stats.compare([1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.2, 1.9, 2.1, 2.0], "a", "b")
    'a is lower than b by 1.030 +- 0.083 (95 % t-interval of the paired difference, 5 runs)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["compare", "interval", "mean_se", "paired"]


def _values(name: str, values, minimum: int) -> np.ndarray:
    try:
        v = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {type(values).__name__}.") from None
    if len(v) < minimum:
        raise ValueError(f"{name} needs at least {minimum} values for an error bar, got {len(v)}.")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinite values: drop the failed runs or report them apart.")
    return v


def _level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a probability between 0 and 1, such as 0.95; got {level!r}.")
    return float(level)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    r"""The mean of ``values`` and its standard error :math:`s/\sqrt n` (``ddof=1``).

    Example:
        >>> mean_se([1.0, 2.0, 3.0])
        (2.0, 0.5773502691896258)
    """
    v = _values("values", values, 2)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    r"""The mean of ``values`` and the half-width :math:`t_{n-1,(1+\gamma)/2}\, s/\sqrt n` of its
    ``level`` (:math:`\gamma`) confidence interval, with Student's :math:`t` quantile.

    Example:
        >>> m, h = interval([0.0, 1.0, 2.0, 3.0, 4.0])   # t_{4, 0.975} = 2.776
        >>> round(h, 3)
        1.963
    """
    from scipy.stats import t

    level = _level(level)
    mean, se = mean_se(values)
    n = len(_values("values", values, 2))
    return mean, float(t.ppf((1 + level) / 2, n - 1) * se)


def paired(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    r"""The mean of the differences :math:`a_i - b_i` of two paired samples (the same seeds, or the
    same test points) and the half-width of its ``level`` :math:`t` interval.

    Example:
        >>> d, h = paired([2.0, 3.0, 4.0], [1.0, 2.1, 2.9])
        >>> round(d, 3), round(h, 3)
        (1.0, 0.248)
    """
    a, b = _values("a", a, 2), _values("b", b, 2)
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired (the same runs, in the same order): got {len(a)} and {len(b)} values.")
    return interval(a - b, level)


def compare(a: Sequence[float], b: Sequence[float], name_a: str = "a", name_b: str = "b", level: float = 0.95,
            digits: int = 3) -> str:
    r"""One sentence on two paired samples: which is lower, by how much, with the ``level``
    :math:`t` interval of the paired difference; or, when that interval contains zero, that the
    runs do not tell them apart.

    Example:
        >>> compare([1.0, 1.2, 0.8], [1.1, 1.0, 1.0], "reverse", "permutation")
        'reverse and permutation are not distinguishable: -0.033 +- 0.517 (95 % t-interval of the paired difference, 3 runs)'
    """
    d, h = paired(a, b, level)
    n = len(_values("a", a, 2))
    tail = f"({100 * level:g} % t-interval of the paired difference, {n} runs)"
    if abs(d) <= h:
        return f"{name_a} and {name_b} are not distinguishable: {d:+.{digits}f} +- {h:.{digits}f} {tail}"
    low, high = (name_a, name_b) if d < 0 else (name_b, name_a)
    return f"{low} is lower than {high} by {abs(d):.{digits}f} +- {h:.{digits}f} {tail}"
