#!/usr/bin/env bash
# Re-create the vendored JavaScript that the built site serves itself, so that
# pages render from file:// or a classroom network with no internet access.
# Needs npm (it only downloads the three packages below from the npm registry).
#   MathJax 3 (math), require.js and the ipywidgets html-manager (saved widget state).
# Bump a version here, run `bash _vendor/update.sh`, rebuild the book and run the browser test.
set -euo pipefail

HTML_MANAGER=1.0.6   # must match the version myst-nb expects for ipywidgets 8 (nb_ipywidgets_js)
REQUIREJS=2.3.4
MATHJAX=3.2.2

here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "@jupyter-widgets/html-manager@$HTML_MANAGER" "requirejs@$REQUIREJS" "mathjax@$MATHJAX" >/dev/null
for tgz in *.tgz; do
    mkdir -p "${tgz%.tgz}"
    tar -xzf "$tgz" -C "${tgz%.tgz}"
done

rm -rf "$here/html-manager" "$here/requirejs" "$here/mathjax"
mkdir -p "$here/html-manager" "$here/requirejs" "$here/mathjax/output/chtml/fonts"

# The AMD bundle of the widget manager (self-contained for the built-in widgets).
cp "jupyter-widgets-html-manager-$HTML_MANAGER/package/dist/embed-amd.js" "$here/html-manager/"
cp "jupyter-widgets-html-manager-$HTML_MANAGER/package/LICENSE" "$here/html-manager/"
# Its stylesheet's icon fonts (Font Awesome), which it asks for next to each page: the book
# extension in _ext/site_fixes.py copies them there.
mkdir -p "$here/html-manager/fonts"
cp jupyter-widgets-html-manager-$HTML_MANAGER/package/dist/*.woff2 \
   jupyter-widgets-html-manager-$HTML_MANAGER/package/dist/*.woff \
   jupyter-widgets-html-manager-$HTML_MANAGER/package/dist/*.ttf "$here/html-manager/fonts/"
cp "requirejs-$REQUIREJS/package/require.js" "$here/requirejs/"
# MathJax: TeX input with every extension built in (nothing is fetched lazily),
# CommonHTML output, and the web fonts that output loads relative to the script.
cp "mathjax-$MATHJAX/package/es5/tex-chtml-full.js" "$here/mathjax/"
cp -r "mathjax-$MATHJAX/package/es5/output/chtml/fonts/woff-v2" "$here/mathjax/output/chtml/fonts/"
cp "mathjax-$MATHJAX/package/LICENSE" "$here/mathjax/"

du -sh "$here"
