"""Build the book: execute every chapter, several at a time, then build the site from the results.

    python _ext/build_book.py [--jobs N] [ROOT]      (`make book` runs this)

1. Every notebook in _toc.yml is executed in a fresh kernel (nbclient, through jupyter-cache's
   ``single_nb_execution``, the notebook's own folder as working directory, _config.yml's
   timeout), ``N`` at a time (default: the number of CPU cores), the longest first by the
   times of the previous build. Each kernel first runs _ext/quiet_progress.py (no progress-bar
   widgets on the static pages) and _ext/figure_fonts.py, which notes in
   every matplotlib PNG the size of its smallest text (the browser test reads it). The results
   go into a fresh jupyter-cache at _build/.jupyter_cache: every build executes every chapter.
2. ``jupyter-book build ROOT --all -W -n --keep-going`` builds the site; with _config.yml's
   ``execute_notebooks: cache`` myst-nb takes each chapter's outputs from that cache.

If a chapter fails, its traceback is printed and the site is not built. The log goes to stdout
and to _build/book-build.log (its first line: ``# exit CODE, SECONDS s``), the execution
times to _build/execution.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FONTS = Path(__file__).resolve().with_name("figure_fonts.py")
QUIET = Path(__file__).resolve().with_name("quiet_progress.py")
LOG = "book-build.log"  # in _build/
TIMES = "execution.json"  # in _build/


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


def notebooks(root: Path) -> list[Path]:
    """The toc's notebooks (.ipynb), in reading order."""
    root = Path(root)
    return [root / f"{page}.ipynb" for page in toc_pages(root) if (root / f"{page}.ipynb").is_file()]


def settings(root: Path) -> dict:
    """_config.yml's execute section, with the cache folder the build uses."""
    config = yaml.safe_load((Path(root) / "_config.yml").read_text())
    execute = config.get("execute") or {}
    if execute.get("execute_notebooks") != "cache":
        raise SystemExit("_config.yml: set `execute: execute_notebooks: cache` (the build fills the cache)")
    return {
        "cache": Path(root) / execute.get("cache", "_build/.jupyter_cache"),
        "timeout": int(execute.get("timeout", 300)),
        "allow_errors": bool(execute.get("allow_errors", False)),
    }


def execute(path: str, timeout: int, allow_errors: bool) -> tuple[str, str, float, str | None]:
    """Execute one notebook in a fresh kernel (in a worker process); returns (path, executed
    notebook as JSON, seconds, traceback or None)."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = nbformat.read(path, as_version=4)
    result = single_nb_execution(
        notebook, cwd=str(Path(path).parent), timeout=timeout, allow_errors=allow_errors,
        extra_arguments=[f"--IPKernelApp.exec_files={FONTS}", f"--IPKernelApp.exec_files={QUIET}"],
    )
    return path, nbformat.writes(result.nb), result.time, result.exc_string


def _longest_first(paths: list[Path], times_file: Path) -> list[Path]:
    try:
        last = json.loads(times_file.read_text())["seconds"]
    except (OSError, ValueError, KeyError):
        return paths
    return sorted(paths, key=lambda p: -float(last.get(p.stem, float("inf"))))


def execute_all(root: Path, jobs: int, say=print) -> dict[str, float]:
    """Execute every notebook of the toc, ``jobs`` at a time, into a fresh cache; returns the
    seconds of each (by file stem). Exits with the tracebacks if any notebook fails."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    root = Path(root)
    config = settings(root)
    times_file = root / "_build" / TIMES
    order = _longest_first(notebooks(root), times_file)
    shutil.rmtree(config["cache"], ignore_errors=True)
    cache = get_cache(config["cache"])
    seconds, failed = {}, []
    say(f"executing {len(order)} notebooks, {jobs} at a time")
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(execute, str(p), config["timeout"], config["allow_errors"]) for p in order]
        for future in as_completed(futures):
            path, text, took, error = future.result()
            name = Path(path).stem
            seconds[name] = round(took, 2)
            if error is not None:
                failed.append(f"{path}: executing the notebook failed:\n{error}")
                say(f"  {name}: FAILED after {took:.1f} s")
                continue
            executed = nbformat.reads(text, as_version=4)
            cache.cache_notebook_bundle(CacheBundleIn(executed, path, data={"execution_seconds": took}),
                                        check_validity=False, overwrite=True)
            say(f"  {name}: executed in {took:.1f} s")
    times_file.parent.mkdir(parents=True, exist_ok=True)
    times_file.write_text(json.dumps({"jobs": jobs, "seconds": seconds}, indent=1) + "\n")
    if failed:
        for message in failed:
            say(message)
        raise SystemExit(f"{len(failed)} notebook(s) failed: the site was not built")
    return seconds


def jupyter_book() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jupyter_book"]


def build(root: Path, jobs: int) -> int:
    """Execute every chapter, then build the site; returns the exit code (0: built, no warning)."""
    root = Path(root).resolve()
    start = time.monotonic()
    (root / "_build").mkdir(exist_ok=True)
    log_path = root / "_build" / LOG
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    code = 1
    try:
        execute_all(root, jobs, say)
        executed = time.monotonic() - start
        say(f"all notebooks executed in {executed:.0f} s; building the site")
        command = [*jupyter_book(), "build", str(root), "--all", "-W", "-n", "--keep-going"]
        process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for line in process.stdout:
            say(line.rstrip("\n"))
        code = process.wait()
        say(f"site built in {time.monotonic() - start - executed:.0f} s (exit {code})")
    except SystemExit as stop:
        say(str(stop))
    finally:
        seconds = time.monotonic() - start
        say(f"book build: {seconds:.0f} s")
        log_path.write_text(f"# exit {code}, {seconds:.0f} s\n" + "\n".join(lines) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute every chapter in parallel, then build the site.")
    parser.add_argument("root", nargs="?", default=str(ROOT), help="the book's folder (default: this repository)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="notebooks executed at once (default: the number of CPU cores)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return build(Path(args.root), args.jobs)


if __name__ == "__main__":
    sys.exit(main())
