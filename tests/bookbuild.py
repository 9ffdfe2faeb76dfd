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

import yaml

REPO = Path(__file__).resolve().parents[1]
BUILD_LOG = "book-build.log"  # written inside _build/

_SPHINX_PROBLEM = re.compile(r"(^|: )(WARNING|ERROR|CRITICAL|SEVERE):")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def toc_pages(root: Path) -> list[str]:
    """Every document in _toc.yml, in reading order, without extension (e.g. 'book/intro')."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key) or [])
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk({key: value for key, value in toc.items() if key != "root"})
    return [page.removesuffix(".md").removesuffix(".ipynb") for page in pages]


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


def jupyter_book_command() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jupyter_book"]


class RunningBuild:
    """`jupyter-book build ROOT --all -W -n --keep-going`, started now in the background.

    Every page is re-read and every chapter executed (`--all` matters: an incremental build
    re-executes nothing and repeats no earlier warning). `result()` waits for the end and writes
    the log to _build/; `stop()` ends a build that is no longer wanted.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.command = [*jupyter_book_command(), "build", str(self.root), "--all", "-W", "-n", "--keep-going"]
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
        result = BookBuild(self.root, self.root / "_build" / "html", log, seconds, self._process.returncode, self.command)
        result.log_path.parent.mkdir(exist_ok=True)
        result.log_path.write_text(f"# exit {self._process.returncode}, {seconds:.0f} s\n" + log)
        return result

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
    return BookBuild(root, root / "_build" / "html", log, seconds, code, [*jupyter_book_command(), "build", str(root)])
