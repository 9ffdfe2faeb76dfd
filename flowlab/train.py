r"""Training by maximum likelihood (the forward KL divergence).

Minimizing :math:`D_{\mathrm{KL}}(p_X \,\|\, p_\theta)` over :math:`\theta` is the same as
minimizing the negative log-likelihood of data :math:`x^{(1..m)} \sim p_X`,

.. math:: \mathcal L(\theta) = -\frac1m \sum_{j=1}^{m} \log p_\theta(x^{(j)}),

because the two differ by the entropy of :math:`p_X`, which does not depend on :math:`\theta`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._checks import as_data, check_positive_float, check_positive_int
from .core import Flow


def forward_kl(flow: Flow, x: Tensor) -> Tensor:
    r"""The forward KL objective up to a constant: the mean negative log-likelihood of ``x``.

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
        >>> float(fl.forward_kl(flow, torch.zeros(3, 2))) > 0
        True
    """
    return -flow.log_prob(x).mean()


@dataclass
class History:
    """What :func:`fit` records: the training loss at every step, the validation NLL every
    ``valid_every`` steps (when validation data was given), the wall time, and a message when
    training stopped early."""

    loss: list[float] = field(default_factory=list)
    valid_step: list[int] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    time: float = 0.0
    best_step: int | None = None
    message: str = ""

    @property
    def steps(self) -> int:
        return len(self.loss)

    def __repr__(self) -> str:
        parts = [f"steps={self.steps}", f"time={self.time:.1f}s"]
        if self.loss:
            parts.append(f"final loss={self.loss[-1]:.4f}")
        if self.valid_nll:
            parts.append(f"best valid NLL={min(self.valid_nll):.4f} at step {self.best_step}")
        if self.message:
            parts.append(f"message={self.message!r}")
        return f"History({', '.join(parts)})"


def _flow_device_dtype(flow: Flow) -> tuple[torch.device, torch.dtype]:
    for p in flow.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.get_default_dtype()


@torch.no_grad()
def _mean_nll(flow: Flow, x: Tensor, chunk: int = 65536) -> float:
    return float(sum(-flow.log_prob(x[i : i + chunk]).sum() for i in range(0, len(x), chunk)) / len(x))


def fit(
    flow: Flow,
    data,
    steps: int = 2000,
    lr: float = 5e-3,
    batch_size: int | None = None,
    valid=None,
    device=None,
    *,
    valid_every: int = 20,
    keep_best: bool = True,
    weight_decay: float = 0.0,
    seed: int | None = 0,
    progress: bool = True,
    callback: Callable[[int, float], bool | None] | None = None,
) -> History:
    r"""Train ``flow`` on ``data`` by maximum likelihood with Adam; returns a :class:`History`.

    * ``batch_size=None`` uses the whole data set at every step (as in the notes).
    * ``valid``: held-out data. Its mean NLL is recorded every ``valid_every`` steps, and with
      ``keep_best`` the parameters with the lowest validation NLL are restored at the end
      (early stopping).
    * ``device``: where to train (the flow and data are moved there); by default where the
      flow already is.
    * ``callback(step, loss)`` is called after every step; returning ``True`` stops training.
    * A non-finite loss stops training with a warning; the flow keeps the last parameters
      that gave a finite loss, never NaN.

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
        >>> history = fl.fit(flow, fl.targets.moons(256), steps=5, progress=False)
        >>> history.steps
        5
    """
    if not isinstance(flow, Flow):
        raise ValueError(f"fit trains a flowlab Flow, got {type(flow).__name__}.")
    steps = check_positive_int("steps", steps)
    lr = check_positive_float("lr", lr)
    valid_every = check_positive_int("valid_every", valid_every)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    x = as_data("data", data, flow.features)
    xv = None if valid is None else as_data("valid", valid, flow.features)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    if device is not None:
        flow.to(device)
    dev, dtype = _flow_device_dtype(flow)
    x = x.to(device=dev, dtype=dtype)
    if xv is not None:
        xv = xv.to(device=dev, dtype=dtype)
    use_batches = batch_size is not None and batch_size < len(x)
    generator = torch.Generator(device=dev)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()

    params = [p for p in flow.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the flow has no trainable parameters.")
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    good = [p.detach().clone() for p in params]  # parameters that last gave a finite loss
    best = None
    history = History()
    best_nll = float("inf")

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, disable=not progress, desc="training", leave=True)
    start = time.perf_counter()
    flow.train()
    try:
        for step in range(steps):
            batch = x[torch.randint(len(x), (batch_size,), device=dev, generator=generator)] if use_batches else x
            loss = -flow.log_prob(batch).mean()
            value = float(loss.detach())
            if value != value or value in (float("inf"), float("-inf")):
                with torch.no_grad():
                    torch._foreach_copy_(params, good)
                history.message = (
                    f"training stopped at step {step}: the loss became {value}. The flow keeps the last "
                    "parameters that gave a finite loss. Try a smaller lr or standardized data."
                )
                warnings.warn(history.message, RuntimeWarning, stacklevel=2)
                break
            torch._foreach_copy_(good, [p.detach() for p in params])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.loss.append(value)
            if xv is not None and ((step + 1) % valid_every == 0 or step + 1 == steps):
                flow.eval()
                nll = _mean_nll(flow, xv)
                flow.train()
                history.valid_step.append(step + 1)
                history.valid_nll.append(nll)
                if nll < best_nll:
                    best_nll, history.best_step = nll, step + 1
                    if keep_best:
                        best = [p.detach().clone() for p in params]
            if progress and (step % 25 == 0 or step + 1 == steps):
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            bar.update(1)
            if callback is not None and callback(step + 1, value):
                history.message = f"stopped by the callback after {step + 1} steps."
                break
        # the last update may have produced non-finite parameters: check once
        if any(not torch.isfinite(p).all() for p in params):
            with torch.no_grad():
                torch._foreach_copy_(params, good)
            history.message = history.message or "the last update gave non-finite parameters; they were rolled back."
    finally:
        bar.close()
        flow.eval()
        history.time = time.perf_counter() - start
    if best is not None and keep_best:
        with torch.no_grad():
            torch._foreach_copy_(params, best)
    return history
