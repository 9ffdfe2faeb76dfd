"""Build the nbgrader course of the book: one assignment per chapter, graded by hidden tests.

``python _ext/classroom/classroom.py [--out _build/classroom] [--chapters circles,linear]``
(``make classroom``) reads the chapters in ``book/`` and writes a course folder:

- ``source/<chapter>/<chapter>.ipynb``, the instructor version of each chapter's graded
  exercises: a locked set-up cell, and per exercise its text, an answer cell (the stub, then the
  solution between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) and a grade cell worth one
  point. The grade cell shows the student a self-check, and holds between ``### BEGIN HIDDEN
  TESTS`` and ``### END HIDDEN TESTS`` a test that draws its inputs when it runs and computes the
  right answer itself, with a copy of the checkers' helpers (``flowlab/exercises/_feedback.py``):
  nothing a student can import or rebind decides the grade. The numbers of the numeric exercises
  differ from the book's (``variants.py``), so the book's solutions are not the answers;
- ``release/<chapter>/``, the student versions (``nbgrader generate_assignment``: solutions
  and hidden tests removed), and ``gradebook.db`` with the assignments and no student;
- ``nbgrader_config.py`` (its root is the folder it sits in, so a copied course works where it
  is), ``flowlab_grading.py`` (the autograde preprocessors: earned verdicts and
  ``tamper_report.csv``), ``requirements-hub.txt`` (what a hub image needs).

Then it checks the grading in a scratch copy, which it deletes: the solutions score full marks,
blank student versions zero, and a copy that cheats in every answer cell (rebinds the checkers,
turns the next cell into ``pass``) zero, with every cheating cell in the tamper report. The last
line it prints reads ``classroom: ...``. An existing course that holds submissions is never
deleted: the build stops, or with ``--update`` regenerates only the source and release versions.
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import flowlab_grading  # noqa: E402
from variants import BY_LABEL, HELPERS, SETUP  # noqa: E402

COURSE = "flowlab"
DIRECTIVE = re.compile(r"```\{(exercise-start|exercise-end|solution-start|solution-end)\}[ \t]*([^\n]*)")
MADE = ("source", "release", "gradebook.db", "nbgrader_config.py", "flowlab_grading.py", "requirements-hub.txt")
STUDENT_DIRS = ("submitted", "autograded", "feedback")


# --------------------------------------------------------------------------------------------
# the chapters' exercises
# --------------------------------------------------------------------------------------------


def _is_check_call(node: ast.stmt) -> bool:
    """A top-level statement that calls a checker: ``...check_something(...)``."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    f = node.value.func
    return (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")).startswith("check_")


def _split(code: str) -> tuple[str, str | None]:
    """``code`` before its first checker call, and that call's source (``None`` without one)."""
    lines = code.splitlines()
    for node in ast.parse(code).body:
        if _is_check_call(node):
            return "\n".join(lines[: node.lineno - 1]).rstrip(), ast.get_source_segment(code, node).rstrip(";")
    return code.rstrip(), None


def exercises(path: Path) -> tuple[str, list[dict]]:
    """The chapter's title and its exercises: dicts with ``label``, ``title``, ``text``
    (markdown), ``stub`` and ``solution`` (code before the checker call) and ``check`` (the
    call), as the chapter's exercise and solution cells hold them."""
    nb = nbformat.read(path, as_version=4)
    title = next((c.source.splitlines()[0].lstrip("# ") for c in nb.cells if c.cell_type == "markdown"), path.stem)
    found, state, current = [], None, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            marks = list(DIRECTIVE.finditer(cell.source))
            for m in marks:
                kind, arg = m.group(1), m.group(2).strip()
                if kind == "exercise-start":
                    label = re.search(r":label:\s*(\S+)", cell.source[m.end():])
                    body = re.sub(r"\A\s*(:[a-z-]+:[^\n]*\n)*\s*```\s*", "", cell.source[m.end():])
                    current = {"label": label.group(1) if label else None, "title": arg, "stub": None,
                               "solution": None, "check": None, "text": DIRECTIVE.split(body)[0].rstrip("` \n")}
                    found.append(current)
                elif kind == "solution-start":
                    current = next((e for e in found if e["label"] == arg), None)
                state = kind
            if not marks and state == "exercise-start" and current is not None and current["stub"] is None:
                current["text"] += "\n\n" + cell.source
        elif cell.cell_type == "code" and current is not None and state in ("exercise-start", "solution-start"):
            code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            before, call = _split(code)
            if call is None:
                continue
            if state == "exercise-start" and current["stub"] is None:
                current["stub"], current["check"] = before, call
            elif state == "solution-start" and current["solution"] is None:
                current["solution"] = before
    return title, found


def course_exercise(ex: dict, stem: str) -> dict:
    """The graded version of a chapter's exercise, as its variant makes it."""
    v = BY_LABEL[ex["label"]]
    text = ex["text"]
    for old, new in v.text:
        if old not in text:
            raise ValueError(f"{stem}: the text of {ex['label']} no longer holds {old!r}; update variants.py")
        text = text.replace(old, new)
    stub, solution = v.stub or ex["stub"], v.solution or ex["solution"]
    if stub is None or solution is None:
        raise ValueError(f"{stem}: {ex['label']} has no stub or no solution cell with a checker call")
    return dict(ex, text=text.strip(), stub=stub, solution=solution, public=v.public or ex["check"], variant=v,
                title=v.title or ex["title"])


# --------------------------------------------------------------------------------------------
# notebooks
# --------------------------------------------------------------------------------------------


def prelude() -> str:
    """The checkers' helpers (``flowlab/exercises/_feedback.py`` without its docstring), for
    the hidden tests."""
    source = (ROOT / "flowlab" / "exercises" / "_feedback.py").read_text()
    tree = ast.parse(source)
    start = tree.body[1].lineno if ast.get_docstring(tree) else tree.body[0].lineno
    lines = source.splitlines()[start - 1:]
    return "\n".join(line for line in lines if line.strip() != "from __future__ import annotations")


def hidden_test(v, stem: str, helpers: str) -> str:
    """The hidden region of a grade cell: the helpers and the variant's test in one function,
    run on the student's answers; it prints the verdict line only when the answer is right."""
    args = ", ".join(v.names)
    body = "\n".join([helpers, HELPERS.get(stem, ""),
                      f"def judge({args}):\n" + textwrap.indent(textwrap.dedent(v.hidden).strip("\n"), "    "),
                      f"""with contextlib.redirect_stderr(sys.stdout), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    right = judge(*answers)
if right is not True:
    raise AssertionError("not right on the inputs drawn by this test (see above)")
print("{flowlab_grading.MARK}{flowlab_grading.PLACEHOLDER}")"""])
    return ("### BEGIN HIDDEN TESTS\ndef _graded(*answers):\n    import contextlib\n\n"
            + textwrap.indent(body, "    ") + f"\n\n\n_graded({args})\n### END HIDDEN TESTS")


def _meta(grade_id: str, *, solution=False, grade=False, points=0, locked=True) -> dict:
    m = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    if grade:
        m["points"] = points
    return {"nbgrader": m}


def instructor_notebook(stem: str, title: str, graded: list[dict], helpers: str):
    """The instructor version: set-up, and per exercise its text, answer and grade cells."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [md(f"# Graded exercises: {title}\n\nRun the first cell, write each answer in its cell, then run the "
                "check below it. The check only says whether your answer can be graded, or (for a function) "
                "how it does on inputs of its own; the grade comes from tests that run when your notebook is "
                "graded, on inputs drawn then.", metadata=_meta(f"{stem}-intro")),
             code(SETUP[stem].strip("\n"), metadata=_meta(f"{stem}-setup"))]
    for ex in graded:
        label = ex["label"]
        cells.append(md(f"## {ex['title']}\n\n{ex['text']}", metadata=_meta(f"{label}-text")))
        answer = f"{ex['stub']}\n### BEGIN SOLUTION\n{ex['solution']}\n### END SOLUTION"
        cells.append(code(answer.strip("\n"), metadata=_meta(f"{label}-answer", solution=True, locked=False)))
        check = f"# self-check (the grade comes from hidden tests)\n{ex['public']};\n"
        cells.append(code(check + hidden_test(ex["variant"], stem, helpers),
                          metadata=_meta(f"{label}-check", grade=True, points=1)))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


# --------------------------------------------------------------------------------------------
# the course folder
# --------------------------------------------------------------------------------------------

CONFIG = '''"""nbgrader configuration of the flowlab course (written by the book's _ext/classroom/classroom.py).

The course's root is the folder of this file, wherever it is copied. Run nbgrader's commands in
this folder, or load this file from the instructor's own configuration:
``load_subconfig("/path/to/this/course/nbgrader_config.py")``.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # flowlab_grading, the autograde preprocessors

c = get_config()  # noqa: F821
c.CourseDirectory.root = HERE
c.CourseDirectory.course_id = "flowlab"
c.ClearSolutions.code_stub = {"python": "# your answer goes in the code above"}
c.OverwriteCells.add_missing_cells = True  # a deleted grade cell comes back and is graded
c.Execute.timeout = 300
c.Autograde.autograde_preprocessors = [
    "flowlab_grading.Guard",  # a token for each hidden test, and tamper_report.csv
    "nbgrader.preprocessors.Execute",
    "flowlab_grading.Verdict",  # a grade cell scores only if its hidden test ran to its end
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# the feedback students get shows the hidden tests' messages, not their code
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# With a shared exchange (JupyterHub, or students on one machine), set its folder here and in
# the students' configuration:
# c.Exchange.root = "/srv/nbgrader/exchange"
'''


def hub_requirements() -> str:
    """The hub image's requirements: the chapters' pins (above "# Building" in requirements.txt,
    with torch from PyTorch's CPU index), nbgrader with its pins, and flowlab from the repository."""
    text = (ROOT / "requirements.txt").read_text()
    chapters = [line for line in text.split("\n# Building")[0].splitlines() if line and not line.startswith("#")]
    pins = {line.split("==")[0]: line for line in text.splitlines() if "==" in line and not line.startswith("#")}
    url = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M).group(1)
    grading = [pins[name] for name in ("nbgrader", "notebook", "jupyterlab") if name in pins]
    return "\n".join([
        "# The hub image of the flowlab course: the packages the chapters import (the part of the",
        "# book's requirements.txt above \"# Building\"), nbgrader, and flowlab. torch comes from",
        "# PyTorch's CPU index: the default Linux wheel pulls gigabytes of CUDA libraries.",
        "--extra-index-url https://download.pytorch.org/whl/cpu",
        *chapters, *grading, f"flowlab @ git+{url}", ""])


def _env() -> dict:
    """nbgrader calls the ``alembic`` command of its own environment: put that first on the PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), MPLBACKEND="Agg")


def nbgrader(cwd: Path, *args: str, env: dict | None = None) -> str:
    """Run an nbgrader command in ``cwd``; raise with its output if it fails."""
    r = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env or _env(), capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-4000:]}\n"
                           f"{r.stderr[-4000:]}")
    return r.stdout + r.stderr


def has_submissions(out: Path) -> bool:
    """Whether a course folder holds students' work (submitted, autograded or feedback files, or
    students in its gradebook)."""
    if any((out / d).exists() and any((out / d).iterdir()) for d in STUDENT_DIRS):
        return True
    db = out / "gradebook.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            try:
                return con.execute("select count(*) from student").fetchone()[0] > 0
            except sqlite3.Error:
                return True
    return False


def scores(course: Path, assignment: str) -> dict[str, float]:
    """Each student's score on ``assignment``, from the course's gradebook."""
    with sqlite3.connect(course / "gradebook.db") as con:
        rows = con.execute("""select submitted_assignment.student_id,
                                     sum(coalesce(grade.manual_score, grade.auto_score))
                              from grade join submitted_notebook on grade.notebook_id = submitted_notebook.id
                              join submitted_assignment on submitted_notebook.assignment_id = submitted_assignment.id
                              join assignment on submitted_assignment.assignment_id = assignment.id
                              where assignment.name = ? group by submitted_assignment.student_id""",
                           (assignment,)).fetchall()
    return {student: float(score or 0) for student, score in rows}


CHEAT = '''
# a cheat in every answer cell: rebind the checkers, make them all say yes, and turn the
# next cell (the grade cell) into `pass`
import ast as _ast

import flowlab.exercises as _ex


class _Yes:
    def __getattr__(self, name):
        return lambda *a, **k: True


check = _Yes()
for _module in vars(_ex).values():
    for _name in [n for n in dir(_module) if n.startswith("check_")]:
        setattr(_module, _name, lambda *a, **k: True)


class _Blank(_ast.NodeTransformer):
    def visit_Module(self, node):
        get_ipython().ast_transformers.remove(self)
        node.body = [_ast.Pass()]
        return node


get_ipython().ast_transformers.append(_Blank())
'''


def cheating_copy(release_nb):
    """The student version with the cheat of :data:`CHEAT` added to every answer cell."""
    nb = nbformat.from_dict(release_nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source += "\n" + CHEAT
    return nb


def self_check(out: Path, stems: list[str], total: int) -> str:
    """Grade the solutions, blank student versions and cheating copies in a scratch copy of the
    course; return the summary, raise if a score is wrong."""
    with tempfile.TemporaryDirectory(prefix="flowlab-course-check-") as tmp:
        course = Path(tmp) / "course"
        shutil.copytree(out, course)
        for stem in stems:
            source_nb = course / "source" / stem / f"{stem}.ipynb"
            release_nb = nbformat.read(course / "release" / stem / f"{stem}.ipynb", 4)
            for student, nb in (("solutions", nbformat.read(source_nb, 4)), ("blank", release_nb),
                                ("cheater", cheating_copy(release_nb))):
                (course / "submitted" / student / stem).mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, course / "submitted" / student / stem / f"{stem}.ipynb")
        started = time.perf_counter()
        for stem in stems:
            nbgrader(course, "autograde", stem)
        seconds = time.perf_counter() - started
        got = {"solutions": 0.0, "blank": 0.0, "cheater": 0.0}
        for stem in stems:
            per = scores(course, stem)
            for student in got:
                got[student] += per.get(student, 0.0)
        with open(course / "tamper_report.csv", newline="") as f:
            report = list(csv.DictReader(f))
    flagged = {(r["notebook"], r["cell"]) for r in report if r["student"] == "cheater"}
    honest = [r for r in report if r["student"] != "cheater"]
    if got["solutions"] != total:
        raise AssertionError(f"the solutions score {got['solutions']:g}/{total}, expected {total}/{total}")
    if got["blank"] or got["cheater"]:
        raise AssertionError(f"blank versions score {got['blank']:g}/{total} and cheating copies "
                             f"{got['cheater']:g}/{total}, expected 0")
    if len(flagged) != total or honest:
        raise AssertionError(f"the tamper report flags {len(flagged)} of {total} cheating cells and "
                             f"{len(honest)} honest lines: {honest[:3]}")
    return (f"self-check in a scratch copy: solutions {got['solutions']:g}/{total}, blank 0/{total}, cheating "
            f"copies 0/{total} with all {total} cheating cells in the tamper report; autograde "
            f"{seconds / 3:.0f} s per student for {len(stems)} chapter(s)")


def build(out: Path, book: Path = ROOT / "book", chapters: list[str] | None = None, update: bool = False,
          check: bool = True) -> str:
    """Write the course into ``out``, generate the student versions, check the grading in a
    scratch copy; return the summary line."""
    out = out.resolve()
    paths = sorted(book.glob("*.ipynb"))
    if chapters:
        unknown = set(chapters) - {p.stem for p in paths}
        if unknown:
            raise SystemExit(f"no chapter named {', '.join(sorted(unknown))} in {book}; the chapters are "
                             f"{', '.join(p.stem for p in paths)}")
        paths = [p for p in paths if p.stem in chapters]
    live = out.exists() and has_submissions(out)
    if live and not update:
        raise SystemExit(f"{out} is a course with students' work (submitted, autograded or feedback files, or "
                         "students in its gradebook); it is left as it is. Pass --update to regenerate only the "
                         "instructor and student versions of the chapters, or --out another folder.")
    if out.exists() and not live:
        for name in MADE:  # only what a build made: an instructor's own files stay
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(CONFIG)
    shutil.copy(HERE / "flowlab_grading.py", out / "flowlab_grading.py")
    (out / "requirements-hub.txt").write_text(hub_requirements())
    helpers = prelude()
    stems, total, left = [], 0, {}
    for path in paths:
        title, found = exercises(path)
        graded = [course_exercise(e, path.stem) for e in found if e["label"] in BY_LABEL]
        left[path.stem] = [e["label"] or e["title"] for e in found if e["label"] not in BY_LABEL]
        if not graded:
            continue
        (out / "source" / path.stem).mkdir(parents=True, exist_ok=True)
        nbformat.write(instructor_notebook(path.stem, title, graded, helpers),
                       out / "source" / path.stem / f"{path.stem}.ipynb")
        if not live:
            nbgrader(out, "db", "assignment", "add", path.stem)
        nbgrader(out, "generate_assignment", path.stem, "--force")
        release = (out / "release" / path.stem / f"{path.stem}.ipynb").read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "_graded(", "flowlab-verdict"):
            if marker in release:
                raise AssertionError(f"the student version of {path.stem} still holds {marker!r}")
        stems.append(path.stem)
        total += len(graded)
    if not stems:
        raise SystemExit(f"no graded exercises in {book}")
    labels = sorted(BY_LABEL)
    missing = set(labels) - {e for s in stems for e in _labels(out, s)}
    if not chapters and missing:
        raise AssertionError(f"variants for exercises the chapters no longer have: {sorted(missing)}")
    skipped = "; ".join(f"{k}: {', '.join(v)}" for k, v in left.items() if v)
    if skipped:
        print(f"answered in the chapters only (not graded): {skipped}")
    summary = f"classroom: {len(stems)} assignments (one per chapter), {total} graded exercises in {out}"
    if check and not live:
        summary += "; " + self_check(out, stems, total)
    elif live:
        summary += "; updated the instructor and student versions only (gradebook and submissions kept)"
    return summary


def _labels(out: Path, stem: str) -> list[str]:
    nb = nbformat.read(out / "source" / stem / f"{stem}.ipynb", 4)
    return [c.metadata["nbgrader"]["grade_id"][: -len("-check")] for c in nb.cells
            if c.metadata["nbgrader"]["grade_id"].endswith("-check")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "classroom", help="the course folder")
    parser.add_argument("--book", type=Path, default=ROOT / "book", help="the folder of chapter notebooks")
    parser.add_argument("--chapters", default="", help="comma-separated chapter names (default: all)")
    parser.add_argument("--update", action="store_true",
                        help="in a course with submissions, regenerate only the instructor and student versions")
    parser.add_argument("--no-check", action="store_true", help="skip the self-check in a scratch copy")
    args = parser.parse_args(argv)
    chapters = [c.strip() for c in args.chapters.split(",") if c.strip()] or None
    print(build(args.out, args.book, chapters, update=args.update, check=not args.no_check))


if __name__ == "__main__":
    main()
