"""What the bench scripts of the book's chapters share: interleaved timing rounds, the line
that says where, when and under what load a table was measured, and writing a table as CSV
under that line (the book reads these files with :func:`flowlab.runs.read`)."""

from __future__ import annotations

import csv
import os
import platform
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parent.parent / "book" / "data"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    """The 1-minute load average, as text ("unknown" where the system does not say)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def header(command: str, what: str, started: float, load_before: str) -> str:
    """``measured by <command> on <machine>; <what>; load average ... ; date; seconds``."""
    return (f"measured by {command} on {machine()}; {what}; load average (1 min) {load_before} before "
            f"and {load()} after; {time.strftime('%Y-%m-%d')}; {time.perf_counter() - started:.0f} s in all")


def write(path: Path, rows: list[dict], note: str) -> None:
    """``rows`` as CSV under one ``# note`` line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(c for r in rows for c in r))
    with open(path, "w", newline="") as f:
        f.write(f"# {note}\n")
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def save(name: str, rows: list[dict], command: str, what: str, started: float, load_before: str,
         quick: bool = False) -> Path:
    """Write ``rows`` as ``book/data/<name>`` under the :func:`header` line and say so; a smoke test
    (``quick``) writes ``<stem>_quick.csv`` instead, so it never replaces a table a chapter reads."""
    path = DATA / (name.replace(".csv", "_quick.csv") if quick else name)
    write(path, rows, header(command, what, started, load_before))
    print(f"wrote {path}")
    return path


def calls_for(fn, budget: float) -> int:
    """How many calls of ``fn`` last about ``budget`` seconds (after one warm-up call), at least 1."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    return max(1, min(1000, int(budget / max(first, 1e-6))))


def interleaved(tasks: dict, rounds: int, budget: float = 0.02) -> dict:
    """Seconds per call of each function in ``tasks``, one list entry per round: in each round
    every task runs its fixed number of calls once, the order rotating from round to round."""
    calls = {key: calls_for(fn, budget) for key, fn in tasks.items()}
    keys = list(tasks)
    seconds = {key: [] for key in keys}
    for r in range(rounds):
        shift = (r * len(keys)) // rounds
        for key in keys[shift:] + keys[:shift]:
            start = time.perf_counter()
            for _ in range(calls[key]):
                tasks[key]()
            seconds[key].append((time.perf_counter() - start) / calls[key])
    return seconds
