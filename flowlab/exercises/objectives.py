r"""Checkers for the exercises of the chapter on the two objectives (forward and reverse KL).

Each checker compares the student's answer with a value computed here independently, prints
what it found and returns ``True`` when the answer is right. It never raises: a missing answer
(``None``) or an answer of the wrong type gets a message that says what to change. When the
answer is wrong, the checker compares it with the typical mistakes (a sign, a swapped
direction, a missing term) and names the one it matches.

Example:
    >>> from flowlab.exercises import objectives as ex
    >>> ex.check_base_term(2, -2.8379)
    Correct: E[log p_Z(Z)] = -(D/2) log(2 pi e) = -2.8379 for D = 2.
    True
    >>> ex.check_base_term(2, 2.8379)
    Not yet: that is the entropy of the base, h(Z) = +2.8379. The term in the reverse KL is E[log p_Z(Z)] = -h(Z): flip the sign.
    False
"""

from __future__ import annotations

import math

import torch

from ._feedback import close as _close
from ._feedback import number as _number

__all__ = [
    "check_base_term",
    "check_gaussian_kls",
    "check_importance_estimate",
    "check_moment_matching",
    "gaussian_kl",
]


def gaussian_kl(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    r"""The closed form of :math:`D_{\mathrm{KL}}(\mathcal N(\mu_p, \sigma_p^2) \,\|\, \mathcal N(\mu_q, \sigma_q^2))`:

    .. math:: \log\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2\sigma_q^2} - \frac12.

    Example:
        >>> round(gaussian_kl(0.0, 1.0, 0.0, 1.0), 6)
        0.0
    """
    return math.log(std_q / std_p) + (std_p**2 + (mean_p - mean_q) ** 2) / (2 * std_q**2) - 0.5


def check_base_term(features: int, answer) -> bool:
    r"""Exercise: the constant :math:`\mathbb E[\log p_Z(Z)]` of the reverse KL for the standard
    normal base in ``features`` dimensions."""
    value = _number("answer", answer)
    if value is None:
        return False
    d = int(features)
    right = -0.5 * d * math.log(2 * math.pi * math.e)
    if _close(value, right, 1e-3):
        print(f"Correct: E[log p_Z(Z)] = -(D/2) log(2 pi e) = {right:.4f} for D = {d}.")
        return True
    if _close(value, -right, 1e-3):
        print(
            f"Not yet: that is the entropy of the base, h(Z) = +{-right:.4f}. The term in the reverse KL is "
            "E[log p_Z(Z)] = -h(Z): flip the sign."
        )
    elif _close(value, -0.5 * d * math.log(2 * math.pi), 1e-3):
        print(
            "Not yet: you kept only the normalizing constant -(D/2) log(2 pi). The other term, "
            "-E[|Z|^2]/2, is not zero: E[|Z|^2] = D for a standard normal."
        )
    elif _close(value, -0.5 * math.log(2 * math.pi * math.e), 1e-3):
        print(f"Not yet: that is the value for one dimension. The D = {d} coordinates are independent: multiply by D.")
    else:
        print(f"Not yet: {value:.4f} is not E[log p_Z(Z)] for D = {d}. Write log p_Z(z) = -|z|^2/2 - (D/2) log(2 pi) and take the expectation.")
    return False


def check_gaussian_kls(forward, reverse) -> bool:
    r"""Exercise: both divergences between :math:`p = \mathcal N(0, 1)` (the target) and
    :math:`q = \mathcal N(1, 0.5^2)` (the model): ``forward`` is :math:`D_{\mathrm{KL}}(p\|q)`,
    ``reverse`` is :math:`D_{\mathrm{KL}}(q\|p)`."""
    f = _number("forward", forward)
    r = _number("reverse", reverse)
    if f is None or r is None:
        return False
    right_f = gaussian_kl(0.0, 1.0, 1.0, 0.5)
    right_r = gaussian_kl(1.0, 0.5, 0.0, 1.0)
    ok_f, ok_r = _close(f, right_f, 1e-3), _close(r, right_r, 1e-3)
    if ok_f and ok_r:
        print(
            f"Correct: D_KL(p||q) = {right_f:.4f} and D_KL(q||p) = {right_r:.4f}. The forward divergence is larger: "
            "the narrow q leaves much of p's mass where q is tiny, and the forward KL punishes exactly that."
        )
        return True
    # a Monte Carlo estimate with 10^5 samples has a standard error of about 0.016 (forward) and 0.003
    # (reverse): accept four standard errors of it
    if abs(f - right_f) <= 0.065 and abs(r - right_r) <= 0.015:
        print(
            f"Correct, up to Monte Carlo error: the closed forms are D_KL(p||q) = {right_f:.4f} and "
            f"D_KL(q||p) = {right_r:.4f} (yours differ by {f - right_f:+.4f} and {r - right_r:+.4f}). "
            "The forward divergence is larger: the narrow q leaves much of p's mass where q is tiny."
        )
        return True
    if _close(f, right_r, 1e-3) and _close(r, right_f, 1e-3):
        print("Not yet: the two values are swapped. The forward KL averages log(p/q) over samples of the target p.")
        return False
    if f < 0 or r < 0:
        print("Not yet: a KL divergence is never negative; check the signs of your terms.")
        return False
    print(
        f"Not yet: forward {'right' if ok_f else 'wrong'}, reverse {'right' if ok_r else 'wrong'}. Use "
        "D_KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2."
    )
    return False


def check_moment_matching(mean, variance, separation: float = 6.0, std: float = 0.5) -> bool:
    r"""Exercise: the mean and the variance of the first coordinate of the Gaussian that
    minimizes the forward KL to :func:`flowlab.targets.two_modes_log_prob` (equal weights)."""
    m = _number("mean", mean)
    v = _number("variance", variance)
    if m is None or v is None:
        return False
    a = separation / 2
    right_v = std**2 + a**2
    ok_m, ok_v = abs(m) <= 1e-3, _close(v, right_v, 1e-3)
    if ok_m and ok_v:
        print(f"Correct: mean 0 and variance sigma^2 + a^2 = {right_v:g}: the Gaussian spans both bumps.")
        return True
    if _close(abs(m), a, 1e-3):
        print(f"Not yet: a mean of {m:g} sits on one bump, which is where the reverse KL goes. The forward KL matches the mean of the whole mixture.")
    elif not ok_m:
        print("Not yet: the mixture is symmetric about the origin, so what is its mean?")
    if not ok_v:
        if _close(v, std**2, 1e-3):
            print("Not yet: that is the variance of one bump. The mixture's variance adds the spread of the centres, E[mu^2].")
        elif _close(v, a**2, 1e-3):
            print("Not yet: you have the spread of the centres but forgot the variance of each bump, sigma^2.")
        elif _close(v, separation**2 + std**2, 1e-3) or _close(v, separation**2, 1e-3):
            print("Not yet: the centres are at -a and +a with a = separation / 2, not at 0 and separation.")
        else:
            print("Not yet: the variance is wrong. Use Var = E[Var(X1 | bump)] + Var(E[X1 | bump]).")
    return False


def check_importance_estimate(flow, log_w, log_c, ess, n: int = 1000, seed: int = 5) -> bool:
    r"""Exercise: draw ``n`` samples :math:`x_i \sim q` of ``flow`` with
    ``flow.rsample_and_log_prob(n, generator=torch.Generator().manual_seed(seed))``, form the
    log-weights :math:`\log w_i = \log(C p(x_i)) - \log q(x_i)` for
    :func:`flowlab.targets.two_modes_log_prob`, and compute the estimate :math:`\log \hat C`
    and the effective sample size :math:`(\sum w)^2 / \sum w^2` (a number of samples between
    1 and ``n``). The checker draws the same samples itself and computes every value anew, so
    it compares the student's log-weights with the right ones."""
    from ..targets import two_modes_log_prob

    if log_w is None:
        print("Not answered yet: compute log_w, the log-weights of the samples.")
        return False
    lc = _number("log_c", log_c)
    e = _number("ess", ess)
    if lc is None or e is None:
        return False
    with torch.no_grad():
        x, log_q = flow.rsample_and_log_prob(n, generator=torch.Generator().manual_seed(seed))
        right_w = (two_modes_log_prob(x) - log_q).double()
    try:
        got_w = torch.as_tensor(log_w.detach() if isinstance(log_w, torch.Tensor) else log_w, dtype=torch.float64).flatten()
    except Exception:  # noqa: BLE001
        print(f"Not yet: log_w should be a tensor of {n} log-weights, got {type(log_w).__name__}.")
        return False
    if got_w.shape != right_w.shape:
        print(f"Not yet: log_w has {got_w.numel()} entries; draw n = {n} samples.")
        return False
    if not torch.allclose(got_w, right_w, atol=1e-4, rtol=1e-4):
        if torch.allclose(got_w, -right_w, atol=1e-4, rtol=1e-4):
            print("Not yet: the log-weights have the wrong sign. w = C p(x) / q(x): log_w = log(C p(x)) - log q(x).")
        elif torch.allclose(got_w, two_modes_log_prob(x).double(), atol=1e-4, rtol=1e-4):
            print("Not yet: log_w is log(C p(x)) alone; subtract the flow's log-density log q(x).")
        else:
            print(f"Not yet: log_w differs from log(C p(x)) - log q(x) for the samples drawn with "
                  f"generator=torch.Generator().manual_seed({seed}). Draw them exactly that way.")
        return False
    log_w = right_w
    right_lc = float(torch.logsumexp(log_w, 0) - math.log(n))
    right_e = float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)))
    ok_lc, ok_e = _close(lc, right_lc, 1e-4), _close(e, right_e, 1e-3)
    if ok_lc and ok_e:
        print(f"Correct: log C_hat = {right_lc:.4f} and ESS = {right_e:.1f} of n = {n} samples.")
        return True
    if not ok_lc:
        if _close(lc, float(log_w.mean()), 1e-4):
            print(
                "Not yet: log_c is the mean of the log-weights. That is the ELBO, a lower bound on log C "
                "(Jensen); the estimate is the log of the mean of the weights: logsumexp(log_w) - log n."
            )
        elif _close(lc, float(torch.logsumexp(log_w, 0)), 1e-4):
            print("Not yet: log_c is log of the sum of the weights; divide by n (subtract log n).")
        else:
            print("Not yet: log_c is wrong. Average the weights w = exp(log_w), then take the log (use torch.logsumexp).")
    if not ok_e:
        if _close(e, right_e / n, 1e-3):
            print("Not yet: ess is the fraction ESS / n; the exercise asks for the number of samples (multiply by n).")
        else:
            print("Not yet: ess is wrong. ESS = (sum of w)^2 / (sum of w^2), between 1 and n.")
    return False
