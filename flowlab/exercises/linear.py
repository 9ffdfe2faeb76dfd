r"""Checkers for the exercises of the chapter on linear flows.

Each checker calls the student's function on data or parameters it draws at each call (so the
chapter's own variables do not help), computes the right answer afterwards, says what it found
and returns a true verdict when the answer is right; it never raises. A wrong answer is
compared with the typical mistakes (the unbiased covariance, the Cholesky factor not inverted,
the entries above the diagonal used, the inverse's log-det with the wrong sign...) and the
message names the one it matches. Where an exercise forbids library shortcuts (a determinant,
a solver or an inverse), the checker watches what the call computes and refuses them, whatever
the code calls them (torch, numpy or scipy, an alias, a tensor subclass).

Example:
    >>> import torch
    >>> from flowlab.exercises import linear as ex
    >>> def optimum(x):
    ...     xc = x - x.mean(0)
    ...     L = torch.linalg.inv(torch.linalg.cholesky(xc.T @ xc / len(x)))
    ...     return L, -L @ x.mean(0)
    >>> ex.check_optimum(optimum)
    Correct: L = C^-1 with C C^T the sample covariance (divided by n), and b = -L
    mean, on 3 data sets of the checker's own.
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import Watch, call, checker, close, flag, fresh_seed, say, tensor

__all__ = ["MATRICES", "check_optimum", "check_reachable", "check_triangular", "parameters"]

f64 = torch.float64


# --------------------------------------------------------------------------------------------
# exercise 1 (derivation): the maximum-likelihood triangular layer on Gaussian data
# --------------------------------------------------------------------------------------------


def _gaussian_data(seed: int, n: int, d: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=f64).tril()
    A.diagonal().abs_().add_(0.3)
    return torch.randn(n, d, generator=g, dtype=f64) @ A.T + 3 * torch.randn(d, generator=g, dtype=f64)


@checker
def check_optimum(optimum: Callable[[Tensor], tuple[Tensor, Tensor]], seed: int | None = None) -> bool:
    r"""Exercise: ``optimum(x) -> (L, b)``, the parameters of the :class:`flowlab.Triangular`
    layer :math:`z = Lx + b` that maximise the likelihood of the rows of ``x`` (shape ``(n, D)``)
    under a standard normal base, in closed form (no training). Tried on three data sets drawn
    at each call, with :math:`D = 2, 3, 5`.
    """
    seed = fresh_seed() % 2**31 if seed is None else seed
    for k, (n, d) in enumerate(((50, 2), (200, 3), (80, 5))):
        x = _gaussian_data(seed + k, n, d)
        ok, out = call(optimum, x.clone(), name="optimum")
        if not ok:
            return False
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            say("Not yet: return a pair (L, b): the matrix of shape (D, D) and the bias of shape (D,).")
            return False
        L, b = tensor("L", out[0], (d, d)), tensor("b", out[1], (d,))
        if L is None or b is None:
            return False
        mean = x.mean(0)
        xc = x - mean
        cov = xc.T @ xc / n
        C = torch.linalg.cholesky(cov)
        right = torch.linalg.inv(C)
        if close(L, right) and close(b, -right @ mean):
            continue
        if close(L, right):
            if close(b, right @ mean):
                say("Not yet: L is right, b has the wrong sign. z = L x + b must have mean 0: b = -L mean.")
            elif close(b, -mean):
                say("Not yet: L is right, but b = -mean centres x, not z = L x + b. Use b = -L mean.")
            else:
                say("Not yet: L is right, b is not. The optimal z = L x + b has mean zero.")
            return False
        if float(L.triu(1).abs().max()) > 1e-9 * (1 + float(L.abs().max())):
            if close(L, torch.linalg.inv(C.T)) or close(L, right.T):
                say("Not yet: your L is upper triangular. The layer's L is lower triangular: L = C^-1 with C the "
                    "lower Cholesky factor (C C^T = covariance).")
            else:
                say("Not yet: L must be lower triangular (the layer has no entries above the diagonal).")
            return False
        if close(L, torch.linalg.inv(torch.linalg.cholesky(xc.T @ xc / (n - 1)))):
            say(f"Not yet: you used the unbiased covariance (divided by n - 1 = {n - 1}). The maximum-likelihood "
                f"covariance divides by n = {n}.")
        elif close(L, C):
            say("Not yet: that is the Cholesky factor C itself, the map from z to x. The layer maps x to z, so "
                "L = C^-1.")
        elif close(L, torch.linalg.inv(torch.linalg.cholesky(x.T @ x / n))):
            say("Not yet: the covariance must be computed around the mean: subtract x.mean(0) first.")
        elif (L.diagonal() <= 0).any():
            say("Not yet: the layer's diagonal is e^theta, always positive: choose the factor with a positive "
                "diagonal (torch.linalg.cholesky gives it).")
        else:
            say(f"Not yet: on a data set with D = {d}, L is off by up to {float((L - right).abs().max()):.3g}. "
                "Write the log-likelihood, set its gradient to zero and solve L S L^T = I with S the sample "
                "covariance.")
        return False
    say("Correct: L = C^-1 with C C^T the sample covariance (divided by n), and b = -L mean, on 3 data sets of "
        "the checker's own.")
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

# the verdicts for these six matrices, worked out by hand in the chapter's solution
_VERDICTS = {"a": True, "b": False, "c": False, "d": False, "e": True, "f": False}


@checker
def check_reachable(answers: dict) -> bool:
    r"""Exercise: for each matrix of :data:`MATRICES`, is it exactly :math:`W` for some parameters
    of ``fl.LU(2, rotation=False)`` (:math:`P = I`, :math:`s = (1, 1)`)? ``answers`` maps each
    letter to ``True`` or ``False``."""
    if not isinstance(answers, dict):
        say("Not answered yet: fill in the dictionary, one True or False per letter.")
        return False
    missing = [k for k in _VERDICTS if answers.get(k) is None]
    if missing:
        say(f"Not answered yet for {', '.join(missing)}: put True or False for every letter.")
        return False
    given = {k: flag(f"answers[{k!r}]", answers[k]) for k in _VERDICTS}
    if any(v is None for v in given.values()):
        return False
    wrong = [k for k in _VERDICTS if given[k] != _VERDICTS[k]]
    if not wrong:
        say("Correct: W = L (U + diag(e^theta)) has W_11 = e^theta_1 > 0 and det W = e^(theta_1 + theta_2) > 0; "
            "a and e have both, the others do not.")
        return True
    dets = {k: float(torch.linalg.det(torch.tensor(W, dtype=f64))) for k, W in MATRICES.items()}
    if all(given[k] == (dets[k] > 0) for k in _VERDICTS):
        say("Not yet: you judged by the sign of the determinant only. The (1, 1) entry of W is the first diagonal "
            "entry of U: it must be positive too. Look at d.")
    elif all(given[k] == (dets[k] != 0) for k in _VERDICTS):
        say("Not yet: being invertible is not enough. Without a permutation the signs are fixed: W_11 > 0 and "
            "det W > 0.")
    else:
        say(f"Not yet: check {', '.join(wrong)}. Multiply out L (U + diag(e^theta)) for 2 x 2 matrices: what is "
            "W_11, and what is det W?")
    return False


# --------------------------------------------------------------------------------------------
# exercise 3 (code): the triangular layer by hand, without slogdet, det, solvers or inverses
# --------------------------------------------------------------------------------------------


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
        say(f"Not yet: {name} should return a pair (points, ladj).")
        return None
    y = tensor(f"the points {name} returns", out[0], (n, d), "one point per row")
    ladj = None if y is None else tensor(f"the ladj {name} returns", out[1], (n,), "one value per row")
    return None if ladj is None else (y, ladj)


def _diagnose_points(name, y, want, x, lower, log_diag, bias, d) -> None:
    L = lower.tril(-1) + torch.diag(log_diag.exp())
    if name == "forward" and close(y, x @ (lower.triu(1) + L).T + bias, 1e-8):
        say("Not yet: you used the entries of `lower` above the diagonal. The layer uses only its strictly lower "
            "part: lower.tril(-1).")
    elif name == "forward" and close(y, x @ L + bias, 1e-8):
        say("Not yet: you multiplied by L^T (x @ L). Row by row, z = x @ L.T + b.")
    elif name == "forward" and close(y, x @ (lower.tril(-1) + torch.diag(log_diag)).T + bias, 1e-8):
        say("Not yet: the diagonal of L is e^theta, not theta.")
    elif name == "inverse" and close(y, (x - bias) @ L.T, 1e-8):
        say("Not yet: that applies L again instead of undoing it. Solve L x = z - b coordinate by coordinate: "
            "x_i = (z_i - b_i - sum_{j<i} L_ij x_j) / L_ii.")
    elif name == "inverse" and d > 1 and close(y, (x - bias) * (-log_diag).exp(), 1e-8):
        say("Not yet: dividing by the diagonal inverts only a diagonal matrix. Subtract the contributions "
            "sum_{j<i} L_ij x_j of the coordinates already found.")
    else:
        say(f"Not yet: at D = {d} the points {name} returns are off by up to {float((y - want).abs().max()):.3g}.")


@checker
def check_triangular(forward: Callable, inverse: Callable, n: int = 50, seed: int | None = None) -> bool:
    r"""Exercise: ``forward(x, lower, log_diag, bias) -> (z, ladj)`` and
    ``inverse(z, lower, log_diag, bias) -> (x, ladj)`` of the triangular layer
    :math:`z = Lx + b`, :math:`L = \mathrm{tril}(\text{lower}, -1) + \mathrm{diag}(e^{\theta})`,
    without a determinant, a solver or a matrix inverse (torch, numpy or scipy). Tried with
    parameters drawn at each call (:func:`parameters`) at D = 1, 5 and 40, against
    :class:`flowlab.Triangular`; ``ladj`` has one value per row.
    """
    import flowlab as fl

    seed = fresh_seed() % 2**31 if seed is None else seed
    for d, k in ((5, 0), (1, 1), (40, 2)):
        lower, log_diag, bias = parameters(d, seed + k)
        g = torch.Generator().manual_seed(3000 + seed + k)
        x, z = torch.randn(n, d, generator=g, dtype=f64), 2 * torch.randn(n, d, generator=g, dtype=f64)
        for name, fn, inp in (("forward", forward, x), ("inverse", inverse, z)):
            watch = Watch(factorizations=0, modules=("numpy.linalg", "scipy.linalg"))
            ok, out = call(fn, inp.clone(), lower.clone(), log_diag.clone(), bias.clone(), name=name, watch=watch)
            if watch.used:
                say(f"Not yet: {name} computes {watch.used[0]}, which the exercise forbids. The log-det of a "
                    "triangular matrix is the sum of the logs of its diagonal; the inverse is a forward "
                    "substitution, one coordinate after the other.")
                return False
            if not ok:
                return False
            pair = _pair(out, n, d, name)
            if pair is None:
                return False
            y, ladj = pair
            t = fl.Triangular(d).double()  # the reference, made after the call and deleted after use
            with torch.no_grad():
                t.lower.copy_(lower)
                t.log_diag.copy_(log_diag)
                t.bias.copy_(bias)
                want, want_ladj = t(inp) if name == "forward" else t.inverse(inp)
            del t
            if not close(y, want, 1e-8):
                _diagnose_points(name, y, want, inp, lower, log_diag, bias, d)
                return False
            if not close(ladj, want_ladj, 1e-8):
                if close(ladj, -want_ladj, 1e-8):
                    say(f"Not yet: the ladj of {name} has the wrong sign. The inverse map has the inverse determinant: "
                        "ladj = -sum(theta).")
                elif close(ladj, (log_diag.exp().sum() * (1 if name == "forward" else -1)).expand(n), 1e-8):
                    say("Not yet: the log-det is the sum of log L_ii = theta_i, not of L_ii = e^theta_i.")
                else:
                    say(f"Not yet: the ladj of {name} is wrong at D = {d}: log|det L| = sum(theta_i).")
                return False
    say("Correct: forward (z = L x + b, ladj = sum theta) and inverse (forward substitution, ladj = -sum theta) "
        "match fl.Triangular at D = 1, 5 and 40, with parameters of the checker's own.")
    return True
