"""Binder installs exactly the pinned set: binder/requirements.txt repeats requirements.txt.

repo2docker copies binder/requirements.txt into the image on its own (before the rest of the
repository), so it cannot include ../requirements.txt; this test keeps the two copies equal.
The only differences allowed: Binder's CPU torch index line, and flowlab itself, which
binder/postBuild installs after the requirements.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file's text, comments and blank lines dropped, in order."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def test_binder_pins_equal_the_pinned_set():
    main = requirement_lines((ROOT / "requirements.txt").read_text())
    binder = requirement_lines((ROOT / "binder" / "requirements.txt").read_text())
    assert CPU_INDEX in binder, "binder/requirements.txt must take torch from the CPU wheel index"
    assert "-e ." in main and "-e ." not in binder
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()
    extra = sorted(set(binder) - set(main) - {CPU_INDEX})
    missing = sorted(set(main) - set(binder) - {"-e ."})
    assert not extra and not missing, f"binder/requirements.txt differs: extra {extra}, missing {missing}"
    assert all("==" in r for r in main if not r.startswith("-")), "every requirement is pinned exactly"


def test_binder_sets_the_save_hook_of_make_lab(tmp_path):
    """postBuild writes a Jupyter server config whose pre-save hook is make lab's: a notebook
    saved on Binder keeps no widget views (no "Error displaying widget" when reopened)."""
    import re
    import subprocess
    import sys

    from traitlets.config import Config

    script = (ROOT / "binder" / "postBuild").read_text()
    hook_part = script[script.index('mkdir -p "${HOME}/.jupyter"'):]
    subprocess.run(["bash", "-c", hook_part], cwd=ROOT, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                   check=True)
    config_file = tmp_path / ".jupyter" / "jupyter_server_config.py"
    c = Config()
    saved = list(sys.path)
    try:
        exec(config_file.read_text(), {"c": c})
        hook = c.FileContentsManager.pre_save_hook
        module, name = hook.rsplit(".", 1)
        assert re.fullmatch(r"lab_server\.drop_widget_views", hook)
        drop = getattr(__import__(module), name)
    finally:
        sys.path[:] = saved
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}}}]}]}
    drop(model={"type": "notebook", "content": nb})
    assert nb["cells"][0]["outputs"] == []
