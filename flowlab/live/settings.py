"""The dashboard's settings: their defaults, and one check for each, applied when it is set.

A value that fails its check raises a ``ValueError`` (or ``TypeError``) that says what to pass;
the session turns it into a message and keeps the setting that works. Every setting that asks
for work has a cap (:data:`CAPS`), so that no value typed in Python can freeze the dashboard.
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
LABELS = {"lr": "learning rate", "batch_size": "batch size", "family": "flow family", "parts": "number of parts",
          "steps": "number of steps", "layers": "number of layers", "bins": "number of bins",
          "hidden": "width of the hidden layers", "mixing": "mixing layer"}
DEFAULTS = dict(target="circles", family="spline autoregressive", layers=4, hidden=64, bins=8, bound=4.0, parts=None,
                mixing="reverse", seed=0, lr=5e-3, batch_size=32, steps=2000, device=None)
"""The default of every setting (``device=None``: the fastest of :func:`flowlab.available_devices`)."""
CAPS = dict(layers=16, hidden=1024, bins=64, bound=100.0, parts=1024, lr=1.0, batch_size=65536, steps=1_000_000)
"""The largest value of each setting that asks for work: beyond them a flow trains or draws too
slowly to watch, or does not fit in memory."""
_WHY = "(larger values train or draw too slowly to watch)"


def label(name: str) -> str:
    """The words for a setting in messages ("learning rate" for ``lr``)."""
    return LABELS.get(name, name)


def _capped_int(name: str, minimum: int = 1, hint: str = _WHY):
    return lambda v: check_positive_int(name, v, minimum, CAPS[name], hint)


def _optional(check):
    return lambda v: None if v is None else check(v)


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
    "layers": _capped_int("layers"), "hidden": _capped_int("hidden"),
    "bins": _capped_int("bins", 2, "(a spline of one bin is the identity map; more bins draw too slowly)"),
    "bound": lambda v: check_positive_float("bound", v, CAPS["bound"]),
    "parts": _optional(_capped_int("parts")), "seed": _seed,
    "mixing": lambda v: check_choice("mixing", v, MIXINGS, "mixing layer"),
    "lr": lambda v: check_positive_float("lr (the learning rate)", v, CAPS["lr"]),
    "batch_size": _optional(_capped_int("batch_size", hint="(None uses all the data at every step)")),
    "steps": _capped_int("steps", hint="(press Start again to train further)"),
    "device": _device,
}
"""One check per setting, applied when it is set, whatever the current family."""


def describe(name: str, value) -> str:
    """A sentence that says what a run setting is now ("the number of steps is now 1")."""
    if name == "batch_size" and value is None:
        return "each step now uses all the data"
    return f"the {label(name)} is now {value:g}" if isinstance(value, float) else f"the {label(name)} is now {value}"


def sentence(text: str) -> str:
    """``text`` with a capital first letter."""
    return text[:1].upper() + text[1:]


class Setting:
    """A setting as an attribute: reads ``obj.settings[name]``, writes through ``obj.set(name, value)``
    (which checks it, see :data:`CHECKS`)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else obj.settings[self.name]

    def __set__(self, obj, value):
        obj.set(self.name, value)
