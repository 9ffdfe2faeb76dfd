"""The universality chapter's explorer computes in the browser (flowlab/explorer_page.py).

In headless Chromium with the network cut off: its numbers agree with the exact mixture
(Python, float64), every slider changes the picture, a preset shows the flow trained on it and
its step slider replays the training, and away from the presets no flow control is shown.

Needs Debian's `chromium` on the PATH (`apt-get install -y chromium`); the test fails without it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import torch
from browsing import chromium, serve

from flowlab import explorer_page as ep
from flowlab.targets.universality import mixture_1d_cdf, mixture_1d_log_prob

DEMO = ep.Preset("demo", 0.3, (-2.0, 1.0), (0.4, 0.8))
WIDE = ep.Preset("wide", 0.5, (-3.0, 3.0), (0.5, 0.5))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """One explorer (two presets, short trainings) on a page served on 127.0.0.1, open in Chromium."""
    root = tmp_path_factory.mktemp("explorer")
    explorer = ep.explorer([DEMO, WIDE], steps=40, every=10)
    (root / "index.html").write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
                                     f"<title>explorer</title></head><body>{explorer.html()}</body></html>")
    errors, outside = [], []
    with serve(root) as base, chromium() as browser:
        context = browser.new_context(viewport={"width": 760, "height": 1000})
        tab = context.new_page()
        tab.on("pageerror", lambda e: errors.append(str(e)))

        def route(r):
            if "{0.scheme}://{0.netloc}".format(urlsplit(r.request.url)) == base:
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        tab.route("**/*", route)
        tab.goto(f"{base}/index.html", wait_until="load")
        tab.wait_for_selector(".flowlab-explorer svg path")
        yield tab, explorer, errors, outside
        context.close()


def _set(tab, key: str, value: float) -> None:
    tab.locator(f"[id$='-{key}']").fill(str(value))


def _pictures(tab) -> list[str]:
    return tab.evaluate("() => [...document.querySelectorAll('.flowlab-explorer svg')].map(s => s.innerHTML)")


def test_no_errors_and_no_network(page):
    tab, _, errors, outside = page
    assert not errors and not outside, (errors, outside)
    assert tab.locator(".flowlab-explorer svg[role=img]").count() == 3
    for label in tab.evaluate("() => [...document.querySelectorAll('.flowlab-explorer svg')].map(s => s.getAttribute('aria-label'))"):
        assert label and "N(" in label, f"a panel without a description: {label!r}"
    names = tab.evaluate("() => [...document.querySelectorAll('.flowlab-explorer input')]"
                         ".map(i => (i.labels[0] && i.labels[0].textContent) || i.getAttribute('aria-label'))")
    assert all(n and n.strip() for n in names), f"a control without an accessible name: {names}"


@pytest.mark.parametrize("setting", [dict(weight=0.3, loc0=-2.0, loc1=1.0, scale0=0.4, scale1=0.8),
                                     dict(weight=0.85, loc0=-0.5, loc1=3.2, scale0=0.1, scale1=2.0),
                                     dict(weight=0.05, loc0=4.0, loc1=-4.0, scale0=1.5, scale1=0.15)])
def test_numbers_agree_with_the_exact_mixture(page, setting):
    """The page's F, p and f = F^-1(Phi) against float64 Python: F(f(z)) = Phi(z) to 1e-6."""
    tab = page[0]
    for key, value in setting.items():
        _set(tab, key, value)
    mixture = dict(weights=(setting["weight"], 1 - setting["weight"]), locs=(setting["loc0"], setting["loc1"]),
                   scales=(setting["scale0"], setting["scale1"]))
    z = torch.linspace(-3.5, 3.5, 57, dtype=torch.float64)
    x = torch.tensor(tab.evaluate("zs => { const e = document.querySelector('.flowlab-explorer').flowlabExplorer;"
                                  " return zs.map(z => e.map(z)); }", z.tolist()), dtype=torch.float64)
    assert (x[1:] > x[:-1]).all(), "the map must increase"
    gap = (mixture_1d_cdf(x[:, None], **mixture) - torch.special.ndtr(z)).abs().max()
    assert gap < 1e-6, f"F(f(z)) differs from Phi(z) by {float(gap):.2e}"
    grid = torch.linspace(-6, 6, 41, dtype=torch.float64)
    page_p = torch.tensor(tab.evaluate("xs => { const e = document.querySelector('.flowlab-explorer').flowlabExplorer;"
                                       " return xs.map(x => [e.density(x), e.cdf(x)]); }", grid.tolist()),
                          dtype=torch.float64)
    exact_p = mixture_1d_log_prob(grid[:, None], **mixture).exp()
    assert torch.allclose(page_p[:, 0], exact_p, rtol=1e-9, atol=1e-300)
    assert (page_p[:, 1] - mixture_1d_cdf(grid[:, None], **mixture)).abs().max() < 3e-7


def test_every_slider_changes_the_picture(page):
    tab = page[0]
    for key, a, b in [("weight", 0.3, 0.6), ("loc0", -2.0, -1.0), ("loc1", 1.0, 2.5), ("scale0", 0.4, 0.9),
                      ("scale1", 0.8, 0.3)]:
        _set(tab, key, a)
        before = _pictures(tab)
        _set(tab, key, b)
        after = _pictures(tab)
        assert all(x != y for x, y in zip(before, after)), f"moving {key} did not redraw every panel"
        value = tab.locator(f"[id$='-{key}-value']").inner_text()
        assert abs(float(value.replace("\u2212", "-")) - b) < 1e-9, f"{key}'s readout says {value}"


def test_a_preset_replays_its_flow_and_other_mixtures_show_no_flow_control(page):
    tab, explorer = page[0], page[1]
    _set(tab, "weight", 0.65)  # no preset
    assert not tab.locator("[id$='-step']").is_visible() and not tab.locator("[id$='-play']").is_visible()
    assert tab.locator("[id$='-untrained']").is_visible()
    assert tab.locator("svg[id$='-map'] path[stroke-dasharray]").count() == 0
    tab.get_by_role("button", name="wide").click()
    recording = explorer.recordings[1]
    assert tab.locator("[id$='-step']").is_visible()
    label = tab.locator("[id$='-steplabel']").inner_text()
    assert label.startswith(f"step {recording.steps[-1]} of {recording.steps[-1]}")
    assert f"{recording.distance[-1]:.3f}" in label
    last = tab.locator("svg[id$='-map'] path[stroke-dasharray]").get_attribute("d")
    tab.locator("[id$='-step']").fill("0")
    assert tab.locator("svg[id$='-map'] path[stroke-dasharray]").get_attribute("d") != last
    assert tab.locator("[id$='-steplabel']").inner_text().startswith("step 0 of")
    tab.locator("[id$='-play']").click()
    tab.wait_for_function("() => document.querySelector('[id$=\"-steplabel\"]').textContent.startsWith('step 10 ')")


def test_recordings_learn_the_map():
    """The flow's snapshots: an increasing map, closer to the exact one at the end than at the start."""
    rec = ep.record(DEMO, steps=60, every=20)
    assert rec.steps == [0, 20, 40, 60]
    assert all(b > a for m in rec.maps for a, b in zip(m, m[1:]))
    assert rec.distance[-1] < 0.7 * rec.distance[0], rec.distance


@pytest.mark.parametrize("kwargs, word", [(dict(weight=0.33), "weight"), (dict(locs=(-2.0, 4.5)), "locs[1]"),
                                          (dict(scales=(0.4, 0.0)), "scales[1]"), (dict(locs=(1.0,)), "two values")])
def test_presets_off_the_sliders_are_refused(kwargs, word):
    args = dict(name="x", weight=0.3, locs=(-2.0, 1.0), scales=(0.4, 0.8)) | kwargs
    with pytest.raises(ValueError, match=word.replace("[", r"\[").replace("]", r"\]")):
        ep.Preset(**args)
