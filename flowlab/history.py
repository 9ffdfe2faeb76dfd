r"""What a training run keeps besides the flow: its record (:class:`History`) and its held-out data
(:func:`split`).

Held-out data measure what the loss on the training rows cannot: the mean negative
log-likelihood of rows the optimizer never saw, an estimate of
:math:`D_{\mathrm{KL}}(p_X \,\|\, p_\theta) + H(p_X)`. Its lowest point picks the parameters to keep
(early stopping). :class:`~flowlab.Training` fills a :class:`History`; :func:`split` sets rows
aside for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._checks import as_data, check_fraction, seeded_generator

__all__ = ["History", "split"]


@dataclass
class History:
    """What a training run records: the loss at every step, the validation NLL every
    ``valid_every`` steps (when validation data was given), the steps whose update was skipped
    (see :class:`~flowlab.Training`), the wall time, and a message when training stopped early.

    Example:
        >>> import flowlab as fl
        >>> h = fl.History(loss=[2.0, 1.5, 1.2], valid_step=[3], valid_nll=[1.4], best_step=3)
        >>> h.steps
        3
        >>> h
        History(steps=3, time=0.0s, last mini-batch loss=1.2000, best held-out NLL=1.4000 at step 3)
    """

    loss: list[float] = field(default_factory=list)
    valid_step: list[int] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    time: float = 0.0
    best_step: int | None = None
    message: str = ""

    @property
    def steps(self) -> int:
        return len(self.loss)

    def __repr__(self) -> str:
        parts = [f"steps={self.steps}", f"time={self.time:.1f}s"]
        if self.loss:
            parts.append(f"last mini-batch loss={self.loss[-1]:.4f}")
        if self.valid_nll:
            parts.append(f"best held-out NLL={min(self.valid_nll):.4f} at step {self.best_step}")
        if self.skipped:
            parts.append(f"skipped={len(self.skipped)}")
        if self.message:
            parts.append(f"message={self.message!r}")
        return f"History({', '.join(parts)})"


def split(data, fraction: float, seed: int | None = 0) -> tuple[Tensor, Tensor]:
    """Split the rows of ``data`` at random into a training part and a held-out part holding
    ``fraction`` of them (at least one row each). The same integer ``seed`` gives the same
    split; ``None`` draws a fresh one.

    Example:
        >>> import torch, flowlab as fl
        >>> train, valid = fl.split(torch.randn(10, 2), 0.2)
        >>> len(train), len(valid)
        (8, 2)
    """
    x = as_data("data", data)
    generator = seeded_generator("seed", seed)
    fraction = check_fraction("fraction", fraction, "the share of rows held out")
    if len(x) < 2:
        raise ValueError("holding out a validation set needs at least 2 rows of data.")
    n_valid = min(max(1, round(fraction * len(x))), len(x) - 1)
    order = torch.randperm(len(x), generator=generator).to(x.device)
    return x[order[n_valid:]], x[order[:n_valid]]
