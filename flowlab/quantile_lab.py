r"""The 1-D construction of a flow, in pictures: a mixture's CDF, its quantile map, samples, and a
trained flow's map on top of the exact one.

For a density :math:`p` on the line with CDF :math:`F`, the map
:math:`f = F^{-1} \circ \Phi` sends :math:`Z \sim \mathcal N(0, 1)` to :math:`X \sim p`
(:math:`\Phi` the standard normal CDF, :math:`F^{-1}` the generalised inverse). It is the only
increasing map that does so, so a 1-D flow trained by maximum likelihood should learn it.

* :func:`exact_map` tabulates :math:`F` (:func:`flowlab.numerics.cdf_table`) and returns
  :math:`f` on a grid of :math:`z`;
* :func:`panel` draws the density and CDF, the quantile map (with a flow's map if given), and a
  histogram of :math:`f(Z)` against :math:`p`;
* :class:`Explorer` puts sliders on the mixture and a button that trains a flow (needs a kernel);
* :func:`record` trains a 1-D spline flow and returns a :func:`map_replay`, a self-contained
  HTML player of the learned map converging onto the exact one (no kernel needed).

Example:
    >>> import torch
    >>> from flowlab import quantile_lab as ql
    >>> z, x = ql.exact_map((0.5, 0.5), (-2.0, 2.0), (0.5, 0.5))
    >>> bool((x[1:] >= x[:-1]).all())  # the exact map increases
    True
"""

from __future__ import annotations

import io

import torch

from ._checks import check_positive_int, check_seed, seeded_generator
from .core import Flow, StandardNormal
from .numerics.cdf import MAX_CELLS, cdf_table, quantile
from .replay import Replay
from .targets._args import count
from .targets.universality import _mixture, mixture_1d, mixture_1d_log_prob

MAX_FRAMES = 200
"""The most snapshots :func:`record` draws (``steps / every + 1``): each is a matplotlib figure."""

MAX_STEPS = 20_000
"""The most training steps of :func:`record` and :class:`Explorer` (a 1-D spline flow needs hundreds)."""

__all__ = ["Explorer", "map_replay", "exact_map", "figure_png", "flow_map", "panel", "record", "spline_flow"]


def _box(weights, locs, scales) -> tuple[float, float]:
    _, m, s = _mixture(weights, locs, scales)  # checked: one entry each, finite, positive scales
    m, s = m.numpy(), s.numpy()
    return float((m - 9 * s).min()), float((m + 9 * s).max())


def exact_map(weights, locs, scales, z=None, cells: int = 800) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact map :math:`f(z) = F^{-1}(\Phi(z))` of the mixture, at ``z`` (default 401 points
    in :math:`[-3.5, 3.5]`; any finite numbers, an empty tensor gives an empty map), from a
    :func:`~flowlab.numerics.cdf_table` on ``cells`` cells (at most
    :data:`~flowlab.numerics.MAX_CELLS`) and :func:`~flowlab.numerics.quantile`. Returns
    ``(z, f(z))`` in float64. Cost: ``8 * cells`` evaluations of the density, and about 50
    interpolations per point of ``z``.

    Example:
        >>> z, x = exact_map((0.5, 0.5), (-1.0, 1.0), (0.5, 0.5), z=torch.tensor([0.0]))
        >>> abs(float(x[0])) < 1e-9  # a symmetric mixture: the median is 0
        True
    """
    cells = check_positive_int("cells", cells, maximum=MAX_CELLS, hint="(800 reach float64 accuracy here)")
    lo, hi = _box(weights, locs, scales)
    if z is not None:
        try:
            z = torch.as_tensor(z, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"z must be a tensor of latent points, got {type(z).__name__}.") from None
        if not bool(torch.isfinite(z).all()):
            raise ValueError("z contains NaN or infinite values: pass finite latent points.")
        if z.numel() > 10**7:
            raise ValueError(f"z has {z.numel():,} points, more than 10,000,000: evaluate the map in batches.")
    grid = torch.linspace(lo, hi, cells + 1, dtype=torch.float64)
    F, _ = cdf_table(lambda t: mixture_1d_log_prob(t.reshape(-1, 1), weights, locs, scales).exp().reshape(t.shape),
                     grid)
    z = torch.linspace(-3.5, 3.5, 401, dtype=torch.float64) if z is None else z
    return z, quantile(torch.special.ndtr(z), grid, F)


def spline_flow(bins: int = 8, bound: float = 5.0, hidden: int = 8) -> Flow:
    """A 1-D flow of one spline layer: with one feature the masked conditioner has no inputs,
    so the spline's parameters are learned constants (``fl.SplineAutoregressive(1, layers=1)``)."""
    from .autoregressive import SplineAutoregressive

    return Flow(SplineAutoregressive(1, hidden=(hidden,), bins=bins, bound=bound, layers=1), StandardNormal(1))


@torch.no_grad()
def flow_map(flow: Flow, z: torch.Tensor) -> torch.Tensor:
    """The flow's latent-to-data map :math:`x = f_\\theta(z)` at the 1-D points ``z``."""
    x, _ = flow.transform.inverse(z.reshape(-1, 1).to(next(flow.parameters()).dtype))
    return x[:, 0].double()


def panel(weights=(0.3, 0.7), locs=(-2.0, 1.0), scales=(0.4, 0.8), flow: Flow | None = None, n: int = 4000,
          seed: int = 0, title: str | None = None):
    """Three panels for the mixture ``sum_k weights[k] N(locs[k], scales[k]^2)``: the density and
    its CDF; the quantile map :math:`f = F^{-1} \\circ \\Phi` (and ``flow``'s map, dashed); a
    histogram of ``n`` samples :math:`f(Z)` with the density on top. Returns the figure."""
    import matplotlib.pyplot as plt

    n = count(n)
    g = seeded_generator("seed", seed)
    z, fz = exact_map(weights, locs, scales)
    lo, hi = float(fz.min()) - 0.5, float(fz.max()) + 0.5
    xs = torch.linspace(lo, hi, 600, dtype=torch.float64)
    dens = mixture_1d_log_prob(xs[:, None], weights, locs, scales).exp()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), facecolor="white")
    ax = axes[0]
    ax.plot(xs, dens, color="C0", label="density $p(x)$")
    ax2 = ax.twinx()
    ax2.plot(xs, torch.cumsum(dens, 0) * (xs[1] - xs[0]), color="C1", label="CDF $F(x)$")
    ax.set(xlabel="$x$", ylabel="$p(x)$", title="density and CDF")
    ax2.set_ylabel("$F(x)$")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="center left", fontsize=8)
    ax = axes[1]
    ax.plot(z, fz, color="C0", lw=2, label=r"exact $F^{-1}(\Phi(z))$")
    if flow is not None:
        ax.plot(z, flow_map(flow, z), "--", color="C3", label=r"flow $f_\theta(z)$")
    ax.set(xlabel="$z$", ylabel="$x$", title="quantile map")
    ax.legend(fontsize=8)
    ax = axes[2]
    zs = torch.randn(n, generator=g, dtype=torch.float64)
    _, xs_f = exact_map(weights, locs, scales, z=zs)
    ax.hist(xs_f.numpy(), bins=60, range=(lo, hi), density=True, color="C0", alpha=0.5, label="$f(Z)$ samples")
    ax.plot(xs, dens, color="k", lw=1, label="$p(x)$")
    ax.set(xlabel="$x$", ylabel="density", title=f"{n} samples of $f(Z)$")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (white background, 80 dpi, 64-colour palette); the figure is closed."""
    import matplotlib.pyplot as plt

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, facecolor="white")
    plt.close(fig)
    # 64 colours in a palette: a few times smaller than full colour, and the players stay light
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=64)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


MAP_CAPTION = "Solid: the exact map; dashed: the flow's map after the step shown."
"""The caption of :func:`record`'s 1-D frames (the exact quantile map and the flow's, as curves)."""


def map_replay(frames: list[bytes], steps: list[int], distance: list[float], title: str = "",
               caption: str = MAP_CAPTION) -> Replay:
    """A kernel-free player (:class:`flowlab.replay.Replay`) of snapshots of a flow's map, each
    labelled with its step and its mean distance to the exact map. ``caption`` says what the
    frames show (the default describes :func:`record`'s curves; pass your own for other frames).

    Example:
        >>> r = map_replay([b"png-0", b"png-1"], [0, 10], [0.8, 0.1], "demo")
        >>> r.labels()[1], r.html().count("data:image/png;base64,")  # each frame once
        ('step 10 \u00b7 mean |T_flow - T| = 0.100', 2)
    """
    labels = [f"step {s} \u00b7 mean |T_flow - T| = {d:.3f}" for s, d in zip(steps, distance)]
    return Replay(list(frames), list(steps), [], title=title, fps=4.0, step_labels=labels, caption=caption)


def record(weights=(0.3, 0.7), locs=(-2.0, 1.0), scales=(0.4, 0.8), n: int = 2000, steps: int = 400,
           every: int = 40, lr: float = 1e-2, seed: int = 0, flow: Flow | None = None) -> tuple[Replay, Flow, list[float]]:
    r"""Train a 1-D spline flow (:func:`spline_flow`) on ``n`` samples of the mixture with
    :func:`flowlab.fit` and take a snapshot of its map every ``every`` steps. Each frame shows
    the exact quantile map and the flow's; each label the mean distance
    :math:`\frac1m\sum_i |T_\theta(x_i) - \Phi^{-1}(F(x_i))|` over 2000 held-out points (latent
    units). Returns the player (:func:`map_replay`), the trained flow and the distance at each
    snapshot. At most :data:`MAX_STEPS` steps and :data:`MAX_FRAMES` snapshots.

    Example:
        >>> from flowlab import quantile_lab as ql
        >>> player, flow, distance = ql.record(steps=4, every=2, n=200)
        >>> len(distance)  # snapshots at steps 0, 2 and 4
        3
    """
    import matplotlib.pyplot as plt

    from .train import fit
    from .targets.universality import mixture_1d_cdf

    n = count(n)
    steps = check_positive_int("steps", steps, maximum=MAX_STEPS, hint="(a 1-D spline flow needs hundreds)")
    every = check_positive_int("every", every, hint="(steps between snapshots)")
    if steps // every + 1 > MAX_FRAMES:
        raise ValueError(f"steps / every = {steps} / {every} makes {steps // every + 1} snapshots, more than "
                         f"{MAX_FRAMES}: raise every to at least {-(-steps // (MAX_FRAMES - 1))}.")
    seed = check_seed("seed", seed)
    if flow is not None and not isinstance(flow, Flow):
        raise ValueError(f"flow must be a 1-D flowlab Flow (or None for spline_flow()), got {type(flow).__name__}.")
    _mixture(weights, locs, scales)  # checked before any work
    x = mixture_1d(n, weights, locs, scales, seed=seed)
    held = mixture_1d(2000, weights, locs, scales, seed=None if seed is None else (seed + 1) % 2**64)
    exact_latent = torch.special.ndtri(mixture_1d_cdf(held.double(), weights, locs, scales).clamp(1e-12, 1 - 1e-12))
    if flow is None:
        if seed is not None:
            torch.manual_seed(seed)
        flow = spline_flow()
    z, fz = exact_map(weights, locs, scales)
    frames, marks, dist = [], [], []

    def snapshot(step: int, loss: float | None = None):
        if step % every and step != steps:
            return None
        with torch.no_grad():
            d = float((flow.transform(held)[0][:, 0].double() - exact_latent).abs().mean())
        fig, ax = plt.subplots(figsize=(5, 3.2), facecolor="white")
        ax.plot(z, fz, color="C0", lw=2, label=r"exact $F^{-1}(\Phi(z))$")
        ax.plot(z, flow_map(flow, z), "--", color="C3", label=rf"flow after {step} steps")
        ax.set(xlabel="$z$", ylabel="$x$", ylim=(float(fz.min()) - 1, float(fz.max()) + 1))
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        frames.append(figure_png(fig))
        marks.append(step)
        dist.append(d)
        return None

    snapshot(0)
    fit(flow, x, steps=steps, lr=lr, batch_size=256, seed=seed, progress=False, callback=snapshot)
    return map_replay(frames, marks, dist, "a 1-D spline flow learning the quantile map"), flow, dist


class Explorer:
    """Sliders for a two-component mixture (weight, locations, scales), the three panels of
    :func:`panel` redrawn on every change, and a button that trains a 1-D spline flow on 2000
    samples for ``steps`` steps and overlays its map. Needs a kernel: display ``.widget``
    (or the explorer itself) in a notebook. Python callbacks only; no ``interact``.

    Example:
        >>> from flowlab import quantile_lab as ql
        >>> ex = ql.Explorer(steps=20)
        >>> ex.settings()["weights"]
        (0.3, 0.7)
    """

    def __init__(self, steps: int = 300):
        import ipywidgets as w

        self.steps = check_positive_int("steps", steps, maximum=MAX_STEPS, hint="(a 1-D spline flow needs hundreds)")
        self.flow: Flow | None = None
        slider = dict(continuous_update=False, style={"description_width": "initial"})
        self.weight = w.FloatSlider(0.3, min=0.05, max=0.95, step=0.05, description="weight of bump 1", **slider)
        self.locs = [w.FloatSlider(v, min=-4.0, max=4.0, step=0.1, description=f"location {i + 1}", **slider)
                     for i, v in enumerate((-2.0, 1.0))]
        self.scales = [w.FloatSlider(v, min=0.1, max=2.0, step=0.05, description=f"scale {i + 1}", **slider)
                       for i, v in enumerate((0.4, 0.8))]
        self.button = w.Button(description=f"train a flow ({steps} steps)")
        self.status = w.Label("move a slider, or train a flow to overlay its map")
        self.picture = w.Image(format="png")
        for s in [self.weight, *self.locs, *self.scales]:
            s.observe(self._changed, names="value")
        self.button.on_click(lambda _: self.train())
        self.widget = w.VBox([w.HBox([self.weight, *self.locs]), w.HBox([*self.scales, self.button]), self.status,
                              self.picture])
        self.draw()

    def settings(self) -> dict:
        """The mixture the sliders describe, as keywords of :func:`panel` and :func:`record`."""
        wt = round(self.weight.value, 6)
        return dict(weights=(wt, round(1 - wt, 6)), locs=tuple(s.value for s in self.locs),
                    scales=tuple(s.value for s in self.scales))

    def draw(self) -> None:
        """Redraw the three panels into the picture (PNG bytes in an image widget: no output
        capture, so the same code runs in a kernel, in a notebook executed headless, or in none)."""
        self.picture.value = figure_png(panel(**self.settings(), flow=self.flow, n=2000))

    def _changed(self, _change) -> None:
        self.flow = None
        self.status.value = "new mixture: press the button to train a flow on it"
        self.draw()

    def train(self) -> None:
        """Train a fresh 1-D spline flow on the current mixture and redraw with its map."""
        from .train import fit

        self.status.value = "training..."
        x = mixture_1d(2000, **self.settings(), seed=0)
        torch.manual_seed(0)
        flow = spline_flow()
        try:
            fit(flow, x, steps=self.steps, lr=1e-2, batch_size=256, progress=False)
        except ValueError as e:  # a message on screen, never a traceback
            self.status.value = f"training failed: {e}"
            return
        self.flow = flow
        z = torch.linspace(-3, 3, 201, dtype=torch.float64)
        gap = float((flow_map(flow, z) - exact_map(**self.settings(), z=z)[1]).abs().mean())
        self.status.value = f"trained {self.steps} steps: mean |f_flow(z) - f(z)| over z in [-3, 3] = {gap:.3f}"
        self.draw()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
