r"""Checkers for the exercises of the chapter on universality.

Each checker compares the student's answer with one computed here independently, prints what it
found and returns ``True`` when the answer is right. It never raises. A wrong answer is compared
with the typical mistakes (the Cholesky factor instead of its inverse, the symmetric square
root, the wrong ordering, the CDF instead of its inverse, a decreasing map...) and the message
names the one it matches.

Example:
    >>> from flowlab.exercises import universality as ex
    >>> ex.check_gaussian_kr([[0.5, 0.0], [-0.5, 1.0]])
    Correct: T(x) = L^{-1} x with L = [[2, 0], [1, 1]] the lower Cholesky factor of Sigma: lower triangular, positive diagonal, and T(X) ~ N(0, I).
    True
    >>> ex.check_ordering("x1 first")
    Not yet: given x1, the coordinate x2 is a mixture of two bumps at +-sqrt(x1) (bimodal), so no affine function of x2 can make it Gaussian.
    False
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import tensor_of_shape
from .change_of_variables import _call

__all__ = ["SIGMA", "check_gaussian_kr", "check_inverse_cdf", "check_ordering"]

SIGMA = torch.tensor([[4.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
"""The covariance of the Gaussian in the first exercise."""


def _matrix(A) -> Tensor | None:
    if A is None:
        print("No answer yet: replace None with the 2 x 2 matrix A of T(x) = A x.")
        return None
    try:
        M = torch.as_tensor(A.detach() if isinstance(A, Tensor) else A, dtype=torch.float64)
    except Exception:  # noqa: BLE001 - any conversion failure is feedback
        print(f"Not yet: A should be a 2 x 2 matrix (nested lists, array or tensor), got {type(A).__name__}.")
        return None
    if M.shape != (2, 2):
        print(f"Not yet: A should have shape (2, 2), got {tuple(M.shape)}.")
        return None
    if not torch.isfinite(M).all():
        print("Not yet: A has NaN or infinite entries.")
        return None
    return M


def check_gaussian_kr(A) -> bool:
    r"""Check ``A``: the Knothe-Rosenblatt map :math:`T(x) = A x` (order :math:`x_1 \to x_2`)
    of :math:`\mathcal N(0, \Sigma)` with :data:`SIGMA` = [[4, 2], [2, 2]].

    The answer is :math:`L^{-1}` with :math:`\Sigma = L L^\top` lower triangular with a positive
    diagonal: the only lower triangular matrix with positive diagonal that whitens :math:`\Sigma`.
    """
    M = _matrix(A)
    if M is None:
        return False
    L = torch.linalg.cholesky(SIGMA)
    right = torch.linalg.inv(L)
    if torch.allclose(M, right, atol=1e-6):
        print("Correct: T(x) = L^{-1} x with L = [[2, 0], [1, 1]] the lower Cholesky factor of Sigma: lower "
              "triangular, positive diagonal, and T(X) ~ N(0, I).")
        return True
    sym = torch.linalg.eigh(SIGMA)
    inv_sqrt = sym.eigenvectors @ torch.diag(sym.eigenvalues.rsqrt()) @ sym.eigenvectors.T
    P = torch.tensor([[0, 1], [1, 0]], dtype=torch.float64)
    other = P @ torch.linalg.inv(torch.linalg.cholesky(P @ SIGMA @ P)) @ P  # the order x2 -> x1
    mistakes = [
        (L, "that is L itself, the map from N(0, I) to the data (latent to data). The KR map goes from data to "
            "latent: invert it."),
        (L.T, "that is L^T: upper triangular, and it maps N(0, I) the wrong way. Invert L, keep it lower triangular."),
        (torch.linalg.inv(L.T), "that is L^{-T}: it whitens the precision, not Sigma. Use L^{-1}."),
        (inv_sqrt, "that is the symmetric square root Sigma^{-1/2}: it whitens the data too, but z1 then depends on "
                   "x2. The KR map is triangular: z1 depends on x1 alone."),
        (torch.linalg.inv(SIGMA), "that is Sigma^{-1}, the precision. T(X) must have identity covariance: "
                                  "A Sigma A^T = I."),
        (other, "that is the KR map in the other order (x2 first, upper triangular). Here x1 comes first."),
        (-right, "the signs are flipped: the KR map is increasing in each coordinate, so its diagonal is positive."),
    ]
    for wrong, message in mistakes:
        if torch.allclose(M, wrong, atol=1e-6):
            print("Not yet: " + message)
            return False
    if abs(float(M[0, 1])) > 1e-9:
        print("Not yet: A[0, 1] should be 0: in the order x1 -> x2 the first latent coordinate depends on x1 only.")
        return False
    cov = M @ SIGMA @ M.T
    if not torch.allclose(cov, torch.eye(2, dtype=torch.float64), atol=1e-6):
        print(f"Not yet: A Sigma A^T = {cov.round(decimals=3).tolist()}, but T(X) must be N(0, I): A Sigma A^T = I.")
        return False
    print("Not yet: A whitens Sigma and is lower triangular, but a diagonal entry is negative: the KR map "
          "increases in each coordinate.")
    return False


_ORDER_WORDS = {
    "x2": "x2", "x2 first": "x2", "x2 -> x1": "x2", "(1, 0)": "x2", "1, 0": "x2", "reverse": "x2",
    "x1": "x1", "x1 first": "x1", "x1 -> x2": "x1", "(0, 1)": "x1", "0, 1": "x1",
    "both": "both", "either": "both", "neither": "neither", "none": "neither",
}


def check_ordering(answer) -> bool:
    r"""Check the prediction: for :math:`x_2 \sim \mathcal N(0, 1)`,
    :math:`x_1 \mid x_2 \sim \mathcal N(x_2^2, 0.3^2)`, which ordering lets one affine autoregressive
    layer (``fl.MAF(2)``) be exact: ``"x1 first"``, ``"x2 first"``, ``"both"`` or ``"neither"``
    (``(0, 1)`` and ``(1, 0)`` are accepted too)."""
    if answer is None:
        print('No answer yet: replace None with "x1 first", "x2 first", "both" or "neither".')
        return False
    key = str(tuple(answer)) if isinstance(answer, (tuple, list)) else str(answer)
    choice = _ORDER_WORDS.get(key.strip().lower().replace("\u2192", "->"))
    if choice is None:
        print(f'Not yet: answer with "x1 first", "x2 first", "both" or "neither", got {answer!r}.')
        return False
    if choice == "x2":
        print("Correct: with x2 first, z2 = x2 is already standard normal and x1 | x2 is Gaussian with mean "
              "x2^2 and a fixed scale, so one affine layer is the exact KR map. With x1 first it is not: "
              "x2 | x1 is bimodal.")
        return True
    messages = {
        "x1": "given x1, the coordinate x2 is a mixture of two bumps at +-sqrt(x1) (bimodal), so no affine "
              "function of x2 can make it Gaussian.",
        "both": "one ordering fails: the conditional of x2 given x1 has two bumps at +-sqrt(x1), and an affine "
                "map keeps the number of modes.",
        "neither": "one ordering works: look at the conditional of x1 given x2. Its mean depends on x2, its "
                   "scale does not, and it is Gaussian.",
    }
    print("Not yet: " + messages[choice])
    return False


def _rayleigh_quantile(u: Tensor) -> Tensor:
    return torch.sqrt(-2 * torch.log1p(-u))


def check_inverse_cdf(inverse_cdf: Callable[[Tensor], Tensor], n: int = 2000, seed: int = 0) -> bool:
    r"""Check ``inverse_cdf(u)``: the quantile function of the Rayleigh density
    :math:`p(x) = x e^{-x^2/2}` on :math:`x \ge 0`, written in closed form (no tables, no
    ``flowlab.numerics``). It is called on the checker's own levels :math:`u \in (0, 1)`
    (float64) and must agree with :math:`F^{-1}` to 1e-9."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    ok, out = _call(inverse_cdf, u.clone(), name="inverse_cdf")
    if not ok:
        return False
    x = tensor_of_shape("inverse_cdf", out, u.shape, "one x per level", hint="Is a log taken of a negative number?")
    if x is None:
        return False
    want = _rayleigh_quantile(u)
    if torch.allclose(x, want, rtol=1e-9, atol=1e-9):
        print(f"Correct: F^{{-1}}(u) = sqrt(-2 log(1 - u)) at {n} levels; with U uniform, F^{{-1}}(U) has density "
              "x exp(-x^2/2).")
        return True
    mistakes = [
        (torch.sqrt(-2 * torch.log(u)), "that is F^{-1}(1 - u): the samples have the right law (1 - U is uniform "
                                        "too), but the map decreases. The quantile function is increasing: "
                                        "solve F(x) = u with F(x) = 1 - exp(-x^2/2)."),
        (1 - torch.exp(-(u**2) / 2), "that is the CDF F(u), not its inverse. Solve F(x) = u for x."),
        (torch.sqrt(-torch.log1p(-u)), "a factor 2 is missing under the square root: exp(-x^2/2) = 1 - u gives "
                                       "x^2 = -2 log(1 - u)."),
        (-2 * torch.log1p(-u), "that is x^2; take the square root."),
    ]
    for wrong, message in mistakes:
        if torch.allclose(x, wrong, rtol=1e-9, atol=1e-9):
            print("Not yet: " + message)
            return False
    err = float((x - want).abs().max())
    if err < 1e-3:
        print(f"Not yet: close (off by up to {err:.2g}), but not to 1e-9: write F^{{-1}} in closed form, not from "
              "a table or a root finder.")
    else:
        print(f"Not yet: off by up to {err:.3g}. Check: F(inverse_cdf(u)) should equal u, "
              "with F(x) = 1 - exp(-x^2/2).")
    return False
