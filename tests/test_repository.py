"""The repository has one source, ``repository: url:`` in _config.yml (see _ext/repository.py).

The Colab set-up cells and book/widgets.md's clone lines are generated from it; no other file
names the repository in another way; and a fork changes it by one line and one command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import repository as repo_tool  # _ext/repository.py (tests/bookbuild.py puts _ext/ on the path)
from bookbuild import REPO


def test_every_copy_agrees_with_config():
    assert repo_tool.differences(REPO) == [], "run `python _ext/repository.py` after changing _config.yml"


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    files = []
    for name in names.splitlines():
        path = REPO / name
        if path.is_file() and path.suffix in {".md", ".ipynb", ".yml", ".yaml", ".txt", ".py", ".toml", ".cfg", ""}:
            files.append(path)
    return files


def test_no_file_names_another_copy_of_the_repository():
    """Every GitHub, Binder or Colab address with the repository's owner or name is the configured one."""
    repo = repo_tool.repository(REPO)
    slug = re.compile(r"(?:github\.com|mybinder\.org/v2/gh|colab\.research\.google\.com/github)/([\w.-]+)/([\w.-]+)")
    wrong = []
    for path in _tracked_text_files():
        if path.resolve() == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace")
        for match in slug.finditer(text):
            owner, name = match[1], match[2].removesuffix(".git")
            if (owner == repo.owner or name == repo.name) and (owner, name) != (repo.owner, repo.name):
                wrong.append(f"{path.relative_to(REPO)}: {match[0]}")
    assert not wrong, f"addresses of another copy of the repository (not {repo.url}): {wrong}"


@pytest.fixture
def fork(tmp_path):
    """A copy of the files the tool reads and writes, with _config.yml naming a fork."""
    shutil.copy(REPO / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    for path in [*repo_tool.chapters(REPO), REPO / repo_tool.WIDGETS]:
        shutil.copy(path, tmp_path / "book" / path.name)
    config = tmp_path / "_config.yml"
    old = repo_tool.repository(REPO).url
    text = config.read_text()
    assert text.count(old) == 1, "_config.yml names the repository more than once"
    config.write_text(text.replace(old, "https://github.com/a-teacher/flows-course").replace("branch: main", "branch: pages"))
    return tmp_path


def test_a_fork_sets_one_line_and_runs_the_tool(fork):
    before = {p.name: nbformat.read(p, as_version=4) for p in repo_tool.chapters(fork)}
    assert repo_tool.differences(fork), "the copies should disagree with the fork's _config.yml"
    changed = repo_tool.write(fork)
    assert len(changed) == len(before) + 1
    assert repo_tool.differences(fork) == []
    old = repo_tool.repository(REPO)
    for path in repo_tool.chapters(fork):
        text = path.read_text()
        assert old.url not in text and f"/content/{old.name}" not in text
        notebook = nbformat.read(path, as_version=4)
        cell = repo_tool.colab_cell_of(notebook)
        assert 'REPO = "https://github.com/a-teacher/flows-course"' in cell.source
        assert "--branch pages {REPO}" in cell.source and 'BOOK = "/content/flows-course"' in cell.source
        # only the Colab cell changed
        others = [(c.id, c.source, c.metadata) for c in notebook.cells if c is not cell]
        original = before[path.name]
        kept = [(c.id, c.source, c.metadata) for c in original.cells if c.id != cell.id]
        assert others == kept, f"{path.name}: cells other than the Colab cell changed"
    widgets = (fork / repo_tool.WIDGETS).read_text()
    assert "git clone --branch pages https://github.com/a-teacher/flows-course\ncd flows-course\n" in widgets
    assert old.url not in widgets
    assert repo_tool.write(fork) == [], "a second run changes nothing"


def test_check_fails_on_another_repository(capsys):
    assert repo_tool.main(["--check", "--expect", "https://github.com/someone/else"]) == 1
    assert "set `repository: url:` in _config.yml" in capsys.readouterr().err
    assert repo_tool.main(["--check", "--expect", repo_tool.repository(REPO).url]) == 0


def test_config_url_is_checked(tmp_path):
    (tmp_path / "_config.yml").write_text("repository:\n  url: github.com/no-scheme\n")
    with pytest.raises(ValueError, match="repository: url: must be https://github.com/<owner>/<name>"):
        repo_tool.repository(tmp_path)
