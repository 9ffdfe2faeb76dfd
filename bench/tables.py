"""Writing the measured tables that the book reads (``book/data/*.csv``): one header line that
says how, where and how long they were measured, then the rows. Used by the chapters' seed-sweep
scripts (``glow_ablation.py``, ``residual_runs.py``, ``practice_runs.py``, ``continuous_runs.py``)."""

from __future__ import annotations

import csv
import os
import platform
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parent.parent / "book" / "data"


def write_table(rows: list[dict], name: str, script: str, note: str, quick: bool = False) -> Path:
    """Write ``rows`` (dicts; the union of their keys, in order of appearance, are the columns) to
    ``book/data/<name>`` (``<name>_quick.csv`` for a smoke test), floats rounded to 6 digits,
    after a ``#`` line naming ``script``, the machine, torch and ``note``. Returns the path."""
    path = DATA / (name.replace(".csv", "_quick.csv") if quick else name)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cpu = platform.processor() or platform.machine()
    with open(path, "w", newline="") as f:
        f.write(f"# measured by bench/{script} on {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
                f"1 thread; {note}\n")
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()})
    print(f"wrote {path}")
    return path
