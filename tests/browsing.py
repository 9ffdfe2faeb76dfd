"""Helpers for the browser tests: serve a folder on 127.0.0.1 and drive Debian's chromium.

The browser is Debian's `chromium` (`apt-get install -y chromium`); Playwright drives it through
`executable_path` and never downloads a browser of its own.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the signature is http.server's
        pass


@contextlib.contextmanager
def serve(directory):
    """Serve ``directory`` on 127.0.0.1 (a free port) from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium():
    """A headless Debian chromium driven by Playwright; fails the test (never skips) without it."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "the browser tests need Debian's chromium on the PATH: run `apt-get install -y chromium` "
            "(`.ci/run` does it). Do not use `playwright install`.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# ---------------------------------------------------------------- a real JupyterLab (tests/test_jupyterlab.py)


class JupyterLab:
    """A running ``jupyter lab`` on 127.0.0.1: its base URL, token, process and private folders."""

    def __init__(self, base: str, token: str, process, home):
        self.base, self.token, self.process, self.home = base, token, process, home

    def url(self, path: str) -> str:
        """The address of ``path`` (e.g. ``lab/tree/book/circles.ipynb``), with the token."""
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def log(self) -> str:
        """The end of the server's log (for failure messages)."""
        return (self.home / "server.log").read_text(errors="replace")[-4000:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_mentioning(text: str) -> list[int]:
    """Ids of the live processes whose command line contains ``text`` (Linux /proc)."""
    import os
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in (entry / "status").read_text().splitlines() if line.startswith("State:")), "")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if text in cmdline and "zombie" not in state:
            found.append(int(entry.name))
    return found


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the test process dies, even if it is killed (Linux)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


@contextlib.contextmanager
def jupyter_lab(root_dir, home, settings: dict | None = None, timeout: float = 60.0, args=(), env=None):
    """Run ``jupyter lab`` serving ``root_dir`` on 127.0.0.1 (a free port, a random token); yields a `JupyterLab`.

    ``args`` are further command-line options, ``env`` the server's environment (default: this one's).

    Every folder Jupyter writes to (config, data, runtime, user settings, workspaces, IPython) lies
    under ``home``, so nothing outside it changes. ``settings`` maps a JupyterLab plugin id (e.g.
    ``"@jupyterlab/docmanager-extension:plugin"``) to user settings for it. On exit the server is
    asked to shut down (it stops its kernels), then its process group and any process still naming
    ``home`` on its command line (a kernel runs in a session of its own) are killed; the exit
    fails the test if one survives. Should the test process itself be killed, the server gets
    SIGTERM from the kernel (``PR_SET_PDEATHSIG``) and its kernels notice their parent is gone.
    """
    import json
    import os
    import secrets
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    home = Path(home).resolve()
    for name in ("config", "data", "runtime", "ipython", "workspaces"):
        (home / name).mkdir(parents=True, exist_ok=True)
    user_settings = home / "config" / "lab" / "user-settings"
    for plugin, values in (settings or {}).items():
        package, _, name = plugin.partition(":")
        path = user_settings / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        pytest.fail(f"no `jupyter` next to {sys.executable}: install requirements.txt (it pins jupyterlab)", pytrace=False)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ if env is None else env,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    command = [
        str(jupyter), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={user_settings}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *args,
    ]
    log = open(home / "server.log", "wb")
    process = subprocess.Popen(command, cwd=str(root_dir), env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=_die_with_parent)
    lab = JupyterLab(f"http://127.0.0.1:{port}", token, process, home)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{lab.log()}", pytrace=False)
            try:
                with urllib.request.urlopen(lab.url("api/status"), timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {timeout:.0f} s:\n{lab.log()}", pytrace=False)
            time.sleep(0.2)
        yield lab
    finally:
        try:  # the polite way first: the server shuts its kernels down and exits
            request = urllib.request.Request(lab.url("api/shutdown"), method="POST")
            urllib.request.urlopen(request, timeout=5).close()
            process.wait(timeout=15)
        except Exception:  # noqa: BLE001 - whatever went wrong, the kills below follow
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        log.close()
        for pid in processes_mentioning(str(home)):  # kernels: started by our server, in a session of their own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (left := processes_mentioning(str(home))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes of the JupyterLab test still running after teardown: {left}"


# ---------------------------------------------------------------- what a page weighs


def _kind(url: str, content_type: str) -> str:
    path = url.split("?", 1)[0]
    if "embed-amd.js" in path or "require.js" in path:
        return "widget manager"
    for kind, endings in (("html", (".html", "/")), ("script", (".js", ".mjs")), ("style", (".css",)),
                          ("font", (".woff", ".woff2", ".ttf", ".eot", ".otf")),
                          ("image", (".png", ".jpg", ".jpeg", ".svg", ".gif", ".webp"))):
        if path.endswith(endings):
            return kind
    return content_type.split(";")[0] or "other"


def loaded_weight(page) -> dict:
    """What the browser downloaded for the page now open in ``page`` (a Playwright page, opened in
    a fresh context so that nothing came from a cache), in bytes, from its resource timing:
    ``total``, ``by_kind`` (html, script, style, font, image, widget manager), ``requests``, and
    ``inline``: how much of the HTML is base64 images written into the page (replay frames,
    data URIs)."""
    entries = page.evaluate(
        "() => performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => [e.name, e.decodedBodySize, e.initiatorType])"
    )
    inline = page.evaluate(
        "() => [...document.querySelectorAll('[src^=\"data:\"]')].reduce((n, e) => n + e.getAttribute('src').length, 0)"
        " + [...document.querySelectorAll('script:not([src])')].reduce((n, s) =>"
        " n + (s.textContent.match(/data:image\\/[a-z]+;base64,[A-Za-z0-9+\\/=]+/g) || []).join('').length, 0)"
    )
    by_kind: dict[str, int] = {}
    for name, size, initiator in entries:
        kind = "html" if initiator == "navigation" else _kind(name, "")
        by_kind[kind] = by_kind.get(kind, 0) + int(size)
    return {"total": sum(by_kind.values()), "by_kind": by_kind, "requests": len(entries), "inline": inline}


def page_weight(browser, url: str, viewport=(1280, 900)) -> dict:
    """:func:`loaded_weight` of a first visit to ``url`` in a fresh browser context."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    try:
        page.goto(url, wait_until="load", timeout=90_000)
        try:
            page.wait_for_load_state("networkidle", timeout=15_000)
        except Exception:  # noqa: BLE001 - weigh what came
            pass
        return loaded_weight(page)
    finally:
        context.close()
