"""Helpers for the book tests: read the toc, build the book, find warnings in the log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the book's tools (_ext/): the repository's one source, the parallel build
if str(REPO / "_ext") not in sys.path:
    sys.path.append(str(REPO / "_ext"))

from build_book import LOG as BUILD_LOG  # noqa: E402 - written inside _build/ by the builder
from build_book import toc_pages  # noqa: E402 - the one reader of _toc.yml


_SPHINX_PROBLEM = re.compile(r"(^|: )(WARNING|ERROR|CRITICAL|SEVERE):")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def source_of(root: Path, page: str) -> Path:
    """The source file of a toc entry (.ipynb or .md)."""
    for suffix in (".ipynb", ".md"):
        path = Path(root) / f"{page}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"{page} is in _toc.yml but neither {page}.ipynb nor {page}.md exists")


def warnings_in(log: str) -> list[str]:
    """Sphinx's warnings and errors in a build log (a kernel's own log lines are not counted)."""
    lines = (_ANSI.sub("", line) for line in log.splitlines())
    return [line for line in lines if _SPHINX_PROBLEM.search(line)]


@dataclass
class BookBuild:
    root: Path
    html: Path
    log: str
    seconds: float
    returncode: int
    command: list[str]

    @property
    def pages(self) -> list[str]:
        return toc_pages(self.root)

    @property
    def log_path(self) -> Path:
        return self.root / "_build" / BUILD_LOG

    def tail(self, lines: int = 60) -> str:
        return "\n".join(_ANSI.sub("", line) for line in self.log.splitlines()[-lines:])

    def problems(self) -> str | None:
        """Why this build is not good enough, or None."""
        if self.returncode != 0:
            return (
                f"`{' '.join(self.command)}` failed (exit {self.returncode}) after {self.seconds:.0f} s; "
                f"full log in {self.log_path}. Last lines:\n{self.tail()}"
            )
        found = warnings_in(self.log)
        if found:
            return f"the book build printed {len(found)} warning(s); full log in {self.log_path}:\n" + "\n".join(
                found[:40]
            )
        return None


def build_command(root: Path) -> list[str]:
    """`make book`'s command: _ext/build_book.py executes every chapter (in parallel), then builds the site."""
    return [sys.executable, str(REPO / "_ext" / "build_book.py"), str(root)]


class RunningBuild:
    """`python _ext/build_book.py ROOT` (what `make book` runs), started now in the background.

    Every chapter is executed (into a fresh cache) and every page re-read (`--all`). `result()`
    waits for the end; the builder writes its log to _build/book-build.log. `stop()` ends a
    build that is no longer wanted.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.command = build_command(self.root)
        self._log = tempfile.TemporaryFile("w+")
        self._start = time.monotonic()
        self._process = subprocess.Popen(self.command, cwd=self.root, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                         stdout=self._log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._end: list[float] = []
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        self._process.wait()
        self._end.append(time.monotonic())

    def result(self) -> BookBuild:
        self._waiter.join()
        self._log.seek(0)
        log = self._log.read()
        self._log.close()
        seconds = self._end[0] - self._start
        return BookBuild(self.root, self.root / "_build" / "html", log, seconds, self._process.returncode, self.command)

    def stop(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)


def previous_build(root: Path) -> BookBuild:
    """The last build's result, read back from _build/ (for --book-prebuilt)."""
    root = Path(root).resolve()
    log_path = root / "_build" / BUILD_LOG
    if not log_path.exists():
        raise FileNotFoundError(f"no {log_path}: build once without --book-prebuilt")
    header, _, log = log_path.read_text().partition("\n")
    match = re.match(r"# exit (-?\d+), (\d+) s", header)
    code, seconds = (int(match[1]), float(match[2])) if match else (1, 0.0)
    return BookBuild(root, root / "_build" / "html", log, seconds, code, build_command(root))
