"""Auto-checkers that students call from exercise cells, one module per chapter.

Each checker takes the student's answer, compares it with a value it computes itself (on inputs
it draws itself, after the student's code has run), says what it found and returns a true
verdict when the answer is right. The feedback module, ``_feedback``, holds what they share.
:func:`answered` only says whether answers are in a form that can be graded, without judging
them (the self-check of graded multiple-choice questions).
"""

import numpy as np
import torch

from . import (autoregressive, change_of_variables, circles, composition, continuous, flow_matching, jacobians,
               linear, objectives, practice, residual, tarflow, universality)
from ._feedback import Verdict, flag, number, say, tensor


def answered(choices=None, **answers) -> Verdict:
    """Say whether each answer is in a gradable form (a number, an array of numbers,
    ``True``/``False``, a dict of those, or one of ``choices``), without saying whether it is
    right: it is graded after submission.

    Example:
        >>> answered(prediction="x2 first", choices=("x1 first", "x2 first"))
        Recorded: prediction = 'x2 first'. It is graded after you submit.
        True
        >>> answered(det=None)
        Not answered yet: give det a value (it is still None).
        False
    """
    ok = True
    for name, value in answers.items():
        if choices is not None:
            if value not in choices:
                say(f"Not answered yet: {name} should be one of {', '.join(map(repr, choices))}, got {value!r}.")
                ok = False
            continue
        if isinstance(value, dict):
            ok = all(flag(f"{name}[{k!r}]", v) is not None for k, v in value.items()) and ok
        elif isinstance(value, (bool, np.bool_)):
            continue
        elif isinstance(value, (list, tuple, np.ndarray, torch.Tensor)) and np.size(np.asarray(value, dtype=object)) > 1:
            ok = tensor(name, value, np.shape(np.asarray(value, dtype=object))) is not None and ok
        elif number(name, value) is None:
            ok = False
    if ok:
        shown = ", ".join(f"{k} = {v!r}" if choices is not None else k for k, v in answers.items())
        say(f"Recorded: {shown}. It is graded after you submit.")
    return Verdict(ok)


__all__ = ["answered", "autoregressive", "change_of_variables", "circles", "composition", "continuous",
           "flow_matching", "jacobians", "linear", "objectives", "practice", "residual", "universality"]
