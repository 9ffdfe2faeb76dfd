r"""Checkers for the exercises of the chapter on residual flows.

Each checker compares the student's answer with one computed here independently, prints what it
found and returns ``True`` when the answer is right. It never raises. When an answer is wrong it is
compared with the typical mistakes (the derivative :math:`h'` forgotten, :math:`h` in its place, the
factor :math:`1/(1-c)` dropped, the alternating sign or the :math:`1/k` left out of the series...)
and the message names the one it matches.

Example:
    >>> from flowlab.exercises import residual as ex
    >>> ex.check_iterations(153)
    Correct: 0.9^153 / 0.1 = 1.0e-06 <= 1e-06, and 152 iterations would not be enough (1.1e-06).
    True
    >>> ex.check_iterations(132)
    Not yet: 132 is where c^k alone falls below 1e-06; the bound is c^k / (1 - c), 10 times larger for c = 0.9.
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import close, number, tensor_of_shape
from .change_of_variables import _call

__all__ = ["ITERATION_POINT", "check_iterations", "check_planar_det", "check_series", "iteration_block"]

# exercise 1: the planar determinant
_W, _U, _B, _Z = (1.0, 2.0), (0.5, -1.0), 0.5, (0.3, 0.1)


def _planar_numbers() -> tuple[float, float, float]:
    a = _W[0] * _Z[0] + _W[1] * _Z[1] + _B
    wu = _W[0] * _U[0] + _W[1] * _U[1]
    return a, wu, 1 + (1 - math.tanh(a) ** 2) * wu


def check_planar_det(det, invertible) -> bool:
    r"""Check the determinant :math:`1 + h'(w^\top z + b)\, w^\top u` of the exercise's planar layer and the
    verdict on its invertibility (:math:`w^\top u = -1.5 < -1`: not invertible)."""
    value = number("det", det)
    if value is None:
        return False
    a, wu, right = _planar_numbers()
    mistakes = {
        1 + wu: "that is 1 + w^T u: the derivative h'(w^T z + b) of tanh is missing from the rank-one term.",
        1 + math.tanh(a) * wu: "that uses h(a) = tanh(a); the Jacobian has the derivative h'(a) = 1 - tanh(a)^2.",
        1 + (1 - math.tanh(a)) * wu: "h'(a) = 1 - tanh(a)^2, with the square.",
        1 - (1 - math.tanh(a) ** 2) * wu: "the sign: det(I + u h' w^T) = 1 + h' w^T u.",
        math.log(abs(right)): "that is log|det|; the exercise asks for the determinant itself.",
    }
    if not close(value, right, 1e-6):
        for wrong, why in mistakes.items():
            if close(value, wrong, 1e-6):
                print(f"Not yet: {value:.6g} - {why}")
                return False
        print(f"Not yet: {value:.6g}. With a = w^T z + b = {a:g}, the lemma gives 1 + h'(a) w^T u.")
        return False
    if invertible is None:
        print(f"The determinant is right ({right:.6f}). Now decide: is the layer invertible for every z?")
        return False
    if not isinstance(invertible, bool):
        print(f"Not yet: invertible should be True or False, got {type(invertible).__name__}.")
        return False
    if invertible:
        print(f"Not yet: the determinant is right ({right:.6f}) and positive at this z, but one point does not decide. "
              f"On the line w^T z + b = 0, h' = 1 and det = 1 + w^T u = {1 + wu:g} < 0, while far away det -> 1: "
              "it changes sign, so the map folds.")
        return False
    print(f"Correct: det = 1 + h'({a:g}) w^T u = {right:.6f}; w^T u = {wu:g} < -1, so the determinant changes sign "
          "across the hyperplane w^T z + b = 0 and the layer is not invertible.")
    return True


# exercise 2: iterations from the a-priori bound
def check_iterations(iterations, c: float = 0.9, eps: float = 1e-6) -> bool:
    """Check the smallest ``k`` with ``c**k / (1 - c) <= eps`` (first step of length 1)."""
    value = number("iterations", iterations)
    if value is None:
        return False
    right = math.ceil(math.log(eps * (1 - c)) / math.log(c))
    if value == right:
        print(f"Correct: {c}^{right} / {1 - c:.1f} = {c**right / (1 - c):.1e} <= {eps:g}, and {right - 1} iterations "
              f"would not be enough ({c**(right - 1) / (1 - c):.1e}).")
        return True
    forgot = math.ceil(math.log(eps) / math.log(c))
    if value == forgot:
        print(f"Not yet: {forgot} is where c^k alone falls below {eps:g}; the bound is c^k / (1 - c), "
              f"{1 / (1 - c):.0f} times larger for c = {c}.")
    elif value == right - 1:
        print(f"Not yet: {c}^{right - 1} / {1 - c:.1f} = {c**(right - 1) / (1 - c):.2e} is still above {eps:g}: "
              "round the solution of the inequality up, not down.")
    elif value < right:
        print(f"Not yet: {value:g} iterations only guarantee {c**value / (1 - c):.2e}, above {eps:g}.")
    else:
        print(f"Not yet: {value:g} is enough but not the smallest: {c}^k / {1 - c:.1f} <= {eps:g} already at a smaller k.")
    return False


ITERATION_POINT = torch.tensor([[1.0 / 0.9, 0.0]], dtype=torch.float64)
"""The point z of exercise 2: the first Banach step from x0 = z has length exactly 1."""


def iteration_block() -> Callable[[Tensor], Tensor]:
    r"""The map :math:`g(x) = 0.9\, R x` of exercise 2, with :math:`R` a rotation by 1 radian: a contraction
    with constant exactly 0.9 in every step. Not the worst case of the a-priori bound (that is
    :math:`g(x) = -0.9 x`): its iterates turn around the solution, the first step overstates the
    starting error, and after the bound's 153 steps the true error is about 6e-8."""
    rot = torch.tensor([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]], dtype=torch.float64)
    return lambda x: 0.9 * x @ rot.T


# exercise 3: the truncated series with the checker's probes
def _reference(g, x: Tensor, v: Tensor, terms: int, sign: bool = True, inverse_k: bool = True, lag: int = 0) -> Tensor:
    with torch.enable_grad():
        xr = x.detach().clone().requires_grad_(True)
        gx = g(xr)
        rows = [torch.autograd.grad(gx[:, i].sum(), xr, retain_graph=True)[0] for i in range(x.shape[1])]
    jac = torch.stack(rows, dim=1).detach()
    power = torch.linalg.matrix_power(jac, 1 - lag)  # term k uses J^(k - lag)
    total = x.new_zeros(len(x))
    for k in range(1, terms + 1):
        coef = ((-1) ** (k + 1) if sign else 1) / (k if inverse_k else 1)
        total = total + coef * torch.einsum("bi,bij,bj->b", v, power, v)
        power = power @ jac
    return total


def _maps():
    g = torch.Generator().manual_seed(20261201)
    p = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(3, 3, generator=g, dtype=torch.float64)
    a = p @ torch.diag(torch.tensor([0.6, -0.45, 0.2], dtype=torch.float64)) @ torch.linalg.inv(p)
    w1 = 0.5 * torch.randn(8, 3, generator=g, dtype=torch.float64)
    w2 = 0.5 * torch.randn(3, 8, generator=g, dtype=torch.float64)
    linear = lambda x: x @ a.T  # noqa: E731 - eigenvalues 0.6, -0.45, 0.2
    network = lambda x: torch.tanh(x @ w1.T) @ w2.T  # noqa: E731
    return {"a linear map with eigenvalues 0.6, -0.45, 0.2": (linear, a), "a small tanh network": (network, None)}


def check_series(series: Callable, terms=(1, 4)) -> bool:
    r"""Check ``series(g, x, v, terms)``: :math:`\sum_{k \le n} (-1)^{k+1} v^\top J^k v / k` per row, with the
    checker's own Rademacher probes ``v``, on a linear map with known eigenvalues and on a small network."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    v = (2 * torch.randint(0, 2, (6, 3), generator=gen) - 1).to(torch.float64)
    for label, (g, a) in _maps().items():
        for n in terms:
            ok, out = _call(series, g, x.clone(), v.clone(), n, name="series")
            if not ok:
                return False
            got = tensor_of_shape("series", out, (6,), "one value per row")
            if got is None:
                return False
            right = _reference(g, x, v, n)
            if torch.allclose(got, right, atol=1e-9, rtol=1e-9):
                continue
            where = f"on {label} with terms = {n}"
            exact = None
            if a is not None:
                exact = torch.linalg.slogdet(torch.eye(3, dtype=torch.float64) + a).logabsdet.expand(6)
            if exact is not None and torch.allclose(got, exact, atol=1e-6):
                print(f"Not yet: {where} you returned the exact log-det. The exercise asks for the truncated series "
                      "with the given probes v (its value depends on v and on terms).")
            elif torch.allclose(got, _reference(g, x, v, n, sign=False), atol=1e-9):
                print(f"Not yet: {where} the terms all have a + sign; the series alternates, (-1)^(k+1).")
            elif torch.allclose(got, _reference(g, x, v, n, inverse_k=False), atol=1e-9):
                print(f"Not yet: {where} the factor 1/k is missing from term k.")
            elif torch.allclose(got, _reference(g, x, v, n, lag=1), atol=1e-9):
                print(f"Not yet: {where} term k uses v^T J^(k-1) v: the VJP w <- w J must come before the "
                      "term is added, so that term 1 is v^T J v (at k = 0 there is no term).")
            elif n > 1 and torch.allclose(got, _reference(g, x, v, n - 1), atol=1e-9):
                print(f"Not yet: {where} your sum has {n - 1} terms; it should have {n}.")
            else:
                err = float((got - right).abs().max())
                print(f"Not yet: {where} the result is off by up to {err:.3g}. Use the probes v you are given, "
                      "w^T <- w^T J by torch.autograd.grad(gx, x, w), and add (-1)^(k+1) / k * (w * v).sum(-1).")
            return False
    print(f"Correct: your series matches sum_k (-1)^(k+1) v^T J^k v / k for terms = {', '.join(map(str, terms))}, "
          "on a linear map and on a network, with the checker's probes.")
    return True
