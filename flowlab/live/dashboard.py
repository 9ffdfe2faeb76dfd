"""The dashboard's widgets: controls, Start / Stop / Reset, the status, the picture and the loss.

:class:`Trainer` holds a :class:`~flowlab.live.session.Session` (:attr:`Trainer.session`) and
shows it: every button and control calls the session's methods and settings, and the session
calls back after every new picture and message. Notebooks and tests drive it from Python
through the same methods and attributes.
"""

from __future__ import annotations

import html
import types

from ..device import available_devices
from .choices import FAMILIES, objective_name, target_names
from .session import Session
from .settings import Setting, label

LEARNING_RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1]
"""The learning rates the slider offers (any other can be typed in the box next to it)."""
# A selection widget cannot show the value None (ipywidgets then selects nothing), so the
# options whose setting is None ("all data", "K = D") carry 0 in the control instead.
BATCHES = [("all data", 0), ("32", 32), ("64", 64), ("128", 128), ("256", 256), ("512", 512)]
HIDDEN = [8, 16, 32, 64, 128, 256]
PARTS = [("K = D (autoregressive)", 0), ("K = 2 (coupling)", 2), ("K = 1 (elementwise)", 1)]
MIXING = [("reverse", "reverse"), ("random permutation", "permutation"), ("LU (learned)", "lu"), ("none", "none")]
NONE_AS_ZERO = ("batch_size", "parts")
TYPED = ("seed", "lr", "steps")
"""Settings typed into a text box: the text is read by :func:`parse_number`, never rewritten."""

# When the kernel goes away (a restart, a shutdown), ipywidgets marks every view of it with the
# class jupyter-widgets-disconnected; these rules then replace the last status and the speed
# with a sentence that says so, instead of a dashboard that seems to be training.
STYLE = """<style>
.flowlab-status .flowlab-gone, .jupyter-widgets-disconnected .flowlab-live {display: none}
.flowlab-status.jupyter-widgets-disconnected .flowlab-gone {display: inline; color: #b00020}
</style>"""
GONE = ("This dashboard has lost its Python kernel (restarted or shut down), so its buttons do nothing: "
        "run this cell again.")


def parse_number(name: str, text: str, integer: bool = False):
    """The number typed as ``text`` into the box of setting ``name``: ``"2000"``, ``"1e3"``,
    ``"5e-3"``, ``" 0.01 "``, ``"1_000"``. A whole number is returned as an ``int`` when
    ``integer`` is true (``"1e9"`` is 1000000000, never 19); anything else is left for the
    setting's check to refuse with its own message (``"3.5"`` for steps). Raises
    ``ValueError`` for text that is not a number.

    Example:
        >>> parse_number("steps", "1e9", integer=True), parse_number("lr", "2e-3")
        (1000000000, 0.002)
    """
    try:
        value = float(text.strip())
    except ValueError:
        kind = "a whole number such as 2000" if integer else "a number such as 0.005 or 5e-3"
        raise ValueError(f"{text.strip()!r} is not a number; type {kind} in the {name} box.") from None
    return int(value) if integer and value.is_integer() else value


def _width(px: int):
    import ipywidgets as w

    return w.Layout(width=f"{px}px")


def _pairs(values) -> list[tuple[str, object]]:
    return [(v, v) if isinstance(v, str) else (f"{v:g}", v) for v in values]


class Trainer:
    """A dashboard that trains a 2-D flow live: controls, Start / Stop / Reset, and a view.

    ``Trainer(**settings)`` takes the arguments of :class:`~flowlab.live.session.Session`.
    Settings (each an attribute and a control, checked when set): ``target`` (a name of
    :func:`~flowlab.live.target_names`, or an array of data points), ``family`` (a name of
    :data:`~flowlab.live.FAMILIES`), ``layers``, ``hidden`` (width of the conditioner's hidden
    layers), ``bins`` (2 or more) and ``bound`` (splines), ``parts`` (K of a masked
    conditioner; ``None`` is fully autoregressive), ``mixing`` (the layer between two layers:
    ``"reverse"``, ``"permutation"``, ``"lu"`` or ``"none"``), ``seed`` (the flow's initial
    parameters and the mini-batches), ``lr``, ``batch_size`` (``None``: all the data at every
    step; for a density target, the samples per step), ``steps`` and ``device`` (default: the
    fastest of :func:`flowlab.available_devices`). Settings that ask for work have caps
    (:data:`flowlab.live.settings.CAPS`).

    Training is :func:`flowlab.fit`'s: Adam with a cosine schedule from ``lr`` to 0 over
    ``steps``; :meth:`record` repeats exactly that run for the rendered book. Changing a flow
    setting (or the seed) builds a new flow; changing ``lr``, ``batch_size``, ``steps`` or
    ``device`` keeps the current flow, and the next Start begins a new run from it. Any change
    while training stops the training first. Only one dashboard trains at a time, and making
    a new one (a cell run again) stops the others.

    Mistakes (an impossible setting, a diverging loss, a failing device) are shown in the
    status line (also in :attr:`message`), never raised; the flow keeps its last good
    parameters. ``threads`` is the number of CPU threads training may use; ``fps`` caps the
    redraws per second; the density is evaluated on a ``grid x grid`` lattice and each panel
    is drawn ``size`` pixels wide. The widgets are :attr:`widget` (the whole dashboard) and its
    parts in :attr:`ui`: ``controls`` (by setting), ``buttons``, ``status``, ``counter``,
    ``image``, ``plot`` and ``caption``.

    Example:
        >>> import flowlab as fl
        >>> trainer = fl.live.Trainer(target="moons", family="MAF", steps=20)
        >>> trainer.message
        'Ready: press Start.'
        >>> trainer.start(); trainer.wait(timeout=60)
        True
        >>> trainer.step_count
        20
    """

    target, family, layers, hidden, bins, bound, parts, mixing, seed = (Setting() for _ in range(9))
    lr, batch_size, steps, device = (Setting() for _ in range(4))

    def __init__(self, *args, **kwargs):
        self.session = Session(*args, **kwargs)
        self._syncing = False
        self._build_widgets()
        self.session.on_update = self._refresh
        self._refresh()

    # ------------------------------------------------------------------ the session, as attributes

    settings = property(lambda self: self.session.settings, doc="Every setting's value, by name.")
    flow = property(lambda self: self.session.flow, doc="The flow being trained (a :class:`flowlab.Flow`).")
    history = property(lambda self: self.session.history, doc="The losses so far (a :class:`flowlab.History`).")
    step_count = property(lambda self: self.session.step_count, doc="Steps trained since the flow was built.")
    running = property(lambda self: self.session.running, doc="Whether training runs now.")
    message = property(lambda self: self.session.message, doc="The status line's text.")
    message_is_error = property(lambda self: self.session.message_is_error, doc="Whether the status is an error.")
    error = property(lambda self: self.session.error, doc="The exception behind the last error message, if any.")
    painter = property(lambda self: self.session.painter, doc="The :class:`flowlab.pictures.Painter` of the view.")
    picture = property(lambda self: self.session.picture, doc="The view's latest picture (PNG bytes).")
    target_object = property(lambda self: self.session.target_object, doc="The target being learned.")

    def start(self) -> None:
        """Start (or continue) training in the background; returns at once."""
        self.session.start()

    def stop(self) -> None:
        """Stop training (the current step finishes)."""
        self.session.stop()

    def reset(self) -> None:
        """A fresh, untrained flow from the current settings and seed."""
        self.session.reset()

    def wait(self, steps: int | None = None, timeout: float = 60.0) -> bool:
        """Block until training ends or reaches ``steps`` (see :meth:`Session.wait`)."""
        return self.session.wait(steps, timeout)

    def stats(self) -> dict:
        """View and training speed of the last run (see :meth:`Session.stats`)."""
        return self.session.stats()

    def record(self, *args, **kwargs):
        """A kernel-free replay of the run that Start makes (see :meth:`Session.record`)."""
        return self.session.record(*args, **kwargs)

    def set(self, name: str, value) -> None:
        """Change a setting (as ``trainer.<name> = value`` does) and show it in its control."""
        self.session.set(name, value)
        self._sync(name)  # the value in force, whether the new one was taken or refused
        if name == "family":
            self._show_knobs()

    # ------------------------------------------------------------------ widgets

    def _build_widgets(self) -> None:
        import ipywidgets as w

        style = {"description_width": "initial"}
        targets = target_names() + (["custom data"] if self.session.settings["target"] == "custom data" else [])

        def slider(kind, name, low, high, tip, **more):
            return kind(min=low, max=high, description=name, style=style, layout=_width(230),
                        tooltip=f"{tip}: {low:g} to {high:g} here (typed values are clamped to that range)", **more)

        def box(name, px):  # the text is submitted by Enter or by leaving the box
            return w.Text(description=name, continuous_update=False, style=style, layout=_width(px))

        c = {
            "target": w.Dropdown(options=_pairs(targets), description="target", style=style, layout=_width(200)),
            "family": w.Dropdown(options=_pairs(list(FAMILIES)), description="flow", style=style, layout=_width(300)),
            "layers": slider(w.IntSlider, "layers", 1, 8, "layers stacked"),
            "hidden": w.Dropdown(options=_pairs(HIDDEN), description="hidden", style=style, layout=_width(130)),
            "bins": slider(w.IntSlider, "bins", 2, 32, "spline bins"),
            "bound": slider(w.FloatSlider, "bound", 1.0, 8.0, "half-width of the spline's interval", step=0.5),
            "parts": w.Dropdown(options=PARTS, description="parts", style=style, layout=_width(250)),
            "mixing": w.Dropdown(options=MIXING, description="between layers", style=style, layout=_width(260)),
            "seed": box("seed", 130),
            "lr": box("", 70),
            "batch_size": w.Dropdown(options=BATCHES, description="batch", style=style, layout=_width(150)),
            "steps": box("steps", 160),
            "device": w.Dropdown(options=_pairs(available_devices()), description="device", style=style,
                                 layout=_width(150)),
        }
        # the learning rate: a slider of round values without a readout, and the box as its readout,
        # in which any rate can be typed
        lr_slider = w.SelectionSlider(options=_pairs(LEARNING_RATES), description="learning rate", readout=False,
                                      style=style, layout=_width(220))
        c["batch_size"].add_class("flowlab-batch")
        c["lr"].add_class("flowlab-lr")
        c["lr"].tooltip = "the learning rate: type any rate (such as 3e-3) and press Enter, or move the slider"
        buttons = {name: w.Button(description=name, button_style=kind, layout=w.Layout(width="80px"))
                   for name, kind in (("Start", "success"), ("Stop", "warning"), ("Reset", ""))}
        buttons["Start"].on_click(lambda _: self.start())
        buttons["Stop"].on_click(lambda _: self.stop())
        buttons["Reset"].on_click(lambda _: self.reset())
        buttons["Reset"].tooltip = "A fresh flow from the seed: the same start and run again (change the seed for another)"
        painter = self.session.painter
        self.ui = types.SimpleNamespace(
            controls=c, lr_slider=lr_slider, buttons=buttons,
            status=w.HTML().add_class("flowlab-status"), counter=w.HTML().add_class("flowlab-steps"),
            image=w.Image(format="png", layout=w.Layout(width=f"{painter.width}px", height=f"{painter.height}px",
                                                         object_fit="contain")).add_class("flowlab-picture"),
            plot=w.HTML(), caption=w.HTML())
        for name in c:
            self._sync(name)
            c[name].observe(self._on_control, names="value")
        lr_slider.observe(lambda change: self._typed_or_chosen("lr", change["new"]), names="value")
        row = dict(layout=w.Layout(flex_flow="row wrap", align_items="center"))
        ui = self.ui
        self.widget = w.VBox([
            w.HBox([c["target"], c["family"], c["layers"], c["hidden"]], **row),
            w.HBox([c["bins"], c["bound"], c["parts"], c["mixing"], c["seed"]], **row),
            w.HBox([lr_slider, c["lr"], c["batch_size"], c["steps"], c["device"]], **row),
            w.HBox([*buttons.values(), ui.counter], **row),
            ui.status,
            w.HBox([ui.image, ui.plot], layout=w.Layout(flex_flow="row wrap", align_items="flex-start")),
            ui.caption,
        ])
        self._show_knobs()

    def _show_knobs(self) -> None:
        knobs = FAMILIES[self.session.settings["family"]].knobs
        for name in ("bins", "bound", "parts", "mixing"):
            self.ui.controls[name].layout.display = None if name in knobs else "none"

    def _sync(self, name: str) -> None:
        """Show the setting in its control, adding it to the control's choices or range when
        it lies outside them (a value set from Python)."""
        import ipywidgets as w

        control, value = self.ui.controls[name], self.session.settings[name]
        if name in NONE_AS_ZERO and value is None:
            value = 0
        self._syncing = True
        try:
            if name in TYPED:
                control.value = f"{value:g}" if isinstance(value, float) else str(value)
                if name == "lr":
                    self._sync_choice(self.ui.lr_slider, value, sort=True)
                return
            if isinstance(control, w.Dropdown):
                self._sync_choice(control, value, custom=name == "target")
            else:  # a slider
                control.min, control.max = min(control.min, value), max(control.max, value)
            control.value = value
        finally:
            self._syncing = False

    @staticmethod
    def _sync_choice(control, value, custom: bool = False, sort: bool = False) -> None:
        pairs = list(control.options)
        if not any(v == value for _, v in pairs):
            pairs.append(("custom data" if custom else f"{value:g}" if isinstance(value, float) else str(value), value))
            control.options = sorted(pairs, key=lambda kv: kv[1]) if sort else pairs
        control.value = value

    def _on_control(self, change) -> None:
        if self._syncing:
            return
        name = next(k for k, c in self.ui.controls.items() if c is change["owner"])
        self._typed_or_chosen(name, change["new"])

    def _typed_or_chosen(self, name: str, value) -> None:
        if self._syncing:
            return
        if name in TYPED and isinstance(value, str):
            try:
                value = parse_number(self.ui.controls[name].description or "learning rate", value,
                                     integer=name != "lr")
            except ValueError as e:
                self.session.fail(f"Refused: {e} The {label(name)} stays {self.session.shown(name)}.", e)
                self._sync(name)
                return
        self.set(name, None if name in NONE_AS_ZERO and value == 0 else value)

    # ------------------------------------------------------------------ the view

    def _refresh(self) -> None:
        """Show the session's latest picture, chart, counter and message (called by the session,
        from whichever thread made them)."""
        s, ui = self.session, self.ui
        color = "#b00020" if s.message_is_error else "inherit"
        ui.status.value = (f'{STYLE}<span class="flowlab-live" style="color:{color}">{html.escape(s.message)}</span>'
                           f'<span class="flowlab-gone">{GONE}</span>')
        ui.image.value = s.picture
        ui.plot.value = s.chart.svg if s.chart is not None else ""
        ui.caption.value = (f'<span style="opacity:0.8">{html.escape(s.caption)} '
                            f"Objective: {objective_name(s.settings['family'], s.target_object)}.</span>")
        first, *rest = s.progress()
        speed = [p for p in rest if p.endswith("steps/s")]  # hidden once the kernel is gone (STYLE)
        words = [f"<b>{html.escape(first)}</b>"] + [html.escape(p) for p in rest if p not in speed]
        ui.counter.value = " \u00b7 ".join(words) + "".join(
            f'<span class="flowlab-live"> \u00b7 {html.escape(p)}</span>' for p in speed)

    def _repr_mimebundle_(self, **kwargs):
        data = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        s = self.session.settings
        data["text/html"] = (
            '<div style="border:1px solid #999;padding:6px 10px;font:13px sans-serif">'
            f"<strong>Live trainer</strong> ({html.escape(s['family'])} on {html.escape(str(s['target']))}). "
            "It trains a flow while you watch, and needs a running Python kernel: run this cell in JupyterLab "
            "or Jupyter Notebook, locally or on Binder, or in Colab (on the book's website, the rocket icon at the "
            "top of the page opens the last two). The recording below shows the same training.</div>"
        )
        return data

    def __repr__(self) -> str:
        s = self.session.settings
        return (f"Trainer(target={s['target']!r}, family={s['family']!r}, layers={s['layers']}, hidden={s['hidden']}, "
                f"seed={s['seed']}, lr={s['lr']}, steps={s['steps']}, device={s['device']!r}, "
                f"step_count={self.step_count})")


__all__ = ["Trainer", "parse_number"]
