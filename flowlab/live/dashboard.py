"""The dashboard's widgets: controls, Start / Stop / Reset, the status, the picture and the loss.

:class:`Trainer` is a :class:`~flowlab.live.session.Session` with ipywidgets controls; every
button and control calls the session's methods and settings, so notebooks and tests can drive
it from Python as well.
"""

from __future__ import annotations

import html
import math

from ..device import available_devices
from .choices import FAMILIES, target_names
from .session import Session, label

LEARNING_RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1]
"""The learning rates the slider offers (a rate set from Python is added to them)."""
# A selection widget cannot show the value None (ipywidgets then selects nothing), so the
# options whose setting is None ("all data", "K = D") carry 0 in the control instead.
BATCHES = [("all data", 0), ("32", 32), ("64", 64), ("128", 128), ("256", 256), ("512", 512)]
HIDDEN = [8, 16, 32, 64, 128, 256]
PARTS = [("K = D (autoregressive)", 0), ("K = 2 (coupling)", 2), ("K = 1 (elementwise)", 1)]
MIXING = [("reverse", "reverse"), ("random permutation", "permutation"), ("LU (learned)", "lu"), ("none", "none")]
NONE_AS_ZERO = ("batch_size", "parts")


def _width(px: int):
    import ipywidgets as w

    return w.Layout(width=f"{px}px")


def _pairs(values) -> list[tuple[str, object]]:
    return [(v, v) if isinstance(v, str) else (f"{v:g}", v) for v in values]


class Trainer(Session):
    """A dashboard that trains a 2-D flow live: controls, Start / Stop / Reset, and a view.

    Settings (each an attribute and a control, checked when set): ``target`` (a name of
    :func:`~flowlab.live.target_names`, or an array of data points), ``family`` (a name of
    :data:`~flowlab.live.FAMILIES`), ``layers``, ``hidden`` (width of the conditioner's hidden
    layers), ``bins`` and ``bound`` (splines), ``parts`` (K of a masked conditioner; ``None``
    is fully autoregressive), ``mixing`` (the layer between two layers: ``"reverse"``,
    ``"permutation"``, ``"lu"`` or ``"none"``), ``seed`` (the flow's initial parameters and the mini-batches),
    ``lr``, ``batch_size`` (``None``: all the data at every step; for a density target, the
    samples per step), ``steps`` and ``device`` (default: the fastest of
    :func:`flowlab.available_devices`).

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
    is drawn ``size`` pixels wide.

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

    def __init__(self, *args, **kwargs):
        self._controls: dict = {}
        self._syncing = False
        super().__init__(*args, **kwargs)
        self._build_widgets()
        self.say(self.message, self.message_is_error)
        self.show()

    # ------------------------------------------------------------------ widgets

    def _build_widgets(self) -> None:
        import ipywidgets as w

        style = {"description_width": "initial"}
        targets = target_names() + (["custom data"] if self._custom is not None else [])
        c = {
            "target": w.Dropdown(options=_pairs(targets), description="target", style=style, layout=_width(200)),
            "family": w.Dropdown(options=_pairs(list(FAMILIES)), description="flow", style=style, layout=_width(300)),
            "layers": w.IntSlider(min=1, max=8, description="layers", style=style, layout=_width(230)),
            "hidden": w.Dropdown(options=_pairs(HIDDEN), description="hidden", style=style, layout=_width(130)),
            "bins": w.IntSlider(min=1, max=32, description="bins", style=style, layout=_width(230)),
            "bound": w.FloatSlider(min=1.0, max=8.0, step=0.5, description="bound", style=style, layout=_width(230)),
            "parts": w.Dropdown(options=PARTS, description="parts", style=style, layout=_width(250)),
            "mixing": w.Dropdown(options=MIXING, description="between layers", style=style, layout=_width(260)),
            "seed": w.BoundedIntText(min=0, max=2**31 - 1, description="seed", style=style,
                                     layout=w.Layout(width="130px")),
            "lr": w.SelectionSlider(options=_pairs(LEARNING_RATES), description="learning rate", style=style,
                                    layout=_width(280)),
            "batch_size": w.Dropdown(options=BATCHES, description="batch", style=style, layout=_width(150)),
            "steps": w.BoundedIntText(min=1, max=1_000_000, step=100, description="steps", style=style,
                                      layout=w.Layout(width="160px")),
            "device": w.Dropdown(options=_pairs(available_devices()), description="device", style=style,
                                 layout=_width(150)),
        }
        c["batch_size"].add_class("flowlab-batch")
        self._controls = c
        for name in c:
            self._sync(name)
            c[name].observe(self._on_control, names="value")
        buttons = {name: w.Button(description=name, button_style=style_, layout=w.Layout(width="80px"))
                   for name, style_ in (("Start", "success"), ("Stop", "warning"), ("Reset", ""))}
        buttons["Start"].on_click(lambda _: self.start())
        buttons["Stop"].on_click(lambda _: self._stop_clicked())
        buttons["Reset"].on_click(lambda _: self.reset())
        buttons["Reset"].tooltip = "A fresh flow from the seed: the same start and run again (change the seed for another)"
        self._status = w.HTML().add_class("flowlab-status")
        self._counter = w.HTML().add_class("flowlab-steps")
        side = self.painter.width
        self._image = w.Image(format="png", layout=w.Layout(width=f"{side}px", height=f"{self.size}px",
                                                            object_fit="contain")).add_class("flowlab-picture")
        self._plot = w.HTML()
        self._caption = w.HTML()
        row = dict(layout=w.Layout(flex_flow="row wrap", align_items="center"))
        self.widget = w.VBox([
            w.HBox([c["target"], c["family"], c["layers"], c["hidden"]], **row),
            w.HBox([c["bins"], c["bound"], c["parts"], c["mixing"], c["seed"]], **row),
            w.HBox([c["lr"], c["batch_size"], c["steps"], c["device"]], **row),
            w.HBox([*buttons.values(), self._counter], **row),
            self._status,
            w.HBox([self._image, self._plot], layout=w.Layout(flex_flow="row wrap", align_items="flex-start")),
            self._caption,
        ])
        self._show_knobs()

    def _stop_clicked(self) -> None:
        self.stop()

    def _show_knobs(self) -> None:
        knobs = FAMILIES[self._settings["family"]].knobs
        for name in ("bins", "bound", "parts", "mixing"):
            self._controls[name].layout.display = None if name in knobs else "none"

    def _sync(self, name: str) -> None:
        """Show the setting in its control, adding it to the control's choices or range when
        it lies outside them (a value set from Python)."""
        import ipywidgets as w

        control, value = self._controls.get(name), self._settings[name]
        if control is None:
            return
        if name in NONE_AS_ZERO and value is None:
            value = 0
        self._syncing = True
        try:
            if isinstance(control, (w.Dropdown, w.SelectionSlider)):
                pairs = [(k, v) for k, v in control.options]
                if not any(v == value for _, v in pairs):
                    pairs.append(("custom data" if name == "target" else f"{value:g}" if isinstance(value, float)
                                  else str(value), value))
                    if name == "lr":
                        pairs.sort(key=lambda kv: kv[1])
                    control.options = pairs
            elif isinstance(control, (w.IntSlider, w.FloatSlider, w.BoundedIntText)):
                control.min, control.max = min(control.min, value), max(control.max, value)
            control.value = value
        finally:
            self._syncing = False

    def _on_control(self, change) -> None:
        if self._syncing:
            return
        name = next(k for k, c in self._controls.items() if c is change["owner"])
        value = change["new"]
        self.set(name, None if name in NONE_AS_ZERO and value == 0 else value)

    def set(self, name: str, value) -> None:
        super().set(name, value)
        if self._controls:
            self._sync(name)  # the value in force, whether the new one was taken or refused
            if name == "family":
                self._show_knobs()

    # ------------------------------------------------------------------ messages and the view

    def say(self, text: str, error: bool = False) -> None:
        super().say(text, error)
        status = getattr(self, "_status", None)
        if status is not None:
            color = "#b00020" if error else "inherit"
            status.value = f'<span style="color:{color}">{html.escape(self.message)}</span>'

    def start(self) -> None:
        super().start()
        self.show()

    def show(self) -> None:
        if getattr(self, "_image", None) is None:
            return
        self._image.value = self.picture
        self._plot.value = self.chart.svg if self.chart is not None else ""
        self._caption.value = (f'<span style="opacity:0.8">{html.escape(self.caption)} '
                               f"Objective: {self.target_object.objective}.</span>")
        h = self.history
        parts = [f"<b>step {self.step_count}</b> / {self.total}"]
        if h.loss and math.isfinite(h.loss[-1]):
            parts.append(f"loss {h.loss[-1]:.3f}")
        if h.valid_nll:
            parts.append(f"held-out NLL {h.valid_nll[-1]:.3f}")
        if self.running and self.step_count > 0 and self._speed > 0:
            parts.append(f"{self._speed:.0f} steps/s")
        self._counter.value = " \u00b7 ".join(parts)

    def _repr_mimebundle_(self, **kwargs):
        data = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        data["text/html"] = (
            '<div style="border:1px solid #999;padding:6px 10px;font:13px sans-serif">'
            f"<strong>Live trainer</strong> ({html.escape(self._settings['family'])} on "
            f"{html.escape(str(self._settings['target']))}): it trains when the notebook runs with a Python kernel "
            "(Binder or Colab from the rocket icon at the top, or locally). The recording below shows the same "
            "training.</div>"
        )
        return data

    def __repr__(self) -> str:
        s = self._settings
        return (f"Trainer(target={s['target']!r}, family={s['family']!r}, layers={s['layers']}, hidden={s['hidden']}, "
                f"seed={s['seed']}, lr={s['lr']}, steps={s['steps']}, device={s['device']!r}, "
                f"step_count={self.step_count})")


__all__ = ["Trainer", "label"]
