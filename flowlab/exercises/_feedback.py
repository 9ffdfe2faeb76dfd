r"""The one feedback module of the exercise checkers.

Every checker is built from these pieces:

- :func:`call` runs the student's function, turns a stub, an exception or a warning into
  feedback, and can :class:`Watch` what the call runs (library code the exercise forbids,
  matrix factorizations, how often a function ran), whatever names or aliases the student's
  code uses to reach it;
- :func:`number`, :func:`flag` and :func:`tensor` read an answer as a float, a truth value or a
  float64 tensor of a given shape, accepting the forms a right answer comes in (numpy and torch
  scalars, arrays, lists) and saying what is wrong with any other;
- :func:`close` compares values with a relative tolerance, and :func:`agrees` accepts a number
  given to the significant digits the exercise asks for;
- :func:`say` prints feedback wrapped at 79 columns, and :func:`checker` makes a function a
  checker: it never raises on a student's answer and returns a :class:`Verdict`.

The checkers compute their right answers only after the student's code has returned, so no
frame that the student's code can see holds them.

Example:
    >>> import torch
    >>> ok, out = call(lambda x: 2 * x, torch.ones(2), name="double")
    >>> ok, out.tolist()
    (True, [2.0, 2.0])
    >>> call(lambda x: None, 1.0, name="f")
    Not answered yet: f returned None. Fill in its body and run the cell again.
    (False, None)
    >>> with Watch(factorizations=0) as w:
    ...     _ = torch.linalg.slogdet(torch.eye(3))
    >>> w.used
    ['a determinant or factorization of a 3 x 3 matrix (_linalg_slogdet)']
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import sys
import textwrap
import threading
import warnings

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

WIDTH = 79


def say(text: str) -> None:
    """Print ``text`` wrapped at 79 columns (between words: never in the middle of one)."""
    print(textwrap.fill(" ".join(text.split()), WIDTH, break_long_words=False, break_on_hyphens=False))


class Verdict:
    """A checker's result: true for a right answer. It prints as ``True`` or ``False`` but shows
    no ``Out[]`` in a notebook (the checker has already said what it found).

    Example:
        >>> Verdict(True), bool(Verdict(False)), Verdict(True) == True
        (True, False, True)
    """

    __slots__ = ("ok",)

    def __init__(self, ok) -> None:
        self.ok = bool(ok)

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other) -> bool:
        return self.ok == bool(other) if isinstance(other, (bool, Verdict, np.bool_)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return repr(self.ok)

    def _ipython_display_(self) -> None:  # the feedback is already printed
        pass


def checker(fn):
    """Make ``fn`` a checker: its result becomes a :class:`Verdict`, and an error while judging
    an unusual answer becomes feedback instead of a traceback."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return Verdict(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - a checker never raises on a student's answer
            say(f"Not yet: the checker could not use this answer ({type(e).__name__}: {e}). "
                "Check the type and shape that the exercise asks for.")
            return Verdict(False)

    return wrapped


# --------------------------------------------------------------------------------------------
# watching what the student's code runs
# --------------------------------------------------------------------------------------------

# matrix operations that factorize, invert, solve with or take the determinant of a matrix
_FACTORIZATIONS = {"cholesky", "cholesky_inverse", "cholesky_solve", "geqrf", "inverse", "lu_unpack", "ormqr",
                   "triangular_solve", "svd", "det", "logdet", "slogdet", "_lu_with_info", "lu_solve"}
_NOT_FACTORIZATIONS = {"linalg_vector_norm", "linalg_matrix_norm", "linalg_cross", "linalg_diagonal",
                       "_linalg_check_errors", "linalg_matrix_exp", "linalg_norm"}


def _is_factorization(name: str) -> bool:
    if name in _NOT_FACTORIZATIONS:
        return False
    return name.startswith(("linalg_", "_linalg_")) or name in _FACTORIZATIONS


class _Factorizations(TorchDispatchMode):
    """Records every factorization, inverse, solve or determinant of a matrix larger than
    ``allowed`` (seen at the level of torch's operators, so whatever tensor type or alias)."""

    def __init__(self, allowed: int, used: list[str]):
        super().__init__()
        self.allowed, self.used = allowed, used

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket).removeprefix("aten.")
        if _is_factorization(name):
            a = next((x for x in args if isinstance(x, torch.Tensor)), None)
            if a is not None and a.dim() >= 2 and a.shape[-1] > self.allowed:
                self.used.append(f"a determinant or factorization of a {a.shape[-2]} x {a.shape[-1]} matrix ({name})")
        return func(*args, **(kwargs or {}))


def _code_of(f):
    """The code object that runs when ``f`` runs: that of the function a decorator wrapped (a
    wrapper's code is shared by every function it wraps)."""
    f = getattr(f, "__func__", f)
    while hasattr(f, "__wrapped__"):
        f = getattr(f.__wrapped__, "__func__", f.__wrapped__)
    return getattr(f, "__code__", None)


class Watch:
    """Watch a piece of student code while it runs.

    - ``code``: functions (or code objects) the exercise forbids: any call of them is recorded
      in :attr:`used`, however the student's code reached them (an alias, a helper, a bound
      method, a subclass);
    - ``modules``: names of modules (``"scipy.stats"``) whose code the exercise forbids (a call
      into them from outside is recorded);
    - ``factorizations``: ``None``, or the largest matrix size ``k`` whose determinant,
      factorization, inverse or solve is allowed (0: none at all);
    - ``count``: functions whose calls are counted in :attr:`counts` (by code object).

    Python functions are seen through a profile hook (also in threads started inside), torch's
    matrix operations through a dispatch mode.
    """

    def __init__(self, *, code=(), modules=(), factorizations: int | None = None, count=()):
        self.code = {c: getattr(f, "__qualname__", str(f)) for f in code if (c := _code_of(f)) is not None}
        self.modules = tuple(modules)
        self.factorizations = factorizations
        self.count_codes = {c for f in count if (c := _code_of(f)) is not None}
        self.counts: dict = {c: 0 for c in self.count_codes}
        self.used: list[str] = []
        self._mode = None

    def _profile(self, frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        if code in self.count_codes:
            self.counts[code] += 1
        if code in self.code:
            self.used.append(self.code[code])
        elif self.modules and self._in_modules(frame) and not self._in_modules(frame.f_back):
            # an entry into a forbidden library (not its calls to itself); with ``factorizations``
            # set, matrices up to that size are allowed there too
            first = frame.f_locals.get(code.co_varnames[0]) if code.co_argcount else None
            shape = getattr(first, "shape", None)
            small = (self.factorizations is not None and shape is not None and len(shape) >= 2
                     and shape[-1] <= self.factorizations)
            if not small:
                parts = str(frame.f_globals.get("__name__")).split(".")
                public = ".".join(parts[: next((i for i, p in enumerate(parts) if p.startswith("_")), len(parts))])
                self.used.append(public if code.co_name.startswith("_") else f"{public}.{code.co_name}")

    def _in_modules(self, frame) -> bool:
        if frame is None:
            return False
        module = frame.f_globals.get("__name__", "") or ""
        return any(module == m or module.startswith(m + ".") for m in self.modules)

    def count(self, f) -> int:
        """How often ``f`` ran while watched."""
        return self.counts.get(_code_of(f), 0)

    def __enter__(self):
        self._previous = sys.getprofile(), threading.getprofile()
        if self.code or self.modules or self.count_codes:
            sys.setprofile(self._profile)
            threading.setprofile(self._profile)
        if self.factorizations is not None:
            self._mode = _Factorizations(self.factorizations, self.used)
            self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        if self._mode is not None:
            self._mode.__exit__(*exc)
            self._mode = None
        sys.setprofile(self._previous[0])
        threading.setprofile(self._previous[1])
        return False


# --------------------------------------------------------------------------------------------
# calling the student's code and reading answers
# --------------------------------------------------------------------------------------------


def call(fn, *args, name: str = "your function", watch: Watch | None = None):
    """Call ``fn(*args)``: ``(True, result)``, or ``(False, None)`` after saying why not (not a
    function, still a stub, raised, returned ``None``). Warnings are caught and reported as a
    note: a right answer that warns is still right. ``watch`` watches the call."""
    if not callable(fn):
        say(f"Not yet: pass your function itself, not a {type(fn).__name__}.")
        return False, None
    own = getattr(fn, "__name__", "")
    if own.isidentifier():  # the student's own name for it (a lambda keeps the generic one)
        name = f"`{own}`"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if watch is None:
                out = fn(*args)
            else:
                with watch:
                    out = fn(*args)
        except NotImplementedError:
            say(f"Not answered yet: {name} is still a stub. Fill in its body and run the cell again.")
            return False, None
        except Exception as e:  # noqa: BLE001 - any error in student code becomes feedback
            say(f"Not yet: {name} raised {type(e).__name__}: {e}")
            return False, None
    if caught:
        w = caught[0]
        say(f"(Note: {name} warned: {w.category.__name__}: {str(w.message).splitlines()[0]})")
    if out is None:
        say(f"Not answered yet: {name} returned None. Fill in its body and run the cell again.")
        return False, None
    return True, out


def number(name: str, value) -> float | None:
    """``value`` as a float (Python, numpy or torch, a one-element array or tensor), or ``None``
    after saying what is wrong with it.

    Example:
        >>> import numpy as np
        >>> number("x", np.float32(0.5)), number("x", torch.tensor([2]))
        (0.5, 2.0)
        >>> number("x", True)
        Not yet: x should be a number, got bool.
    """
    if value is None or value is Ellipsis:
        say(f"Not answered yet: give {name} a value (it is still None).")
        return None
    if isinstance(value, (torch.Tensor, np.ndarray)):
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        if size != 1:
            say(f"Not yet: {name} should be a single number, got an array of shape {tuple(value.shape)}.")
            return None
        if value.dtype == torch.bool or value.dtype == np.bool_:
            say(f"Not yet: {name} should be a number, got a truth value.")
            return None
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        say(f"Not yet: {name} should be a number, got {type(value).__name__}.")
        return None
    value = float(value)
    if math.isnan(value):
        say(f"Not yet: {name} is NaN. Is a log taken of a negative number somewhere?")
        return None
    if not math.isfinite(value):
        say(f"Not yet: {name} is {value}; it should be a finite number.")
        return None
    return value


def whole(name: str, value) -> int | None:
    """``value`` as a whole number (``4``, ``4.0``, ``np.int64(4)``), or ``None`` after saying why not."""
    v = number(name, value)
    if v is None:
        return None
    if v != round(v):
        say(f"Not yet: {name} should be a whole number, got {v:g}.")
        return None
    return int(round(v))


def flag(name: str, value) -> bool | None:
    """``value`` as ``True`` or ``False`` (a Python, numpy or one-element torch truth value), or
    ``None`` after saying what is wrong with it.

    Example:
        >>> import numpy as np
        >>> flag("ok", np.bool_(True)), flag("ok", torch.tensor(False))
        (True, False)
    """
    if value is None:
        say(f"Not answered yet: set {name} to True or False.")
        return None
    if isinstance(value, (torch.Tensor, np.ndarray)) and (value.dtype == torch.bool or value.dtype == np.bool_):
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        if size == 1:
            return bool(value.item())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    say(f"Not yet: {name} should be True or False, got {value!r}.")
    return None


def tensor(name: str, value, shape, meaning: str = "", hint: str = "") -> torch.Tensor | None:
    """``value`` (what ``name`` is or returned) as a float64 tensor of ``shape`` with finite
    entries; or ``None`` after saying what is wrong. ``meaning`` says what the shape stands for
    (``"one value per row"``); ``hint`` is added to the message about NaN or infinite entries.

    Example:
        >>> tensor("f", torch.ones(3), (3,)).dtype
        torch.float64
        >>> tensor("f", torch.ones(3, 1), (3,))
        Not yet: f has shape (3, 1), expected (3,). Remove the last dimension (for
        example with .squeeze(-1)).
        >>> tensor("ladj", torch.tensor(0.5), (3,), "one value per row")
        Not yet: ladj is a single number, expected shape (3,) (one value per row).
        Return one value per row, for example with x.new_full((len(x),), value).
    """
    shape = tuple(shape)
    what = f"{shape} ({meaning})" if meaning else f"{shape}"
    try:
        if isinstance(value, torch.Tensor):
            value = value.detach().as_subclass(torch.Tensor)
        t = torch.as_tensor(value, dtype=torch.float64)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        say(f"Not yet: {name} should be a tensor of shape {what}, got {type(value).__name__}.")
        return None
    if tuple(t.shape) != shape:
        if t.dim() == 0 and len(shape) >= 1:
            say(f"Not yet: {name} is a single number, expected shape {what}. Return one value per row, "
                "for example with x.new_full((len(x),), value).")
        elif tuple(t.shape) == (*shape, 1):
            say(f"Not yet: {name} has shape {tuple(t.shape)}, expected {what}. Remove the last dimension "
                "(for example with .squeeze(-1)).")
        else:
            say(f"Not yet: {name} has shape {tuple(t.shape)}, expected {what}.")
        return None
    bad = ~torch.isfinite(t)
    if bad.any():
        first = tuple(bad.nonzero()[0].tolist())
        say(f"Not yet: {name} has NaN or infinite values at {int(bad.sum())} of {t.numel()} entries, the first "
            f"at index {first}." + (f" {hint}" if hint else ""))
        return None
    return t


# --------------------------------------------------------------------------------------------
# comparing
# --------------------------------------------------------------------------------------------


def close(a, b, tol: float = 1e-6) -> bool:
    """``a`` equals ``b`` up to ``tol`` relative to ``1 + |b|``, entry by entry (numbers or
    tensors of one shape). Infinite or NaN values are close only to themselves.

    Example:
        >>> close(1.0, 1.0 + 1e-9), close(float("inf"), 1e308), close(float("inf"), float("inf"))
        (True, False, True)
    """
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        if a.shape != b.shape:
            return False
        finite = torch.isfinite(a) & torch.isfinite(b)
        same = (a == b) | (finite & ((a - b).abs() <= tol * (1 + b.abs())))
        return bool(same.all())
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b
    return abs(a - b) <= tol * (1 + abs(b))


def agrees(value: float, right: float, digits: int = 3) -> bool:
    """``value`` is ``right`` given to at least ``digits`` significant digits (rounded or more
    precise): ``1.10`` and ``1.0986`` both agree with :math:`\\ln 3`.

    Example:
        >>> agrees(1.10, math.log(3)), agrees(1.1, math.log(3), digits=2), agrees(1.2, math.log(3))
        (True, True, False)
        >>> agrees(0.370, 0.3700394), agrees(-14.19, -14.1894)
        (True, True)
    """
    if not (math.isfinite(value) and math.isfinite(right)):
        return value == right
    if right == 0:
        return abs(value) <= 0.5 * 10.0 ** (-digits)
    step = 10.0 ** (math.floor(math.log10(abs(right))) - digits + 1)
    return abs(value - right) <= 0.5 * step * (1 + 1e-9) + 1e-12 * abs(right)


def diagnose(got: torch.Tensor, truth: torch.Tensor, mistakes, what: str, tol: float = 1e-6) -> bool:
    """``got`` against the truth, then against each ``(wrong value, message)`` of a table of
    typical mistakes: say which one it matches, or where and by how much it is off."""
    if close(got, truth, tol):
        return True
    for wrong, message in mistakes:
        if close(got, wrong, tol):
            say("Not yet: " + message)
            return False
    diff = got - truth
    if diff.numel() > 1 and close(diff, diff.mean().expand_as(diff), tol):
        say(f"Not yet: {what} is off by the same constant {float(diff.mean()):+.4f} at every point. Check the "
            "normalizing constant of the base density (-0.5 log(2 pi) per dimension).")
        return False
    worst = int(diff.abs().argmax())
    say(f"Not yet: {what} differs from the right answer by up to {float(diff.abs().max()):.3g} (at entry "
        f"{worst}: got {float(got.flatten()[worst]):.4f}, expected {float(truth.flatten()[worst]):.4f}).")
    return False


def fresh_seed() -> int:
    """A seed for inputs drawn now, from the operating system (the global random state of
    torch, numpy and ``random`` is left alone)."""
    return int.from_bytes(os.urandom(4), "little")
