r"""Checkers for the exercises of the TarFlow chapter: Jacobi sweeps and bits per dimension.

Each checker compares the student's answer with one it computes itself after the student's
code has run, on inputs it draws at each call, says what it found and returns a true verdict
when the answer is right; it never raises. A wrong answer is compared with the typical mistakes
(a sweep that only confirms the fixed point counted, the constants of part 0 counted as a sweep,
the conditioner fed ``z``; the bin-width correction forgotten or with the wrong sign, the width
of a level taken as :math:`1/L` instead of :math:`2/L`, nats instead of bits) and the message
names the one it matches.

:func:`layer` builds layers like those that :func:`check_sweeps` draws, so an exercise cell can
try its function on them.

Example:
    >>> import math
    >>> from flowlab.exercises import tarflow as ex
    >>> def bits(log_p_v, dims, levels):
    ...     return (-log_p_v + dims * math.log(levels / 2)) / (dims * math.log(2))
    >>> ex.check_bits(bits, seed=0)
    Correct: -log p_V(v) + D log(L/2), divided by D log 2, on 3 image sizes and
    levels.
    True
    >>> ex.check_bits(lambda lp, d, l: -lp / (d * math.log(2)), seed=0)
    Not yet: the bin-width correction is missing. v = 2y/L - 1 squeezes one level
    of width 1 into 2/L, so p_Y(y) = p_V(v) (2/L)^D: add D log(L/2) to -log p_V.
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import Watch, call, checker, close, fresh_seed, say, tensor, whole

__all__ = ["check_bits", "check_sweeps", "layer"]


def layer(features: int = 12, parts: int = 6, strength: float = 0.3, seed: int = 0):
    """An autoregressive layer in float64 with a :class:`~flowlab.TransformerConditioner` of
    ``parts`` tokens and an affine transformer, its weights moved from the identity by
    ``strength`` (weak couplings converge in few sweeps, strong ones need up to ``parts - 1``).
    The global random state is left untouched.

    Example:
        >>> layer().passes
        5
    """
    import flowlab as fl

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = fl.Autoregressive(fl.TransformerConditioner(features, parts=parts, hidden=16, heads=2), fl.Affine())
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in t.parameters():
                p.add_(strength * torch.randn(p.shape, generator=g))
    return t.double().requires_grad_(False)


# --------------------------------------------------------------------------------------------
# exercise 1: count the sweeps of a Jacobi inversion
# --------------------------------------------------------------------------------------------


@checker
@torch.no_grad()
def check_sweeps(jacobi_sweeps: Callable, seed: int | None = None) -> bool:
    r"""Check ``jacobi_sweeps(layer, z, tol) -> (x, sweeps)``: Jacobi sweeps from the constants
    of part 0 (``layer.conditioner.initial``), each one ``x = layer.transformer.inverse(z,
    layer.conditioner(x))[0]``, stopped after the first sweep that moves no coordinate by more
    than ``tol``, and never more than ``layer.passes`` (:math:`K - 1`) sweeps; ``sweeps`` counts
    the network passes made.

    It is tried on four layers drawn at each call (weakly coupled ones, where the tolerance
    stops the sweeps early, to strongly coupled ones that need all :math:`K - 1`; different
    :math:`K`) and tolerances from :math:`10^{-2}` to 0. ``x`` must be the sequential inverse
    to within ``tol`` times the layer's amplification, and ``sweeps`` the exact count. The
    library's inverses (``Autoregressive.inverse``, ``Autoregressive.jacobi``,
    ``flowlab.numerics.jacobi``) are refused however they are reached.
    """
    import flowlab as fl
    from flowlab.numerics import jacobi as library_jacobi

    seed = fresh_seed() % 2**31 if seed is None else seed
    g = torch.Generator().manual_seed(seed)
    cases = [(12, 6, 0.003, 1e-2), (16, 8, 0.01, 1e-4), (12, 4, 0.3, 1e-6), (16, 8, 0.6, 0.0)]
    for i, (features, parts, strength, tol) in enumerate(cases):
        t = layer(features, parts, strength, seed=seed + 10 * i)
        z = torch.randn(40, features, generator=g, dtype=torch.float64)
        forward = type(t.conditioner).forward
        watch = Watch(code=[fl.Autoregressive.inverse, fl.Autoregressive.jacobi, library_jacobi], count=[forward])
        ok, out = call(jacobi_sweeps, t, z.clone(), tol, name="jacobi_sweeps", watch=watch)
        if watch.used:
            say(f"Not yet: your function runs {watch.used[0]}, the library's inverse. Write the sweeps yourself "
                "with layer.conditioner and layer.transformer.inverse.")
            return False
        if not ok:
            return False
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            say("Not yet: jacobi_sweeps should return a pair (x, sweeps).")
            return False
        x = tensor("x", out[0], tuple(z.shape))
        sweeps = whole("sweeps", out[1])
        if x is None or sweeps is None:
            return False
        label = f"the layer with K = {parts}, tol = {tol:g}"

        def sweep(feed_z: bool = False, cap: bool = True) -> tuple[Tensor, int]:
            """Sweeps from part 0's constants until one moves nothing by more than tol (at most
            t.passes of them with cap), run now that the student's code has returned."""
            y, count = t.transformer.inverse(z, t.conditioner.initial(z))[0], 0
            while count < t.passes + (0 if cap else 1):
                new = t.transformer.inverse(z, t.conditioner(z if feed_z else y))[0]
                count += 1
                change = float((new - y).abs().max())
                y = new
                if change <= tol:
                    break
            return y, count

        right_x, right = sweep()
        exact = t.inverse(z)[0]
        passes = watch.count(forward)
        if sweeps != passes and passes:
            say(f"Not yet: on {label} you report {sweeps} sweep(s) but the conditioner ran {passes} time(s): count "
                "each network pass once.")
            return False
        if not close(x, right_x, 1e-9) and close(x, sweep(feed_z=True)[0], 1e-9):
            say("Not yet: the conditioner was fed z. Its parameters depend on the data x, which the sweeps are "
                "computing: feed it the current x.")
            return False
        if sweeps != right:
            if sweeps == right + 1 and sweep(cap=False)[1] == sweeps:
                say(f"Not yet: on {label} you made {sweeps} sweeps, one more than K - 1 = {t.passes}: after K - 1 "
                    "sweeps the iterate is exact, there is nothing left to confirm.")
            elif sweeps == right + 1:
                say(f"Not yet: on {label} you count {sweeps} sweeps where {right} network passes were made: the "
                    "constants of part 0 (conditioner.initial) are no network pass.")
            else:
                say(f"Not yet: on {label} you count {sweeps} sweep(s); stopping after the first sweep whose largest "
                    f"change is at most tol takes {right}.")
            return False
        if not close(x, right_x, 1e-9):
            say(f"Not yet: on {label} the sweep count is right but x differs from the iterate after {right} "
                f"sweep(s) by up to {float((x - right_x).abs().max()):.3g}.")
            return False
        if tol == 0.0 and not torch.equal(x, exact) and not close(x, exact, 1e-12):
            say(f"Not yet: with tol = 0 the sweeps must reach the sequential inverse; they are "
                f"{float((x - exact).abs().max()):.3g} away.")
            return False
    say("Correct: each sweep is one network pass, the first K - 1 make the parts exact one by one, and a "
        "tolerance stops them early where the later parts react weakly to the earlier ones.")
    return True


# --------------------------------------------------------------------------------------------
# exercise 2: bits per dimension with the bin-width correction
# --------------------------------------------------------------------------------------------


@checker
def check_bits(to_bits: Callable, seed: int | None = None) -> bool:
    r"""Check ``to_bits(log_p_v, dims, levels)``: test bits per dimension of dequantised images
    :math:`y \in [0, L)^D` from the log-density :math:`\log p_V(v)` of the rescaled
    :math:`v = 2y/L - 1` (one value per image, a tensor), that is

    .. math:: \frac{-\log p_V(v) + D \log(L/2)}{D \log 2},

    one value per image. It is tried on image sizes and numbers of levels drawn at each call
    (17-level digits, 8-bit images).
    """
    seed = fresh_seed() % 2**31 if seed is None else seed
    g = torch.Generator().manual_seed(seed)
    cases = [(64, 17), (3 * 32 * 32, 256), (int(torch.randint(4, 100, (1,), generator=g)), 2)]
    for dims, levels in cases:
        log_p_v = dims * (0.3 + 0.4 * torch.rand(30, generator=g, dtype=torch.float64))
        ok, out = call(to_bits, log_p_v.clone(), dims, levels, name="to_bits")
        if not ok:
            return False
        got = tensor("to_bits(log_p_v, dims, levels)", out, (30,), "one value per image")
        if got is None:
            return False
        nll = -log_p_v
        per = dims * math.log(2)
        right = (nll + dims * math.log(levels / 2)) / per
        mistakes = [
            (nll / per, "the bin-width correction is missing. v = 2y/L - 1 squeezes one level of width 1 into 2/L, so "
                        "p_Y(y) = p_V(v) (2/L)^D: add D log(L/2) to -log p_V."),
            ((nll - dims * math.log(levels / 2)) / per, "the correction has the wrong sign: the density of y is "
                                                        "smaller than that of v, by the factor (2/L)^D."),
            ((nll + dims * math.log(levels)) / per, "the width of a level in v is 2/L, not 1/L: v spans [-1, 1), "
                                                    "of width 2."),
            (nll + dims * math.log(levels / 2), "divide by D log 2: bits per dimension, not nats per image."),
            ((nll + dims * math.log(levels / 2)) / dims, "that is nats per dimension: divide by log 2 for bits."),
            ((nll + dims * math.log(levels / 2)) / math.log(2), "that is bits per image: divide by D."),
        ]
        if close(got, right, 1e-9):
            continue
        for wrong, message in mistakes:
            if close(got, wrong, 1e-9):
                say(f"Not yet: {message}")
                return False
        say(f"Not yet: for D = {dims}, L = {levels} your values differ from the right ones by up to "
            f"{float((got - right).abs().max()):.3g} bits/dim.")
        return False
    say(f"Correct: -log p_V(v) + D log(L/2), divided by D log 2, on {len(cases)} image sizes and levels.")
    return True
