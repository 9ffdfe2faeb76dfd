"""Small fixes that keep every page of the site light, readable and free of JavaScript errors and
failed requests.

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
4. myst-nb loads require.js and the widget manager (4.4 MB) and inlines the saved widget state on
   every page whose notebook created a widget, even one it never shows (a live dashboard shows
   its note on the site instead). Pages that show no widget get neither.
5. ``static/site.css``: code cells fit 79 characters in the column; printed output wraps; wide
   tables and display equations scroll inside their box (with a shadow at the cut edge); long
   inline code breaks on narrow screens; zoomed figures.
6. ``static/figure-zoom.js``: a figure shown narrower than its natural width opens at full size on
   click (or Enter), and closes with a click or Escape.
"""

from __future__ import annotations

import shutil
from pathlib import Path

STATIC = Path(__file__).parent / "static"
FONTS = Path(__file__).parent.parent / "_vendor" / "html-manager" / "fonts"
FONT_PATH = Path("@jupyter-widgets") / "html-manager" / "dist"


def _add_static(app, config):
    config.html_static_path.append(str(STATIC))


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _page_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    widget_js = {f"_static/{name}" for name in app.config.nb_ipywidgets_js or {}}  # as Sphinx stores them
    shows_widgets = WIDGET_VIEW in context.get("body", "")
    seen, kept = set(), []
    for script in scripts:
        # an inline script is registered once with filename None and once with ''
        filename = str(getattr(script, "filename", script) or "")
        attributes = getattr(script, "attributes", {})
        if not shows_widgets and (filename in widget_js or attributes.get("type") == WIDGET_STATE):
            continue
        key = (filename, tuple(sorted(attributes.items())))
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
    app.add_js_file("figure-zoom.js", loading_method="defer")
    app.add_css_file("site.css")
    app.connect("html-page-context", _page_scripts, priority=900)
    app.connect("build-finished", _copy_fonts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
