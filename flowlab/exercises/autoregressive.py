r"""Checkers for the exercises of the chapter on autoregressive flows.

Each checker compares the student's answer with one it computes itself after the student's
code has run, says what it found and returns a true verdict when the answer is right; it never
raises. A wrong answer is compared with the typical mistakes (too few passes, the conditioner
fed with ``z`` instead of ``x``, a pass spent on part 0's constants, a mask that lets a part see
itself, the passes of the two directions swapped...) and the message names the one it matches.

:func:`layer` builds autoregressive layers like those that :func:`check_invert` draws at each
call, so an exercise cell can try its function on them.

Example:
    >>> from flowlab.exercises import autoregressive as ex
    >>> ex.check_passes(density=4, sampling=16, iaf_density=16, iaf_sampling=4)
    Correct: a MAF evaluates densities in 1 pass per layer (4) and samples in K - 1
    per layer (16); the IAF is the other way round.
    True
    >>> ex.check_passes(density=4, sampling=20, iaf_density=16, iaf_sampling=4)
    Not yet: sampling = 20 counts K = 5 passes per layer, but part 0's parameters
    are constants: they need no pass, so K - 1 per layer.
    False
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ._feedback import Watch, call, checker, close, fresh_seed, say, tensor, whole

__all__ = ["check_invert", "check_mask", "check_passes", "layer"]


def layer(kind: str = "masked", features: int = 6, parts: int = 3, seed: int = 0):
    """An autoregressive layer in float64 with a spline transformer and random parameters
    (not the near-identity start): ``kind="masked"`` with ``parts`` parts, or ``kind="rnn"``.
    The global random state is left untouched.

    Example:
        >>> layer().passes, layer("rnn").passes
        (2, 5)
    """
    import flowlab as fl

    if kind not in ("masked", "rnn"):
        raise ValueError(f"kind must be 'masked' or 'rnn', got {kind!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "masked":
            cond = fl.MaskedConditioner(features, parts=parts, hidden=(32, 32))
        else:
            cond = fl.RNNConditioner(features, hidden=16)
        t = fl.Autoregressive(cond, fl.RQSpline(bins=6, bound=4.0))
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in t.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return t.double().requires_grad_(False)


# --------------------------------------------------------------------------------------------
# exercise 1: invert a layer pass by pass
# --------------------------------------------------------------------------------------------


def _diagnose_invert(t, z: Tensor, x: Tensor, label: str) -> None:
    """Which typical inversion ``x`` is (computed after the student's call)."""

    def sweeps(passes: int, feed_z: bool = False, start: str = "initial") -> Tensor:
        y = t.transformer.inverse(z, t.conditioner.initial(z))[0] if start == "initial" else z.new_zeros(z.shape)
        for _ in range(passes):
            y = t.transformer.inverse(z, t.conditioner(z if feed_z else y))[0]
        return y

    if close(x, z, 1e-7):
        say("Not yet: you returned z unchanged. Each pass computes the parameters from the current x and inverts "
            "the transformer with them.")
    elif close(x, t(z)[0], 1e-7):
        say("Not yet: you applied the layer's forward map (data to latent). Going back needs "
            "layer.transformer.inverse(z, c).")
    elif close(x, sweeps(1, feed_z=True), 1e-7):
        say("Not yet: the conditioner was fed z. Its parameters c_i depend on the data coordinates x_<i, which are "
            "not known yet: feed it the current x.")
    elif (p := next((p for p in range(0, t.passes) if close(x, sweeps(p), 1e-7)), None)) is not None:
        say(f"Not yet: on {label} your result equals the constants and {p} pass(es): only the first {p + 1} part(s) "
            "are exact. Loop layer.passes times, recomputing the parameters from the current x.")
    elif (p := next((p for p in range(1, t.passes + 1) if close(x, sweeps(p, start="zeros"), 1e-7)), None)):
        say(f"Not yet: on {label} your result equals {p} pass(es) from x = 0: only the first {p} part(s) are exact. "
            "Take part 0's parameters from layer.conditioner.initial(z) (no network pass), then make layer.passes "
            "passes.")
    else:
        say(f"Not yet: on {label} the result is off: layer(x)[0] does not give z back (up to "
            f"{float((t(x)[0] - z).abs().max()):.3g}).")


@checker
@torch.no_grad()
def check_invert(invert: Callable, n: int = 100, seed: int | None = None) -> bool:
    r"""Check ``invert(layer, z) -> x``: the inverse of an autoregressive layer (latent to data)
    written with ``layer.conditioner`` (and its ``initial``), ``layer.transformer.inverse`` and
    ``layer.passes``, in exactly ``layer.passes`` network passes of the conditioner.

    It is tried on a masked layer with :math:`D = 6`, :math:`K = 3` (2 network passes after the
    constants of part 0) and on a recurrent one (:math:`D - 1 = 5` passes), drawn at each call;
    ``x`` must satisfy ``layer(x)[0] == z``. The layer's own ``inverse`` (the shortcut the
    exercise forbids) is refused however it is reached.
    """
    import flowlab as fl

    seed = fresh_seed() % 2**31 if seed is None else seed
    for kind in ("masked", "rnn"):
        t = layer(kind, seed=seed)
        z = torch.randn(n, t.features, generator=torch.Generator().manual_seed(seed + 3), dtype=torch.float64)
        forward = type(t.conditioner).forward
        watch = Watch(code=[fl.Autoregressive.inverse, type(t).inverse], count=[forward])
        ok, out = call(invert, t, z.clone(), name="invert", watch=watch)
        if watch.used:
            say("Not yet: your function runs the layer's own inverse, which the exercise asks you to write. Make "
                "the passes yourself with layer.conditioner.initial, layer.conditioner and "
                "layer.transformer.inverse.")
            return False
        if not ok:
            return False
        if isinstance(out, (tuple, list)):
            say("Not yet: return only the points x (a tensor of shape (n, D)), not a tuple.")
            return False
        x = tensor("invert(layer, z)", out, z.shape, "one point x per row of z")
        if x is None:
            return False
        label = f"the {kind if kind == 'masked' else 'recurrent'} layer with {t.passes} passes"
        if not close(t(x)[0], z, 1e-7):
            _diagnose_invert(t, z, x, label)
            return False
        passes = watch.count(forward)
        if passes != t.passes:
            say(f"Not yet: on {label} the result is right, but it took {passes} network passes of the conditioner. "
                "Part 0's parameters are constants: take them from layer.conditioner.initial(z), which needs no "
                f"pass, then make exactly layer.passes = {t.passes} passes.")
            return False
        seed += 7
    say("Correct: layer(x)[0] == z for a masked layer (K = 3: the constants, then 2 passes) and a recurrent one "
        f"(D = 6: the constants, then 5 passes), at {n} points each, with no pass to spare.")
    return True


# --------------------------------------------------------------------------------------------
# exercise 2: which parameters may depend on which inputs
# --------------------------------------------------------------------------------------------


@checker
def check_mask(mask: Callable[[int, int], Tensor], seed: int | None = None) -> bool:
    r"""Check ``mask(features, parts)``: a boolean ``(features, features)`` matrix :math:`M` with
    :math:`M_{ij}` true when the transformer parameters :math:`c_i` of a masked conditioner
    may depend on the input :math:`x_j` (contiguous, nearly equal parts, as
    :func:`flowlab.nn.partition` makes them). Tried on a few fixed and three random sizes.
    """
    rng = np.random.default_rng(fresh_seed() if seed is None else seed)
    cases = [(6, 3), (6, 2), (6, 6), (5, 2), (7, 3)]
    for _ in range(3):
        d = int(rng.integers(2, 10))
        cases.append((d, int(rng.integers(1, d + 1))))
    for d, K in cases:
        ok, out = call(mask, d, K, name="mask")
        if not ok:
            return False
        got = tensor(f"mask({d}, {K})", out, (d, d))
        if got is None:
            return False
        if not ((got == 0) | (got == 1)).all():
            say(f"Not yet: mask({d}, {K}) should hold True/False (or 1/0) entries.")
            return False
        got = got != 0
        k = torch.arange(d) * K // d  # the parts, computed after the call
        truth = k[:, None] > k[None, :]
        if torch.equal(got, truth):
            continue
        if torch.equal(got, truth.T):
            say("Not yet: the matrix is transposed. Row i is the output c_i, column j the input x_j: "
                "M[i, j] = part(j) < part(i).")
        elif torch.equal(got, k[:, None] >= k[None, :]):
            say(f"Not yet: in mask({d}, {K}) a part sees itself (part(j) <= part(i)). Then c_i would depend on "
                "coordinates that are only known after the same pass: use a strict <.")
        elif torch.equal(got, torch.ones(d, d, dtype=torch.bool).tril(-1)):
            say(f"Not yet: mask({d}, {K}) is the fully autoregressive pattern (j < i). With K = {K} parts, "
                "coordinates of the same part do not see each other: compare the parts, not the indices.")
        elif torch.equal(got, ~truth):
            say("Not yet: the mask is inverted: True must mark the allowed dependencies.")
        else:
            wrong = (got != truth).nonzero()[:3].tolist()
            say(f"Not yet: mask({d}, {K}) differs from the right pattern at entries {wrong} (row, column). The "
                f"parts of the features are {k.tolist()}.")
        return False
    say(f"Correct: M[i, j] = part(j) < part(i), a strictly block-lower-triangular pattern, for all {len(cases)} "
        "sizes tried.")
    return True


# --------------------------------------------------------------------------------------------
# exercise 3: count the passes
# --------------------------------------------------------------------------------------------


@checker
def check_passes(density, sampling, iaf_density, iaf_sampling, layers: int = 4, features: int = 10,
                 parts: int = 5) -> bool:
    r"""Check the number of conditioner (network) passes of a flow of ``layers`` masked
    autoregressive layers with ``features`` = D and ``parts`` = K (a MAF), to evaluate the
    density of a batch and to draw a batch of samples; then the same for its inverse, an IAF.
    Part 0's parameters are constants, so the iterative direction takes K - 1 passes per layer.
    """
    names = ("density", "sampling", "iaf_density", "iaf_sampling")
    values = [whole(n, v) for n, v in zip(names, (density, sampling, iaf_density, iaf_sampling))]
    if any(v is None for v in values):
        return False
    L, D, K = layers, features, parts
    slow = L * (K - 1)
    truth = dict(density=L, sampling=slow, iaf_density=slow, iaf_sampling=L)
    right = True
    for name, got in zip(names, values):
        want = truth[name]
        if got == want:
            continue
        right = False
        if got in (L * D, L * (D - 1)):
            say(f"Not yet: {name} = {got} counts D = {D} coordinates per layer; a masked conditioner with "
                f"K = {K} parts recovers a whole part per pass: K - 1 passes per layer, not D.")
        elif want == slow and got == L * K:
            say(f"Not yet: {name} = {got} counts K = {K} passes per layer, but part 0's parameters are "
                "constants: they need no pass, so K - 1 per layer.")
        elif want == slow and got in (K, K - 1):
            say(f"Not yet: {name} = {got} is the count for one layer; there are {L} layers.")
        elif want == L and got == 1:
            say(f"Not yet: {name} = {got} is the count for one layer; there are {L} layers.")
        elif got == slow + L:
            say(f"Not yet: {name} = {got}: the iterative direction needs K - 1 = {K - 1} passes per layer.")
        elif (want == L and got == slow) or (want == slow and got == L):
            say(f"Not yet: {name} = {got} is the count of the other direction. Data to latent is explicit "
                "for a MAF (one pass per layer); the IAF is a MAF used backwards.")
        else:
            say(f"Not yet: {name} = {got} is not right.")
    if right:
        say(f"Correct: a MAF evaluates densities in 1 pass per layer ({L}) and samples in K - 1 per layer "
            f"({slow}); the IAF is the other way round.")
    return right
