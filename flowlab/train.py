r"""Training: the one training loop that everything else uses.

:class:`Training` is the loop, one step at a time. :func:`fit` runs it to the end with a
progress bar; the live dashboard (:mod:`flowlab.live`) runs it in a background thread and the
replay recorder (:func:`flowlab.replay.record`) takes snapshots between its steps, so all three
train in exactly the same way. Each step minimizes one of the objectives of
:mod:`flowlab.objectives`, :func:`~flowlab.objectives.forward_kl` on data or
:func:`~flowlab.objectives.reverse_kl` on an unnormalized log-density (or, for a continuous
flow, :func:`~flowlab.objectives.flow_matching` on data). What a run records, :class:`~flowlab.history.History`, and the
held-out split, :func:`~flowlab.history.split`, live in :mod:`flowlab.history`.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ._checks import as_data, check_callable, check_positive_float, check_positive_int, check_seed, seeded_generator
from .core import Flow, check_flow
from .device import check_device
from .history import History, split  # noqa: F401 - also flowlab.train.History and flowlab.train.split
from .objectives import (  # noqa: F401 - also flowlab.train.*
    REVERSE_KL_SAMPLES, check_cnf_flow, flow_matching, forward_kl, reverse_kl)

OBJECTIVES = ("forward_kl", "flow_matching")
"""The objectives :class:`Training` takes by name for data (a log-density means the reverse KL)."""


@torch.no_grad()
def _mean_nll(flow: Flow, x: Tensor, chunk: int = 65536) -> float:
    return float(sum(-flow.log_prob(x[i : i + chunk]).sum() for i in range(0, len(x), chunk)) / len(x))


def _all_finite(tensors: list[Tensor]) -> bool:
    """Whether every entry is finite, by one sum (a NaN or an infinity makes it non-finite): a
    few microseconds, which a step of a small model notices (a norm per tensor costs more)."""
    return math.isfinite(float(torch.cat([t.reshape(-1) for t in tensors]).sum()))


def _adam(params, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, with the fused implementation (one kernel for all parameters) where torch has it."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def _copy(into: list[Tensor], values: list[Tensor]) -> None:
    for a, b in zip(into, values):
        a.copy_(b)


def _objective(flow: Flow, objective, log_density: bool) -> Callable | None:
    """The loss of a batch, ``loss(flow, x, generator=...)``, for an ``objective`` setting."""
    if log_density:
        if objective not in (None, "reverse_kl"):
            raise ValueError(f"objective={objective!r} learns from samples, but data is a log-density, which is "
                             "learned by the reverse KL: leave objective=None, or pass samples as data.")
        return None
    if objective in (None, "forward_kl"):
        return lambda flow, x, generator=None: forward_kl(flow, x)
    if objective == "flow_matching":
        check_cnf_flow("flow", flow)
        return flow_matching
    if callable(objective) and not isinstance(objective, str):
        return objective
    raise ValueError(f"objective must be one of {OBJECTIVES} or a function objective(flow, batch, generator=...) "
                     f"returning the loss of a batch; got {objective!r}.")


class Training:
    r"""One training run of a flow, step by step: the loop behind :func:`fit`, the live
    dashboard and the replays.

    ``data`` is a tensor of samples (maximum likelihood, :func:`forward_kl`, on ``batch_size``
    rows drawn at random per step) or a function, an unnormalized log-density
    ``log_prob_fn(x)`` (:func:`reverse_kl` on ``batch_size`` samples of the flow per step).
    Every step is this::

        loss = objective(batch)                      # forward or reverse KL, or flow matching
        if loss is finite and not far above the lowest so far:
            loss.backward()
            if every gradient is finite:
                optimizer.step(); schedule.step()    # Adam; cosine from lr to 0, or constant
                for hook in hooks: hook()            # each submodule's after_step(), if it has one
        every valid_every steps: record the NLL of the held-out data

    **Options** (:func:`fit` passes all but ``patience``, ``lock`` and ``history`` on to it):

    * ``objective``: with data, ``"forward_kl"`` (maximum likelihood, the default),
      ``"flow_matching"`` (:func:`~flowlab.objectives.flow_matching`, for a flow whose
      transform is a :class:`~flowlab.CNF`), or a function ``objective(flow, batch,
      generator=...)`` that returns the loss of a batch, such as
      ``functools.partial(flow_matching, coupling="ot")``; with a log-density, ``None`` (the
      reverse KL). The held-out NLL is recorded whatever the objective.
    * ``steps``: the number of optimizer steps; ``lr``: Adam's learning rate;
      ``weight_decay``: Adam's weight decay (an L2 penalty on the parameters), 0 by default.
    * ``batch_size``: rows per step, drawn at random; with a log-density, samples of the flow
      per step. The default, 32 with the cosine schedule below, generalizes markedly better
      from small data sets than full-batch steps (chapter 1 measures it); ``batch_size=None``
      uses the whole data set at every step (:data:`REVERSE_KL_SAMPLES` samples with a
      log-density).
    * ``valid``: held-out data, or a fraction such as ``0.2`` to hold out that share of
      ``data`` at random (:func:`split` with ``seed``, 0 for ``None``); with a log-density,
      samples of the target (or ``None``). Its mean NLL is recorded every ``valid_every``
      steps, and :meth:`finish` with ``keep_best`` restores the parameters with the lowest
      validation NLL (early stopping).
    * ``schedule="cosine"`` lowers the learning rate from ``lr`` to 0 along a half cosine
      over the ``steps``; ``"constant"`` keeps it fixed.
    * ``seed`` fixes the mini-batches (or the reverse-KL samples); ``None`` draws fresh ones.
    * ``patience``: how many bad steps in a row end the run (below).
    * ``lock`` (a context manager, such as a ``threading.Lock``) is held while the parameters
      and the history change, so another thread can read them safely.
    * ``history`` continues an earlier run's :class:`History` (steps are then numbered after
      its last one).

    **Per-step hooks.** Any submodule of the flow that defines ``after_step()`` has it called
    after every optimizer step (for example a residual block refreshing its spectral
    normalisation).

    **Bad steps and divergence.** A step whose loss or gradient is not finite, or whose loss
    lies far above the lowest one seen (by more than :math:`10 + 10\,|\text{lowest}|` nats), is
    *skipped*: its update is not applied and its step is listed in ``history.skipped``. One bad
    mini-batch therefore never ends a run. After ``patience`` bad steps in a row the run stops
    with a message (``diverged`` is then true), and the flow goes back to the parameters that
    gave the lowest loss so far: the last update before the streak may itself be what wrecked
    them (too large a learning rate). Parameters that became non-finite (checked every
    ``valid_every`` steps and whenever a loss is not finite) go back to them as well.

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
        >>> run = fl.Training(flow, fl.targets.moons(256, seed=0), steps=5)
        >>> losses = [loss for loss in run]
        >>> len(losses), run.done, run.history.steps
        (5, True, 5)
    """

    def __init__(self, flow: Flow, data, steps: int = 2000, lr: float = 5e-3, batch_size: int | None = 32,
                 valid=None, *, valid_every: int = 20, schedule: str = "cosine", weight_decay: float = 0.0,
                 seed: int | None = 0, patience: int = 10, lock=None, history: History | None = None,
                 objective=None):
        check_flow("flow", flow)
        self.flow = flow
        self.total = check_positive_int("steps", steps)
        lr = check_positive_float("lr", lr)
        self.valid_every = check_positive_int("valid_every", valid_every)
        self.patience = check_positive_int("patience", patience)
        seed = check_seed("seed", seed)
        if schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}.")
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}.")
        if batch_size is not None:
            batch_size = check_positive_int("batch_size", batch_size)
        self.batch_size = batch_size
        self.params = [p for p in flow.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the flow has no trainable parameters.")
        device, dtype = self.params[0].device, self.params[0].dtype
        self.log_prob_fn = data if callable(data) and not isinstance(data, Tensor) else None
        self.objective = _objective(flow, objective, self.log_prob_fn is not None)
        if self.log_prob_fn is not None:
            if isinstance(valid, float):
                raise ValueError("valid=<fraction> splits data; with a log-density, pass held-out samples of the target or None.")
            self.x = None
        else:
            self.x = as_data("data", data, flow.features)
            if isinstance(valid, float):
                self.x, valid = split(self.x, valid, seed=0 if seed is None else seed)
            self.x = self.x.to(device=device, dtype=dtype)
        self.valid = None if valid is None else as_data("valid", valid, flow.features).to(device=device, dtype=dtype)
        self.generator = seeded_generator("seed", seed, device)
        self.optimizer = _adam(self.params, lr, weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, self.total) if schedule == "cosine" else None
        self.hooks = [m.after_step for m in flow.modules() if callable(getattr(m, "after_step", None))]
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.history = History() if history is None else history
        self.step_count = 0  # steps of this run
        self.diverged = False
        self.stopped = False
        self.lowest = math.inf
        self.bad_in_a_row = 0
        self.kept = [p.detach().clone() for p in self.params]  # the parameters of the lowest loss so far
        self.best: list[Tensor] | None = None  # the parameters of the lowest held-out NLL
        self.elapsed = 0.0

    @property
    def done(self) -> bool:
        """Whether the run is over: all ``steps`` done, stopped, or diverged."""
        return self.stopped or self.step_count >= self.total

    def loss(self) -> Tensor:
        """The objective on this step's batch (or samples)."""
        if self.log_prob_fn is not None:
            return reverse_kl(self.flow, self.log_prob_fn, self.batch_size or REVERSE_KL_SAMPLES, self.generator)
        x = self.x
        if self.batch_size is not None and self.batch_size < len(x):
            x = x[torch.randint(len(x), (self.batch_size,), device=x.device, generator=self.generator)]
        return self.objective(self.flow, x, generator=self.generator)

    def step(self) -> float:
        """One step (see the class docstring); returns this step's loss."""
        if self.done:
            raise ValueError("this training run is over; start a new Training to train further.")
        start = time.perf_counter()
        if not self.flow.training:  # after a validation (a whole-tree walk: not on every step)
            self.flow.train()
        loss = self.loss()
        value = float(loss.detach())
        good = math.isfinite(value) and not (self.lowest < math.inf and value > self.lowest + 10 + 10 * abs(self.lowest))
        self.optimizer.zero_grad(set_to_none=True)
        if good and value < self.lowest:
            _copy(self.kept, [p.detach() for p in self.params])  # these parameters gave this loss
        if good:
            loss.backward()
            grads = [p.grad for p in self.params if p.grad is not None]
            good = _all_finite(grads) if grads else True
        with self.lock:
            self.step_count += 1
            self.history.loss.append(value)
            if good:
                self.optimizer.step()
                for hook in self.hooks:
                    hook()
                self.lowest = min(self.lowest, value)
                self.bad_in_a_row = 0
                if self.scheduler is not None:
                    self.scheduler.step()
            else:
                self.history.skipped.append(self.history.steps)
                self.bad_in_a_row += 1
                if not math.isfinite(value):
                    self.restore_last_good()
        if self.step_count % self.valid_every == 0 or self.step_count == self.total:
            with self.lock:
                self.restore_last_good()
            self._validate()
        if self.bad_in_a_row >= self.patience:
            with self.lock:
                _copy(self.params, self.kept)
            self._stop_diverged(value)
        self.elapsed += time.perf_counter() - start
        self.history.time = self.elapsed
        return value

    def __iter__(self) -> Iterator[float]:
        """Run the remaining steps, yielding each step's loss."""
        while not self.done:
            yield self.step()

    def stop(self, message: str = "") -> None:
        """End the run early (a later :meth:`step` raises)."""
        self.stopped = True
        if message:
            self.history.message = message

    def finish(self, keep_best: bool = True) -> History:
        """After the last step: restore the parameters of the lowest held-out NLL (with
        ``keep_best`` and validation data), leave the flow in eval mode, return the history."""
        with self.lock:
            self.restore_last_good()
            if keep_best and self.best is not None:
                _copy(self.params, self.best)
        self.flow.eval()
        return self.history

    def restore_last_good(self) -> bool:
        """If the flow's parameters are not all finite, put back the last good ones, those of
        the lowest training loss so far (the starting parameters before any step), and say so in
        ``history.message``; returns whether it did. :meth:`step` does this itself; code that
        drives the run and meets a failure it did not foresee (an exception from a step, say)
        calls it to leave the flow usable. It does not take ``lock``: hold it while another
        thread may read the parameters, as the live dashboard does."""
        if bool(torch.isfinite(torch.nn.utils.get_total_norm([p.detach() for p in self.params]))):
            return False
        _copy(self.params, self.kept)
        if not self.history.message:
            self.history.message = (f"the parameters became non-finite at step {self.history.steps}; "
                                    "they were rolled back to those of the lowest loss so far.")
        return True


    def _validate(self) -> None:
        if self.valid is None:
            return
        self.flow.eval()
        nll = _mean_nll(self.flow, self.valid)
        self.flow.train()
        with self.lock:
            h = self.history
            if math.isfinite(nll) and (not h.valid_nll or nll < min(h.valid_nll)):
                h.best_step = h.steps
                self.best = [p.detach().clone() for p in self.params]
            h.valid_step.append(h.steps)
            h.valid_nll.append(nll)

    def _stop_diverged(self, value: float) -> None:
        self.diverged = True
        lowest = f" (lowest so far {self.lowest:.4g})" if self.lowest < math.inf else ""
        advice = ("Try a smaller learning rate." if self.lowest < math.inf else
                  "The flow cannot fit these data as they are: are they standardized (mean 0, variance 1)?")
        self.stop(f"training stopped at step {self.history.steps}: the last {self.patience} steps were all skipped "
                  f"(the loss became {value:.4g}{lowest}). The flow keeps the parameters of the lowest loss. {advice}")


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
    objective=None,
) -> History:
    r"""Train ``flow`` on ``data`` with Adam to the end of a :class:`Training` run; returns its
    :class:`History`. It is this loop, with a progress bar::

        run = Training(flow, data, steps, lr, batch_size, valid, ...)
        for loss in run:                      # one optimizer step each
            if callback and callback(run.step_count, loss):
                break
        run.finish(keep_best)                 # best held-out parameters, eval mode

    ``data`` (samples, or an unnormalized log-density for the reverse KL), ``steps``, ``lr``,
    ``batch_size``, ``valid``, ``valid_every``, ``schedule``, ``weight_decay``, ``seed`` and
    ``objective`` (``"forward_kl"``, ``"flow_matching"`` or a function) go to
    :class:`Training`, whose docstring lists what each one does. The others are ``fit``'s own:

    * ``device``: where to train (the flow and data are moved there); by default where the
      flow already is.
    * ``keep_best``: restore at the end the parameters with the lowest validation NLL (when
      ``valid`` is given): early stopping.
    * ``progress``: show a progress bar.
    * ``callback(step, loss)`` is called after every step; returning ``True`` stops training.

    Bad steps are skipped as :class:`Training` describes; ten in a row (its ``patience``)
    stop training with a ``RuntimeWarning``, and the flow goes back to the parameters of the
    lowest loss, never NaN.

    Example:
        >>> import flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
        >>> history = fl.fit(flow, fl.targets.moons(256), steps=5, progress=False)
        >>> history.steps
        5
    """
    check_flow("flow", flow)
    if callback is not None:
        check_callable("callback", callback, "a function callback(step, loss) that returns True to stop")
    if device is not None:
        flow.to(check_device(device))
    run = Training(flow, data, steps, lr, batch_size, valid, valid_every=valid_every, schedule=schedule,
                   weight_decay=weight_decay, seed=seed, objective=objective)
    from tqdm.auto import tqdm

    bar = tqdm(total=run.total, disable=not progress, desc="training", leave=True)
    try:
        for loss in run:
            if progress and (run.step_count % 25 == 1 or run.done):
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(1)
            if callback is not None and callback(run.step_count, loss):
                run.stop(f"stopped by the callback after {run.step_count} steps.")
    finally:
        bar.close()
        history = run.finish(keep_best)
    if run.diverged:
        warnings.warn(history.message, RuntimeWarning, stacklevel=2)
    return history

