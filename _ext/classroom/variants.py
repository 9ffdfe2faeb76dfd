"""The graded versions of the chapters' exercises: what the course changes, and its hidden tests.

Each :class:`Variant` names an exercise of a chapter by its label. The course takes the exercise's
text, stub and solution from the chapter, and replaces what the variant gives:

- ``text``: ``(old, new)`` replacements in the exercise's text (numbers the book does not print,
  sentences about cells that only the chapter has); a replacement that no longer applies stops
  the build, so the course cannot drift from the book unnoticed;
- ``stub`` and ``solution``: the answer cell's code, for exercises whose numbers change;
- ``public``: the self-check the student sees in the grade cell. Exercises that ask for a
  function keep the chapter's checker (a function cannot be found by trying); exercises that ask
  for numbers or a choice only get :func:`flowlab.exercises.answered`, which says whether the
  answer can be graded and never whether it is right;
- ``hidden``: the body of the hidden test, a function of the answers (``names``) that returns
  ``True`` for a right answer. It draws its inputs when it runs, computes the right answer itself
  after the student's code has returned, and uses only the helpers of
  ``flowlab/exercises/_feedback.py``, copied into the hidden test when the course is built (so
  nothing a student can import or rebind decides the grade).

``SETUP`` holds each chapter's locked first cell: the imports and the objects its exercises use.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Variant:
    label: str
    names: tuple[str, ...]
    hidden: str
    text: list[tuple[str, str]] = field(default_factory=list)
    stub: str | None = None
    solution: str | None = None
    public: str | None = None
    title: str | None = None


_IMPORTS = """import math

import numpy as np
import torch

import flowlab as fl
"""

SETUP = {
    "circles": _IMPORTS + "from flowlab.exercises import circles as check\n",
    "change_of_variables": _IMPORTS + """
f64 = torch.float64
normal = torch.distributions.Normal(0.0, 1.0)
base = fl.StandardNormal(2).double()
""",
    "composition": _IMPORTS + "\nf64 = torch.float64\n",
    "objectives": _IMPORTS + """from flowlab.exercises import objectives as check

# the trained flow of the importance-sampling exercise (a few seconds)
torch.set_num_threads(1)
x_two = fl.targets.two_modes(2000, seed=0)
torch.manual_seed(1)
maf_two = fl.Flow(fl.MAF(2, hidden=(32, 32), layers=4), fl.StandardNormal(2))
fl.fit(maf_two, x_two, steps=400, lr=5e-3, batch_size=256, progress=False);
""",
    "jacobian_cost": _IMPORTS + "from flowlab.exercises import jacobians as check\n",
    "autoregressive": _IMPORTS + "from flowlab.exercises import autoregressive as check\n\nf64 = torch.float64\n",
    "linear": _IMPORTS + "from flowlab.exercises import linear as check\n\nf64 = torch.float64\n",
    "residual": _IMPORTS + "from flowlab.exercises import residual as check\n\nf64 = torch.float64\n",
    "universality": _IMPORTS + "from flowlab.exercises import universality as check\n\nf64 = torch.float64\n",
    "practice": _IMPORTS + "from flowlab import diagnostics as dg\nfrom flowlab.exercises import practice as check\n",
    "continuous": _IMPORTS + "from flowlab.exercises import continuous as check\n\nf64 = torch.float64\n",
    "tarflow": _IMPORTS + "from flowlab.exercises import tarflow as check\n",
    "flow_matching": _IMPORTS + "from flowlab.exercises import flow_matching as check\n\nf64 = torch.float64\n",
}

# library densities that answer the change-of-variables exercises without the formula
_DENSITIES = ('("torch.distributions.log_normal", "torch.distributions.transformed_distribution", '
              '"torch.distributions.multivariate_normal", "torch.distributions.lowrank_multivariate_normal", '
              '"scipy.stats")')

def _answered(*names: str) -> str:
    """The self-check that only says whether the answers can be graded (lines within 79)."""
    line = "fl.exercises.answered(" + ", ".join(f"{n}={n}" for n in names) + ")"
    return line if len(line) <= 79 else "fl.exercises.answered(\n" + "".join(f"    {n}={n},\n" for n in names) + ")"


VARIANTS = [
    # ---------------------------------------------------------------------------------- circles
    Variant("circles-ex-5", ("paired_difference",), """
g = torch.Generator().manual_seed(fresh_seed())
n = int(torch.randint(800, 3000, (1,), generator=g))
spread = 1 + 2 * float(torch.rand(1, generator=g))
shared = spread * torch.randn(n, generator=g, dtype=torch.float64)
a = 2.0 + shared + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
b = 2.04 + shared + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
ok, out = call(paired_difference, a.clone(), b.clone(), name="paired_difference")
if not ok:
    return False
if not isinstance(out, (tuple, list)) or len(out) != 2:
    say("Not right: paired_difference should return (mean difference, standard error).")
    return False
mean, se = number("the mean difference", out[0]), number("the standard error", out[1])
if mean is None or se is None:
    return False
d = a - b
right_mean, right_se = float(d.mean()), float(d.std()) / math.sqrt(n)
return agrees(mean, right_mean) and abs(se / right_se - 1) <= 0.15
"""),
    # ---------------------------------------------------------------------- change of variables
    Variant("cov-ex-lognormal", ("lognormal_log_density",), """
g = torch.Generator().manual_seed(fresh_seed())
scale = 0.5 + float(torch.rand(1, generator=g))
x = torch.exp(scale * torch.randn(400, generator=g, dtype=torch.float64))
got = _density(lognormal_log_density, x, "lognormal_log_density")
if got is None:
    return False
logx = torch.log(x)
return close(got, -0.5 * logx**2 - 0.5 * math.log(2 * math.pi) - logx)
"""),
    Variant("cov-ex-banana", ("banana_forward",), """
g = torch.Generator().manual_seed(fresh_seed())
x = 2 * torch.randn(300, 2, generator=g, dtype=torch.float64)
ok, out = call(banana_forward, x.clone(), name="banana_forward")
if not ok:
    return False
if not (isinstance(out, (tuple, list)) and len(out) == 2):
    say("Not right: banana_forward should return a pair (z, ladj).")
    return False
z = tensor("z", out[0], (300, 2))
ladj = None if z is None else tensor("ladj", out[1], (300,), "one value per row")
if ladj is None:
    return False
right = torch.stack([x[:, 0] / 2, x[:, 1] - x[:, 0] ** 2], dim=1)
return close(z, right) and close(ladj, torch.full((300,), -math.log(2), dtype=torch.float64))
"""),
    Variant("cov-ex-linear", ("linear_log_density",), """
A = torch.tensor([[0.8, 0.0], [-0.6, 1.25]], dtype=torch.float64)
b = torch.tensor([-0.5, 2.0], dtype=torch.float64)
g = torch.Generator().manual_seed(fresh_seed())
x = b + 2 * torch.randn(400, 2, generator=g, dtype=torch.float64)
got = _density(linear_log_density, x, "linear_log_density")
if got is None:
    return False
z = torch.linalg.solve(A, (x - b).T).T
return close(got, -0.5 * (z**2).sum(-1) - math.log(2 * math.pi) - math.log(0.8 * 1.25))
""", text=[("with the matrix and shift stored in\n`fl.exercises.change_of_variables.A` and `.b`.",
            "with\n$A = \\begin{pmatrix} 0.8 & 0 \\\\ -0.6 & 1.25 \\end{pmatrix}$ and $b = (-0.5, 2)$ "
            "(`A_ex` and `b_ex` in the answer cell).")],
        stub="""A_ex = torch.tensor([[0.8, 0.0], [-0.6, 1.25]], dtype=torch.float64)
b_ex = torch.tensor([-0.5, 2.0], dtype=torch.float64)


def linear_log_density(x):
    # your code here: return log p_X(x), shape (n,)
    return None""",
        public="fl.exercises.change_of_variables.check_linear_log_density(\n"
               "    linear_log_density, A=A_ex, b=b_ex\n)"),
    # ------------------------------------------------------------------------------ composition
    Variant("comp-ex-inverse", ("compose_inverse",), """
layers, g = _layers(), torch.Generator().manual_seed(fresh_seed())
z = 1.5 * torch.randn(300, 2, generator=g, dtype=torch.float64)
ok, out = _watched(compose_inverse, layers, z, "compose_inverse")
if not ok or not (isinstance(out, (tuple, list)) and len(out) == 2):
    return False
x = tensor("x", out[0], (300, 2))
ladj = None if x is None else tensor("ladj", out[1], (300,), "one value per row")
if ladj is None:
    return False
with torch.no_grad():
    y, total = z, 0
    for t in reversed(layers):
        y, l = t.inverse(y)
        total = total + l
return close(x, y) and close(ladj, total)
"""),
    Variant("comp-ex-logprob", ("log_prob",), """
layers, g = _layers(), torch.Generator().manual_seed(fresh_seed())
x = 1.5 * torch.randn(300, 2, generator=g, dtype=torch.float64)
ok, out = _watched(log_prob, layers, x, "log_prob")
got = tensor("the log-density", out, (300,)) if ok else None
if got is None:
    return False
with torch.no_grad():
    y, total = x, 0
    for t in layers:
        y, l = t(y)
        total = total + l
return close(got, -0.5 * (y**2).sum(-1) - math.log(2 * math.pi) + total)
"""),
    Variant("comp-ex-affine", ("scale", "shift", "ladj"), """
values = [number(n, v) for n, v in (("scale", scale), ("shift", shift), ("ladj", ladj))]
if any(v is None for v in values):
    return False
return agrees(values[0], 1.5) and agrees(values[1], 1.0) and agrees(values[2], math.log(1.5))
""", text=[("$g_1(x) = 2x + 1$, $g_2(y) = y/2 - 3$, $g_3(y) = 3y$",
            "$g_1(x) = 3x - 2$, $g_2(y) = y/4 + 1$, $g_3(y) = 2y$")],
        solution="scale, shift = 3 / 4 * 2, 2 * (-2 / 4 + 1)\n"
                 "ladj = math.log(3) + math.log(1 / 4) + math.log(2)",
        public=_answered("scale", "shift", "ladj")),
    # ------------------------------------------------------------------------------- objectives
    Variant("objectives-ex-1", ("answer",), """
value = number("answer", answer)
return value is not None and agrees(value, -3.5 * math.log(2 * math.pi * math.e))
""", text=[("for $d = 10$ dimensions and check your value with the cell below.",
            "for $d = 7$ dimensions, to three significant digits.")],
        stub="answer = None  # your value of E[log p_Z(Z)] for d = 7",
        solution="answer = -3.5 * math.log(2 * math.pi * math.e)", public=_answered("answer")),
    Variant("objectives-ex-2", ("forward", "reverse"), """
f, r = number("forward", forward), number("reverse", reverse)
if f is None or r is None:
    return False
right_f = math.log(0.8) + (1 + 0.25) / (2 * 0.64) - 0.5
right_r = math.log(1 / 0.8) + (0.64 + 0.25) / 2 - 0.5
return agrees(f, right_f) and agrees(r, right_r)
""", text=[("the model $q = \\mathcal N(1, 0.5^2)$", "the model $q = \\mathcal N(-0.5, 0.8^2)$"),
           ("(reverse).", "(reverse), in closed form to three significant digits.")],
        solution="forward = math.log(0.8) + (1 + 0.25) / (2 * 0.64) - 0.5\n"
                 "reverse = math.log(1 / 0.8) + (0.64 + 0.25) / 2 - 0.5",
        public=_answered("forward", "reverse")),
    Variant("objectives-ex-3", ("mean", "variance"), """
m, v = number("mean", mean), number("variance", variance)
return m is not None and v is not None and abs(m) <= 1e-3 and agrees(v, 0.49 + 4.0)
""", text=[("For the two-bump target of this chapter (centres $(\\pm 3, 0)$, $\\sigma = 0.5$, equal weights)",
            "For a two-bump target (centres $(\\pm 2, 0)$, $\\sigma = 0.7$, equal weights)"),
           (" Compare with the forward fit above.", "")],
        solution="mean, variance = 0.0, 0.7**2 + 2.0**2", public=_answered("mean", "variance")),
    Variant("objectives-ex-4", ("log_w", "log_c", "ess"), """
import flowlab as fl
with torch.random.fork_rng(devices=[]):  # the trained flow, trained again here
    torch.manual_seed(1)
    flow = fl.Flow(fl.MAF(2, hidden=(32, 32), layers=4), fl.StandardNormal(2))
    fl.fit(flow, fl.targets.two_modes(2000, seed=0), steps=400, lr=5e-3, batch_size=256, progress=False)
got = tensor("log_w", log_w, (800,), "one log-weight per sample")
lc, e = number("log_c", log_c), number("ess", ess)
if got is None or lc is None or e is None:
    return False
with torch.no_grad():
    x, log_q = flow.rsample_and_log_prob(800, generator=torch.Generator().manual_seed(17))
    right = (fl.targets.two_modes_log_prob(x) - log_q).double()
right_lc = float(torch.logsumexp(right, 0) - math.log(800))
right_e = float(torch.exp(2 * torch.logsumexp(right, 0) - torch.logsumexp(2 * right, 0)))
return (close(got, right, 1e-4) and (agrees(lc, right_lc) or close(lc, right_lc, 1e-4))
        and (agrees(e, right_e) or close(e, right_e, 1e-4)))
""", text=[("Draw $n = 1000$ samples", "Draw $n = 800$ samples"),
           ("rsample_and_log_prob(1000, generator=torch.Generator().manual_seed(5))",
            "rsample_and_log_prob(800, generator=torch.Generator().manual_seed(17))"),
           (": the two formulas that\n`importance_log_c` evaluates, written out.", ".")],
        solution="""generator = torch.Generator().manual_seed(17)
with torch.no_grad():
    x, log_q = maf_two.rsample_and_log_prob(800, generator=generator)
    log_w = fl.targets.two_modes_log_prob(x) - log_q
log_c = torch.logsumexp(log_w, 0) - math.log(800)
ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))""",
        public="check.check_importance_estimate(\n    maf_two, log_w, log_c, ess, n=800, seed=17\n)"),
    # ---------------------------------------------------------------------------- jacobian cost
    Variant("jacobian-cost-ex-1", ("logdet_triangular",), """
g = torch.Generator().manual_seed(fresh_seed())


def triangular(d, big):
    size = (2.0 if big else 0.5) + torch.rand(d, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(d, generator=g) < 0.4, -1.0, 1.0).double()
    return torch.randn(d, d, generator=g, dtype=torch.float64).tril(-1) + torch.diag(size * sign)


for L in (triangular(7, False), triangular(4, False), triangular(800, True)):
    value = _logdet(logdet_triangular, (L,), 0, "logdet_triangular")
    if value is None or not close(value, float(L.diagonal().abs().log().sum())):
        return False
return True
"""),
    Variant("jacobian-cost-ex-2", ("logdet_low_rank",), """
g = torch.Generator().manual_seed(fresh_seed())
for d, k in ((400, 2), (250, 3)):
    U = torch.randn(d, k, generator=g, dtype=torch.float64) / math.sqrt(d)
    V = torch.randn(d, k, generator=g, dtype=torch.float64)
    value = _logdet(logdet_low_rank, (U, V), k, "logdet_low_rank")
    right = float(torch.linalg.slogdet(torch.eye(k, dtype=torch.float64) + V.T @ U).logabsdet)
    if value is None or not close(value, right):
        return False
return True
"""),
    # --------------------------------------------------------------------------- autoregressive
    Variant("ar-ex-invert", ("invert",), """
import flowlab as fl
seed = fresh_seed() % 2**31
g = torch.Generator().manual_seed(seed)
for kind in ("masked", "rnn"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "masked":
            cond = fl.MaskedConditioner(6, parts=2 + seed % 3, hidden=(32, 32))
        else:
            cond = fl.RNNConditioner(6, hidden=16)
        layer = fl.Autoregressive(cond, fl.RQSpline(bins=6, bound=4.0))
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.3 * torch.randn(p.shape))
    layer = layer.double().requires_grad_(False)
    z = torch.randn(100, 6, generator=g, dtype=torch.float64)
    forward = type(layer.conditioner).forward
    watch = Watch(code=[fl.Autoregressive.inverse, type(layer).inverse], count=[forward])
    ok, out = call(invert, layer, z.clone(), name="invert", watch=watch)
    if watch.used:
        say("Not right: it runs the layer's own inverse, which the exercise asks you to write.")
        return False
    x = tensor("invert(layer, z)", out, (100, 6)) if ok else None
    if x is None:
        return False
    with torch.no_grad():
        back = layer(x)[0]
    if not close(back, z, 1e-7) or watch.count(forward) != layer.passes:
        return False
return True
"""),
    Variant("ar-ex-mask", ("mask",), """
g = torch.Generator().manual_seed(fresh_seed())
cases = [(6, 3)]
for _ in range(6):
    d = int(torch.randint(2, 11, (1,), generator=g))
    cases.append((d, int(torch.randint(1, d + 1, (1,), generator=g))))
for d, K in cases:
    ok, out = call(mask, d, K, name="mask")
    got = tensor(f"mask({d}, {K})", out, (d, d)) if ok else None
    if got is None or not ((got == 0) | (got == 1)).all():
        return False
    part = torch.arange(d) * K // d
    if not torch.equal(got != 0, part[:, None] > part[None, :]):
        return False
return True
"""),
    Variant("ar-ex-passes", ("density", "sampling", "iaf_density", "iaf_sampling"), """
values = [whole(n, v) for n, v in zip(("density", "sampling", "iaf_density", "iaf_sampling"),
                                       (density, sampling, iaf_density, iaf_sampling))]
return values == [3, 9, 9, 3]
""", text=[("A MAF has $L = 4$ layers in $d = 10$ dimensions, each with a masked conditioner of $K = 5$ parts.",
            "A MAF has $L = 3$ layers in $d = 12$ dimensions, each with a masked conditioner of $K = 4$ parts.")],
        solution="density, sampling = 3, 9\niaf_density, iaf_sampling = 9, 3",
        public=_answered("density", "sampling", "iaf_density", "iaf_sampling")),
    # ----------------------------------------------------------------------------------- linear
    Variant("lin-ex-optimum", ("optimum",), """
g = torch.Generator().manual_seed(fresh_seed())
for n, d in ((60, 2), (150, 3), (90, 4)):
    A = torch.randn(d, d, generator=g, dtype=torch.float64).tril()
    A.diagonal().abs_().add_(0.3)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ A.T + 3 * torch.randn(d, generator=g, dtype=torch.float64)
    ok, out = call(optimum, x.clone(), name="optimum")
    if not ok or not (isinstance(out, (tuple, list)) and len(out) == 2):
        return False
    L, b = tensor("L", out[0], (d, d)), tensor("b", out[1], (d,))
    if L is None or b is None:
        return False
    m = x.mean(0)
    right = torch.linalg.inv(torch.linalg.cholesky((x - m).T @ (x - m) / n))
    if not (close(L, right) and close(b, -right @ m)):
        return False
return True
"""),
    Variant("lin-ex-reach", ("answers",), """
matrices = {"a": [[1.0, 2.0], [0.0, 3.0]], "b": [[-2.0, 1.0], [1.0, 1.0]], "c": [[2.0, 0.0], [1.0, -1.0]],
            "d": [[3.0, 1.0], [2.0, 1.0]], "e": [[0.0, -1.0], [1.0, 0.0]], "f": [[-1.0, 2.0], [1.0, -3.0]]}
if not isinstance(answers, dict):
    return False
for key, W in matrices.items():
    given = flag(f"answers[{key!r}]", answers.get(key))
    if given is None or given != (W[0][0] > 0 and W[0][0] * W[1][1] - W[0][1] * W[1][0] > 0):
        return False
return True
""", text=[("matrix of `check.MATRICES`,", "matrix below (`MATRICES` in the answer cell),"),
           ("a = \\begin{pmatrix} 2 & 1 \\\\ 1 & 1 \\end{pmatrix},\\;\n"
            "b = \\begin{pmatrix} 0 & 1 \\\\ 1 & 0 \\end{pmatrix},\\;\n"
            "c = \\begin{pmatrix} 1 & 0 \\\\ 0 & -1 \\end{pmatrix},\\;\n"
            "d = \\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix},\\;\n"
            "e = \\begin{pmatrix} 0.5 & 0 \\\\ 3 & 2 \\end{pmatrix},\\;\n"
            "f = \\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix},",
            "a = \\begin{pmatrix} 1 & 2 \\\\ 0 & 3 \\end{pmatrix},\\;\n"
            "b = \\begin{pmatrix} -2 & 1 \\\\ 1 & 1 \\end{pmatrix},\\;\n"
            "c = \\begin{pmatrix} 2 & 0 \\\\ 1 & -1 \\end{pmatrix},\\;\n"
            "d = \\begin{pmatrix} 3 & 1 \\\\ 2 & 1 \\end{pmatrix},\\;\n"
            "e = \\begin{pmatrix} 0 & -1 \\\\ 1 & 0 \\end{pmatrix},\\;\n"
            "f = \\begin{pmatrix} -1 & 2 \\\\ 1 & -3 \\end{pmatrix},"),
           (" Write down your answers\nfirst, then run the cell after the checker: it fits the layer to each matrix "
            "and prints the\ndistance it reaches.", "")],
        stub="""MATRICES = {
    "a": [[1.0, 2.0], [0.0, 3.0]],
    "b": [[-2.0, 1.0], [1.0, 1.0]],
    "c": [[2.0, 0.0], [1.0, -1.0]],
    "d": [[3.0, 1.0], [2.0, 1.0]],
    "e": [[0.0, -1.0], [1.0, 0.0]],
    "f": [[-1.0, 2.0], [1.0, -3.0]],
}
# your predictions: True or False for each matrix
answers = {"a": None, "b": None, "c": None, "d": None, "e": None, "f": None}""",
        solution="answers = dict(a=True, b=False, c=False, d=True, e=False, f=False)",
        public=_answered("answers")),
    Variant("lin-ex-triangular", ("forward", "inverse"), """
g = torch.Generator().manual_seed(fresh_seed())
for d in (4, 1, 30):
    lower = torch.randn(d, d, generator=g, dtype=torch.float64)
    log_diag = 0.5 * torch.randn(d, generator=g, dtype=torch.float64)
    bias = torch.randn(d, generator=g, dtype=torch.float64)
    x, z = torch.randn(40, d, generator=g, dtype=torch.float64), 2 * torch.randn(40, d, generator=g, dtype=torch.float64)
    for name, fn, inp in (("forward", forward, x), ("inverse", inverse, z)):
        watch = Watch(factorizations=0, modules=("numpy.linalg", "scipy.linalg"))
        ok, out = call(fn, inp.clone(), lower.clone(), log_diag.clone(), bias.clone(), name=name, watch=watch)
        if watch.used:
            say(f"Not right: {name} computes {watch.used[0]}, which the exercise forbids.")
            return False
        if not ok or not (isinstance(out, (tuple, list)) and len(out) == 2):
            return False
        y = tensor(f"the points {name} returns", out[0], (40, d))
        ladj = None if y is None else tensor(f"the ladj {name} returns", out[1], (40,), "one value per row")
        if ladj is None:
            return False
        L = lower.tril(-1) + torch.diag(log_diag.exp())
        if name == "forward":
            want, want_ladj = inp @ L.T + bias, log_diag.sum().expand(40)
        else:
            want, want_ladj = torch.linalg.solve_triangular(L, (inp - bias).T, upper=False).T, -log_diag.sum().expand(40)
        if not (close(y, want, 1e-8) and close(ladj, want_ladj, 1e-8)):
            return False
return True
"""),
    # --------------------------------------------------------------------------------- residual
    Variant("res-ex-det", ("det", "invertible"), """
value, verdict = number("det", det), flag("invertible", invertible)
if value is None or verdict is None:
    return False
a, wu = 1.0 * 0.3 - 1.0 * 0.2 + 0.0, 1.0 * 0.6 - 1.0 * 0.4
return agrees(value, 1 + (1 - math.tanh(a) ** 2) * wu) and verdict == (wu >= -1)
""", text=[("$w = (1, 2)$, $u = (0.5, -1)$, $b = 0.5$", "$w = (1, -1)$, $u = (0.6, 0.4)$, $b = 0$"),
           ("at $z = (0.3, 0.1)$", "at $z = (0.3, 0.2)$")],
        solution="""w, u = np.array([1.0, -1.0]), np.array([0.6, 0.4])
b, z = 0.0, np.array([0.3, 0.2])
a = w @ z + b
det = 1 + (1 - np.tanh(a) ** 2) * (w @ u)
invertible = bool(w @ u >= -1)""", public=_answered("det", "invertible")),
    Variant("res-ex-iter", ("iterations",), """
return whole("iterations", iterations) == math.ceil(math.log(1e-5 * (1 - 0.8)) / math.log(0.8))
""", text=[("$\\mathrm{Lip}(g) \\le c = 0.9$", "$\\mathrm{Lip}(g) \\le c = 0.8$"),
           ("an\nerror of at most $10^{-6}$", "an\nerror of at most $10^{-5}$"),
           ("Predict first; then run the fixed point on `check.iteration_block()` (a block\n"
            "with exactly these numbers for the point `check.ITERATION_POINT`) and compare.", "")],
        stub="iterations = None  # the smallest k with c^k / (1 - c) <= 1e-5", title="Predict the iterations",
        solution="iterations = math.ceil(math.log(1e-5 * (1 - 0.8)) / math.log(0.8))",
        public=_answered("iterations")),
    Variant("res-ex-series", ("series",), """
g = torch.Generator().manual_seed(fresh_seed())
x = torch.randn(6, 3, generator=g, dtype=torch.float64)
v = (2 * torch.randint(0, 2, (6, 3), generator=g) - 1).to(torch.float64)
p = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(3, 3, generator=g, dtype=torch.float64)
a = p @ torch.diag(1.2 * torch.rand(3, generator=g, dtype=torch.float64) - 0.6) @ torch.linalg.inv(p)
w1 = 0.5 * torch.randn(8, 3, generator=g, dtype=torch.float64)
w2 = 0.5 * torch.randn(3, 8, generator=g, dtype=torch.float64)
for f in (lambda y: y @ a.T, lambda y: torch.tanh(y @ w1.T) @ w2.T):
    for n in (1, 4):
        watch = Watch(modules=("torch.autograd.functional", "torch._functorch"))
        ok, out = call(series, f, x.clone(), v.clone(), n, name="series", watch=watch)
        if watch.used:
            say(f"Not right: it computes the full Jacobian ({watch.used[0]}).")
            return False
        got = tensor("series(g, x, v, terms)", out, (6,)) if ok else None
        if got is None:
            return False
        with torch.enable_grad():
            xr = x.clone().requires_grad_(True)
            fx = f(xr)
            jac = torch.stack([torch.autograd.grad(fx[:, i].sum(), xr, retain_graph=True)[0] for i in range(3)], 1)
        power, right = jac.detach(), torch.zeros(6, dtype=torch.float64)
        for k in range(1, n + 1):
            right = right + (-1) ** (k + 1) / k * torch.einsum("bi,bij,bj->b", v, power, v)
            power = power @ jac.detach()
        if not close(got, right, 1e-9):
            return False
return True
"""),
    # ----------------------------------------------------------------------------- universality
    Variant("univ-ex-gauss", ("A",), """
M = tensor("A", A, (2, 2))
if M is None:
    return False
right = [1 / 3, 0.0, -1 / 6, 1 / 2]
return all(agrees(float(m), r) if r else abs(float(m)) <= 5e-4 for m, r in zip(M.flatten(), right))
""", text=[("$\\Sigma = \\begin{pmatrix} 4 & 2 \\\\ 2 & 2 \\end{pmatrix}$\n(`check.SIGMA`)",
            "$\\Sigma = \\begin{pmatrix} 9 & 3 \\\\ 3 & 5 \\end{pmatrix}$"),
           ("give the matrix $A$.", "give the matrix $A$ (entries to three significant digits).")],
        solution="SIGMA = torch.tensor([[9.0, 3.0], [3.0, 5.0]], dtype=torch.float64)\n"
                 "A = torch.linalg.inv(torch.linalg.cholesky(SIGMA))",
        public=_answered("A")),
    Variant("univ-ex-order", ("prediction",), """
words = {"x1": "x1", "x1 first": "x1", "x1 -> x2": "x1", "(0, 1)": "x1", "0, 1": "x1",
         "x2": "x2", "x2 first": "x2", "x2 -> x1": "x2", "(1, 0)": "x2", "1, 0": "x2"}
key = str(tuple(prediction)) if isinstance(prediction, (tuple, list)) else str(prediction)
return words.get(key.strip().lower().replace("\\u2192", "->")) == "x1"
""", text=[("Take $x_2 \\sim \\mathcal N(0, 1)$ and $x_1 \\mid x_2 \\sim \\mathcal N(x_2^2, 0.3^2)$: the banana\n"
            "lying on its side.",
            "Take $x_1 \\sim \\mathcal N(0, 1)$ and $x_2 \\mid x_1 \\sim \\mathcal N(x_1^2, 0.3^2)$: a banana\n"
            "standing up."),
           (" Then run the cell after the check, which trains both orders.", "")],
        solution='prediction = "x1 first"',
        public='fl.exercises.answered(\n    prediction=prediction,\n'
               '    choices=("x1 first", "x2 first", "both", "neither"),\n)'),
    Variant("univ-ex-icdf", ("inverse_cdf",), """
g = torch.Generator().manual_seed(fresh_seed())
u = torch.rand(1500, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
watch = Watch(modules=("flowlab.numerics", "scipy.stats", "scipy.special", "scipy.interpolate"))
ok, out = call(inverse_cdf, u.clone(), name="inverse_cdf", watch=watch)
if watch.used:
    say(f"Not right: it uses {watch.used[0]}; the exercise asks for a closed form.")
    return False
x = tensor("inverse_cdf(u)", out, (1500,)) if ok else None
return x is not None and bool(torch.allclose(x, torch.sqrt(-2 * torch.log1p(-u)), rtol=1e-9, atol=1e-9))
"""),
    # --------------------------------------------------------------------------------- practice
    Variant("pr-ex-chi2", ("ess_limit_wide", "ess_limit_narrow"), """
wide, narrow = number("ess_limit_wide", ess_limit_wide), number("ess_limit_narrow", ess_limit_narrow)
if wide is None or narrow is None:
    return False
return agrees(wide, math.sqrt(2 * 1.5**2 - 1) / 1.5**2) and agrees(narrow, math.sqrt(2 * 0.9**2 - 1) / 0.9**2)
""", text=[("for\n$s = 2$ and for $s = 0.8$ (", "for\n$s = 1.5$ and for $s = 0.9$, to three significant digits (")],
        stub="ess_limit_wide, ess_limit_narrow = None, None  # s = 1.5 and s = 0.9",
        solution="ess_limit_wide = math.sqrt(2 * 1.5**2 - 1) / 1.5**2\n"
                 "ess_limit_narrow = math.sqrt(2 * 0.9**2 - 1) / 0.9**2",
        public=_answered("ess_limit_wide", "ess_limit_narrow")),
    Variant("pr-ex-collapse", ("predicted_error", "predicted_ess"), """
e, f = number("predicted_error", predicted_error), number("predicted_ess", predicted_ess)
return e is not None and f is not None and agrees(e, math.log(0.3)) and agrees(f, 1.0, digits=2)
""", text=[("A proposal $q$ is *exactly* one of the two bumps of `two_modes_log_prob` (equal weights),\n"
            "normalised.",
            "The target is `two_modes_log_prob(x, weight=0.3)`: its left bump carries 30% of the\n"
            "mass. A proposal $q$ is *exactly* that left bump, normalised."),
           ("\nThen run the cell, which builds that proposal and measures both.", "")],
        solution="predicted_error, predicted_ess = math.log(0.3), 1.0",
        public=_answered("predicted_error", "predicted_ess")),
    Variant("pr-ex-ess", ("my_ess",), """
g = torch.Generator().manual_seed(fresh_seed())
shift = float(torch.randint(-100, 100, (1,), generator=g))
cases = [torch.randn(150, generator=g, dtype=torch.float64),
         650.0 + shift + 2.0 * torch.randn(400, generator=g, dtype=torch.float64),
         -750.0 + shift + 0.1 * torch.randn(300, generator=g, dtype=torch.float64),
         torch.cat([torch.zeros(1, dtype=torch.float64), -30.0 + torch.randn(79, generator=g, dtype=torch.float64)])]
for log_w in cases:
    watch = Watch(modules=("flowlab.diagnostics",))
    ok, out = call(my_ess, log_w.clone(), name="my_ess", watch=watch)
    if watch.used:
        say(f"Not right: it uses {watch.used[0]}, the library's answer.")
        return False
    value = number("my_ess(log_w)", out) if ok else None
    right = float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)))
    if value is None or not close(value, right):
        return False
return True
"""),
    # ------------------------------------------------------------------------------- continuous
    Variant("cnf-ex-linear", ("ladj",), """
value = number("ladj", ladj)
return value is not None and agrees(value, 3 * (-0.5 + 0.25))
""", text=[("$A = \\begin{pmatrix} 0.5 & 2 \\\\ -1 & -1.5 \\end{pmatrix}$\n(`check.A`)",
            "$A = \\begin{pmatrix} -0.5 & 1 \\\\ 2 & 0.25 \\end{pmatrix}$"),
           ("for $T = 2$\n(`check.T`)?", "for $T = 3$?")],
        solution="ladj = 3 * (-0.5 + 0.25)", public=_answered("ladj")),
    Variant("cnf-ex-order", ("factor",), """
value = number("factor", factor)
return value is not None and agrees(value, 81.0)
""", text=[("and then with $2N$ steps", "and then with $3N$ steps"),
           (" Enter your prediction, then run the cell below it, which\nmeasures the factor on the random CNF of this "
            "chapter.", "")],
        solution="factor = 3**4", public=_answered("factor"), title="Predict: tripling the steps"),
    Variant("cnf-ex-rk4", ("rk4_step",), """
g = torch.Generator().manual_seed(fresh_seed())
alpha, beta, gamma = (0.5 + torch.rand(3, generator=g, dtype=torch.float64)).tolist()
y = torch.randn(4, 2, generator=g, dtype=torch.float64)
t, h = float(torch.rand(1, generator=g)), 0.1 + 0.3 * float(torch.rand(1, generator=g))


def f(t, y):
    t = torch.as_tensor(t, dtype=y.dtype)
    return torch.stack([y[..., 1] * torch.cos(alpha * t), -torch.sin(beta * y[..., 0]) + gamma * t * y[..., 1]], -1)


watch = Watch(modules=("flowlab.numerics", "torchdiffeq", "scipy.integrate"), count=[f])
ok, out = call(rk4_step, f, t, y.clone(), h, name="rk4_step", watch=watch)
if watch.used:
    say(f"Not right: the step calls a library solver ({watch.used[0]}).")
    return False
got = tensor("rk4_step(f, t, y, h)", out, (4, 2)) if ok else None
if got is None or watch.count(f) != 4:
    return False
k1 = f(t, y)
k2 = f(t + h / 2, y + h / 2 * k1)
k3 = f(t + h / 2, y + h / 2 * k2)
k4 = f(t + h, y + h * k3)
return bool(torch.allclose(got, y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), atol=1e-10))
"""),
    # ---------------------------------------------------------------------------- flow matching
    Variant("fm-ex-loss", ("cfm_loss",), """
g = torch.Generator().manual_seed(fresh_seed())
n = int(torch.randint(40, 120, (1,), generator=g))
weights = (torch.randn(3, 16, generator=g, dtype=torch.float64), 0.5 * torch.randn(16, generator=g, dtype=torch.float64),
           0.7 * torch.randn(16, 2, generator=g, dtype=torch.float64))


def field_of(w1, b1, w2):
    def field(t, z):  # a random time-conditioned field (data at t = 0)
        t = torch.as_tensor(t, dtype=z.dtype).reshape(-1, 1).expand(len(z), 1)
        return torch.tanh(torch.cat([z, t], 1) @ w1 + b1) @ w2
    return field


x = 1.5 * torch.randn(n, 2, generator=g, dtype=torch.float64) + torch.randn(2, generator=g, dtype=torch.float64)
eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
t = torch.rand(n, generator=g, dtype=torch.float64)
ok, out = call(cfm_loss, field_of(*[w.clone() for w in weights]), x.clone(), eps.clone(), t.clone(), name="cfm_loss")
value = number("the value of cfm_loss", out) if ok else None
if value is None:
    return False
field = field_of(*weights)
z = (1 - t)[:, None] * x + t[:, None] * eps
return close(value, float((field(t, z) - (eps - x)).square().sum(1).mean()), 1e-8)
"""),
    Variant("fm-ex-steps", ("evaluations",), """
return whole("evaluations", evaluations) == 2
""", text=[("How\nmany Euler steps, from $t = 1$ to $t = 0$, give its samples exactly (up to rounding)? Enter your\n"
            "prediction, then run the cell below it. It builds such a field, the velocity of the straight\n"
            "interpolation $z_t = (1-t)x + t\\,T(x)$ between the Gaussian data of this chapter and the base,\n"
            "where $T(x) = (x - \\mu)/s$ is the map that standardizes them, and compares Euler's samples with\n"
            "the exact ones, $x = \\mu + s\\,\\varepsilon$.",
            "How\nmany evaluations of the field does the midpoint method (two evaluations per step) need, from\n"
            "$t = 1$ to $t = 0$, to give its samples exactly (up to rounding)?")],
        stub="evaluations = None  # your prediction: a whole number",
        solution="evaluations = 2  # one midpoint step", public=_answered("evaluations"),
        title="Predict: the field evaluations a straight field needs"),
    Variant("fm-ex-floor", ("floor_3d",), """
value = number("floor_3d", floor_3d)
return value is not None and agrees(value, math.pi / 2 * (1.5 + 0.4 + 2.5))
""", text=[("$s = (2, 0.3, 1)$ (`check.S`)", "$s = (1.5, 0.4, 2.5)$"),
           ("The checker accepts three significant digits.", "Give it to three significant digits.")],
        stub="floor_3d = None  # a number, for s = (1.5, 0.4, 2.5)",
        solution="floor_3d = math.pi / 2 * (1.5 + 0.4 + 2.5)", public=_answered("floor_3d")),
    # ---------------------------------------------------------------------------------- tarflow
    Variant("tf-ex-sweeps", ("jacobi_sweeps",), """
import flowlab as fl
g = torch.Generator().manual_seed(fresh_seed())
for features, parts, strength, tol in ((12, 6, 0.003, 1e-2), (16, 8, 0.01, 1e-4), (12, 4, 0.3, 1e-6),
                                       (8, 8, 0.6, 0.0)):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        layer = fl.Autoregressive(fl.TransformerConditioner(features, parts=parts, hidden=16, heads=2), fl.Affine())
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(strength * torch.randn(p.shape))
    layer = layer.double().requires_grad_(False)
    z = torch.randn(30, features, generator=g, dtype=torch.float64)
    watch = Watch(code=[fl.Autoregressive.inverse, fl.Autoregressive.jacobi, fl.numerics.jacobi])
    with torch.no_grad():
        ok, out = call(jacobi_sweeps, layer, z.clone(), tol, name="jacobi_sweeps", watch=watch)
    if watch.used:
        say(f"Not right: it runs {watch.used[0]}, the library's inverse.")
        return False
    if not ok or not isinstance(out, (tuple, list)) or len(out) != 2:
        return False
    x, sweeps = tensor("x", out[0], tuple(z.shape)), whole("sweeps", out[1])
    if x is None or sweeps is None:
        return False
    with torch.no_grad():  # the reference: sweeps from part 0's constants, at most K - 1
        right = layer.transformer.inverse(z, layer.conditioner.initial(z))[0]
        count = 0
        while count < layer.passes:
            new = layer.transformer.inverse(z, layer.conditioner(right))[0]
            count += 1
            change = float((new - right).abs().max())
            right = new
            if change <= tol:
                break
    if sweeps != count or not close(x, right, 1e-9):
        return False
return True
"""),
    Variant("tf-ex-bits", ("to_bits",), """
g = torch.Generator().manual_seed(fresh_seed())
for dims, levels in ((64, 17), (3 * 64 * 64, 256), (int(torch.randint(4, 100, (1,), generator=g)), 5)):
    log_p_v = dims * (0.3 + 0.4 * torch.rand(20, generator=g, dtype=torch.float64))
    ok, out = call(to_bits, log_p_v.clone(), dims, levels, name="to_bits")
    got = tensor("to_bits(log_p_v, dims, levels)", out, (20,), "one value per image") if ok else None
    if got is None or not close(got, (-log_p_v + dims * math.log(levels / 2)) / (dims * math.log(2)), 1e-9):
        return False
return True
"""),
]

# helpers of a chapter's hidden tests (placed before the test's body)
HELPERS = {
    "jacobian_cost": '''
def _logdet(fn, matrices, allowed, name):
    """fn(*matrices) as a number, or None: a determinant or factorization larger than allowed fails."""
    watch = Watch(factorizations=allowed, modules=("numpy.linalg", "scipy.linalg"))
    ok, out = call(fn, *[m.clone() for m in matrices], name=name, watch=watch)
    if watch.used:
        say(f"Not right: it computes {watch.used[0]}, which the exercise forbids.")
        return None
    if not ok:
        return None
    return number(name, out.detach().as_subclass(torch.Tensor) if isinstance(out, torch.Tensor) else out)
''',
    "change_of_variables": f'''
def _density(fn, x, name):
    watch = Watch(modules={_DENSITIES})
    ok, out = call(fn, x.clone(), name=name, watch=watch)
    if watch.used:
        say(f"Not right: it uses {{watch.used[0]}}, a library density the exercise forbids.")
        return None
    return tensor("the log-density", out, (len(x),)) if ok else None
''',
    "composition": '''
def _layers():
    import flowlab as fl
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fresh_seed() % 2**31)
        layers = [fl.Autoregressive(fl.MaskedConditioner(2, hidden=(16,)), fl.Affine()) for _ in range(2)]
        with torch.no_grad():
            for t in layers:
                for p in t.parameters():
                    p.add_(0.4 * torch.randn(p.shape))
    return [layers[0].double().requires_grad_(False), fl.Reverse(2), layers[1].double().requires_grad_(False)]


def _watched(fn, layers, points, name):
    """Call ``fn(layers, points)`` and refuse fl.Compose and fl.Flow, however reached."""
    import flowlab as fl
    watch = Watch(code=[fl.Compose.forward, fl.Compose.inverse, fl.Flow.log_prob, fl.Flow.rsample_and_log_prob,
                        fl.Inverse.forward, fl.Inverse.inverse])
    ok, out = call(fn, list(layers), points.clone(), name=name, watch=watch)
    if watch.used:
        say(f"Not right: it runs {watch.used[0]}, which the exercise forbids.")
        return False, None
    return ok, out
''',
}

BY_LABEL = {v.label: v for v in VARIANTS}
