"""The dashboard's settings: one check for each, applied when it is set (whatever the family).

A value that fails its check raises a ``ValueError`` (or ``TypeError``) that says what to pass;
the session turns it into a message and keeps the setting that works.
"""

from __future__ import annotations

from .._checks import as_data, check_choice, check_positive_float, check_positive_int, check_seed
from ..device import check_device
from ..linear import MIXINGS
from .choices import FAMILIES, target_names

MODEL = ("target", "family", "layers", "hidden", "bins", "bound", "parts", "mixing", "seed")
"""Settings that define the flow: changing one builds a new flow."""
RUN = ("lr", "batch_size", "steps", "device")
"""Settings of the run: changing one keeps the current flow."""
LABELS = {"lr": "learning rate", "batch_size": "batch size", "family": "flow family", "parts": "number of parts"}
DEFAULTS = dict(target="circles", family="spline autoregressive", layers=4, hidden=64, bins=8, bound=4.0, parts=None,
                mixing="reverse", seed=0, lr=5e-3, batch_size=32, steps=2000)


def label(name: str) -> str:
    return LABELS.get(name, name)


def _optional_int(name: str, value) -> int | None:
    return None if value is None else check_positive_int(name, value)


def _target(value):
    if isinstance(value, str):
        if value != "custom data" and value not in target_names():
            raise ValueError(f"unknown target {value!r}; choose one of: {', '.join(target_names())}.")
        return value
    return as_data("the target data", value, 2)


def _family(value):
    if value not in FAMILIES:
        raise ValueError(f"unknown flow family {value!r}; choose one of: {', '.join(FAMILIES)}.")
    return value


def _device(value) -> str:
    return str(check_device(value))


def _seed(value) -> int:
    if value is None:
        raise ValueError("seed must be an integer >= 0; the dashboard needs a fixed seed so that Reset repeats a run.")
    return check_seed("seed", value)


CHECKS = {
    "target": _target, "family": _family,
    "layers": lambda v: check_positive_int("layers", v), "hidden": lambda v: check_positive_int("hidden", v),
    "bins": lambda v: check_positive_int("bins", v), "bound": lambda v: check_positive_float("bound", v),
    "parts": lambda v: _optional_int("parts", v), "seed": _seed,
    "mixing": lambda v: check_choice("mixing", v, MIXINGS, "mixing layer"),
    "lr": lambda v: check_positive_float("the learning rate", v),
    "batch_size": lambda v: _optional_int("the batch size", v),
    "steps": lambda v: check_positive_int("steps", v), "device": _device,
}
"""One check per setting, applied when it is set, whatever the current family."""


class Setting:
    """A setting of the session: an attribute, checked when set (see :data:`CHECKS`)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else obj._settings[self.name]

    def __set__(self, obj, value):
        obj.set(self.name, value)
