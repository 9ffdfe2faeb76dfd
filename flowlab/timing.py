"""Wall-clock timing of small operations, for the measured tables of the book.

:func:`seconds_per_call` repeats a call until a run lasts a few milliseconds and keeps the
fastest of several runs: the run least disturbed by whatever else the computer is doing. Timings
are noisy by nature; compare trends and ratios, not digits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["seconds_per_call"]


def seconds_per_call(fn: Callable[[], object], budget: float = 0.02, repeat: int = 5) -> float:
    """Seconds per call of ``fn()``: after one warm-up call, find a number of calls that lasts
    about ``budget / repeat`` seconds (at most 4096), time ``repeat`` runs of that many calls
    and return the fastest run divided by the number of calls. A call slower than 0.1 s gets
    two runs only, to keep sweeps short.

    Example:
        >>> import torch
        >>> t = seconds_per_call(lambda: torch.ones(10).sum())
        >>> 0 < t < 0.01
        True
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function of no arguments, got {type(fn).__name__}.")
    if not budget > 0:
        raise ValueError(f"budget must be a positive number of seconds, got {budget!r}.")
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an integer >= 1, got {repeat!r}.")
    start = time.perf_counter()
    fn()  # warm up
    if time.perf_counter() - start > 0.1:
        repeat = min(repeat, 2)
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > budget / repeat or calls >= 4096:
            break
        calls *= 4
    runs = [elapsed]
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append(time.perf_counter() - start)
    return min(runs) / calls
