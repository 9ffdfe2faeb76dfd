"""Two replay players on one page, in a real browser with the network cut off.

The page is served on 127.0.0.1 from a thread; every request to any other host is aborted and
recorded. Moving a player's slider must change its picture (and only its own), play/pause must
run, and the page must raise no JavaScript error and ask for nothing outside.

Needs Debian's `chromium` on the PATH (`apt-get install -y chromium`); the test fails without it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from browsing import chromium, serve

import flowlab as fl
import flowlab.replay as replay


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    """A page with two small players, served on 127.0.0.1."""
    root = tmp_path_factory.mktemp("replays")
    players = []
    for name, sampler in [("moons", fl.targets.moons), ("circles", fl.targets.circles)]:
        flow = fl.Flow(fl.MAF(2, hidden=(16, 16), layers=2), fl.StandardNormal(2))
        players.append(replay.record(flow, sampler(500, seed=0), steps=30, every=10, lr=2e-2, size=64, grid=16,
                                     title=name).html())
    page = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>two players</title></head><body>'
    page += "".join(players) + "</body></html>"
    (root / "index.html").write_text(page, encoding="utf-8")
    with serve(root) as base:
        yield f"{base}/index.html", root / "index.html"


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def test_two_players_work_offline(browser, page_url):
    page_url, _ = page_url
    base = "{0.scheme}://{0.netloc}".format(urlsplit(page_url))
    errors: list[str] = []
    outside: list[str] = []
    context = browser.new_context()
    page = context.new_page()

    def route(route):
        url = route.request.url
        if url.startswith(base + "/") or urlsplit(url).scheme in ("data", "blob", "about"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    try:
        page.goto(page_url, wait_until="load")
        players = page.locator(".flowlab-replay")
        assert players.count() == 2
        ids = [players.nth(i).get_attribute("id") for i in range(2)]
        assert ids[0] != ids[1]
        first, second = (page.locator(f"#{i}-img") for i in ids)
        slider = page.locator(f"#{ids[0]}-slider")
        label = page.locator(f"#{ids[0]}-label")
        assert slider.input_value() == "3"  # the last snapshot is shown first
        last_src, other_src = first.get_attribute("src"), second.get_attribute("src")
        assert last_src.startswith("data:image/png;base64,")

        slider.fill("0")  # moves the slider and fires its input event
        assert first.get_attribute("src") != last_src
        assert label.inner_text().startswith("step 0")
        assert first.get_attribute("alt") == "moons, snapshot at " + label.inner_text(), "the text alternative follows"
        assert second.get_attribute("src") == other_src, "the players must not share state"
        slider.fill("2")
        assert label.inner_text().startswith("step 20")
        marker = page.locator(f"#{ids[0]}-marker")
        assert float(marker.get_attribute("x1")) < float(page.locator(f"#{ids[1]}-marker").get_attribute("x1"))

        page.locator(f"#{ids[0]}-play").click()  # plays to the end, then stops
        page.wait_for_function(f"() => document.getElementById('{ids[0]}-slider').value === '3'", timeout=5000)
        assert first.get_attribute("src") == last_src
        assert all(page.evaluate(f"() => document.getElementById('{i}-img').naturalWidth") > 0 for i in ids)
    finally:
        context.close()
    assert not errors, errors
    assert not outside, f"requests to other hosts: {outside}"


def test_player_works_from_a_file(browser, page_url):
    """The same page opened from disk (file://), as a reader of a downloaded site would."""
    _, path = page_url
    errors: list[str] = []
    outside: list[str] = []
    context = browser.new_context()
    page = context.new_page()

    def route(route):
        if urlsplit(route.request.url).scheme in ("file", "data"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        player = page.locator(".flowlab-replay").nth(1).get_attribute("id")
        image = page.locator(f"#{player}-img")
        before = image.get_attribute("src")
        page.locator(f"#{player}-slider").fill("1")
        assert image.get_attribute("src") != before
        assert page.locator(f"#{player}-label").inner_text().startswith("step 10")
    finally:
        context.close()
    assert not errors, errors
    assert not outside, f"requests to other hosts: {outside}"
