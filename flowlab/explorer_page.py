r"""The universality chapter's 1-D explorer, computed in the browser: it works on the static site
as well as in a notebook, with or without a kernel.

For the two-component mixture :math:`p(x) = w\,\mathcal N(x; m_1, s_1^2) + (1 - w)\,\mathcal N(x;
m_2, s_2^2)` set by five sliders, the page draws the density and its CDF
:math:`F(x) = \sum_k w_k \Phi((x - m_k)/s_k)`, the quantile map :math:`f = F^{-1} \circ \Phi`
(the only increasing map with :math:`f(Z) \sim p` for :math:`Z \sim \mathcal N(0, 1)`), and a
histogram of :math:`f(Z)` for 2000 fixed normal draws against :math:`p`. A few lines of
JavaScript compute it: :math:`\Phi` from a rational approximation of erfc (relative error below
:math:`1.2 \cdot 10^{-7}`), :math:`f(z)` by 60 bisection steps on :math:`F(x) = \Phi(z)`, so a
slider move costs about :math:`60 \times 2200` evaluations of :math:`F`, a few milliseconds.

A flow cannot be trained in a page without Python. Instead, for each :class:`Preset` a 1-D
spline flow (:func:`flowlab.quantile_lab.spline_flow`) is trained when the notebook runs
(:func:`record`), and its map :math:`f_\theta` on a grid of :math:`z` is kept at snapshots: a
replay. Choosing a preset sets the sliders and shows the flow's map, dashed, at any recorded
step, with its mean distance to the exact map. Away from the presets no flow is shown (none
was trained there). Training costs ``steps`` Adam steps of batch 256 per preset (about a
second each on a CPU); the page holds ``len(z) x snapshots`` numbers per preset.

References: Papamakarios et al., "Normalizing flows for probabilistic modeling and inference",
JMLR 2021, section 2.2 (the 1-D construction); Durkan et al., "Neural spline flows", 2019.

Example:
    >>> from flowlab import explorer_page
    >>> demo = explorer_page.Preset("demo", 0.5, (-1.0, 1.0), (0.3, 0.6))
    >>> page = explorer_page.explorer([demo], steps=20, every=10)
    >>> page.recordings[0].steps
    [0, 10, 20]
    >>> html = page.html()
    >>> html.count('type="range"')  # five sliders for the mixture, one for the flow's training step
    6
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass

import torch

from ._checks import check_positive_int, check_seed
from .quantile_lab import flow_map, spline_flow
from .targets.universality import mixture_1d, mixture_1d_cdf

__all__ = ["Explorer", "Preset", "Recording", "explorer", "record"]

# the sliders: (low, high, step) of the first component's weight, the locations and the scales
WEIGHT, LOC, SCALE = (0.05, 0.95, 0.05), (-4.0, 4.0, 0.1), (0.1, 2.0, 0.05)
Z = torch.linspace(-3.5, 3.5, 141, dtype=torch.float64)  # where the flows' maps are kept


def _on_grid(name: str, value, grid: tuple[float, float, float]) -> float:
    low, high, step = grid
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}.") from None
    k = round((value - low) / step)
    if not low - 1e-9 <= value <= high + 1e-9 or abs(low + k * step - value) > 1e-9:
        raise ValueError(f"{name} must lie in [{low}, {high}] on the slider's steps of {step}, got {value!r}.")
    return round(low + k * step, 6)


@dataclass(frozen=True)
class Preset:
    """A mixture the explorer offers as a button: ``weight`` of the first component, the two
    ``locs`` and ``scales``, each on its slider's steps (weight 0.05..0.95 by 0.05, locations
    -4..4 by 0.1, scales 0.1..2 by 0.05)."""

    name: str
    weight: float
    locs: tuple[float, float]
    scales: tuple[float, float]

    def __post_init__(self):
        if len(tuple(self.locs)) != 2 or len(tuple(self.scales)) != 2:
            raise ValueError(f"locs and scales must give two values each (two components), got {self.locs!r} "
                             f"and {self.scales!r}.")
        object.__setattr__(self, "weight", _on_grid("weight", self.weight, WEIGHT))
        object.__setattr__(self, "locs", tuple(_on_grid(f"locs[{i}]", v, LOC) for i, v in enumerate(self.locs)))
        object.__setattr__(self, "scales", tuple(_on_grid(f"scales[{i}]", v, SCALE) for i, v in enumerate(self.scales)))

    def mixture(self) -> dict:
        """The keywords ``weights``, ``locs``, ``scales`` of :mod:`flowlab.targets.universality`."""
        return dict(weights=(self.weight, round(1 - self.weight, 6)), locs=self.locs, scales=self.scales)


PRESETS = (
    Preset("the chapter's mixture", 0.3, (-2.0, 1.0), (0.4, 0.8)),
    Preset("a narrow and a wide bump", 0.5, (-1.0, 1.0), (0.2, 1.0)),
    Preset("two bumps far apart", 0.5, (-3.0, 3.0), (0.5, 0.5)),
)


@dataclass
class Recording:
    """A 1-D spline flow trained on a preset: its map :math:`f_\\theta` on :data:`Z` at each
    recorded step, and its mean distance :math:`|T_\\theta(x) - \\Phi^{-1}(F(x))|` to the exact
    data-to-latent map over 2000 held-out points (latent units)."""

    preset: Preset
    steps: list[int]
    maps: list[list[float]]
    distance: list[float]


def record(preset: Preset, steps: int = 300, every: int = 30, n: int = 2000, lr: float = 1e-2,
           seed: int = 0) -> Recording:
    """Train a fresh 1-D spline flow on ``n`` samples of ``preset`` for ``steps`` steps
    (:func:`flowlab.fit`, batch 256) and keep its map every ``every`` steps (and before the first)."""
    from .train import fit

    steps, every = check_positive_int("steps", steps), check_positive_int("every", every)
    n, seed = check_positive_int("n", n, minimum=2), check_seed("seed", seed)
    mixture = preset.mixture()
    x = mixture_1d(n, **mixture, seed=seed)
    held = mixture_1d(2000, **mixture, seed=seed + 1)
    exact_latent = torch.special.ndtri(mixture_1d_cdf(held.double(), **mixture).clamp(1e-12, 1 - 1e-12))
    torch.manual_seed(seed)
    flow = spline_flow()
    out = Recording(preset, [], [], [])

    def snapshot(step: int, _loss: float | None = None) -> None:
        if step % every and step != steps:
            return
        with torch.no_grad():
            latent = flow.transform(held)[0][:, 0].double()
        out.steps.append(step)
        out.maps.append([round(float(v), 4) for v in flow_map(flow, Z)])
        out.distance.append(round(float((latent - exact_latent).abs().mean()), 4))

    snapshot(0)
    fit(flow, x, steps=steps, lr=lr, batch_size=256, seed=seed, progress=False, callback=snapshot)
    return out


@dataclass
class Explorer:
    """The explorer's data: the presets' recordings. It displays as a self-contained HTML
    fragment (``_repr_html_``); :meth:`html` gives it as a string."""

    recordings: list[Recording]
    samples: int = 2000

    def html(self) -> str:
        """The explorer: sliders, preset buttons, three SVG panels, the flows' replay, and its script."""
        uid = "flowlab-explorer-" + uuid.uuid4().hex[:12]
        data = json.dumps({
            "z": [round(float(v), 4) for v in Z],
            "samples": self.samples,
            "presets": [{"name": r.preset.name, "weight": r.preset.weight, "locs": list(r.preset.locs),
                         "scales": list(r.preset.scales), "steps": r.steps, "maps": r.maps, "distance": r.distance}
                        for r in self.recordings],
        }).replace("</", "<\\/")  # nothing in the data can close the script
        first = self.recordings[0].preset if self.recordings else PRESETS[0]
        sliders = [("weight", "weight of bump 1", WEIGHT, first.weight),
                   ("loc0", "location of bump 1", LOC, first.locs[0]),
                   ("loc1", "location of bump 2", LOC, first.locs[1]),
                   ("scale0", "scale of bump 1", SCALE, first.scales[0]),
                   ("scale1", "scale of bump 2", SCALE, first.scales[1])]
        controls = "".join(
            f'<div><label for="{uid}-{key}">{words}</label>: <output id="{uid}-{key}-value">{value:g}</output>'
            f'<input id="{uid}-{key}" type="range" min="{low}" max="{high}" step="{step}" value="{value}" '
            f'style="display:block;width:100%;accent-color:#1f5fa8"></div>'
            for key, words, (low, high, step), value in sliders)
        buttons = "".join(f'<button type="button" data-preset="{i}" style="margin:2px 6px 2px 0">'
                          f"{html.escape(r.preset.name)}</button>" for i, r in enumerate(self.recordings))
        panels = "".join(f'<svg id="{uid}-{name}" viewBox="0 0 340 230" role="img" style="width:100%;height:auto">'
                         "</svg>" for name in ("density", "map", "samples"))
        return f"""<div id="{uid}" class="flowlab-explorer" style="font:13px/1.4 sans-serif;max-width:100%;margin:0.5em 0;color:#222;background:#fff;padding:8px;border:1px solid #ccc">
<div style="display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:2px 18px">{controls}</div>
<div style="margin:6px 0">Presets, each with a flow trained on it: {buttons}</div>
<div style="display:grid;grid-template-columns:repeat(auto-fit,minmax(290px,1fr));gap:8px">{panels}
<div id="{uid}-flow" aria-live="polite" style="align-self:center">
<div id="{uid}-trained"><strong>A spline flow trained on this mixture</strong> (dashed in the middle panel).
<input id="{uid}-step" type="range" min="0" max="0" step="1" value="0" aria-label="training step of the flow"
 style="display:block;width:100%;accent-color:#c0392b">
<button id="{uid}-play" type="button">&#9654; Play</button> <span id="{uid}-steplabel"></span></div>
<div id="{uid}-untrained">No flow was trained on this mixture: pick a preset to see one learn its map.
Training needs Python (run the notebook).</div>
</div></div>
<div style="color:#555;font-size:12px">Computed in the page from the sliders: the density and CDF, the map
f = F<sup>-1</sup>&#8728;&Phi;, and {self.samples} draws f(Z). The flows were trained when the notebook ran.</div>
<script>{_SCRIPT.replace("__UID__", uid).replace("__DATA__", data)}</script>
</div>"""

    def _repr_html_(self) -> str:
        return self.html()


def explorer(presets=PRESETS, steps: int = 300, every: int = 30, seed: int = 0) -> Explorer:
    """Train one flow per preset (:func:`record`) and return the :class:`Explorer` that shows them."""
    presets = list(presets)
    for i, p in enumerate(presets):
        if not isinstance(p, Preset):
            raise ValueError(f"presets[{i}] must be a flowlab.explorer_page.Preset, got {type(p).__name__}.")
    return Explorer([record(p, steps=steps, every=every, seed=seed) for p in presets])


_SCRIPT = r"""(function init(tries) {
  var root = document.getElementById("__UID__");
  if (!root) { if (tries < 50) setTimeout(function () { init(tries + 1); }, 100); return; }
  var D = __DATA__, uid = "__UID__", NS = "http://www.w3.org/2000/svg";
  function el(id) { return document.getElementById(uid + "-" + id); }
  var keys = ["weight", "loc0", "loc1", "scale0", "scale1"];
  function erfc(x) {  // Numerical Recipes' erfcc: relative error below 1.2e-7
    var z = Math.abs(x), t = 1 / (1 + 0.5 * z);
    var r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 +
      t * 0.17087277)))))))));
    return x >= 0 ? r : 2 - r;
  }
  function Phi(x) { return 0.5 * erfc(-x / Math.SQRT2); }
  function settings() {
    var v = keys.map(function (k) { return +el(k).value; });
    return {weights: [v[0], 1 - v[0]], locs: [v[1], v[2]], scales: [v[3], v[4]]};
  }
  function density(s, x) {
    var p = 0;
    for (var k = 0; k < 2; k++) { var u = (x - s.locs[k]) / s.scales[k]; p += s.weights[k] * Math.exp(-0.5 * u * u) / (s.scales[k] * 2.5066282746310002); }
    return p;
  }
  function cdf(s, x) {
    var F = 0;
    for (var k = 0; k < 2; k++) F += s.weights[k] * Phi((x - s.locs[k]) / s.scales[k]);
    return F;
  }
  function quantileMap(s, z) {  // f(z) = F^{-1}(Phi(z)) by bisection
    var lo = Math.min(s.locs[0] - 9 * s.scales[0], s.locs[1] - 9 * s.scales[1]);
    var hi = Math.max(s.locs[0] + 9 * s.scales[0], s.locs[1] + 9 * s.scales[1]), u = Phi(z);
    for (var i = 0; i < 60; i++) { var mid = 0.5 * (lo + hi); if (cdf(s, mid) < u) lo = mid; else hi = mid; }
    return 0.5 * (lo + hi);
  }
  var draws = (function () {  // fixed standard normal draws: mulberry32 and Box-Muller
    var a = 20240601, out = [];
    function rand() {
      a |= 0; a = a + 0x6D2B79F5 | 0; var t = Math.imul(a ^ a >>> 15, 1 | a);
      t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296;
    }
    while (out.length < D.samples) {
      var r = Math.sqrt(-2 * Math.log(1 - rand())), th = 2 * Math.PI * rand();
      out.push(r * Math.cos(th), r * Math.sin(th));
    }
    return out.slice(0, D.samples);
  })();
  function ticks(lo, hi, n) {
    var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / n))), err = span / n / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step) out.push(+t.toFixed(10));
    return out;
  }
  function fmt(v) { return String(+v.toFixed(3)).replace("-", "\u2212"); }
  function esc(t) { return String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;"); }
  // One panel: axes with ticks and labels, then curves [{x: [...], y: [...], dash, color, axis2}] and bars.
  function panel(svg, o) {
    var W = 340, H = 230, L = 46, R = o.y2 ? 40 : 12, T = 22, B = 38, out = [];
    function sx(x) { return L + (x - o.x[0]) / (o.x[1] - o.x[0]) * (W - L - R); }
    function sy(y, r) { r = r || o.y; return H - B - (y - r[0]) / (r[1] - r[0]) * (H - T - B); }
    out.push('<rect x="0" y="0" width="' + W + '" height="' + H + '" fill="#fff"/>');
    out.push('<text x="' + (W / 2) + '" y="14" text-anchor="middle" font-size="12" font-weight="bold">' + esc(o.title) + "</text>");
    (o.bars || []).forEach(function (b) {
      out.push('<rect x="' + sx(b[0]).toFixed(1) + '" y="' + sy(b[2]).toFixed(1) + '" width="' + Math.max(0, sx(b[1]) - sx(b[0]) - 0.5).toFixed(1) +
               '" height="' + Math.max(0, sy(0) - sy(b[2])).toFixed(1) + '" fill="#9ecae1"/>');
    });
    (o.curves || []).forEach(function (c) {
      var d = "";
      for (var i = 0; i < c.x.length; i++) d += (i ? "L" : "M") + sx(c.x[i]).toFixed(1) + " " + sy(c.y[i], c.axis2 ? o.y2 : o.y).toFixed(1);
      out.push('<path d="' + d + '" fill="none" stroke="' + c.color + '" stroke-width="' + (c.width || 1.8) + '"' + (c.dash ? ' stroke-dasharray="6 4"' : "") + "/>");
    });
    out.push('<rect x="' + L + '" y="' + T + '" width="' + (W - L - R) + '" height="' + (H - T - B) + '" fill="none" stroke="#444"/>');
    ticks(o.x[0], o.x[1], 6).forEach(function (t) {
      out.push('<line x1="' + sx(t) + '" x2="' + sx(t) + '" y1="' + (H - B) + '" y2="' + (H - B + 4) + '" stroke="#444"/>');
      out.push('<text x="' + sx(t) + '" y="' + (H - B + 15) + '" text-anchor="middle" font-size="11">' + fmt(t) + "</text>");
    });
    ticks(o.y[0], o.y[1], 5).forEach(function (t) {
      out.push('<line x1="' + (L - 4) + '" x2="' + L + '" y1="' + sy(t) + '" y2="' + sy(t) + '" stroke="#444"/>');
      out.push('<text x="' + (L - 6) + '" y="' + (sy(t) + 4) + '" text-anchor="end" font-size="11">' + fmt(t) + "</text>");
    });
    if (o.y2) ticks(o.y2[0], o.y2[1], 5).forEach(function (t) {
      out.push('<line x1="' + (W - R) + '" x2="' + (W - R + 4) + '" y1="' + sy(t, o.y2) + '" y2="' + sy(t, o.y2) + '" stroke="#444"/>');
      out.push('<text x="' + (W - R + 6) + '" y="' + (sy(t, o.y2) + 4) + '" font-size="11">' + fmt(t) + "</text>");
    });
    out.push('<text x="' + ((L + W - R) / 2) + '" y="' + (H - 6) + '" text-anchor="middle" font-size="11">' + esc(o.xlabel) + "</text>");
    out.push('<text transform="translate(11 ' + ((T + H - B) / 2) + ') rotate(-90)" text-anchor="middle" font-size="11">' + esc(o.ylabel) + "</text>");
    if (o.y2label) out.push('<text transform="translate(' + (W - 4) + " " + ((T + H - B) / 2) + ') rotate(-90)" text-anchor="middle" font-size="11">' + esc(o.y2label) + "</text>");
    (o.legend || []).forEach(function (g, i) {
      var y = T + 14 + 14 * i, x = L + 8;
      out.push('<line x1="' + x + '" x2="' + (x + 20) + '" y1="' + (y - 4) + '" y2="' + (y - 4) + '" stroke="' + g[1] + '" stroke-width="2"' + (g[2] ? ' stroke-dasharray="6 4"' : "") + "/>");
      out.push('<text x="' + (x + 25) + '" y="' + y + '" font-size="11">' + esc(g[0]) + "</text>");
    });
    svg.innerHTML = out.join("");
    svg.setAttribute("aria-label", o.label);
  }
  function describe(s) {
    return fmt(s.weights[0]) + " N(" + fmt(s.locs[0]) + ", " + fmt(s.scales[0]) + "\u00b2) + " + fmt(s.weights[1]) +
      " N(" + fmt(s.locs[1]) + ", " + fmt(s.scales[1]) + "\u00b2)";
  }
  function matching() {  // the preset the sliders show, or -1
    var s = settings();
    for (var i = 0; i < D.presets.length; i++) {
      var p = D.presets[i];
      if (Math.abs(p.weight - s.weights[0]) < 1e-6 && Math.abs(p.locs[0] - s.locs[0]) < 1e-6 && Math.abs(p.locs[1] - s.locs[1]) < 1e-6 &&
          Math.abs(p.scales[0] - s.scales[0]) < 1e-6 && Math.abs(p.scales[1] - s.scales[1]) < 1e-6) return i;
    }
    return -1;
  }
  var timer = null;
  function draw() {
    var s = settings(), i, n = 241;
    keys.forEach(function (k) { el(k + "-value").textContent = (+el(k).value).toFixed(2).replace(/0$/, ""); });
    var fz = D.z.map(function (z) { return quantileMap(s, z); });
    var lo = fz[0] - 0.5, hi = fz[fz.length - 1] + 0.5, xs = [], ps = [], Fs = [];
    for (i = 0; i < n; i++) { var x = lo + (hi - lo) * i / (n - 1); xs.push(x); ps.push(density(s, x)); Fs.push(cdf(s, x)); }
    var pmax = Math.max.apply(null, ps) * 1.08, who = describe(s);
    panel(el("density"), {title: "density and CDF", x: [lo, hi], y: [0, pmax], y2: [0, 1], xlabel: "x", ylabel: "p(x)", y2label: "F(x)",
      curves: [{x: xs, y: ps, color: "#1f5fa8"}, {x: xs, y: Fs, color: "#e07b00", axis2: true}],
      legend: [["p(x)", "#1f5fa8"], ["F(x), right axis", "#e07b00"]],
      label: "Density p(x) and CDF F(x) of the mixture " + who + "."});
    var m = matching(), curves = [{x: D.z, y: fz, color: "#1f5fa8", width: 2.2}], legend = [["exact f(z) = F\u207b\u00b9(\u03a6(z))", "#1f5fa8"]];
    var flowText = "";
    el("trained").style.display = m >= 0 ? "" : "none";
    el("untrained").style.display = m >= 0 ? "none" : "";
    if (m >= 0) {
      var P = D.presets[m], k = Math.min(+el("step").value, P.steps.length - 1);
      el("step").max = P.steps.length - 1;
      curves.push({x: D.z, y: P.maps[k], color: "#c0392b", dash: true});
      legend.push(["flow f\u03b8(z) after " + P.steps[k] + " steps", "#c0392b", true]);
      el("steplabel").textContent = "step " + P.steps[k] + " of " + P.steps[P.steps.length - 1] +
        " \u00b7 mean |T\u03b8 \u2212 T| = " + P.distance[k].toFixed(3) + " (held-out, latent units)";
      flowText = " Dashed: a spline flow trained on this mixture, after " + P.steps[k] + " steps.";
    } else { pause(); }
    var ylo = Math.min.apply(null, fz), yhi = Math.max.apply(null, fz);
    panel(el("map"), {title: "quantile map", x: [D.z[0], D.z[D.z.length - 1]], y: [ylo - 0.5, yhi + 0.5], xlabel: "z", ylabel: "x = f(z)",
      curves: curves, legend: legend,
      label: "Quantile map of " + who + ": f(\u22122) = " + fmt(quantileMap(s, -2)) + ", f(0) = " + fmt(quantileMap(s, 0)) +
        ", f(2) = " + fmt(quantileMap(s, 2)) + "." + flowText});
    var bins = 48, counts = new Array(bins).fill(0), width = (hi - lo) / bins;
    draws.forEach(function (z) { var b = Math.floor((quantileMap(s, z) - lo) / width); if (b >= 0 && b < bins) counts[b]++; });
    var bars = counts.map(function (c, j) { return [lo + j * width, lo + (j + 1) * width, c / (draws.length * width)]; });
    var top = Math.max(pmax, Math.max.apply(null, bars.map(function (b) { return b[2]; })) * 1.08);
    panel(el("samples"), {title: D.samples + " samples of f(Z)", x: [lo, hi], y: [0, top], xlabel: "x", ylabel: "density",
      bars: bars, curves: [{x: xs, y: ps, color: "#222", width: 1.2}], legend: [["p(x)", "#222"]],
      label: "Histogram of f(Z) for " + D.samples + " draws of Z, with the density p(x) of " + who + " on top."});
  }
  function pause() { if (timer) { clearInterval(timer); timer = null; } el("play").innerHTML = "&#9654; Play"; }
  function play() {
    var step = el("step");
    if (+step.value >= +step.max) step.value = 0;
    el("play").innerHTML = "&#10074;&#10074; Pause";
    draw();
    timer = setInterval(function () {
      if (+step.value >= +step.max) { pause(); return; }
      step.value = +step.value + 1; draw();
    }, 400);
  }
  function set(p) {
    el("weight").value = p.weight; el("loc0").value = p.locs[0]; el("loc1").value = p.locs[1];
    el("scale0").value = p.scales[0]; el("scale1").value = p.scales[1];
  }
  keys.forEach(function (k) { el(k).addEventListener("input", draw); });
  el("step").addEventListener("input", function () { pause(); draw(); });
  el("play").addEventListener("click", function () { if (timer) pause(); else play(); });
  root.querySelectorAll("button[data-preset]").forEach(function (b) {
    b.addEventListener("click", function () {
      pause(); var P = D.presets[+b.getAttribute("data-preset")];
      set(P); el("step").max = P.steps.length - 1; el("step").value = P.steps.length - 1; draw();
    });
  });
  el("step").max = D.presets.length ? D.presets[0].steps.length - 1 : 0;
  el("step").value = el("step").max;
  // for readers' consoles and for tests: the numbers behind the pictures
  root.flowlabExplorer = {settings: settings, cdf: function (x) { return cdf(settings(), x); },
    map: function (z) { return quantileMap(settings(), z); }, density: function (x) { return density(settings(), x); }};
  draw();
})(0);"""
