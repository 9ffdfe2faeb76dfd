"""`make lab`: JupyterLab at the repository root; git sees the notebooks without outputs.

    python _ext/lab_server.py [more jupyter lab options]

Widgets live in the kernel that made them: a notebook saved with the views of its widgets (the
live dashboard, a progress bar) shows "Error displaying widget: model not found" in their place
once reopened with another kernel, or none. JupyterLab is therefore started with
`drop_widget_views` as its pre-save hook: the saved outputs keep every other form of a widget's
output (its HTML or text), so a reopened chapter shows that until its cell runs again.

In a git clone it first sets nbstripout as the clone's filter for notebooks (``.gitattributes``
names the filter): whatever JupyterLab saves, git records the notebook stripped of outputs,
execution counts and the details a running kernel adds to its metadata. ``--keep-id`` keeps
the stored cell ids, so a notebook that was only run is, to git, unchanged.

Git does not run the filter when it sees that a file's size changed, so a notebook that was
only run still showed in ``git status`` as modified until ``git add``. JupyterLab is therefore
started with `keep_git_status_clean` as its post-save hook: after each save of a tracked
notebook in which git sees no change through the filter, it lets git record the file's new
size and time (``git add``, which changes nothing that git stores). A notebook with a real
edit is left alone, to be added by its author.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what a running kernel adds to the notebook's metadata (the stored notebooks keep only the name)
LANGUAGE_INFO = [f"metadata.language_info.{k}" for k in
                 ("codemirror_mode", "file_extension", "mimetype", "nbconvert_exporter", "pygments_lexer", "version")]


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check)


def in_git_work_tree(root: Path) -> bool:
    return _git(root, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip() == "true"


def configure_git(root: Path, python: str = sys.executable) -> None:
    """Set nbstripout (run by ``python``) as the notebook filter and diff driver of the clone at ``root``."""
    nbstripout = f'"{python}" -m nbstripout'
    for key, value in (("filter.nbstripout.clean", f"{nbstripout} --keep-id"),
                       ("filter.nbstripout.smudge", "cat"),
                       ("filter.nbstripout.required", "true"),
                       ("filter.nbstripout.extrakeys", " ".join(LANGUAGE_INFO)),
                       ("diff.ipynb.textconv", f"{nbstripout} -t --keep-id")):
        _git(root, "config", key, value)


def keep_git_status_clean(model=None, os_path=None, contents_manager=None, **kwargs) -> None:
    """Jupyter post-save hook: refresh git's record of a saved notebook that git sees unchanged.

    Runs ``git diff --quiet`` on the file (through the nbstripout filter); when it reports no
    difference and the file is tracked, ``git add`` stores the same content again, with the
    file's new size and time. Any failure is logged and never stops the save.
    """
    if not os_path or not str(os_path).endswith(".ipynb"):
        return
    path = Path(os_path)
    log = getattr(contents_manager, "log", None)
    try:
        folder, name = path.parent, path.name
        tracked = _git(folder, "ls-files", "--error-unmatch", "--", name, check=False).returncode == 0
        if tracked and _git(folder, "diff", "--quiet", "--", name, check=False).returncode == 0:
            _git(folder, "add", "--", name)
    except (OSError, subprocess.SubprocessError) as error:
        if log is not None:
            log.warning("git status of %s not refreshed: %s", path, error)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_widget_views(model=None, path=None, contents_manager=None, **kwargs) -> None:
    """Jupyter pre-save hook: remove the widget views from a notebook's outputs before it is written.

    An output that also has another form (``text/html``, ``text/plain``) keeps it; an output
    that was only a widget view is removed. The notebook open in the browser is not changed:
    its widgets stay live until the tab is closed.
    """
    if not model or model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    for cell in model["content"].get("cells", []):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept = []
        for output in outputs:
            data = output.get("data")
            if isinstance(data, dict) and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if not data:
                    continue
            kept.append(output)
        cell["outputs"] = kept


# the server options that install the save hooks (the server imports this module: `server_env`)
SAVE_HOOKS = ["--FileContentsManager.pre_save_hook=lab_server.drop_widget_views",
              "--FileContentsManager.post_save_hook=lab_server.keep_git_status_clean"]


def server_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with this folder on PYTHONPATH, for the save hook's import."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), env.get("PYTHONPATH")) if p)
    return env


def main(argv: list[str]) -> None:
    if in_git_work_tree(ROOT):
        configure_git(ROOT)
        print("nbstripout is this clone's git filter for notebooks: git sees them without outputs.")
    jupyter = str(Path(sys.executable).with_name("jupyter"))
    args = [jupyter, "lab", f"--ServerApp.root_dir={ROOT}", *SAVE_HOOKS]
    if hasattr(os, "getuid") and os.getuid() == 0:
        args.append("--allow-root")  # JupyterLab refuses root without it (containers, Binder-like hosts)
    os.execve(jupyter, args + argv, server_env())


if __name__ == "__main__":
    main(sys.argv[1:])
