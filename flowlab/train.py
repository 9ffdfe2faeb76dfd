r"""Training by maximum likelihood (the forward KL divergence).

Minimizing :math:`D_{\mathrm{KL}}(p_X \,\|\, p_\theta)` over :math:`\theta` is the same as
minimizing the negative log-likelihood of data :math:`x^{(1..m)} \sim p_X`,

.. math:: \mathcal L(\theta) = -\frac1m \sum_{j=1}^{m} \log p_\theta(x^{(j)}),

because the two differ by the entropy of :math:`p_X`, which does not depend on :math:`\theta`.

Training by the reverse KL divergence (:func:`reverse_kl`) needs no data, only an unnormalized
log-density :math:`\log \tilde p = \log (Z\, p_X)` that can be evaluated anywhere. It minimizes

.. math:: \mathcal L(\theta) = \mathbb E_{x \sim p_\theta}\big[\log p_\theta(x) - \log \tilde p(x)\big]
          = D_{\mathrm{KL}}(p_\theta \,\|\, p_X) - \log Z,

estimated with samples of the flow itself, so :math:`\mathcal L \ge -\log Z`.
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
        >>> float(fl.forward_kl(flow, torch.zeros(3, 2)).detach()) > 0
        True
    """
    return -flow.log_prob(x).mean()


def reverse_kl(flow: Flow, log_prob_fn: Callable[[Tensor], Tensor], n: int, generator: torch.Generator | None = None) -> Tensor:
    r"""The reverse KL objective up to a constant, estimated with ``n`` samples of the flow.

    With :math:`x^{(j)} = f(z^{(j)})`, :math:`z^{(j)} \sim p_Z`, and ``log_prob_fn`` an
    unnormalized log-density :math:`\log \tilde p = \log(Z\, p_X)`,

    .. math:: \hat{\mathcal L} = \frac1n \sum_{j=1}^{n}
              \big[\log p_\theta(x^{(j)}) - \log \tilde p(x^{(j)})\big],
              \qquad \mathbb E\,\hat{\mathcal L} = D_{\mathrm{KL}}(p_\theta \,\|\, p_X) - \log Z.

    The samples come from :meth:`Flow.rsample_and_log_prob` (one call of
    ``transform.inverse``), so gradients flow through them to the parameters
    (reparametrization): use a flow whose sampling direction is the cheap one, such as
    ``MAF(...).inv``.

    Example:
        >>> import flowlab as fl
        >>> from flowlab.train import reverse_kl
        >>> flow = fl.Flow(fl.MAF(2).inv, fl.StandardNormal(2))
        >>> loss = reverse_kl(flow, fl.targets.banana_log_prob, 128)
        >>> loss.shape
        torch.Size([])
    """
    if not callable(log_prob_fn):
        raise ValueError(f"log_prob_fn must be a function of x of shape (n, D), got {type(log_prob_fn).__name__}.")
    n = check_positive_int("n", n)
    x, log_q = flow.rsample_and_log_prob(n, generator=generator)
    log_p = log_prob_fn(x)
    if not isinstance(log_p, Tensor) or log_p.shape != (n,):
        shape = tuple(log_p.shape) if isinstance(log_p, Tensor) else type(log_p).__name__
        raise ValueError(f"log_prob_fn must map samples of shape ({n}, {flow.features}) to a tensor of shape ({n},), got {shape}.")
    return (log_q - log_p).mean()


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


def split(data, fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Split the rows of ``data`` at random into a training part and a held-out part holding
    ``fraction`` of them (at least one row each).

    Example:
        >>> import torch, flowlab as fl
        >>> train, valid = fl.split(torch.randn(10, 2), 0.2)
        >>> len(train), len(valid)
        (8, 2)
    """
    x = as_data("data", data)
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1, got {fraction}.")
    n_valid = min(max(1, round(fraction * len(x))), len(x) - 1)
    if n_valid < 1:
        raise ValueError("holding out a validation set needs at least 2 rows of data.")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(x.device)
    return x[order[n_valid:]], x[order[:n_valid]]


def _diverged(value: float, best: float) -> bool:
    """A non-finite loss, or one far above the lowest seen: ordinary loss spikes stay well below."""
    if value != value or value in (float("inf"), float("-inf")):
        return True
    return best < float("inf") and value > best + 10 + 10 * abs(best)


def _adam(params, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, with the fused implementation (one kernel for all parameters) where torch has it."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def fit(
    flow: Flow,
    data,
    steps: int = 2000,
    lr: float = 5e-3,
    batch_size: int | None = 32,
    valid=None,
    device=None,
    *,
    valid_every: int = 20,
    keep_best: bool = True,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    seed: int | None = 0,
    progress: bool = True,
    callback: Callable[[int, float], bool | None] | None = None,
) -> History:
    r"""Train ``flow`` on ``data`` by maximum likelihood with Adam; returns a :class:`History`.

    When ``data`` is a function instead, an unnormalized log-density ``log_prob_fn(x)``, the
    flow is trained by the reverse KL divergence (:func:`reverse_kl`) on ``batch_size``
    samples of its own per step (256 when ``batch_size`` is None); ``valid`` may then hold
    samples of the target to record their NLL.

    * ``batch_size``: rows per step, drawn at random. The default, 32 with the cosine
      schedule below, generalizes markedly better from small data sets than full-batch
      steps (chapter 1 measures it); ``batch_size=None`` uses the whole data set at every
      step, as the notes' loop does.
    * ``valid``: held-out data, or a fraction such as ``0.2`` to hold out that share of
      ``data`` at random. Its mean NLL is recorded every ``valid_every`` steps, and with
      ``keep_best`` the parameters with the lowest validation NLL are restored at the end
      (early stopping).
    * ``device``: where to train (the flow and data are moved there); by default where the
      flow already is.
    * ``schedule="cosine"`` lowers the learning rate from ``lr`` to 0 along a half cosine
      over the ``steps`` (it damps the loss spikes that full-batch Adam shows late in
      training); ``"constant"`` keeps it fixed.
    * ``callback(step, loss)`` is called after every step; returning ``True`` stops training.
    * Divergence stops training with a warning: a non-finite loss, or a loss that jumps far
      above the lowest one seen (by more than ``10 + 10 |lowest|`` nats). The flow then keeps
      the parameters that gave the lowest training loss, never NaN.

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
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    target = data if callable(data) else None  # an unnormalized log-density: reverse KL
    if target is not None and isinstance(valid, float):
        raise ValueError("valid=<fraction> splits data; with a log-density, pass held-out samples of the target or None.")
    x = None if target is not None else as_data("data", data, flow.features)
    if isinstance(valid, float):
        x, xv = split(x, valid, seed=0 if seed is None else seed)
    else:
        xv = None if valid is None else as_data("valid", valid, flow.features)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    if device is not None:
        flow.to(device)
    dev, dtype = _flow_device_dtype(flow)
    x = None if x is None else x.to(device=dev, dtype=dtype)
    if xv is not None:
        xv = xv.to(device=dev, dtype=dtype)
    use_batches = x is not None and batch_size is not None and batch_size < len(x)
    generator = torch.Generator(device=dev)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()

    params = [p for p in flow.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the flow has no trainable parameters.")
    optimizer = _adam(params, lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if schedule == "cosine" else None
    good = [p.detach().clone() for p in params]  # the parameters with the lowest training loss so far
    best_loss = float("inf")
    best = None
    history = History()
    best_nll = float("inf")

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, disable=not progress, desc="training", leave=True)
    start = time.perf_counter()
    flow.train()
    try:
        for step in range(steps):
            if target is not None:
                loss = reverse_kl(flow, target, batch_size or 256, generator=generator)
            else:
                batch = x[torch.randint(len(x), (batch_size,), device=dev, generator=generator)] if use_batches else x
                loss = -flow.log_prob(batch).mean()
            value = float(loss.detach())
            if _diverged(value, best_loss):
                with torch.no_grad():
                    torch._foreach_copy_(params, good)
                history.message = (
                    f"training stopped at step {step}: the loss became {value:.4g}"
                    + (f" (lowest so far {best_loss:.4g})" if best_loss < float("inf") else "")
                    + ". The flow keeps the parameters with the lowest training loss. "
                    "Try a smaller lr or standardized data."
                )
                warnings.warn(history.message, RuntimeWarning, stacklevel=2)
                break
            if value < best_loss:
                best_loss = value
                torch._foreach_copy_(good, [p.detach() for p in params])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
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
