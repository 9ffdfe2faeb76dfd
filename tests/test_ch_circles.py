"""The opening chapter's exercise checker (the paired error bar of a difference of NLLs), as tests."""

from __future__ import annotations

import math

import torch

from flowlab.exercises import circles as ex


def paired(a, b):
    d = a - b
    return float(d.mean()), float(d.std()) / math.sqrt(len(d))


def test_paired_columns_share_their_hard_points():
    a, b = ex.paired_columns()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.99
    assert abs(float((a - b).mean()) + 0.05) < 3 * float((a - b).std()) / math.sqrt(len(a))


def test_paired_difference_is_accepted_with_either_std_convention(capsys):
    assert ex.check_paired_difference(paired)
    assert "Correct" in capsys.readouterr().out
    population = lambda a, b: (float((a - b).mean()), float((a - b).std(correction=0)) / math.sqrt(len(a)))  # noqa: E731
    assert ex.check_paired_difference(population)


def test_paired_difference_names_the_usual_slips(capsys):
    slips = {
        "wrong sign": lambda a, b: paired(b, a),
        "unpaired error bar": lambda a, b: (paired(a, b)[0], math.sqrt(float(a.var() + b.var()) / len(a))),
        "standard deviation of the differences": lambda a, b: (paired(a, b)[0], float((a - b).std())),
        "paired standard error is": lambda a, b: (paired(a, b)[0], 2 * paired(a, b)[1]),
        "should return two numbers": lambda a, b: paired(a, b)[0],
        "No answer yet": lambda a, b: None,
        "raised ZeroDivisionError": lambda a, b: 1 / 0,
        "pass your function itself": paired(*ex.paired_columns()),
    }
    for message, answer in slips.items():
        assert not ex.check_paired_difference(answer), message
        assert message in capsys.readouterr().out, message
    # a NaN standard error is refused, never counted as close
    assert not ex.check_paired_difference(lambda a, b: (paired(a, b)[0], float("nan")))
    assert "NaN" in capsys.readouterr().out
