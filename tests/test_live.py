"""The live trainer, driven headless through its Python API (no browser, no clicks).

The dashboard is driven as a reader drives it: through its settings (attributes), its methods
and its widgets (`trainer.ui`: a control's value set as a click or typing sets it). Small flows
(MAF, 2 layers of 16 units) keep each test to a second or two on a 2-core CPU.
Uses the `device` fixture of conftest.py (`--device`, default cpu).
"""

from __future__ import annotations

import math
import time

import pytest
import torch

import flowlab as fl
import flowlab.live as live

SMALL = dict(family="MAF", layers=2, hidden=16)
PNG = b"\x89PNG\r\n\x1a\n"


def _eventually(condition, timeout: float = 30.0) -> bool:
    """Whether ``condition()`` holds within ``timeout`` seconds (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def finite(flow) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in flow.parameters())


@pytest.fixture
def trainer(device):
    t = live.Trainer(target="moons", steps=10**6, device=str(device), **SMALL)
    yield t
    t.stop()


def test_a_new_dashboard_is_ready_with_exact_settings(trainer):
    assert trainer.message == "Ready: press Start." and not trainer.message_is_error
    assert "Ready" in trainer.ui.status.value
    controls = trainer.ui.controls
    assert trainer.lr == 5e-3 and trainer.ui.lr_slider.value == 5e-3 and controls["lr"].value == "0.005"
    assert not trainer.ui.lr_slider.readout, "the slider's own readout would take typing and ignore it"
    for name in ("batch_size", "parts", "hidden", "target", "family", "device"):  # every option a (label, value) pair
        assert all(isinstance(o, tuple) and len(o) == 2 for o in controls[name].options), name
    assert ("all data", 0) in controls["batch_size"].options  # a selection widget cannot show None
    assert controls["bins"].min == 2, "one bin makes the spline the identity"
    assert trainer.ui.image.layout.width == f"{trainer.painter.width}px"  # shown at its natural size
    assert trainer.ui.counter.value == "<b>step 0 of 1000000</b>"
    assert trainer.widget.children, "the dashboard is one widget"


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
    assert trainer.ui.image.value == trainer.picture
    assert "<svg" in trainer.ui.plot.value and f"step {n} of 1000000</b>" in trainer.ui.counter.value
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


def test_record_of_glow_trains_exactly_as_start(device):
    """Drawing never touches the trained flow: Glow's ActNorm sets itself from the first batch of data
    in both runs (not from the lattice of a picture)."""
    trainer = live.Trainer(target="moons", family="Glow (ActNorm, LU, affine coupling)", layers=2, hidden=16,
                           steps=40, device=str(device))
    replay = trainer.record(every=20, size=32, grid=8)
    trainer.start()
    assert trainer.wait(timeout=60) and trainer.message == "Done: 40 steps.", trainer.message
    assert trainer.history.loss == pytest.approx(replay.loss, abs=1e-6)


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
    assert trainer.wait(timeout=30)
    first = list(trainer.history.loss)
    assert len(first) == 30
    trainer.reset()
    trainer.start()
    assert trainer.wait(timeout=30)
    assert trainer.history.loss == pytest.approx(first, abs=1e-6)
    trainer.seed = 1
    assert trainer.seed == 1 and trainer.ui.controls["seed"].value == "1" and "seed 1" in trainer.message
    trainer.start()
    assert trainer.wait(timeout=30) and len(trainer.history.loss) == 30
    assert trainer.history.loss[0] != pytest.approx(first[0], abs=1e-4)
    # a second Start after the end trains a new run with new mini-batches, not the first run's again
    trainer.start()
    assert trainer.wait(timeout=30) and trainer.step_count == 60
    assert trainer.history.loss[30:] != pytest.approx(trainer.history.loss[:30], abs=1e-3)


def test_choosing_all_data_in_the_control_trains_full_batch(trainer):
    control = trainer.ui.controls["batch_size"]
    control.label = "all data"  # as a click on the option does
    assert trainer.batch_size is None and not trainer.message_is_error, trainer.message
    assert trainer.message == "Each step now uses all the data; press Start."
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
        ("bins", 1, "one bin is the identity"),
        ("bound", -1.0, "bound must be"),
        ("layers", 0, "layers must be"),
        ("hidden", 0, "hidden must be"),
        ("seed", -1, "seed must be"),
        ("seed", "abc", "seed must be"),
        ("lr", -1.0, "lr (the learning rate) must be"),
        ("steps", 0, "steps must be"),
        ("batch_size", 2.5, "batch_size must be"),
        # requests for work beyond the caps are refused at once, never built
        ("layers", 10**6, "between 1 and 16"),
        ("hidden", 100_000, "between 1 and 1024"),
        ("bins", 10**6, "between 2 and 64"),
        ("steps", 10**9, "between 1 and 1000000"),
        ("batch_size", 10**9, "between 1 and 65536"),
        ("lr", 1e9, "at most 1"),
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
    assert trainer.message.endswith(f"stays {trainer.session.shown(name)}."), "it says what stays in force"
    assert "Traceback" not in trainer.ui.status.value
    assert getattr(trainer, name) == before, "the setting that works stays"
    trainer.start()  # and the trainer still trains
    assert trainer.wait(steps=3, timeout=30)


@pytest.mark.parametrize("family", ["Glow (ActNorm, LU, affine coupling)", "residual (i-ResNet)", "planar",
                                    "continuous (CNF)"])
def test_ten_to_the_six_layers_is_refused_for_every_family(trainer, family):
    trainer.family = family
    trainer.layers = 10**6
    assert trainer.layers == 2 and "between 1 and 16" in trainer.message, trainer.message


def test_a_refused_setting_never_corners_the_dashboard(trainer):
    trainer.bins = 0  # refused even though MAF does not use bins
    assert trainer.bins == 8
    trainer.family = "spline autoregressive"
    assert trainer.family == "spline autoregressive" and not trainer.message_is_error, trainer.message
    assert trainer.ui.controls["bins"].layout.display is None  # the spline's knobs are shown


@pytest.mark.parametrize(
    "name, typed, kept, words",
    [
        ("steps", "1e9", 1_000_000, "between 1 and 1000000"),  # never 19
        ("steps", "3.5", 1_000_000, "got 3.5"),  # never 35
        ("steps", "abc", 1_000_000, "'abc' is not a number"),
        ("steps", "-5", 1_000_000, "got -5"),
        ("seed", "1e100", 0, "seed must be"),
        ("lr", "fast", 5e-3, "'fast' is not a number"),
        ("lr", "10", 5e-3, "at most 1"),
    ],
)
def test_a_number_box_never_changes_what_was_typed_into_another_number(trainer, name, typed, kept, words):
    box = trainer.ui.controls[name]
    box.value = typed  # as typing and Enter do
    assert getattr(trainer, name) == kept and words in trainer.message and trainer.message_is_error, trainer.message
    assert box.value == (f"{kept:g}" if isinstance(kept, float) else str(kept)), "the box shows the value in force"


@pytest.mark.parametrize("name, typed, value", [("steps", "2e3", 2000), ("steps", " 1_500 ", 1500), ("seed", "7", 7),
                                                ("lr", "1e-2", 1e-2), ("lr", "0.003", 3e-3)])
def test_a_typed_number_is_the_setting(trainer, name, typed, value):
    trainer.ui.controls[name].value = typed
    assert getattr(trainer, name) == value and not trainer.message_is_error, trainer.message
    assert trainer.ui.controls[name].value == f"{value:g}"


def test_the_learning_rate_slider_and_its_box_show_the_rate_in_force(trainer):
    trainer.ui.controls["lr"].value = "3e-3"  # typed: not one of the slider's round values
    assert trainer.lr == 3e-3 and trainer.ui.lr_slider.value == 3e-3
    assert trainer.message == "The learning rate is now 0.003; press Start."
    trainer.ui.lr_slider.value = 2e-2  # moved
    assert trainer.lr == 2e-2 and trainer.ui.controls["lr"].value == "0.02"
    trainer.lr = 7e-4  # from Python
    assert trainer.ui.lr_slider.value == 7e-4 and trainer.ui.controls["lr"].value == "0.0007"
    trainer.start()
    assert trainer.wait(steps=3, timeout=30)
    trainer.stop()
    assert trainer.session.run.optimizer.param_groups[0]["initial_lr"] == 7e-4, "training uses the rate shown"


def test_the_counter_and_the_messages_read_as_sentences(trainer):
    trainer.steps = 1
    assert trainer.message == "The number of steps is now 1; press Start."
    assert trainer.ui.counter.value.startswith("<b>step 0 of 1</b>"), "the counter shows the new length at once"
    trainer.batch_size = None
    assert trainer.message == "Each step now uses all the data; press Start."
    made = live.Trainer(target="moons", **{**SMALL, "layers": 0}, lr=0)
    assert made.message.startswith("Refused: layers must be") and ". Refused: lr (the learning rate)" in made.message


def test_after_a_divergence_the_counter_shows_the_kept_parameters(device):
    trainer = live.Trainer(target="circles", lr=1.0, batch_size=None, steps=300, device=str(device), **SMALL)
    trainer.start()
    assert trainer.wait(timeout=60)
    loss = trainer.history.loss
    n = trainer.step_count
    assert n < 300 and trainer.message_is_error and "smaller learning rate" in trainer.message, trainer.message
    skipped = set(trainer.history.skipped)
    good = [i for i in range(n) if i not in skipped and math.isfinite(loss[i])]
    best = min(good, key=lambda i: loss[i])
    assert f"stopped at step {n} of 300</b>" in trainer.ui.counter.value
    assert f"the flow went back to its parameters of step {best} (loss {loss[best]:.3f})" in trainer.ui.counter.value
    assert "300 steps" in trainer.ui.plot.value, "the loss axis keeps the run's length"
    with torch.no_grad():  # the parameters in force are those of that step: their loss on all the data
        x = trainer.target_object.data.to(next(trainer.flow.parameters()))
        assert float(-trainer.flow.log_prob(x).mean()) == pytest.approx(loss[best], rel=1e-4)


def test_a_dashboard_without_its_kernel_says_so():
    """ipywidgets marks the views of a lost kernel with the class jupyter-widgets-disconnected: the status
    then hides the last message (and the counter its speed) and shows what to do."""
    trainer = live.Trainer(target="moons", steps=10**6, **SMALL)
    status = trainer.ui.status.value
    assert '<span class="flowlab-gone">' in status and "run this cell again" in status
    assert ".flowlab-status.jupyter-widgets-disconnected .flowlab-gone" in status
    assert ".jupyter-widgets-disconnected .flowlab-live" in status
    trainer.start()
    assert trainer.wait(steps=2, timeout=30)
    assert 'class="flowlab-live"' in trainer.ui.status.value and "Training on" in trainer.ui.status.value
    assert _eventually(lambda: "steps/s" in trainer.ui.counter.value), "the counter shows the speed while training"
    assert '<span class="flowlab-live">' in trainer.ui.counter.value
    trainer.stop()


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
    assert "reverse KL" in trainer.ui.caption.value and "best possible" in trainer.ui.plot.value
    assert "samples of the target density (grey)" in trainer.ui.caption.value


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
    note = bundle["text/html"]  # shown without a kernel: on the site, and in a reopened notebook
    assert "Binder" in note and "Colab" in note and "run this cell" in note


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
    if live.FAMILIES[family].may_fold:
        assert "does not fold the plane on a 32 x 32 grid" in trainer.message, trainer.message


class _Folding(fl.Transform):
    """x -> x + a sin(x) per coordinate, a > 1: it folds where 1 + a cos(x) < 0 (the inverse is a stand-in)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        slope = 1 + self.a * torch.cos(x)
        return x + self.a * torch.sin(x), slope.abs().log().sum(1)

    def inverse(self, z):
        return z, z.new_zeros(len(z))


def test_a_family_that_folds_the_plane_is_told_so(device):
    live.FAMILIES["folding"] = live.Family(lambda d, s: _Folding(), may_fold=True)
    try:
        trainer = live.Trainer(target="moons", family="folding", steps=2, lr=1e-4, device=str(device))
        trainer.start()
        assert trainer.wait(timeout=60)
    finally:
        del live.FAMILIES["folding"]
    # 1 + 3 cos(x) < 0 on one coordinate or the other, over the view: counted on the 32 x 32 lattice
    e = trainer.painter.extent
    c = (torch.arange(32, dtype=torch.float64) + 0.5) / 32 * 2 * e - e
    bad = 1 + 3 * torch.cos(c) < 0
    expected = int((bad[:, None] ^ bad[None, :]).sum())  # det < 0 where exactly one coordinate folds
    expected = min(expected, 1024 - expected)
    assert f"folds the plane at {expected} of 1024 grid points" in trainer.message and trainer.message_is_error


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
