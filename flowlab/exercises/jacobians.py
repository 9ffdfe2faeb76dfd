r"""Checkers for the exercises of the chapter on the cost of Jacobian determinants.

Each checker compares the student's answer with a value it computes itself, says what it found
and returns a true verdict when the answer is right; it never raises. A wrong answer is
compared with the typical mistakes and the message names the one it matches.

The two determinant exercises take a *function* of the matrix: the checker calls it on
matrices it draws at each call (one with an odd number of negative diagonal entries, one whose
determinant overflows) and watches what the call computes, so that the determinants and
factorizations the exercise forbids are refused whatever the code calls them (torch, numpy or
scipy, an alias, a tensor subclass, ``matrix_power(L, -1)``...).

Example:
    >>> from flowlab.exercises import jacobians as ex
    >>> ex.check_triangular_logdet(lambda L: L.diagonal().abs().log().sum())
    Correct: log|det L| = the sum of log|L_ii| on 3 matrices of the checker's own
    (up to d = 800), with no factorization.
    True
    >>> ex.check_triangular_logdet(lambda L: L.diagonal().sum())
    Not yet: you summed the diagonal entries (the trace). The determinant of a
    triangular matrix is their product: sum their logs, log|L_ii|.
    False
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._feedback import Watch, call, checker, close, fresh_seed, number, say

__all__ = [
    "check_cubic_extrapolation",
    "check_low_rank_logdet",
    "check_slope",
    "check_triangular_logdet",
    "low_rank_factors",
    "lower_triangular",
]


def lower_triangular(d: int = 6, seed: int = 0) -> torch.Tensor:
    """A random ``d x d`` lower-triangular matrix (float64) with diagonal entries of both signs.

    Example:
        >>> L = lower_triangular(3)
        >>> bool((L.triu(1) == 0).all())
        True
    """
    g = torch.Generator().manual_seed(seed)
    L = torch.randn(d, d, generator=g, dtype=torch.float64).tril(-1)
    diag = (0.5 + torch.rand(d, generator=g, dtype=torch.float64)) * torch.where(torch.arange(d) % 3 == 1, -1.0, 1.0)
    return L + torch.diag(diag)


def low_rank_factors(d: int = 500, k: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Random factors ``U, V`` of shape ``(d, k)`` (float64), scaled so that
    :math:`I_d + U V^\top` is comfortably invertible.

    Example:
        >>> U, V = low_rank_factors(10, 2)
        >>> U.shape, V.shape
        (torch.Size([10, 2]), torch.Size([10, 2]))
    """
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(d, k, generator=g, dtype=torch.float64) / math.sqrt(d)
    V = torch.randn(d, k, generator=g, dtype=torch.float64)
    return U, V


_LINALG_LIBRARIES = ("numpy.linalg", "scipy.linalg")


def _is_inf(value) -> bool:
    try:
        return math.isinf(float(value))
    except (TypeError, ValueError, RuntimeError):
        return False


def _big_triangular(d: int, seed: int) -> torch.Tensor:
    """A triangular matrix whose determinant overflows float64 (diagonal entries of size 2-3)."""
    g = torch.Generator().manual_seed(seed)
    diag = (2.0 + torch.rand(d, generator=g, dtype=torch.float64)) * torch.where(torch.arange(d) % 2 == 1, -1.0, 1.0)
    return torch.randn(d, d, generator=g, dtype=torch.float64).tril(-1) + torch.diag(diag)


@checker
def check_triangular_logdet(logdet, seed: int | None = None) -> bool:
    r"""Exercise: ``logdet(L)`` returns :math:`\log\lvert\det L\rvert` of a lower-triangular
    matrix from its diagonal, without a determinant or a factorization. It is tried on
    matrices drawn at each call: with an even and an odd number of negative diagonal entries,
    and an 800 x 800 one whose determinant overflows float64. Any determinant or factorization
    (torch, numpy or scipy, however reached) is refused."""
    seed = fresh_seed() % 2**31 if seed is None else seed
    for L in (lower_triangular(6, seed), lower_triangular(3, seed + 1), _big_triangular(800, seed + 2)):
        watch = Watch(factorizations=0, modules=_LINALG_LIBRARIES)
        ok, out = call(logdet, L.clone(), name="logdet", watch=watch)
        if watch.used:
            say(f"Not yet: your function computes {watch.used[0]}, which the exercise forbids. A triangular "
                "matrix needs no factorization: use its diagonal.")
            return False
        if not ok:
            return False
        raw = out.detach().as_subclass(torch.Tensor) if isinstance(out, torch.Tensor) else out
        if _is_inf(raw):
            say(f"Not yet: on a {len(L)} x {len(L)} matrix your result is {float(raw)}: the product of the "
                "diagonal overflows float64. Sum the logs of |L_ii| instead of taking the log of the product.")
            return False
        value = number("logdet(L)", raw)
        if value is None or not _check_triangular_value(L, value):
            return False
    say("Correct: log|det L| = the sum of log|L_ii| on 3 matrices of the checker's own (up to d = 800), with "
        "no factorization.")
    return True


def _check_triangular_value(L: torch.Tensor, value: float) -> bool:
    diag = L.diagonal()
    right = float(diag.abs().log().sum())
    if close(value, right):
        return True
    d = len(diag)
    if close(value, float(diag.sum())):
        say("Not yet: you summed the diagonal entries (the trace). The determinant of a triangular matrix is "
            "their product: sum their logs, log|L_ii|.")
    elif math.isfinite(float(diag.prod())) and close(value, float(diag.prod())):
        say("Not yet: that is det L itself. Take the log of its absolute value (better: the sum of log|L_ii|, "
            "which cannot overflow).")
    elif close(value, float(diag.log().nan_to_num(nan=0.0).sum())):
        say("Not yet: the log of a negative diagonal entry is NaN: take log|L_ii|, the absolute value first.")
    elif close(value, float(L.abs().log().nan_to_num(neginf=0.0).sum())) or close(value, float(L.abs().sum())):
        say("Not yet: only the diagonal of a triangular matrix enters its determinant; the entries below it do not.")
    else:
        say(f"Not yet: on a {d} x {d} matrix, {value:.4f} is not log|det L|. Use L.diagonal(), then abs, log "
            "and sum (a product of the entries can overflow).")
    return False


@checker
def check_low_rank_logdet(logdet, seed: int | None = None) -> bool:
    r"""Exercise: ``logdet(U, V)`` returns :math:`\log\lvert\det(I_d + U V^\top)\rvert` by the
    matrix determinant lemma, :math:`\det(I_d + U V^\top) = \det(I_k + V^\top U)`, using only a
    :math:`k \times k` determinant. It is tried on :func:`low_rank_factors` drawn at each call
    with :math:`(d, k) = (500, 2)` and :math:`(300, 3)`; a determinant or factorization of a
    larger matrix (torch, numpy or scipy, however reached) is refused."""
    seed = fresh_seed() % 2**31 if seed is None else seed
    for d, k in ((500, 2), (300, 3)):
        U, V = low_rank_factors(d, k, seed=seed + k)
        watch = Watch(factorizations=k, modules=_LINALG_LIBRARIES)
        ok, out = call(logdet, U.clone(), V.clone(), name="logdet", watch=watch)
        if watch.used:
            say(f"Not yet: your function computes {watch.used[0]}, larger than {k} x {k}, which the exercise "
                f"forbids. The lemma needs only the {k} x {k} matrix I_k + V^T U.")
            return False
        if not ok:
            return False
        value = number("logdet(U, V)", out.detach().as_subclass(torch.Tensor) if isinstance(out, torch.Tensor) else out)
        if value is None or not _check_low_rank_value(U, V, value):
            return False
    say("Correct: log|det(I_d + U V^T)| = log|det(I_k + V^T U)|, from a k x k determinant, for k = 2 and 3.")
    return True


def _check_low_rank_value(U: torch.Tensor, V: torch.Tensor, value: float) -> bool:
    k = U.shape[1]
    right = float(torch.linalg.slogdet(torch.eye(k, dtype=torch.float64) + V.T @ U).logabsdet)
    if close(value, right):
        return True
    if close(value, float(torch.linalg.slogdet(V.T @ U).logabsdet)):
        say("Not yet: the identity is missing. The lemma gives det(I_k + V^T U), not det(V^T U).")
    elif close(value, float(torch.linalg.slogdet(torch.eye(k, dtype=torch.float64) + U.T @ V).logabsdet)):
        say("Not yet: U and V are swapped: det(I_d + U V^T) = det(I_k + V^T U).")
    elif close(value, float(torch.trace(V.T @ U))):
        say("Not yet: tr(V^T U) is only the first term of the series for log det(I + V^T U); compute the "
            "determinant itself.")
    else:
        say(f"Not yet: {value:.4f} is not log|det(I + U V^T)|. Form the {k} x {k} matrix I + V^T U and take its "
            "slogdet.")
    return False


@checker
def check_cubic_extrapolation(seconds_at_512, answer, d: int = 3 * 64 * 64) -> bool:
    r"""Exercise: from the time of one ``slogdet`` at :math:`d = 512`, the predicted time at
    ``d`` (default a 64 x 64 colour image, :math:`d = 12288`) if the cost grows like :math:`d^3`.
    An answer computed from the time rounded to three significant digits is accepted."""
    t, value = number("seconds_at_512", seconds_at_512), number("answer", answer)
    if t is None or value is None:
        return False
    ratio = d / 512
    right = t * ratio**3

    def near(v, w):  # within the rounding of a 3-digit input
        return abs(v / w - 1) <= 0.005 if w else v == w

    if near(value, right):
        say(f"Correct: ({d} / 512)^3 = {ratio**3:,.0f} times longer, about {right:.3g} s per sample.")
        return True
    for power, word in ((1, "linear"), (2, "quadratic")):
        if near(value, t * ratio**power):
            say(f"Not yet: that is a {word} extrapolation (ratio^{power}). An LU factorization grows like d^3.")
            return False
    if near(value, t * ratio * 3):
        say("Not yet: the ratio of dimensions is raised to the third power, not multiplied by 3: (d / 512)^3.")
    else:
        say(f"Not yet: {value:.3g} s is not t * (d / 512)^3 with d = {d}.")
    return False


@checker
def check_slope(d, seconds, answer, d_min: int = 64) -> bool:
    r"""Exercise: the slope of :math:`\log t` against :math:`\log d` fitted (``np.polyfit``,
    degree 1) on the measurements with :math:`d \ge` ``d_min``, to two decimals or more."""
    value = number("answer", answer)
    if value is None:
        return False
    d = np.asarray(d, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if d.shape != t.shape or d.ndim != 1:
        say("Not yet: d and seconds should be 1-D arrays of the same length.")
        return False
    keep = d >= d_min
    if keep.sum() < 2:
        say(f"Not yet: fewer than two measurements have d >= {d_min}.")
        return False
    right = float(np.polyfit(np.log(d[keep]), np.log(t[keep]), 1)[0])
    if abs(value - right) <= 0.0051:  # the value itself, or rounded to two decimals
        say(f"Correct: slope {right:.2f} on d >= {d_min}.")
        return True
    if abs(value - float(np.polyfit(np.log(d), np.log(t), 1)[0])) <= 0.0051:
        say(f"Not yet: that is the slope over all d. Keep only the measurements with d >= {d_min}.")
    elif close(value, float(np.polyfit(d[keep], t[keep], 1)[0])):
        say("Not yet: that is a fit on linear axes. Fit log(seconds) against log(d).")
    elif abs(value - float(np.polyfit(np.log(t[keep]), np.log(d[keep]), 1)[0])) <= 0.0051:
        say("Not yet: the axes are swapped. np.polyfit(x, y, 1) takes x = log d first, then y = log t.")
    else:
        say(f"Not yet: {value:.3f} is not the fitted slope. Use np.polyfit(np.log(d), np.log(seconds), 1)[0] on "
            f"d >= {d_min}.")
    return False
