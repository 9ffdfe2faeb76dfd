"""Build an nbgrader course from the chapters' exercises, and check that grading works.

``python -m flowlab.classroom [--out _build/classroom]`` reads every chapter in ``book/`` and
writes one small instructor notebook per chapter that has auto-checked exercises:

- the chapter's imports cell (read-only), and any one-line definitions the exercises rely on
  (with the calls that train or change them: ``flow = ...`` then ``fl.fit(flow, ...)``);
- per exercise, its text, an answer cell whose solution sits between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` (after the stub the reader sees in the chapter), and a grade cell that
  asserts the same ``flowlab.exercises`` checker the chapter calls (1 point).

It then runs ``nbgrader generate_assignment`` (the student versions, solutions removed) and
``nbgrader autograde`` twice: on the instructor notebooks, which must score full marks, and on
the unanswered student versions, which must score zero. The last line it prints is
``classroom: N chapters, M graded exercises; instructor solutions score X/X; blank student
versions score 0/X``. An exercise is graded only when its cells need nothing but the imports
and such definitions; the others (predictions about a chapter's own measurements or trained
models) stay in the chapters, answered by the reader.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "flowlab"
DIRECTIVE = re.compile(r"```\{(exercise-start|exercise-end|solution-start|solution-end)\}[ \t]*([^\n]*)")
BUILTINS = set(dir(builtins))


def _free_names(code: str) -> set[str]:
    """Names a piece of code reads without defining them itself (a static, generous estimate)."""
    tree = ast.parse(code)
    loads, stores = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stores.add(node.name)
        elif isinstance(node, ast.arguments):
            stores.update(a.arg for a in node.posonlyargs + node.args + node.kwonlyargs)
            stores.update(a.arg for a in (node.vararg, node.kwarg) if a is not None)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stores.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.comprehension):
            stores.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
    return loads - stores - BUILTINS


def _defined(code: str) -> set[str]:
    """Names bound at the top level of a piece of code."""
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.With)):
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def _is_check_call(node: ast.stmt) -> bool:
    """A top-level statement that calls a checker: ``...check_something(...)``."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    f = node.value.func
    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
    return name.startswith("check_")


def _takes_first(node: ast.stmt, name: str) -> bool:
    """A top-level call whose first argument is the variable ``name``: ``fit(name, ...)``."""
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and bool(node.value.args)
            and isinstance(node.value.args[0], ast.Name) and node.value.args[0].id == name)


def _split(code: str) -> tuple[str, str | None]:
    """``code`` before its first checker call, and that call's source (``None`` without one)."""
    tree = ast.parse(code)
    lines = code.splitlines()
    for node in tree.body:
        if _is_check_call(node):
            before = "\n".join(lines[: node.lineno - 1]).rstrip()
            return before, ast.get_source_segment(code, node)
    return code.rstrip(), None


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _code(cell) -> str:
    """The cell's code without IPython magics (they are never part of an exercise)."""
    return "\n".join(line for line in _source(cell).splitlines() if not line.lstrip().startswith(("%", "!")))


def exercises(path: Path) -> tuple[str, str, list[dict], list[str]]:
    """The chapter's title, imports cell, graded exercises and the labels of those left out.

    Each exercise is a dict with ``label``, ``title``, ``text`` (markdown), ``stub`` (the code the
    reader starts from, checker call removed), ``solution`` (likewise) and ``check`` (the call).
    """
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    title = next((_source(c).splitlines()[0].lstrip("# ") for c in cells if c.cell_type == "markdown"), path.stem)
    code_cells = [i for i, c in enumerate(cells) if c.cell_type == "code"
                  and "remove-cell" not in c.metadata.get("tags", [])]
    if not code_cells:
        return title, "", [], []
    imports = _code(cells[code_cells[0]])
    # one-statement definitions elsewhere in the chapter, usable when a name is bound only once,
    # with the calls later in the same cell that take it as first argument (``fl.fit(flow, ...)``)
    assigns: dict[str, list[str]] = {}
    for i in code_cells[1:]:
        code = _code(cells[i])
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for k, node in enumerate(tree.body):
            for name in _defined(ast.get_source_segment(code, node) or ""):
                seg = ast.get_source_segment(code, node) if isinstance(node, ast.Assign) else None
                if seg is not None:
                    seg = "\n".join([seg] + [ast.get_source_segment(code, later) for later in tree.body[k + 1:]
                                             if _takes_first(later, name)])
                assigns.setdefault(name, []).append(seg)
    found, skipped, state, current = [], [], None, None
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown":
            text = _source(cell)
            marks = list(DIRECTIVE.finditer(text))
            for m in marks:
                kind, arg = m.group(1), m.group(2).strip()
                if kind == "exercise-start":
                    label = re.search(r":label:\s*(\S+)", text[m.end():])
                    current = {"label": label.group(1) if label else None, "title": arg, "text": "",
                               "stub": None, "solution": None, "check": None}
                    found.append(current)
                    body = text[m.end():]
                    body = re.sub(r"\A\s*(:[a-z-]+:[^\n]*\n)*\s*```\s*", "", body)
                    current["text"] = DIRECTIVE.split(body)[0].rstrip("` \n")
                elif kind == "solution-start":
                    current = next((e for e in found if e["label"] == arg), None)
                state = kind
            if not marks and state == "exercise-start" and current is not None and current["stub"] is None:
                current["text"] += "\n\n" + text
        elif cell.cell_type == "code" and current is not None:
            code = _code(cell)
            before, call = _split(code)
            if call is None:
                continue
            if state == "exercise-start" and current["stub"] is None:
                current["stub"], current["check"] = before, call
            elif state == "solution-start" and current["solution"] is None:
                current["solution"] = before
    graded = []
    have = _defined(imports) | BUILTINS
    for ex in found:
        ok = ex["label"] and ex["stub"] is not None and ex["solution"]
        context = []
        if ok:
            need = sorted(_free_names("\n".join([ex["stub"], ex["solution"], ex["check"]])) - have
                          - _defined(ex["stub"]) - _defined(ex["solution"]))
            while need and ok:
                name = need.pop()
                defs = assigns.get(name, [])
                if len(defs) != 1 or defs[0] is None:
                    ok = False
                    break
                context.insert(0, defs[0])
                have = have | {name}
                need = sorted(set(need) | (_free_names(defs[0]) - have))
        if ok:
            graded.append(dict(ex, context=context))
        else:
            skipped.append(ex["label"] or ex["title"])
    return title, imports, graded, skipped


def _meta(grade_id: str, *, solution=False, grade=False, points=0, locked=True) -> dict:
    m = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    if grade:
        m["points"] = points
    return {"nbgrader": m}


def instructor_notebook(stem: str, title: str, imports: str, graded: list[dict]):
    """The instructor version: exercise text, answer cells with solution regions, grade cells."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [md(f"# Exercises: {title}\n\nThe exercises of the chapter `{stem}` that are graded automatically. "
                "Run the first cell, write each answer in its cell, and run the check below it "
                "(the checks are the ones the chapter calls).", metadata=_meta(f"{stem}-intro")),
             code(imports, metadata=_meta(f"{stem}-imports"))]
    context = [c for ex in graded for c in ex["context"]]
    if context:
        cells.append(code("\n".join(dict.fromkeys(context)), metadata=_meta(f"{stem}-context")))
    for ex in graded:
        label = ex["label"]
        cells.append(md(f"## {ex['title']}\n\n{ex['text'].strip()}", metadata=_meta(f"{label}-text")))
        answer = f"{ex['stub']}\n### BEGIN SOLUTION\n{ex['solution']}\n### END SOLUTION"
        cells.append(code(answer.strip("\n"), metadata=_meta(f"{label}-answer", solution=True, locked=False)))
        cells.append(code(f"assert {ex['check']}", metadata=_meta(f"{label}-check", grade=True, points=1)))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _env() -> dict:
    """nbgrader calls the ``alembic`` command of its own environment: put that first on the PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), MPLBACKEND="Agg")


def _nbgrader(course: Path, *args: str) -> None:
    env = _env()
    cmd = [sys.executable, "-m", "nbgrader", *args]
    r = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")


def _scores(course: Path) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook

    saved = os.environ.get("PATH")
    os.environ["PATH"] = _env()["PATH"]  # the Gradebook runs `alembic` too; restored below
    try:
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            return {s: (gb.find_submission(ASSIGNMENT, s).score, gb.find_submission(ASSIGNMENT, s).max_score)
                    for s in ("instructor", "blank")}
    finally:
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


def build(out: Path, book: Path = ROOT / "book") -> str:
    """Write the course into ``out``, generate, autograde, assert the scores; return the summary line."""
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    source = out / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    (out / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(out)!r}\n"
        f"c.CourseDirectory.course_id = 'flowlab'\n"
        "c.ClearSolutions.code_stub = {'python': '# the solution is removed here: complete the code above'}\n"
        "c.ExecutePreprocessor.timeout = 300\n")
    chapters, total, skipped_all = 0, 0, {}
    for path in sorted(book.glob("*.ipynb")):
        title, imports, graded, skipped = exercises(path)
        if skipped:
            skipped_all[path.stem] = skipped
        if not graded:
            continue
        nbformat.write(instructor_notebook(path.stem, title, imports, graded), source / f"{path.stem}.ipynb")
        chapters += 1
        total += len(graded)
    if not chapters:
        raise RuntimeError(f"no graded exercises found in {book}")
    _nbgrader(out, "db", "assignment", "add", ASSIGNMENT)
    _nbgrader(out, "generate_assignment", ASSIGNMENT, "--force")
    release = out / "release" / ASSIGNMENT
    for student, origin in (("instructor", source), ("blank", release)):
        dest = out / "submitted" / student / ASSIGNMENT
        shutil.copytree(origin, dest)
        _nbgrader(out, "db", "student", "add", student)
    for nb_path in release.glob("*.ipynb"):  # no solution text may be left in a student version
        text = nb_path.read_text()
        if "BEGIN SOLUTION" in text or "END SOLUTION" in text:
            raise AssertionError(f"{nb_path} still holds a solution region")
    _nbgrader(out, "autograde", ASSIGNMENT, "--force")
    scores = _scores(out)
    (got, top), (blank, btop) = scores["instructor"], scores["blank"]
    if skipped_all:
        print("not auto-graded (answered in the chapter):",
              "; ".join(f"{k}: {', '.join(v)}" for k, v in skipped_all.items()))
    if not (top == btop == total and got == total):
        raise AssertionError(f"instructor solutions score {got}/{top}, expected {total}/{total}")
    if blank != 0:
        raise AssertionError(f"blank student versions score {blank}/{btop}, expected 0/{total}")
    return (f"classroom: {chapters} chapters, {total} graded exercises; instructor solutions score "
            f"{got:g}/{top:g}; blank student versions score {blank:g}/{btop:g}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "classroom", help="course directory")
    parser.add_argument("--book", type=Path, default=ROOT / "book", help="folder of chapter notebooks")
    args = parser.parse_args(argv)
    print(build(args.out, args.book))


if __name__ == "__main__":
    main()
