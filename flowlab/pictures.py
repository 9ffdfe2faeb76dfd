"""Pictures of a 2-D flow with numpy alone: fast enough to redraw a dozen times a second.

:class:`Painter` turns a flow into one PNG: on the left the data (grey) and the flow's samples
(red), on the right the flow's density as a heat map with its colour bar. Both panels show the
square :math:`[-e, e]^2` (:math:`x_1` across, :math:`x_2` up) with a tick at every integer
(every power of ten for wide views: :func:`tick_step`).
The live dashboard and the kernel-free replays draw with it.

Example:
    >>> import flowlab as fl
    >>> from flowlab.pictures import Painter
    >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
    >>> painter = Painter(fl.targets.moons(200, seed=0), grid=16, size=32)
    >>> painter(flow)[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import torch
from torch import Tensor

from ._checks import as_data, check_colormap, check_positive_float, check_positive_int
from .core import Flow
from .numerics.quadrature import box_grid

# Palette entries 0..239 are the colour map; the rest are fixed colours (RGB).
LEVELS = 240
WHITE, DATA, SAMPLE, FRAME, TEXT = 240, 241, 242, 243, 244
_FIXED = [(255, 255, 255), (200, 200, 200), (214, 39, 40), (110, 110, 110), (40, 40, 40)]
GAP, BAR = 10, 10  # pixels between the panels, width of the colour bar
# margins for the numbers: right of the colour bar (any number of 6 characters), above and below the
# panels; the margin left of the left panel fits the numbers of its axis (:func:`left_margin`)
RIGHT, TOP, BOTTOM = 37, 4, 11

# A 5 x 7 pixel font for the numbers on the axes and the colour bar ('#' is ink).
_GLYPHS = {
    "0": ".###.|#...#|#...#|#...#|#...#|#...#|.###.", "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
    "2": ".###.|#...#|....#|...#.|..#..|.#...|#####", "3": "####.|....#|....#|.###.|....#|....#|####.",
    "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.", "5": "#####|#....|####.|....#|....#|#...#|.###.",
    "6": "..##.|.#...|#....|####.|#...#|#...#|.###.", "7": "#####|....#|...#.|..#..|.#...|.#...|.#...",
    "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.", "9": ".###.|#...#|#...#|.####|....#|...#.|.##..",
    ".": "..|..|..|..|..|##|##", "-": "....|....|....|####|....|....|....",
    "e": ".....|.....|.###.|#...#|#####|#....|.###.",
}
_FONT = {c: np.array([[ch == "#" for ch in row] for row in g.split("|")]) for c, g in _GLYPHS.items()}


def number(value: float) -> str:
    """A number in at most 6 characters for the pictures: ``0.153``, ``12.3``, ``1.5e-5``, ``2e3``,
    ``2e-10`` (one significant digit when two do not fit)."""
    if value == 0:
        return "0"
    if 1e-2 <= abs(value) < 1e3:
        return f"{value:.3g}"
    for digits in (1, 0):
        mantissa, exponent = f"{value:.{digits}e}".split("e")
        text = f"{mantissa.rstrip('0').rstrip('.') if '.' in mantissa else mantissa}e{int(exponent)}"
        if len(text) <= 6:
            break
    return text


def text_width(text: str) -> int:
    """Width in pixels of ``text`` in the pictures' font (one blank column between characters)."""
    return sum(_FONT[c].shape[1] + 1 for c in text) - 1 if text else 0


def write(image: np.ndarray, text: str, x: int, y: int, color: int = TEXT, align: str = "left") -> None:
    """Write ``text`` (digits, ``.``, ``-``, ``e``) into ``image``, its top at row ``y``; ``x`` is
    its left edge, centre or right edge for ``align`` "left", "center" or "right". Clipped at
    the image's edges."""
    x -= {"left": 0, "center": text_width(text) // 2, "right": text_width(text)}[align]
    h, w = image.shape
    for c in text:
        glyph = _FONT[c]
        gh, gw = glyph.shape
        rows, cols = np.nonzero(glyph)
        rows, cols = rows + y, cols + x
        keep = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        image[rows[keep], cols[keep]] = color
        x += gw + 1


def palette(cmap: str = "viridis") -> np.ndarray:
    """The 244 RGB colours of the pictures: ``cmap`` (a matplotlib colour map) and the fixed ones."""
    import matplotlib

    check_colormap("cmap", cmap)
    lut = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, LEVELS))[:, :3]
    return np.concatenate([np.round(lut * 255).astype(np.uint8), np.array(_FIXED, dtype=np.uint8)])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(indices: np.ndarray, colors: np.ndarray, level: int = 6) -> bytes:
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
        + _chunk(b"PLTE", np.ascontiguousarray(colors, dtype=np.uint8).tobytes())
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


def tick_step(extent: float) -> float:
    """The spacing of the ticks on the pictures' axes: 1 up to an extent of 8, else a power of 10
    that gives at most 16 ticks."""
    return 1.0 if extent <= 8 else 10.0 ** math.ceil(math.log10(extent / 8))


def ticks(extent: float, size: int) -> list[tuple[float, int, bool]]:
    """The ticks of a panel ``size`` pixels wide showing ``[-extent, extent]``: ``(value, pixel
    from the left or bottom, numbered)``. Every :func:`tick_step`; numbered as often as the
    numbers fit, always at 0."""
    step = tick_step(extent)
    count = math.floor(extent / step)
    spacing = step / (2 * extent) * (size - 1)
    widest = max(text_width(number(k * step)) for k in (-count, count)) if count else 0
    every = max(1, math.ceil((widest + 4) / max(spacing, 1e-9)))
    return [(k * step, int(round((k * step + extent) / (2 * extent) * (size - 1))), k % every == 0)
            for k in range(-count, count + 1)]


def _frame(panel: np.ndarray, extent: float) -> None:
    """A grey frame with a tick every :func:`tick_step` along the bottom and left edges."""
    size = panel.shape[0]
    panel[[0, -1], :] = FRAME
    panel[:, [0, -1]] = FRAME
    for _, at, _ in ticks(extent, size):
        panel[-5:, at] = FRAME
        panel[size - 1 - at, :5] = FRAME


def left_margin(extent: float, size: int) -> int:
    """The margin left of the left panel: room for the numbers of its axis."""
    return 4 + max(text_width(number(value)) for value, _, numbered in ticks(extent, size) if numbered)


def shape(size: int, extent: float) -> tuple[int, int]:
    """``(height, width)`` in pixels of a picture of the square ``[-extent, extent]^2`` whose
    panels are ``size`` pixels wide."""
    return TOP + size + BOTTOM, left_margin(extent, size) + 2 * size + 2 * GAP + BAR + RIGHT


def picture(log_density: np.ndarray, samples: np.ndarray, points: np.ndarray | None, extent: float,
            size: int = 224) -> np.ndarray:
    """Palette indices of the picture: left, the data (grey) and the flow's samples (red);
    right, the flow's density divided by its maximum as a heat map, then the colour bar,
    numbered from 0 at the bottom to the largest density at the top. ``log_density`` is a
    (G, G) grid whose row 0 is the top (largest :math:`x_2`); both panels show the square
    [-extent, extent]^2, numbered along the bottom of both and the left edge of the left one.
    The shape is :func:`shape` of ``size`` and ``extent``."""
    left = np.full((size, size), WHITE, dtype=np.uint8)
    if points is not None:
        _splat(left, points, extent, DATA, 2)
    _splat(left, samples, extent, SAMPLE, 2)
    _frame(left, extent)
    logp = np.where(np.isfinite(log_density), log_density, -np.inf)
    top = logp.max()
    density = np.exp(logp - top) if np.isfinite(top) else np.zeros_like(logp)
    right = np.clip(_upsample(density, size) * (LEVELS - 1) + 0.5, 0, LEVELS - 1).astype(np.uint8)
    _frame(right, extent)
    bar = np.repeat(np.linspace(LEVELS - 1, 0, size).round().astype(np.uint8)[:, None], BAR, 1)
    bar[[0, -1], :] = FRAME
    bar[:, [0, -1]] = FRAME
    out = np.full(shape(size, extent), WHITE, dtype=np.uint8)
    rows = slice(TOP, TOP + size)
    left_x = left_margin(extent, size)
    x_right, x_bar = left_x + size + GAP, left_x + 2 * size + 2 * GAP
    out[rows, left_x : left_x + size] = left
    out[rows, x_right : x_right + size] = right
    out[rows, x_bar : x_bar + BAR] = bar
    for value, at, numbered in ticks(extent, size):
        if numbered:
            label = number(value)
            half = text_width(label) // 2
            for x in (left_x, x_right):  # under both panels, where the number stays within half the gap
                if -GAP // 2 < at - half and at + half < size - 1 + GAP // 2:
                    write(out, label, x + at, TOP + size + 3, align="center")
            write(out, label, left_x - 3, TOP + size - 1 - at - 3, align="right")
    if np.isfinite(top):
        write(out, number(math.exp(top)) if top < 700 else "", x_bar + BAR + 3, TOP - 3)
        write(out, "0", x_bar + BAR + 3, TOP + size - 4)
    return out


def lattice(extent: float, grid: int) -> Tensor:
    """The centres of a ``grid x grid`` lattice of cells over ``[-extent, extent]^2``, float64,
    shape ``(grid**2, 2)``, in the order of a picture's pixels: row by row from the top
    (largest :math:`x_2`), each row from left to right.

    Example:
        >>> lattice(1.0, 2)
        tensor([[-0.5000,  0.5000],
                [ 0.5000,  0.5000],
                [-0.5000, -0.5000],
                [ 0.5000, -0.5000]], dtype=torch.float64)
    """
    x, _ = box_grid(extent, cells=grid)  # cell centres, x.reshape(grid, grid, 2)[i, j] = (x1_i, x2_j)
    return x.reshape(grid, grid, 2).transpose(0, 1).flip(0).reshape(-1, 2)  # row 0 at the top


def extent_for(points: Tensor | np.ndarray) -> float:
    """Half-width of a square view centred at 0 that holds nearly all ``points``, rounded up to 0.5."""
    p = torch.as_tensor(points, dtype=torch.float32).detach().cpu()
    q = torch.quantile(p.abs().flatten(), 0.995).item() if p.numel() <= 16_000_000 else p.abs().max().item()
    return max(0.5, math.ceil(1.15 * q * 2) / 2)


class Painter:
    """Draws a 2-D flow as one PNG picture: samples over the data, and the density heat map.

    The latent points behind the samples are drawn once (``seed``), so successive pictures
    of a training run show the same points moving. The density is evaluated on a
    ``grid x grid`` lattice (``grid**2`` points in one batch of ``log_prob``), interpolated to
    ``size`` pixels and coloured with ``cmap``; :meth:`render` also returns the largest density
    value, which the colour bar's top stands for. The lattice and the latent points are moved
    to the flow's device and dtype at each call (a no-op when they are there already).
    """

    def __init__(self, points=None, extent: float | None = None, grid: int = 64, size: int = 224,
                 samples: int = 500, seed: int = 0, cmap: str = "viridis", level: int = 6):
        self.points = None if points is None else as_data("points", points, 2).detach().cpu().numpy()
        if extent is None:
            extent = 4.0 if self.points is None else extent_for(self.points)
        self.extent = check_positive_float("extent", extent)
        self.size = check_positive_int("size", size, 8)
        self.samples = check_positive_int("samples", samples)
        self.level = check_positive_int("level", level, minimum=0, maximum=9, hint="(the PNG compression level)")
        self.colors = palette(cmap)
        self.z = torch.randn(self.samples, 2, generator=torch.Generator().manual_seed(seed))
        self.set_grid(grid)

    @property
    def width(self) -> int:
        """Width of the picture in pixels."""
        return shape(self.size, self.extent)[1]

    @property
    def height(self) -> int:
        """Height of the picture in pixels (the panels are :attr:`size` pixels high)."""
        return shape(self.size, self.extent)[0]

    def set_grid(self, grid: int) -> None:
        """Evaluate the density on a ``grid x grid`` lattice (:func:`lattice`) from now on."""
        self.grid = check_positive_int("grid", grid, 2)
        self.lattice = lattice(self.extent, self.grid)

    @staticmethod
    def _like(flow: Flow) -> dict:
        if flow.features != 2:
            raise ValueError(f"the pictures show 2-D flows; this flow has {flow.features} features.")
        return dict(device=flow.device, dtype=flow.dtype)

    @torch.no_grad()
    def density(self, flow: Flow) -> np.ndarray:
        """The flow's log-density on the grid, shape (grid, grid), row 0 at the top."""
        return flow.log_prob(self.lattice.to(**self._like(flow))).view(self.grid, self.grid).float().cpu().numpy()

    @torch.no_grad()
    def sample(self, flow: Flow) -> np.ndarray:
        """The flow's samples from the fixed latent points, shape (samples, 2)."""
        x, _ = flow.transform.inverse(self.z.to(**self._like(flow)))
        return x.float().cpu().numpy()

    def evaluate(self, flow: Flow) -> tuple[np.ndarray, np.ndarray]:
        """The flow's log-density on the grid, shape (grid, grid), and its samples, (samples, 2)."""
        return self.density(flow), self.sample(flow)

    def draw(self, log_density: np.ndarray, samples: np.ndarray) -> bytes:
        return png(picture(log_density, samples, self.points, self.extent, self.size), self.colors, self.level)

    def render(self, flow: Flow, samples: np.ndarray | None = None) -> tuple[bytes, float]:
        """The PNG bytes of the picture of ``flow`` and the largest density on the grid.
        ``samples`` (from :meth:`sample`) are drawn instead of new ones when given."""
        logp = self.density(flow)
        x = self.sample(flow) if samples is None else samples
        finite = logp[np.isfinite(logp)]
        top = float(finite.max()) if finite.size else -math.inf
        return self.draw(logp, x), math.exp(top) if top < 700 else math.inf

    def __call__(self, flow: Flow) -> bytes:
        """The PNG bytes of the picture of ``flow``."""
        return self.render(flow)[0]


def caption(extent: float, points_label: str = "data", peak: float | None = None) -> str:
    """The words under a picture: what each panel shows and the ranges of its axes and colours."""
    top = f"{peak:.3g}" if peak is not None and math.isfinite(peak) else "its maximum"
    e, step = f"{extent:g}", tick_step(extent)
    ticks = "a tick at every integer" if step == 1 else f"a tick every {step:g}"
    return (f"Left: {points_label} (grey) and samples of the flow (red). Right: density of the flow; colour bar "
            f"from 0 (bottom) to {top} (top). Both panels: x\u2081 and x\u2082 from \u2212{e} to {e}, {ticks}.")
