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


def test_a_new_dashboard_is_ready_with_exact_settings(trainer):
    assert trainer.message == "Ready: press Start." and not trainer.message_is_error
    assert "Ready" in trainer._status.value
    controls = trainer._controls
    assert controls["lr"].value == 5e-3 and trainer.lr == 5e-3  # the slider holds the exact rate
    for name in ("batch_size", "parts", "hidden", "target", "family", "device"):  # every option a (label, value) pair
        assert all(isinstance(o, tuple) and len(o) == 2 for o in controls[name].options), name
    assert ("all data", 0) in controls["batch_size"].options  # a selection widget cannot show None
    assert "flowlab-batch" in controls["batch_size"]._dom_classes
    assert trainer._image.layout.width == f"{trainer.painter.width}px"  # shown at its natural size


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
    assert trainer.stats()["frames"] >= 1
    assert trainer.picture.startswith(PNG) and trainer.picture != first_picture
    assert "<svg" in trainer._plot.value and f"step {n}</b>" in trainer._counter.value
    assert trainer.message == f"Stopped at step {n}."
    # Start continues the same run from the current flow
    trainer.start()
    assert trainer.wait(steps=n + 10, timeout=30)
    trainer.stop()
    assert trainer.step_count >= n + 10
    # Reset: a fresh flow, the same start as before, and it says what it reset
    trainer.reset()
    assert trainer.step_count == 0 and trainer.history.loss == []
    assert trainer.picture == first_picture
    assert "seed 0" in trainer.message


def test_record_trains_exactly_as_start(device):
    """The replay in the site is the dashboard's own training: equal losses step by step."""
    trainer = live.Trainer(target="moons", steps=120, device=str(device), **SMALL)
    replay = trainer.record(every=40, size=32, grid=8)
    trainer.start()
    assert trainer.wait(timeout=60) and trainer.message == "Done: 120 steps."
    assert trainer.history.loss == pytest.approx(replay.loss, abs=1e-6)
    assert trainer.history.valid_nll == pytest.approx(replay.valid_nll, abs=1e-6)
    assert replay.steps == [0, 40, 80, 120]


def test_record_of_a_density_target_trains_exactly_as_start(device):
    trainer = live.Trainer(target="banana", family="IAF (inverse MAF)", layers=2, hidden=16, steps=60, batch_size=64,
                           device=str(device))
    replay = trainer.record(every=30, size=32, grid=8)
    trainer.start()
    assert trainer.wait(timeout=60) and not trainer.error, trainer.message
    assert trainer.history.loss == pytest.approx(replay.loss, abs=1e-6)


def test_the_seed_changes_the_run_and_reset_repeats_it(device):
    trainer = live.Trainer(target="moons", steps=30, device=str(device), **SMALL)
    trainer.start()
    trainer.wait(timeout=30)
    first = list(trainer.history.loss)
    trainer.reset()
    trainer.start()
    trainer.wait(timeout=30)
    assert trainer.history.loss == pytest.approx(first, abs=1e-6)
    trainer.seed = 1
    assert trainer.seed == 1 and trainer._controls["seed"].value == 1 and "seed 1" in trainer.message
    trainer.start()
    trainer.wait(timeout=30)
    assert trainer.history.loss[0] != pytest.approx(first[0], abs=1e-4)


def test_choosing_all_data_in_the_control_trains_full_batch(trainer):
    control = trainer._controls["batch_size"]
    control.label = "all data"  # as a click on the option does
    assert trainer.batch_size is None and not trainer.message_is_error, trainer.message
    assert control.label == "all data" and control.index == 0, "the dropdown still shows the choice"
    trainer.batch_size = 64
    assert control.label == "64"
    trainer.batch_size = None
    assert control.label == "all data"
    trainer.start()
    assert trainer.wait(steps=3, timeout=30)


def test_device_cpu(device):
    trainer = live.Trainer(target="circles", steps=10, device=str(device), **SMALL)
    assert trainer.device == (fl.available_devices()[0] if device.type == "cpu" else str(device))
    trainer.device = "cpu"
    assert trainer.device == "cpu" and not trainer.error
    trainer.start()
    assert trainer.wait(timeout=30)
    assert next(trainer.flow.parameters()).device.type == "cpu"
    assert trainer.step_count == 10


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("parts", 3, "parts"),
        ("parts", 0, "parts must be"),
        ("bins", 0, "bins must be"),  # refused while MAF (which has no bins) is the family
        ("bound", -1.0, "bound must be"),
        ("layers", 0, "layers must be"),
        ("hidden", 0, "hidden must be"),
        ("seed", -1, "seed must be"),
        ("seed", "abc", "seed must be"),
        ("lr", -1.0, "learning rate must be"),
        ("steps", 0, "steps must be"),
        ("batch_size", 2.5, "batch size must be"),
        ("device", "cuda:7", "not available"),
        ("device", "no such device", "device name"),
        ("target", "no such target", "unknown target"),
        ("family", "no such flow", "unknown flow family"),
    ],
)
def test_bad_setting_gives_a_message(trainer, name, value, words):
    before = getattr(trainer, name)
    setattr(trainer, name, value)  # no exception
    assert words in trainer.message.lower() and trainer.message_is_error
    assert "Traceback" not in trainer._status.value
    assert getattr(trainer, name) == before, "the setting that works stays"
    trainer.start()  # and the trainer still trains
    assert trainer.wait(steps=3, timeout=30)


def test_a_refused_setting_never_corners_the_dashboard(trainer):
    trainer.bins = 0  # refused even though MAF does not use bins
    assert trainer.bins == 8
    trainer.family = "spline autoregressive"
    assert trainer.family == "spline autoregressive" and not trainer.message_is_error, trainer.message
    assert trainer._controls["bins"].layout.display is None  # the spline's knobs are shown


def test_bad_constructor_settings_give_a_message():
    trainer = live.Trainer(target="no such target", steps=5)
    assert "unknown target" in trainer.message.lower() and trainer.message_is_error
    assert trainer.flow is not None and trainer.target == "circles"
    trainer = live.Trainer(target="moons", lr=0, device="cuda:9", **SMALL)
    assert "learning rate" in trainer.message and "cuda:9" in trainer.message
    assert trainer.device in fl.available_devices() and trainer.lr > 0


def _nan_after(calls: int):
    count = [0]

    def log_prob(x):
        count[0] += 1
        out = fl.targets.banana_log_prob(x)
        return out * math.nan if count[0] > calls else out

    return log_prob


def test_a_log_density_that_returns_nan_is_named_as_the_cause(device):
    live.TARGETS["nan banana"] = lambda: live.DensityTarget("nan banana", _nan_after(12))
    try:
        trainer = live.Trainer(target="nan banana", steps=100, batch_size=64, device=str(device), **SMALL)
        trainer.start()
        assert trainer.wait(timeout=30)
    finally:
        del live.TARGETS["nan banana"]
    assert trainer.step_count < 100 and "log_prob_fn returned nan" in trainer.message
    assert trainer.message_is_error and finite(trainer.flow)


def test_data_the_flow_cannot_fit_stops_with_advice(device):
    trainer = live.Trainer(target=torch.randn(200, 2) * 1e20, steps=50, device=str(device), **SMALL)
    trainer.start()
    assert trainer.wait(timeout=30)
    assert trainer.step_count == 10, "stopped after ten bad steps in a row"
    assert "standardized" in trainer.message and trainer.message_is_error and finite(trainer.flow)


def _fail_after(calls: int):
    count = [0]

    def log_prob(x):
        count[0] += 1
        if count[0] > calls:
            raise RuntimeError("CUDA error: the device is gone")
        return fl.targets.banana_log_prob(x)

    return log_prob


def test_failing_device_shows_a_message(device):
    live.TARGETS["failing"] = lambda: live.DensityTarget("failing", _fail_after(6))
    try:
        trainer = live.Trainer(target="failing", steps=100, batch_size=64, device=str(device), **SMALL)
        trainer.start()
        assert trainer.wait(timeout=30)
    finally:
        del live.TARGETS["failing"]
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
    assert trainer.painter.extent == 3.0  # found from the density: modes at radius 2, std 0.15
    trainer.start()
    assert trainer.wait(timeout=30) and trainer.step_count == 10 and not trainer.error
    assert "reverse KL" in trainer._caption.value and "best possible" in trainer._plot.value
    assert "samples of the target density (grey)" in trainer._caption.value


@pytest.mark.parametrize("name", list(getattr(fl.targets, "DENSITIES", {})))
def test_builtin_densities(name, device):
    trainer = live.Trainer(target=name, family="IAF (inverse MAF)", layers=2, hidden=16, steps=5, batch_size=64,
                           device=str(device))
    assert trainer.target == name and not trainer.error, trainer.message
    trainer.start()
    assert trainer.wait(timeout=30) and trainer.step_count == 5 and not trainer.error, trainer.message
    assert trainer.target_object.reference == pytest.approx(-fl.targets.LOG_Z[name])
    replay = trainer.record(steps=4, every=2, size=32, grid=8)
    assert replay.steps == [0, 2, 4] and len(replay.loss) == 4 and "best possible" in replay.html()


def test_record_and_display(device):
    trainer = live.Trainer(target="moons", steps=20, device=str(device), **SMALL)
    replay = trainer.record(every=10, size=48, grid=8)
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
        third = live.Trainer(target="moons", steps=10, device=str(device), **SMALL)  # a cell run again
        assert not second.running and "new dashboard" in second.message
        assert third.message.startswith("Ready")
    finally:
        second.stop()


@pytest.mark.parametrize("family", list(live.FAMILIES))
def test_every_family_builds_trains_and_draws(family, device):
    trainer = live.Trainer(target="moons", family=family, layers=1, hidden=8, bins=4, steps=2, device=str(device),
                           grid=8, size=32)
    assert trainer.message.startswith("Ready"), trainer.message
    trainer.start()
    assert trainer.wait(timeout=60) and trainer.step_count == 2 and not trainer.error, trainer.message


@pytest.mark.parametrize("kind, between", [("reverse", fl.Reverse), ("permutation", fl.Permutation), ("lu", fl.LU),
                                           ("none", None)])
def test_the_mixing_layer_between_layers_is_a_setting(kind, between, device):
    trainer = live.Trainer(target="moons", family="MAF", layers=3, hidden=8, parts=2, mixing=kind, steps=3,
                           device=str(device))
    assert trainer.mixing == kind and trainer.message.startswith("Ready"), trainer.message
    blocks = list(trainer.flow.transform.transforms)
    mixers = [b for b in blocks if not isinstance(b, fl.Autoregressive)]
    assert len(blocks) - len(mixers) == 3
    assert (mixers == []) if between is None else (len(mixers) == 2 and all(isinstance(b, between) for b in mixers))
    trainer.start()
    assert trainer.wait(timeout=30) and trainer.step_count == 3


def test_reverse_mixing_builds_exactly_the_recipe():
    """The dashboard's stack with "reverse" between the layers is the public recipe itself."""
    trainer = live.Trainer(target="moons", family="spline autoregressive", layers=3, hidden=8, steps=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        recipe = fl.SplineAutoregressive(2, hidden=(8, 8), bins=8, bound=4.0, layers=3)
    x = fl.targets.moons(50, seed=0)
    assert torch.allclose(trainer.flow.transform(x)[0], recipe(x)[0])
