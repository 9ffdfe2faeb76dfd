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
