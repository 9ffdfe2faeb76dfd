"""Open every page of the built site in a real browser, with the network cut off.

Each page must load without JavaScript errors, typeset its math, show its figures and saved
widgets, and fetch nothing but the site's own files. This is what a reader without internet
(a classroom, a train, a file:// copy) sees.

Needs Debian's `chromium` on the PATH (`apt-get install -y chromium`); the test fails without it.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from bookbuild import source_of, toc_pages
from browsing import chromium, loaded_weight, serve

DESKTOP, PHONE = (1280, 900), (390, 844)
SMALLEST_SCALE = 0.6  # a figure shown below 60 % of its natural width must open at full size
SMALLEST_FONT_PX = 9.0  # no label of a figure smaller than this, as shown (or once opened)
FONT_KEY = "flowlab:smallest-font-px"  # noted in each matplotlib PNG by _ext/figure_fonts.py


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "page" in metafunc.fixturenames:
        root = Path(metafunc.config.getoption("--book-root")).resolve()
        metafunc.parametrize("page", toc_pages(root))


@pytest.fixture(scope="module")
def site(book):
    """The built site, served on 127.0.0.1; yields its base URL."""
    with serve(book.html) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def _is_local(url: str, base: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    if base.startswith("file:"):
        return parts.scheme == "file"
    return f"{parts.scheme}://{parts.netloc}" == base


class PageVisit:
    """Load one page with the network cut off, and record what went wrong."""

    def __init__(self, browser, base: str, url: str, viewport=(1280, 900)):
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.context.new_page()

        def route(route):
            if _is_local(route.request.url, base):
                route.continue_()
            else:
                self.outside.append(route.request.url)
                route.abort()

        self.page.route("**/*", route)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "response",
            lambda response: response.status >= 400 and self.failed.append(f"{response.status} {response.url}"),
        )
        self.page.on(
            "requestfailed",
            lambda request: _is_local(request.url, base)
            and self.failed.append(f"{request.failure} {request.url}"),
        )
        self.page.goto(url, wait_until="load")
        try:
            self.page.wait_for_load_state("networkidle", timeout=15_000)
        except Exception:  # a page that keeps polling still gets checked below
            pass
        self.typeset()

    def typeset(self) -> None:
        """Wait until MathJax has finished with the page (if the page loads it)."""
        try:
            self.page.wait_for_function(
                "() => !document.querySelector('.math') || (window.MathJax && MathJax.startup"
                " && MathJax.startup.promise)",
                timeout=30_000,
            )
        except Exception as error:
            raise AssertionError("the page has math but MathJax never started (is it served locally?)") from error
        self.page.evaluate(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
            " ? MathJax.startup.promise.then(() => true) : true"
        )

    def unexpected_failures(self) -> list[str]:
        return list(self.failed)  # every request must succeed, the widget manager's icon fonts included

    def close(self) -> None:
        self.context.close()


def _check_math(page) -> dict:
    math = page.evaluate(
        """() => {
            const nodes = [...document.querySelectorAll('.math')];
            return {
                total: nodes.length,
                typeset: nodes.filter(n => n.querySelector('mjx-container')).length,
                containers: document.querySelectorAll('mjx-container').length,
                errors: [...document.querySelectorAll('mjx-merror')].map(n => n.getAttribute('data-mjx-error') || n.textContent),
            };
        }"""
    )
    assert math["typeset"] == math["total"], f"{math['total'] - math['typeset']} of {math['total']} formulas not typeset"
    assert not math["errors"], f"TeX errors on the page: {math['errors']}"
    return math


def test_page_in_browser(browser, site, book, page):
    visit = PageVisit(browser, site, f"{site}/{page}.html")
    try:
        p = visit.page
        assert not visit.outside, f"the page tried to reach the network: {sorted(set(visit.outside))}"
        assert not visit.errors, f"JavaScript errors: {visit.errors}"
        assert not visit.unexpected_failures(), f"local files that failed to load: {visit.unexpected_failures()}"

        _check_math(p)

        images = p.evaluate(
            "() => [...document.querySelectorAll('article img')].map(i => [i.currentSrc || i.src, i.naturalWidth])"
        )
        broken = [src for src, width in images if width == 0]
        assert not broken, f"images that did not load: {broken}"
        if source_of(book.root, page).suffix == ".ipynb":
            assert images, "a chapter page without a single figure"

        views = (book.html / f"{page}.html").read_text().count("application/vnd.jupyter.widget-view+json")
        if views:
            p.wait_for_selector(".jupyter-widgets", state="attached", timeout=30_000)
            rendered = p.locator(".jupyter-widgets").count()
            assert rendered > 0, f"{views} saved widget(s) on the page, none rendered"
            assert not p.locator("text=Error displaying widget").count(), "a saved widget failed to render"
        _check_replays(p)
    finally:
        visit.close()


def _check_replays(page) -> None:
    """Every replay on the page plays: moving its slider changes its picture and its label."""
    players = page.locator(".flowlab-replay")
    for i in range(players.count()):
        uid = players.nth(i).get_attribute("id")
        image, slider = page.locator(f"#{uid}-img"), page.locator(f"#{uid}-slider")
        last, label = image.get_attribute("src"), page.locator(f"#{uid}-label")
        last_label = label.inner_text()
        assert last.startswith("data:image/png;base64,"), f"replay {uid} shows no picture"
        assert page.evaluate(f"() => document.getElementById('{uid}-img').naturalWidth") > 0
        slider.fill("0")  # the first snapshot, before training
        assert image.get_attribute("src") != last, f"moving the slider of replay {uid} did not change its picture"
        first_label = label.inner_text()
        assert first_label and first_label != last_label, f"replay {uid}'s label did not follow its slider"
        assert "0" in first_label, f"replay {uid} starts at {first_label!r}"  # "step 0", "t = 0 (after 0 of ...)"


def test_every_chapter_has_a_replay(book):
    """Each chapter shows the kernel-free replay of its live widget."""
    for page in book.pages:
        if source_of(book.root, page).suffix == ".ipynb":
            assert "flowlab-replay" in (book.html / f"{page}.html").read_text(), f"{page} has no replay"


def test_page_from_disk(browser, book, page):
    """Opened as file:// (no server at all, as from a USB stick), each page still works."""
    visit = PageVisit(browser, "file://", (book.html / f"{page}.html").as_uri())
    try:
        assert not visit.outside, f"the page tried to reach the network: {sorted(set(visit.outside))}"
        assert not visit.errors, f"JavaScript errors: {visit.errors}"
        assert not visit.unexpected_failures(), f"local files that failed to load: {visit.unexpected_failures()}"
        math = _check_math(visit.page)
        if page == book.pages[0]:
            assert math["containers"] > 0, "the intro page shows no typeset math"
    finally:
        visit.close()


# ---------------------------------------------------------------- what a reader sees: figures, code, weight

FIGURES_JS = """() => [...document.querySelectorAll('div.cell_output img')]
    .filter(i => !i.closest('.flowlab-replay, .flowlab-explorer'))
    .map(i => ({src: i.currentSrc || i.src, alt: i.getAttribute('alt') || '', natural: i.naturalWidth,
                shown: i.getBoundingClientRect().width, zoomable: i.classList.contains('flowlab-zoomable')}))"""


def _alt_problem(alt: str) -> str | None:
    """Why an image's alt text does not describe it, or None."""
    text = alt.strip()
    if not text:
        return "no alt text"
    if re.search(r"\.(png|jpe?g|gif|svg|webp)$", text, re.I) or "_images/" in text or text.startswith(("../", "data:")):
        return "alt text is a file name"
    if len(text.split()) < 3:
        return "alt text of fewer than three words"
    return None


def _smallest_font(book, src: str) -> float | None:
    """The smallest text of a figure in pixels of the image (from its PNG metadata), or None."""
    from PIL import Image

    path = book.html / unquote(urlsplit(src).path).lstrip("/")
    if not path.is_file():
        return None
    value = Image.open(io.BytesIO(path.read_bytes())).text.get(FONT_KEY) if path.suffix == ".png" else None
    return None if value in (None, "none") else float(value)


def _figure_problems(book, figures: list[dict]) -> list[str]:
    problems = []
    for f in figures:
        name = Path(urlsplit(f["src"]).path).name[:12]
        alt = _alt_problem(f["alt"])
        if alt:
            problems.append(f"{name}: {alt} ({f['alt'][:40]!r})")
        if not f["natural"]:
            continue
        scale = min(1.0, f["shown"] / f["natural"])
        if scale < SMALLEST_SCALE and not f["zoomable"]:
            problems.append(f"{name}: shown at {scale:.0%} of its width and cannot be opened at full size")
        font = _smallest_font(book, f["src"])
        if font is not None:
            seen = font * scale
            if seen < SMALLEST_FONT_PX and not (f["zoomable"] and font >= SMALLEST_FONT_PX):
                where = f"{seen:.1f} px as shown" + (f", {font:.1f} px at full size" if f["zoomable"] else "")
                problems.append(f"{name}: smallest text {where} (at least {SMALLEST_FONT_PX:.0f} px)")
    return problems


def _record_weight(book, page: str, weight: dict) -> None:
    """Add one page's weight to _build/page-weights.json (all pages after a full run)."""
    path = book.root / "_build" / "page-weights.json"
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    table[page] = weight
    path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


def test_page_reads_well(browser, site, book, page):
    """On a desktop screen: every figure has alt text that describes it, is shown at 60 % of its
    width or more or opens at full size, and its smallest text is at least 9 px as seen; code
    cells fit their box; no control is dead; no table header is empty; and the page's cold
    weight is recorded (the widget manager only where a widget is shown)."""
    visit = PageVisit(browser, site, f"{site}/{page}.html", viewport=DESKTOP)  # a fresh context: nothing cached
    try:
        p = visit.page
        weight = loaded_weight(p)
        html = (book.html / f"{page}.html").read_text()
        weight["replays"] = sum(len(m) for m in re.findall(r'<div id="flowlab-replay-.*?</script>\s*</div>', html, re.S))
        _record_weight(book, page, weight)
        shows_widgets = "application/vnd.jupyter.widget-view+json" in html
        assert shows_widgets or not weight["by_kind"].get("widget manager"), "the widget manager loads on a page without widgets"
        figures = p.evaluate(FIGURES_JS)
        problems = _figure_problems(book, figures)
        if source_of(book.root, page).suffix == ".ipynb":
            fonts = [f for f in figures if _smallest_font(book, f["src"]) is not None]
            assert fonts, "no figure notes its font size: was the book built by _ext/build_book.py?"
        overflowing = p.evaluate(
            """() => [...document.querySelectorAll('article div.highlight pre')]
                 .filter(e => e.scrollWidth > e.clientWidth + 1)
                 .map(e => e.textContent.split('\\n').reduce((a, b) => a.length >= b.length ? a : b).slice(0, 60))"""
        )
        problems += [f"code or output wider than its box: {line!r}" for line in overflowing]
        dead = p.evaluate(
            "() => [...document.querySelectorAll('.jupyter-widgets input, .jupyter-widgets button, .jupyter-widgets select')]"
            ".map(e => e.getAttribute('aria-label') || e.textContent || e.title || e.type)"
        )
        problems += [f"a widget control that needs a kernel: {name!r}" for name in dead]
        empty = p.evaluate("() => [...document.querySelectorAll('article th')].filter(th => !th.textContent.trim())"
                           ".map(th => th.closest('table').innerText.trim().split('\\n')[0].slice(0, 50))")
        problems += [f"a table header cell without text (screen readers announce nothing): {row!r}" for row in empty]
        zoomable = p.locator("img.flowlab-zoomable")
        if zoomable.count():
            natural = zoomable.first.evaluate("i => i.naturalWidth")
            zoomable.first.click()
            big = p.locator(".flowlab-zoom img")
            assert abs(big.evaluate("i => i.getBoundingClientRect().width") - natural) <= 1, "the figure did not open at full size"
            p.keyboard.press("Escape")
            assert p.locator(".flowlab-zoom").count() == 0, "Escape did not close the full-size figure"
        _check_explorers(p)
        assert not problems, f"{len(problems)} problem(s) on {page}:\n" + "\n".join(problems)
    finally:
        visit.close()


def _check_explorers(page) -> None:
    """Every explorer on the page computes in the browser: each slider redraws its panels."""
    explorers = page.locator(".flowlab-explorer")
    for i in range(explorers.count()):
        root = explorers.nth(i)
        for slider in root.locator("input[type=range]:not([id$='-step'])").all():
            before = root.locator("svg").evaluate_all("ss => ss.map(s => s.innerHTML)")
            low, high = float(slider.get_attribute("min")), float(slider.get_attribute("max"))
            slider.fill(str(high if float(slider.input_value()) < (low + high) / 2 else low))
            after = root.locator("svg").evaluate_all("ss => ss.map(s => s.innerHTML)")
            assert before != after, f"moving the explorer's slider {slider.get_attribute('id')} did not change the picture"


def test_page_on_a_phone(browser, site, book, page):
    """At 390 px (a phone) nothing makes the page scroll sideways."""
    visit = PageVisit(browser, site, f"{site}/{page}.html", viewport=PHONE)
    try:
        wide = visit.page.evaluate(
            """() => { const w = document.documentElement.clientWidth;
                return document.documentElement.scrollWidth > w ? [...document.querySelectorAll('article *')]
                  .filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest('pre, mjx-container, .output, .flowlab-replay, table'))
                  .slice(0, 3).map(e => e.tagName + ': ' + e.textContent.slice(0, 60)) : []; }"""
        )
        width = visit.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE[0], f"the page is {width} px wide on a {PHONE[0]} px screen; widest: {wide}"
    finally:
        visit.close()
