"""The book's repository has one source: ``repository: url:`` (and ``branch:``) in _config.yml.

The launch buttons (Binder, Colab) and the repository button read _config.yml themselves.
Everything else that names the repository is generated from it here:

* the Colab set-up cell of every chapter (its first code cell, tagged ``remove-cell``): on Colab
  it clones the repository and installs the chapters' pins;
* the ``git clone`` and ``cd`` lines of book/widgets.md.

A fork changes ``repository: url:`` in _config.yml, then runs::

    python _ext/repository.py           # rewrite the cells and lines above from _config.yml
    python _ext/repository.py --check   # print what disagrees with _config.yml; exit 1 if anything

tests/test_repository.py runs the check, so a copy that drifts fails the tests, and the publish
workflow fails when _config.yml names another repository than the one it runs in.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
WIDGETS = Path("book") / "widgets.md"
COLAB_MARK = "google.colab"
_CLONE = re.compile(r"^git clone [^\n]*\ncd [^\n]*$", re.MULTILINE)


@dataclass(frozen=True)
class Repository:
    """The repository named in _config.yml: its URL, the branch the site is built from, and the
    owner and name in that URL (``https://github.com/<owner>/<name>``)."""

    url: str
    branch: str

    @property
    def owner(self) -> str:
        return self.url.rstrip("/").split("/")[-2]

    @property
    def name(self) -> str:
        return self.url.rstrip("/").split("/")[-1].removesuffix(".git")


def repository(root: Path = ROOT) -> Repository:
    """The repository of _config.yml (``repository: url:`` and ``branch:``, default main)."""
    config = yaml.safe_load((Path(root) / "_config.yml").read_text())
    section = config.get("repository") or {}
    url = str(section.get("url", "")).rstrip("/")
    if not re.fullmatch(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", url):
        raise ValueError(
            f"_config.yml: repository: url: must be https://github.com/<owner>/<name>, got {url!r}"
        )
    return Repository(url, str(section.get("branch") or "main"))


def colab_cell(repo: Repository) -> str:
    """The source of every chapter's Colab set-up cell, for ``repo``."""
    return f"""\
# On Colab: install the book's pinned packages and flowlab, and work in the
# book's folder (elsewhere this cell does nothing). If Colab then asks to
# restart the session, restart it and run this cell again.
import sys

if "google.colab" in sys.modules:
    REPO = "{repo.url}"
    BOOK = "/content/{repo.name}"
    !test -d {{BOOK}} || git clone -q --depth 1 --branch {repo.branch} {{REPO}} {{BOOK}}
    # the pins of requirements.txt that the chapters need: its lines above
    # "# Building"
    !sed '/^# Building/q' {{BOOK}}/requirements.txt > /tmp/flowlab-chapters.txt
    %pip install -q -r /tmp/flowlab-chapters.txt {{BOOK}}
    %cd {{BOOK}}/book
    from google.colab import output

    output.enable_custom_widget_manager()"""


def clone_lines(repo: Repository) -> str:
    """The two lines of book/widgets.md that clone the repository and enter it."""
    branch = "" if repo.branch == "main" else f" --branch {repo.branch}"
    return f"git clone{branch} {repo.url}\ncd {repo.name}"


def chapters(root: Path = ROOT) -> list[Path]:
    return sorted((Path(root) / "book").glob("*.ipynb"))


def colab_cell_of(notebook) -> nbformat.NotebookNode:
    """A chapter's Colab set-up cell: its first code cell, which must mention google.colab."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if not code or COLAB_MARK not in code[0].source:
        raise ValueError("the first code cell is not the Colab set-up cell (it does not mention google.colab)")
    return code[0]


def differences(root: Path = ROOT) -> list[str]:
    """What disagrees with _config.yml's repository, one line each (empty when all agree)."""
    root, repo = Path(root), repository(root)
    found = []
    for path in chapters(root):
        try:
            cell = colab_cell_of(nbformat.read(path, as_version=4))
        except ValueError as error:
            found.append(f"{path.relative_to(root)}: {error}")
            continue
        if cell.source != colab_cell(repo):
            found.append(f"{path.relative_to(root)}: the Colab set-up cell differs from the one for {repo.url}")
        if "remove-cell" not in cell.metadata.get("tags", []):
            found.append(f"{path.relative_to(root)}: the Colab set-up cell is not tagged remove-cell")
    text = (root / WIDGETS).read_text()
    blocks = _CLONE.findall(text)
    if blocks != [clone_lines(repo)]:
        found.append(f"{WIDGETS}: expected the lines {clone_lines(repo)!r}, found {blocks}")
    return found


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite the Colab cells and widgets.md's clone lines from _config.yml; returns the files changed."""
    root, repo = Path(root), repository(root)
    changed = []
    for path in chapters(root):
        notebook = nbformat.read(path, as_version=4)
        cell = colab_cell_of(notebook)
        tags = cell.metadata.setdefault("tags", [])
        if cell.source != colab_cell(repo) or "remove-cell" not in tags:
            cell.source = colab_cell(repo)
            if "remove-cell" not in tags:
                tags.append("remove-cell")
            nbformat.write(notebook, path)
            changed.append(path)
    widgets = root / WIDGETS
    text = widgets.read_text()
    if len(_CLONE.findall(text)) != 1:
        raise ValueError(f"{WIDGETS} must hold one `git clone` line followed by a `cd` line")
    new = _CLONE.sub(lambda _: clone_lines(repo), text)
    if new != text:
        widgets.write_text(new)
        changed.append(widgets)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report what disagrees with _config.yml")
    parser.add_argument("--expect", metavar="URL", help="also fail unless _config.yml names this repository")
    args = parser.parse_args(argv)
    repo = repository()
    problems = differences() if args.check else []
    if args.expect and args.expect.rstrip("/").lower() != repo.url.lower():
        problems.append(
            f"_config.yml names {repo.url}, but this is {args.expect}: set `repository: url:` in "
            "_config.yml and run `python _ext/repository.py`"
        )
    if not args.check:
        for path in write():
            print(f"rewrote {path.relative_to(ROOT)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
