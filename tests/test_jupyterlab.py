"""The circles chapter's live dashboard, as a student meets it: in a real JupyterLab, in Chromium.

Starts JupyterLab on 127.0.0.1 as `make lab` does (`_ext/lab_server.py`: nbstripout as git's
notebook filter, and its save hooks) over a temporary git clone of `book/` (autosave off), checks
that the chapter's MyST markup is rendered, opens `book/circles.ipynb`, runs its imports cell
(the first that imports flowlab) and its dashboard cell (the one that makes
``fl.live.Trainer(...)``), skipping the chapter's long trainings in between as a reader in a
hurry would, and uses the dashboard as a reader would: read the status, Start, watch the picture
and the step counter move, Stop, choose "all data" as the batch, Start again, Stop; type a
learning rate into its box (the rate the kernel's trainer uses, read through a second client of
the kernel, must be the one on the screen) and a word that is no rate; Start, restart the kernel
while it trains (the dashboard must then say that it lost its kernel, not that it trains); save:
the file keeps its outputs but no widget view, and `git status` stays clean; and open the
chapter again: no "Error displaying widget" anywhere, the dashboard's note in its place. The page
must log no JavaScript error and reach nothing off the machine.

The dashboard's parts are found by their CSS classes (ipywidgets ``add_class``):
``flowlab-status``, ``flowlab-steps``, ``flowlab-picture``, ``flowlab-batch``, ``flowlab-lr``;
its buttons by their text. Screenshots of each stage go to /tmp/jlab-*.png (look at them when a
run fails).

Needs Debian's `chromium` (`apt-get install -y chromium`) and `jupyterlab` (requirements.txt);
fails, never skips, without them. No server, kernel or browser survives the test: the fixture
shuts the server down, kills what is left, and checks. About 40 s on a quiet 2-core machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browsing import chromium, jupyter_lab

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "_ext"))
import lab_server  # noqa: E402  (make lab's launcher: git filter and save hook)

NOTEBOOK = "book/circles.ipynb"
IMPORTS = "import flowlab as fl"
DASHBOARD = "fl.live.Trainer("
SHOTS = Path("/tmp")

# JupyterLab user settings for the test: never save (the copy is temporary anyway), no news or
# update checks (no network), every cell in the DOM (so the n-th cell is the n-th element).
SETTINGS = {
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

# Console errors known to be harmless: none so far in JupyterLab 4.6 with this notebook. Each
# entry is a regular expression that must match one whole console message.
HARMLESS_CONSOLE = ()

# Timeouts (ms), generous for a busy 2-core machine.
RUN_CELLS_MS = 120_000
STEP_MS = 30_000
# seconds from the click on Save to the file on disk (about 1 s on a quiet machine)
SAVE_S = 60


def test_saving_drops_widget_views_and_keeps_their_other_forms():
    """make lab's pre-save hook: a widget's output keeps its HTML and text, loses its view; other outputs stay."""
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    widget = {"output_type": "display_data", "metadata": {},
              "data": {lab_server.WIDGET_VIEW: view, "text/html": "<b>note</b>", "text/plain": "Trainer(...)"}}
    only_view = {"output_type": "display_data", "metadata": {}, "data": {lab_server.WIDGET_VIEW: view}}
    text = {"output_type": "stream", "name": "stdout", "text": "loss 1.0\n"}
    model = {"type": "notebook", "content": {"cells": [
        {"cell_type": "code", "outputs": [widget, only_view, text]}, {"cell_type": "markdown", "source": "x"}]}}
    lab_server.drop_widget_views(model=model, path="book/x.ipynb")
    outputs = model["content"]["cells"][0]["outputs"]
    assert [o.get("data") for o in outputs] == [{"text/html": "<b>note</b>", "text/plain": "Trainer(...)"}, None]
    assert outputs[1] == text
    lab_server.drop_widget_views(model={"type": "file", "content": "text"}, path="a.txt")  # not a notebook: untouched


def _git_status_book() -> str:
    return _git(REPO, "status", "--porcelain", "--", "book/")


def _cell_with(notebook: Path, text: str) -> int:
    cells = json.loads(notebook.read_text())["cells"]
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and text in "".join(cell["source"]):
            return i
    pytest.fail(f"{NOTEBOOK} has no code cell with {text!r}", pytrace=False)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab as `make lab` starts it, over a git clone of the book; yields the `browsing.JupyterLab`.

    The clone holds `book/` and `.gitattributes`, committed, with nbstripout set as its notebook
    filter by `_ext/lab_server.py` (what `make lab` runs), whose save hook the server gets too.
    """
    before = _git_status_book()
    work = tmp_path_factory.mktemp("jupyterlab")
    root = work / "root"
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    for name in (".gitattributes", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    _git(root, "init", "-q")
    lab_server.configure_git(root)
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=reader", "-c", "user.email=reader@localhost", "commit", "-q", "-m", "the book")
    for notebook in sorted(root.glob("book/*.ipynb")):  # stored as the filter would store them
        name = str(notebook.relative_to(root))
        raw = _git(root, "hash-object", "--no-filters", name).strip()
        assert raw == _git(root, "rev-parse", f"HEAD:{name}").strip(), f"nbstripout changes {name}: store it stripped"
    with jupyter_lab(root, work / "home", settings=SETTINGS, args=lab_server.SAVE_HOOKS,
                     env=lab_server.server_env()) as server:
        server.root = root
        yield server
    after = _git_status_book()
    assert after == before, f"`git status --porcelain book/` changed during the test:\n{before}\n---\n{after}"


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


class Console:
    """What the page logs: console errors, uncaught exceptions, and requests off the machine."""

    def __init__(self, page, base: str):
        self.errors: list[str] = []
        self.outside: list[str] = []
        origin = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}"

        def route(route):
            url = route.request.url
            if url.startswith(origin) or urlsplit(url).scheme in ("data", "blob", "about"):
                route.continue_()
            else:
                self.outside.append(url)
                route.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(re.fullmatch(p, e, re.S) for p in HARMLESS_CONSOLE)]


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"jlab-{name}.png"))


def _step_number(locator) -> int:
    text = locator.inner_text()
    match = re.search(r"\d+", text)
    assert match, f"the step counter shows no number: {text!r}"
    return int(match.group())


def test_circles_dashboard_in_jupyterlab(lab, browser):
    from playwright.sync_api import expect

    imports = _cell_with(lab.root / NOTEBOOK, IMPORTS)
    index = _cell_with(lab.root / NOTEBOOK, DASHBOARD)
    context = browser.new_context(viewport={"width": 1366, "height": 768})  # a laptop screen
    page = context.new_page()
    console = Console(page, lab.base)
    try:
        t0 = time.perf_counter()
        page.goto(lab.url(f"lab/tree/{NOTEBOOK}"), wait_until="domcontentloaded")
        cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
        expect(cells.nth(index)).to_be_attached(timeout=60_000)
        # the kernel has started (the status bar reads "<kernel name> | Idle", not "No Kernel")
        expect(page.get_by_role("button", name=re.compile(r"^(?!No Kernel).+ \| Idle$"))).to_be_visible(timeout=60_000)
        _shot(page, "1-opened")

        # the book's MyST markup is rendered (jupyterlab-myst), not shown as source
        exercises = page.locator(".jp-MarkdownCell", has_text="Which change matters?")
        expect(exercises).to_have_count(1, timeout=30_000)
        exercises.scroll_into_view_if_needed()
        _shot(page, "1-myst")
        markdown = "\n".join(page.locator(".jp-MarkdownCell .jp-MarkdownOutput").all_inner_texts())
        raw = sorted({m for m in ("```{", "{exercise}", "{solution}", ":label:", "{doc}", "{cite") if m in markdown})
        assert not raw, f"MyST markup shown as text in JupyterLab: {raw}"

        # run the imports cell, then the dashboard cell (select each in command mode, Ctrl+Enter)
        for i in (imports, index):
            cells.nth(i).locator(".jp-InputPrompt").first.click()
            page.keyboard.press("Control+Enter")
        cell = cells.nth(index)

        dashboard = cell.locator(".jp-OutputArea")
        start = dashboard.get_by_role("button", name="Start", exact=True)
        failed = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                              has_text="Traceback")
        try:
            expect(start.or_(failed).first).to_be_visible(timeout=RUN_CELLS_MS)
        except AssertionError:
            _shot(page, "2-no-dashboard")
            raise AssertionError(f"no dashboard {RUN_CELLS_MS / 1000:.0f} s after running the cells") from None
        if failed.count():
            _shot(page, "2-no-dashboard")
            raise AssertionError("a cell failed before the dashboard appeared:\n" + "\n".join(failed.all_inner_texts()))
        stop = dashboard.get_by_role("button", name="Stop", exact=True)
        expect(dashboard.get_by_role("button", name="Reset", exact=True)).to_be_visible()
        cell.scroll_into_view_if_needed()
        _shot(page, "2-dashboard")
        ran = time.perf_counter() - t0

        status = dashboard.locator(".flowlab-status")
        expect(status).to_have_text(re.compile(r"^\s*Ready"), timeout=10_000)
        picture = dashboard.locator("img.flowlab-picture, .flowlab-picture img").first
        steps = dashboard.locator(".flowlab-steps")
        batch = dashboard.locator(".flowlab-batch select")
        expect(picture).to_be_attached()
        expect(steps).to_be_attached()

        # Start: the picture is redrawn and the step counter counts
        src, count = picture.get_attribute("src"), _step_number(steps)
        clicked = time.perf_counter()
        start.click()  # the first Start in this fresh kernel
        expect(picture).not_to_have_attribute("src", src or "", timeout=STEP_MS)
        first_picture = time.perf_counter() - clicked  # a measurement (printed), not a timed assert
        expect(steps).not_to_have_text(steps.inner_text(), timeout=STEP_MS)
        assert _step_number(steps) > count, "the step counter did not go up after Start"
        _shot(page, "3-training")
        stop.click()
        stopped = _settled(steps)
        _shot(page, "4-stopped")

        # all the data at every step
        # (ipywidgets writes the spaces of option labels as no-break spaces)
        all_data = batch.locator("option", has_text=re.compile(r"^\s*all\sdata\s*$"))
        expect(all_data).to_have_count(1)
        batch.select_option(value=all_data.get_attribute("value"))
        src = picture.get_attribute("src")
        start.click()
        expect(steps).not_to_have_text(re.compile(rf"^\D*{stopped}\b"), timeout=STEP_MS)
        expect(picture).not_to_have_attribute("src", src or "", timeout=STEP_MS)
        expect(batch, "the batch dropdown no longer shows 'all data'").to_have_value(all_data.get_attribute("value"))
        _shot(page, "5-all-data")
        stop.click()
        again = _settled(steps)
        assert again > stopped, f"Start with all data did not carry on from step {stopped} (now {again})"
        assert not re.search(r"error|must be|diverg", status.inner_text(), re.I), status.inner_text()
        _shot(page, "6-stopped")

        # the learning rate: typed into its box, it is the rate the trainer uses, and the screen says so
        rate = dashboard.locator(".flowlab-lr input")
        expect(rate).to_have_value("0.005")
        rate.fill("1e-2")
        rate.press("Enter")
        expect(status).to_have_text(re.compile(r"learning rate is now 0\.01\b"), timeout=STEP_MS)
        expect(rate).to_have_value("0.01")
        assert _in_kernel(lab, "trainer.lr") == "0.01", "the trainer's rate is not the one on the screen"
        rate.fill("fast")  # not a rate: refused with a message, and the box shows the rate in force again
        rate.press("Enter")
        expect(status).to_have_text(re.compile(r"'fast' is not a number"), timeout=STEP_MS)
        expect(rate).to_have_value("0.01")
        assert _in_kernel(lab, "trainer.lr") == "0.01"
        _shot(page, "6-learning-rate")

        # the kernel restarts while the dashboard trains: the dashboard must not go on claiming to train
        start.click()
        expect(status).to_have_text(re.compile(r"Training on"), timeout=STEP_MS)
        page.get_by_role("menuitem", name="Kernel", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Restart Kernel…")).first.click()
        dialog = page.locator(".jp-Dialog", has_text="Restart Kernel?")
        dialog.locator("button.jp-mod-accept", has_text="Restart").click()
        gone = status.locator(".flowlab-gone")
        expect(gone).to_be_visible(timeout=STEP_MS)
        expect(gone).to_contain_text("run this cell again")
        expect(status.locator(".flowlab-live")).to_be_hidden()
        assert "steps/s" not in steps.inner_text(), steps.inner_text()
        expect(page.get_by_role("button", name=re.compile(r"^(?!No Kernel).+ \| Idle$"))).to_be_visible(timeout=60_000)
        cell.scroll_into_view_if_needed()
        _shot(page, "6-restarted")

        # save, as a reader would (the toolbar's save button): the outputs stay in the file, and git sees no change
        page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").first.click()
        saved = lab.root / NOTEBOOK
        try:
            _wait_for(page, lambda: json.loads(saved.read_text())["cells"][index]["outputs"],
                      f"the saved notebook has no outputs {SAVE_S} s after Save", timeout=SAVE_S)
        finally:
            _shot(page, "7-saved")
        kinds = {kind for cell in json.loads(saved.read_text())["cells"] for out in cell.get("outputs", [])
                 for kind in out.get("data", {})}
        assert lab_server.WIDGET_VIEW not in kinds and "text/html" in kinds, f"saved output types: {sorted(kinds)}"
        _wait_for(page, lambda: _git(lab.root, "status", "--porcelain") == "",
                  lambda: "after saving, `git status` lists a notebook that was only run:\n"
                  + _git(lab.root, "status", "--porcelain"))
        assert _git(lab.root, "diff") == "", "git sees the saved outputs"

        # the chapter opened again (a new page, the restarted kernel): no broken widget, the note instead
        page.goto(lab.url(f"lab/tree/{NOTEBOOK}"), wait_until="domcontentloaded")
        expect(cells.nth(index)).to_be_attached(timeout=60_000)
        expect(page.get_by_role("button", name=re.compile(r"^(?!No Kernel).+ \| Idle$"))).to_be_visible(timeout=60_000)
        note = cells.nth(index).locator(".jp-OutputArea", has_text="Live trainer")
        expect(note).to_be_visible(timeout=STEP_MS)
        expect(note).to_contain_text("run this cell")
        note.scroll_into_view_if_needed()
        _shot(page, "8-reopened")
        notebook = page.locator(".jp-NotebookPanel .jp-Notebook")
        for broken in ("Error displaying widget", "model not found", "Loading widget"):
            expect(notebook).not_to_contain_text(broken)
        print(f"JupyterLab: cells ran in {ran:.1f} s, whole test {time.perf_counter() - t0:.1f} s; "
              f"steps {stopped} then {again}; first picture {1000 * first_picture:.0f} ms after the first Start")

        assert not console.outside, f"the page tried to reach the network: {sorted(set(console.outside))}"
        assert not console.unexpected(), f"JavaScript errors in the console: {console.unexpected()}"
    finally:
        context.close()


def _in_kernel(lab, expression: str) -> str:
    """``repr(expression)`` evaluated in the kernel of the open notebook, through a second client of that
    kernel (the notebook itself is not touched)."""
    from jupyter_client import BlockingKernelClient

    with urllib.request.urlopen(lab.url("api/sessions"), timeout=10) as answer:
        sessions = json.load(answer)
    kernel = next(s["kernel"]["id"] for s in sessions if s["path"].endswith(NOTEBOOK))
    client = BlockingKernelClient(connection_file=str(lab.home / "runtime" / f"kernel-{kernel}.json"))
    client.load_connection_file()
    client.start_channels()
    out: list[str] = []
    try:
        client.wait_for_ready(timeout=30)
        reply = client.execute_interactive(
            f"print(repr({expression}))", timeout=30,
            output_hook=lambda m: out.append(m["content"]["text"]) if m["msg_type"] == "stream" else None)
    finally:
        client.stop_channels()
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out).strip()


def _wait_for(page, condition, message, timeout: float = 30.0) -> None:
    """Poll ``condition`` (falsy or raising counts as not yet) until it holds; fail with ``message`` (or its call).

    Waits with ``page.wait_for_timeout``, never ``time.sleep``: the page's requests pass through
    the `Console` route handler, which runs only while Playwright is called.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError, KeyError, IndexError):
            pass
        page.wait_for_timeout(250)
    raise AssertionError(message() if callable(message) else message)


def _settled(steps, timeout: float = 10.0) -> int:
    """The step counter once it stops moving (two reads 0.5 s apart agree); fails if it never does."""
    deadline = time.monotonic() + timeout
    last = _step_number(steps)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _step_number(steps)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the step counter kept moving {timeout:.0f} s after Stop (at {last})")
