"""Pictures of 2-D flows: samples, density heat maps and loss curves (matplotlib).

Each function draws on the axes it is given (or a new one) and returns the axes, so pictures
compose: ``ax = samples(x); samples(flow.sample(1000), ax=ax)``. :func:`grid` and
:func:`log_density_grid` only compute; matplotlib is imported when the first picture is drawn,
so that ``import flowlab`` does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .core import Flow
from .history import History


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt  # here: importing matplotlib costs a third of a second

        _, ax = plt.subplots(figsize=(4, 4))
    return ax


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def samples(x, ax=None, lim: float = 3.0, title: str | None = None, **kwargs):
    """Scatter plot of 2-D points ``x`` (tensor or array of shape ``(n, 2)``).

    Example:
        >>> import flowlab as fl
        >>> ax = fl.plot.samples(fl.targets.circles(100, seed=0))
    """
    ax = _axes(ax)
    x = _numpy(x)
    kwargs = {"s": 6, "alpha": 0.5, **kwargs}
    ax.scatter(x[:, 0], x[:, 1], **kwargs)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    if title:
        ax.set_title(title)
    return ax


def grid(lim: float = 3.0, n: int = 200, dtype=torch.float32, device=None) -> tuple[Tensor, float]:
    """An ``n x n`` grid of points on ``[-lim, lim]^2`` as a ``(n*n, 2)`` tensor (row-major,
    y then x), and the area of one cell."""
    t = torch.linspace(-lim, lim, n, dtype=dtype, device=device)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1), float((t[1] - t[0]) ** 2)


@torch.no_grad()
def log_density_grid(log_prob: Flow | Callable[[Tensor], Tensor], lim: float = 3.0, n: int = 200) -> np.ndarray:
    """The log-density on an ``n x n`` grid over ``[-lim, lim]^2`` as an array (rows = y)."""
    if isinstance(log_prob, Flow):
        pts, _ = grid(lim, n, dtype=log_prob.dtype, device=log_prob.device)
        values = log_prob.log_prob(pts)
    else:
        pts, _ = grid(lim, n)
        values = log_prob(pts)
    return _numpy(values).reshape(n, n)


def density(log_prob, ax=None, lim: float = 3.0, n: int = 200, log: bool = False, title: str | None = None,
            colorbar: bool = True, labels: tuple[str, str] = ("$x_1$", "$x_2$"), label: str | None = None, **kwargs):
    """Heat map of a density given as a :class:`~flowlab.Flow` or a log-density function, with a
    colour bar (``colorbar=False`` leaves it out; ``label`` names its quantity) and labelled
    axes (``labels``).

    ``log=True`` shows the log-density (clipped below at its maximum minus 10), which makes
    thin spikes and holes visible. The colour bar says which quantity it shows; for a function
    that is not normalized (an unnormalized target) it is a density only up to a constant.

    Example:
        >>> import flowlab as fl
        >>> ax = fl.plot.density(fl.targets.circles_log_prob, n=50)
        >>> ax.get_xlabel(), len(ax.figure.axes)  # the heat map and its colour bar
        ('$x_1$', 2)
    """
    ax = _axes(ax)
    values = log_density_grid(log_prob, lim, n)
    if log:
        values = np.maximum(values, values.max() - 10)
    else:
        values = np.exp(values)
    kwargs = {"cmap": "viridis", "origin": "lower", "extent": (-lim, lim, -lim, lim), **kwargs}
    image = ax.imshow(values, **kwargs)
    ax.set(aspect="equal", xlabel=labels[0], ylabel=labels[1])
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label or ("log-density" if log else "density"))
    if title:
        ax.set_title(title)
    return ax


def loss(history: History, ax=None, reference: float | None = None, label: str = "training loss", **kwargs):
    """The training loss per step, the validation NLL when recorded, and an optional
    horizontal ``reference`` line (for example the true density's NLL).

    Example:
        >>> import flowlab as fl
        >>> h = fl.History(loss=[3.0, 2.5, 2.2])
        >>> ax = fl.plot.loss(h, reference=1.76)
    """
    ax = _axes(ax)
    ax.plot(np.arange(1, len(history.loss) + 1), history.loss, label=label, **kwargs)
    if history.valid_nll:
        ax.plot(history.valid_step, history.valid_nll, label="validation NLL")
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1, label="true density")
    ax.set(xlabel="step", ylabel="negative log-likelihood (nats)")
    ax.legend()
    return ax
