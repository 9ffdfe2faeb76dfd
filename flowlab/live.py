r"""A live training dashboard: choose a target and a flow, press Start, watch it learn.

:class:`Trainer` is an ipywidgets dashboard. Training runs in a background thread, so the
controls stay responsive; a second thread redraws the view (samples over the data, the
learned density, the loss curve) about fifteen times a second from a copy of the parameters.
Everything the buttons do is also a method, so notebooks and tests can drive it::

    trainer = fl.live.Trainer(target="circles")
    trainer.start()
    trainer.wait(steps=200)          # block until 200 steps are done
    trainer.stop()
    trainer.lr = 1e-3                # settings are attributes (and controls)
    trainer.reset()                  # a fresh flow with the current settings

Without a kernel (the rendered book) nothing can train: :meth:`Trainer.record` makes a
kernel-free replay of the same training (see :mod:`flowlab.replay`).

Targets are objects with a small interface: ``features``, ``points`` (drawn in grey),
``objective``, ``reference`` (best possible loss, or ``None``), ``to(device, dtype)``,
``loss(flow, batch_size, generator)`` and ``valid_nll(flow)``. :class:`DataTarget` learns
from samples by maximum likelihood, :class:`DensityTarget` learns an unnormalized density by
the reverse KL. The dashboard offers every data set of :data:`flowlab.targets.SAMPLERS`,
every density of :data:`flowlab.targets.DENSITIES`, and what is added to :data:`TARGETS`.
"""

from __future__ import annotations

import atexit
import copy
import html
import math
import threading
import time
import weakref
from collections.abc import Callable

import torch
from torch import Tensor

from . import targets as _targets
from ._checks import as_data, check_positive_float, check_positive_int
from .autoregressive import MAF, Autoregressive, SplineAutoregressive, _stack
from .conditioners import MaskedConditioner, RNNConditioner
from .core import Flow, StandardNormal
from .device import available_devices
from .replay import Painter, Replay, loss_svg, record
from .train import History, _diverged, reverse_kl
from .transformers import Affine, Integral, MonotonicNN, RQSpline

# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


class DataTarget:
    """A target known through samples, learned by maximum likelihood (the forward KL).

    ``sampler(n, seed=...)`` draws the data; ``n`` training points (seed 0) and ``n_valid``
    held-out points (seed 1) are drawn once. ``log_prob`` (optional) is the exact density;
    when given, the loss plot shows its NLL on the held-out points, the best any flow can do.
    """

    objective = "forward KL"
    reference_label = "true density"

    def __init__(self, name: str, sampler: Callable | None = None, log_prob: Callable | None = None,
                 n: int = 1000, n_valid: int = 1000, data=None):
        self.name = name
        if data is not None:
            self.x = as_data("data", data)
            self.xv = None
        else:
            self.x = as_data(name, sampler(check_positive_int("n", n), seed=0))
            self.xv = as_data(name, sampler(check_positive_int("n_valid", n_valid), seed=1))
        self.features = self.x.shape[1]
        self.reference = None
        if log_prob is not None and self.xv is not None:
            self.reference = float(-log_prob(self.xv).mean())

    @property
    def points(self) -> Tensor:
        """Points drawn in the picture (on the CPU)."""
        return self.x.detach().cpu()

    def to(self, device, dtype) -> "DataTarget":
        self.x = self.x.to(device=device, dtype=dtype)
        if self.xv is not None:
            self.xv = self.xv.to(device=device, dtype=dtype)
        return self

    def loss(self, flow: Flow, batch_size: int | None, generator: torch.Generator) -> Tensor:
        """Mean negative log-likelihood of a minibatch (the whole data set for ``None``)."""
        x = self.x
        if batch_size is not None and batch_size < len(x):
            x = x[torch.randint(len(x), (batch_size,), device=x.device, generator=generator)]
        return -flow.log_prob(x).mean()

    @torch.no_grad()
    def valid_nll(self, flow: Flow) -> float | None:
        return None if self.xv is None else float(-flow.log_prob(self.xv).mean())


class DensityTarget:
    r"""A target known through an unnormalized log-density, learned by the reverse KL:
    minimize :math:`\mathbb E_{x \sim q}[\log q(x) - \log \tilde p(x)]` with samples of the flow
    (:func:`flowlab.train.reverse_kl`).

    The loss is the reverse KL minus the log-normalizer :math:`\log Z`, so it can be negative;
    with ``log_z`` given, the loss plot marks :math:`-\log Z`, the best possible value. The
    trainer's ``batch_size`` is the number of samples per step (512 for ``None``). The picture
    shows, in grey, points drawn from the density on a fine grid; ``extent`` (half-width of the
    view) is found from the density when not given.
    """

    objective = "reverse KL"
    reference_label = "best possible"
    valid_label = ""

    def __init__(self, name: str, log_prob: Callable[[Tensor], Tensor], log_z: float | None = None,
                 extent: float | None = None, n_points: int = 1000):
        if not callable(log_prob):
            raise ValueError(f"log_prob must be a function of x of shape (n, 2), got {type(log_prob).__name__}.")
        self.name = name
        self.log_prob = log_prob
        self.features = 2
        self.reference = None if log_z is None else -float(log_z)
        # where the density lives: a fine grid on [-8, 8]^2, resampled by density
        cells, half = 160, 8.0
        width = 2 * half / cells
        c = (torch.arange(cells, dtype=torch.get_default_dtype()) + 0.5) * width - half
        grid = torch.cartesian_prod(c, c)
        with torch.no_grad():
            logp = log_prob(grid)
        if logp.shape != (len(grid),) or not torch.isfinite(logp).any():
            raise ValueError(f"log_prob of {name!r} must map (n, 2) points to n finite values.")
        mass = torch.softmax(torch.nan_to_num(logp, nan=-math.inf), 0)
        radius = grid.abs().amax(1)
        order = radius.argsort()
        inside = radius[order][torch.searchsorted(mass[order].cumsum(0), torch.tensor(0.995)).clamp(max=len(grid) - 1)]
        self.extent = extent if extent is not None else max(0.5, math.ceil(1.15 * float(inside) * 2) / 2)
        g = torch.Generator().manual_seed(0)
        pick = torch.multinomial(mass, check_positive_int("n_points", n_points), replacement=True, generator=g)
        self.points = grid[pick] + (torch.rand(n_points, 2, generator=g) - 0.5) * width

    def to(self, device, dtype) -> "DensityTarget":
        return self

    def loss(self, flow: Flow, batch_size: int | None, generator: torch.Generator) -> Tensor:
        return reverse_kl(flow, self.log_prob, batch_size or 512, generator=generator)

    def valid_nll(self, flow: Flow) -> float | None:
        return None


def _builtin_targets() -> dict[str, Callable[[], DataTarget | DensityTarget]]:
    found: dict = {}
    for name, sampler in _targets.SAMPLERS.items():
        log_prob = getattr(_targets, f"{sampler.__name__}_log_prob", None)
        found[name] = lambda name=name, sampler=sampler, log_prob=log_prob: DataTarget(name, sampler, log_prob)
    log_z = getattr(_targets, "LOG_Z", {})
    for name, log_prob in getattr(_targets, "DENSITIES", {}).items():
        found[name] = lambda name=name, log_prob=log_prob: DensityTarget(name, log_prob, log_z.get(name))
    return found


TARGETS: dict[str, Callable[[], DataTarget | DensityTarget]] = {}
"""Extra targets by name: each value is a function without arguments that returns a target
(for example ``lambda: DensityTarget("my banana", my_log_prob)``). The data sets of
:data:`flowlab.targets.SAMPLERS` and the densities of :data:`flowlab.targets.DENSITIES` are
always offered as well."""


def target_names() -> list[str]:
    """The names the ``target`` setting accepts."""
    return list({**_builtin_targets(), **TARGETS})


# --------------------------------------------------------------------------------------------
# Flow families
# --------------------------------------------------------------------------------------------


def _spline(features, layers, hidden, bins, bound, parts):
    return SplineAutoregressive(features, hidden=(hidden, hidden), bins=bins, bound=bound, layers=layers, parts=parts)


def _maf(features, layers, hidden, bins, bound, parts):
    return MAF(features, hidden=(hidden, hidden), layers=layers, parts=parts)


def _iaf(features, layers, hidden, bins, bound, parts):
    return MAF(features, hidden=(hidden, hidden), layers=layers, parts=parts).inv


_TRANSFORMERS = {
    "affine": lambda bins, bound: Affine(),
    "spline": lambda bins, bound: RQSpline(bins, bound),
    "monotonic NN": lambda bins, bound: MonotonicNN(),
    "integral (UMNN)": lambda bins, bound: Integral(nodes=16),
}


def _pair(transformer: str, conditioner: str) -> Callable:
    """A builder for ``layers`` layers of ``transformer`` with a masked or recurrent conditioner."""

    def build(features, layers, hidden, bins, bound, parts):
        def layer():
            if conditioner == "masked":
                c = MaskedConditioner(features, parts, (hidden, hidden))
            else:
                c = RNNConditioner(features, hidden=hidden)
            return Autoregressive(c, _TRANSFORMERS[transformer](bins, bound))

        return _stack(features, layers, layer)

    return build


FAMILIES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "spline autoregressive": (_spline, ("bins", "bound", "parts")),
    "MAF": (_maf, ("parts",)),
    "IAF (inverse MAF)": (_iaf, ("parts",)),
    "monotonic NN, masked": (_pair("monotonic NN", "masked"), ("parts",)),
    "integral (UMNN), masked": (_pair("integral (UMNN)", "masked"), ("parts",)),
    "affine, recurrent (GRU)": (_pair("affine", "RNN"), ()),
    "spline, recurrent (GRU)": (_pair("spline", "RNN"), ("bins", "bound")),
    "monotonic NN, recurrent (GRU)": (_pair("monotonic NN", "RNN"), ()),
    "integral (UMNN), recurrent (GRU)": (_pair("integral (UMNN)", "RNN"), ()),
}
"""Flow families by name: a builder ``(features, layers, hidden, bins, bound, parts) -> Transform``
and the names of the knobs it uses (the others are hidden in the dashboard). Every transformer
of :mod:`flowlab.transformers` appears with a masked conditioner (K parts) and with the
recurrent one; the integral transformer uses 16 quadrature nodes to stay interactive."""


# --------------------------------------------------------------------------------------------
# The dashboard
# --------------------------------------------------------------------------------------------

_MODEL = ("target", "family", "layers", "hidden", "bins", "bound", "parts")
_RUN = ("lr", "batch_size", "steps", "device")
_LABELS = {"lr": "learning rate", "batch_size": "batch size", "family": "flow family", "parts": "number of parts"}


def _label(name: str) -> str:
    return _LABELS.get(name, name)


_TRAINERS: "weakref.WeakSet[Trainer]" = weakref.WeakSet()  # every dashboard of this process


@atexit.register
def _stop_all() -> None:
    """Stop every dashboard's threads before the interpreter exits (a thread killed in the
    middle of a torch operation aborts the process)."""
    for trainer in list(_TRAINERS):
        trainer.stop(quiet=True)


class _Setting:
    """A setting of the trainer: an attribute that mirrors a control."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else obj._settings[self.name]

    def __set__(self, obj, value):
        obj._set(self.name, value)


class Trainer:
    """A dashboard that trains a 2-D flow live: controls, Start / Stop / Reset, and a view.

    Settings (each an attribute and a control): ``target`` (a name of :func:`target_names`,
    or an array of data points), ``family`` (a name of :data:`FAMILIES`: ``"spline
    autoregressive"``, ``"MAF"``, ``"IAF (inverse MAF)"``),
    ``layers``, ``hidden`` (width of the conditioner's two hidden layers), ``bins`` and
    ``bound`` (spline only), ``parts`` (K of the masked conditioner; ``None`` is fully
    autoregressive), ``lr``, ``batch_size`` (``None``: all the data at every step),
    ``steps`` and ``device`` (default: the fastest of :func:`flowlab.available_devices`).

    Changing a flow or target setting builds a new flow; changing ``lr``, ``batch_size``,
    ``steps`` or ``device`` keeps the current one. Any change while training stops the
    training first. Start trains until the step counter reaches ``steps`` (or ``steps``
    more when it is already there).

    Only one dashboard trains at a time: Start stops any other one (for example the dashboard
    of a cell that was run again).

    Mistakes (an impossible setting, a diverging loss, a failing device) are shown as a
    message in the status line (also in :attr:`message`), never raised; the flow keeps its
    last good parameters.

    ``threads`` is the number of CPU threads each background thread may use (small 2-D
    flows train fastest with one); ``fps`` caps the view updates per second; the density is
    evaluated on a ``grid x grid`` lattice and drawn ``size`` pixels wide.

    Example:
        >>> import flowlab as fl
        >>> trainer = fl.live.Trainer(target="moons", family="MAF", steps=20)
        >>> trainer.start(); trainer.wait(timeout=60)
        True
        >>> trainer.step_count
        20
    """

    target = _Setting()
    family = _Setting()
    layers = _Setting()
    hidden = _Setting()
    bins = _Setting()
    bound = _Setting()
    parts = _Setting()
    lr = _Setting()
    batch_size = _Setting()
    steps = _Setting()
    device = _Setting()

    def __init__(self, target="circles", family: str = "spline autoregressive", layers: int = 4, hidden: int = 64,
                 bins: int = 8, bound: float = 4.0, parts: int | None = None, lr: float = 5e-3,
                 batch_size: int | None = 32, steps: int = 2000, device=None, *, seed: int = 0,
                 threads: int = 1, fps: float = 15.0, valid_every: int = 20, size: int = 224, grid: int = 48):
        self.seed = seed
        self.threads = check_positive_int("threads", threads)
        self.fps = check_positive_float("fps", fps)
        self.valid_every = check_positive_int("valid_every", valid_every)
        self.size = size
        self.grid = grid
        self.message = ""
        self.error: BaseException | None = None  # the last exception behind a message, for debugging
        self.step_count = 0
        self.history = History()
        self.flow: Flow | None = None
        self._target = None
        self._custom = None
        if not isinstance(target, str):
            self._custom = target
            target = "custom data"
        devices = available_devices()
        self._settings = dict(target=target, family=family, layers=layers, hidden=hidden, bins=bins, bound=bound,
                              parts=parts, lr=lr, batch_size=batch_size, steps=steps,
                              device=devices[0] if device is None else str(device))
        self._lock = threading.Lock()  # guards the parameters and the history while they change
        self._draw_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._train_thread: threading.Thread | None = None
        self._view_thread: threading.Thread | None = None
        self._optimizer = None
        self._total = 0
        self._speed = 0.0
        self._run_speed = 0.0
        self._frame_times: list[tuple[float, int]] = []  # (time, step) of each view update
        self._start_time = 0.0
        self._checkpoint = None
        self._syncing = False
        self._falling_back = False
        self._build_widgets(devices)
        self._rebuild(initial=True)
        self._good = dict(self._settings)  # the settings of the current flow and run
        self._good_custom = self._custom
        for name in self._settings:
            self._sync_control(name, extend=True)

    # ------------------------------------------------------------------ widgets

    def _build_widgets(self, devices):
        import ipywidgets as w

        s = self._settings
        style = {"description_width": "initial"}
        names = target_names() + (["custom data"] if self._custom is not None else [])
        c = {
            "target": w.Dropdown(options=names, description="target", style=style),
            "family": w.Dropdown(options=list(FAMILIES), description="flow", style=style),
            "layers": w.IntSlider(min=1, max=8, description="layers", style=style),
            "hidden": w.Dropdown(options=[8, 16, 32, 64, 128, 256], description="hidden", style=style),
            "bins": w.IntSlider(min=1, max=32, description="bins", style=style),
            "bound": w.FloatSlider(min=1.0, max=8.0, step=0.5, description="bound", style=style),
            "parts": w.Dropdown(options=[("K = D (autoregressive)", None), ("K = 2 (coupling)", 2),
                                         ("K = 1 (elementwise)", 1)],
                                description="parts", style=style),
            "lr": w.FloatLogSlider(base=10, min=-4, max=0, step=0.1, readout_format=".1e", description="learning rate",
                                   style=style),
            "batch_size": w.Dropdown(options=[("all data", None), 32, 64, 128, 256, 512], description="batch", style=style),
            "steps": w.BoundedIntText(min=1, max=1_000_000, step=100, description="steps", style=style,
                                      layout=w.Layout(width="160px")),
            "device": w.Dropdown(options=devices, description="device", style=style),
        }
        for name, control in c.items():
            try:
                control.value = s[name]
            except Exception:  # noqa: BLE001 - a value the control cannot show; the check below reports it
                pass
            control.observe(self._on_control, names="value")
        self._controls = c
        self._start_button = w.Button(description="Start", button_style="success")
        self._stop_button = w.Button(description="Stop", button_style="warning")
        self._reset_button = w.Button(description="Reset")
        self._start_button.on_click(lambda _: self.start())
        self._stop_button.on_click(lambda _: self.stop())
        self._reset_button.on_click(lambda _: self.reset())
        self._status = w.HTML()
        self._info = w.HTML()
        self._image = w.Image(format="png")
        self._plot = w.HTML()
        self._caption = w.HTML()
        row = dict(layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([
            w.HBox([c["target"], c["family"], c["layers"], c["hidden"]], **row),
            w.HBox([c["bins"], c["bound"], c["parts"]], **row),
            w.HBox([c["lr"], c["batch_size"], c["steps"], c["device"]], **row),
            w.HBox([self._start_button, self._stop_button, self._reset_button, self._status], **row),
            self._caption, self._image, self._plot, self._info,
        ])
        self._show_family_knobs()

    def _show_family_knobs(self):
        knobs = FAMILIES.get(self._settings["family"], (None, ()))[1]
        for name in ("bins", "bound", "parts"):
            self._controls[name].layout.display = None if name in knobs else "none"

    def _say(self, text: str, error: bool = False) -> None:
        text = text[:1].upper() + text[1:]
        self.message = text
        color = "#a11" if error else "#333"
        self._status.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _fail(self, text: str, error: BaseException | None = None) -> None:
        self.error = error
        self._say(text, error=True)

    # ------------------------------------------------------------------ settings

    def _set(self, name: str, value) -> None:
        if name not in self._settings:
            raise AttributeError(name)
        if name == "target" and not isinstance(value, str):
            self._custom = value
            value = "custom data"
            control = self._controls["target"]
            if "custom data" not in control.options:
                self._syncing = True
                try:
                    control.options = list(control.options) + ["custom data"]
                finally:
                    self._syncing = False
        self._settings[name] = value
        self._sync_control(name)
        self._changed(name)

    def _on_control(self, change) -> None:
        if self._syncing:
            return
        name = next(k for k, c in self._controls.items() if c is change["owner"])
        self._settings[name] = change["new"]
        self._changed(name)

    def _changed(self, name: str) -> None:
        note = ""
        if self.running:
            self.stop(quiet=True)
            note = f"Training stopped: the {_label(name)} changed. "
        if name in _MODEL:
            ok = self._rebuild()
        else:
            problem = self._check_run()
            ok = not problem
            if problem:
                self._fail(problem)
        if ok:
            self._good[name] = self._settings[name]
            self._sync_control(name, extend=True)
            if name == "target" and self._settings[name] == "custom data":
                self._good_custom = self._custom
            if name in _MODEL:
                self._say(note + "A new flow was built; press Start to train it.")
            else:
                self._say(note + f"The {_label(name)} is now {self._settings[name]}.")
        else:
            # keep the setting that works, and say why the new one does not
            self._settings[name] = self._good[name]
            if name == "target":
                self._custom = self._good_custom
            self._sync_control(name)
            self._fail(f"{note}{self.message} Keeping {_label(name)} = {self._good[name]!r}.", self.error)
        if name == "family":
            self._show_family_knobs()

    def _sync_control(self, name: str, extend: bool = False) -> None:
        """Show the setting in its control; with ``extend``, widen the control's range or
        options first when a working value lies outside them (set from Python)."""
        import ipywidgets as w

        control, value = self._controls[name], self._settings[name]
        self._syncing = True
        try:
            if extend and isinstance(control, w.Dropdown) and value not in control._options_values:
                control.options = list(zip(control._options_labels, control._options_values)) + [(str(value), value)]
            elif extend and isinstance(control, w.FloatLogSlider) and isinstance(value, (int, float)) and value > 0:
                exponent = math.log10(value)
                control.min, control.max = min(control.min, math.floor(exponent)), max(control.max, math.ceil(exponent))
            elif (extend and isinstance(control, (w.IntSlider, w.FloatSlider, w.BoundedIntText))
                  and isinstance(value, (int, float))):
                control.min, control.max = min(control.min, value), max(control.max, value)
            control.value = value
        except Exception:  # noqa: BLE001 - a value the control cannot show
            pass
        finally:
            self._syncing = False

    def _check_run(self) -> str:
        """What is wrong with the run settings ('' when nothing)."""
        for name in _RUN:
            problem = self._run_problem(name)
            if problem:
                return problem
        return ""

    def _run_problem(self, name: str) -> str:
        value = self._settings[name]
        try:
            if name == "lr":
                check_positive_float("the learning rate", value)
            elif name == "steps":
                check_positive_int("steps", value)
            elif name == "batch_size" and value is not None:
                check_positive_int("the batch size", value)
        except ValueError as e:
            return str(e)
        if name != "device":
            return ""
        devices = available_devices()
        try:
            device = torch.device(value)
            device = f"{device.type}:0" if device.type == "cuda" and device.index is None else str(device)
        except (RuntimeError, TypeError, ValueError):
            device = repr(value)
        if device not in devices:
            self._controls["device"].options = devices
            return f"The device {device} is not available here; choose one of: {', '.join(devices)}."
        self._settings["device"] = device
        return ""

    # ------------------------------------------------------------------ model

    def _make_target(self):
        name = self._settings["target"]
        if name == "custom data" and self._custom is not None:
            return DataTarget("custom data", data=self._custom)
        makers = {**_builtin_targets(), **TARGETS}
        if name not in makers:
            raise ValueError(f"unknown target {name!r}; choose one of: {', '.join(makers)}.")
        return makers[name]()

    def _make_flow(self, features: int) -> Flow:
        s = self._settings
        if s["family"] not in FAMILIES:
            raise ValueError(f"unknown flow family {s['family']!r}; choose one of: {', '.join(FAMILIES)}.")
        build = FAMILIES[s["family"]][0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            transform = build(features, s["layers"], s["hidden"], s["bins"], s["bound"], s["parts"])
        return Flow(transform, StandardNormal(features))

    def _rebuild(self, initial: bool = False) -> bool:
        """A new flow and target from the settings; on a mistake keep the old ones and say why."""
        try:
            target = self._make_target()
            if target.features != 2:
                raise ValueError(f"the dashboard trains 2-D flows; the target has {target.features} features.")
            flow = self._make_flow(target.features)
            painter = Painter(target.points, extent=getattr(target, "extent", None), grid=self.grid, size=self.size,
                              seed=self.seed)
            problem = self._check_run()
            device = torch.device(self._settings["device"]) if not problem else torch.device("cpu")
            flow.to(device)
            target.to(device, torch.get_default_dtype())
        except Exception as e:  # noqa: BLE001 - any failure to build is the user's setting: say it
            if initial and self.flow is None and not self._falling_back:
                self._fallback(e)
                return False
            if self.flow is None:
                raise  # the default settings themselves fail: a bug, not a user's choice
            self._fail(f"This setting cannot work: {e}", e)
            return False
        with self._lock:
            self.flow, self._target, self._painter = flow, target, painter
            self._shadow = copy.deepcopy(flow).requires_grad_(False)
            self._params = list(flow.parameters())
            self._shadow_params = list(self._shadow.parameters())
            self.step_count = 0
            self._total = 0
            self._speed = 0.0
            self.history = History()
            # made here, not at Start: the first Adam in a process imports much of torch (seconds)
            self._optimizer = torch.optim.Adam(self._params, lr=1e-3)
            self._checkpoint = None
        self._caption.value = (
            f'<span style="color:#555">left: data (grey) and samples of the flow (red); right: density of the flow; '
            f"both on [{-painter.extent:g}, {painter.extent:g}]&sup2;. Objective: {target.objective}.</span>"
        )
        self._draw()
        if initial:
            defaults = dict(lr=5e-3, batch_size=32, steps=2000, device=available_devices()[0])
            problems = []
            for name in _RUN:
                problem = self._run_problem(name)
                if problem:
                    problems.append(f"{problem} Using {_label(name)} {defaults[name]!r}.")
                    self._settings[name] = defaults[name]
                    self._sync_control(name)
            self._fail(" ".join(problems)) if problems else self._say("Ready: press Start.")
        return True

    def _fallback(self, error: BaseException) -> None:
        """The constructor's settings cannot work: show the default dashboard and say why."""
        self._settings.update(target="circles", family="spline autoregressive", layers=4, hidden=64, bins=8,
                              bound=4.0, parts=None)
        self._custom = None
        self._falling_back = True
        self._rebuild(initial=True)
        more = "" if self.message.startswith("Ready") else " " + self.message
        self._fail(f"These settings cannot work: {error} Showing the default flow instead.{more}", error)

    # ------------------------------------------------------------------ drawing

    def _draw(self) -> None:
        """Redraw the view from a copy of the current parameters (any thread)."""
        with self._draw_lock:
            with self._lock:
                torch._foreach_copy_(self._shadow_params, [p.detach() for p in self._params])
                n = self.step_count
                nv = len(self.history.valid_step)
                total = max(self._total, n)
            logp, samples = self._painter.evaluate(self._shadow)
            if self._shadow_params and self._shadow_params[0].device.type != "cpu":
                self._checkpoint = {k: v.detach().cpu() for k, v in self._shadow.state_dict().items()}
            h = self.history
            self._image.value = self._painter.draw(logp, samples)
            self._plot.value = loss_svg(h.loss[:n], h.valid_step[:nv], h.valid_nll[:nv], self._target.reference,
                                        total or self._settings["steps"], reference_label=self._target.reference_label)
            parts = [f"step {n}" + (f" of {total}" if total else "")]
            if self.running or self._speed:
                parts.append(f"{self._speed:.0f} steps/s")
            if n:
                parts.append(f"loss {h.loss[n - 1]:.3f}")
            if nv:
                parts.append(f"valid NLL {h.valid_nll[nv - 1]:.3f}")
            if self._target.reference is not None:
                parts.append(f"{self._target.reference_label} {self._target.reference:.3f}")
            self._info.value = '<span style="font-variant-numeric:tabular-nums">' + " \u00b7 ".join(parts) + "</span>"
            self._frame_times.append((time.perf_counter(), n))

    def _view_loop(self) -> None:
        """Redraw while training runs, at most ``fps`` times a second. When a picture takes
        more than half the frame time (a slow machine, a big flow), the density grid gets
        coarser; when it is quick again, finer, up to ``grid``."""
        torch.set_num_threads(self.threads)
        interval = 1.0 / self.fps
        last = -1
        while True:
            done = self._done.is_set()
            t0 = time.perf_counter()
            if self.step_count != last or done:
                last = self.step_count
                if done and self._painter.grid != self.grid:
                    self._painter.set_grid(self.grid)  # the picture that stays: full resolution
                try:
                    self._draw()
                except Exception as e:  # noqa: BLE001 - a failed picture must not kill the dashboard
                    self.error = e
                took = time.perf_counter() - t0
                g = self._painter.grid
                if took > 0.5 * interval and g > 24:
                    self._painter.set_grid(max(24, int(g * 0.75)))
                elif took < 0.2 * interval and g < self.grid:
                    self._painter.set_grid(min(self.grid, g + 4))
            if done:
                return
            self._done.wait(max(0.0, interval - (time.perf_counter() - t0)))

    # ------------------------------------------------------------------ training

    @property
    def running(self) -> bool:
        """Whether the training thread is running."""
        return not self._done.is_set()

    def start(self) -> None:
        """Start (or continue) training in the background; returns at once."""
        if self.running or self.flow is None:
            return
        started = time.perf_counter()
        problem = self._check_run()
        if problem:
            self._fail(problem)
            return
        s = self._settings
        device = torch.device(s["device"])
        try:
            if self._params and self._params[0].device != device or self._optimizer is None:
                self.flow.to(device)
                self._shadow.to(device)
                self._target.to(device, self._params[0].dtype)
                self._optimizer = torch.optim.Adam(self._params, lr=s["lr"])
            for group in self._optimizer.param_groups:
                group["lr"] = float(s["lr"])
        except Exception as e:  # noqa: BLE001 - a device that fails: say it, keep the flow
            self._fail(f"Cannot train on {device}: {e}", e)
            return
        for other in list(_TRAINERS):  # one training at a time: a re-run cell leaves its old dashboard behind
            if other is not self and other.running:
                other.stop(quiet=True)
                other._say(f"Stopped at step {other.step_count}: another dashboard started training.")
        _TRAINERS.add(self)
        steps = int(s["steps"])
        self._total = steps if self.step_count < steps else self.step_count + steps
        self.error = None
        self._stop_event.clear()
        self._done.clear()
        self._frame_times = []
        self._start_time = started
        self._speed = 0.0
        self._say(f"Training on {device}...")
        self._train_thread = threading.Thread(target=self._train_loop, args=(self._total, s["batch_size"]), daemon=True)
        self._view_thread = threading.Thread(target=self._view_loop, daemon=True)
        self._train_thread.start()
        self._view_thread.start()

    def _train_loop(self, total: int, batch_size: int | None) -> None:
        torch.set_num_threads(self.threads)
        flow, target, optimizer, params = self.flow, self._target, self._optimizer, self._params
        good = [p.detach().clone() for p in params]
        device = params[0].device
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed + 7919 * self.step_count)
        final = ""
        error = False
        lowest = float("inf")  # the lowest loss of this run, for fit's divergence rule
        window_start, window_steps = time.perf_counter(), 0
        run_start, run_first = window_start, self.step_count
        try:
            flow.train()
            while self.step_count < total and not self._stop_event.is_set():
                loss = target.loss(flow, batch_size, generator)
                value = float(loss.detach())
                if _diverged(value, lowest):  # the same rule as fl.fit: non-finite, or far above the lowest
                    with self._lock, torch.no_grad():
                        torch._foreach_copy_(params, good)
                    final = f"Training stopped at step {self.step_count}: the loss became {value:.4g}. " + (
                        "The flow keeps its last good parameters. Try a smaller learning rate."
                        if self.step_count else
                        "The flow cannot fit these data as they are: are they standardized (mean 0, variance 1)?")
                    error = True
                    break
                lowest = min(lowest, value)
                torch._foreach_copy_(good, [p.detach() for p in params])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                with self._lock:
                    optimizer.step()
                    self.history.loss.append(value)
                    self.step_count += 1
                if self.step_count % self.valid_every == 0 or self.step_count == total:
                    nll = target.valid_nll(flow)
                    if nll is not None:
                        with self._lock:
                            h = self.history
                            if not h.valid_nll or nll < min(h.valid_nll):
                                h.best_step = self.step_count
                            h.valid_step.append(self.step_count)
                            h.valid_nll.append(nll)
                window_steps += 1
                now = time.perf_counter()
                if now - window_start >= 0.5:
                    self._speed = window_steps / (now - window_start)
                    window_start, window_steps = now, 0
            if any(not bool(torch.isfinite(p).all()) for p in params):
                with self._lock, torch.no_grad():
                    torch._foreach_copy_(params, good)
                final = ("The last update gave non-finite parameters; they were rolled back. "
                         "Try a smaller learning rate.")
                error = True
        except Exception as e:  # noqa: BLE001 - shown as a message, never as a traceback
            self.error = e
            error = True
            final = self._recover(e, params, good)
        finally:
            flow.eval()
            now = time.perf_counter()
            self.history.time += now - self._start_time
            self._run_speed = (self.step_count - run_first) / (now - run_start)
            if not self._speed or now - run_start < 2.0:
                self._speed = self._run_speed
            if not final:
                if self.step_count >= total:
                    final = f"Done: {self.step_count} steps."
                else:
                    final = f"Stopped at step {self.step_count}."
            self.history.message = final if error else ""
            self._fail(final, self.error) if error else self._say(final)
            self._done.set()

    def _recover(self, e: BaseException, params, good) -> str:
        try:
            with self._lock, torch.no_grad():
                torch._foreach_copy_(params, good)
            return (f"Training stopped at step {self.step_count}: {type(e).__name__}: {e} "
                    "The flow keeps its last good parameters.")
        except Exception:  # noqa: BLE001 - the device itself is gone: fall back to the CPU copy
            if self._checkpoint is None:
                return f"Training stopped: {type(e).__name__}: {e} The device failed; press Reset."
            with self._lock:
                self.flow.to("cpu")
                self.flow.load_state_dict(self._checkpoint)
                self._shadow.to("cpu")
                self._target.to("cpu", torch.get_default_dtype())
                self._optimizer = None
            self._settings["device"] = self._good["device"] = "cpu"
            self._sync_control("device")
            return (f"Training stopped: the device failed ({type(e).__name__}: {e}). The flow was moved to the "
                    "CPU with the parameters of the last picture.")

    def stop(self, quiet: bool = False) -> None:
        """Stop training (the current step finishes) and wait for the background threads."""
        self._stop_event.set()
        me = threading.current_thread()
        for t in (self._train_thread, self._view_thread):
            if t is not None and t is not me:
                t.join(timeout=30)
        if not quiet and not self.error and self.message.startswith("Training on"):
            self._say(f"Stopped at step {self.step_count}.")

    def wait(self, steps: int | None = None, timeout: float = 60.0) -> bool:
        """Block until training ends (``steps=None``) or ``step_count >= steps``.

        Returns ``True`` when that happened, ``False`` after ``timeout`` seconds or when training
        ended before reaching ``steps``.
        """
        deadline = time.perf_counter() + timeout
        while True:
            if steps is not None and self.step_count >= steps:
                return True
            if not self.running:
                # the view thread draws the last picture after training ends
                if self._view_thread is not None:
                    self._view_thread.join(timeout=max(0.0, deadline - time.perf_counter()))
                return steps is None or self.step_count >= steps
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self._done.wait(min(left, 0.01))

    def reset(self) -> None:
        """Stop, then build a fresh flow from the current settings (same seed, same start)."""
        self.stop(quiet=True)
        self.error = None
        if self._rebuild():
            self._say("Reset: a fresh flow; press Start.")

    @property
    def picture(self) -> bytes:
        """The PNG shown in the view (samples over the data | density of the flow)."""
        return bytes(self._image.value)

    def stats(self) -> dict:
        """View and training speed of the last run: ``frames`` (view updates), ``updates_per_s``,
        ``first_frame_s`` (seconds from :meth:`start` to the first update),
        ``first_step_frame_s`` (to the first update that shows a trained step) and ``steps_per_s``."""
        times = [t - self._start_time for t, _ in self._frame_times]
        first_step = self._frame_times[0][1] if self._frame_times else 0
        moved = [t - self._start_time for t, n in self._frame_times if n > first_step]
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return {
            "frames": len(times),
            "updates_per_s": (len(times) - 1) / span if span > 0 else 0.0,
            "first_frame_s": times[0] if times else float("nan"),
            "first_step_frame_s": moved[0] if moved else float("nan"),
            "steps_per_s": self._run_speed if not self.running else self._speed,
        }

    # ------------------------------------------------------------------ replay

    def record(self, steps: int | None = None, every: int | None = None, size: int = 200, title: str | None = None,
               **kwargs) -> Replay:
        """Train a fresh flow with the current settings (the dashboard's own flow is left alone)
        and return a kernel-free :class:`flowlab.replay.Replay` of the run, for the rendered book.

        ``steps`` defaults to the ``steps`` setting, ``every`` to a snapshot every ``steps / 50``
        steps. Data targets train with :func:`flowlab.fit` (through :func:`flowlab.replay.record`,
        which takes the further keywords); density targets with the reverse KL. Raises
        ``ValueError`` for settings that cannot work (this is for notebook code, not the buttons).
        """
        problem = self._check_run()
        if problem:
            raise ValueError(problem)
        s = self._settings
        steps = check_positive_int("steps", int(s["steps"]) if steps is None else steps)
        every = check_positive_int("every", every or max(1, steps // 50))
        target = self._make_target()
        flow = self._make_flow(target.features)
        if title is None:
            title = f"{s['family']} on {target.name}, {steps} steps"
        if isinstance(target, DataTarget):
            return record(flow, target.x, steps=steps, every=every, lr=s["lr"], batch_size=s["batch_size"],
                          valid=target.xv, device=s["device"], reference=target.reference, size=size,
                          valid_every=self.valid_every, seed=self.seed, title=title, **kwargs)
        return self._record_density(target, flow, steps, every, size, title)

    def _record_density(self, target, flow: Flow, steps: int, every: int, size: int, title: str) -> Replay:
        """The reverse-KL counterpart of :func:`flowlab.replay.record` (a plain training loop)."""
        s = self._settings
        painter = Painter(target.points, extent=target.extent, size=size, seed=self.seed)
        flow.to(s["device"])
        params = list(flow.parameters())
        optimizer = torch.optim.Adam(params, lr=s["lr"])
        generator = torch.Generator(device=params[0].device).manual_seed(self.seed)
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        frames, marks, losses, message = [painter(flow)], [0], [], ""
        try:
            for step in range(1, steps + 1):
                loss = target.loss(flow, s["batch_size"], generator)
                value = float(loss.detach())
                if not math.isfinite(value):
                    message = f"training stopped at step {step - 1}: the loss became {value}."
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(value)
                if step % every == 0 or step == steps:
                    frames.append(painter(flow))
                    marks.append(step)
        finally:
            torch.set_num_threads(before)
        return Replay(frames, marks, losses, reference=target.reference, extent=painter.extent, title=title,
                      message=message, reference_label=target.reference_label)

    # ------------------------------------------------------------------ display

    def _repr_mimebundle_(self, **kwargs):
        data = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        data["text/html"] = (
            '<div style="border:1px solid #ccc;padding:6px 10px;font:13px sans-serif;color:#333">'
            f"<strong>Live trainer</strong> ({html.escape(self._settings['family'])} on "
            f"{html.escape(str(self._settings['target']))}): it needs a running Python kernel, so it is not "
            "active on this page. Run the notebook on Binder or Colab (rocket icon at the top) or locally "
            "to train it; a recording of the same training plays without a kernel.</div>"
        )
        return data

    def __repr__(self) -> str:
        s = self._settings
        return (f"Trainer(target={s['target']!r}, family={s['family']!r}, layers={s['layers']}, hidden={s['hidden']}, "
                f"lr={s['lr']}, steps={s['steps']}, device={s['device']!r}, step_count={self.step_count})")
