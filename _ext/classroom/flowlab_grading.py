"""nbgrader preprocessors of the flowlab course: verdicts that must be earned, and a tamper report.

The course's ``nbgrader_config.py`` puts them into ``nbgrader autograde`` around its execution:

- :class:`Guard`, before the notebook runs: gives each grade cell's hidden test a token drawn
  now (the placeholder ``@@VERDICT@@`` in its source), and records in ``tamper_report.csv``, next
  to this file, every code cell a student may edit that does something a right answer never needs:
  rebinding a name of the locked cells or an attribute of an imported module, reading frames
  (``sys._getframe``, ``inspect``, ``f_locals``), IPython's transformers and events, ``builtins``,
  ``sys.modules``, trace or profile hooks, ``exec``/``eval``, exiting the kernel.
- :class:`Verdict`, after it ran: a grade cell scores only if its hidden test printed its verdict
  line with the token of this run. A cell that a student's code silenced (an AST transformer that
  turns the test into ``pass``, a hook that skips it) gets an error output, hence zero points. The
  verdict line is then removed from the output, the placeholder restored in the source, and an
  error's traceback shortened to its message (it would show lines of the hidden test).

The checks need no network and no flowlab (only nbgrader): this file is copied into the course folder.
"""

from __future__ import annotations

import ast
import csv
import re
import secrets
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

PLACEHOLDER = "@@VERDICT@@"
MARK = "flowlab-verdict "
REPORT = Path(__file__).resolve().parent / "tamper_report.csv"
FIELDS = ["student", "assignment", "notebook", "cell", "line", "finding", "code"]

# attribute and call names that a right answer never needs
_SUSPICIOUS_NAMES = {
    "_getframe": "reads the interpreter's frames (sys._getframe)",
    "currentframe": "reads the interpreter's frames (inspect.currentframe)",
    "stack": None,  # inspect.stack, checked with its module below
    "f_locals": "reads a frame's local variables",
    "f_back": "walks the interpreter's frames",
    "f_globals": "reads a frame's globals",
    "ast_transformers": "changes how IPython runs later cells (ast_transformers)",
    "input_transformers_post": "changes how IPython runs later cells (input transformers)",
    "input_transformers_cleanup": "changes how IPython runs later cells (input transformers)",
    "set_custom_exc": "changes how IPython reports errors (set_custom_exc)",
    "register": None,  # events.register, checked with its owner below
    "settrace": "installs a trace hook",
    "setprofile": "installs a profile hook",
    "get_objects": "searches all live objects (gc)",
    "get_referrers": "searches all live objects (gc)",
    "_exit": "exits the kernel (os._exit)",
    "modules": None,  # sys.modules
    "__builtins__": "changes or reads Python's builtins",
    "__code__": "rewrites a function's code",
    "__closure__": "reads a function's closure",
    "__globals__": "reads a function's globals",
}
_SUSPICIOUS_CALLS = {
    "exec": "runs code built at run time (exec)",
    "eval": "runs code built at run time (eval)",
    "compile": "compiles code at run time",
    "__import__": "imports by name at run time",
    "get_ipython": "uses the IPython shell object",
    "setattr": "sets an attribute by name (setattr)",
    "delattr": "deletes an attribute by name (delattr)",
    "exit": "exits the kernel",
    "quit": "exits the kernel",
}
_SUSPICIOUS_MODULES = {
    "builtins": "imports builtins",
    "inspect": "imports inspect (frames and source of the checker)",
    "gc": "imports gc (all live objects)",
    "importlib": "imports importlib",
    "ctypes": "imports ctypes",
    "IPython": "imports IPython",
}


# what an answer may use from the exercise checkers: the checkers, the helpers that build inputs
# to try a function on, and the constants the book's exercises print
_CHECKER_PARTS = {"answered", "layer", "layers", "lower_triangular", "low_rank_factors", "parameters",
                  "paired_columns", "iteration_block", "collapsed_proposal_log_weights", "A", "b", "T", "SIGMA",
                  "MATRICES", "ITERATION_POINT", "S", "autoregressive", "change_of_variables", "circles",
                  "composition", "continuous", "flow_matching", "jacobians", "linear", "objectives", "practice",
                  "residual", "universality"}


def _root(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def bound_names(sources) -> set[str]:
    """The names that code binds at top level (imports, assignments, definitions)."""
    names = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            else:
                names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def scan(source: str, locked: set[str]) -> list[tuple[int, str]]:
    """``(line, finding)`` for each suspicious spot of a student's code cell; ``locked`` holds the
    names bound by the notebook's locked cells (imports, setup).

    Example:
        >>> scan("check = None", {"check"})
        [(1, 'rebinds check, a name of the locked cells')]
        >>> [why for line, why in scan("x = sys._getframe(2).f_locals['right']", set())]
        ["reads a frame's local variables", "reads the interpreter's frames (sys._getframe)"]
        >>> scan("def f(x):\\n    return x.diagonal().abs().log().sum()", {"torch"})
        []
    """
    lines = [line for line in source.splitlines()]
    clean = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
    findings = []
    try:
        tree = ast.parse(clean)
    except SyntaxError:
        pattern = re.compile(r"_getframe|f_locals|ast_transformers|input_transformers|builtins|sys\.modules|"
                             r"settrace|setprofile|get_ipython|exec\(|eval\(|os\._exit")
        return [(i + 1, "code that does not parse, with " + m.group(0)) for i, line in enumerate(lines)
                if (m := pattern.search(line))]
    imported = {n for n in locked}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                module = (node.module if isinstance(node, ast.ImportFrom) else a.name) or ""
                top = module.split(".")[0]
                if top in _SUSPICIOUS_MODULES:
                    findings.append((node.lineno, _SUSPICIOUS_MODULES[top]))
                elif module.startswith("flowlab.exercises") or a.name.startswith("_"):
                    findings.append((node.lineno, f"imports {module}.{a.name}" if isinstance(node, ast.ImportFrom)
                                     else f"imports {module}"))
                imported.add((a.asname or a.name).split(".")[0])
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                for sub in ([t] if not isinstance(t, (ast.Tuple, ast.List)) else t.elts):
                    if isinstance(sub, ast.Name) and sub.id in locked:
                        findings.append((line, f"rebinds {sub.id}, a name of the locked cells"))
                    elif isinstance(sub, (ast.Attribute, ast.Subscript)) and _root(sub) in imported:
                        findings.append((line, f"changes {ast.unparse(sub)}, part of an imported module or a "
                                               "locked name"))
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            findings.extend((line, f"rebinds {n}, a name of the locked cells") for n in node.names if n in locked)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in locked:
            findings.append((line, f"rebinds {node.name}, a name of the locked cells"))
        elif isinstance(node, ast.Attribute):
            why = _SUSPICIOUS_NAMES.get(node.attr)
            owner = ast.unparse(node.value)
            if node.attr == "stack" and owner == "inspect":
                why = "reads the interpreter's frames (inspect.stack)"
            elif node.attr == "register" and owner.endswith("events"):
                why = "registers an IPython event hook"
            elif node.attr == "modules" and owner == "sys":
                why = "uses sys.modules"
            dotted = ast.unparse(node)
            if (not why and (owner == "check" or re.search(r"(^|\.)exercises(\.\w+)?$", owner))
                    and not node.attr.startswith("check_") and node.attr not in _CHECKER_PARTS):
                why = f"uses {dotted}, which is not a checker of the exercises"
            if why:
                findings.append((line, why))
            elif (node.attr.startswith("_") and not node.attr.startswith("__") and _root(node) in imported
                  and isinstance(node.ctx, ast.Load)):
                findings.append((line, f"uses {ast.unparse(node)}, a private part of an imported module"))
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else None
            if name in _SUSPICIOUS_CALLS:
                findings.append((line, _SUSPICIOUS_CALLS[name]))
            if (isinstance(f, ast.Attribute) and f.attr.endswith("_") and not f.attr.endswith("__")
                    and isinstance(f.value, (ast.Attribute, ast.Subscript)) and _root(f.value) in imported):
                findings.append((line, f"changes {ast.unparse(f.value)} in place, part of an imported module"))
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            findings.append((line, _SUSPICIOUS_NAMES["__builtins__"]))
        elif isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc):
            findings.append((line, "exits the kernel (SystemExit)"))
    seen, unique = set(), []
    for line, why in sorted(findings):
        if (line, why) not in seen:
            seen.add((line, why))
            unique.append((line, why))
    return unique


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) if hasattr(cell, "metadata") else {}


def tamper_rows(nb, student: str, assignment: str, notebook: str) -> list[dict]:
    """The rows of the tamper report for one submitted notebook."""
    locked_cells = [c.source for c in nb.cells if c.cell_type == "code" and _meta(c).get("locked")
                    and not _meta(c).get("solution") and not _meta(c).get("grade")]
    locked = bound_names(locked_cells)
    rows = []
    for index, cell in enumerate(nb.cells):
        meta = _meta(cell)
        if cell.cell_type != "code" or (meta.get("locked") and not meta.get("solution")):
            continue
        lines = cell.source.splitlines()
        for line, finding in scan(cell.source, locked):
            rows.append({"student": student, "assignment": assignment, "notebook": notebook,
                         "cell": meta.get("grade_id", f"cell {index + 1} (added)"), "line": line,
                         "finding": finding, "code": lines[line - 1].strip()[:120] if 0 < line <= len(lines) else ""})
    return rows


def write_report(rows: list[dict], student: str, assignment: str, notebook: str, path: Path = REPORT) -> None:
    """Replace this notebook's rows of the report at ``path`` with ``rows``."""
    kept = []
    if path.exists():
        with open(path, newline="") as f:
            kept = [r for r in csv.DictReader(f)
                    if (r["student"], r["assignment"], r["notebook"]) != (student, assignment, notebook)]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(kept + rows)


def _ids(resources):
    nb = resources.get("nbgrader", {})
    return nb.get("student", "?"), nb.get("assignment", "?"), nb.get("notebook", "?")


class Guard(NbGraderPreprocessor):
    """Before execution: a fresh token for each hidden test, and the tamper report."""

    def preprocess(self, nb, resources):
        student, assignment, notebook = _ids(resources)
        write_report(tamper_rows(nb, student, assignment, notebook), student, assignment, notebook)
        tokens = {}
        for cell in nb.cells:
            if cell.cell_type == "code" and _meta(cell).get("grade") and PLACEHOLDER in cell.source:
                token = secrets.token_hex(16)
                tokens[_meta(cell)["grade_id"]] = token
                cell.source = cell.source.replace(PLACEHOLDER, token)
        resources.setdefault("flowlab", {})["tokens"] = tokens
        return nb, resources


class Verdict(NbGraderPreprocessor):
    """After execution: a grade cell whose hidden test did not print its verdict scores zero."""

    def preprocess(self, nb, resources):
        tokens = resources.get("flowlab", {}).get("tokens", {})
        for cell in nb.cells:
            token = tokens.get(_meta(cell).get("grade_id")) if cell.cell_type == "code" else None
            if token is None:
                continue
            cell.source = cell.source.replace(token, PLACEHOLDER)
            line = MARK + token
            found = False
            for out in cell.outputs:
                if out.output_type == "stream" and line in out.text:
                    found = True
                    out.text = "".join(x for x in out.text.splitlines(keepends=True) if line not in x)
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and not o.text)]
            for out in cell.outputs:  # a traceback would show lines of the hidden test in the feedback
                if out.output_type == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}"]
            failed = any(o.output_type == "error" for o in cell.outputs)
            if not found and not failed:
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="HiddenTestDidNotFinish",
                    evalue="the hidden test of this cell did not run to its end, so it gives no points",
                    traceback=["HiddenTestDidNotFinish: the hidden test of this cell did not run to its end, "
                               "so it gives no points"]))
        return nb, resources
