r"""Checkers for the exercises of the chapter on the cost of Jacobian determinants.

Each checker compares the student's answer with a value computed here independently, prints
what it found and returns ``True`` when the answer is right. It never raises: a missing answer
(``None``) or an answer of the wrong type gets a message that says what to change. When the
answer is wrong, the checker compares it with the typical mistakes and names the one it matches.

The two determinant exercises take a *function* of the matrix: the checker calls it on
matrices of its own (one with an odd number of negative diagonal entries, one whose
determinant overflows), which are watched so that the shortcuts the exercise forbids
(``torch.linalg.slogdet``, ``torch.det``... on the large matrix) are refused.

Example:
    >>> import torch
    >>> from flowlab.exercises import jacobians as ex
    >>> ex.check_triangular_logdet(lambda L: L.diagonal().abs().log().sum())
    Correct: log|det L| = sum of log|L_ii| on all 3 matrices (up to d = 800), no factorization needed.
    True
    >>> ex.check_triangular_logdet(lambda L: L.diagonal().sum())
    Not yet: you summed the diagonal entries (the trace). The determinant of a triangular matrix is their product: sum their logs, log|L_ii|.
    False
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._feedback import close as _close
from ._feedback import number as _number

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


_DETERMINANTS = {torch.linalg.slogdet, torch.linalg.det, torch.det, torch.slogdet, torch.logdet,
                 torch.linalg.lu_factor, torch.linalg.lu, torch.linalg.eigvals, torch.linalg.svdvals,
                 torch.Tensor.det, torch.Tensor.slogdet, torch.Tensor.logdet}


class _Watched(torch.Tensor):
    """A tensor that records any determinant or factorization of a matrix larger than ``allowed``."""

    allowed = 0
    used: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in _DETERMINANTS:
            a = args[0] if args else None
            if isinstance(a, torch.Tensor) and a.dim() >= 2 and a.shape[-1] > cls.allowed:
                cls.used.append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


def _watch(*tensors: torch.Tensor, allowed: int = 0):
    """Watched views of ``tensors``, and the list that records forbidden calls."""
    watched = type("Watched", (_Watched,), {"allowed": allowed, "used": []})
    return [t.as_subclass(watched) for t in tensors], watched.used


def _plain(value):
    return value.as_subclass(torch.Tensor) if isinstance(value, torch.Tensor) else value


def _big_triangular(d: int = 800, seed: int = 1) -> torch.Tensor:
    """A triangular matrix whose determinant overflows float64 (diagonal entries of size 2-3)."""
    g = torch.Generator().manual_seed(seed)
    diag = (2.0 + torch.rand(d, generator=g, dtype=torch.float64)) * torch.where(torch.arange(d) % 2 == 1, -1.0, 1.0)
    return torch.randn(d, d, generator=g, dtype=torch.float64).tril(-1) + torch.diag(diag)


def check_triangular_logdet(logdet) -> bool:
    r"""Exercise: ``logdet(L)`` returns :math:`\log\lvert\det L\rvert` of a lower-triangular
    matrix from its diagonal, without ``slogdet`` or ``det``. It is tried on
    :func:`lower_triangular` matrices with an even and an odd number of negative diagonal
    entries, and on an 800 x 800 one whose determinant overflows float64."""
    from .change_of_variables import _call

    for L in (lower_triangular(6), lower_triangular(3, seed=2), _big_triangular()):
        (watched,), used = _watch(L)
        ok, out = _call(logdet, watched, name="logdet")
        if used:
            print(f"Not yet: you called {used[0]}, which the exercise forbids. A triangular matrix needs no "
                  "factorization: use its diagonal.")
            return False
        if not ok:
            return False
        try:
            raw = float(_plain(out))
        except (TypeError, ValueError, RuntimeError):
            raw = None
        if raw is not None and math.isinf(raw):
            print(f"Not yet: on a {len(L)} x {len(L)} matrix your result is {raw}: the product of the diagonal "
                  "overflows float64. Sum the logs of |L_ii| instead of taking the log of the product.")
            return False
        value = _number("logdet(L)", _plain(out))
        if value is None:
            return False
        if not _check_triangular_value(L, value):
            return False
    print("Correct: log|det L| = sum of log|L_ii| on all 3 matrices (up to d = 800), no factorization needed.")
    return True


def _check_triangular_value(L: torch.Tensor, value: float) -> bool:
    diag = L.diagonal()
    right = float(diag.abs().log().sum())
    if _close(value, right, 1e-6):
        return True
    d = len(diag)
    if _close(value, float(diag.sum()), 1e-6):
        print(
            "Not yet: you summed the diagonal entries (the trace). The determinant of a triangular matrix is "
            "their product: sum their logs, log|L_ii|."
        )
    elif _close(value, float(diag.prod()), 1e-6):
        print("Not yet: that is det L itself. Take log of its absolute value (better: sum of log|L_ii|, which cannot overflow).")
    elif _close(value, float(L.abs().log().nan_to_num(neginf=0.0).sum()), 1e-6) or _close(value, float(L.abs().sum()), 1e-6):
        print("Not yet: only the diagonal of a triangular matrix enters its determinant; the entries below it do not.")
    else:
        print(f"Not yet: on a {d} x {d} matrix, {value:.4f} is not log|det L| = {right:.4f}. Use L.diagonal(), "
              "then abs, log and sum (a product of the entries can overflow).")
    return False


def check_low_rank_logdet(logdet) -> bool:
    r"""Exercise: ``logdet(U, V)`` returns :math:`\log\lvert\det(I_d + U V^\top)\rvert` by the
    matrix determinant lemma, :math:`\det(I_d + U V^\top) = \det(I_k + V^\top U)`, using only a
    :math:`k \times k` determinant. It is tried on :func:`low_rank_factors` with
    :math:`(d, k) = (500, 2)` and :math:`(300, 3)`; a determinant of a larger matrix is refused."""
    from .change_of_variables import _call

    for d, k in ((500, 2), (300, 3)):
        U, V = low_rank_factors(d, k, seed=k)
        (wu, wv), used = _watch(U, V, allowed=k)
        ok, out = _call(logdet, wu, wv, name="logdet")
        if used:
            print(f"Not yet: you called {used[0]} on a matrix larger than {k} x {k}, which the exercise forbids. "
                  f"The lemma needs only the {k} x {k} matrix I_k + V^T U.")
            return False
        if not ok:
            return False
        value = _number("logdet(U, V)", _plain(out))
        if value is None or not _check_low_rank_value(U, V, value):
            return False
    print("Correct: log|det(I_d + U V^T)| = log|det(I_k + V^T U)|, from a k x k determinant, for k = 2 and 3.")
    return True


def _check_low_rank_value(U: torch.Tensor, V: torch.Tensor, value: float) -> bool:
    k = U.shape[1]
    right = float(torch.linalg.slogdet(torch.eye(k, dtype=torch.float64) + V.T @ U).logabsdet)
    if _close(value, right, 1e-6):
        return True
    if _close(value, float(torch.linalg.slogdet(V.T @ U).logabsdet), 1e-6):
        print("Not yet: the identity is missing. The lemma gives det(I_k + V^T U), not det(V^T U).")
    elif _close(value, float(torch.trace(V.T @ U)), 1e-6):
        print("Not yet: tr(V^T U) is only the first term of the series for log det(I + V^T U); compute the determinant itself.")
    else:
        print(f"Not yet: {value:.4f} is not log|det(I + U V^T)|. Form the {k} x {k} matrix I + V^T U and take its slogdet.")
    return False


def check_cubic_extrapolation(seconds_at_512, answer, d: int = 3 * 64 * 64) -> bool:
    r"""Exercise: from the time of one ``slogdet`` at :math:`d = 512`, the predicted time at
    ``d`` (default a 64 x 64 colour image, :math:`d = 12288`) if the cost grows like :math:`d^3`."""
    t = _number("seconds_at_512", seconds_at_512)
    value = _number("answer", answer)
    if t is None or value is None:
        return False
    ratio = d / 512
    right = t * ratio**3
    if _close(value, right, 1e-3):
        print(f"Correct: ({d} / 512)^3 = {ratio**3:,.0f} times longer, about {right:.3g} s per sample.")
        return True
    for power, word in ((1, "linear"), (2, "quadratic")):
        if _close(value, t * ratio**power, 1e-3):
            print(f"Not yet: that is a {word} extrapolation (ratio^{power}). An LU factorization grows like d^3.")
            return False
    if _close(value, t * ratio * 3, 1e-3):
        print("Not yet: the ratio of dimensions is raised to the third power, not multiplied by 3: (d / 512)^3.")
    else:
        print(f"Not yet: {value:.3g} s is not t * (d / 512)^3 with d = {d}.")
    return False


def check_slope(d, seconds, answer, d_min: int = 64) -> bool:
    r"""Exercise: the slope of :math:`\log t` against :math:`\log d` fitted (``np.polyfit``,
    degree 1) on the measurements with :math:`d \ge` ``d_min``."""
    value = _number("answer", answer)
    if value is None:
        return False
    d = np.asarray(d, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if d.shape != t.shape or d.ndim != 1:
        print("Not yet: d and seconds should be 1-D arrays of the same length.")
        return False
    keep = d >= d_min
    if keep.sum() < 2:
        print(f"Not yet: fewer than two measurements have d >= {d_min}.")
        return False
    right = float(np.polyfit(np.log(d[keep]), np.log(t[keep]), 1)[0])
    if abs(value - right) <= 0.0051:  # the value itself, or rounded to two decimals as the chapter prints it
        print(f"Correct: slope {right:.2f} on d >= {d_min}.")
        return True
    if abs(value - float(np.polyfit(np.log(d), np.log(t), 1)[0])) <= 0.0051:
        print(f"Not yet: that is the slope over all d. Keep only the measurements with d >= {d_min}.")
    elif abs(value - float(np.polyfit(d[keep], t[keep], 1)[0])) <= 1e-6 * max(1.0, abs(value)):
        print("Not yet: that is a fit on linear axes. Fit log(seconds) against log(d).")
    elif abs(value - float(np.polyfit(np.log(t[keep]), np.log(d[keep]), 1)[0])) <= 0.0051:
        print("Not yet: the axes are swapped. np.polyfit(x, y, 1) takes x = log d first, then y = log t.")
    else:
        print(f"Not yet: {value:.3f} is not the fitted slope. Use np.polyfit(np.log(d), np.log(seconds), 1)[0] on d >= {d_min}.")
    return False
