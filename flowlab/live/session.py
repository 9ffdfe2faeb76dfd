"""A headless live-training session: settings, a flow, a background thread over the shared loop.

:class:`Session` is everything the dashboard does except the widgets: it checks each setting
when it is set, builds the target and the flow from :mod:`flowlab.live.choices`, trains in a
background thread over :class:`flowlab.Training` (the loop of :func:`flowlab.fit`), redraws a
picture from a copy of the parameters in a second thread, and records kernel-free replays of
the very same training. :class:`flowlab.live.Trainer` adds the controls on top.
"""

from __future__ import annotations

import atexit
import copy
import math
import threading
import time
import weakref

import torch

from .._checks import check_positive_float, check_positive_int
from ..chart import loss_chart
from ..core import Flow, StandardNormal
from ..device import available_devices
from ..pictures import Painter, caption
from ..replay import Replay, record
from ..train import History, Training, _copy
from .choices import FAMILIES, DataTarget, make_target
from .settings import CHECKS, DEFAULTS, MODEL, Setting, label

_SESSIONS: weakref.WeakSet[Session] = weakref.WeakSet()  # every session of this process


@atexit.register
def _stop_all() -> None:
    """Stop every session's threads before the interpreter exits (a thread killed in the
    middle of a torch operation aborts the process)."""
    for session in list(_SESSIONS):
        session.stop(quiet=True)


class Session:
    """Live training without widgets. See :class:`flowlab.live.Trainer` for the settings.

    The view redraws at up to ``fps`` pictures a second. The density is computed afresh for
    every picture; the samples (which invert the flow, iteratively for the monotone and integral
    transformers) are refreshed every few pictures when computing them would slow the view down.

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

    def __init__(self, target="circles", family: str = "spline autoregressive", layers: int = 4, hidden: int = 64,
                 bins: int = 8, bound: float = 4.0, parts: int | None = None, lr: float = 5e-3,
                 batch_size: int | None = 32, steps: int = 2000, device=None, *, mixing: str = "reverse", seed: int = 0,
                 threads: int = 1, fps: float = 15.0, valid_every: int = 20, size: int = 224, grid: int = 48):
        for other in list(_SESSIONS):  # a re-run cell: the old dashboard stops training
            if other.running:
                other.stop(quiet=True)
                other.say(f"Stopped at step {other.step_count}: a new dashboard was made in this kernel.")
        _SESSIONS.add(self)
        self.threads = check_positive_int("threads", threads)
        self.fps = check_positive_float("fps", fps)
        self.valid_every = check_positive_int("valid_every", valid_every)
        self.size = check_positive_int("size", size, 8)
        self.grid = check_positive_int("grid", grid, 2)
        self.message, self.error = "", None
        self.history, self.flow, self.run = History(), None, None
        self.picture, self.peak, self.chart = b"", None, None
        self._samples, self._frame_count, self._sample_every = None, 0, 1
        self._lock = threading.Lock()  # held while the parameters and the history change
        self._draw_lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._threads: list[threading.Thread] = []
        self._frames: list[tuple[float, int]] = []  # (time, step) of each picture of the run
        self._started = 0.0
        self._speed = 0.0
        given = dict(target=target, family=family, layers=layers, hidden=hidden, bins=bins, bound=bound, parts=parts,
                     mixing=mixing, seed=seed, lr=lr, batch_size=batch_size, steps=steps,
                     device=available_devices()[0] if device is None else device)
        self._settings, problems = {}, []
        for name, value in given.items():
            try:
                self._settings[name] = CHECKS[name](value)
            except (TypeError, ValueError) as e:
                fallback = DEFAULTS.get(name, available_devices()[0])
                problems.append(f"{e} Using {label(name)} = {fallback!r}.")
                self._settings[name] = fallback
        self._custom = None
        if not isinstance(self._settings["target"], str):
            self._custom, self._settings["target"] = self._settings["target"], "custom data"
        try:
            self._build()
        except Exception as e:  # noqa: BLE001 - the user's combination of settings: show the default flow
            problems.append(f"These settings cannot work: {e} Showing the default flow instead.")
            self.error = e
            self._settings.update({k: DEFAULTS[k] for k in MODEL})
            self._custom = None
            self._build()
        self.fail(" ".join(problems), self.error) if problems else self.say("Ready: press Start.")

    # ------------------------------------------------------------------ messages (the dashboard shows them)

    def say(self, text: str, error: bool = False) -> None:
        self.message = text[:1].upper() + text[1:]
        self.message_is_error = error

    def fail(self, text: str, error: BaseException | None = None) -> None:
        self.error = error
        self.say(text, error=True)

    def show(self) -> None:
        """Called after every new picture (the dashboard updates its view)."""

    # ------------------------------------------------------------------ settings

    def set(self, name: str, value) -> None:
        """Change a setting; a value that cannot work is refused with a message, never raised."""
        if name not in self._settings:
            raise AttributeError(name)
        note = ""
        if self.running:
            self.stop(quiet=True)
            note = f"Training stopped: the {label(name)} changed. "
        try:
            value = CHECKS[name](value)
        except (TypeError, ValueError) as e:
            self.fail(f"{note}{e} Keeping {label(name)} = {self._settings[name]!r}.", e)
            return
        old, old_custom = self._settings[name], self._custom
        if name == "target" and not isinstance(value, str):
            self._custom, value = value, "custom data"
        self._settings[name] = value
        if name in MODEL:
            try:
                self._build()
            except Exception as e:  # noqa: BLE001 - any failure to build is the user's setting: say it
                self._settings[name], self._custom = old, old_custom
                self.fail(f"{note}This setting cannot work: {e} Keeping {label(name)} = {old!r}.", e)
                return
            self.say(note + ("Reset: a fresh flow" if name == "seed" else "A new flow was built")
                     + f" (seed {self._settings['seed']}); press Start to train it.")
        else:
            self.run = None  # the next Start begins a new run with the new setting
            if name == "device":
                self._move(torch.device(value))
            self.say(note + f"The {label(name)} is now {value}; press Start.")
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
        painter = Painter(target.points, extent=target.extent, grid=self.grid, size=self.size, seed=self._settings["seed"])
        painter.evaluate(flow)  # fails here, not in the view thread, for a flow that cannot be drawn
        self._samples = None
        device = torch.device(self._settings["device"])
        with self._lock:
            self.flow, self.target_object, self.painter = flow.to(device), target, painter
            self._shadow = copy.deepcopy(self.flow).requires_grad_(False)
            self.history, self.run = History(), None
        self.draw()

    def _move(self, device: torch.device) -> None:
        with self._lock:
            self.flow.to(device)
            self._shadow.to(device)

    @property
    def step_count(self) -> int:
        """Steps trained since the flow was built."""
        return len(self.history.loss)

    # ------------------------------------------------------------------ training

    def training(self, flow: Flow, steps: int) -> Training:
        """The run that Start and :meth:`record` both train: the settings, the seed, fit's defaults."""
        s, target = self._settings, self.target_object
        seed = s["seed"] + 7919 * self.step_count if flow is self.flow else s["seed"]
        return Training(flow, target.data, steps, s["lr"], s["batch_size"], target.valid, valid_every=self.valid_every,
                        seed=seed, lock=self._lock if flow is self.flow else None,
                        history=self.history if flow is self.flow else None)

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self) -> None:
        """Start (or continue) training in the background; returns at once. A run goes on until
        the step counter reaches ``steps`` (or for ``steps`` more when it is there already)."""
        if self.running:
            return
        for other in list(_SESSIONS):  # one training at a time
            if other is not self and other.running:
                other.stop(quiet=True)
                other.say(f"Stopped at step {other.step_count}: another dashboard started training.")
        try:
            if self.run is None or self.run.done:
                self.run = self.training(self.flow, self._settings["steps"])
        except Exception as e:  # noqa: BLE001 - shown, never raised
            self.fail(f"Cannot start: {e}", e)
            return
        self.error = None
        self._stop.clear()
        self._done.clear()
        self._frames, self._speed, self._started = [], 0.0, time.perf_counter()
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
                now = time.perf_counter()
                self._speed = (self.step_count - first) / max(now - start, 1e-9)
                if self._stop.is_set():
                    break
            final = run.history.message if run.diverged else (
                f"Done: {self.step_count} steps." if run.done else f"Stopped at step {self.step_count}.")
            self.fail(final) if run.diverged else self.say(final)
        except Exception as e:  # noqa: BLE001 - shown as a message, never as a traceback
            self.run = None
            self.fail(self._recover(run, e), e)
        finally:
            run.flow.eval()
            self._done.set()

    def _recover(self, run: Training, e: BaseException) -> str:
        try:
            with self._lock:
                run._keep_finite()
            return (f"Training stopped at step {self.step_count}: {type(e).__name__}: {e} "
                    "The flow keeps its last good parameters.")
        except Exception:  # noqa: BLE001 - the device itself is gone: go on from the last picture, on the CPU
            with self._lock:
                self.flow = copy.deepcopy(self._shadow.to("cpu")).requires_grad_(True)
                self._settings["device"] = "cpu"
            return (f"Training stopped: the device failed ({type(e).__name__}: {e}). The flow was moved to the "
                    "CPU with the parameters of the last picture.")

    def _view(self) -> None:
        torch.set_num_threads(1)
        interval = 1.0 / self.fps
        while True:
            t0 = time.perf_counter()
            done = self._done.is_set()
            try:
                self.draw()
            except Exception as e:  # noqa: BLE001 - a failed picture must not kill the session
                self.error = e
            took = time.perf_counter() - t0
            g = self.painter.grid  # keep the rate up: a coarser grid when drawing is slow
            if took > 0.6 * interval and g > 24:
                self.painter.set_grid(max(24, int(g * 0.75)))
            elif took < 0.25 * interval and g < self.grid:
                self.painter.set_grid(min(self.grid, g + 4))
            if done:
                return
            self._done.wait(max(0.0, interval - (time.perf_counter() - t0)))

    def draw(self) -> None:
        """Redraw the picture and the loss chart from a copy of the current parameters."""
        with self._draw_lock:
            with self._lock:  # a consistent copy: the training thread changes these under the lock
                _copy(list(self._shadow.parameters()), [p.detach() for p in self.flow.parameters()])
                n = self.step_count
                h = self.history
                loss, vs, vn = list(h.loss), list(h.valid_step), list(h.valid_nll)
                run = self.run
                total = n + (run.total - run.step_count if run is not None and not run.done
                             else 0 if run is not None else self._settings["steps"])
            # Sampling inverts the flow, iteratively for some families: when that is slow, the
            # samples are refreshed every few pictures so that the density keeps its frame rate.
            self._frame_count += 1
            if self._samples is None or self._frame_count % self._sample_every == 0 or not self.running:
                t0 = time.perf_counter()
                self._samples = self.painter.sample(self._shadow)
                took = time.perf_counter() - t0
                # at most a fifth of the view's time goes to samples (they refresh at least every 2 s)
                self._sample_every = min(math.ceil(2 * self.fps), max(1, math.ceil(took / (0.2 / self.fps))))
            self.picture, self.peak = self.painter.render(self._shadow, self._samples)
            t = self.target_object
            self.chart = loss_chart(loss, vs, vn, t.reference, total, reference_label=t.reference_label)
            self.caption = caption(self.painter.extent, t.points_label, self.peak)
            if self.running:
                self._frames.append((time.perf_counter(), n))
            self.total = total
        self.show()

    def stop(self, quiet: bool = False) -> None:
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
        self.stop(quiet=True)
        self.error = None
        try:
            self._build()
        except Exception as e:  # noqa: BLE001
            self.fail(f"Cannot reset: {e}", e)
            return
        self.say(f"Reset: a fresh flow from seed {self._settings['seed']}; press Start. (Change the seed for another.)")

    def stats(self) -> dict:
        """View and training speed of the last run: ``frames`` (pictures drawn), ``updates_per_s``,
        ``first_frame_s`` (seconds from Start to the first picture), ``first_step_frame_s`` (to
        the first picture that shows a trained step) and ``steps_per_s``."""
        times = [t - self._started for t, _ in self._frames]
        first = self._frames[0][1] if self._frames else 0
        moved = [t - self._started for t, n in self._frames if n > first]
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return {"frames": len(times), "updates_per_s": (len(times) - 1) / span if span > 0 else 0.0,
                "first_frame_s": times[0] if times else float("nan"),
                "first_step_frame_s": moved[0] if moved else float("nan"), "steps_per_s": self._speed}

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
        return record(flow, target.data, steps, every, s["lr"], s["batch_size"], target.valid, seed=s["seed"],
                      painter=painter, threads=self.threads, reference=target.reference,
                      reference_label=target.reference_label, points_label=target.points_label, valid_every=self.valid_every,
                      title=title if title is not None else f"{s['family']} on {target.name}, {steps} steps")
