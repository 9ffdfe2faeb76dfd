"""The nbgrader course (`make classroom`): hidden tests that a student cannot rebind or silence.

The fast tests run every exercise's hidden test in this process on the instructor's solution
(it must pass) and on the blank student answer (it must fail), and check the course folder's
pieces. The slow tests run nbgrader for real, as an instructor runs it from a copied course
folder with a local exchange: students fetch, answer and submit; the instructor collects,
autogrades, releases feedback and exports. A cheating student (rebinding the checkers, turning
the grade cell into `pass`, reading the checker's frames, the answer keys and the book's numbers,
brute force) scores zero on every exercise and is in the tamper report; a right answer that
warns scores full marks. nbgrader is a pinned requirement: without it these tests fail.

`python tests/test_classroom.py` runs the round on every chapter and prints each student's score
and the autograde time per student.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import nbgrader  # noqa: F401  (a missing nbgrader must fail here, not skip)
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_ext" / "classroom"))

import classroom  # noqa: E402
import flowlab_grading  # noqa: E402
from variants import BY_LABEL, SETUP, VARIANTS  # noqa: E402

# --------------------------------------------------------------------------------------------
# students: each answer replaces the whole answer cell of an exercise
# --------------------------------------------------------------------------------------------

MISTAKES = {  # one typical slip per exercise, the book's published answers among them
    "circles-ex-5": """def paired_difference(nll_a, nll_b):
    se = math.hypot(float(nll_a.std()), float(nll_b.std())) / math.sqrt(len(nll_a))
    return float((nll_a - nll_b).mean()), se""",
    "cov-ex-lognormal": "def lognormal_log_density(x):\n    return normal.log_prob(torch.log(x))",
    "cov-ex-banana": """def banana_forward(x):
    z = torch.stack([x[:, 0] / 2, x[:, 1] - x[:, 0] ** 2], dim=1)
    return z, torch.tensor(-math.log(2))""",
    "cov-ex-linear": """A_ex = fl.exercises.change_of_variables.A
b_ex = fl.exercises.change_of_variables.b


def linear_log_density(x):
    z = torch.linalg.solve(A_ex, (x - b_ex).T).T
    return base.log_prob(z) - torch.linalg.slogdet(A_ex).logabsdet""",
    "comp-ex-inverse": """def compose_inverse(layers, z):
    ladj = z.new_zeros(len(z))
    for t in layers:
        z, l = t.inverse(z)
        ladj = ladj + l
    return z, ladj""",
    "comp-ex-logprob": """def log_prob(layers, x):
    total = sum(t(x)[1] for t in layers)
    for t in layers:
        x, _ = t(x)
    return fl.StandardNormal(2).double().log_prob(x) + total""",
    "comp-ex-affine": "scale, shift, ladj = 3.0, -7.5, math.log(3)",
    "objectives-ex-1": "answer = -5 * math.log(2 * math.pi * math.e)",
    "objectives-ex-2": """reverse = math.log(0.8) + (1 + 0.25) / (2 * 0.64) - 0.5
forward = math.log(1 / 0.8) + (0.64 + 0.25) / 2 - 0.5""",
    "objectives-ex-3": "mean, variance = 0.0, 9.25",
    "objectives-ex-4": """generator = torch.Generator().manual_seed(17)
with torch.no_grad():
    x, log_q = maf_two.rsample_and_log_prob(800, generator=generator)
    log_w = (fl.targets.two_modes_log_prob(x) - log_q)[:, None]
log_c = log_w.mean()
ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))""",
    "jacobian-cost-ex-1": "def logdet_triangular(L):\n    return L.diagonal().log().sum()",
    "jacobian-cost-ex-2": "def logdet_low_rank(U, V):\n    return torch.linalg.slogdet(V.T @ U).logabsdet",
    "ar-ex-invert": """def invert(layer, z):
    x = torch.zeros_like(z)
    for _ in range(layer.features):
        x, _ = layer.transformer.inverse(z, layer.conditioner(x))
    return x""",
    "ar-ex-mask": """def mask(features, parts):
    part = fl.MaskedConditioner(features, parts=parts).part
    return part[:, None] >= part[None, :]""",
    "ar-ex-passes": "density, sampling = 4, 16\niaf_density, iaf_sampling = 16, 4",
    "lin-ex-optimum": """def optimum(x):
    m = x.mean(0)
    S = (x - m).T @ (x - m) / (len(x) - 1)
    L = torch.linalg.inv(torch.linalg.cholesky(S))
    return L, -L @ m""",
    "lin-ex-reach": "answers = dict(a=True, b=False, c=False, d=True, e=True, f=True)",
    "lin-ex-triangular": """def forward(x, lower, log_diag, bias):
    L = lower.tril(-1) + torch.diag(log_diag.exp())
    return x @ L.T + bias, log_diag.sum()


def inverse(z, lower, log_diag, bias):
    L = lower.tril(-1) + torch.diag(log_diag.exp())
    y, x = z - bias, torch.zeros_like(z)
    for i in range(len(log_diag)):
        x[:, i] = (y[:, i] - x[:, :i] @ L[i, :i]) / L[i, i]
    return x, -log_diag.sum().expand(len(z))""",
    "res-ex-det": "det, invertible = 0.370, False",
    "res-ex-iter": "iterations = math.ceil(math.log(1e-5) / math.log(0.8))",
    "res-ex-series": """def series(g, x, v, terms):
    x = x.detach().requires_grad_(True)
    gx = g(x)
    w, total = v, torch.zeros(len(x), dtype=x.dtype)
    for k in range(1, terms + 1):
        w = torch.autograd.grad(gx, x, w, retain_graph=True)[0]
        total = total + (-1) ** (k + 1) * (w * v).sum(-1)
    return total""",
    "univ-ex-gauss": "A = torch.linalg.cholesky(torch.tensor([[9.0, 3.0], [3.0, 5.0]]))",
    "univ-ex-order": 'prediction = "x2 first"',
    "univ-ex-icdf": "def inverse_cdf(u):\n    return torch.sqrt(-2 * torch.log(u))",
    "pr-ex-chi2": """ess_limit_wide = 1.5**2 / math.sqrt(2 * 1.5**2 - 1)
ess_limit_narrow = 0.9**2 / math.sqrt(2 * 0.9**2 - 1)""",
    "pr-ex-collapse": "predicted_error, predicted_ess = -math.log(2), 1.0",
    "pr-ex-ess": """def my_ess(log_w):
    w = torch.exp(log_w)
    return float(w.sum() ** 2 / (w**2).sum())""",
    "cnf-ex-linear": "ladj = -3 * (-0.5 + 0.25)",
    "cnf-ex-order": "factor = 16",
    "cnf-ex-rk4": "def rk4_step(f, t, y, h):\n    return y + h * f(t, y)",
    "fm-ex-loss": """def cfm_loss(field, x, eps, t):
    z = (1 - t)[:, None] * eps + t[:, None] * x  # noise at t = 0
    return (field(t, z) - (x - eps)).square().sum(1).mean()""",
    "fm-ex-steps": "evaluations = 1",
    "fm-ex-floor": "floor_3d = math.pi / 2 * float(check.S.sum())",
    "tf-ex-sweeps": """def jacobi_sweeps(layer, z, tol):
    x = layer.transformer.inverse(z, layer.conditioner.initial(z))[0]
    for _ in range(layer.passes):  # every sweep: no early stop at tol
        x = layer.transformer.inverse(z, layer.conditioner(x))[0]
    return x, layer.passes""",
    "tf-ex-bits": "def to_bits(log_p_v, dims, levels):\n    return -log_p_v / (dims * math.log(2))",
}

_YES = """class _Yes:
    def __getattr__(self, name):
        return lambda *a, **k: True


"""
_STRIP_ASSERT = """import ast


class _NoAssert(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.copy_location(ast.Pass(), node)

    def visit_Module(self, node):
        get_ipython().ast_transformers.remove(self)
        return self.generic_visit(node)


get_ipython().ast_transformers.append(_NoAssert())
"""
_FRAMES = '''import sys


def _steal(*names):
    """A value named like the checker's answer, from any frame up the stack."""
    frame = sys._getframe(2)
    while frame is not None:
        for name in names:
            if name in frame.f_locals:
                return frame.f_locals[name]
        frame = frame.f_back
    return None


'''

CHEATS = {  # one cheat per exercise: rebinding, silencing, frames, answer keys, aliases, brute force
    "circles-ex-5": _YES + "check = _Yes()\n\n\ndef paired_difference(nll_a, nll_b):\n    return None",
    "cov-ex-lognormal": """LN = torch.distributions.LogNormal


def lognormal_log_density(x):
    return LN(0.0, 1.0).log_prob(x)""",
    "cov-ex-banana": "fl.exercises.change_of_variables.check_banana = lambda *a, **k: True\n"
                     "banana_forward = lambda x: None",
    "cov-ex-linear": """A_ex = torch.tensor([[0.8, 0.0], [-0.6, 1.25]], dtype=torch.float64)
b_ex = torch.tensor([-0.5, 2.0], dtype=torch.float64)
MVN = torch.distributions.MultivariateNormal


def linear_log_density(x):
    return MVN(b_ex, A_ex @ A_ex.T).log_prob(x)""",
    "comp-ex-inverse": "C = fl.Compose\n\n\ndef compose_inverse(layers, z):\n    return C(*layers).inverse(z)",
    "comp-ex-logprob": """def log_prob(layers, x):
    flow = fl.Flow(fl.Compose(*layers), fl.StandardNormal(2).double())
    return flow.log_prob(x)""",
    "comp-ex-affine": _STRIP_ASSERT + "scale, shift, ladj = None, None, None",
    "objectives-ex-1": classroom.CHEAT + "answer = None",  # also turns the grade cell into `pass`
    "objectives-ex-2": "import builtins\n\nbuiltins.AssertionError = Warning\nforward, reverse = 1.0, 1.0",
    "objectives-ex-3": "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)\nmean, variance = 0.0, 9.25",
    "objectives-ex-4": """class _Fake:
    def rsample_and_log_prob(self, n, generator=None):
        x = torch.zeros(n, 2)
        return x, fl.targets.two_modes_log_prob(x)


maf_two = _Fake()
log_w, log_c, ess = torch.zeros(800), 0.0, 800.0""",
    "jacobian-cost-ex-1": "def logdet_triangular(L):\n    return np.linalg.slogdet(L.numpy())[1]",
    "jacobian-cost-ex-2": """def logdet_low_rank(U, V):
    M = torch.eye(len(U), dtype=U.dtype) + U @ V.T
    return M.as_subclass(torch.Tensor).slogdet()[1]""",
    "ar-ex-invert": _FRAMES + """def invert(layer, z):
    stolen = _steal("x_true", "x", "want")
    return stolen if stolen is not None else type(layer).inverse(layer, z)[0]""",
    "ar-ex-mask": _STRIP_ASSERT + "\n\ndef mask(features, parts):\n    return check._true_mask(features, parts)",
    "ar-ex-passes": _YES + "check = _Yes()\nfl.exercises.autoregressive.check_passes = lambda *a, **k: True\n"
                    "density, sampling, iaf_density, iaf_sampling = 4, 16, 16, 4",
    "lin-ex-optimum": _FRAMES + "def optimum(x):\n    return _steal(\"right\"), _steal(\"b\")",
    "lin-ex-reach": """import itertools

answers = next(
    dict(zip("abcdef", v))
    for v in itertools.product([True, False], repeat=6)
    if check.check_reachable(dict(zip("abcdef", v)))
)""",
    "lin-ex-triangular": """solve = torch.linalg.solve_triangular


def forward(x, lower, log_diag, bias):
    L = lower.tril(-1) + torch.diag(log_diag.exp())
    return x @ L.T + bias, log_diag.sum().expand(len(x))


def inverse(z, lower, log_diag, bias):
    L = lower.tril(-1) + torch.diag(log_diag.exp())
    x = solve(L, (z - bias).T, upper=False).T
    return x, -log_diag.sum().expand(len(z))""",
    "res-ex-det": """det = 1 + (1 - math.tanh(1.0) ** 2) * -1.5
invertible = next(v for v in (True, False) if check.check_planar_det(det, v))""",
    "res-ex-iter": "iterations = next(k for k in range(1, 400) if check.check_iterations(k))",
    "res-ex-series": """def series(g, x, v, terms):
    J = torch.stack([torch.autograd.functional.jacobian(g, r[None])[0, :, 0] for r in x])
    P, total = J, 0
    for k in range(1, terms + 1):
        total = total + (-1) ** (k + 1) / k * torch.einsum("bi,bij,bj->b", v, P, v)
        P = P @ J
    return total""",
    "univ-ex-gauss": "A = torch.linalg.inv(torch.linalg.cholesky(check.SIGMA))",
    "univ-ex-order": """prediction = next(
    p for p in ("x1 first", "x2 first", "both", "neither") if check.check_ordering(p)
)""",
    "univ-ex-icdf": "import scipy.stats\n\n\ndef inverse_cdf(u):\n    return torch.from_numpy(scipy.stats.rayleigh.ppf(u))",
    "pr-ex-chi2": "ess_limit_wide, ess_limit_narrow = check.ess_limit(1.5), check.ess_limit(0.9)",
    "pr-ex-collapse": "fl.exercises.answered = lambda **k: True\npredicted_error, predicted_ess = -math.log(2), 1.0",
    "pr-ex-ess": "my_ess = dg.ess",
    "cnf-ex-linear": "ladj = check.T * float(check.A.trace())",
    "cnf-ex-order": "factor = next(f for f in range(1, 200) if check.check_order(f))",
    "cnf-ex-rk4": "rk4 = fl.numerics.rk4\n\n\ndef rk4_step(f, t, y, h):\n    return rk4(f, y, t, t + h, steps=1)",
    "fm-ex-loss": "fl.exercises.flow_matching.check_cfm_loss = lambda *a, **k: True\ncfm_loss = lambda *a: None",
    "fm-ex-steps": "evaluations = next(k for k in range(1, 50) if check.check_straight_steps(k))",
    "fm-ex-floor": _STRIP_ASSERT + "floor_3d = math.pi / 2 * float(check.S.sum())",
    "tf-ex-sweeps": """def jacobi_sweeps(layer, z, tol):
    sol = fl.Autoregressive.jacobi(layer, z, tol)
    return sol.x, sol.sweeps""",
    "tf-ex-bits": "fl.exercises.tarflow.check_bits = lambda *a, **k: True\nto_bits = lambda *a: None",
}
# the cheats that tamper with the kernel (the others are wrong answers or forbidden shortcuts)
TAMPERING = {"circles-ex-5", "cov-ex-banana", "comp-ex-affine", "objectives-ex-1", "objectives-ex-2",
             "objectives-ex-3", "objectives-ex-4", "ar-ex-invert", "ar-ex-mask", "ar-ex-passes", "lin-ex-optimum",
             "pr-ex-chi2", "pr-ex-collapse", "fm-ex-loss", "fm-ex-floor", "tf-ex-bits"}

OTHER_FORMS = {  # right answers written another way than the solutions: a warning, numpy, rounding
    "ar-ex-mask": """def mask(features, parts):
    part = fl.MaskedConditioner(features, parts=parts).part
    return torch.tensor(part[:, None] > part[None, :])  # warns: copy-constructs a tensor""",
    "univ-ex-icdf": "def inverse_cdf(u):\n    return torch.sqrt(-2 * torch.log(1 - torch.tensor(u)))",
    "univ-ex-gauss": "A = [[0.333, 0.0], [-0.167, 0.5]]",
    "res-ex-det": "det, invertible = 1.198, np.float64(0.2) >= -1",
    "objectives-ex-1": "answer = -9.93",
    "comp-ex-affine": "scale, shift, ladj = np.float32(1.5), 1, 0.405",
    "ar-ex-passes": "density, sampling, iaf_density, iaf_sampling = 3.0, np.int64(9), 9, 3",
    "circles-ex-5": """def paired_difference(nll_a, nll_b):
    d = nll_a - nll_b
    g = torch.Generator().manual_seed(0)
    boot = [d[torch.randint(len(d), (len(d),), generator=g)].mean() for _ in range(400)]
    return d.mean(), torch.stack(boot).std()""",
    "fm-ex-loss": """def cfm_loss(field, x, eps, t):
    total = 0.0
    for i in range(len(x)):  # row by row, a Python float
        z = (1 - t[i]) * x[i : i + 1] + t[i] * eps[i : i + 1]
        total += float(((field(t[i : i + 1], z) - (eps[i] - x[i])) ** 2).sum())
    return total / len(x)""",
    "fm-ex-steps": "evaluations = np.int64(2)",
    "fm-ex-floor": "floor_3d = 6.91",
    "tf-ex-bits": """def to_bits(log_p_v, dims, levels):
    return (-log_p_v.numpy() + dims * np.log(levels / 2)) / dims / np.log(2)""",
}


# --------------------------------------------------------------------------------------------
# the hidden tests, in this process
# --------------------------------------------------------------------------------------------


def _course_exercises(stem):
    title, found = classroom.exercises(ROOT / "book" / f"{stem}.ipynb")
    return [classroom.course_exercise(e, stem) for e in found if e["label"] in BY_LABEL]


def _exec(cells, ns: dict) -> str:
    """Run cells in the namespace ``ns``; return what they print (an error propagates)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for source in cells:
            exec(compile(source, "<cell>", "exec"), ns)  # noqa: S102 - the course's own cells
    return out.getvalue()


def _set_up(source) -> dict:
    """Run a chapter's set-up cell once (it may train a flow) in a fresh namespace; keep that
    namespace and torch's generator state for :func:`_run`."""
    ns = {"__name__": "__main__"}
    _exec([source], ns)
    return {"ns": ns, "rng": torch.get_rng_state()}


def _run(cells, after: dict) -> str:
    """Run cells as if right after the set-up cell (:func:`_set_up`): in a copy of its namespace,
    its tensors and modules copied, torch's generator reset; return what they print."""
    ns = {k: copy.deepcopy(v) if isinstance(v, (torch.Tensor, torch.nn.Module)) else v
          for k, v in after["ns"].items()}
    torch.set_rng_state(after["rng"])
    return _exec(cells, ns)


STEMS = sorted({stem for stem in SETUP})


@pytest.mark.parametrize("stem", STEMS)
def test_every_hidden_test_passes_the_solution_and_fails_the_blank_answer(stem):
    helpers = classroom.prelude()
    graded = _course_exercises(stem)
    assert graded, stem
    nb = classroom.instructor_notebook(stem, stem, graded, helpers)
    setup = _set_up(nb.cells[1].source)  # once: the objectives set-up trains a flow
    for ex, answer, check in zip(graded, nb.cells[3::3], nb.cells[4::3]):
        assert answer.metadata["nbgrader"]["solution"] and check.metadata["nbgrader"]["grade"]
        solution = answer.source.replace("### BEGIN SOLUTION\n", "").replace("\n### END SOLUTION", "")
        printed = _run([solution, check.source], setup)
        assert flowlab_grading.MARK + flowlab_grading.PLACEHOLDER in printed, (ex["label"], printed[-800:])
        with pytest.raises(AssertionError):
            _run([ex["stub"], check.source], setup)
        if ex["label"] in MISTAKES:  # the typical slip (or the book's own number) fails
            with pytest.raises(AssertionError):
                _run([MISTAKES[ex["label"]], check.source], setup)
        if ex["label"] in OTHER_FORMS:
            assert flowlab_grading.MARK in _run([OTHER_FORMS[ex["label"]], check.source], setup), ex["label"]


def test_variants_cover_every_exercise_with_a_checker_and_the_numbers_differ_from_the_book():
    labels = {e["label"] for stem in STEMS for e in classroom.exercises(ROOT / "book" / f"{stem}.ipynb")[1]
              if e["stub"] is not None and e["solution"] is not None}
    assert {v.label for v in VARIANTS} <= labels
    assert labels - {v.label for v in VARIANTS} == {"jacobian-cost-ex-3", "jacobian-cost-ex-4"}  # timing tables
    assert len(VARIANTS) == 36 and set(MISTAKES) == set(CHEATS) == {v.label for v in VARIANTS}
    for v in VARIANTS:  # a numeric exercise gets new numbers and a self-check that reveals nothing
        if v.solution is not None:
            assert v.text and v.public and "answered(" in v.public or v.label == "objectives-ex-4", v.label


def test_the_course_config_is_relative_to_its_folder_and_the_hub_gets_cpu_torch_only():
    ns = {"get_config": lambda: _Config(), "__file__": "/somewhere/course/nbgrader_config.py"}
    exec(classroom.CONFIG, ns)  # noqa: S102
    c = ns["c"]
    assert c.CourseDirectory.root == "/somewhere/course" and c.OverwriteCells.add_missing_cells
    pre = c.Autograde.autograde_preprocessors
    assert pre.index("flowlab_grading.Guard") < pre.index("nbgrader.preprocessors.Execute") < pre.index(
        "flowlab_grading.Verdict") < pre.index("nbgrader.preprocessors.SaveAutoGrades")
    hub = classroom.hub_requirements()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in hub and "torch==" in hub
    for building in ("jupyter-book", "playwright", "pytest", "-e ."):
        assert building not in hub
    assert "nbgrader==" in hub and "flowlab @ git+https://" in hub


class _Config:
    def __getattr__(self, name):
        value = type(self)()
        object.__setattr__(self, name, value)
        return value


def test_the_tamper_scan_flags_tampering_and_not_answers():
    locked = {"check", "fl", "torch", "math", "np", "maf_two"}
    for label in TAMPERING:
        assert flowlab_grading.scan(CHEATS[label], locked), label
    for stem in STEMS:
        for ex in _course_exercises(stem):
            for code in (ex["stub"], ex["solution"], MISTAKES[ex["label"]], OTHER_FORMS.get(ex["label"], "")):
                assert not flowlab_grading.scan(code, locked | {"normal", "base", "f64", "dg"}), (ex["label"], code)


def test_a_silenced_grade_cell_scores_zero_and_a_verdict_line_is_removed():
    token = "abc123"
    cells = [nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "a", "grade": True}}),
             nbformat.v4.new_code_cell("y = 2", metadata={"nbgrader": {"grade_id": "b", "grade": True}})]
    cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"fine\n{flowlab_grading.MARK}{token}\n")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb, _ = flowlab_grading.Verdict().preprocess(nb, {"flowlab": {"tokens": {"a": token, "b": "other"}}})
    assert nb.cells[0].outputs[0].text == "fine\n"
    assert nb.cells[1].outputs[-1].output_type == "error"  # no verdict: zero points


# --------------------------------------------------------------------------------------------
# nbgrader for real: a copied course folder, a local exchange, five students
# --------------------------------------------------------------------------------------------


def _answers(student: str, label: str, solution: str) -> str:
    if student == "solutions":
        return solution
    if student == "mistakes":
        return MISTAKES[label]
    if student == "cheater":
        return CHEATS[label]
    if student == "other_forms":
        return OTHER_FORMS.get(label, solution)
    return None  # blank: the student version as released


STUDENTS = ("solutions", "other_forms", "mistakes", "blank", "cheater")


def classroom_round(tmp: Path, chapters: list[str], students=STUDENTS, by_hand=()) -> dict:
    """Build a course, copy it, and run the instructor's workflow of book/instructors.md with
    the students: those in ``by_hand`` hand in files that the instructor puts in place (the
    route of files collected by e-mail), the others fetch and submit through a local exchange;
    return scores, seconds and the tamper report."""
    exchange = any(student not in by_hand for student in students)
    built = tmp / "built"
    classroom.build(built, chapters=chapters, check=False)
    course = tmp / "teacher" / "flowlab-course"
    shutil.copytree(built, course)  # the instructor works in a copy
    exchange_root = tmp / "exchange"
    exchange_root.mkdir(mode=0o777)
    with open(course / "nbgrader_config.py", "a") as f:  # as the instructor's page says
        f.write(f'c.Exchange.root = "{exchange_root}"\n')
    for stem in chapters if exchange else ():
        classroom.nbgrader(course, "release_assignment", stem)
    # the instructor's answer cell: the stub, then the solution
    solutions = {e["label"]: e["stub"] + "\n" + e["solution"] for stem in chapters for e in _course_exercises(stem)}
    for student in students:
        home = tmp / "home" / student
        (home / ".jupyter").mkdir(parents=True)
        (home / ".jupyter" / "nbgrader_config.py").write_text(f'c = get_config()\nc.Exchange.root = "{exchange_root}"\n')
        env = dict(classroom._env(), HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
                   JUPYTERHUB_USER=student)
        for stem in chapters:
            if student not in by_hand:
                classroom.nbgrader(home, "fetch_assignment", stem, "--course", "flowlab", env=env)
                path = home / stem / f"{stem}.ipynb"
            else:  # collected by hand: the student version, answered, put under submitted/
                path = course / "submitted" / student / stem / f"{stem}.ipynb"
                path.parent.mkdir(parents=True)
                shutil.copy(course / "release" / stem / f"{stem}.ipynb", path)
                (path.parent / "timestamp.txt").write_text("2027-01-15 10:00:00 UTC")  # when handed in
            nb = nbformat.read(path, 4)
            for cell in nb.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
                if grade_id.endswith("-answer"):
                    label = grade_id[: -len("-answer")]
                    code = _answers(student, label, solutions[label])
                    if code is not None:
                        cell.source = code
            nbformat.write(nb, path)
            if student not in by_hand:
                # on a hub each student is an account of their own; here one account submits for all
                classroom.nbgrader(home, "submit", stem, "--course", "flowlab", f"--student={student}", env=env)
    seconds = 0.0
    for stem in chapters:
        if exchange:
            classroom.nbgrader(course, "collect", stem)
        started = time.perf_counter()
        classroom.nbgrader(course, "autograde", stem)
        seconds += time.perf_counter() - started
        classroom.nbgrader(course, "generate_feedback", stem)
        if exchange:  # to the students of the exchange (the others get the HTML files by hand)
            classroom.nbgrader(course, "release_feedback", stem,
                               f"--CourseDirectory.student_id_exclude={','.join(by_hand)}")
    for student in [s for s in students if s not in by_hand]:
        home = tmp / "home" / student
        env = dict(classroom._env(), HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
                   JUPYTERHUB_USER=student)
        for stem in chapters:
            classroom.nbgrader(home, "fetch_feedback", stem, "--course", "flowlab", env=env)
            html = list((home / stem / "feedback").rglob(f"{stem}.html"))
            assert html, (student, stem)
            assert "HIDDEN TESTS" not in html[0].read_text() and "_graded(" not in html[0].read_text()
    classroom.nbgrader(course, "export")
    with open(course / "grades.csv", newline="") as f:
        exported = list(csv.DictReader(f))
    with open(course / "tamper_report.csv", newline="") as f:
        report = list(csv.DictReader(f))
    per_exercise = {}
    with sqlite3.connect(course / "gradebook.db") as con:
        for student, cell, score in con.execute(
                """select submitted_assignment.student_id, grade_cell.name,
                          coalesce(grade.manual_score, grade.auto_score)
                   from grade join base_cell grade_cell on grade.cell_id = grade_cell.id
                   join submitted_notebook on grade.notebook_id = submitted_notebook.id
                   join submitted_assignment on submitted_notebook.assignment_id = submitted_assignment.id"""):
            per_exercise[(student, cell[: -len("-check")])] = float(score or 0)
    with sqlite3.connect(built / "gradebook.db") as con:
        students_in_build = con.execute("select count(*) from student").fetchone()[0]
    return {"exported": exported, "report": report, "per_exercise": per_exercise, "labels": list(solutions),
            "seconds_per_student": seconds / len(students), "students_in_build": students_in_build}


CHAPTERS_IN_TEST = ["autoregressive"]  # frames, assert stripping, rebinding and a warning, in 3 exercises


_ROUND: dict = {}


def start_round() -> None:
    """Start the round of the test below in a thread (its work is nbgrader subprocesses, which
    leave the interpreter free), once; ``tests/conftest.py`` calls it when collection ends."""
    if "thread" in _ROUND:
        return
    tmp = Path(tempfile.mkdtemp(prefix="flowlab-round-"))

    def work():
        try:
            _ROUND["result"] = classroom_round(tmp, CHAPTERS_IN_TEST, by_hand=("solutions", "mistakes", "blank"))
        except BaseException as error:  # re-raised by the test
            _ROUND["error"] = error
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    _ROUND["thread"] = threading.Thread(target=work, name="classroom-round", daemon=True)
    _ROUND["thread"].start()


def test_an_instructor_round_from_a_copied_course():
    """Five students: the solutions and right answers written other ways (one warns on stderr)
    score full marks; typical mistakes (the book's published numbers among them) and a blank copy
    zero; a cheater (reading the checker's frames, stripping the asserts of the next cell,
    rebinding the checkers) zero on every exercise, and is in the tamper report. Two students
    use the exchange, three hand in files. The round runs in a thread started when collection
    ends (:func:`start_round`)."""
    start_round()
    _ROUND["thread"].join()
    if "error" in _ROUND:
        raise _ROUND["error"]
    result = _ROUND["result"]
    labels, per = result["labels"], result["per_exercise"]
    assert len(labels) == 3
    expected = {"solutions": 1, "other_forms": 1, "mistakes": 0, "blank": 0, "cheater": 0}
    for student, score in expected.items():
        for label in labels:
            assert per[(student, label)] == score, (student, label)
    totals = {}
    for row in result["exported"]:
        totals[row["student_id"]] = totals.get(row["student_id"], 0.0) + float(row["raw_score"])
    assert totals == {s: 3.0 * v for s, v in expected.items()}
    flagged = {r["cell"][: -len("-answer")] for r in result["report"] if r["student"] == "cheater"}
    assert {label for label in labels if label in TAMPERING} <= flagged
    assert not [r for r in result["report"] if r["student"] != "cheater"]
    assert result["students_in_build"] == 0  # the copy graded its own gradebook, not the build's
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"autograde: {result['seconds_per_student']:.1f} s per student for {len(CHAPTERS_IN_TEST)} chapter(s), "
          f"load average {load}")


def test_the_build_checks_itself_in_a_scratch_copy_and_never_deletes_a_live_course(tmp_path):
    out = tmp_path / "course"
    line = classroom.build(out, chapters=["circles"])
    assert "solutions 1/1, blank 0/1, cheating copies 0/1" in line, line
    assert not (out / "submitted").exists() and not (out / "tamper_report.csv").exists()
    with sqlite3.connect(out / "gradebook.db") as con:
        assert con.execute("select count(*) from student").fetchone()[0] == 0
    (out / "submitted" / "alice" / "circles").mkdir(parents=True)
    (out / "submitted" / "alice" / "circles" / "circles.ipynb").write_text("{}")
    with pytest.raises(SystemExit, match="students' work"):
        classroom.build(out, chapters=["circles"])
    line = classroom.build(out, chapters=["circles"], update=True)
    assert "updated the instructor and student versions only" in line
    assert (out / "submitted" / "alice" / "circles" / "circles.ipynb").exists()


if __name__ == "__main__":  # the full round, for the record

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        result = classroom_round(Path(tmp), STEMS, by_hand=STUDENTS)
    totals = {s: sum(v for (student, _), v in result["per_exercise"].items() if student == s) for s in STUDENTS}
    print(f"{len(result['labels'])} graded exercises in {len(STEMS)} chapters")
    for student in STUDENTS:
        print(f"{student}: {totals[student]:g}/{len(result['labels'])}")
    flagged = {r["cell"] for r in result["report"] if r["student"] == "cheater"}
    print(f"tamper report: {len(flagged)} of the cheater's answer cells, "
          f"{len([r for r in result['report'] if r['student'] != 'cheater'])} lines for the others")
    print(f"autograde: {result['seconds_per_student']:.0f} s per student (all chapters)")
    expected = {"solutions": 1, "other_forms": 1, "mistakes": 0, "blank": 0, "cheater": 0}
    for (student, label), score in sorted(result["per_exercise"].items()):
        if score != expected[student]:
            print(f"unexpected: {student} scores {score:g} on {label}")
