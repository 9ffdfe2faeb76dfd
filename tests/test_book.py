"""The book builds from a clean checkout, executing every chapter, with zero warnings."""

from __future__ import annotations

import json

import repository as repo_tool  # _ext/repository.py: the repository named in _config.yml
from bookbuild import source_of, toc_pages, warnings_in


def test_every_toc_entry_has_a_source(book):
    for page in book.pages:
        source_of(book.root, page)  # raises with the missing name


def test_build_has_no_warnings(book):
    assert warnings_in(book.log) == []
    assert "build succeeded" in book.log


def test_every_toc_page_is_built(book):
    missing = [page for page in book.pages if not (book.html / f"{page}.html").is_file()]
    assert not missing, f"pages in _toc.yml without HTML output: {missing}"
    assert (book.html / "index.html").is_file(), "no index.html at the root of the site"


def test_chapters_were_executed(book):
    """The build executed every notebook (in parallel, _ext/build_book.py) and the site took
    each one's outputs from that execution: myst-nb found every chapter in the fresh cache."""
    notebooks = [page for page in book.pages if source_of(book.root, page).suffix == ".ipynb"]
    times = json.loads((book.root / "_build" / "execution.json").read_text())["seconds"]
    not_run = [page for page in notebooks if page.split("/")[-1] not in times]
    assert not not_run, f"notebooks that the build did not execute: {not_run}"
    from_cache = [page for page in notebooks if f"{page}.ipynb: Using cached notebook" in book.log]
    assert from_cache == notebooks, "chapters the site did not take from the build's execution: " + str(
        sorted(set(notebooks) - set(from_cache)))
    executed = book.root / "_build" / "jupyter_execute"
    missing = [page for page in notebooks if not (executed / f"{page}.ipynb").is_file()]
    assert not missing, f"executed notebooks missing from _build/jupyter_execute: {missing}"


def test_vendored_scripts_are_in_the_site(book):
    static = book.html / "_static"
    for name in ("mathjax/tex-chtml-full.js", "requirejs/require.js", "html-manager/embed-amd.js"):
        assert (static / name).is_file(), f"_static/{name} missing: is _vendor/ listed in html_static_path?"
    assert not (static / "update.sh").exists(), "_vendor/update.sh should not be copied into the site"


def test_pages_do_not_reference_cdns(book):
    """Every script and stylesheet comes from the site itself (the browser test proves it loads).

    The one CDN address left is sphinx-thebe's, which is fetched only if a reader presses a
    "live code" button; the book does not enable that button (it offers Binder and Colab instead).
    """
    for page in toc_pages(book.root):
        html = (book.html / f"{page}.html").read_text().replace("https://unpkg.com/thebe@", "")
        for cdn in ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "unpkg.com", "polyfill.io"):
            assert cdn not in html, f"{page}.html references {cdn}"


def test_launch_buttons_point_at_the_repository(book):
    repo = repo_tool.repository(book.root)
    slug = f"{repo.owner}/{repo.name}"
    notebooks = [page for page in book.pages if source_of(book.root, page).suffix == ".ipynb"]
    for page in notebooks:
        html = (book.html / f"{page}.html").read_text()
        assert f"mybinder.org/v2/gh/{slug}/{repo.branch}?urlpath=lab/tree/{page}.ipynb" in html
        assert f"colab.research.google.com/github/{slug}/blob/{repo.branch}/{page}.ipynb" in html
        assert "/./" not in html.split("mybinder.org", 1)[1].split('"', 1)[0]

