"""The loss curve of a training run as a small SVG chart, with its geometry.

:func:`loss_chart` returns a :class:`Chart`: the SVG text and where its plot area lies, so
that whatever moves a marker over the chart (the replay's player) reads the geometry from the
chart instead of repeating it.

Example:
    >>> from flowlab.chart import loss_chart
    >>> chart = loss_chart([3.0, 2.5, 2.2, 2.1], total=4)
    >>> chart.svg.startswith("<svg"), chart.left, chart.total
    (True, 46, 4)
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

COLORS = {"loss": "#1f77b4", "valid": "#ff7f0e", "reference": "#555555"}


@dataclass(frozen=True)
class Chart:
    """An SVG chart whose x axis runs over steps 0..``total`` from pixel ``left`` to
    ``left + plot_width``; ``marker_id`` names its movable vertical line (or is ``None``)."""

    svg: str
    left: int
    plot_width: int
    total: int
    marker_id: str | None = None

    def x_of(self, step: float) -> float:
        """The horizontal pixel of ``step``."""
        return self.left + step / self.total * self.plot_width

    def _repr_html_(self) -> str:
        return self.svg


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


def loss_chart(loss, valid_step=(), valid_nll=(), reference: float | None = None, total: int | None = None,
               width: int = 456, height: int = 150, marker_id: str | None = None,
               reference_label: str = "true density") -> Chart:
    """A line chart of the training loss per step (averaged in bins of about two pixels), the
    validation NLL and an optional dashed reference line (for example the NLL of the true
    density), with their legend above the plot area. Non-finite losses (skipped steps) are left
    out. With ``marker_id``, a vertical line with that id marks a step."""
    loss = np.asarray(loss, dtype=float)
    steps = np.arange(1, len(loss) + 1, dtype=float)
    keep = np.isfinite(loss)
    vs = np.asarray(valid_step, dtype=float)
    vn = np.asarray(valid_nll, dtype=float)
    total = max(int(total or 0), len(loss), int(vs.max()) if vs.size else 0, 1)
    left, right, top, bottom = 46, 8, 20, 22  # the legend sits above the plot area, never over a curve
    pw, ph = width - left - right, height - top - bottom
    if keep.any():
        xs, ys = _bin_means(loss[keep], max(1, pw // 2))
        xs = np.interp(xs, np.arange(1, keep.sum() + 1), steps[keep])
    else:
        xs, ys = np.zeros(0), np.zeros(0)
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
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{COLORS["reference"]}" '
                   'stroke-dasharray="4 3"/>')
    if xs.size:
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(xs), py(ys)))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{COLORS["loss"]}" stroke-width="1.5"/>')
    if vs.size:
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(vs), py(vn)))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{COLORS["valid"]}" stroke-width="1.5"/>')
    if marker_id is not None:
        out.append(f'<line id="{marker_id}" x1="{left + pw}" x2="{left + pw}" y1="{top}" y2="{top + ph}" '
                   'stroke="#d62728"/>')
    legend = [("train loss", COLORS["loss"], "")]
    if vs.size:
        legend.append(("held-out NLL", COLORS["valid"], ""))
    if reference is not None:
        legend.append((html.escape(reference_label), COLORS["reference"], ' stroke-dasharray="4 3"'))
    x = left + pw - 8
    for name, color, dash in reversed(legend):
        x -= 7 * len(name) + 26
        out.append(f'<line x1="{x}" x2="{x + 16}" y1="{top - 10}" y2="{top - 10}" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 20}" y="{top - 6}" fill="#333">{name}</text>')
    out.append("</svg>")
    return Chart("".join(out), left, pw, total, marker_id)
