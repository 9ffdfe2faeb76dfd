"""fit: the history it records, early stopping on validation data, callbacks, and that it learns."""

from __future__ import annotations

import math
import threading

import pytest
import torch

import flowlab as fl


def seeded(make, device, seed=0, dtype=torch.float32):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fl.Flow(make(), fl.StandardNormal(2)).to(device=device, dtype=dtype)


def small_maf():
    return fl.MAF(2, hidden=(16, 16), layers=2)


def valid_nll(flow, x):
    with torch.no_grad():
        return float(-flow.log_prob(x.to(flow.dtype)).mean())


def test_history_records_every_step(device):
    flow = seeded(small_maf, device)
    history = fl.fit(flow, fl.targets.moons(256, seed=0).to(device), steps=30, progress=False)
    assert history.steps == len(history.loss) == 30
    assert all(isinstance(v, float) and math.isfinite(v) for v in history.loss)
    assert history.valid_step == [] and history.valid_nll == [] and history.best_step is None
    assert history.time > 0 and history.message == ""
    assert "steps=30" in repr(history)


@pytest.mark.parametrize("steps,every,expected", [(50, 10, [10, 20, 30, 40, 50]), (45, 20, [20, 40, 45])])
def test_validation_nll_is_recorded(steps, every, expected, device):
    flow = seeded(small_maf, device)
    x, xv = fl.targets.moons(256, seed=0), fl.targets.moons(256, seed=1)
    history = fl.fit(flow, x, steps=steps, valid=xv, valid_every=every, progress=False, device=device)
    assert history.valid_step == expected
    assert len(history.valid_nll) == len(expected)
    assert all(math.isfinite(v) for v in history.valid_nll)
    i = min(range(len(expected)), key=history.valid_nll.__getitem__)
    assert history.best_step == expected[i]


def overfitting_run(device, keep_best):
    """A flow that overfits 48 points, so the validation NLL rises again before the end."""
    flow = seeded(lambda: fl.SplineAutoregressive(2, hidden=(64, 64), layers=2), device, dtype=torch.float64)
    x, xv = fl.targets.circles(48, seed=0), fl.targets.circles(2000, seed=1)
    history = fl.fit(flow, x, steps=160, lr=2e-2, valid=xv, valid_every=10, keep_best=keep_best, progress=False)
    return flow, history, xv.to(device)


@pytest.fixture(scope="module")
def overfit_best(device):
    return overfitting_run(device, keep_best=True)


def test_keep_best_restores_the_best_validation_parameters(overfit_best):
    flow, history, xv = overfit_best
    best = min(history.valid_nll)
    assert history.valid_nll.index(best) < len(history.valid_nll) - 1, "no overfitting: the test would be trivial"
    assert history.valid_nll[-1] > best + 1e-3
    assert history.best_step == history.valid_step[history.valid_nll.index(best)]
    assert valid_nll(flow, xv) == pytest.approx(best, abs=1e-9)


def test_without_keep_best_the_last_parameters_stay(device):
    flow, history, xv = overfitting_run(device, keep_best=False)
    assert valid_nll(flow, xv) == pytest.approx(history.valid_nll[-1], abs=1e-9)
    assert history.valid_nll[-1] > min(history.valid_nll)


def test_callback_stops_training(device):
    flow = seeded(small_maf, device)
    seen = []

    def callback(step, loss):
        seen.append((step, loss))
        return step == 7

    history = fl.fit(flow, fl.targets.moons(128, seed=0), steps=100, callback=callback, progress=False, device=device)
    assert history.steps == 7
    assert [s for s, _ in seen] == list(range(1, 8))
    assert [v for _, v in seen] == history.loss
    assert "callback" in history.message and "7" in history.message


def test_callback_returning_none_does_not_stop(device):
    flow = seeded(small_maf, device)
    history = fl.fit(flow, fl.targets.moons(128, seed=0), steps=12, callback=lambda s, v: None, progress=False)
    assert history.steps == 12 and history.message == ""


def test_loss_decreases_to_the_entropy_of_a_gaussian(device):
    """A correlated Gaussian is exactly a one-layer affine autoregressive flow of a normal."""
    g = torch.Generator().manual_seed(0)
    L = torch.tensor([[1.0, 0.0], [1.2, 0.5]])
    mean = torch.tensor([2.0, -1.0])
    x = (torch.randn(2000, 2, generator=g) @ L.T + mean).to(device)
    truth = torch.distributions.MultivariateNormal(mean.to(device), scale_tril=L.to(device))
    flow = seeded(lambda: fl.MAF(2, hidden=(16,)), device)
    history = fl.fit(flow, x, steps=300, lr=2e-2, progress=False)
    assert history.loss[-1] < history.loss[0] - 1.0
    nll_truth = float(-truth.log_prob(x).mean())
    assert valid_nll(flow, x) == pytest.approx(nll_truth, abs=0.05)
    # mostly downhill: the last tenth is better than the first tenth
    n = len(history.loss) // 10
    assert sum(history.loss[-n:]) < sum(history.loss[:n])


@pytest.mark.parametrize(
    "make",
    [small_maf, lambda: fl.SplineAutoregressive(2, hidden=(16, 16), layers=2), lambda: fl.MAF(2, hidden=(16,), parts=2).inv],
    ids=["MAF", "spline", "IAF"],
)
def test_gradients_reach_every_parameter(make, device):
    flow = seeded(make, device)
    x = fl.targets.circles(256, seed=0).to(device)
    fl.forward_kl(flow, x).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
        assert p.grad.any(), f"{name}: zero gradient"
    # and one step of fit moves every parameter tensor
    before = {n: p.detach().clone() for n, p in flow.named_parameters()}
    fl.fit(flow, x, steps=1, progress=False)
    for name, p in flow.named_parameters():
        assert not torch.equal(before[name], p), f"{name} did not move"


def test_seeded_minibatches_are_reproducible(device):
    x = fl.targets.moons(512, seed=0)
    runs = []
    for seed in (3, 3, 4):
        flow = seeded(small_maf, device)
        runs.append(fl.fit(flow, x, steps=10, batch_size=64, seed=seed, progress=False, device=device).loss)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert runs[0][0] != runs[2][0]  # different first batch already


def test_fit_follows_the_flows_device_and_dtype(device):
    flow = seeded(small_maf, device, dtype=torch.float64)
    x = fl.targets.moons(128, seed=0)  # float32, on the CPU
    history = fl.fit(flow, x, steps=3, progress=False)
    assert history.steps == 3
    for p in flow.parameters():
        assert p.dtype == torch.float64 and p.device.type == device.type
    flow = seeded(small_maf, "cpu")
    fl.fit(flow, x, steps=1, device=device, progress=False)
    assert all(p.device.type == device.type for p in flow.parameters())
    assert flow.base.sample(2).device.type == device.type


class _Counting(fl.Transform):
    """A transform that counts the per-step hook's calls (and is the identity)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, x):
        return x * self.scale.exp(), self.scale.expand(len(x)) * x.shape[1]

    def inverse(self, z):
        return z * (-self.scale).exp(), -self.scale.expand(len(z)) * z.shape[1]

    def after_step(self):
        self.calls += 1


def test_the_per_step_hook_runs_after_every_applied_step(device):
    hooked = _Counting()
    flow = fl.Flow(fl.Compose(small_maf(), hooked), fl.StandardNormal(2)).to(device)
    history = fl.fit(flow, fl.targets.moons(256, seed=0), steps=25, progress=False)
    assert hooked.calls == 25 - len(history.skipped) == 25


def test_one_bad_mini_batch_is_skipped_not_fatal(device):
    """A single outlier far out in the data makes a few batches' losses spike; training goes on."""
    x = fl.targets.moons(64, seed=0)
    x[5] = torch.tensor([1e4, -1e4])
    flow = seeded(small_maf, device)
    history = fl.fit(flow, x, steps=200, batch_size=16, progress=False)
    assert history.steps == 200 and history.message == ""
    # a batch of 16 holds row 5 with probability 1 - (63/64)^16 = 0.22: about 45 +- 6 of 200 steps
    assert 20 < len(history.skipped) < 70, "the batches holding the outlier are skipped, the others train"
    clean = [v for i, v in enumerate(history.loss, 1) if i not in history.skipped]
    assert sum(clean[-20:]) / 20 < sum(clean[:20]) / 20 - 0.1, "and the flow learns from the others"
    assert all(bool(torch.isfinite(p).all()) for p in flow.parameters())


def test_ten_bad_steps_in_a_row_stop_with_the_last_good_parameters(device):
    flow = seeded(small_maf, device)
    before = [p.detach().clone() for p in flow.parameters()]
    with pytest.warns(RuntimeWarning, match="standardized"):
        history = fl.fit(flow, torch.randn(100, 2) * 1e20, steps=50, progress=False)
    assert history.steps == 10 and len(history.skipped) == 10
    assert all(torch.equal(a, b) for a, b in zip(before, flow.parameters())), "no bad step touched the parameters"


def test_restore_last_good_puts_back_the_parameters_of_the_lowest_loss(device):
    """The public way for code that drives a run (the live dashboard) to undo what a failed step
    left: non-finite parameters go back to those of the lowest loss; finite ones stay."""
    flow = seeded(small_maf, device)
    lock = threading.Lock()
    run = fl.Training(flow, fl.targets.moons(256, seed=0), steps=20, lock=lock)
    for _ in range(5):
        run.step()
    kept = [p.detach().clone() for p in run.kept]
    now = [p.detach().clone() for p in flow.parameters()]
    with lock:  # the caller holds the run's lock, as the dashboard does
        assert run.restore_last_good() is False  # finite parameters: nothing to do
    assert all(torch.equal(p, q) for p, q in zip(flow.parameters(), now))
    with torch.no_grad():
        next(flow.parameters())[0].fill_(float("nan"))  # what an exception in a step can leave
    with lock:
        assert run.restore_last_good() is True
    assert all(torch.equal(p, k) for p, k in zip(flow.parameters(), kept))
    assert "rolled back" in run.history.message
    assert run.history.steps == 5 and not run.done  # the run goes on
    assert math.isfinite(run.step())


def test_training_step_by_step_equals_fit(device):
    x, xv = fl.targets.moons(256, seed=0), fl.targets.moons(256, seed=1)
    a, b = seeded(small_maf, device), seeded(small_maf, device)
    history = fl.fit(a, x, steps=40, valid=xv, valid_every=10, keep_best=False, progress=False)
    run = fl.Training(b, x, steps=40, valid=xv, valid_every=10)
    losses = [loss for loss in run]
    run.finish(keep_best=False)
    assert losses == pytest.approx(history.loss, abs=1e-6)
    assert run.history.valid_nll == pytest.approx(history.valid_nll, abs=1e-6)
    with pytest.raises(ValueError, match="over"):
        run.step()


def test_reverse_kl_uses_one_sample_count(device):
    assert fl.train.REVERSE_KL_SAMPLES == 256
    flow = fl.Flow(fl.MAF(2, hidden=(8,)).inv, fl.StandardNormal(2)).to(device)
    seen = []

    def log_prob(x):
        seen.append(len(x))
        return fl.targets.banana_log_prob(x)

    fl.fit(flow, log_prob, steps=2, batch_size=None, progress=False)
    fl.fit(flow, log_prob, steps=2, batch_size=64, progress=False)
    assert seen == [256, 256, 64, 64]
