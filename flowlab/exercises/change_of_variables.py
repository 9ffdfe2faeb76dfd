r"""Checkers for the exercises of the chapter on the change of variables formula.

Each checker calls the student's function on points it draws itself (fresh ones at every
call unless ``seed`` is given), computes the right answer afterwards, says what it found and
returns a true :class:`~flowlab.exercises._feedback.Verdict` when the answer is right. It never
raises. A wrong answer is compared with the typical mistakes (no log-det term, the log-det with
the wrong sign, the base density taken at the wrong point...) and the message names the one it
matches. Library densities that answer the exercises without the formula (``LogNormal``,
``MultivariateNormal``, ``TransformedDistribution``, ``scipy.stats``) are refused however the
function reaches them: the checker watches the code that runs.

Example:
    >>> import torch
    >>> from flowlab.exercises import change_of_variables as ex
    >>> normal = torch.distributions.Normal(0.0, 1.0)
    >>> ex.check_log_density(lambda x: normal.log_prob(torch.log(x)) - torch.log(x))
    Correct: log p_X(x) = log p_Z(log x) - log x at 500 points of the checker's
    own.
    True
    >>> ex.check_log_density(lambda x: normal.log_prob(torch.log(x)))
    Not yet: you forgot the log-det term. Add log|dz/dx| = log(1/x) = -log x to log
    p_Z(z).
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import Watch, call, checker, diagnose, fresh_seed, say, tensor

__all__ = ["A", "b", "check_banana", "check_linear_log_density", "check_log_density"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

# library densities that answer the exercises without the change of variables formula
_LIBRARY = ("torch.distributions.log_normal", "torch.distributions.transformed_distribution",
            "torch.distributions.multivariate_normal", "torch.distributions.lowrank_multivariate_normal",
            "scipy.stats")


def _watched_call(fn, x: Tensor, name: str):
    """Call ``fn(x)`` and refuse a library density, whatever name reached it."""
    watch = Watch(modules=_LIBRARY)
    ok, out = call(fn, x, name=name, watch=watch)
    if watch.used:
        say(f"Not yet: your function uses {watch.used[0]}, a library density that gives the answer without "
            "the change of variables formula, which the exercise asks you to write. Use the base density "
            "(Normal, or its formula) at z, plus the log-derivative.")
        return False, None
    return ok, out


def _std_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension when z is 2-D."""
    lp = -0.5 * z * z - _HALF_LOG_2PI
    return lp.sum(-1) if z.dim() == 2 else lp


# --------------------------------------------------------------------------------------------
# exercise 1: the log-normal distribution
# --------------------------------------------------------------------------------------------


@checker
def check_log_density(log_density: Callable[[Tensor], Tensor], n: int = 500, seed: int | None = None) -> bool:
    r"""Check ``log_density(x)`` for :math:`X = e^Z`, :math:`Z \sim \mathcal N(0, 1)` (log-normal).

    ``x`` is a 1-D tensor of positive numbers; the answer must have the same shape and hold
    :math:`\log p_X(x) = \log p_Z(\log x) - \log x`.
    """
    g = torch.Generator().manual_seed(fresh_seed() if seed is None else seed)
    x = torch.exp(1.5 * torch.randn(n, generator=g, dtype=torch.float64))
    ok, out = _watched_call(log_density, x.clone(), "log_density")
    if not ok:
        return False
    got = tensor("the log-density", out, (n,), "one value per point")
    if got is None:
        return False
    logx = torch.log(x)
    base = _std_normal_log_prob(logx)
    truth = base - logx
    mistakes = [
        (base, "you forgot the log-det term. Add log|dz/dx| = log(1/x) = -log x to log p_Z(z)."),
        (base + logx, "the log-det term has the wrong sign. The density needs the derivative of the map "
                      "from x to z = log x, which is 1/x: add -log x, not +log x."),
        (truth.exp(), "this is the density p_X(x) itself; return its logarithm."),
        (_std_normal_log_prob(x) - logx, "the base density is evaluated at x; evaluate it at z = log x."),
        (_std_normal_log_prob(x), "the base density must be evaluated at z = log x, and the log-det term "
                                  "-log x is missing."),
        (_std_normal_log_prob(torch.exp(x)) + x, "you used the sampling map x -> exp(x); the density needs "
                                                 "its inverse, z = log x, and the log-derivative -log x."),
    ]
    if diagnose(got, truth, mistakes, "the log-density"):
        say(f"Correct: log p_X(x) = log p_Z(log x) - log x at {n} points of the checker's own.")
        return True
    return False


# --------------------------------------------------------------------------------------------
# exercise 2: the banana, a data-to-latent map with its ladj
# --------------------------------------------------------------------------------------------


@checker
def check_banana(forward: Callable[[Tensor], tuple[Tensor, Tensor]], n: int = 200, seed: int | None = None) -> bool:
    r"""Check ``forward(x) -> (z, ladj)`` for the data-to-latent map
    :math:`z_1 = x_1 / 2,\ z_2 = x_2 - x_1^2`, with ``x`` of shape ``(n, 2)``.

    ``z`` must have shape ``(n, 2)`` and ``ladj`` shape ``(n,)``:
    :math:`\log\lvert\det \partial z/\partial x\rvert` at each point.
    """
    g = torch.Generator().manual_seed(fresh_seed() if seed is None else seed)
    x = 2 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    ok, out = call(forward, x.clone(), name="forward")
    if not ok:
        return False
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        say("Not yet: forward must return a pair (z, ladj), as every flowlab transform does.")
        return False
    z = tensor("z", out[0], (n, 2), "one point per row")
    if z is None:
        return False
    truth_z = torch.stack([x[:, 0] / 2, x[:, 1] - x[:, 0] ** 2], dim=1)
    if not diagnose(z, truth_z, [
        (torch.stack([2 * x[:, 0], x[:, 1] + 4 * x[:, 0] ** 2], dim=1),
         "z is the image under the inverse map (latent to data). forward goes from data to latent: "
         "z1 = x1 / 2, z2 = x2 - x1**2."),
    ], "z"):
        return False
    raw = out[1]
    if isinstance(raw, torch.Tensor) and tuple(raw.shape) == (n, 2):
        say("Not yet: ladj has shape (n, 2), one log-derivative per coordinate. The log-det of a triangular "
            "Jacobian is their sum: return ladj.sum(-1), shape (n,).")
        return False
    ladj = tensor("ladj", raw, (n,), "one value per row")
    if ladj is None:
        return False
    log2 = math.log(2.0)
    truth = torch.full((n,), -log2, dtype=torch.float64)
    mistakes = [
        (-truth, "ladj has the wrong sign: +log 2 is the log-det of the latent-to-data map. The map "
                 "x -> z halves x1, so it shrinks areas: ladj = log(1/2) = -log 2."),
        (torch.zeros(n, dtype=torch.float64),
         "ladj = 0 misses the factor 1/2 on z1. The bend x2 - x1**2 keeps areas (its Jacobian is "
         "triangular with 1 on the diagonal), but halving x1 does not."),
        (-log2 + torch.log(2 * x[:, 0].abs()),
         "the off-diagonal entry dz2/dx1 = -2 x1 does not enter the determinant of a triangular "
         "matrix: only the diagonal (1/2 and 1) does."),
        (torch.log((0.5 + 2 * x[:, 0]).abs()),
         "the determinant of [[1/2, 0], [-2 x1, 1]] is the product of the diagonal, 1/2, "
         "not a sum that involves the off-diagonal entry."),
        (torch.full((n,), -0.5, dtype=torch.float64), "ladj is a logarithm: log(1/2) = -0.693, not -0.5."),
        (torch.full((n,), 0.5, dtype=torch.float64), "ladj is the log of |det|: log(1/2) = -0.693, not 1/2."),
    ]
    if diagnose(ladj, truth, mistakes, "ladj"):
        say(f"Correct: z and ladj = -log 2 at {n} points of the checker's own. The bend does not change "
            "areas; only the factor 1/2 does.")
        return True
    return False


# --------------------------------------------------------------------------------------------
# exercise 3: a linear map in two dimensions
# --------------------------------------------------------------------------------------------

A = torch.tensor([[1.5, 0.0], [1.0, 0.5]], dtype=torch.float64)
"""The matrix of exercise 3: :math:`X = A Z + b`."""
b = torch.tensor([1.0, -1.0], dtype=torch.float64)
"""The shift of exercise 3."""

# the linear map that the chapter's text uses (a trap when left in the namespace)
_CHAPTER_MAP = ([[1.2, 0.0], [0.7, 0.6]], [0.5, -0.5])


@checker
def check_linear_log_density(log_density: Callable[[Tensor], Tensor], A=A, b=b, n: int = 500,
                             seed: int | None = None) -> bool:
    r"""Check ``log_density(x)`` for :math:`X = A Z + b`, :math:`Z \sim \mathcal N(0, I_2)` (by
    default ``A`` and ``b`` of this module); ``x`` has shape ``(n, 2)`` (float64), the answer ``(n,)``.

    The right answer is :math:`\log p_Z(A^{-1}(x - b)) - \log\lvert\det A\rvert`, the
    log-density of :math:`\mathcal N(b, A A^\top)`.
    """
    A = torch.as_tensor(A, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    g = torch.Generator().manual_seed(fresh_seed() if seed is None else seed)
    x = b + 2 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    ok, out = _watched_call(log_density, x.clone(), "log_density")
    if not ok:
        return False
    got = tensor("the log-density", out, (n,), "one value per point")
    if got is None:
        return False
    Ainv = torch.linalg.inv(A)
    logdet = float(torch.linalg.slogdet(A).logabsdet)
    base = _std_normal_log_prob((x - b) @ Ainv.T)
    truth = base - logdet
    mistakes = [
        (base, "you forgot the log-det term: add log|det A^{-1}| = -log|det A| "
               f"= {-logdet:+.4f} to log p_Z(z)."),
        (base + logdet, "the log-det term has the wrong sign: the density needs the Jacobian of "
                        "x -> z = A^{-1}(x - b), whose log|det| is -log|det A|."),
        (_std_normal_log_prob((x - b) @ A.T) - logdet, "z = A (x - b) is wrong: to get from x back to z, "
                                                       "apply the inverse, z = A^{-1} (x - b)."),
        (_std_normal_log_prob((x - b) @ A.T) + logdet, "z = A (x - b) is wrong (use A^{-1}), and the log-det "
                                                       "term should be -log|det A|."),
        (_std_normal_log_prob(x @ Ainv.T) - logdet, "you forgot to subtract the shift: z = A^{-1} (x - b)."),
        (_std_normal_log_prob(x @ Ainv.T - b) - logdet, "the shift is subtracted after the inverse; the right "
                                                        "order is z = A^{-1} (x - b)."),
        (_std_normal_log_prob((x - b) @ Ainv) - logdet, "the inverse matrix is transposed: with points as "
                                                        "rows, z = (x - b) @ A^{-1}.T."),
        (truth.exp(), "this is the density p_X(x) itself; return its logarithm."),
    ]
    other_A, other_b = (torch.tensor(v, dtype=torch.float64) for v in _CHAPTER_MAP)
    if not torch.equal(other_A, A):
        z_other = torch.linalg.solve(other_A, (x - other_b).T).T
        mistakes.append((_std_normal_log_prob(z_other) - float(torch.linalg.slogdet(other_A).logabsdet),
                         "this is the density for another matrix and shift: use the exercise's A and b."))
    if diagnose(got, truth, mistakes, "the log-density"):
        say(f"Correct: it is the log-density of N(b, A A^T) at {n} points of the checker's own.")
        return True
    return False
