"""The live trainer, driven headless through its Python API (no browser, no clicks).

Small flows (MAF, 2 layers of 16 units) keep each test to a second or two on a 2-core CPU.
Uses the `device` fixture of conftest.py (`--device`, default cpu).
"""

from __future__ import annotations

import math

import pytest
import torch

import flowlab as fl
import flowlab.live as live

SMALL = dict(family="MAF", layers=2, hidden=16)
PNG = b"\x89PNG\r\n\x1a\n"


def finite(flow) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in flow.parameters())


@pytest.fixture
def trainer(device):
    t = live.Trainer(target="moons", steps=10**6, device=str(device), **SMALL)
    yield t
    t.stop()


def test_start_wait_stop_reset(trainer, device):
    first_picture = trainer.picture
    assert first_picture.startswith(PNG)
    assert trainer.step_count == 0 and not trainer.running
    trainer.start()
    assert trainer.running  # start returns at once; training runs in the background
    assert trainer.wait(steps=20, timeout=30)
    trainer.stop()
    assert not trainer.running
    n = trainer.step_count
    assert n >= 20 and len(trainer.history.loss) == n
    assert trainer.history.valid_nll, "the held-out NLL is recorded every 20 steps"
    assert next(trainer.flow.parameters()).device.type == device.type
    stats = trainer.stats()
    assert stats["frames"] >= 1 and stats["first_frame_s"] < 5
    assert trainer.picture.startswith(PNG) and trainer.picture != first_picture
    assert "<svg" in trainer._plot.value and "steps/s" in trainer._info.value
    assert trainer.message == f"Stopped at step {n}."
    # Start continues from the current flow
    trainer.steps = n + 10
    trainer.start()
    assert trainer.wait(timeout=30)
    assert trainer.step_count == n + 10 and trainer.message == f"Done: {n + 10} steps."
    # Reset: a fresh flow, the same start as before
    trainer.reset()
    assert trainer.step_count == 0 and trainer.history.loss == []
    assert trainer.picture == first_picture


def test_change_setting_while_training_stops_and_says_so(trainer):
    trainer.start()
    assert trainer.wait(steps=5, timeout=30)
    trainer.lr = 1e-3
    assert not trainer.running
    assert trainer.message.startswith("Training stopped: the learning rate changed")
    n = trainer.step_count
    trainer.start()  # the flow is kept for a new learning rate
    assert trainer.wait(steps=n + 5, timeout=30)
    trainer.target = "circles"  # a new target: a new flow
    assert not trainer.running and trainer.step_count == 0
    assert "new flow" in trainer.message


def test_device_cpu(device):
    trainer = live.Trainer(target="circles", steps=10, device=str(device), **SMALL)
    assert trainer.device == fl.available_devices()[0] if device.type == "cpu" else str(device)
    trainer.device = "cpu"
    assert trainer.device == "cpu" and not trainer.error
    trainer.start()
    assert trainer.wait(timeout=30)
    assert next(trainer.flow.parameters()).device.type == "cpu"
    assert trainer.step_count == 10


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("parts", 3, "parts must be"),
        ("bins", 0, "bins must be"),
        ("layers", 0, "layers must be"),
        ("lr", -1.0, "learning rate must be"),
        ("steps", 0, "steps must be"),
        ("batch_size", 2.5, "batch size must be"),
        ("device", "cuda:7", "not available"),
        ("device", "no such device", "not available"),
        ("target", "no such target", "unknown target"),
        ("family", "no such flow", "unknown flow family"),
    ],
)
def test_bad_setting_gives_a_message(trainer, name, value, words):
    if name == "bins":
        trainer.family = "spline autoregressive"
    before = getattr(trainer, name)
    setattr(trainer, name, value)  # no exception
    assert words in trainer.message.lower()
    assert "Traceback" not in trainer._status.value
    assert getattr(trainer, name) == before, "the setting that works stays"
    trainer.start()  # and the trainer still trains
    assert trainer.wait(steps=3, timeout=30)


def test_bad_constructor_settings_give_a_message():
    trainer = live.Trainer(target="no such target", steps=5)
    assert "unknown target" in trainer.message
    assert trainer.flow is not None and trainer.target == "circles"
    trainer = live.Trainer(target="moons", lr=0, device="cuda:9", **SMALL)
    assert "learning rate" in trainer.message and "cuda:9" in trainer.message
    assert trainer.device in fl.available_devices() and trainer.lr > 0


class _NanAfter(live.DataTarget):
    """Moons whose loss turns NaN after a few steps: a divergence in the middle of training."""

    def __init__(self, after):
        super().__init__("nan", fl.targets.moons)
        self.after, self.calls = after, 0

    def loss(self, flow, batch_size, generator):
        self.calls += 1
        loss = super().loss(flow, batch_size, generator)
        return loss * math.nan if self.calls > self.after else loss


def test_divergence_shows_a_message_and_keeps_finite_parameters(device):
    live.TARGETS["nan after 10"] = lambda: _NanAfter(10)
    try:
        trainer = live.Trainer(target="nan after 10", steps=100, device=str(device), **SMALL)
        trainer.start()
        assert trainer.wait(timeout=30)
    finally:
        del live.TARGETS["nan after 10"]
    assert trainer.step_count == 10
    assert "the loss became nan" in trainer.message and "last good parameters" in trainer.message
    assert finite(trainer.flow)
    # data the flow cannot fit at all: stopped at step 0, still a message and finite parameters
    trainer = live.Trainer(target=torch.randn(200, 2) * 1e20, steps=10, device=str(device), **SMALL)
    trainer.start()
    assert trainer.wait(timeout=30)
    assert trainer.step_count == 0 and "standardized" in trainer.message and finite(trainer.flow)


class _FailAfter(live.DataTarget):
    """Moons whose device fails after a few steps (as when a GPU is lost)."""

    def __init__(self, after):
        super().__init__("fail", fl.targets.moons)
        self.after, self.calls = after, 0

    def loss(self, flow, batch_size, generator):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("CUDA error: the device is gone")
        return super().loss(flow, batch_size, generator)


def test_failing_device_shows_a_message(device):
    live.TARGETS["fail after 5"] = lambda: _FailAfter(5)
    try:
        trainer = live.Trainer(target="fail after 5", steps=100, device=str(device), **SMALL)
        trainer.start()
        assert trainer.wait(timeout=30)
    finally:
        del live.TARGETS["fail after 5"]
    assert trainer.step_count == 5 and "the device is gone" in trainer.message
    assert isinstance(trainer.error, RuntimeError) and finite(trainer.flow)


def test_density_target_trains_by_reverse_kl(device):
    live.TARGETS["8 gaussians density"] = lambda: live.DensityTarget(
        "8 gaussians density", fl.targets.eight_gaussians_log_prob, log_z=0.0
    )
    try:
        trainer = live.Trainer(target="8 gaussians density", steps=10, batch_size=64, device=str(device), **SMALL)
    finally:
        del live.TARGETS["8 gaussians density"]
    assert trainer._painter.extent == 3.0  # found from the density: modes at radius 2, std 0.15
    trainer.start()
    assert trainer.wait(timeout=30) and trainer.step_count == 10 and not trainer.error
    assert "reverse KL" in trainer._caption.value and "best possible" in trainer._plot.value


@pytest.mark.parametrize("name", list(getattr(fl.targets, "DENSITIES", {})))
def test_builtin_densities(name, device):
    trainer = live.Trainer(target=name, family="IAF (inverse MAF)", layers=2, hidden=16, steps=5, batch_size=64,
                           device=str(device))
    assert trainer.target == name and not trainer.error, trainer.message
    trainer.start()
    assert trainer.wait(timeout=30) and trainer.step_count == 5 and not trainer.error, trainer.message
    assert trainer._target.reference == pytest.approx(-fl.targets.LOG_Z[name])
    replay = trainer.record(steps=4, every=2, size=32)
    assert replay.steps == [0, 2, 4] and len(replay.loss) == 4 and "best possible" in replay.html()


def test_record_and_display(device):
    trainer = live.Trainer(target="moons", steps=20, device=str(device), **SMALL)
    replay = trainer.record(every=10, size=48)
    assert replay.steps == [0, 10, 20] and len(replay.loss) == 20
    assert trainer.step_count == 0, "recording leaves the dashboard's flow alone"
    bundle = trainer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Binder" in bundle["text/html"] and "Colab" in bundle["text/html"]


def test_one_dashboard_trains_at_a_time(device):
    first = live.Trainer(target="moons", steps=10**6, device=str(device), **SMALL)
    second = live.Trainer(target="circles", steps=10**6, device=str(device), **SMALL)
    first.start()
    assert first.wait(steps=2, timeout=30)
    second.start()
    try:
        assert not first.running and "another dashboard" in first.message
        assert second.running
    finally:
        second.stop()
