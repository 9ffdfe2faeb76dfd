r"""Pictures of a learned 2-D map against an exact one, for recordings of training.

A flow :math:`T_\theta` that learns the Knothe-Rosenblatt map :math:`T` of a 2-D density
(:func:`flowlab.numerics.knothe_rosenblatt`) is seen best on a grid of the data plane: the first
latent coordinate :math:`z_1 = T_\theta(x)_1` as a heat map, and the distance
:math:`\lVert T_\theta(x) - T(x)\rVert` as a second one, both with the density's contours on top.
:func:`map_frame` draws that pair as one PNG (through
:func:`flowlab.quantile_lab.figure_png`), so that :func:`flowlab.quantile_lab.map_replay` can play
a series of them without a kernel. Cost: one matplotlib figure, about 0.1 s.

Example:
    >>> import torch
    >>> from flowlab.mapview import map_frame
    >>> g = torch.linspace(-1, 1, 8)
    >>> z1 = g[:, None].expand(8, 8)
    >>> png = map_frame(z1, z1.abs(), torch.ones(8, 8), extent=(-1, 1, -1, 1), step=0)
    >>> png[:4]
    b'\x89PNG'
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["map_frame"]


def map_frame(z1: Tensor, distance: Tensor, density: Tensor, extent: tuple[float, float, float, float],
              step: int, z_range: float = 3.0, distance_range: float = 2.0) -> bytes:
    r"""One snapshot as PNG bytes: two heat maps over the data plane, the flow's :math:`z_1` (colour
    scale :math:`\pm` ``z_range``) and its distance to the exact map (0 to ``distance_range``), each
    with three contour lines of ``density`` and a colour bar, titled with the training ``step``.

    ``z1``, ``distance`` and ``density`` are ``(n1, n2)`` arrays on the grid: index ``[i, j]`` is the
    point with the ``i``-th :math:`x_1` and the ``j``-th :math:`x_2` of the box ``extent`` =
    ``(x1_min, x1_max, x2_min, x2_max)``. The figure is 6.9 x 3.0 inches (the book's text column).
    """
    import matplotlib.pyplot as plt

    from .quantile_lab import figure_png

    shapes = {tuple(t.shape) for t in (z1, distance, density)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"z1, distance and density must be 2-D arrays of one shape, got shapes {sorted(shapes)}.")
    n1, n2 = next(iter(shapes))
    x1 = torch.linspace(extent[0], extent[1], n1)
    x2 = torch.linspace(extent[2], extent[3], n2)
    fig, axes = plt.subplots(1, 2, figsize=(6.9, 3.0), sharey=True, layout="constrained")
    panels = [(axes[0], z1, "flow's $z_1$", dict(cmap="RdBu_r", vmin=-z_range, vmax=z_range), "k"),
              (axes[1], distance, r"$\|T_\theta - T\|$", dict(cmap="magma", vmin=0, vmax=distance_range), "w")]
    for ax, values, label, style, line in panels:
        image = ax.imshow(torch.as_tensor(values).T.numpy(), origin="lower", extent=extent, aspect="auto", **style)
        ax.contour(x1.numpy(), x2.numpy(), torch.as_tensor(density).T.numpy(), levels=3, colors=line, linewidths=0.6)
        ax.set(xlabel="$x_1$", title=f"{label}, step {step}")
        fig.colorbar(image, ax=ax, shrink=0.9, label=label)
    axes[0].set_ylabel("$x_2$")
    return figure_png(fig)
