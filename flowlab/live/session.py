"""A headless live-training session: settings, a flow, a background thread over the shared loop.

:class:`Session` is everything the dashboard does except the widgets: it checks each setting
when it is set, builds the target and the flow from :mod:`flowlab.live.choices`, trains in a
background thread over :class:`flowlab.Training` (the loop of :func:`flowlab.fit`), redraws a
picture from a copy of the flow in a second thread, and records kernel-free replays of the
very same training. :class:`flowlab.live.Trainer` holds a session and shows it with widgets.
"""

from __future__ import annotations

import atexit
import copy
import math
import threading
import time
import types
import weakref
from collections.abc import Callable

import numpy as np
import torch

from .._checks import check_positive_float, check_positive_int
from ..chart import loss_chart
from ..core import Flow, StandardNormal
from ..device import available_devices
from ..pictures import Painter, caption, lattice
from ..replay import Replay, record
from ..numerics import jacobian
from ..train import History, Training
from .choices import FAMILIES, DataTarget, make_target
from .settings import CHECKS, DEFAULTS, MODEL, Setting, describe, label, sentence

_SESSIONS: weakref.WeakSet[Session] = weakref.WeakSet()  # every session of this process

BUILD_ERRORS = (ValueError, TypeError, RuntimeError, MemoryError)
"""What building a target and a flow from settings that cannot work raises: a recipe's or a
target's check (``ValueError``, ``TypeError``), torch (a shape or a device: ``RuntimeError``,
which out-of-memory errors are too) and Python's ``MemoryError``."""

MIN_GRID = 16
"""The coarsest lattice the view evaluates the density on while training runs (to keep its rate)."""
CHART_WIDTH = 420
"""Width of the loss chart in pixels: beside a picture of 200-pixel panels it fits a laptop's notebook."""


def run_seed(seed: int, step: int) -> int:
    """The seed of a run that starts at ``step``: ``seed`` itself for a fresh flow (as
    :meth:`Session.record` and :func:`flowlab.fit` use it); for a run that continues a trained
    flow, a seed drawn from the pair ``(seed, step)``, so that its mini-batches are new ones."""
    return seed if step == 0 else int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def _warm_up() -> None:
    """The first optimizer made in a process imports a large part of torch (1-2 s on a laptop):
    make one while the dashboard is built, so that the first Start answers at once."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


@atexit.register
def _stop_all() -> None:
    """Stop every session's threads before the interpreter exits (a thread killed in the
    middle of a torch operation aborts the process)."""
    for session in list(_SESSIONS):
        session.stop()


class Session:
    """Live training without widgets. See :class:`flowlab.live.Trainer` for the settings.

    The view redraws at up to ``fps`` pictures a second. The density is computed afresh for
    every picture, on a lattice that is coarser while training runs when the flow is slow to
    evaluate (the last picture of a run uses the full ``grid``); the samples (which invert the
    flow, iteratively for the monotone and integral transformers) are refreshed every few
    pictures when computing them would slow the view down. ``on_update`` (optional) is called
    after every new picture and message, from whichever thread made it.

    Example:
        >>> from flowlab.live.session import Session
        >>> s = Session(target="moons", family="MAF", layers=2, hidden=16, steps=20)
        >>> s.start(); s.wait(timeout=60)
        True
        >>> s.step_count, s.message
        (20, 'Done: 20 steps.')
    """

    target, family, layers, hidden, bins, bound, parts, mixing, seed = (Setting() for _ in range(9))
    lr, batch_size, steps, device = (Setting() for _ in range(4))

    def __init__(self, target=DEFAULTS["target"], family: str = DEFAULTS["family"], layers: int = DEFAULTS["layers"],
                 hidden: int = DEFAULTS["hidden"], bins: int = DEFAULTS["bins"], bound: float = DEFAULTS["bound"],
                 parts: int | None = DEFAULTS["parts"], lr: float = DEFAULTS["lr"],
                 batch_size: int | None = DEFAULTS["batch_size"], steps: int = DEFAULTS["steps"],
                 device=DEFAULTS["device"], *, mixing: str = DEFAULTS["mixing"], seed: int = DEFAULTS["seed"],
                 threads: int = 1, fps: float = 15.0, valid_every: int = 20, size: int = 200, grid: int = 48,
                 on_update: Callable[[], None] | None = None):
        for other in list(_SESSIONS):  # a re-run cell: the old dashboard stops training
            if other.running:
                other.stop()
                other.say(f"Stopped at step {other.step_count}: a new dashboard was made in this kernel.")
        _SESSIONS.add(self)
        self.threads = check_positive_int("threads", threads)
        self.fps = check_positive_float("fps", fps)
        self.valid_every = check_positive_int("valid_every", valid_every)
        self.size = check_positive_int("size", size, 8)
        self.grid = check_positive_int("grid", grid, 2)
        self.on_update = on_update
        self.message, self.message_is_error, self.error = "", False, None
        self.history, self.flow, self.run = History(), None, None
        self.picture, self.peak, self.chart, self.caption, self.total = b"", None, None, "", 0
        self._samples, self._frame_count, self._sample_every = None, 0, 1
        self._lock = threading.Lock()  # held while the parameters and the history change
        self._draw_lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._threads: list[threading.Thread] = []
        self._frames: list[tuple[float, int]] = []  # (time, step) of each picture of the run
        self._started = self._speed = self._view_cpu = 0.0
        self._run_start = 0  # the step at which the current run began
        self._live_grid = self.grid
        self._folds = ""
        given = dict(target=target, family=family, layers=layers, hidden=hidden, bins=bins, bound=bound, parts=parts,
                     mixing=mixing, seed=seed, lr=lr, batch_size=batch_size, steps=steps,
                     device=available_devices()[0] if device is None else device)
        self._settings, problems = {}, []
        for name, value in given.items():
            try:
                self._settings[name] = CHECKS[name](value)
            except (TypeError, ValueError) as e:
                self._settings[name] = available_devices()[0] if name == "device" else DEFAULTS[name]
                problems.append(f"Refused: {e} The {label(name)} is {self.shown(name)} instead.")
        self._custom = None
        if not isinstance(self._settings["target"], str):
            self._custom, self._settings["target"] = self._settings["target"], "custom data"
        _warm_up()
        try:
            self._build()
        except BUILD_ERRORS as e:
            problems.append(f"These settings cannot work: {e} Showing the default flow instead.")
            self.error = e
            self._settings.update({k: DEFAULTS[k] for k in MODEL})
            self._custom = None
            self._build()
        self.fail(" ".join(problems), self.error) if problems else self.say("Ready: press Start.")

    # ------------------------------------------------------------------ messages

    def say(self, text: str, error: bool = False) -> None:
        """Show ``text`` as the status message (``error``: in red)."""
        self.message = sentence(text)
        self.message_is_error = error
        self._update()

    def fail(self, text: str, error: BaseException | None = None) -> None:
        self.error = error
        self.say(text, error=True)

    def _update(self) -> None:
        if self.on_update is not None:
            self.on_update()

    # ------------------------------------------------------------------ settings

    @property
    def settings(self) -> types.MappingProxyType:
        """Every setting's current value, by name (read-only: set them as attributes)."""
        return types.MappingProxyType(self._settings)

    def shown(self, name: str) -> str:
        """A setting's value as the messages show it."""
        value = self._settings[name]
        if value is None:
            return {"batch_size": "all data", "parts": "D (fully autoregressive)"}.get(name, "None")
        return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)

    def set(self, name: str, value) -> None:
        """Change a setting; a value that cannot work is refused with a message, never raised."""
        if name not in self._settings:
            raise AttributeError(f"{name!r} is not a setting; the settings are {', '.join(self._settings)}.")
        note = ""
        if self.running:
            self.stop()
            note = f"Training stopped at step {self.step_count}: the {label(name)} changed. "
        try:
            value = CHECKS[name](value)
        except (TypeError, ValueError) as e:
            self.fail(f"{note}Refused: {e} The {label(name)} stays {self.shown(name)}.", e)
            return
        old, old_custom = self._settings[name], self._custom
        if name == "target" and not isinstance(value, str):
            self._custom, value = value, "custom data"
        self._settings[name] = value
        if name in MODEL:
            try:
                self._build()
            except BUILD_ERRORS as e:
                self._settings[name], self._custom = old, old_custom
                self.fail(f"{note}This setting cannot work: {e} The {label(name)} stays {self.shown(name)}.", e)
                return
            self.say(note + ("Reset: a fresh flow" if name == "seed" else "A new flow was built")
                     + f" (seed {self._settings['seed']}); press Start to train it.")
        else:
            self.run = None  # the next Start begins a new run with the new setting
            if name == "device":
                self._move(torch.device(value))
            self.draw()  # the step counter and the loss axis show the new length of the run
            self.say(note + sentence(describe(name, value)) + "; press Start.")
        self.error = None

    def _make_target(self):
        if self._settings["target"] == "custom data":
            if self._custom is None:
                raise ValueError("no custom data was given: set target to an array of shape (n, 2).")
            return DataTarget("custom data", data=self._custom)
        return make_target(self._settings["target"])

    def _make_flow(self, features: int) -> Flow:
        s = self._settings
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s["seed"])
            return Flow(FAMILIES[s["family"]].build(features, s), StandardNormal(features))

    def _build(self) -> None:
        """A new target and flow from the settings (raises when they cannot work)."""
        target = self._make_target()
        if target.features != 2:
            raise ValueError(f"the dashboard trains 2-D flows; the target has {target.features} features.")
        flow = self._make_flow(2)
        painter = Painter(target.points, extent=target.extent, grid=self.grid, size=self.size,
                          seed=self._settings["seed"], level=1)
        mirror = copy.deepcopy(flow).requires_grad_(False)  # the pictures are drawn from this copy
        t0 = time.perf_counter()
        painter.density(mirror)  # fails here, not in the view thread, for a flow that cannot be drawn
        took = time.perf_counter() - t0
        painter.sample(mirror)
        device = torch.device(self._settings["device"])
        with self._lock:
            self.flow, self.target_object, self.painter = flow.to(device), target, painter
            self._mirror = mirror.to(device)
            self.history, self.run, self._samples, self._folds = History(), None, None, ""
        # the lattice a run starts with: the density takes at most a quarter of a frame
        fit = self.grid * math.sqrt(0.25 / self.fps / max(took, 1e-9))
        self._live_grid = max(min(MIN_GRID, self.grid), min(self.grid, int(fit) // 4 * 4))
        self.draw()

    def _move(self, device: torch.device) -> None:
        with self._lock:
            self.flow.to(device)
            self._mirror.to(device)

    @property
    def step_count(self) -> int:
        """Steps trained since the flow was built."""
        return len(self.history.loss)

    # ------------------------------------------------------------------ training

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self) -> None:
        """Start (or continue) training in the background; returns at once. A run goes on until
        the step counter reaches ``steps`` (or for ``steps`` more when it is there already)."""
        if self.running:
            return
        clicked = time.perf_counter()
        for other in list(_SESSIONS):  # one training at a time
            if other is not self and other.running:
                other.stop()
                other.say(f"Stopped at step {other.step_count}: another dashboard started training.")
        if self.run is None or self.run.done:
            s, target = self._settings, self.target_object
            try:
                run = Training(self.flow, target.data, s["steps"], s["lr"], s["batch_size"], target.valid,
                               valid_every=self.valid_every, seed=run_seed(s["seed"], self.step_count),
                               lock=self._lock, history=self.history, objective=FAMILIES[s["family"]].objective)
            except (ValueError, RuntimeError) as e:
                self.fail(f"Cannot start: {e}", e)
                return
            self.run, self._run_start = run, self.step_count
        self.error, self._folds = None, ""
        self._stop.clear()
        self._done.clear()
        self._frames, self._speed, self._started, self._view_cpu = [], 0.0, clicked, 0.0
        self.painter.set_grid(self._live_grid)
        self.say(f"Training on {self._settings['device']}...")
        self._threads = [threading.Thread(target=self._train, args=(self.run,), daemon=True),
                         threading.Thread(target=self._view, daemon=True)]
        for t in self._threads:
            t.start()

    def _train(self, run: Training) -> None:
        torch.set_num_threads(self.threads)
        first, start = self.step_count, time.perf_counter()
        try:
            for _ in run:
                self._speed = (self.step_count - first) / max(time.perf_counter() - start, 1e-9)
                if self._stop.is_set():
                    break
            if run.diverged:
                self.fail(run.history.message)
            else:
                folded = self._check_folds()
                self.say((f"Done: {self.step_count} steps." if run.done else f"Stopped at step {self.step_count}.")
                         + self._folds, error=folded)
        except Exception as e:  # noqa: BLE001 - this thread has no caller to raise to, and a step runs
            # the target's log-density, which may be the user's own code: whatever it raises is shown
            self.run = None
            self.fail(self._recover(run, e), e)
        finally:
            run.flow.eval()
            self._done.set()

    def _recover(self, run: Training, e: BaseException) -> str:
        try:
            with self._lock:
                run.restore_last_good()
            return (f"Training stopped at step {self.step_count}: {type(e).__name__}: {e} "
                    "The flow keeps its last good parameters.")
        except RuntimeError:  # the device itself is gone: go on from the last picture, on the CPU
            with self._lock:
                self._mirror.to("cpu")
                self.flow = copy.deepcopy(self._mirror).requires_grad_(True)
                self._settings["device"] = "cpu"
            return (f"Training stopped: the device failed ({type(e).__name__}: {e}). The flow was moved to the "
                    "CPU with the parameters of the last picture.")

    def _check_folds(self, grid: int = 32) -> bool:
        """For a family that may fold the plane, count the points of a ``grid x grid`` lattice of
        the view where its map does (where the sign of its Jacobian determinant is not the sign of
        most points, as :func:`flowlab.testing.folds` counts) and say it in :attr:`_folds`;
        returns whether it folds. Called after a run, when nothing else changes the flow."""
        if not FAMILIES[self._settings["family"]].may_fold:
            return False
        ref = next(self.flow.parameters())
        points = lattice(self.painter.extent, grid).to(ref.device, ref.dtype)
        with torch.no_grad():  # the signed determinant, as flowlab.testing.folds takes it, for the whole batch at once
            det = torch.linalg.det(jacobian(lambda x: self.flow.transform(x)[0], points))
        negative = int((det < 0).sum())
        count = min(negative, len(det) - negative)
        self._folds = (f" The map does not fold the plane on a {grid} x {grid} grid of the view: its density is "
                       "exact there." if count == 0 else
                       f" The map folds the plane at {count} of {grid * grid} grid points of the view: there the "
                       "density formula counts points twice. More steps (layers) or a smaller learning rate help.")
        return count > 0

    def _view(self) -> None:
        torch.set_num_threads(1)
        interval = 1.0 / self.fps
        while True:
            t0, cpu = time.perf_counter(), time.thread_time()
            done = self._done.is_set()
            if done:
                self.painter.set_grid(self.grid)  # the last picture of a run at full resolution
            try:
                self.draw()
            except Exception as e:  # noqa: BLE001 - this thread has no caller: anything raised here would
                # print a traceback into the notebook; the next picture tries again
                self.error = e
            if done:
                return
            self._view_cpu += time.thread_time() - cpu
            took = time.perf_counter() - t0
            g = self.painter.grid  # keep the rate up: a coarser lattice when drawing is slow
            if took > 0.6 * interval and g > min(MIN_GRID, self.grid):
                self._live_grid = max(min(MIN_GRID, self.grid), int(g * 0.75))
            elif took < 0.25 * interval and g < self.grid:
                self._live_grid = min(self.grid, g + 4)
            self.painter.set_grid(self._live_grid)
            self._done.wait(max(0.0, interval - (time.perf_counter() - t0)))

    def draw(self) -> None:
        """Redraw the picture and the loss chart from a copy of the current flow."""
        with self._draw_lock:
            with self._lock:  # a consistent copy: the training thread changes these under the lock
                self._mirror.load_state_dict(self.flow.state_dict())
                n = self.step_count
                h = self.history
                loss, vs, vn = list(h.loss), list(h.valid_step), list(h.valid_nll)
                total = self._run_start + self.run.total if self.run is not None else n + self._settings["steps"]
            # Sampling inverts the flow, iteratively for some families: when that is slow, the
            # samples are refreshed every few pictures so that the density keeps its frame rate.
            self._frame_count += 1
            if self._samples is None or self._frame_count % self._sample_every == 0 or not self.running:
                t0 = time.perf_counter()
                self._samples = self.painter.sample(self._mirror)
                took = time.perf_counter() - t0
                # at most a fifth of the view's time goes to samples (they refresh at least every 2 s)
                self._sample_every = min(math.ceil(2 * self.fps), max(1, math.ceil(took / (0.2 / self.fps))))
            self.picture, self.peak = self.painter.render(self._mirror, self._samples)
            t = self.target_object
            self.chart = loss_chart(loss, vs, vn, t.reference, total, width=CHART_WIDTH,
                                    reference_label=t.reference_label)
            self.caption = caption(self.painter.extent, t.points_label, self.peak)
            if self.running:
                self._frames.append((time.perf_counter(), n))
            self.total = total
        self._update()

    def kept(self) -> tuple[int, float | None] | None:
        """After a run that diverged: the step whose parameters the flow went back to, and their
        loss (``None`` when no step of the run had a finite loss); ``None`` otherwise."""
        run = self.run
        if run is None or not run.diverged:
            return None
        if not math.isfinite(run.lowest):
            return self._run_start, None
        return self.history.loss.index(run.lowest, self._run_start), run.lowest

    def progress(self) -> list[str]:
        """The step counter's parts: "step 120 of 2000", the latest loss and held-out NLL, the
        speed; after a divergence, the step and loss of the parameters the flow went back to."""
        h, n = self.history, self.step_count
        kept = self.kept()
        if kept is not None:
            step, value = kept
            return [f"stopped at step {n} of {self.total}", f"the flow went back to its parameters of step {step}"
                    + ("" if value is None else f" (loss {value:.3f})")]
        parts = [f"step {n} of {self.total}"]
        if h.loss and math.isfinite(h.loss[-1]):
            parts.append(f"loss {h.loss[-1]:.3f}")
        if h.valid_nll:
            parts.append(f"held-out NLL {h.valid_nll[-1]:.3f}")
        if self.running and n > 0 and self._speed > 0:
            parts.append(f"{self._speed:.0f} steps/s")
        return parts

    def stop(self) -> None:
        """Stop training (the current step finishes) and wait for the background threads."""
        self._stop.set()
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join(timeout=30)

    def wait(self, steps: int | None = None, timeout: float = 60.0) -> bool:
        """Block until training ends (``steps=None``) or ``step_count >= steps``. Returns
        ``False`` after ``timeout`` seconds or when training ended before reaching ``steps``."""
        deadline = time.perf_counter() + timeout
        while True:
            if steps is not None and self.step_count >= steps:
                return True
            if not self.running:
                for t in self._threads:  # the view draws the last picture after training ends
                    t.join(timeout=max(0.0, deadline - time.perf_counter()))
                return steps is None or self.step_count >= steps
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self._done.wait(min(left, 0.01))

    def reset(self) -> None:
        """Stop, then build a fresh flow from the current settings: the same seed gives the same
        start and the same run; change ``seed`` for another."""
        self.stop()
        self.error = None
        try:
            self._build()
        except BUILD_ERRORS as e:
            self.fail(f"Cannot reset: {e}", e)
            return
        self.say(f"Reset: a fresh flow from seed {self._settings['seed']}; press Start. (Change the seed for another.)")

    def stats(self) -> dict:
        """View and training speed of the last run: ``frames`` (pictures drawn), ``updates_per_s``,
        ``first_frame_s`` (seconds from the call of :meth:`start` to the first picture),
        ``first_step_frame_s`` (to the first picture that shows a trained step), ``steps_per_s``
        and ``view_cpu_s`` (the view thread's CPU time per picture while training ran: on a busy
        machine it says what the view would need on a free core)."""
        times = [t - self._started for t, _ in self._frames]
        first = self._frames[0][1] if self._frames else 0
        moved = [t - self._started for t, n in self._frames if n > first]
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return {"frames": len(times), "updates_per_s": (len(times) - 1) / span if span > 0 else 0.0,
                "first_frame_s": times[0] if times else float("nan"),
                "first_step_frame_s": moved[0] if moved else float("nan"), "steps_per_s": self._speed,
                "view_cpu_s": self._view_cpu / len(times) if times else float("nan")}

    # ------------------------------------------------------------------ replay

    def record(self, steps: int | None = None, every: int | None = None, size: int = 200, title: str | None = None,
               grid: int = 64) -> Replay:
        """Train a fresh flow exactly as Start does from a fresh flow (same settings, seed and
        run), and return a kernel-free :class:`flowlab.replay.Replay` of it for the rendered
        book. The session's own flow is left alone. ``steps`` sets the run's length (default:
        the ``steps`` setting); ``every`` takes a snapshot every ``steps / 50`` steps by default.
        Raises ``ValueError`` for settings that cannot work (this is for notebook code, not the
        buttons)."""
        s = self._settings
        steps = check_positive_int("steps", s["steps"] if steps is None else steps)
        every = check_positive_int("every", every or max(1, steps // 50))
        target = self._make_target()
        flow = self._make_flow(target.features).to(s["device"])
        painter = Painter(target.points, extent=target.extent, grid=grid, size=size, seed=s["seed"])
        return record(flow, target.data, steps, every, s["lr"], s["batch_size"], target.valid,
                      seed=run_seed(s["seed"], 0), painter=painter, threads=self.threads, reference=target.reference,
                      reference_label=target.reference_label, points_label=target.points_label,
                      valid_every=self.valid_every, objective=FAMILIES[s["family"]].objective,
                      title=title if title is not None else f"{s['family']} on {target.name}, {steps} steps")
