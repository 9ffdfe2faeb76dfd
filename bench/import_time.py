"""What ``import flowlab`` costs above ``import torch``: seconds and memory, in fresh processes.

Each round starts three fresh interpreters, in rotating order:

* ``import torch`` alone, and ``import flowlab`` alone: wall time of the whole process start
  (the difference is what a notebook kernel pays for flowlab);
* ``import torch``, then ``import flowlab`` timed inside the process with ``time.perf_counter``
  (the cost above torch, without the noise of two process starts).

It prints the medians over the rounds, the resident memory after each import (``ru_maxrss``),
the heavy libraries that ``import flowlab`` loaded (none should be), and the flowlab modules
with the largest own import time (``python -X importtime``), so that a slow module shows.

Run from the repository root::

    OMP_NUM_THREADS=1 python bench/import_time.py            # 15 rounds
    OMP_NUM_THREADS=1 python bench/import_time.py --rounds 5

Timings on a shared machine are upper bounds: the script prints the load average before and
after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

NEUTRAL = tempfile.gettempdir()
"""The children run here, so that the flowlab they import is the one installed or on PYTHONPATH
(``python -c`` puts its working directory first on the path)."""
HEAVY = ("matplotlib", "PIL", "ipywidgets", "IPython", "scipy", "pandas", "torchdiffeq")

ALONE = "import resource, sys; import {module}; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
ABOVE = (
    "import time, sys; import torch; t0 = time.perf_counter(); import flowlab; "
    "print(time.perf_counter() - t0); print(' '.join(m for m in {heavy!r} if m in sys.modules))"
)


def run(code: str) -> tuple[float, list[str]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=NEUTRAL)
    return time.perf_counter() - start, out.stdout.splitlines()


def own_import_times() -> list[tuple[float, str]]:
    """Every flowlab module's own (self) import time in ms, largest first, from -X importtime."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import torch; import flowlab"],
                         capture_output=True, text=True, check=True, cwd=NEUTRAL)
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip().startswith("flowlab"):
            rows.append((int(parts[0].split(":")[1]) / 1000, parts[2].strip()))
    return sorted(rows, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    found = run("import flowlab; print(flowlab.__file__)")[1][0]
    print(f"flowlab from: {found}")
    jobs = {
        "torch": ALONE.format(module="torch"),
        "flowlab": ALONE.format(module="flowlab"),
        "above": ABOVE.format(heavy=HEAVY),
    }
    wall: dict[str, list[float]] = {k: [] for k in jobs}
    rss: dict[str, list[float]] = {"torch": [], "flowlab": []}
    above: list[float] = []
    heavy: set[str] = set()
    order = list(jobs)
    for r in range(args.rounds):
        for name in order[r % 3:] + order[: r % 3]:
            seconds, lines = run(jobs[name])
            wall[name].append(seconds)
            if name == "above":
                above.append(float(lines[0]))
                heavy.update(lines[1].split() if len(lines) > 1 else [])
            else:
                rss[name].append(int(lines[0]) / 1024)
    med = {k: statistics.median(v) for k, v in wall.items()}
    print(f"rounds: {args.rounds}")
    print(f"process with import torch:   {med['torch']:.3f} s (median)")
    print(f"process with import flowlab: {med['flowlab']:.3f} s (median)")
    print(f"difference of the medians:   {med['flowlab'] - med['torch']:.3f} s")
    print(f"import flowlab after torch, in process: {statistics.median(above):.3f} s "
          f"(median; quartiles {statistics.quantiles(above, n=4)[0]:.3f} - {statistics.quantiles(above, n=4)[2]:.3f})")
    print(f"memory after import (ru_maxrss, median): torch {statistics.median(rss['torch']):.0f} MiB, "
          f"flowlab {statistics.median(rss['flowlab']):.0f} MiB, "
          f"difference {statistics.median(rss['flowlab']) - statistics.median(rss['torch']):.0f} MiB")
    print(f"heavy libraries loaded by import flowlab: {sorted(heavy) or 'none'}")
    runs = [own_import_times() for _ in range(args.rounds)]
    totals = [sum(ms for ms, _ in r) for r in runs]
    targets = [sum(ms for ms, m in r if m == "flowlab.targets") for r in runs]
    print(f"sum of the flowlab modules' own import times (-X importtime, median of {args.rounds}): "
          f"{statistics.median(totals):.0f} ms, of which flowlab.targets itself {statistics.median(targets):.0f} ms "
          f"(its log Z quadratures); the rest {statistics.median([a - b for a, b in zip(totals, targets)]):.0f} ms")
    print("flowlab modules with the largest own import time (ms, last run):")
    for ms, module in runs[-1][:8]:
        print(f"  {ms:7.1f}  {module}")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
