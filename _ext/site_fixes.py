"""Two small fixes that keep every page of the site free of JavaScript errors.

1. sphinx-thebe and sphinx-togglebutton register their inline settings twice with Sphinx 7,
   so each page declared `const THEBE_JS_URL` twice (a SyntaxError in the browser).
   Only the first copy of identical scripts is kept.
2. The ipywidgets html-manager typesets widget labels with the MathJax 2 API
   (`MathJax.Hub.Queue`), while the book loads MathJax 3: `static/mathjax2-shim.js` forwards
   those calls to MathJax 3 instead of letting them throw.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"


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


def setup(app):
    app.connect("config-inited", _add_static)
    # before MathJax (priority 500 in Sphinx) and before the widget manager, which myst-nb adds later
    app.add_js_file("mathjax2-shim.js", priority=400)
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
