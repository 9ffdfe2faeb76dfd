r"""Checkers for the exercises of the chapter on residual flows.

Each checker compares the student's answer with one it computes itself (after the student's
code has run), says what it found and returns a true verdict when the answer is right; it never
raises. Numbers are accepted to three significant digits or more. A wrong answer is compared
with the typical mistakes (the derivative :math:`h'` forgotten, :math:`h` in its place, the
factor :math:`1/(1-c)` dropped, the alternating sign or the :math:`1/k` left out of the
series...) and the message names the one it matches.

Example:
    >>> from flowlab.exercises import residual as ex
    >>> ex.check_iterations(153)
    Correct: 0.9^153 / 0.1 = 1.0e-06 <= 1e-06, and 152 iterations would not be
    enough (1.1e-06).
    True
    >>> ex.check_iterations(132)
    Not yet: 132 is where c^k alone falls below 1e-06; the bound is c^k / (1 - c),
    10 times larger for c = 0.9.
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import Watch, agrees, call, checker, close, flag, fresh_seed, number, say, tensor, whole

__all__ = ["ITERATION_POINT", "check_iterations", "check_planar_det", "check_series", "iteration_block"]


# exercise 1: the planar determinant
@checker
def check_planar_det(det, invertible, w=(1.0, 2.0), u=(0.5, -1.0), b=0.5, z=(0.3, 0.1)) -> bool:
    r"""Check the determinant :math:`1 + h'(w^\top z + b)\, w^\top u` of the planar layer
    :math:`x = z + u \tanh(w^\top z + b)` in 2-D at the point ``z`` (three significant digits),
    and the verdict on its invertibility (for the defaults :math:`w^\top u = -1.5 < -1`: not
    invertible)."""
    value = number("det", det)
    if value is None:
        return False
    a = w[0] * z[0] + w[1] * z[1] + b
    wu = w[0] * u[0] + w[1] * u[1]
    right = 1 + (1 - math.tanh(a) ** 2) * wu
    if not agrees(value, right):
        mistakes = [
            (1 + wu, "that is 1 + w^T u: the derivative h'(w^T z + b) of tanh is missing from the rank-one term."),
            (1 + math.tanh(a) * wu, "that uses h(a) = tanh(a); the Jacobian has the derivative h'(a) = 1 - tanh(a)^2."),
            (1 + (1 - math.tanh(a)) * wu, "h'(a) = 1 - tanh(a)^2, with the square."),
            (1 - (1 - math.tanh(a) ** 2) * wu, "the sign: det(I + u h' w^T) = 1 + h' w^T u."),
            (math.log(abs(right)), "that is log|det|; the exercise asks for the determinant itself."),
        ]
        why = next((why for wrong, why in mistakes if agrees(value, wrong)), None)
        say(f"Not yet: {value:.6g} - {why}" if why else
            f"Not yet: {value:.6g}. With a = w^T z + b = {a:g}, the lemma gives 1 + h'(a) w^T u.")
        return False
    if invertible is None:
        say(f"The determinant is right ({right:.6f}). Now decide: is the layer invertible for every z?")
        return False
    verdict = flag("invertible", invertible)
    if verdict is None:
        return False
    if verdict != (wu >= -1):
        if verdict:
            say(f"Not yet: the determinant is right ({right:.6f}), but one point does not decide. On the line "
                f"w^T z + b = 0, h' = 1 and det = 1 + w^T u = {1 + wu:g} < 0, while far away det -> 1: it changes "
                "sign, so the map folds.")
        else:
            say(f"Not yet: w^T u = {wu:g} >= -1, so det = 1 + h' w^T u >= 1 - h' > 0 everywhere (0 < h' <= 1): "
                "the map is invertible.")
        return False
    say(f"Correct: det = 1 + h'({a:g}) w^T u = {right:.6f}; w^T u = {wu:g} "
        + ("< -1, so the determinant changes sign across the hyperplane w^T z + b = 0 and the layer is not "
           "invertible." if wu < -1 else ">= -1, so the determinant stays positive and the layer is invertible."))
    return True


# exercise 2: iterations from the a-priori bound
@checker
def check_iterations(iterations, c: float = 0.9, eps: float = 1e-6) -> bool:
    """Check the smallest ``k`` with ``c**k / (1 - c) <= eps`` (first step of length 1)."""
    value = whole("iterations", iterations)
    if value is None:
        return False
    right = math.ceil(math.log(eps * (1 - c)) / math.log(c))
    if value == right:
        say(f"Correct: {c}^{right} / {1 - c:.1f} = {c**right / (1 - c):.1e} <= {eps:g}, and {right - 1} iterations "
            f"would not be enough ({c**(right - 1) / (1 - c):.1e}).")
        return True
    forgot = math.ceil(math.log(eps) / math.log(c))
    if value == forgot:
        say(f"Not yet: {forgot} is where c^k alone falls below {eps:g}; the bound is c^k / (1 - c), "
            f"{1 / (1 - c):.0f} times larger for c = {c}.")
    elif value == right - 1:
        say(f"Not yet: {c}^{right - 1} / {1 - c:.1f} = {c**(right - 1) / (1 - c):.2e} is still above {eps:g}: "
            "round the solution of the inequality up, not down.")
    elif value < right:
        say(f"Not yet: {value} iterations only guarantee {c**value / (1 - c):.2e}, above {eps:g}.")
    else:
        say(f"Not yet: {value} is enough but not the smallest: {c}^k / {1 - c:.1f} <= {eps:g} already at a "
            "smaller k.")
    return False


ITERATION_POINT = torch.tensor([[1.0 / 0.9, 0.0]], dtype=torch.float64)
"""The point z of exercise 2: the first Banach step from x0 = z has length exactly 1."""


def iteration_block() -> Callable[[Tensor], Tensor]:
    r"""The map :math:`g(x) = 0.9\, R x` of exercise 2, with :math:`R` a rotation by 1 radian: a contraction
    with constant exactly 0.9 in every step, the worst case of the a-priori bound."""
    rot = torch.tensor([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]], dtype=torch.float64)
    return lambda x: 0.9 * x @ rot.T


# exercise 3: the truncated series with the checker's probes
def _maps(seed: int):
    """A linear map with known eigenvalues and a small tanh network, drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    p = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(3, 3, generator=g, dtype=torch.float64)
    eig = torch.tensor([0.6, -0.45, 0.2], dtype=torch.float64) * (0.8 + 0.4 * torch.rand(1, generator=g).item())
    a = p @ torch.diag(eig) @ torch.linalg.inv(p)
    w1 = 0.5 * torch.randn(8, 3, generator=g, dtype=torch.float64)
    w2 = 0.5 * torch.randn(3, 8, generator=g, dtype=torch.float64)
    linear = lambda x: x @ a.T  # noqa: E731
    network = lambda x: torch.tanh(x @ w1.T) @ w2.T  # noqa: E731
    return [("a linear map with known eigenvalues", linear, a), ("a small tanh network", network, None)]


def _judge_series(g, x: Tensor, v: Tensor, terms: int, got: Tensor, a, where: str) -> bool:
    """Compare ``got`` with the truncated series (and its typical mistakes), computed here from
    the exact Jacobian."""
    with torch.enable_grad():
        xr = x.detach().clone().requires_grad_(True)
        gx = g(xr)
        rows = [torch.autograd.grad(gx[:, i].sum(), xr, retain_graph=True)[0] for i in range(x.shape[1])]
    jac = torch.stack(rows, dim=1).detach()

    def series(n: int, sign: bool = True, inverse_k: bool = True, lag: int = 0) -> Tensor:
        power = torch.linalg.matrix_power(jac, 1 - lag)  # term k uses J^(k - lag)
        total = x.new_zeros(len(x))
        for k in range(1, n + 1):
            coef = ((-1) ** (k + 1) if sign else 1) / (k if inverse_k else 1)
            total = total + coef * torch.einsum("bi,bij,bj->b", v, power, v)
            power = power @ jac
        return total

    if close(got, series(terms), 1e-9):
        return True
    if a is not None and close(got, torch.linalg.slogdet(torch.eye(3, dtype=torch.float64) + a).logabsdet.expand(
            len(x)), 1e-6):
        say(f"Not yet: {where} you returned the exact log-det. The exercise asks for the truncated series with the "
            "given probes v (its value depends on v and on terms).")
    elif close(got, series(terms, sign=False), 1e-9):
        say(f"Not yet: {where} the terms all have a + sign; the series alternates, (-1)^(k+1).")
    elif close(got, series(terms, inverse_k=False), 1e-9):
        say(f"Not yet: {where} the factor 1/k is missing from term k.")
    elif close(got, series(terms, lag=1), 1e-9):
        say(f"Not yet: {where} term k uses v^T J^(k-1) v: the VJP w <- w J must come before the term is added, so "
            "that term 1 is v^T J v.")
    elif terms > 1 and close(got, series(terms - 1), 1e-9):
        say(f"Not yet: {where} your sum has {terms - 1} terms; it should have {terms}.")
    else:
        say(f"Not yet: {where} the result is off by up to {float((got - series(terms)).abs().max()):.3g}. Use the "
            "probes v you are given, w^T <- w^T J by torch.autograd.grad(gx, x, w), and add (-1)^(k+1) / k * "
            "(w * v).sum(-1).")
    return False


@checker
def check_series(series: Callable, terms=(1, 4), seed: int | None = None) -> bool:
    r"""Check ``series(g, x, v, terms)``: :math:`\sum_{k \le n} (-1)^{k+1} v^\top J^k v / k` per row,
    with probes ``v`` and points ``x`` drawn at each call, on a linear map with known
    eigenvalues and on a small network, by vector-Jacobian products (a full Jacobian from
    ``torch.autograd.functional`` or ``torch.func`` is refused)."""
    seed = fresh_seed() % 2**31 if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    v = (2 * torch.randint(0, 2, (6, 3), generator=gen) - 1).to(torch.float64)
    for label, g, a in _maps(seed + 1):
        for n in terms:
            watch = Watch(modules=("torch.autograd.functional", "torch._functorch"))
            ok, out = call(series, g, x.clone(), v.clone(), n, name="series", watch=watch)
            if watch.used:
                say(f"Not yet: your series computes the full Jacobian ({watch.used[0]}). The exercise asks for one "
                    "vector-Jacobian product per term, torch.autograd.grad(gx, x, w).")
                return False
            if not ok:
                return False
            got = tensor("series(g, x, v, terms)", out, (6,), "one value per row")
            if got is None or not _judge_series(g, x, v, n, got, a, f"on {label} with terms = {n}"):
                return False
    say(f"Correct: your series matches sum_k (-1)^(k+1) v^T J^k v / k for terms = {', '.join(map(str, terms))}, "
        "on a linear map and on a network, with probes of the checker's own.")
    return True
