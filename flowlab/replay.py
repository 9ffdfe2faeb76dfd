r"""Kernel-free replays of a training run, for the rendered book.

:func:`record` trains a flow and takes a snapshot every ``every`` steps: the flow's samples
over the data, its density on a grid, and the loss. The result, a :class:`Replay`, displays
as a small self-contained HTML player (a step slider, play/pause, the loss curve) that runs
in any browser without Python and without a network: the frames are PNG images embedded as
base64 text and the player is a few lines of plain JavaScript.

The drawing code here is shared with :mod:`flowlab.live`: a :class:`Painter` turns a 2-D flow
into one PNG picture (samples | density) with numpy alone, cheaply enough to redraw a
dozen times a second while training.

Example:
    >>> import flowlab as fl
    >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
    >>> replay = fl.replay.record(flow, fl.targets.moons(256, seed=0), steps=20, every=10)
    >>> len(replay.frames), replay.steps
    (3, [0, 10, 20])
"""

from __future__ import annotations

import base64
import html
import json
import math
import struct
import uuid
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ._checks import as_data, check_positive_int
from .core import Flow

LIVE_NOTE = (
    "This is a recording: it plays in the page, without Python. To train the flow yourself and "
    "change the settings, run this notebook with a kernel: on Binder or Colab (the rocket icon at "
    "the top of the page) or locally (see <em>How to use the widgets</em>)."
)

# Colours of the pictures (RGB). The density uses a matplotlib colormap; the rest is fixed.
_LEVELS = 240  # palette entries 0..239: the colormap
_WHITE, _DATA, _SAMPLE, _FRAME = 240, 241, 242, 243
_FIXED = [(255, 255, 255), (200, 200, 200), (214, 39, 40), (150, 150, 150)]
_COLORS = {"loss": "#1f77b4", "valid": "#ff7f0e", "reference": "#555555"}


# --------------------------------------------------------------------------------------------
# PNG and pictures with numpy
# --------------------------------------------------------------------------------------------


def _palette(cmap: str = "viridis") -> np.ndarray:
    import matplotlib

    lut = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, _LEVELS))[:, :3]
    return np.concatenate([np.round(lut * 255).astype(np.uint8), np.array(_FIXED, dtype=np.uint8)])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(indices: np.ndarray, palette: np.ndarray, level: int = 6) -> bytes:
    """Encode an ``(H, W)`` array of palette indices (uint8) as an 8-bit indexed PNG.

    Each row is stored with the PNG "Up" filter (difference to the row above), which suits
    pictures with smooth vertical gradients and flat areas.

    Example:
        >>> import numpy as np
        >>> png(np.zeros((2, 3), np.uint8), np.zeros((1, 3), np.uint8))[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    indices = np.ascontiguousarray(indices, dtype=np.uint8)
    if indices.ndim != 2:
        raise ValueError(f"indices must be a 2-D array (H, W), got shape {indices.shape}.")
    h, w = indices.shape
    rows = np.empty((h, w + 1), dtype=np.uint8)
    rows[:, 0] = 2  # filter type Up
    rows[0, 1:] = indices[0]
    rows[1:, 1:] = indices[1:] - indices[:-1]  # uint8 arithmetic wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", np.ascontiguousarray(palette, dtype=np.uint8).tobytes())
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def _upsample(values: np.ndarray, size: int) -> np.ndarray:
    """Bilinear interpolation of a square (G, G) array to (size, size), cell centres aligned."""
    g = values.shape[0]
    pos = np.clip((np.arange(size) + 0.5) * g / size - 0.5, 0, g - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, g - 1)
    t = pos - i0
    rows = values[i0] * (1 - t)[:, None] + values[i1] * t[:, None]
    return rows[:, i0] * (1 - t)[None, :] + rows[:, i1] * t[None, :]


def _splat(image: np.ndarray, points: np.ndarray, extent: float, color: int, dot: int) -> None:
    """Draw ``points`` (n, 2) in data coordinates into ``image`` as dot x dot squares."""
    size = image.shape[0]
    if len(points) == 0:
        return
    ix = np.floor((points[:, 0] + extent) / (2 * extent) * size).astype(np.int64)
    iy = np.floor((extent - points[:, 1]) / (2 * extent) * size).astype(np.int64)
    keep = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size) & np.isfinite(points).all(1)
    ix, iy = ix[keep], iy[keep]
    for dy in range(dot):
        for dx in range(dot):
            image[np.minimum(iy + dy, size - 1), np.minimum(ix + dx, size - 1)] = color


def picture(log_density: np.ndarray, samples: np.ndarray, points: np.ndarray | None, extent: float,
            size: int = 224) -> np.ndarray:
    """Palette indices of the two-panel picture: left, the data (grey) and the flow's samples
    (red); right, the flow's density as a heat map. ``log_density`` is a (G, G) grid whose
    row 0 is the top (largest y); both panels show the square [-extent, extent]^2."""
    gap = 8
    left = np.full((size, size), _WHITE, dtype=np.uint8)
    if points is not None:
        _splat(left, points, extent, _DATA, 2)
    _splat(left, samples, extent, _SAMPLE, 2)
    left[[0, -1], :] = _FRAME
    left[:, [0, -1]] = _FRAME
    logp = np.where(np.isfinite(log_density), log_density, -np.inf)
    top = logp.max()
    density = np.exp(logp - top) if np.isfinite(top) else np.zeros_like(logp)
    right = np.clip(_upsample(density, size) * (_LEVELS - 1) + 0.5, 0, _LEVELS - 1).astype(np.uint8)
    out = np.full((size, 2 * size + gap), _WHITE, dtype=np.uint8)
    out[:, :size] = left
    out[:, size + gap :] = right
    return out


def extent_for(points: Tensor | np.ndarray) -> float:
    """Half-width of a square view centred at 0 that holds nearly all ``points``, rounded up to 0.5."""
    p = torch.as_tensor(points, dtype=torch.float32).detach().cpu()
    q = torch.quantile(p.abs().flatten(), 0.995).item() if p.numel() <= 16_000_000 else p.abs().max().item()
    return max(0.5, math.ceil(1.15 * q * 2) / 2)


class Painter:
    """Draws a 2-D flow as one PNG picture: samples over the data, and the density heat map.

    The latent points behind the samples are drawn once (``seed``), so successive pictures
    of a training run show the same points moving. The density is evaluated on a
    ``grid x grid`` lattice (``grid**2`` calls of ``log_prob`` in one batch), interpolated to
    ``size`` pixels and coloured with ``cmap``. Tensors are made on the flow's device.

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
        >>> painter = Painter(fl.targets.moons(200, seed=0), grid=16, size=32)
        >>> painter(flow)[:4]
        b'\\x89PNG'
    """

    def __init__(self, points=None, extent: float | None = None, grid: int = 64, size: int = 224,
                 samples: int = 500, seed: int = 0, cmap: str = "viridis", level: int = 6):
        self.points = None if points is None else as_data("points", points, 2).detach().cpu().numpy()
        if extent is None:
            extent = 4.0 if self.points is None else extent_for(self.points)
        if not extent > 0:
            raise ValueError(f"extent must be positive, got {extent}.")
        self.extent = float(extent)
        self.size = check_positive_int("size", size, 8)
        self.samples = check_positive_int("samples", samples)
        self.level = level
        self.palette = _palette(cmap)
        self.grid = grid
        self._z = torch.randn(self.samples, 2, generator=torch.Generator().manual_seed(seed))
        self.set_grid(self.grid)

    def set_grid(self, grid: int) -> None:
        """Evaluate the density on a ``grid x grid`` lattice from now on."""
        self.grid = check_positive_int("grid", grid, 2)
        c = (torch.arange(self.grid, dtype=torch.float64) + 0.5) / self.grid * 2 * self.extent - self.extent
        yy, xx = torch.meshgrid(c.flip(0), c, indexing="ij")  # row 0 at the top
        self._grid = torch.stack([xx.flatten(), yy.flatten()], 1)
        self._cache: dict = {}

    def _inputs(self, flow: Flow) -> tuple[Tensor, Tensor]:
        ref = next(flow.parameters(), None)
        ref = flow.base._anchor if ref is None else ref
        key = (ref.device, ref.dtype)
        if key not in self._cache:
            to = dict(device=ref.device, dtype=ref.dtype)
            self._cache = {key: (self._grid.to(**to), self._z.to(**to))}
        return self._cache[key]

    @torch.no_grad()
    def evaluate(self, flow: Flow) -> tuple[np.ndarray, np.ndarray]:
        """The flow's log-density on the grid, shape (grid, grid), and its samples, (samples, 2)."""
        if flow.features != 2:
            raise ValueError(f"the pictures show 2-D flows; this flow has {flow.features} features.")
        grid, z = self._inputs(flow)
        logp = flow.log_prob(grid).view(self.grid, self.grid)
        x, _ = flow.transform.inverse(z)
        return logp.float().cpu().numpy(), x.float().cpu().numpy()

    def draw(self, log_density: np.ndarray, samples: np.ndarray) -> bytes:
        return png(picture(log_density, samples, self.points, self.extent, self.size), self.palette, self.level)

    def __call__(self, flow: Flow) -> bytes:
        """The PNG bytes of the picture of ``flow``."""
        return self.draw(*self.evaluate(flow))


# --------------------------------------------------------------------------------------------
# The loss curve as SVG
# --------------------------------------------------------------------------------------------


def _bin_means(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` (indexed by step 1..n) over at most ``bins`` equal bins: (steps, means)."""
    n = len(values)
    if n <= bins:
        return np.arange(1, n + 1, dtype=float), values
    edges = np.linspace(0, n, bins + 1).astype(int)
    sums = np.add.reduceat(values, edges[:-1])
    counts = np.diff(edges)
    return (edges[:-1] + edges[1:]) / 2 + 0.5, sums / counts


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def loss_svg(loss, valid_step=(), valid_nll=(), reference: float | None = None, total: int | None = None,
             width: int = 456, height: int = 150, marker_id: str | None = None,
             reference_label: str = "true density") -> str:
    """An SVG line chart of the training loss per step, the validation NLL (dots) and an
    optional reference line (for example the NLL of the true density). With ``marker_id``,
    a vertical line with that id marks a step (the replay moves it)."""
    loss = np.asarray(loss, dtype=float)
    loss = loss[np.isfinite(loss)] if loss.size else loss
    vs = np.asarray(valid_step, dtype=float)
    vn = np.asarray(valid_nll, dtype=float)
    total = max(int(total or 0), len(loss), int(vs.max()) if vs.size else 0, 1)
    left, right, top, bottom = 46, 8, 8, 22
    pw, ph = width - left - right, height - top - bottom
    xs, ys = _bin_means(loss, max(1, pw // 2)) if loss.size else (np.zeros(0), np.zeros(0))
    values = np.concatenate([ys, vn[np.isfinite(vn)], [reference] if reference is not None else []])
    if values.size:
        lo = float(values.min())
        hi = float(np.quantile(values, 0.99)) if values.size > 20 else float(values.max())
    else:
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad

    def px(s):
        return left + np.asarray(s, float) / total * pw

    def py(v):
        return top + (hi - np.clip(np.asarray(v, float), lo, hi)) / (hi - lo) * ph

    out = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'style="font:11px sans-serif;background:#fff">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    for v in (lo + pad, (lo + hi) / 2, hi - pad):
        y = float(py(v))
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#333">{_fmt(v)}</text>')
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
    out.append(f'<text x="{left}" y="{height - 6}" fill="#333">0</text>')
    out.append(f'<text x="{left + pw}" y="{height - 6}" text-anchor="end" fill="#333">{total} steps</text>')
    if reference is not None and np.isfinite(reference):
        y = float(py(reference))
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_COLORS["reference"]}" '
                   'stroke-dasharray="4 3"/>')
    if xs.size:
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(xs), py(ys)))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{_COLORS["loss"]}" stroke-width="1.5"/>')
    if vs.size:
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(vs), py(vn)))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{_COLORS["valid"]}" stroke-width="1.5"/>')
    if marker_id is not None:
        out.append(f'<line id="{marker_id}" x1="{left + pw}" x2="{left + pw}" y1="{top}" y2="{top + ph}" '
                   'stroke="#d62728"/>')
    legend = [("train loss", _COLORS["loss"], "")]
    if vs.size:
        legend.append(("valid NLL", _COLORS["valid"], ""))
    if reference is not None:
        legend.append((html.escape(reference_label), _COLORS["reference"], ' stroke-dasharray="4 3"'))
    x = left + pw - 8
    for name, color, dash in reversed(legend):
        x -= 7 * len(name) + 26
        out.append(f'<line x1="{x}" x2="{x + 16}" y1="{top + 10}" y2="{top + 10}" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 20}" y="{top + 14}" fill="#333">{name}</text>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# The replay
# --------------------------------------------------------------------------------------------


@dataclass
class Replay:
    """A recorded training run: one PNG picture per snapshot, the step of each, and the loss.

    Display it in a notebook (it has ``_repr_html_``) or call :meth:`show`; :meth:`html` gives
    the self-contained player as a string and :meth:`save` writes it as a standalone page.
    """

    frames: list[bytes]
    steps: list[int]
    loss: list[float]
    valid_step: list[int] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    reference: float | None = None
    extent: float = 4.0
    title: str = ""
    note: str = LIVE_NOTE
    message: str = ""
    fps: float = 8.0
    reference_label: str = "true density"

    def html(self) -> str:
        """The player: a ``<div>`` with the frames, a slider, play/pause and the loss curve.

        Element ids are unique per call, so several players can share a page.
        """
        uid = "flowlab-replay-" + uuid.uuid4().hex[:12]
        total = max(self.steps[-1] if self.steps else 0, len(self.loss))
        svg = loss_svg(self.loss, self.valid_step, self.valid_nll, self.reference, total, marker_id=uid + "-marker",
                       reference_label=self.reference_label)
        frames = ["data:image/png;base64," + base64.b64encode(f).decode("ascii") for f in self.frames]
        labels = []
        for s in self.steps:
            text = f"step {s}"
            if 0 < s <= len(self.loss):
                text += f" \u00b7 loss {self.loss[s - 1]:.3f}"
            labels.append(text)
        last = len(frames) - 1
        e = self.extent
        head = f"<strong>{html.escape(self.title)}</strong><br>" if self.title else ""
        msg = f'<div style="color:#a33">{html.escape(self.message)}</div>' if self.message else ""
        first_label = html.escape(labels[last]) if labels else ""
        data = json.dumps({"frames": frames, "labels": labels, "steps": self.steps, "total": total, "fps": self.fps,
                           "x0": 46, "pw": 456 - 54})
        return f"""<div id="{uid}" class="flowlab-replay" style="font:13px sans-serif;max-width:100%;margin:0.5em 0">
{head}<div style="color:#555">left: data (grey) and samples of the flow (red); right: density of the flow;
both on [{-e:g}, {e:g}]&sup2;</div>
<img id="{uid}-img" alt="training snapshot" src="{frames[last] if frames else ''}"
 style="max-width:100%;display:block;margin:4px 0">
<div style="display:flex;align-items:center;gap:8px;flex-wrap:wrap">
<button id="{uid}-play" type="button" style="min-width:5em">&#9654; Play</button>
<input id="{uid}-slider" type="range" min="0" max="{last}" step="1" value="{last}" style="flex:1 1 200px"
 aria-label="training step">
<span id="{uid}-label" style="min-width:12em;font-variant-numeric:tabular-nums">{first_label}</span>
</div>
<div style="max-width:100%;overflow-x:auto">{svg}</div>{msg}
<div style="color:#555;font-size:12px">{self.note}</div>
<script>(function init(tries) {{
  var d = {data};
  var root = document.getElementById("{uid}");
  if (!root) {{  // not in the document yet (some notebook front ends): try again shortly
    if (tries < 50) setTimeout(function () {{ init(tries + 1); }}, 100);
    return;
  }}
  if (!d.frames.length) return;
  var img = document.getElementById("{uid}-img"), slider = document.getElementById("{uid}-slider"),
      label = document.getElementById("{uid}-label"), button = document.getElementById("{uid}-play"),
      marker = document.getElementById("{uid}-marker"), timer = null;
  function show(i) {{
    img.src = d.frames[i]; label.textContent = d.labels[i]; slider.value = i;
    if (marker) {{
      var x = d.x0 + d.steps[i] / d.total * d.pw;
      marker.setAttribute("x1", x); marker.setAttribute("x2", x);
    }}
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
        return f"Replay(frames={len(self.frames)}, steps={self.steps[-1] if self.steps else 0}, extent={self.extent:g})"


def record(flow: Flow, data, steps: int = 1000, every: int = 20, lr: float = 5e-3, batch_size: int | None = None,
           valid=None, device=None, *, reference: float | None = None, title: str = "", seed: int = 0,
           painter: Painter | None = None, size: int = 200, samples: int = 500, grid: int = 64,
           note: str = LIVE_NOTE, threads: int | None = 1, **fit_kwargs) -> Replay:
    """Train ``flow`` on ``data`` with :func:`flowlab.fit` and record a snapshot every ``every``
    steps (and before the first step). Returns a :class:`Replay`; ``flow`` is trained in place.

    ``steps``, ``lr``, ``batch_size``, ``valid``, ``device`` and further keywords go to
    :func:`flowlab.fit`. ``reference`` draws a dashed line in the loss plot (for example the
    NLL of the true density). ``size`` is the side of each panel in pixels; 50 frames of
    200 pixels make a player of about 1 MB. ``threads`` limits the CPU threads torch uses
    meanwhile (small flows train fastest with one; ``None`` leaves the setting alone).
    """
    from .train import fit

    steps = check_positive_int("steps", steps)
    every = check_positive_int("every", every)
    x = as_data("data", data, flow.features)
    if painter is None:
        painter = Painter(x[:2000], grid=grid, size=size, samples=samples, seed=seed)
    if device is not None:
        flow.to(device)
    fit_kwargs.setdefault("progress", False)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(check_positive_int("threads", threads))
    try:
        frames, marks = [painter(flow)], [0]  # the picture before training

        def snapshot(step: int, loss: float):
            if step % every == 0 or step == steps:
                frames.append(painter(flow))
                marks.append(step)
            return None

        history = fit(flow, x, steps=steps, lr=lr, batch_size=batch_size, valid=valid, seed=seed,
                      callback=snapshot, **fit_kwargs)
        if marks[-1] != history.steps and history.steps > 0:
            frames.append(painter(flow))
            marks.append(history.steps)
    finally:
        torch.set_num_threads(before)
    return Replay(frames, marks, list(history.loss), list(history.valid_step), list(history.valid_nll), reference,
                  painter.extent, title, note, history.message)
