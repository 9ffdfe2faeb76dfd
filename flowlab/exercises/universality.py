r"""Checkers for the exercises of the chapter on universality.

Each checker compares the student's answer with one it computes itself, says what it found and
returns a true verdict when the answer is right; it never raises. A wrong answer is compared
with the typical mistakes (the Cholesky factor instead of its inverse, the symmetric square
root, the wrong ordering, the CDF instead of its inverse, a decreasing map...) and the message
names the one it matches.

Example:
    >>> from flowlab.exercises import universality as ex
    >>> ex.check_gaussian_kr([[0.5, 0.0], [-0.5, 1.0]])
    Correct: T(x) = L^{-1} x with L the lower Cholesky factor of Sigma: lower
    triangular, positive diagonal, and T(X) ~ N(0, I).
    True
    >>> ex.check_ordering("x1 first")
    Not yet: given x1, the coordinate x2 is a mixture of two bumps at +-sqrt(x1)
    (bimodal), so no affine function of x2 can make it Gaussian.
    False
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import Watch, agrees, call, checker, fresh_seed, say, tensor

__all__ = ["SIGMA", "check_gaussian_kr", "check_inverse_cdf", "check_ordering"]

SIGMA = torch.tensor([[4.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
"""The covariance of the Gaussian in the first exercise."""


def _matrix(A) -> Tensor | None:
    if A is None:
        say("Not answered yet: replace None with the 2 x 2 matrix A of T(x) = A x.")
        return None
    return tensor("A", A, (2, 2), "a 2 x 2 matrix")


def _agree(M: Tensor, W: Tensor) -> bool:
    """Every entry of ``M`` is that of ``W`` to three significant digits (or 5e-4 near 0)."""
    return all(agrees(float(m), float(w)) if abs(float(w)) > 1e-9 else abs(float(m)) <= 5e-4
               for m, w in zip(M.flatten(), W.flatten()))


@checker
def check_gaussian_kr(A, sigma=None) -> bool:
    r"""Check ``A``: the Knothe-Rosenblatt map :math:`T(x) = A x` (order :math:`x_1 \to x_2`)
    of :math:`\mathcal N(0, \Sigma)`, by default with :data:`SIGMA` = [[4, 2], [2, 2]]; entries
    to three significant digits or more.

    The answer is :math:`L^{-1}` with :math:`\Sigma = L L^\top` lower triangular with a positive
    diagonal: the only lower triangular matrix with positive diagonal that whitens :math:`\Sigma`.
    """
    M = _matrix(A)
    if M is None:
        return False
    S = SIGMA if sigma is None else torch.as_tensor(sigma, dtype=torch.float64)
    L = torch.linalg.cholesky(S)
    right = torch.linalg.inv(L)
    if _agree(M, right):
        say("Correct: T(x) = L^{-1} x with L the lower Cholesky factor of Sigma: lower triangular, positive "
            "diagonal, and T(X) ~ N(0, I).")
        return True
    sym = torch.linalg.eigh(S)
    inv_sqrt = sym.eigenvectors @ torch.diag(sym.eigenvalues.rsqrt()) @ sym.eigenvectors.T
    P = torch.tensor([[0, 1], [1, 0]], dtype=torch.float64)
    other = P @ torch.linalg.inv(torch.linalg.cholesky(P @ S @ P)) @ P  # the order x2 -> x1
    mistakes = [
        (L, "that is L itself, the map from N(0, I) to the data (latent to data). The KR map goes from data to "
            "latent: invert it."),
        (L.T, "that is L^T: upper triangular, and it maps N(0, I) the wrong way. Invert L, keep it lower triangular."),
        (torch.linalg.inv(L.T), "that is L^{-T}: it whitens the precision, not Sigma. Use L^{-1}."),
        (inv_sqrt, "that is the symmetric square root Sigma^{-1/2}: it whitens the data too, but z1 then depends on "
                   "x2. The KR map is triangular: z1 depends on x1 alone."),
        (torch.linalg.inv(S), "that is Sigma^{-1}, the precision. T(X) must have identity covariance: "
                              "A Sigma A^T = I."),
        (other, "that is the KR map in the other order (x2 first, upper triangular). Here x1 comes first."),
        (-right, "the signs are flipped: the KR map is increasing in each coordinate, so its diagonal is positive."),
    ]
    for wrong, message in mistakes:
        if _agree(M, wrong):
            say("Not yet: " + message)
            return False
    if abs(float(M[0, 1])) > 5e-4:
        say("Not yet: A[0, 1] should be 0: in the order x1 -> x2 the first latent coordinate depends on x1 only.")
        return False
    cov = M @ S @ M.T
    if not torch.allclose(cov, torch.eye(2, dtype=torch.float64), atol=5e-3):
        say(f"Not yet: A Sigma A^T = {cov.round(decimals=3).tolist()}, but T(X) must be N(0, I): A Sigma A^T = I.")
        return False
    say("Not yet: A whitens Sigma and is lower triangular, but a diagonal entry is negative: the KR map increases "
        "in each coordinate.")
    return False


_ORDER_WORDS = {
    "x2": "x2", "x2 first": "x2", "x2 -> x1": "x2", "(1, 0)": "x2", "1, 0": "x2", "reverse": "x2",
    "x1": "x1", "x1 first": "x1", "x1 -> x2": "x1", "(0, 1)": "x1", "0, 1": "x1",
    "both": "both", "either": "both", "neither": "neither", "none": "neither",
}


def _choice(answer) -> str | None:
    """The ordering an answer names (``"x1"``, ``"x2"``, ``"both"``, ``"neither"``), or ``None``."""
    if isinstance(answer, (tuple, list)):
        answer = str(tuple(answer))
    return _ORDER_WORDS.get(str(answer).strip().lower().replace("\u2192", "->"))


@checker
def check_ordering(answer) -> bool:
    r"""Check the prediction: for :math:`x_2 \sim \mathcal N(0, 1)`,
    :math:`x_1 \mid x_2 \sim \mathcal N(x_2^2, 0.3^2)`, which ordering lets one affine autoregressive
    layer (``fl.MAF(2)``) be exact: ``"x1 first"``, ``"x2 first"``, ``"both"`` or ``"neither"``
    (``(0, 1)`` and ``(1, 0)`` are accepted too)."""
    if answer is None:
        say('Not answered yet: replace None with "x1 first", "x2 first", "both" or "neither".')
        return False
    choice = _choice(answer)
    if choice is None:
        say(f'Not yet: answer with "x1 first", "x2 first", "both" or "neither", got {answer!r}.')
        return False
    if choice == "x2":
        say("Correct: with x2 first, z2 = x2 is already standard normal and x1 | x2 is Gaussian with mean x2^2 and "
            "a fixed scale, so one affine layer is the exact KR map. With x1 first it is not: x2 | x1 is bimodal.")
        return True
    messages = {
        "x1": "given x1, the coordinate x2 is a mixture of two bumps at +-sqrt(x1) (bimodal), so no affine "
              "function of x2 can make it Gaussian.",
        "both": "one ordering fails: the conditional of x2 given x1 has two bumps at +-sqrt(x1), and an affine "
                "map keeps the number of modes.",
        "neither": "one ordering works: look at the conditional of x1 given x2. Its mean depends on x2, its scale "
                   "does not, and it is Gaussian.",
    }
    say("Not yet: " + messages[choice])
    return False


@checker
def check_inverse_cdf(inverse_cdf: Callable[[Tensor], Tensor], n: int = 2000, seed: int | None = None) -> bool:
    r"""Check ``inverse_cdf(u)``: the quantile function of the Rayleigh density
    :math:`p(x) = x e^{-x^2/2}` on :math:`x \ge 0`, written in closed form (tables,
    ``flowlab.numerics`` and ``scipy.stats`` are refused). It is called on levels
    :math:`u \in (0, 1)` (float64) drawn at each call and must agree with :math:`F^{-1}` to 1e-9."""
    g = torch.Generator().manual_seed(fresh_seed() if seed is None else seed)
    u = torch.rand(n, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    watch = Watch(modules=("flowlab.numerics", "scipy.stats", "scipy.special", "scipy.interpolate"))
    ok, out = call(inverse_cdf, u.clone(), name="inverse_cdf", watch=watch)
    if watch.used:
        say(f"Not yet: your function uses {watch.used[0]}. The exercise asks for F^(-1) in closed form: solve "
            "F(x) = u by hand.")
        return False
    if not ok:
        return False
    x = tensor("inverse_cdf(u)", out, u.shape, "one x per level", hint="Is a log taken of a negative number?")
    if x is None:
        return False
    want = torch.sqrt(-2 * torch.log1p(-u))
    if torch.allclose(x, want, rtol=1e-9, atol=1e-9):
        say(f"Correct: F^(-1)(u) = sqrt(-2 log(1 - u)) at {n} levels; with U uniform, F^(-1)(U) has density "
            "x exp(-x^2/2).")
        return True
    mistakes = [
        (torch.sqrt(-2 * torch.log(u)), "that is F^(-1)(1 - u): the samples have the right law (1 - U is uniform "
                                        "too), but the map decreases. The quantile function is increasing: "
                                        "solve F(x) = u with F(x) = 1 - exp(-x^2/2)."),
        (1 - torch.exp(-(u**2) / 2), "that is the CDF F(u), not its inverse. Solve F(x) = u for x."),
        (torch.sqrt(-torch.log1p(-u)), "a factor 2 is missing under the square root: exp(-x^2/2) = 1 - u gives "
                                       "x^2 = -2 log(1 - u)."),
        (-2 * torch.log1p(-u), "that is x^2; take the square root."),
    ]
    for wrong, message in mistakes:
        if torch.allclose(x, wrong, rtol=1e-9, atol=1e-9):
            say("Not yet: " + message)
            return False
    err = float((x - want).abs().max())
    if err < 1e-3 and getattr(out, "dtype", None) in (torch.float32, torch.float16, torch.bfloat16):
        say(f"Not yet: close (off by up to {err:.2g}), but computed in {out.dtype}: keep the float64 of u.")
    elif err < 1e-3:
        say(f"Not yet: close (off by up to {err:.2g}), but not to 1e-9: write F^(-1) in closed form, not from a "
            "table or a root finder.")
    else:
        say(f"Not yet: off by up to {err:.3g}. Check: F(inverse_cdf(u)) should equal u, with "
            "F(x) = 1 - exp(-x^2/2).")
    return False
