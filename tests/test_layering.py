"""The package's layering, read from its source: no import cycles (imports inside functions
count), no import below a module's first definition, ``_checks`` a leaf, every third-party
module in ``pyproject.toml``, and ``import flowlab`` free of the drawing and widget libraries.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "flowlab"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(package.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, name: str, path: Path) -> str:
    """The module an ``import from`` names, made absolute."""
    if not node.level:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """``(module, line, at_top_level)`` for every import in the file, those inside functions too.
    ``from package import name`` counts as an import of ``package.name`` when that is a module."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, path)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found += [(t, node.lineno, id(node) in top) for t in targets]
    return found


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """flowlab module -> the flowlab modules it imports (anywhere in its file)."""
    files = modules(package)
    known = set(files)
    return {
        name: {t for t, _, _ in imports(name, path, known) if t in known and t != name} for name, path in files.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_local_import(tmp_path):
    """The check can fail: a cycle that only a function-local import closes is found."""
    pkg = tmp_path / "flowlab"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "c.py").write_text("from .a import f\n")
    (pkg / "d.py").write_text("from . import a\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert cycles(graph(pkg)) == [["flowlab.a", "flowlab.b", "flowlab.c"]]
    finally:
        ROOT = saved


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles (imports inside functions count): " + "; ".join(" <-> ".join(c) for c in found)


def test_checks_is_a_leaf():
    """``_checks`` holds primitives: it imports no other flowlab module, even inside a function."""
    assert graph()["flowlab._checks"] == set()


def test_no_import_below_the_first_definition():
    """Module-level imports come first: none after a ``def`` or ``class`` (no re-export at the end)."""
    late = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))
        defined = False
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined = True
            elif defined and isinstance(node, (ast.Import, ast.ImportFrom)):
                late.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not late, f"imports after the first definition: {late}"


def _distribution_of(module: str) -> str:
    from importlib.metadata import packages_distributions

    names = packages_distributions().get(module, [module])
    return names[0].lower().replace("_", "-")


def test_pyproject_lists_every_third_party_module():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [d for group in project.get("optional-dependencies", {}).values() for d in group]
    declared = {re.split(r"[;\[=<>~! ]", d, maxsplit=1)[0].strip().lower() for d in project["dependencies"] + extras}
    known = set(modules())
    third = set()
    for name, path in modules().items():
        for target, _, _ in imports(name, path, known):
            top = target.split(".")[0]
            if top and top != "flowlab" and top not in sys.stdlib_module_names:
                third.add(top)
    missing = sorted(m for m in third if _distribution_of(m) not in declared)
    assert not missing, f"flowlab imports {missing}, which pyproject.toml's dependencies do not list"


HEAVY = ("matplotlib", "ipywidgets", "scipy", "pandas", "IPython", "torchdiffeq", "PIL")


def test_import_loads_no_drawing_or_widget_library():
    """``import flowlab``, and building and training a flow, load none of the heavy libraries
    that only the pictures, widgets and adaptive solver need; they are imported where used."""
    code = (
        "import sys\n"
        f"heavy = lambda: [m for m in {HEAVY!r} if m in sys.modules]\n"
        "import flowlab as fl\n"
        "print(heavy())\n"
        "flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))\n"
        "fl.fit(flow, fl.targets.moons(64, seed=0), steps=2, progress=False)\n"
        "print(heavy())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout


def test_the_modules_loaded_on_first_use_are_the_modules_themselves():
    import importlib

    import flowlab as fl

    for name in fl._ON_FIRST_USE:
        assert getattr(fl, name) is importlib.import_module(f"flowlab.{name}")
        assert name in dir(fl)
    with pytest.raises(AttributeError, match="has no attribute 'plots'"):
        fl.plots


FIRST_FAMILY = ("core", "conditioners", "transformers", "autoregressive", "linear", "glow")


@pytest.mark.parametrize("module", FIRST_FAMILY)
def test_every_class_and_recipe_states_its_math_costs_and_references(module):
    """The docstring of every public class and recipe of the first family has the math
    (``:math:``), a cost (``O(`` or a count of passes/steps), a ``References:`` line and an example."""
    import importlib
    import inspect

    mod = importlib.import_module(f"flowlab.{module}")
    missing = []
    for name, obj in vars(mod).items():
        public = not name.startswith("_") and getattr(obj, "__module__", None) == mod.__name__
        if not public or not (inspect.isclass(obj) or (inspect.isfunction(obj) and name[0].isupper())):
            continue
        doc = inspect.getdoc(obj) or ""
        for what, ok in (("math", "math:" in doc), ("References:", "References:" in doc),
                         ("a cost", "O(" in doc or "pass" in doc or "cost" in doc), ("an example", ">>>" in doc)):
            if not ok:
                missing.append(f"{name}: {what}")
    assert not missing, f"flowlab.{module}: {missing}"
