r"""Checkers for the exercises of the chapter on composing flows.

The layers handed to the student's functions are flowlab transforms in the data-to-latent
direction, in the order :class:`flowlab.Compose` applies them: ``layers[0]`` acts first on
the data. :func:`layers` builds the ones the checkers use (two masked autoregressive layers
with shaken parameters and a coordinate swap between them), so the exercise cells can try
their functions on the same layers.

Each checker prints what it found and returns ``True`` when the answer is right; it never
raises. When an answer is wrong it is compared with the typical mistakes (inverses applied in
the wrong order, log-dets not accumulated, each log-det evaluated at the wrong point...) and
the message names the one it matches.

Example:
    >>> from flowlab.exercises import composition as ex
    >>> ex.check_affine_composition(scale=3.0, shift=-7.5, ladj=1.0986123)
    Correct: z = 3 x - 7.5 and ladj = log 3.
    True
    >>> ex.check_affine_composition(scale=3.0, shift=-5.0, ladj=1.0986123)
    Not yet: shift -5 is what you get by applying the layers in the reverse order, g1(g2(g3(x))). Compose applies layers[0] first: z = g3(g2(g1(x))).
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..autoregressive import MAF
from ..core import Compose, Transform
from ..linear import Reverse
from ..core import Flow
from ._feedback import shortcuts as _shortcuts
from .change_of_variables import _as_values, _call, _close, _diagnose, _std_normal_log_prob


def _refuse_compose(fn) -> bool:
    """Print a message and return True when ``fn`` uses ``Compose`` or ``Flow``, which the
    exercises of this chapter ask the student to replace by a loop of their own."""
    found = _shortcuts(fn, ("Compose", "Flow"), (Compose, Flow))
    if found:
        print(f"Not yet: your function uses {found[0]}, which the exercise forbids: it would do the work for you. "
              "Loop over the layers yourself.")
        return True
    return False

__all__ = ["check_affine_composition", "check_compose_inverse", "check_log_prob", "layers"]


def layers(seed: int = 0) -> list[Transform]:
    """Three data-to-latent layers in float64: a MAF layer, a coordinate swap, another MAF layer.

    The MAF layers get random parameters (not the near-identity start) so that they bend the
    plane visibly and do not commute. The global random state is left untouched.

    Example:
        >>> import torch
        >>> len(layers()), layers()[1](torch.tensor([[1.0, 2.0]], dtype=torch.float64))[0].tolist()
        (3, [[2.0, 1.0]])
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first, second = MAF(2, hidden=(16,)), MAF(2, hidden=(16,))
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for t in (first, second):
                for p in t.parameters():
                    p.add_(0.4 * torch.randn(p.shape, generator=g))
    return [first.double(), Reverse(2), second.double()]


def _points(n: int, seed: int) -> Tensor:
    return 1.5 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _pair(out, n: int, name: str) -> tuple[Tensor, Tensor] | None:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        print(f"Not yet: {name} must return a pair (x, ladj), as every flowlab transform does.")
        return None
    x = _as_values(out[0], (n, 2), "the points")
    if x is None:
        return None
    ladj = _as_values(out[1], (n,), "ladj")
    if ladj is None:
        return None
    return x, ladj


# --------------------------------------------------------------------------------------------
# exercise 1: invert a composition
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def check_compose_inverse(inverse: Callable[[list, Tensor], tuple[Tensor, Tensor]], n: int = 200, seed: int = 0) -> bool:
    r"""Check ``inverse(layers, z) -> (x, ladj)``: the latent-to-data map of the composition of
    ``layers`` (applied data to latent in list order) and the log-det of that inverse map.

    The right answer undoes the last layer first: :math:`x = g_1^{-1}(\dots g_L^{-1}(z))`, and
    ``ladj`` is the sum of the layers' inverse log-dets, each at the point where it is applied.
    """
    ls = layers(seed)
    z = _points(n, seed + 7)
    if _refuse_compose(inverse):
        return False
    ok, out = _call(inverse, list(ls), z.clone(), name="inverse")
    if not ok:
        return False
    pair = _pair(out, n, "inverse")
    if pair is None:
        return False
    x, ladj = pair
    truth_x, truth_ladj = Compose(*ls).inverse(z)

    if not _close(x, truth_x):
        y = z
        for t in ls:
            y, _ = t.inverse(y)
        forward_x, _ = Compose(*ls)(z)
        backwards_forward, _ = Compose(*reversed(ls))(z)
        if _close(x, y):
            print("Not yet: the inverses are applied in the wrong order. The layer applied last on the "
                  "way to the latent space must be undone first: loop over reversed(layers).")
        elif _close(x, forward_x) or _close(x, backwards_forward):
            print("Not yet: you applied the layers' forward maps (data to latent). Going back from z to "
                  "x needs each layer's .inverse, last layer first.")
        else:
            err = float((x - truth_x).abs().max())
            print(f"Not yet: the points are wrong by up to {err:.3g}.")
        return False

    # the log-dets one could get by mistake
    points, y = [z], z
    ladjs = []
    for t in reversed(ls):
        y, l = t.inverse(y)
        points.append(y)
        ladjs.append(l)
    all_at_z = sum(t.inverse(z)[1] for t in ls)
    mistakes = [
        (ladjs[-1], "ladj is only the last log-det computed in the loop. Add up the log-dets of all "
                    "layers: ladj = ladj + l in every step."),
        (ladjs[0], "ladj is only the log-det of the first layer undone. Add up the log-dets of all layers."),
        (-truth_ladj, "ladj has the wrong sign: return the log-det of the latent-to-data map, the sum of "
                      "the ladj that each layer's .inverse returns."),
        (torch.zeros(n, dtype=torch.float64), "ladj is zero: add up the ladj that each layer's .inverse returns."),
        (all_at_z, "each layer's log-det must be evaluated at that layer's own input (the output of the "
                   "previous step), not at z."),
    ]
    if _diagnose(ladj, truth_ladj, mistakes, "ladj"):
        print(f"Correct: x and ladj match Compose(*layers).inverse(z) at {n} random points.")
        return True
    return False


# --------------------------------------------------------------------------------------------
# exercise 2: the log-density, layer by layer
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def check_log_prob(log_prob: Callable[[list, Tensor], Tensor], n: int = 200, seed: int = 0) -> bool:
    r"""Check ``log_prob(layers, x)``: the log-density of the flow with transform
    ``Compose(*layers)`` and a standard normal base, at the rows of ``x`` (shape ``(n, 2)``).

    The right answer walks the layers, :math:`x_\ell = g_\ell(x_{\ell-1})`, adds up each layer's
    ``ladj`` at its own input, and ends with :math:`\log p_Z(x_L)`.
    """
    ls = layers(seed)
    x = _points(n, seed + 11)
    if _refuse_compose(log_prob):
        return False
    ok, out = _call(log_prob, list(ls), x.clone(), name="log_prob")
    if not ok:
        return False
    got = _as_values(out, (n,), "the log-density")
    if got is None:
        return False
    z, ladj = Compose(*ls)(x)
    base = _std_normal_log_prob(z)
    truth = base + ladj
    per_layer, y = [], x
    for t in ls:
        y, l = t(y)
        per_layer.append(l)
    at_x = sum(t(x)[1] for t in ls)
    y_rev, ladj_rev = x, torch.zeros(n, dtype=x.dtype)
    for t in reversed(ls):
        y_rev, l = t(y_rev)
        ladj_rev = ladj_rev + l
    y_inv, ladj_inv = x, torch.zeros(n, dtype=x.dtype)
    for t in reversed(ls):
        y_inv, l = t.inverse(y_inv)
        ladj_inv = ladj_inv + l
    mistakes = [
        (_std_normal_log_prob(y_rev) + ladj_rev, "the layers are applied in reverse order. From data to latent, "
                                                 "layers[0] acts first: loop over layers, not reversed(layers)."),
        (_std_normal_log_prob(y_inv) + ladj_inv, "you used the layers' .inverse (latent to data). The density "
                                                 "direction is the layers' forward map: x, l = t(x)."),
        (_std_normal_log_prob(y_inv) - ladj_inv, "you used the layers' .inverse (latent to data), with the sign "
                                                 "of ladj flipped. The density direction is the forward map: x, l = t(x)."),
        (base, "you forgot the log-dets: add the ladj of every layer to log p_Z(z)."),
        (base - ladj, "the log-dets have the wrong sign: with flowlab's convention (forward is data to "
                      "latent) log p(x) = log p_Z(z) + ladj."),
        (base + per_layer[-1], "only the last layer's log-det is counted: add up the ladj of all layers."),
        (base + per_layer[0], "only the first layer's log-det is counted: add up the ladj of all layers."),
        (base + at_x, "each layer's log-det is evaluated at the data point x. Evaluate it at that layer's "
                      "own input: x_l = g_l(x_(l-1)), the output of the previous layer."),
        (_std_normal_log_prob(x) + ladj, "the base density is evaluated at x; evaluate it at z, the output "
                                         "of the last layer."),
        (truth.exp(), "this is the density p(x) itself; return its logarithm."),
    ]
    if _diagnose(got, truth, mistakes, "the log-density"):
        print(f"Correct: it matches log p_Z(z) + sum of the layers' ladj at {n} random points.")
        return True
    return False


# --------------------------------------------------------------------------------------------
# exercise 3: three affine layers
# --------------------------------------------------------------------------------------------


def check_affine_composition(scale, shift, ladj) -> bool:
    r"""Check the composition of the 1-D data-to-latent layers :math:`g_1(x) = 2x + 1`,
    :math:`g_2(y) = y/2 - 3`, :math:`g_3(y) = 3y`, applied in that order (as
    ``Compose(g1, g2, g3)`` would): the answer is :math:`z = \text{scale}\cdot x + \text{shift}`
    and its constant ``ladj``.
    """
    values = []
    for name, v in (("scale", scale), ("shift", shift), ("ladj", ladj)):
        if v is None or v is Ellipsis:
            print(f"Not answered yet: fill in {name}.")
            return False
        try:
            values.append(float(v))
        except (TypeError, ValueError):
            print(f"Not yet: {name} should be a number, got {type(v).__name__}.")
            return False
    scale, shift, ladj = values
    right = True

    def near(a, b):
        return abs(a - b) <= 1e-4 * (1 + abs(b))

    if not near(scale, 3.0):
        right = False
        if near(scale, 2 + 0.5 + 3):
            print(f"Not yet: scale {scale:g} adds the scales; composing multiplies them: 2 * 1/2 * 3.")
        else:
            print(f"Not yet: scale {scale:g} is wrong. Each layer multiplies the slope by its own scale.")
    if not near(shift, -7.5):
        right = False
        if near(shift, -5.0):
            print("Not yet: shift -5 is what you get by applying the layers in the reverse order, "
                  "g1(g2(g3(x))). Compose applies layers[0] first: z = g3(g2(g1(x))).")
        elif near(shift, 1 - 3 + 0):
            print("Not yet: shift -2 adds the shifts, but a shift is multiplied by every scale that "
                  "comes after it: 3 * (1/2 * 1 - 3).")
        else:
            print(f"Not yet: shift {shift:g} is wrong. Expand g3(g2(g1(x))) step by step.")
    if not near(ladj, math.log(3.0)):
        right = False
        if near(ladj, 3.0):
            print("Not yet: ladj is the logarithm of |dz/dx|: log 3, not 3.")
        elif near(ladj, -math.log(3.0)):
            print("Not yet: ladj has the wrong sign: the data-to-latent map stretches by 3, ladj = +log 3.")
        elif near(ladj, math.log(2 + 0.5 + 3)):
            print("Not yet: log-dets add (log 2 + log 1/2 + log 3), which is the log of the product of "
                  "the scales, not of their sum.")
        else:
            print(f"Not yet: ladj {ladj:g} is wrong. The layers' log-dets add up: log 2 + log(1/2) + log 3.")
    if right:
        print("Correct: z = 3 x - 7.5 and ladj = log 3.")
    return right
