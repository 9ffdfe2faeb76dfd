r"""Checkers for the exercises of the chapter on the two objectives (forward and reverse KL).

Each checker compares the student's answer with a value it computes itself, says what it
found and returns a true verdict when the answer is right; it never raises. Numbers are
accepted to three significant digits (or more). A Monte Carlo estimate is judged against its
own standard error when the student says how many samples it used. A wrong answer is compared
with the typical mistakes (a sign, a swapped direction, a missing term) and the message names
the one it matches.

Example:
    >>> from flowlab.exercises import objectives as ex
    >>> ex.check_base_term(2, -2.8379)
    Correct: E[log p_Z(Z)] = -(D/2) log(2 pi e) = -2.8379 for D = 2.
    True
    >>> ex.check_base_term(2, 2.8379)
    Not yet: that is the entropy of the base, h(Z) = +2.8379. The term in the
    reverse KL is E[log p_Z(Z)] = -h(Z): flip the sign.
    False
"""

from __future__ import annotations

import math

import torch

from ._feedback import agrees, checker, close, number, say, tensor, whole

__all__ = ["check_base_term", "check_gaussian_kls", "check_importance_estimate", "check_moment_matching"]


@checker
def check_base_term(features, answer) -> bool:
    r"""Exercise: the constant :math:`\mathbb E[\log p_Z(Z)]` of the reverse KL for the standard
    normal base in ``features`` dimensions."""
    value = number("answer", answer)
    d = whole("features", features)
    if value is None or d is None:
        return False
    right = -0.5 * d * math.log(2 * math.pi * math.e)
    if agrees(value, right):
        say(f"Correct: E[log p_Z(Z)] = -(D/2) log(2 pi e) = {right:.4f} for D = {d}.")
        return True
    if agrees(value, -right):
        say(f"Not yet: that is the entropy of the base, h(Z) = +{-right:.4f}. The term in the reverse KL is "
            "E[log p_Z(Z)] = -h(Z): flip the sign.")
    elif agrees(value, -0.5 * d * math.log(2 * math.pi)):
        say("Not yet: you kept only the normalizing constant -(D/2) log(2 pi). The other term, -E[|Z|^2]/2, is "
            "not zero: E[|Z|^2] = D for a standard normal.")
    elif agrees(value, -0.5 * math.log(2 * math.pi * math.e)):
        say(f"Not yet: that is the value for one dimension. The D = {d} coordinates are independent: multiply "
            "by D.")
    else:
        say(f"Not yet: {value:.4f} is not E[log p_Z(Z)] for D = {d}. Write log p_Z(z) = -|z|^2/2 - (D/2) log(2 pi) "
            "and take the expectation.")
    return False


def _kl_sd(p, q) -> float:
    """The standard deviation of log p(X) - log q(X) for X ~ p (what a Monte Carlo estimate of
    D_KL(p || q) averages), by a large sample of the checker's own."""
    x = p[0] + p[1] * torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lr = (-0.5 * ((x - p[0]) / p[1]) ** 2 - math.log(p[1])) - (-0.5 * ((x - q[0]) / q[1]) ** 2 - math.log(q[1]))
    return float(lr.std())


@checker
def check_gaussian_kls(forward, reverse, n=None, p=(0.0, 1.0), q=(1.0, 0.5)) -> bool:
    r"""Exercise: both divergences between the target :math:`p = \mathcal N(0, 1)` and the model
    :math:`q = \mathcal N(1, 0.5^2)` (``p`` and ``q`` are (mean, standard deviation)):
    ``forward`` is :math:`D_{\mathrm{KL}}(p\|q)`, ``reverse`` is :math:`D_{\mathrm{KL}}(q\|p)`.

    Closed forms are accepted to three significant digits. Monte Carlo estimates are accepted
    within three of their standard errors when ``n``, the number of samples each used, is given."""
    f, r = number("forward", forward), number("reverse", reverse)
    if f is None or r is None:
        return False
    if n is not None:
        n = whole("n", n)
        if n is None or n < 1:
            say("Not yet: n should be the number of samples of your Monte Carlo estimates, a positive whole number.")
            return False

    def kl(mean_p, std_p, mean_q, std_q):  # the closed form, D_KL(N(mean_p, std_p^2) || N(mean_q, std_q^2))
        return math.log(std_q / std_p) + (std_p**2 + (mean_p - mean_q) ** 2) / (2 * std_q**2) - 0.5

    right_f, right_r = kl(*p, *q), kl(*q, *p)
    if n is None:
        ok_f, ok_r = agrees(f, right_f), agrees(r, right_r)
    else:
        se_f, se_r = _kl_sd(p, q) / math.sqrt(n), _kl_sd(q, p) / math.sqrt(n)
        ok_f, ok_r = abs(f - right_f) <= 3 * se_f, abs(r - right_r) <= 3 * se_r
    if ok_f and ok_r:
        say(f"Correct: D_KL(p||q) = {right_f:.4f} and D_KL(q||p) = {right_r:.4f}"
            + ("" if n is None else f" (yours differ by {f - right_f:+.4f} and {r - right_r:+.4f}, within three "
               f"standard errors of {n} samples)") + ".")
        return True
    if agrees(f, right_r) and agrees(r, right_f):
        say("Not yet: the two values are swapped. The forward KL averages log(p/q) over samples of the target p.")
    elif f < 0 or r < 0:
        say("Not yet: a KL divergence is never negative; check the signs of your terms.")
    elif n is None and abs(f - right_f) < 0.1 * max(1.0, right_f) and abs(r - right_r) < 0.1 * max(1.0, right_r):
        say(f"Not yet: close, but not to three significant digits (off by {f - right_f:+.4f} and "
            f"{r - right_r:+.4f}). For a Monte Carlo estimate, pass its number of samples, n=..., to have it "
            "judged against its standard error; or use the closed form.")
    else:
        say(f"Not yet: forward {'right' if ok_f else 'wrong'}, reverse {'right' if ok_r else 'wrong'}"
            + ("" if n is None else f" for estimates from n = {n} samples") + ". Use D_KL(N(m1, s1^2) || "
            "N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2.")
    return False


@checker
def check_moment_matching(mean, variance, separation: float = 6.0, std: float = 0.5) -> bool:
    r"""Exercise: the mean and the variance of the first coordinate of the Gaussian that
    minimizes the forward KL to :func:`flowlab.targets.two_modes_log_prob` (equal weights),
    with bumps at :math:`(\pm \text{separation}/2, 0)` of standard deviation ``std``."""
    m, v = number("mean", mean), number("variance", variance)
    if m is None or v is None:
        return False
    a = separation / 2
    right_v = std**2 + a**2
    ok_m, ok_v = abs(m) <= 1e-3 * (1 + a), agrees(v, right_v)
    if ok_m and ok_v:
        say(f"Correct: mean 0 and variance sigma^2 + a^2 = {right_v:g}: the Gaussian spans both bumps.")
        return True
    if agrees(abs(m), a):
        say(f"Not yet: a mean of {m:g} sits on one bump, which is where the reverse KL goes. The forward KL "
            "matches the mean of the whole mixture.")
    elif not ok_m:
        say("Not yet: the mixture is symmetric about the origin, so what is its mean?")
    if not ok_v:
        if agrees(v, std**2):
            say("Not yet: that is the variance of one bump. The mixture's variance adds the spread of the centres, "
                "E[mu^2].")
        elif agrees(v, a**2):
            say("Not yet: you have the spread of the centres but forgot the variance of each bump, sigma^2.")
        elif agrees(v, separation**2 + std**2) or agrees(v, separation**2):
            say("Not yet: the centres are at -a and +a with a = separation / 2, not at 0 and separation.")
        else:
            say("Not yet: the variance is wrong. Use Var = E[Var(X1 | bump)] + Var(E[X1 | bump]).")
    return False


@checker
def check_importance_estimate(flow, log_w, log_c, ess, n: int = 1000, seed: int = 5) -> bool:
    r"""Exercise: draw ``n`` samples :math:`x_i \sim q` of ``flow`` with
    ``flow.rsample_and_log_prob(n, generator=torch.Generator().manual_seed(seed))``, form the
    log-weights :math:`\log w_i = \log(C p(x_i)) - \log q(x_i)` for
    :func:`flowlab.targets.two_modes_log_prob`, and compute the estimate :math:`\log \hat C`
    and the effective sample size :math:`(\sum w)^2 / \sum w^2` (a number of samples between
    1 and ``n``). The checker draws the same samples itself and computes every value anew."""
    import flowlab as fl

    if not callable(getattr(flow, "rsample_and_log_prob", None)):
        say("Not yet: pass the trained flow (a flowlab Flow, such as maf_two) as the first argument, got "
            f"{type(flow).__name__}.")
        return False
    if log_w is None:
        say("Not answered yet: compute log_w, the log-weights of the samples.")
        return False
    got_w = tensor("log_w", log_w, (n,), f"one log-weight per sample, n = {n}")
    lc, e = number("log_c", log_c), number("ess", ess)
    if got_w is None or lc is None or e is None:
        return False
    with torch.no_grad():
        x, log_q = flow.rsample_and_log_prob(n, generator=torch.Generator().manual_seed(seed))
        right_w = (fl.targets.two_modes_log_prob(x) - log_q).double()
    if not close(got_w, right_w, 1e-4):
        if close(got_w, -right_w, 1e-4):
            say("Not yet: the log-weights have the wrong sign. w = C p(x) / q(x): log_w = log(C p(x)) - log q(x).")
        elif close(got_w, fl.targets.two_modes_log_prob(x).double(), 1e-4):
            say("Not yet: log_w is log(C p(x)) alone; subtract the flow's log-density log q(x).")
        else:
            say("Not yet: log_w differs from log(C p(x)) - log q(x) for the samples drawn with "
                f"generator=torch.Generator().manual_seed({seed}). Draw them exactly that way.")
        return False
    right_lc = float(torch.logsumexp(right_w, 0) - math.log(n))
    right_e = float(torch.exp(2 * torch.logsumexp(right_w, 0) - torch.logsumexp(2 * right_w, 0)))
    ok_lc = agrees(lc, right_lc) or close(lc, right_lc, 1e-4)
    ok_e = agrees(e, right_e) or close(e, right_e, 1e-4)
    if ok_lc and ok_e:
        say(f"Correct: log C_hat = {right_lc:.4f} and ESS = {right_e:.1f} of n = {n} samples.")
        return True
    if not ok_lc:
        if agrees(lc, float(right_w.mean())):
            say("Not yet: log_c is the mean of the log-weights. That is the ELBO, a lower bound on log C (Jensen); "
                "the estimate is the log of the mean of the weights: logsumexp(log_w) - log n.")
        elif agrees(lc, float(torch.logsumexp(right_w, 0))):
            say("Not yet: log_c is the log of the sum of the weights; divide by n (subtract log n).")
        else:
            say("Not yet: log_c is wrong. Average the weights w = exp(log_w), then take the log (use "
                "torch.logsumexp).")
    if not ok_e:
        if agrees(e, right_e / n):
            say("Not yet: ess is the fraction ESS / n; the exercise asks for the number of samples (multiply by n).")
        else:
            say("Not yet: ess is wrong. ESS = (sum of w)^2 / (sum of w^2), between 1 and n.")
    return False
