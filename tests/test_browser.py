"""Open every page of the built site in a real browser, with the network cut off.

Each page must load without JavaScript errors, typeset its math, show its figures and saved
widgets, and fetch nothing but the site's own files. This is what a reader without internet
(a classroom, a train, a file:// copy) sees.

Needs Debian's `chromium` on the PATH (`apt-get install -y chromium`); the test fails without it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bookbuild import source_of, toc_pages
from browsing import chromium, serve



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

    def __init__(self, browser, base: str, url: str):
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
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
        last = image.get_attribute("src")
        assert last.startswith("data:image/png;base64,"), f"replay {uid} shows no picture"
        assert page.evaluate(f"() => document.getElementById('{uid}-img').naturalWidth") > 0
        slider.fill("0")  # the first snapshot, before training
        assert image.get_attribute("src") != last, f"moving the slider of replay {uid} did not change its picture"
        assert page.locator(f"#{uid}-label").inner_text().startswith("step 0")


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
