r"""Checkers for the exercises of the chapter on composing flows.

The layers handed to the student's functions are flowlab transforms in the data-to-latent
direction, in the order :class:`flowlab.Compose` applies them: ``layers[0]`` acts first on
the data. :func:`layers` builds them (two masked autoregressive layers with shaken parameters
and a coordinate swap between them), so the exercise cells can try their functions on such
layers; the checkers draw new ones at every call.

Each checker says what it found and returns a true verdict when the answer is right; it never
raises. A wrong answer is compared with the typical mistakes (inverses applied in the wrong
order, log-dets not accumulated, each log-det evaluated at the wrong point...) and the message
names the one it matches. ``fl.Compose`` and ``fl.Flow``, which the exercises ask the student to
replace by a loop, are refused however the function reaches them.

Example:
    >>> from flowlab.exercises import composition as ex
    >>> ex.check_affine_composition(scale=3.0, shift=-7.5, ladj=1.0986123)
    Correct: z = 3 x - 7.5 and ladj = log 3.
    True
    >>> ex.check_affine_composition(scale=3.0, shift=-5.0, ladj=1.0986123)
    Not yet: shift -5 is what you get by applying the layers in the reverse order,
    g1(g2(g3(x))). Compose applies layers[0] first: z = g3(g2(g1(x))).
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._feedback import Watch, agrees, call, checker, diagnose, fresh_seed, number, say, tensor
from .change_of_variables import _std_normal_log_prob

__all__ = ["check_affine_composition", "check_compose_inverse", "check_log_prob", "layers"]


def layers(seed: int = 0) -> list:
    """Three data-to-latent layers in float64: a masked autoregressive layer with affine
    transformers, a coordinate swap, another such layer. Their parameters are shaken (not the
    near-identity start) so that they bend the plane visibly and do not commute. The global
    random state is left untouched.

    Example:
        >>> import torch
        >>> len(layers()), layers()[1](torch.tensor([[1.0, 2.0]], dtype=torch.float64))[0].tolist()
        (3, [[2.0, 1.0]])
    """
    import flowlab as fl

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first, second = (fl.Autoregressive(fl.MaskedConditioner(2, hidden=(16,)), fl.Affine()) for _ in range(2))
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for t in (first, second):
                for p in t.parameters():
                    p.add_(0.4 * torch.randn(p.shape, generator=g))
    return [first.double().requires_grad_(False), fl.Reverse(2), second.double().requires_grad_(False)]


def _forbidden():
    """The code the exercises ask the student to replace by a loop of their own."""
    import flowlab as fl

    return [fl.Compose.forward, fl.Compose.inverse, fl.Flow.log_prob, fl.Flow.rsample_and_log_prob,
            fl.Inverse.forward, fl.Inverse.inverse]


def _watched_call(fn, ls, points, name):
    watch = Watch(code=_forbidden())
    ok, out = call(fn, list(ls), points.clone(), name=name, watch=watch)
    if watch.used:
        say(f"Not yet: your function runs {watch.used[0]}, which the exercise forbids: it would do the work "
            "for you. Loop over the layers yourself.")
        return False, None
    return ok, out


def _pair(out, n: int, name: str):
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        say(f"Not yet: {name} must return a pair (x, ladj), as every flowlab transform does.")
        return None
    x = tensor("the points", out[0], (n, 2), "one point per row")
    ladj = None if x is None else tensor("ladj", out[1], (n,), "one value per row")
    return None if ladj is None else (x, ladj)


def _setup(n: int, seed: int | None):
    seed = fresh_seed() % 2**31 if seed is None else seed
    return layers(seed), 1.5 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 7),
                                           dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# exercise 1: invert a composition
# --------------------------------------------------------------------------------------------


@checker
@torch.no_grad()
def check_compose_inverse(inverse: Callable[[list, Tensor], tuple[Tensor, Tensor]], n: int = 200,
                          seed: int | None = None) -> bool:
    r"""Check ``inverse(layers, z) -> (x, ladj)``: the latent-to-data map of the composition of
    ``layers`` (applied data to latent in list order) and the log-det of that inverse map.

    The right answer undoes the last layer first: :math:`x = g_1^{-1}(\dots g_L^{-1}(z))`, and
    ``ladj`` is the sum of the layers' inverse log-dets, each at the point where it is applied.
    """
    ls, z = _setup(n, seed)
    ok, out = _watched_call(inverse, ls, z, "inverse")
    if not ok:
        return False
    pair = _pair(out, n, "inverse")
    if pair is None:
        return False
    x, ladj = pair
    points, ladjs, y = [z], [], z
    for t in reversed(ls):
        y, l = t.inverse(y)
        points.append(y)
        ladjs.append(l)
    truth_x, truth_ladj = y, sum(ladjs)
    wrong_order = z
    for t in ls:
        wrong_order = t.inverse(wrong_order)[0]
    forward_x = z
    for t in ls:
        forward_x = t(forward_x)[0]
    backwards_forward = z
    for t in reversed(ls):
        backwards_forward = t(backwards_forward)[0]
    if not diagnose(x, truth_x, [
        (wrong_order, "the inverses are applied in the wrong order. The layer applied last on the way to "
                      "the latent space must be undone first: loop over reversed(layers)."),
        (forward_x, "you applied the layers' forward maps (data to latent). Going back from z to x needs each "
                    "layer's .inverse, last layer first."),
        (backwards_forward, "you applied the layers' forward maps (data to latent). Going back from z to x "
                            "needs each layer's .inverse, last layer first."),
    ], "the points"):
        return False
    mistakes = [
        (ladjs[-1], "ladj is only the last log-det computed in the loop. Add up the log-dets of all "
                    "layers: ladj = ladj + l in every step."),
        (ladjs[0], "ladj is only the log-det of the first layer undone. Add up the log-dets of all layers."),
        (-truth_ladj, "ladj has the wrong sign: return the log-det of the latent-to-data map, the sum of "
                      "the ladj that each layer's .inverse returns."),
        (torch.zeros(n, dtype=torch.float64), "ladj is zero: add up the ladj that each layer's .inverse returns."),
        (sum(t.inverse(z)[1] for t in ls), "each layer's log-det must be evaluated at that layer's own input "
                                           "(the output of the previous step), not at z."),
    ]
    if diagnose(ladj, truth_ladj, mistakes, "ladj"):
        say(f"Correct: x and ladj are those of the composition's inverse at {n} points, on layers of the "
            "checker's own.")
        return True
    return False


# --------------------------------------------------------------------------------------------
# exercise 2: the log-density, layer by layer
# --------------------------------------------------------------------------------------------


@checker
@torch.no_grad()
def check_log_prob(log_prob: Callable[[list, Tensor], Tensor], n: int = 200, seed: int | None = None) -> bool:
    r"""Check ``log_prob(layers, x)``: the log-density of the flow with transform
    ``Compose(*layers)`` and a standard normal base, at the rows of ``x`` (shape ``(n, 2)``).

    The right answer walks the layers, :math:`x_\ell = g_\ell(x_{\ell-1})`, adds up each layer's
    ``ladj`` at its own input, and ends with :math:`\log p_Z(x_L)`.
    """
    ls, x = _setup(n, None if seed is None else seed + 4)
    ok, out = _watched_call(log_prob, ls, x, "log_prob")
    if not ok:
        return False
    got = tensor("the log-density", out, (n,), "one value per point")
    if got is None:
        return False
    per_layer, z = [], x
    for t in ls:
        z, l = t(z)
        per_layer.append(l)
    ladj = sum(per_layer)
    base = _std_normal_log_prob(z)
    truth = base + ladj
    y_rev, ladj_rev = x, 0
    for t in reversed(ls):
        y_rev, l = t(y_rev)
        ladj_rev = ladj_rev + l
    y_inv, ladj_inv = x, 0
    for t in reversed(ls):
        y_inv, l = t.inverse(y_inv)
        ladj_inv = ladj_inv + l
    mistakes = [
        (_std_normal_log_prob(y_rev) + ladj_rev, "the layers are applied in reverse order. From data to latent, "
                                                 "layers[0] acts first: loop over layers, not reversed(layers)."),
        (_std_normal_log_prob(y_inv) + ladj_inv, "you used the layers' .inverse (latent to data). The density "
                                                 "direction is the layers' forward map: x, l = t(x)."),
        (_std_normal_log_prob(y_inv) - ladj_inv, "you used the layers' .inverse (latent to data), with the sign "
                                                 "of ladj flipped. The density direction is the forward map: "
                                                 "x, l = t(x)."),
        (base, "you forgot the log-dets: add the ladj of every layer to log p_Z(z)."),
        (base - ladj, "the log-dets have the wrong sign: with flowlab's convention (forward is data to "
                      "latent) log p(x) = log p_Z(z) + ladj."),
        (base + per_layer[-1], "only the last layer's log-det is counted: add up the ladj of all layers."),
        (base + per_layer[0], "only the first layer's log-det is counted: add up the ladj of all layers."),
        (base + sum(t(x)[1] for t in ls), "each layer's log-det is evaluated at the data point x. Evaluate it at "
                                          "that layer's own input: x_l = g_l(x_(l-1)), the output of the previous "
                                          "layer."),
        (_std_normal_log_prob(x) + ladj, "the base density is evaluated at x; evaluate it at z, the output "
                                         "of the last layer."),
        (truth.exp(), "this is the density p(x) itself; return its logarithm."),
    ]
    if diagnose(got, truth, mistakes, "the log-density"):
        say(f"Correct: log p_Z(z) + the sum of the layers' ladj at {n} points, on layers of the checker's own.")
        return True
    return False


# --------------------------------------------------------------------------------------------
# exercise 3: three affine layers
# --------------------------------------------------------------------------------------------


@checker
def check_affine_composition(scale, shift, ladj, maps=((2.0, 1.0), (0.5, -3.0), (3.0, 0.0))) -> bool:
    r"""Check the composition of 1-D data-to-latent layers :math:`g_i(y) = a_i y + c_i`, given
    as ``maps`` of pairs :math:`(a_i, c_i)` and applied in that order (as ``Compose(g1, g2, g3)``
    would; by default :math:`g_1(x) = 2x + 1`, :math:`g_2(y) = y/2 - 3`, :math:`g_3(y) = 3y`):
    the answer is
    :math:`z = \text{scale}\cdot x + \text{shift}` and its constant ``ladj``, to 3 significant
    digits or more.
    """
    values = [number(name, v) for name, v in (("scale", scale), ("shift", shift), ("ladj", ladj))]
    if any(v is None for v in values):
        return False
    scale, shift, ladj = values
    a, c = 1.0, 0.0
    for s, t in maps:  # z = s (a x + c) + t
        a, c = s * a, s * c + t
    rev_c = 0.0
    for s, t in reversed(maps):
        rev_c = s * rev_c + t
    right = True
    if not agrees(scale, a):
        right = False
        if agrees(scale, sum(s for s, _ in maps)):
            say(f"Not yet: scale {scale:g} adds the scales; composing multiplies them.")
        else:
            say(f"Not yet: scale {scale:g} is wrong. Each layer multiplies the slope by its own scale.")
    if not agrees(shift, c):
        right = False
        if agrees(shift, rev_c):
            say(f"Not yet: shift {shift:g} is what you get by applying the layers in the reverse order, "
                "g1(g2(g3(x))). Compose applies layers[0] first: z = g3(g2(g1(x))).")
        elif agrees(shift, sum(t for _, t in maps)):
            say(f"Not yet: shift {shift:g} adds the shifts, but a shift is multiplied by every scale that comes "
                "after it.")
        else:
            say(f"Not yet: shift {shift:g} is wrong. Expand the composition step by step.")
    log_a = math.log(abs(a))
    if not agrees(ladj, log_a):
        right = False
        if agrees(ladj, abs(a)):
            say(f"Not yet: ladj is the logarithm of |dz/dx|: log {abs(a):g}, not {abs(a):g}.")
        elif agrees(ladj, -log_a) and log_a != 0:
            say(f"Not yet: ladj has the wrong sign: the data-to-latent map stretches by {abs(a):g}, "
                f"ladj = log {abs(a):g}.")
        elif agrees(ladj, math.log(abs(sum(s for s, _ in maps)))):
            say("Not yet: log-dets add (the sum of the log |scales|), which is the log of the product of the "
                "scales, not of their sum.")
        else:
            say(f"Not yet: ladj {ladj:g} is wrong. The layers' log-dets add up: the sum of log |a_i|.")
    if right:
        say(f"Correct: z = {a:g} x {'-' if c < 0 else '+'} {abs(c):g} and ladj = log {abs(a):g}.")
    return right
