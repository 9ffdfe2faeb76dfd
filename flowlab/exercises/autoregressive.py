r"""Checkers for the exercises of the chapter on autoregressive flows.

Each checker compares the student's answer with one computed here independently, prints what
it found and returns ``True`` when the answer is right. It never raises: a missing answer, a
function that raises or returns the wrong shape gets a message that says what to change. When
an answer is wrong, it is compared with the typical mistakes (too few passes, the conditioner
fed with ``z`` instead of ``x``, a pass spent on part 0's constants, a mask that lets a part see
itself, the passes of the two directions swapped...) and the message names the one it matches.

:func:`layer` builds the autoregressive layers that :func:`check_invert` hands to the
student's function, so an exercise cell can try its function on the same layers.

Example:
    >>> from flowlab.exercises import autoregressive as ex
    >>> ex.check_passes(density=4, sampling=16, iaf_density=16, iaf_sampling=4)
    Correct: a MAF evaluates densities in 1 pass per layer (4) and samples in K - 1 per layer (16); the IAF is the other way round.
    True
    >>> ex.check_passes(density=4, sampling=20, iaf_density=16, iaf_sampling=4)
    Not yet: sampling = 20 counts K = 5 passes per layer, but part 0's parameters are constants: they need no pass, so K - 1 per layer.
    False
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..autoregressive import Autoregressive
from ..conditioners import MaskedConditioner, RNNConditioner
from ..nn import partition
from ..transformers import RQSpline
from ._feedback import tensor_of_shape
from .change_of_variables import _call

__all__ = ["check_invert", "check_mask", "check_passes", "layer"]


def layer(kind: str = "masked", features: int = 6, parts: int = 3, seed: int = 0) -> Autoregressive:
    """An autoregressive layer in float64 with a spline transformer and random parameters
    (not the near-identity start): ``kind="masked"`` with ``parts`` parts, or ``kind="rnn"``.
    The global random state is left untouched.

    Example:
        >>> layer().passes, layer("rnn").passes
        (2, 5)
    """
    if kind not in ("masked", "rnn"):
        raise ValueError(f"kind must be 'masked' or 'rnn', got {kind!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "masked":
            cond = MaskedConditioner(features, parts=parts, hidden=(32, 32))
        else:
            cond = RNNConditioner(features, hidden=16)
        t = Autoregressive(cond, RQSpline(bins=6, bound=4.0))
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in t.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return t.double().requires_grad_(False)


def _close(a: Tensor, b: Tensor, tol: float = 1e-7) -> bool:
    return a.shape == b.shape and bool(((a - b).abs() <= tol * (1 + b.abs())).all())


def _sweeps(t: Autoregressive, z: Tensor, passes: int, feed_z: bool = False, start: str = "initial") -> Tensor:
    """``passes`` network passes after the constants (``start="initial"``) or from ``x = 0``."""
    if start == "initial":
        x, _ = t.transformer.inverse(z, t.conditioner.initial(z))
    else:
        x = z.new_zeros(z.shape)
    for _ in range(passes):
        x, _ = t.transformer.inverse(z, t.conditioner(z if feed_z else x))
    return x



# --------------------------------------------------------------------------------------------
# exercise 1: invert a layer pass by pass
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def check_invert(invert: Callable[[Autoregressive, Tensor], Tensor], n: int = 100, seed: int = 0) -> bool:
    r"""Check ``invert(layer, z) -> x``: the inverse of an autoregressive layer (latent to data)
    written with ``layer.conditioner``, ``layer.transformer.inverse`` and ``layer.passes`` only
    (``layer.inverse`` is the shortcut the exercise forbids: the checker's layers refuse it).

    It is tried on a masked layer with :math:`D = 6`, :math:`K = 3` (2 network passes after the
    constants of part 0) and on a recurrent one (:math:`D - 1` passes); ``x`` must satisfy
    ``layer(x)[0] == z``.
    """
    for kind in ("masked", "rnn"):
        t = layer(kind, seed=seed)
        g = torch.Generator().manual_seed(seed + 3)
        x_true = torch.randn(n, t.features, generator=g, dtype=torch.float64)
        z, _ = t(x_true)
        used = []
        reference = t.inverse
        t.inverse = lambda *a, **k: (used.append(1), reference(*a, **k))[1]  # records the forbidden shortcut
        try:
            ok, out = _call(invert, t, z.clone(), name="invert")
        finally:
            del t.inverse
        if used:
            print("Not yet: you called layer.inverse, which the exercise forbids. Write the passes yourself with "
                  "layer.conditioner.initial, layer.conditioner and layer.transformer.inverse.")
            return False
        if not ok:
            return False
        if isinstance(out, (tuple, list)):
            print("Not yet: return only the points x (a tensor of shape (n, D)), not a tuple.")
            return False
        x = tensor_of_shape("invert", out, z.shape, "one point x per row of z")
        if x is None:
            return False
        if _close(x, x_true):
            continue
        label = f"the {'masked' if kind == 'masked' else 'recurrent'} layer with {t.passes} passes"
        if _close(x, z):
            print("Not yet: you returned z unchanged. Each pass computes the parameters from the current x "
                  "and inverts the transformer with them.")
        elif _close(x, t(z)[0]):
            print("Not yet: you applied the layer's forward map (data to latent). Going back needs "
                  "layer.transformer.inverse(z, c).")
        elif _close(x, _sweeps(t, z, 1, feed_z=True)):
            print("Not yet: the conditioner was fed z. Its parameters c_i depend on the data coordinates "
                  "x_<i, which are not known yet: start from x = 0 and feed it the current x.")
        elif any(_close(x, _sweeps(t, z, p, start="zeros")) for p in range(1, t.passes + 1)):
            p = next(p for p in range(1, t.passes + 1) if _close(x, _sweeps(t, z, p, start="zeros")))
            print(f"Not yet: on {label} your result equals {p} pass(es) from x = 0: only the first {p} part(s) "
                  "are exact. The first pass from x = 0 only recovers part 0, whose parameters are constants: "
                  "take them from layer.conditioner.initial(z) (no network pass), then make layer.passes passes.")
        elif any(_close(x, _sweeps(t, z, p)) for p in range(0, t.passes)):
            p = next(p for p in range(0, t.passes) if _close(x, _sweeps(t, z, p)))
            print(f"Not yet: on {label} your result equals the constants and {p} pass(es): only the first {p + 1} "
                  "part(s) are exact. Loop layer.passes times, recomputing the parameters from the current x.")
        else:
            err = float((x - x_true).abs().max())
            print(f"Not yet: on {label} the result is off by up to {err:.3g}: check that layer(x)[0] gives z back.")
        return False
    print(f"Correct: layer(x)[0] == z for a masked layer (K = 3: the constants, then 2 passes) and a recurrent "
          f"one (D = 6: the constants, then 5 passes), at {n} points each.")
    return True


# --------------------------------------------------------------------------------------------
# exercise 2: which parameters may depend on which inputs
# --------------------------------------------------------------------------------------------


def _true_mask(features: int, parts: int) -> Tensor:
    k = partition(features, parts)
    return k[:, None] > k[None, :]


def check_mask(mask: Callable[[int, int], Tensor], cases=((6, 3), (6, 2), (6, 6), (5, 2), (7, 3))) -> bool:
    r"""Check ``mask(features, parts)``: a boolean ``(features, features)`` matrix :math:`M` with
    :math:`M_{ij}` true when the transformer parameters :math:`c_i` of a masked conditioner
    may depend on the input :math:`x_j` (contiguous, nearly equal parts, as
    :func:`flowlab.nn.partition` makes them).
    """
    for d, K in cases:
        ok, out = _call(mask, d, K, name="mask")
        if not ok:
            return False
        try:
            got = torch.as_tensor(np.asarray(out.detach() if isinstance(out, Tensor) else out))
        except Exception:  # noqa: BLE001
            print(f"Not yet: mask should return a ({d}, {d}) boolean tensor, got {type(out).__name__}.")
            return False
        if got.shape != (d, d):
            print(f"Not yet: mask({d}, {K}) has shape {tuple(got.shape)}, expected ({d}, {d}).")
            return False
        got = got != 0
        truth = _true_mask(d, K)
        if torch.equal(got, truth):
            continue
        k = partition(d, K)
        if torch.equal(got, truth.T):
            print("Not yet: the matrix is transposed. Row i is the output c_i, column j the input x_j: "
                  "M[i, j] = part(j) < part(i).")
        elif torch.equal(got, k[:, None] >= k[None, :]):
            print(f"Not yet: in mask({d}, {K}) a part sees itself (part(j) <= part(i)). Then c_i would depend "
                  "on coordinates that are only known after the same pass: use a strict <.")
        elif torch.equal(got, torch.ones(d, d, dtype=torch.bool).tril(-1)):
            print(f"Not yet: mask({d}, {K}) is the fully autoregressive pattern (j < i). With K = {K} parts, "
                  "coordinates of the same part do not see each other: compare the parts, not the indices.")
        elif torch.equal(got, ~truth):
            print("Not yet: the mask is inverted: True must mark the allowed dependencies.")
        else:
            wrong = (got != truth).nonzero()[:3].tolist()
            print(f"Not yet: mask({d}, {K}) differs from the right pattern at entries {wrong} (row, column). "
                  f"The parts of the features are {k.tolist()}.")
        return False
    print("Correct: M[i, j] = part(j) < part(i), a strictly block-lower-triangular pattern, for every case.")
    return True


# --------------------------------------------------------------------------------------------
# exercise 3: count the passes
# --------------------------------------------------------------------------------------------


def _count(name: str, value) -> int | None:
    if value is None:
        print(f"Not answered yet: fill in {name}.")
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or float(value) != int(value):
        print(f"Not yet: {name} should be a whole number, got {value!r}.")
        return None
    return int(value)


def check_passes(density, sampling, iaf_density, iaf_sampling, layers: int = 4, features: int = 10,
                 parts: int = 5) -> bool:
    r"""Check the number of conditioner (network) passes of a flow of ``layers`` masked
    autoregressive layers with ``features`` = D and ``parts`` = K (a MAF), to evaluate the
    density of a batch and to draw a batch of samples; then the same for its inverse, an IAF.
    Part 0's parameters are constants, so the iterative direction takes K - 1 passes per layer.
    """
    names = ("density", "sampling", "iaf_density", "iaf_sampling")
    values = [_count(n, v) for n, v in zip(names, (density, sampling, iaf_density, iaf_sampling))]
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
            print(f"Not yet: {name} = {got} counts D = {D} coordinates per layer; a masked conditioner with "
                  f"K = {K} parts recovers a whole part per pass: K - 1 passes per layer, not D.")
        elif want == slow and got == L * K:
            print(f"Not yet: {name} = {got} counts K = {K} passes per layer, but part 0's parameters are "
                  "constants: they need no pass, so K - 1 per layer.")
        elif want == slow and got in (K, K - 1):
            print(f"Not yet: {name} = {got} is the count for one layer; there are {L} layers.")
        elif want == L and got == 1:
            print(f"Not yet: {name} = {got} is the count for one layer; there are {L} layers.")
        elif got == slow + L:
            print(f"Not yet: {name} = {got}: the iterative direction needs K - 1 = {K - 1} passes per layer.")
        elif (want == L and got == slow) or (want == slow and got == L):
            print(f"Not yet: {name} = {got} is the count of the other direction. Data to latent is explicit "
                  "for a MAF (one pass per layer); the IAF is a MAF used backwards.")
        else:
            print(f"Not yet: {name} = {got} is not right.")
    if right:
        print(f"Correct: a MAF evaluates densities in 1 pass per layer ({L}) and samples in K - 1 per layer "
              f"({slow}); the IAF is the other way round.")
    return right
