"""Colab's set-up cell: one cell in every chapter, installing the pinned versions of requirements.txt.

Each chapter's first code cell (tagged ``remove-cell``, so the site hides it) does nothing
outside Colab. It is generated from _config.yml by _ext/repository.py. On Colab it clones the
repository named there, installs the part of ``requirements.txt`` that the
chapters import (the lines above "# Building") together with flowlab, and moves into ``book/``.
Here the cell runs in IPython as it would on Colab: ``google.colab`` is a stand-in module, the
clone is a copy of this checkout's ``requirements.txt``, ``sed`` runs for real, and ``%pip`` and
``%cd`` are recorded instead of carried out.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import types
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from repository import colab_cell, repository  # _ext/repository.py: the cell, from _config.yml
from test_binder import requirement_lines  # the one parser of requirements files

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
MARKER = "# Building"
COLAB_BOOK = f"/content/{repository(ROOT).name}"
COLAB_LIST = "/tmp/flowlab-chapters.txt"
# imported by IPython's own kernel, not by a chapter
NOT_CHAPTER_IMPORTS = {"IPython"}


def _source(cell) -> str:
    return "".join(cell["source"])


def colab_cells() -> dict[str, dict]:
    """Each chapter's Colab set-up cell (the cells that mention ``google.colab``)."""
    found = {}
    for path in CHAPTERS:
        cells = [c for c in json.loads(path.read_text())["cells"] if "google.colab" in _source(c)]
        assert len(cells) == 1, f"{path.name}: {len(cells)} cells mention google.colab, expected one"
        found[path.name] = cells[0]
    return found


def chapter_pins() -> list[str]:
    """The requirement lines of requirements.txt above the "# Building" line."""
    text = (ROOT / "requirements.txt").read_text()
    assert f"\n{MARKER}" in text, f"requirements.txt has no line starting {MARKER!r}"
    return requirement_lines(text.split(f"\n{MARKER}")[0])


def test_one_colab_cell_in_every_chapter():
    cells = colab_cells()
    expected = colab_cell(repository(ROOT))
    for name, cell in cells.items():
        assert cell["cell_type"] == "code" and "remove-cell" in cell["metadata"].get("tags", []), name
        assert _source(cell) == expected, f"{name}'s Colab cell is not the one for _config.yml: run _ext/repository.py"
    assert f'REPO = "{repository(ROOT).url}"' in expected


class FakeColab:
    """IPython with ``google.colab`` present and the shell commands, ``%pip`` and ``%cd`` captured."""

    def __init__(self, tmp_path: Path):
        from IPython.core.interactiveshell import InteractiveShell

        self.book, self.list = tmp_path / "clone", tmp_path / "chapters.txt"
        self.pip, self.cd, self.commands, self.widgets = [], [], [], 0
        self.shell = InteractiveShell.instance()
        self.shell.register_magic_function(lambda line: self.pip.append(line), "line", "pip")
        self.shell.register_magic_function(lambda line: self.cd.append(line), "line", "cd")
        self.shell.system = self.system

    def system(self, command: str) -> None:
        command = self.shell.var_expand(command, depth=1)  # as IPython's own `!` does
        self.commands.append(command)
        if " git clone " in command:  # the clone: this checkout's requirements.txt is all the cell reads
            assert command.startswith(f"test -d {self.book} ||"), "the cell clones again over an existing clone"
            (self.book / "book").mkdir(parents=True)
            shutil.copy(ROOT / "requirements.txt", self.book / "requirements.txt")
        else:
            subprocess.run(["bash", "-c", command], check=True)

    def run(self, source: str, colab: bool) -> None:
        source = source.replace(COLAB_BOOK, str(self.book)).replace(COLAB_LIST, str(self.list))
        google = types.ModuleType("google")
        google.colab = types.ModuleType("google.colab")
        google.colab.output = types.SimpleNamespace(enable_custom_widget_manager=self.enable_widgets)
        fakes = {"google": google, "google.colab": google.colab} if colab else {}
        saved = {k: sys.modules.get(k) for k in fakes}
        sys.modules.update(fakes)
        try:
            result = self.shell.run_cell(source, store_history=False)
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
        result.raise_error()

    def enable_widgets(self) -> None:
        self.widgets += 1


@pytest.fixture
def colab(tmp_path):
    fake = FakeColab(tmp_path)
    try:
        yield fake
    finally:
        fake.shell.magics_manager.magics["line"].pop("pip", None)
        fake.shell.magics_manager.magics["line"].pop("cd", None)
        type(fake.shell).clear_instance()


def test_colab_cell_does_nothing_elsewhere(colab):
    colab.run(_source(next(iter(colab_cells().values()))), colab=False)
    assert colab.commands == colab.pip == colab.cd == [] and colab.widgets == 0


def test_colab_cell_installs_the_chapter_pins_and_flowlab(colab):
    colab.run(_source(next(iter(colab_cells().values()))), colab=True)
    assert len(colab.pip) == 1, colab.pip
    args = colab.pip[0].split()
    assert args[:3] == ["install", "-q", "-r"] and args[4:] == [str(colab.book)], f"%pip {colab.pip[0]}"
    installed = requirement_lines(Path(args[3]).read_text())
    assert installed == chapter_pins(), f"Colab installs {installed}, requirements.txt pins {chapter_pins()}"
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][^ ]*", pin) for pin in installed), installed
    assert colab.cd == [f"{colab.book}/book"], "the chapter does not run in the book's folder"
    assert colab.widgets == 1, "widget support is not turned on"


def _imported_modules() -> set[str]:
    """Top-level modules imported by the chapters' code cells and by flowlab."""
    names = set()
    sources = [p.read_text() for p in (ROOT / "flowlab").rglob("*.py")]
    for path in CHAPTERS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and "google.colab" not in _source(cell):
                sources.append("\n".join(line for line in _source(cell).splitlines()
                                         if not line.lstrip().startswith(("%", "!"))))
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_chapter_pins_cover_every_package_the_chapters_import():
    pinned = {re.split(r"[=<>!~ ]", pin)[0].lower().replace("_", "-") for pin in chapter_pins()}
    distributions = packages_distributions()
    missing = {}
    for module in sorted(_imported_modules() - NOT_CHAPTER_IMPORTS - {"flowlab"}):
        if module in sys.stdlib_module_names:
            continue
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        assert dists, f"no installed distribution provides the imported module {module!r}"
        if not dists & pinned:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not pinned above {MARKER!r} in requirements.txt: {missing}"
