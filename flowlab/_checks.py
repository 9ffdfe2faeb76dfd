"""Argument checks on plain values: numbers, seeds, names, widths and tensors.

This module knows no flowlab type, and imports no other flowlab module: the checks of the
package's own objects live with them (:func:`flowlab.device.check_device`,
:func:`flowlab.core.check_flow`, :func:`flowlab.conditioners.check_conditioner`).

Every check raises a ``ValueError`` whose message names the argument, the value received and
what to pass instead. A wrong *kind* of object (a class instead of an instance, a number where
a function is needed, a torch distribution where a flowlab base is needed) raises an
:class:`ArgumentTypeError`, which is a ``TypeError`` and also a ``ValueError``: code that
catches either (the live dashboard shows ``ValueError`` messages in place of tracebacks) sees it.

The checks are cheap: type and range tests on Python numbers, shape and dtype comparisons on
tensors, and at most one finiteness reduction over a tensor. Nothing here runs a network.

Example:
    >>> from flowlab._checks import check_hidden, check_seed
    >>> check_hidden(64, layers=2), check_hidden((32, 16))
    ((64, 64), (32, 16))
    >>> check_seed("seed", None) is None
    True
"""

from __future__ import annotations

import difflib
import math
import numbers
import types
from collections.abc import Sequence

import torch
from torch import Tensor

_MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 64-bit seeds


class ArgumentTypeError(TypeError, ValueError):
    """A wrong kind of object: a ``TypeError`` that is also a ``ValueError``."""


def describe(value) -> str:
    """``value`` for a message: short, with its type when the repr does not show it."""
    if isinstance(value, type):
        return f"the class {value.__module__.split('.')[0]}.{value.__qualname__}"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return f"the function {value.__name__}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, (bool, numbers.Number, str, bytes, tuple, list, dict)) or value is None:
        return text
    return f"{type(value).__name__} {text}" if not text.startswith(type(value).__name__) else text


# ----------------------------------------------------------------------------- numbers


def check_positive_int(name: str, value, minimum: int = 1, maximum: int | None = None, hint: str = "") -> int:
    """An integer (not a bool, not a float) in ``[minimum, maximum]``; ``hint`` (in parentheses)
    says what the number is or why it is bounded."""
    span = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
    hint = f" {hint}" if hint else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        whole = isinstance(value, float) and value.is_integer()
        extra = f" (pass {int(value)}, without the decimal point)" if whole else ""
        raise ValueError(f"{name} must be an integer {span}{hint}, got {describe(value)}{extra}.")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {span}{hint}, got {value}.")
    return int(value)


def check_positive_float(name: str, value, maximum: float | None = None, hint: str = "") -> float:
    """A finite number > 0 (and <= ``maximum``); bools, strings, NaN and infinity are refused."""
    hint = f" {hint}" if hint else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or value != value:
        raise ValueError(f"{name} must be a positive number{hint}, got {describe(value)}.")
    if value == math.inf:
        raise ValueError(f"{name} must be finite{hint}, got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be a positive number at most {maximum:g}{hint}, got {value!r}.")
    return float(value)


def check_finite_float(name: str, value, bound: float | None = None, hint: str = "") -> float:
    """A finite number (any sign) with ``|value| <= bound``."""
    hint = f" {hint}" if hint else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number{hint}, got {describe(value)}.")
    if bound is not None and abs(value) > bound:
        raise ValueError(f"{name} must be a number between {-bound:g} and {bound:g}{hint}, got {value!r}.")
    return float(value)


def check_fraction(name: str, value, what: str = "") -> float:
    """A number strictly between 0 and 1; ``what`` says what it is, as in ``"inner radius / outer radius"``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        what = f" ({what})" if what else ""
        raise ValueError(f"{name}{what} must be in (0, 1), a number strictly between 0 and 1, got {describe(value)}.")
    return float(value)


def check_seed(name: str, value) -> int | None:
    """A seed: an integer in ``[0, 2**64)``, or ``None`` for fresh randomness.

    Floats, strings and bools are refused rather than rounded or hashed: two different seeds
    must never silently give the same numbers.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= _MAX_SEED:
        extra = ""
        if isinstance(value, str) and value.strip().isdigit():
            extra = f" Pass the number {int(value)}, not the string {value!r}."
        elif isinstance(value, float) and value.is_integer():
            extra = f" Pass {int(value)}, without the decimal point."
        raise ValueError(
            f"{name} must be an integer between 0 and 2**64 - 1 (or None for fresh randomness), "
            f"got {describe(value)}.{extra}"
        )
    return int(value)


def seeded_generator(name: str, seed, device=None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with the checked ``seed`` (``None``: fresh)."""
    seed = check_seed(name, seed)
    g = torch.Generator() if device is None else torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def check_choice(name: str, value, choices: Sequence[str], what: str = "") -> str:
    """One of ``choices`` (strings); the message lists them, or the closest ones if there are many."""
    choices = list(choices)
    if isinstance(value, str) and value in choices:
        return value
    what = f" {what}" if what else ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, choices, n=3, cutoff=0.6)
        if close:
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?"
        elif len(choices) <= 12:
            hint = f"choose one of: {', '.join(repr(c) for c in choices)}."
        else:
            hint = f"choose one of the {len(choices)} names, such as {', '.join(repr(c) for c in choices[:6])}."
        raise ValueError(f"{name} {value!r} is not a known{what} name; {hint}")
    shown = choices if len(choices) <= 12 else choices[:6] + ["..."]
    raise ArgumentTypeError(f"{name} must be a string, one of {', '.join(shown)}; got {describe(value)}.")


def check_colormap(name: str, value) -> str:
    """The name of a matplotlib colour map (``'viridis'``, ``'magma'``, ...)."""
    import matplotlib

    names = sorted(matplotlib.colormaps, key=lambda n: (n.endswith("_r"), n.lower()))
    return check_choice(name, value, names, "matplotlib colour map")


# ----------------------------------------------------------------------------- objects


def check_type(name: str, value, kind: type | tuple[type, ...], example: str) -> None:
    """``value`` must be an instance of ``kind``; ``example`` shows what to pass instead.

    A class given instead of an instance gets told to call it.
    """
    if isinstance(value, kind):
        return
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, type) and issubclass(value, kinds):
        raise ArgumentTypeError(f"{name} must be {example}, got {describe(value)} itself: call it to make one.")
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        raise ArgumentTypeError(
            f"{name} must be {example}, got the function {value.__name__}: call it to build one, {value.__name__}(...)."
        )
    raise ArgumentTypeError(f"{name} must be {example}, got {describe(value)}.")


def check_callable(name: str, value, what: str) -> None:
    """A function, checked before any work starts (not when it is first called)."""
    if not callable(value):
        raise ArgumentTypeError(f"{name} must be {what}, got {describe(value)}.")


def renamed(name: str, value, default, old: str, old_value) -> tuple[str, object]:
    """An argument renamed from ``old`` to ``name``: ``(the name the caller used, its value)``.

    The old name still works; given together with the new one (not at its ``default``), it is
    refused, as the two could disagree.

    Example:
        >>> renamed("units", 8, 8, "hidden", 4)
        ('hidden', 4)
    """
    if old_value is None:
        return name, value
    if value != default:
        raise ValueError(f"{old} is the former name of {name}: pass {name} only, got {name}={value!r} and {old}={old_value!r}.")
    return old, old_value


def check_hidden(value, layers: int = 2, name: str = "hidden") -> tuple[int, ...]:
    """Hidden layer widths: an int ``h`` means ``layers`` layers of ``h`` units, a sequence such as
    ``(64, 64)`` gives each layer's width, ``()`` no hidden layer. Returns a tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (check_positive_int(name, value),) * layers
    sequence = isinstance(value, Sequence) and not isinstance(value, (str, bytes))
    if not (sequence or isinstance(value, Tensor) and value.dim() == 1):
        raise ArgumentTypeError(
            f"{name} must be an integer width, such as 64 ({layers} hidden layers of 64 units), or a sequence "
            f"of widths, such as (64, 64); got {describe(value)}."
        )
    widths = [int(h) if isinstance(h, Tensor) and not h.is_floating_point() else h for h in value]
    for h in widths:
        if isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1:
            raise ValueError(f"{name}: every hidden size must be an integer >= 1, got {name}={tuple(widths)!r}.")
    return tuple(int(h) for h in widths)


# ----------------------------------------------------------------------------- tensors


def check_batch(name: str, x, features: int) -> None:
    """A tensor of shape (batch, features)."""
    if not isinstance(x, Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor of shape (batch, {features}), got {describe(x)}.")
    if x.dim() != 2 or x.shape[-1] != features:
        raise ValueError(
            f"{name} must have shape (batch, {features}), got {tuple(x.shape)}."
            + (" Add a batch dimension with x.unsqueeze(0)." if x.dim() == 1 and x.shape[0] == features else "")
        )


def check_like(name: str, x: Tensor, module: torch.nn.Module) -> None:
    """``x`` has the dtype and device of ``module``: of its first parameter, or else of its first
    buffer (then only the device counts, unless that buffer holds floating-point numbers).

    Cheap enough for every call (a lookup and two comparisons); the message says which
    conversion to make.
    """
    ref = next(module.parameters(), None)
    if ref is None:
        ref = next(module.buffers(), None)
        if ref is None:
            return
    kind = type(module).__name__
    if x.dtype != ref.dtype and ref.is_floating_point():
        casts = {torch.float64: ".double()", torch.float32: ".float()", torch.float16: ".half()"}
        cast = casts.get(ref.dtype, f".to({ref.dtype})")
        other = f", or convert the model with .to({x.dtype})" if x.is_floating_point() else ""
        why = "" if x.is_floating_point() else " (a layer computes in floating point)"
        raise ValueError(
            f"{name} has dtype {x.dtype} but the {kind}'s parameters have dtype {ref.dtype}{why}: pass "
            f"{name}{cast}{other}. (A fl.Flow's log_prob converts its input itself.)"
        )
    if x.device != ref.device:
        raise ValueError(
            f"{name} is on {x.device} but the {kind}'s parameters are on {ref.device}: pass {name}.to('{ref.device}'), "
            f"or move the model with .to('{x.device}')."
        )


def check_finite(name: str, x: Tensor, advice: str = "remove or impute them") -> None:
    """Every entry of ``x`` (shape ``(n, ...)``) is finite; otherwise name the first bad rows."""
    if math.isfinite(float(x.detach().sum())):  # one reduction: a NaN or an infinity makes the sum non-finite
        return
    if bool(torch.isfinite(x).all()):  # finite entries whose sum overflowed
        return
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1) if x.dim() > 0 else torch.ones(1, dtype=torch.bool)
    rows = bad.nonzero().flatten()[:5].tolist()
    kinds = " and ".join(k for k, m in (("NaN", torch.isnan(x)), ("infinite", torch.isinf(x))) if bool(m.any()))
    raise ValueError(f"{name} contains {kinds} values in {int(bad.sum())} rows (first: {rows}); {advice}.")


def as_data(name: str, data, features: int | None = None) -> Tensor:
    """Data as a finite float tensor of shape (n, D), rejecting anything else with a clear message."""
    if not isinstance(data, Tensor):
        try:
            data = torch.as_tensor(data)
        except Exception as e:  # noqa: BLE001 - any conversion failure is a user error here
            raise ValueError(f"{name} must be an array or tensor of shape (n, D): {e}") from None
    if data.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {data.dtype}.")
    if not data.is_floating_point():
        data = data.to(torch.get_default_dtype())
    if data.dim() != 2:
        raise ValueError(f"{name} must have shape (n, D), got {tuple(data.shape)}.")
    if data.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one row.")
    if features is not None and data.shape[1] != features:
        raise ValueError(f"{name} has {data.shape[1]} columns but the flow has {features} features.")
    bad = ~torch.isfinite(data).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten()[:5].tolist()
        raise ValueError(
            f"{name} contains NaN or infinite values in {int(bad.sum())} rows (first: {rows}); "
            "remove or impute them before training."
        )
    return data
