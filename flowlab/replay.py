"""Kernel-free replays of a training run, for the rendered book.

:func:`record` trains a flow (one :class:`flowlab.Training` run, exactly as :func:`flowlab.fit`
and the live dashboard train) and takes a snapshot every ``every`` steps: the flow's samples
over the data, its density on a grid, and the loss. The result, a :class:`Replay`, displays
as a small self-contained HTML player (a step slider, play/pause, the loss curve) that runs
in any browser without Python and without a network: the frames are PNG images embedded as
base64 text (drawn by :mod:`flowlab.pictures`), the curve is an SVG chart
(:mod:`flowlab.chart`) and the player is a few lines of plain JavaScript.

Example:
    >>> import flowlab as fl
    >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
    >>> replay = fl.replay.record(flow, fl.targets.moons(256, seed=0), steps=20, every=10)
    >>> len(replay.frames), replay.steps
    (3, [0, 10, 20])
"""

from __future__ import annotations

import base64
import copy
import html
import json
import math
import numbers
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ._checks import ArgumentTypeError, as_data, check_positive_float, check_positive_int, describe
from .chart import loss_chart
from .core import Flow, check_flow
from .pictures import Painter, caption
from .train import Training

NOTE = (
    "A recording of a training run: it plays in the page, without Python. The live dashboard "
    "trains the same flow when this notebook runs with a Python kernel: locally in JupyterLab, "
    "on Binder or on Colab (see <em>How to use the widgets</em>)."
)


def check_recording(frames, steps, loss, valid_step=(), valid_nll=()) -> None:
    """The parts of a replay agree: one step per frame (integers >= 0, non-decreasing, none past
    the end of ``loss`` when there is one), and as many ``valid_step`` as ``valid_nll``."""
    parts = {"frames": frames, "steps": steps, "loss": loss, "valid_step": valid_step, "valid_nll": valid_nll}
    for what, seq in parts.items():
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence):
            raise ArgumentTypeError(f"{what} must be a list, got {describe(seq)}.")
    if len(frames) == 0:
        raise ValueError("a replay needs at least one frame; frames is empty.")
    if len(frames) != len(steps):
        raise ValueError(
            f"frames and steps must have one entry per snapshot, got {len(frames)} frames and {len(steps)} steps."
        )
    for f in frames:
        if not isinstance(f, (bytes, bytearray)):
            raise ArgumentTypeError(f"every frame must be PNG bytes (as Painter makes), got {describe(f)}.")
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"steps must be integers >= 0, got {list(steps)!r}.")
    if any(b < a for a, b in zip(steps[:-1], steps[1:])):
        raise ValueError(f"steps must not decrease from one frame to the next, got {list(steps)!r}.")
    if len(loss) and steps[-1] > len(loss):
        raise ValueError(
            f"the last frame is at step {steps[-1]} but loss has {len(loss)} entries (one per step): "
            "pass the whole loss history, or frames up to that step."
        )
    if len(valid_step) != len(valid_nll):
        raise ValueError(
            f"valid_step and valid_nll must have the same length, got {len(valid_step)} and {len(valid_nll)}."
        )


@dataclass
class Replay:
    """A recorded training run: one PNG picture per snapshot, the step of each, and the loss.

    ``peaks`` (optional) holds the largest density of each picture, which its colour bar's
    top stands for. ``caption`` replaces the words above the pictures (by default, what the two
    panels of :class:`~flowlab.pictures.Painter` show) and ``step_labels`` the text under each
    frame (by default its step and loss); with an empty ``loss`` the player has no loss chart,
    so any recorded pictures can be played. Display it in a notebook (it has ``_repr_html_``) or call :meth:`show`;
    :meth:`html` gives the self-contained player as a string and :meth:`save` writes it as a
    standalone page.
    """

    frames: list[bytes]
    steps: list[int]
    loss: list[float]
    valid_step: list[int] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    reference: float | None = None
    extent: float = 4.0
    title: str = ""
    note: str = NOTE
    message: str = ""
    fps: float = 8.0
    reference_label: str = "true density"
    peaks: list[float] | None = None
    points_label: str = "data"
    caption: str | None = None
    step_labels: list[str] | None = None

    def __post_init__(self):
        check_recording(self.frames, self.steps, self.loss, self.valid_step, self.valid_nll)
        if self.peaks is not None and len(self.peaks) != len(self.frames):
            raise ValueError(f"peaks must give one value per frame: {len(self.frames)} frames, {len(self.peaks)} peaks.")
        if self.step_labels is not None and len(self.step_labels) != len(self.frames):
            raise ValueError(f"step_labels must give one label per frame: {len(self.frames)} frames, "
                             f"{len(self.step_labels)} labels.")
        self.extent = check_positive_float("extent", self.extent)
        self.fps = check_positive_float("fps", self.fps)

    def labels(self) -> list[str]:
        """The text shown under each frame."""
        if self.step_labels is not None:
            return list(self.step_labels)
        out = []
        for i, s in enumerate(self.steps):
            text = f"step {s}"
            if 0 < s <= len(self.loss) and math.isfinite(self.loss[s - 1]):
                text += f" \u00b7 loss {self.loss[s - 1]:.3f}"
            if self.peaks is not None and math.isfinite(self.peaks[i]):
                text += f" \u00b7 colour bar top {self.peaks[i]:.3g}"
            out.append(text)
        return out

    def html(self) -> str:
        """The player: a ``<div>`` with the frames, a slider, play/pause and the loss curve.

        Element ids are unique per call, so several players can share a page.
        """
        uid = "flowlab-replay-" + uuid.uuid4().hex[:12]
        total = max(self.steps[-1], len(self.loss), 1)
        chart = loss_chart(self.loss, self.valid_step, self.valid_nll, self.reference, total,
                           marker_id=uid + "-marker", reference_label=self.reference_label) if self.loss else None
        frames = ["data:image/png;base64," + base64.b64encode(f).decode("ascii") for f in self.frames]
        labels = self.labels()
        last = len(frames) - 1
        head = f"<strong>{html.escape(self.title)}</strong><br>" if self.title else ""
        msg = f'<div style="color:#a33">{html.escape(self.message)}</div>' if self.message else ""
        # each frame is in the page once: the last one as the image shown (also without JavaScript),
        # the others in the player's data, which takes the last one back from the image
        data = json.dumps({"frames": frames[:-1], "labels": labels, "fps": self.fps,
                           "x": [round(chart.x_of(s), 2) for s in self.steps] if chart else []})
        words = html.escape(self.caption if self.caption is not None else caption(self.extent, self.points_label))
        svg = f'<div style="max-width:100%;overflow-x:auto">{chart.svg}</div>' if chart else ""
        return f"""<div id="{uid}" class="flowlab-replay" style="font:13px sans-serif;max-width:100%;margin:0.5em 0;color:#333;background:#fff;padding:4px">
{head}<div style="color:#555">{words}</div>
<img id="{uid}-img" alt="{html.escape(self._alt(labels[last]))}" src="{frames[last]}" style="max-width:100%;display:block;margin:4px 0">
<div style="display:flex;align-items:center;gap:8px;flex-wrap:wrap">
<button id="{uid}-play" type="button" style="min-width:5em">&#9654; Play</button>
<input id="{uid}-slider" type="range" min="0" max="{last}" step="1" value="{last}" style="flex:1 1 200px"
 aria-label="training step">
<span id="{uid}-label" style="min-width:12em;font-variant-numeric:tabular-nums">{html.escape(labels[last])}</span>
</div>
{svg}{msg}
<div style="color:#555;font-size:12px">{self.note}</div>
<script>(function init(tries) {{
  var d = {data};
  var root = document.getElementById("{uid}");
  if (!root) {{  // not in the document yet (some notebook front ends): try again shortly
    if (tries < 50) setTimeout(function () {{ init(tries + 1); }}, 100);
    return;
  }}
  var img = document.getElementById("{uid}-img"), slider = document.getElementById("{uid}-slider"),
      label = document.getElementById("{uid}-label"), button = document.getElementById("{uid}-play"),
      marker = document.getElementById("{uid}-marker"), timer = null;
  d.frames.push(img.src);
  function show(i) {{
    img.src = d.frames[i]; label.textContent = d.labels[i]; slider.value = i;
    img.alt = {json.dumps(self._alt(""))} + d.labels[i];
    if (marker) {{ marker.setAttribute("x1", d.x[i]); marker.setAttribute("x2", d.x[i]); }}
  }}
  function pause() {{ if (timer) {{ clearInterval(timer); timer = null; }} button.innerHTML = "&#9654; Play"; }}
  function play() {{
    if (+slider.value >= d.frames.length - 1) show(0);
    button.innerHTML = "&#10074;&#10074; Pause";
    timer = setInterval(function () {{
      var i = +slider.value + 1;
      if (i >= d.frames.length) {{ pause(); return; }}
      show(i);
    }}, 1000 / d.fps);
  }}
  slider.addEventListener("input", function () {{ pause(); show(+slider.value); }});
  button.addEventListener("click", function () {{ if (timer) pause(); else play(); }});
  show(d.frames.length - 1);
}})(0);</script>
</div>"""

    def _alt(self, label: str) -> str:
        """The image's text alternative for a frame whose label is ``label``."""
        return f"{self.title or 'training run'}, snapshot at {label}"

    def _repr_html_(self) -> str:
        return self.html()

    def show(self):
        """Display the player in the notebook (and so in the rendered book)."""
        from IPython.display import HTML, display

        display(HTML(self.html()))

    def save(self, path) -> None:
        """Write the player as a standalone HTML page (it works from ``file://``)."""
        title = html.escape(self.title or "flowlab replay")
        page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
                f"<body>{self.html()}</body></html>")
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)

    @property
    def nbytes(self) -> int:
        """The size of the player's HTML in bytes."""
        return len(self.html().encode("utf-8"))

    def __repr__(self) -> str:
        return f"Replay(frames={len(self.frames)}, steps={self.steps[-1]}, extent={self.extent:g})"


def record(flow: Flow, data, steps: int = 1000, every: int = 20, lr: float = 5e-3, batch_size: int | None = 32,
           valid=None, device=None, *, reference: float | None = None, title: str = "", seed: int = 0,
           painter: Painter | None = None, size: int = 200, samples: int = 500, grid: int = 64,
           note: str = NOTE, threads: int | None = 1, reference_label: str = "true density",
           points_label: str = "data", **training) -> Replay:
    """Train ``flow`` on ``data`` for one :class:`flowlab.Training` run and record a snapshot
    every ``every`` steps (and before the first step). Returns a :class:`Replay`; ``flow`` is
    trained in place and left with its last parameters.

    ``data`` is samples or an unnormalized log-density, as for :func:`flowlab.fit`; ``steps``,
    ``lr``, ``batch_size``, ``valid``, ``seed`` and further keywords (``schedule``,
    ``valid_every``, ...) go to :class:`flowlab.Training`. ``reference`` draws a dashed line in
    the loss plot (for example the NLL of the true density). ``size`` is the side of each panel
    in pixels; 50 frames of 200 pixels make a player of about 1 MB. ``threads`` limits the CPU
    threads torch uses meanwhile (small flows train fastest with one; ``None`` leaves it alone).
    """
    steps = check_positive_int("steps", steps)
    every = check_positive_int("every", every)
    check_flow("flow", flow)
    if painter is None:
        points = None if callable(data) and not isinstance(data, torch.Tensor) else as_data("data", data, flow.features)[:2000]
        painter = Painter(points, grid=grid, size=size, samples=samples, seed=seed)
    if device is not None:
        from .device import check_device

        flow.to(check_device(device))
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(check_positive_int("threads", threads))
    # the pictures are drawn from a copy, so that drawing never changes the flow being trained
    # (an ActNorm layer, for one, sets itself from the first batch it sees)
    mirror = copy.deepcopy(flow).requires_grad_(False)

    def snapshot():
        mirror.load_state_dict(flow.state_dict())
        return painter.render(mirror)

    try:
        run = Training(flow, data, steps, lr, batch_size, valid, seed=seed, **training)
        shots = [snapshot()]
        marks = [0]
        for _ in run:
            if run.step_count % every == 0 or run.done:
                shots.append(snapshot())
                marks.append(run.step_count)
        run.finish(keep_best=False)
    finally:
        torch.set_num_threads(before)
    h = run.history
    return Replay([f for f, _ in shots], marks, list(h.loss), list(h.valid_step), list(h.valid_nll), reference,
                  painter.extent, title, note, h.message, reference_label=reference_label,
                  peaks=[p for _, p in shots], points_label=points_label)
