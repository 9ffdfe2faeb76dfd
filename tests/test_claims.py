"""flowlab.claims: standard errors over points, and verdicts that follow the t-interval of the
paired difference (built on flowlab.runs), with the argument named when the input is wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowlab.claims import mean_se, verdict
from flowlab.runs import paired


def test_mean_se_matches_the_formula_for_lists_and_tensors():
    m, se = mean_se([1.0, 2.0, 3.0, 6.0])
    assert m == 3.0 and math.isclose(se, np.std([1, 2, 3, 6], ddof=1) / 2)
    assert mean_se(torch.tensor([1.0, 2.0, 3.0, 6.0])) == pytest.approx((m, se))


def test_verdict_follows_the_interval_of_the_paired_difference():
    low, high = [1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.2, 1.9, 2.1, 2.0]
    d = paired(low, high)
    assert verdict(low, high, "x", "y").startswith(f"x is lower than y by {abs(d.mean):.3f} ± {d.half:.3f}")
    assert verdict(high, low, "y", "x").startswith("x is lower than y by")
    assert "not distinguishable" in verdict([1.0, 1.2, 0.8], [1.1, 1.0, 1.0])
    assert "5 runs" in verdict(low, high)


def test_seed_noise_shared_by_both_methods_cancels():
    rng = np.random.default_rng(1)
    seed_noise = rng.normal(0, 1.0, 8)
    a = 1.0 + seed_noise + rng.normal(0, 0.01, 8)
    b = 1.2 + seed_noise + rng.normal(0, 0.01, 8)
    assert verdict(a, b).startswith("a is lower than b by 0.2")


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: mean_se([1.0]), "at least 2"),
        (lambda: mean_se([1.0, float("nan")]), "not finite"),
        (lambda: mean_se(["a", "b"]), "sequence of numbers"),
        (lambda: verdict([1.0, 2.0], [1.0, 2.0, 3.0]), "one value per seed"),
    ],
)
def test_bad_input_says_what_to_pass(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_say_changes_only_the_line_breaks(capsys):
    from flowlab.claims import say

    text = "  " + " ".join(f"word{i}" for i in range(60)) + "\nshort line\n" + "x" * 90
    say(text, width=50)
    out = capsys.readouterr().out
    assert out.split() == text.split()  # the same words, in the same order
    lines = out.rstrip("\n").split("\n")
    assert all(len(line) <= 50 for line in lines if " " in line.strip())  # only the unbreakable word is longer
    assert lines[1].startswith("    word") and "short line" in lines  # continuation indented by two more
