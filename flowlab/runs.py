r"""Training runs repeated over seeds: Student-t intervals, paired differences, and the tables
that the ``bench/`` scripts save for the book.

A number that describes a *trained* model (its held-out NLL, its divergence from the truth)
changes from one training run to the next: another seed draws other initial weights, other
mini-batches, other training points. With :math:`n` runs giving :math:`v_1, \dots, v_n`, the
level-:math:`\gamma` interval for the mean over runs is

.. math:: \bar v \pm t_{(1 + \gamma)/2,\; n - 1}\, \frac{s}{\sqrt n},
   \qquad s^2 = \frac{1}{n - 1} \sum_i (v_i - \bar v)^2,

with the Student-t quantile :math:`t_{q, n-1}` (4.30 for :math:`n = 3`, 2.78 for :math:`n = 5`
at 95%, against 1.96 for a normal quantile): with few runs the sample standard deviation is
itself uncertain, and the t quantile pays for it. Two methods trained with the *same* seeds are
compared through the differences :math:`d_i = a_i - b_i`, seed by seed (:func:`paired`):
whatever a seed makes easy or hard for both cancels, so the interval of the differences is
usually much narrower than the two intervals side by side.

:func:`read` loads a table that a ``bench/`` script wrote (CSV with ``#`` lines on top that say
how and where it was measured), :func:`summarize` gives one row per configuration with its
intervals, and :func:`compare` pairs two configurations of such a table by seed.

Costs: every function is :math:`O(n)` in the number of rows; nothing here trains anything.
``pandas`` (for the tables) and ``scipy`` (for the t quantile) are imported when first needed.

References: Student (1908), "The probable error of a mean", *Biometrika* 6(1), 1-25.

Example:
    >>> from flowlab.runs import interval, paired
    >>> a, b = [1.20, 1.31, 1.25], [1.10, 1.22, 1.14]
    >>> print(interval(a))  # mean over 3 seeds and the half-width of its 95% interval
    1.253 ± 0.137
    >>> print(paired(a, b))  # the same seeds: the differences scatter far less
    0.100 ± 0.025
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["Interval", "compare", "interval", "paired", "read", "summarize", "t_quantile"]


class Interval(NamedTuple):
    """A mean over ``n`` runs and the half-width ``half`` of its interval (``level``):
    ``mean - half`` to ``mean + half``. ``format(i, ".2f")`` formats both numbers
    (``"+.2f"`` signs the mean only)."""

    mean: float
    half: float
    n: int
    level: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half

    def excludes(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies outside the interval (a clear difference when ``value`` is 0)."""
        return not self.low <= value <= self.high

    def __format__(self, spec: str) -> str:
        spec = spec or ".3f"  # a sign flag ("+.3f") applies to the mean only
        return f"{format(self.mean, spec)} ± {format(self.half, spec.replace('+', ''))}"

    def __str__(self) -> str:
        return format(self)


def _level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level must be a number between 0 and 1 (0.95 for a 95% interval), got {level!r}.")
    return float(level)


def t_quantile(level: float, dof: int) -> float:
    r"""The two-sided Student-t quantile :math:`t_{(1 + \text{level})/2,\; \text{dof}}`: the
    factor that turns a standard error of a mean over ``dof + 1`` runs into the half-width of a
    ``level`` interval.

    Example:
        >>> round(t_quantile(0.95, 2), 3), round(t_quantile(0.95, 4), 3)
        (4.303, 2.776)
    """
    from scipy.stats import t

    level = _level(level)
    if isinstance(dof, bool) or not isinstance(dof, numbers.Integral) or dof < 1:
        raise ValueError(f"dof must be an integer >= 1 (the number of runs minus one), got {dof!r}.")
    return float(t.ppf((1 + level) / 2, dof))


def _values(name: str, values) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers (one per run), got {values!r}.") from None
    if len(out) < 2:
        raise ValueError(f"{name} needs at least 2 runs to estimate their scatter, got {len(out)}.")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} holds a value that is not finite: {out}; drop the failed run or fix it.")
    return out


def interval(values: Sequence[float], level: float = 0.95) -> Interval:
    r"""The mean of ``values`` (one per run) and the half-width
    :math:`t_{(1+\text{level})/2,\,n-1}\, s / \sqrt n` of its ``level`` interval.

    Example:
        >>> interval([2.0, 2.2, 2.4]).half  # s = 0.2, n = 3: 4.303 * 0.2 / sqrt(3)
        0.4968...
    """
    v = _values("values", values)
    n = len(v)
    mean = sum(v) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    return Interval(mean, t_quantile(level, n - 1) * sd / math.sqrt(n), n, _level(level))


def _is_series(x) -> bool:
    return type(x).__name__ == "Series" and hasattr(x, "loc")


def paired(a, b, level: float = 0.95) -> Interval:
    r"""The mean difference :math:`\overline{a - b}` of two methods run with the same seeds, and
    its ``level`` interval over the seeds (:func:`interval` of the differences).

    ``a`` and ``b`` are sequences in the same seed order, or ``pandas.Series`` indexed by seed
    (then they are matched by seed, and a seed missing from either raises ``ValueError``).

    Example:
        >>> print(paired([0.50, 0.61, 0.40], [0.20, 0.29, 0.12]))
        0.300 ± 0.050
    """
    if _is_series(a) and _is_series(b):
        if set(a.index) != set(b.index):
            raise ValueError(f"a and b must come from the same seeds, got {sorted(a.index)} and {sorted(b.index)}.")
        b = b.loc[list(a.index)]
    a, b = _values("a", a), _values("b", b)
    if len(a) != len(b):
        raise ValueError(f"a and b must hold one value per seed each, got {len(a)} and {len(b)} values.")
    return interval([x - y for x, y in zip(a, b)], level)


def read(path: str | Path):
    """A table saved by a ``bench/`` script, as a ``pandas.DataFrame``. The ``#`` lines at the top
    (how, where and when it was measured) are kept in ``table.attrs["notes"]``, a list of strings.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = f.write_text("# measured by hand\\nseed,nll\\n0,1.2\\n1,1.3\\n")
        >>> t = read(f)
        >>> t.attrs["notes"], list(t.nll)
        (['measured by hand'], [1.2, 1.3])
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be a CSV file written by a bench/ script, got {str(path)!r} (no such file).")
    notes = []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            notes.append(line.lstrip("#").strip())
    table = pd.read_csv(path, comment="#")
    table.attrs["notes"] = notes
    return table


def _select(table, name: str, where: Mapping):
    if not isinstance(where, Mapping) or not where:
        raise ValueError(f"{name} must be a dict of column: value that picks one configuration, got {where!r}.")
    mask = True
    for column, value in where.items():
        if column not in table.columns:
            raise ValueError(f"{name}: the table has no column {column!r}; its columns are {list(table.columns)}.")
        mask = mask & (table[column] == value)
    rows = table[mask]
    if rows.empty:
        raise ValueError(f"{name}: no row of the table matches {dict(where)}.")
    return rows


def compare(table, column: str, a: Mapping, b: Mapping, on: str = "seed", level: float = 0.95) -> Interval:
    """:func:`paired` difference of ``column`` between the rows matching ``a`` and those matching
    ``b`` (dicts of column: value), matched on ``on`` (the seed).

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"K": [2, 2, 2, 8, 8, 8], "seed": [0, 1, 2] * 2,
        ...                   "nll": [1.5, 1.7, 1.6, 1.2, 1.45, 1.3]})
        >>> print(compare(t, "nll", {"K": 8}, {"K": 2}))
        -0.283 ± 0.072
    """
    if column not in table.columns:
        raise ValueError(f"column must be one of the table's columns {list(table.columns)}, got {column!r}.")
    rows_a, rows_b = _select(table, "a", a), _select(table, "b", b)
    for name, rows in (("a", rows_a), ("b", rows_b)):
        if rows[on].duplicated().any():
            raise ValueError(
                f"{name}: {dict(a if name == 'a' else b)} matches several rows per {on}; add columns to it."
            )
    return paired(rows_a.set_index(on)[column], rows_b.set_index(on)[column], level)


def summarize(table, by: Sequence[str], columns: Sequence[str], level: float = 0.95):
    """One row per configuration (the distinct values of the columns ``by``, in the order of
    first appearance): the number of runs ``n`` and, for each of ``columns``, the mean over the
    runs and the half-width of its ``level`` interval (column ``"<name> ±"``).

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"K": [2, 2, 8, 8], "nll": [1.5, 1.7, 1.2, 1.4]})
        >>> summarize(t, ["K"], ["nll"]).round(2).to_dict("records")
        [{'K': 2, 'n': 2, 'nll': 1.6, 'nll ±': 1.27}, {'K': 8, 'n': 2, 'nll': 1.3, 'nll ±': 1.27}]
    """
    import pandas as pd

    by, columns = list(by), list(columns)
    for name, names in (("by", by), ("columns", columns)):
        missing = [c for c in names if c not in table.columns]
        if missing:
            raise ValueError(f"{name}: the table has no column {missing[0]!r}; its columns are {list(table.columns)}.")
    out = []
    for key, group in table.groupby(by, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["n"] = len(group)
        for c in columns:
            i = interval(group[c], level)
            row[c], row[f"{c} ±"] = i.mean, i.half
        out.append(row)
    return pd.DataFrame(out)
