r"""Checkers for the exercises of the chapter on the change of variables formula.

Each checker calls the student's function on random points, compares the result with the
right answer, prints what it found and returns ``True`` when the answer is right. It never
raises: a function that is not written yet, raises, or returns the wrong shape gets a message
that says what to change. When the answer is wrong, the checker compares it with the typical
mistakes (no log-det term, the log-det with the wrong sign, the wrong direction of the map...)
and names the one it matches.

Example:
    >>> import torch
    >>> from flowlab.exercises import change_of_variables as ex
    >>> normal = torch.distributions.Normal(0.0, 1.0)
    >>> ex.check_log_density(lambda x: normal.log_prob(torch.log(x)) - torch.log(x))
    Correct: log p_X(x) = log p_Z(log x) - log x matches at 500 random points.
    True
    >>> ex.check_log_density(lambda x: normal.log_prob(torch.log(x)))
    Not yet: you forgot the log-det term. Add log|dz/dx| = log(1/x) = -log x to log p_Z(z).
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import shortcuts as _shortcuts

__all__ = ["A", "b", "check_banana", "check_linear_log_density", "check_log_density"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

# library densities that would answer the exercises without the change of variables formula
_LIBRARY_NAMES = ("LogNormal", "MultivariateNormal", "TransformedDistribution", "log_normal")
_LIBRARY_TYPES = (torch.distributions.LogNormal, torch.distributions.MultivariateNormal,
                  torch.distributions.TransformedDistribution)


def _refuse_library(fn) -> bool:
    """Print a message and return True when ``fn`` uses a library density the exercise forbids."""
    found = _shortcuts(fn, _LIBRARY_NAMES, _LIBRARY_TYPES)
    if found:
        print(f"Not yet: your function uses {found[0]}, a library density that gives the answer without the "
              "change of variables formula, which the exercise asks you to write. Use the base density "
              "(Normal or the formula) at z, plus the log-derivative.")
        return True
    return False


# --------------------------------------------------------------------------------------------
# shared helpers (also used by the checkers of the composition chapter)
# --------------------------------------------------------------------------------------------


def _call(fn: Callable, *args, name: str = "your function"):
    """Call ``fn(*args)``; on failure print why and return ``(False, None)``."""
    if not callable(fn):
        print(f"Not yet: pass a function, not a {type(fn).__name__}.")
        return False, None
    own = getattr(fn, "__name__", "")
    if own.isidentifier():  # the student's own name for it (a lambda keeps the generic one)
        name = f"`{own}`"
    try:
        out = fn(*args)
    except NotImplementedError:
        print(f"Not answered yet: {name} is still a stub. Fill in its body and run the cell again.")
        return False, None
    except Exception as e:  # noqa: BLE001 - any error in student code becomes feedback
        print(f"Not yet: {name} raised {type(e).__name__}: {e}")
        return False, None
    if out is None:
        print(f"Not answered yet: {name} returned None. Fill in its body and run the cell again.")
        return False, None
    return True, out


def _as_values(out, shape: tuple[int, ...], what: str) -> Tensor | None:
    """``out`` as a float64 tensor of ``shape``, or None after printing what is wrong with it."""
    try:
        t = torch.as_tensor(out.detach() if isinstance(out, Tensor) else out, dtype=torch.float64)
    except Exception:  # noqa: BLE001
        print(f"Not yet: {what} should be a tensor of shape {shape}, got a {type(out).__name__}.")
        return None
    if tuple(t.shape) != shape:
        if t.numel() == math.prod(shape) and t.dim() > len(shape):
            print(f"Not yet: {what} has shape {tuple(t.shape)}, expected {shape}. "
                  "Remove the extra dimension (e.g. with .squeeze(-1)).")
        else:
            print(f"Not yet: {what} has shape {tuple(t.shape)}, expected {shape}: one number per point.")
        return None
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).nonzero()[:3].flatten().tolist()
        print(f"Not yet: {what} has NaN or infinite values (first at index {bad}).")
        return None
    return t


def _close(a: Tensor, b: Tensor, tol: float = 1e-6) -> bool:
    return bool(((a - b).abs() <= tol * (1 + b.abs())).all())


def _diagnose(got: Tensor, truth: Tensor, mistakes: list[tuple[Tensor, str]], what: str) -> bool:
    """Compare ``got`` with the truth, then with each typical mistake; print the verdict."""
    if _close(got, truth):
        return True
    for wrong, message in mistakes:
        if _close(got, wrong):
            print("Not yet: " + message)
            return False
    diff = got - truth
    if _close(diff, diff.mean().expand_as(diff), 1e-6):
        print(f"Not yet: {what} is off by the same constant {float(diff.mean()):+.4f} at every point. "
              "Check the normalizing constant of the base density (-0.5 log(2 pi) per dimension).")
        return False
    worst = int(diff.abs().argmax())
    print(f"Not yet: {what} differs from the right answer by up to {float(diff.abs().max()):.3g} "
          f"(at point {worst}: got {float(got[worst]):.4f}, expected {float(truth[worst]):.4f}).")
    return False


def _std_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension when z is 2-D."""
    lp = -0.5 * z * z - _HALF_LOG_2PI
    return lp.sum(-1) if z.dim() == 2 else lp


# --------------------------------------------------------------------------------------------
# exercise 1: the log-normal distribution
# --------------------------------------------------------------------------------------------


def check_log_density(log_density: Callable[[Tensor], Tensor], n: int = 500, seed: int = 0) -> bool:
    r"""Check ``log_density(x)`` for :math:`X = e^Z`, :math:`Z \sim \mathcal N(0, 1)` (log-normal).

    ``x`` is a 1-D tensor of positive numbers; the answer must be a tensor of the same shape
    holding :math:`\log p_X(x) = \log p_Z(\log x) - \log x`.
    """
    x = torch.exp(1.5 * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    if _refuse_library(log_density):
        return False
    ok, out = _call(log_density, x.clone(), name="log_density")
    if not ok:
        return False
    got = _as_values(out, (n,), "the log-density")
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
    if _diagnose(got, truth, mistakes, "the log-density"):
        print(f"Correct: log p_X(x) = log p_Z(log x) - log x matches at {n} random points.")
        return True
    return False


# --------------------------------------------------------------------------------------------
# exercise 2: the banana, a data-to-latent map with its ladj
# --------------------------------------------------------------------------------------------


def _banana(x: Tensor) -> Tensor:
    return torch.stack([x[:, 0] / 2, x[:, 1] - x[:, 0] ** 2], dim=1)


def check_banana(forward: Callable[[Tensor], tuple[Tensor, Tensor]], n: int = 200, seed: int = 0) -> bool:
    r"""Check ``forward(x) -> (z, ladj)`` for the data-to-latent map
    :math:`z_1 = x_1 / 2,\ z_2 = x_2 - x_1^2`, with ``x`` of shape ``(n, 2)``.

    ``z`` must have shape ``(n, 2)`` and ``ladj`` shape ``(n,)``:
    :math:`\log\lvert\det \partial z/\partial x\rvert` at each point.
    """
    x = 2 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ok, out = _call(forward, x.clone(), name="forward")
    if not ok:
        return False
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        print("Not yet: forward must return a pair (z, ladj), as every flowlab transform does.")
        return False
    z = _as_values(out[0], (n, 2), "z")
    if z is None:
        return False
    truth_z = _banana(x)
    inverse_z = torch.stack([2 * x[:, 0], x[:, 1] + 4 * x[:, 0] ** 2], dim=1)
    if not _close(z, truth_z):
        if _close(z, inverse_z):
            print("Not yet: z is the image under the inverse map (latent to data). forward goes from "
                  "data to latent: z1 = x1 / 2, z2 = x2 - x1**2.")
        else:
            err = float((z - truth_z).abs().max())
            print(f"Not yet: z is wrong by up to {err:.3g}. It should be z1 = x1 / 2, z2 = x2 - x1**2.")
        return False
    ladj_raw = out[1]
    try:
        ladj_t = torch.as_tensor(ladj_raw.detach() if isinstance(ladj_raw, Tensor) else ladj_raw, dtype=torch.float64)
    except Exception:  # noqa: BLE001
        ladj_t = None
    if ladj_t is not None and ladj_t.dim() == 0:
        print("Not yet: ladj is a single number; return one value per point, shape (n,) "
              "(e.g. x.new_full((len(x),), value)).")
        return False
    if ladj_t is not None and tuple(ladj_t.shape) == (n, 2):
        print("Not yet: ladj has shape (n, 2), one log-derivative per coordinate. The log-det of a "
              "triangular Jacobian is their sum: return ladj.sum(-1), shape (n,).")
        return False
    ladj = _as_values(ladj_raw, (n,), "ladj")
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
    if _diagnose(ladj, truth, mistakes, "ladj"):
        print(f"Correct: z and ladj = -log 2 match at {n} random points. The bend does not change "
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
_OTHER_MATRICES = [(torch.tensor([[1.2, 0.0], [0.7, 0.6]], dtype=torch.float64),
                    torch.tensor([0.5, -0.5], dtype=torch.float64))]


def check_linear_log_density(log_density: Callable[[Tensor], Tensor], n: int = 500, seed: int = 0) -> bool:
    r"""Check ``log_density(x)`` for :math:`X = A Z + b`, :math:`Z \sim \mathcal N(0, I_2)`, with
    ``A`` and ``b`` from this module; ``x`` has shape ``(n, 2)`` (float64), the answer ``(n,)``.

    The right answer is :math:`\log p_Z(A^{-1}(x - b)) - \log\lvert\det A\rvert`, which is the
    log-density of :math:`\mathcal N(b, A A^\top)`.
    """
    x = b + 2 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if _refuse_library(log_density):
        return False
    ok, out = _call(log_density, x.clone(), name="log_density")
    if not ok:
        return False
    got = _as_values(out, (n,), "the log-density")
    if got is None:
        return False
    Ainv = torch.linalg.inv(A)
    logdet = float(torch.linalg.slogdet(A).logabsdet)
    z = (x - b) @ Ainv.T
    base = _std_normal_log_prob(z)
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
    for A_other, b_other in _OTHER_MATRICES:  # a matrix and shift of the chapter, not of the exercise
        z_other = torch.linalg.solve(A_other, (x - b_other).T).T
        mistakes.append((_std_normal_log_prob(z_other) - float(torch.linalg.slogdet(A_other).logabsdet),
                         "this is the density for another matrix and shift: use the exercise's A and b "
                         "(fl.exercises.change_of_variables.A and .b, A_ex and b_ex in the chapter)."))
    if _diagnose(got, truth, mistakes, "the log-density"):
        print(f"Correct: it matches the Gaussian N(b, A A^T) at {n} random points.")
        return True
    return False
