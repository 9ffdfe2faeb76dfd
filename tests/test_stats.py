"""flowlab.stats: t intervals cover the mean as often as they promise, paired differences
cancel shared noise, and bad input is refused with a message that names the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowlab import stats


def test_interval_uses_the_t_quantile():
    # t_{2, 0.975} = 4.3027 and t_{4, 0.975} = 2.7764, from the tables
    m, h = stats.interval([1.0, 2.0, 3.0])
    assert m == 2.0 and math.isclose(h, 4.302653 / math.sqrt(3), rel_tol=1e-6)
    m, h = stats.interval([0.0, 1.0, 2.0, 3.0, 4.0], level=0.95)
    assert math.isclose(h, 2.776445 * math.sqrt(2.5) / math.sqrt(5), rel_tol=1e-6)
    _, h90 = stats.interval([0.0, 1.0, 2.0, 3.0, 4.0], level=0.9)
    assert h90 < h


@pytest.mark.parametrize("n", [3, 5])
def test_t_intervals_cover_the_mean_at_their_level_and_two_se_do_not(n):
    rng = np.random.default_rng(0)
    trials = 4000
    samples = rng.normal(1.5, 2.0, size=(trials, n))
    covered = sum(abs(stats.interval(s)[0] - 1.5) <= stats.interval(s)[1] for s in samples) / trials
    se = samples.std(axis=1, ddof=1) / math.sqrt(n)
    two_se = float(np.mean(abs(samples.mean(axis=1) - 1.5) <= 2 * se))
    tol = 3 * math.sqrt(0.95 * 0.05 / trials)
    assert abs(covered - 0.95) < tol
    # with 2 degrees of freedom "two standard errors" covers only x / sqrt(x^2 + 2) = 0.816 at x = 2
    if n == 3:
        assert abs(two_se - 2 / math.sqrt(6)) < 3 * math.sqrt(0.18 * 0.82 / trials)


def test_paired_is_the_interval_of_the_differences_and_cancels_shared_noise():
    rng = np.random.default_rng(1)
    seed_noise = rng.normal(0, 1.0, 8)
    a = 1.0 + seed_noise + rng.normal(0, 0.01, 8)
    b = 1.2 + seed_noise + rng.normal(0, 0.01, 8)
    assert stats.paired(a, b) == stats.interval(a - b)
    d, h = stats.paired(a, b)
    assert abs(d + 0.2) < 0.03 and h < 0.05  # the seed noise cancels
    assert h < stats.interval(a)[1] / 10


def test_compare_states_the_verdict_from_the_interval():
    low, high = [1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.2, 1.9, 2.1, 2.0]
    assert stats.compare(low, high, "x", "y").startswith("x is lower than y by 1.030")
    assert stats.compare(high, low, "y", "x").startswith("x is lower than y by 1.030")
    assert "not distinguishable" in stats.compare([1.0, 1.2, 0.8], [1.1, 1.0, 1.0])
    assert "5 runs" in stats.compare(low, high)


def test_tensors_and_lists_give_the_same_numbers():
    values = [0.3, 0.1, 0.7, 0.2]
    assert stats.mean_se(torch.tensor(values)) == pytest.approx(stats.mean_se(values))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: stats.mean_se([1.0]), "at least 2 values"),
        (lambda: stats.interval([1.0, float("nan")]), "NaN"),
        (lambda: stats.interval([1.0, 2.0], level=95), "level must be a probability"),
        (lambda: stats.paired([1.0, 2.0], [1.0, 2.0, 3.0]), "paired"),
        (lambda: stats.interval("abc"), "values must be a sequence of numbers"),
    ],
)
def test_bad_input_says_what_to_pass(call, words):
    with pytest.raises(ValueError, match=words):
        call()
