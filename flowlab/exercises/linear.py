r"""Checkers for the exercises of the chapter on linear flows.

Each checker calls the student's function on data or parameters it draws itself (so the
chapter's own variables do not help), compares the result with an answer computed here
independently, prints what it found and returns ``True`` when the answer is right. It never
raises. A wrong answer is compared with the typical mistakes (the unbiased covariance, the
Cholesky factor not inverted, the entries above the diagonal used, the inverse's log-det with
the wrong sign...) and the message names the one it matches. Where an exercise forbids library
shortcuts (``slogdet``, ``det``, a solver or an inverse), the tensors handed to the student's
function record such calls and the checker refuses the answer.

Example:
    >>> import torch
    >>> from flowlab.exercises import linear as ex
    >>> def optimum(x):
    ...     xc = x - x.mean(0)
    ...     L = torch.linalg.inv(torch.linalg.cholesky(xc.T @ xc / len(x)))
    ...     return L, -L @ x.mean(0)
    >>> ex.check_optimum(optimum)
    Correct: L = C^-1 with C C^T the sample covariance (divided by n), and b = -L mean, on 3 data sets.
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .change_of_variables import _call

__all__ = ["MATRICES", "check_optimum", "check_reachable", "check_triangular", "parameters"]

f64 = torch.float64


def _as(out, shape: tuple[int, ...], what: str) -> Tensor | None:
    if isinstance(out, Tensor):
        out = out.as_subclass(Tensor).detach()
    try:
        t = torch.as_tensor(out, dtype=f64)
    except (TypeError, ValueError, RuntimeError):
        print(f"Not yet: {what} should be a tensor of shape {shape}, got {type(out).__name__}.")
        return None
    if tuple(t.shape) != shape:
        print(f"Not yet: {what} should have shape {shape}, got {tuple(t.shape)}.")
        return None
    if not torch.isfinite(t).all():
        print(f"Not yet: {what} contains NaN or infinite values.")
        return None
    return t


def _close(a: Tensor, b: Tensor, tol: float = 1e-7) -> bool:
    return a.shape == b.shape and bool(((a - b).abs() <= tol * (1 + b.abs())).all())


# --------------------------------------------------------------------------------------------
# exercise 1 (derivation): the maximum-likelihood triangular layer on Gaussian data
# --------------------------------------------------------------------------------------------


def _gaussian_data(seed: int, n: int, d: int) -> Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    A = torch.randn(d, d, generator=g, dtype=f64).tril()
    A.diagonal().abs_().add_(0.3)
    return torch.randn(n, d, generator=g, dtype=f64) @ A.T + 3 * torch.randn(d, generator=g, dtype=f64)


def check_optimum(optimum: Callable[[Tensor], tuple[Tensor, Tensor]]) -> bool:
    r"""Exercise: ``optimum(x) -> (L, b)``, the parameters of the :class:`flowlab.Triangular`
    layer :math:`z = Lx + b` that maximise the likelihood of the rows of ``x`` (shape ``(n, D)``)
    under a standard normal base, in closed form (no training). Tried on three data sets of
    its own, with :math:`D = 2, 3, 5`.
    """
    for seed, (n, d) in enumerate(((50, 2), (200, 3), (80, 5))):
        x = _gaussian_data(seed, n, d)
        ok, out = _call(optimum, x.clone(), name="optimum")
        if not ok:
            return False
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            print("Not yet: return a pair (L, b): the matrix of shape (D, D) and the bias of shape (D,).")
            return False
        L, b = _as(out[0], (d, d), "L"), _as(out[1], (d,), "b")
        if L is None or b is None:
            return False
        mean = x.mean(0)
        xc = x - mean
        cov = xc.T @ xc / n
        C = torch.linalg.cholesky(cov)
        right = torch.linalg.inv(C)
        if _close(L, right) and _close(b, -right @ mean):
            continue
        if _close(L, right):
            if _close(b, right @ mean):
                print("Not yet: L is right, b has the wrong sign. z = L x + b must have mean 0: b = -L mean.")
            elif _close(b, -mean):
                print("Not yet: L is right, but b = -mean centres x, not z = L x + b. Use b = -L mean.")
            else:
                print("Not yet: L is right, b is not. The optimal z = L x + b has mean zero.")
            return False
        if not torch.equal(L, L.tril()):
            if _close(L, torch.linalg.inv(torch.linalg.cholesky(cov).T)) or _close(L, torch.linalg.inv(C).T):
                print("Not yet: your L is upper triangular. The layer's L is lower triangular: L = C^-1 with C the "
                      "lower Cholesky factor (C C^T = covariance).")
            else:
                print("Not yet: L must be lower triangular (the layer has no entries above the diagonal).")
            return False
        if _close(L, torch.linalg.inv(torch.linalg.cholesky(xc.T @ xc / (n - 1)))):
            print(f"Not yet: you used the unbiased covariance (divided by n - 1 = {n - 1}). The maximum-likelihood "
                  f"covariance divides by n = {n}.")
        elif _close(L, C):
            print("Not yet: that is the Cholesky factor C itself, the map from z to x. The layer maps x to z, so "
                  "L = C^-1.")
        elif _close(L, torch.linalg.inv(torch.linalg.cholesky(x.T @ x / n))):
            print("Not yet: the covariance must be computed around the mean: subtract x.mean(0) first.")
        elif (L.diagonal() <= 0).any():
            print("Not yet: the layer's diagonal is e^theta, always positive: choose the factor with a positive "
                  "diagonal (torch.linalg.cholesky gives it).")
        else:
            err = float((L - right).abs().max())
            print(f"Not yet: on a data set with D = {d}, L is off by up to {err:.3g}. Write the log-likelihood, set "
                  "its gradient to zero and solve L S L^T = I with S the sample covariance.")
        return False
    print("Correct: L = C^-1 with C C^T the sample covariance (divided by n), and b = -L mean, on 3 data sets.")
    return True


# --------------------------------------------------------------------------------------------
# exercise 2 (predict, then run): which matrices can LU without a permutation reach?
# --------------------------------------------------------------------------------------------

MATRICES = {
    "a": [[2.0, 1.0], [1.0, 1.0]],
    "b": [[0.0, 1.0], [1.0, 0.0]],
    "c": [[1.0, 0.0], [0.0, -1.0]],
    "d": [[-1.0, 0.0], [0.0, -1.0]],
    "e": [[0.5, 0.0], [3.0, 2.0]],
    "f": [[1.0, 2.0], [3.0, 4.0]],
}
"""The 2 x 2 matrices of the exercise on what ``fl.LU(2, rotation=False)`` can represent."""


def _reachable(W) -> bool:
    W = torch.as_tensor(W, dtype=f64)
    return bool(W[0, 0] > 0 and torch.linalg.det(W) > 0)


def check_reachable(answers: dict) -> bool:
    r"""Exercise: for each matrix of :data:`MATRICES`, is it exactly :math:`W` for some parameters
    of ``fl.LU(2, rotation=False)`` (:math:`P = I`, :math:`s = (1, 1)`)? ``answers`` maps each
    letter to ``True`` or ``False``."""
    if answers is None or not isinstance(answers, dict):
        print("No answer yet: fill in the dictionary, one True or False per letter.")
        return False
    missing = [k for k in MATRICES if answers.get(k) is None]
    if missing:
        print(f"No answer yet for {', '.join(missing)}: put True or False for every letter.")
        return False
    if not all(isinstance(answers[k], bool) for k in MATRICES):
        print("Not yet: each answer should be True or False.")
        return False
    truth = {k: _reachable(W) for k, W in MATRICES.items()}
    wrong = [k for k in MATRICES if answers[k] != truth[k]]
    if not wrong:
        print("Correct: W = L (U + diag(e^theta)) has W_11 = e^theta_1 > 0 and det W = e^(theta_1 + theta_2) > 0; "
              "a and e have both, the others do not.")
        return True
    by_det = {k: float(torch.linalg.det(torch.tensor(W))) > 0 for k, W in MATRICES.items()}
    if all(answers[k] == by_det[k] for k in MATRICES):
        print("Not yet: you judged by the sign of the determinant only. The (1, 1) entry of W is the first "
              "diagonal entry of U: it must be positive too. Look at d.")
    elif all(answers[k] == (float(torch.linalg.det(torch.tensor(W))) != 0) for k, W in MATRICES.items()):
        print("Not yet: being invertible is not enough. Without a permutation the signs are fixed: "
              "W_11 > 0 and det W > 0.")
    else:
        print(f"Not yet: check {', '.join(wrong)}. Multiply out L (U + diag(e^theta)) for 2 x 2 matrices: what is "
              "W_11, and what is det W?")
    return False


# --------------------------------------------------------------------------------------------
# exercise 3 (code): the triangular layer by hand, without slogdet, det, solvers or inverses
# --------------------------------------------------------------------------------------------

_FORBIDDEN = {
    torch.linalg.slogdet, torch.linalg.det, torch.det, torch.slogdet, torch.logdet, torch.Tensor.det,
    torch.Tensor.slogdet, torch.Tensor.logdet, torch.linalg.solve, torch.linalg.solve_ex,
    torch.linalg.solve_triangular, torch.linalg.inv, torch.linalg.inv_ex, torch.inverse, torch.Tensor.inverse,
    torch.linalg.pinv, torch.pinverse, torch.linalg.lstsq, torch.triangular_solve, torch.Tensor.triangular_solve,
    torch.cholesky_solve, torch.linalg.lu_solve, torch.linalg.lu_factor, torch.linalg.lu, torch.Tensor.numpy,
    torch.Tensor.__array__, torch.linalg.eigvals, torch.linalg.svdvals,
}


class _Watched(Tensor):
    """A tensor that records calls of the functions the exercise forbids."""

    used: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in _FORBIDDEN:
            cls.used.append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


def parameters(features: int = 5, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Random ``(lower, log_diag, bias)`` of a :class:`flowlab.Triangular` layer in float64.
    ``lower`` is a full matrix, as the layer stores it: only its strictly lower part is used.

    Example:
        >>> [tuple(p.shape) for p in parameters(3)]
        [(3, 3), (3,), (3,)]
    """
    g = torch.Generator().manual_seed(2000 + seed)
    return (torch.randn(features, features, generator=g, dtype=f64), 0.5 * torch.randn(features, generator=g, dtype=f64),
            torch.randn(features, generator=g, dtype=f64))


def _pair(out, n: int, d: int, name: str):
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        print(f"Not yet: {name} should return a pair (points, ladj).")
        return None
    y = _as(out[0], (n, d), f"the points {name} returns")
    ladj = out[1]
    if isinstance(ladj, Tensor) and ladj.dim() == 0:
        ladj = ladj.expand(n)
    ladj = _as(ladj, (n,), f"the ladj {name} returns") if y is not None else None
    return None if ladj is None else (y, ladj)


def check_triangular(forward: Callable, inverse: Callable, n: int = 50) -> bool:
    r"""Exercise: ``forward(x, lower, log_diag, bias) -> (z, ladj)`` and
    ``inverse(z, lower, log_diag, bias) -> (x, ladj)`` of the triangular layer
    :math:`z = Lx + b`, :math:`L = \mathrm{tril}(\text{lower}, -1) + \mathrm{diag}(e^{\theta})`,
    without ``slogdet``/``det``, solvers or matrix inverses. Tried with its own parameters
    (:func:`parameters`) at D = 1, 5 and 40, against :class:`flowlab.Triangular`.
    """
    from ..linear import Triangular

    for d, seed in ((5, 0), (1, 1), (40, 2)):
        lower, log_diag, bias = parameters(d, seed)
        t = Triangular(d).double()
        with torch.no_grad():
            t.lower.copy_(lower)
            t.log_diag.copy_(log_diag)
            t.bias.copy_(bias)
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(3000 + seed), dtype=f64)
        with torch.no_grad():
            z_true, ladj_true = t(x)
        for name, fn, inp, want, want_ladj in (("forward", forward, x, z_true, ladj_true),
                                               ("inverse", inverse, z_true, x, -ladj_true)):
            watched = type("Watched", (_Watched,), {"used": []})
            args = [v.clone().as_subclass(watched) for v in (inp, lower, log_diag, bias)]
            ok, out = _call(fn, *args, name=name)
            if watched.used:
                print(f"Not yet: {name} called {watched.used[0]}, which the exercise forbids. The log-det of a "
                      "triangular matrix is the sum of the logs of its diagonal; the inverse is a forward "
                      "substitution, one coordinate after the other.")
                return False
            if not ok:
                return False
            pair = _pair(out, n, d, name)
            if pair is None:
                return False
            y, ladj = pair
            if not _close(y, want, 1e-8):
                full = lower.triu(1) + lower.tril(-1) + torch.diag(log_diag.exp())
                if name == "forward" and _close(y, x @ full.T + bias, 1e-8):
                    print("Not yet: you used the entries of `lower` above the diagonal. The layer uses only its "
                          "strictly lower part: lower.tril(-1).")
                elif name == "forward" and _close(y, x @ (lower.tril(-1) + torch.diag(log_diag.exp())) + bias, 1e-8):
                    print("Not yet: you multiplied by L^T (x @ L). Row by row, z = x @ L.T + b.")
                elif name == "forward" and _close(y, x @ (lower.tril(-1) + torch.diag(log_diag)).T + bias, 1e-8):
                    print("Not yet: the diagonal of L is e^theta, not theta.")
                elif name == "inverse" and _close(y, (inp - bias) @ (lower.tril(-1) + torch.diag(log_diag.exp())).T,
                                                  1e-8):
                    print("Not yet: that applies L again instead of undoing it. Solve L x = z - b coordinate by "
                          "coordinate: x_i = (z_i - b_i - sum_{j<i} L_ij x_j) / L_ii.")
                elif name == "inverse" and _close(y, (inp - bias) * (-log_diag).exp(), 1e-8) and d > 1:
                    print("Not yet: dividing by the diagonal inverts only a diagonal matrix. Subtract the "
                          "contributions sum_{j<i} L_ij x_j of the coordinates already found.")
                else:
                    err = float((y - want).abs().max())
                    print(f"Not yet: at D = {d} the points {name} returns are off by up to {err:.3g}.")
                return False
            if not _close(ladj, want_ladj, 1e-8):
                if _close(ladj, -want_ladj, 1e-8):
                    print(f"Not yet: the ladj of {name} has the wrong sign. The inverse map has the inverse "
                          "determinant: ladj = -sum(theta).")
                elif _close(ladj, (log_diag.exp().sum() * (1 if name == "forward" else -1)).expand(n), 1e-8):
                    print("Not yet: the log-det is the sum of log L_ii = theta_i, not of L_ii = e^theta_i.")
                else:
                    print(f"Not yet: the ladj of {name} is wrong at D = {d}: log|det L| = sum(theta_i).")
                return False
    print("Correct: forward (z = L x + b, ladj = sum theta) and inverse (forward substitution, ladj = -sum theta) "
          "match fl.Triangular at D = 1, 5 and 40.")
    return True

