"""flowlab.runs: Student-t intervals over seeds, paired differences, and the bench tables."""

import math

import numpy as np
import pandas as pd
import pytest

from flowlab import runs


def test_t_quantile_matches_known_values_and_tends_to_normal():
    assert runs.t_quantile(0.95, 2) == pytest.approx(4.302653, abs=1e-6)
    assert runs.t_quantile(0.95, 4) == pytest.approx(2.776445, abs=1e-6)
    assert runs.t_quantile(0.95, 10_000) == pytest.approx(1.959964, abs=1e-3)


@pytest.mark.parametrize("n", [3, 5])
def test_interval_covers_the_true_mean_at_its_level(n):
    # 4000 experiments of n normal runs each: the 95% t interval must contain the true mean in
    # 95% of them, within three binomial standard errors (a normal quantile would cover less).
    rng = np.random.default_rng(n)
    hits, normal_hits, trials = 0, 0, 4000
    for _ in range(trials):
        v = rng.normal(2.0, 0.3, size=n)
        i = runs.interval(v)
        hits += i.low <= 2.0 <= i.high
        se = v.std(ddof=1) / math.sqrt(n)
        normal_hits += abs(v.mean() - 2.0) <= 1.96 * se
    se = math.sqrt(0.95 * 0.05 / trials)
    assert abs(hits / trials - 0.95) < 3 * se
    assert normal_hits / trials < 0.95 - 3 * se  # why the t quantile is needed below 5 seeds


def test_interval_values():
    i = runs.interval([2.0, 2.2, 2.4])
    assert i.mean == pytest.approx(2.2)
    assert i.half == pytest.approx(runs.t_quantile(0.95, 2) * 0.2 / math.sqrt(3))
    assert i.n == 3 and i.level == 0.95
    assert format(i, ".1f") == "2.2 ± 0.5"
    assert format(runs.interval([-1.0, -1.2]), "+.2f") == "-1.10 ± 1.27"
    assert i.excludes(0.0) and not i.excludes(2.3)


def test_paired_removes_what_the_seeds_share():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 1.0, size=5)  # shared by both methods
    a = 1.0 + seed_effect + rng.normal(0, 0.01, size=5)
    b = 0.9 + seed_effect + rng.normal(0, 0.01, size=5)
    d = runs.paired(a, b)
    assert d.low < 0.1 < d.high
    assert d.half < 0.05 < runs.interval(a).half


def test_paired_matches_series_by_seed():
    a = pd.Series([1.0, 2.0, 3.5], index=[0, 1, 2])
    b = pd.Series([3.0, 0.5, 1.5], index=[2, 0, 1])  # another order
    assert runs.paired(a, b).mean == pytest.approx(((1.0 - 0.5) + (2.0 - 1.5) + (3.5 - 3.0)) / 3)
    with pytest.raises(ValueError, match="same seeds"):
        runs.paired(a, pd.Series([1.0, 2.0, 3.0], index=[0, 1, 5]))


def test_compare_and_summarize_on_a_table(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "# measured by a test\n# second note\nK,seed,nll\n2,0,1.5\n2,1,1.7\n2,2,1.6\n8,1,1.45\n8,0,1.2\n8,2,1.3\n"
    )
    table = runs.read(path)
    assert table.attrs["notes"] == ["measured by a test", "second note"]
    d = runs.compare(table, "nll", {"K": 8}, {"K": 2})
    assert d.mean == pytest.approx(((1.2 - 1.5) + (1.45 - 1.7) + (1.3 - 1.6)) / 3)
    summary = runs.summarize(table, ["K"], ["nll"])
    assert list(summary.K) == [2, 8] and list(summary.n) == [3, 3]
    assert summary["nll ±"][0] == pytest.approx(runs.interval([1.5, 1.7, 1.6]).half)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: runs.interval([1.0]), "values"),
        (lambda: runs.interval([1.0, float("nan")]), "values"),
        (lambda: runs.interval("abc"), "values"),
        (lambda: runs.interval([1.0, 2.0], level=95), "level"),
        (lambda: runs.paired([1.0, 2.0], [1.0, 2.0, 3.0]), "a and b"),
        (lambda: runs.t_quantile(0.95, 0), "dof"),
        (lambda: runs.read("no/such/file.csv"), "path"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_bad_table_queries_name_the_argument():
    table = pd.DataFrame({"K": [2, 2, 8, 8], "seed": [0, 0, 0, 1], "nll": [1.0, 1.1, 1.2, 1.3]})
    with pytest.raises(ValueError, match="column"):
        runs.compare(table, "loss", {"K": 8}, {"K": 2})
    with pytest.raises(ValueError, match="no row"):
        runs.compare(table, "nll", {"K": 4}, {"K": 2})
    with pytest.raises(ValueError, match="several rows"):
        runs.compare(table, "nll", {"K": 2}, {"K": 8})
    with pytest.raises(ValueError, match="by"):
        runs.summarize(table, ["parts"], ["nll"])
