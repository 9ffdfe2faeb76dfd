"""Every line of every code cell in the book fits in 79 characters.

That is what a code cell shows without scrolling on the site (_ext/static/site.css sizes the
box for it; tests/test_browser.py checks the built pages) and what a notebook shows in a
narrow JupyterLab or Colab pane. `ruff format --line-length 79` formats a notebook this way;
lines it cannot break (long strings, URLs) need a hand.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
WIDTH = 79


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_code_cells_fit_79_characters(path):
    long = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for number, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > WIDTH:
                long.append(f"cell {cell.id} line {number} ({len(line)} characters): {line.strip()[:50]}...")
    assert not long, f"{len(long)} code line(s) longer than {WIDTH} characters in {path.name}:\n" + "\n".join(long[:25])
