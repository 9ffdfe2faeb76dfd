"""Three small fixes that keep every page of the site free of JavaScript errors and failed requests.

1. sphinx-thebe and sphinx-togglebutton register their inline settings twice with Sphinx 7,
   so each page declared `const THEBE_JS_URL` twice (a SyntaxError in the browser).
   Only the first copy of identical scripts is kept.
2. The ipywidgets html-manager typesets widget labels with the MathJax 2 API
   (`MathJax.Hub.Queue`), while the book loads MathJax 3: `static/mathjax2-shim.js` forwards
   those calls to MathJax 3 instead of letting them throw.
3. The html-manager's stylesheet asks for its icon fonts at
   ``@jupyter-widgets/html-manager/dist/`` next to the page, not next to its script: the fonts
   (vendored in ``_vendor/html-manager/fonts`` by ``_vendor/update.sh``) are copied next to
   every folder of pages, so no request fails, from a server or from ``file://``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

STATIC = Path(__file__).parent / "static"
FONTS = Path(__file__).parent.parent / "_vendor" / "html-manager" / "fonts"
FONT_PATH = Path("@jupyter-widgets") / "html-manager" / "dist"


def _add_static(app, config):
    config.html_static_path.append(str(STATIC))


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # an inline script is registered once with filename None and once with ''
        filename = getattr(script, "filename", script) or ""
        key = (str(filename), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def _copy_fonts(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    folders = {p.parent for p in out.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts}
    for folder in folders:
        target = folder / FONT_PATH
        target.mkdir(parents=True, exist_ok=True)
        for font in FONTS.iterdir():
            shutil.copy2(font, target / font.name)


def setup(app):
    app.connect("config-inited", _add_static)
    # before MathJax (priority 500 in Sphinx) and before the widget manager, which myst-nb adds later
    app.add_js_file("mathjax2-shim.js", priority=400)
    app.connect("html-page-context", _dedupe, priority=900)
    app.connect("build-finished", _copy_fonts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
