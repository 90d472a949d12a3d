"""Means over distinct runs with honest 95% intervals."""

import numpy as np
import pytest

from firstlayer.intervals import interval, interval_over_runs


def test_values_from_separate_runs_get_the_t_interval():
    values = [0.91, 0.95, 0.97, 0.93]
    runs = [("a",), ("b",), ("c",), ("d",)]
    assert interval_over_runs(values, runs) == pytest.approx(interval(values))
    # pairs that share no run are independent too
    pairs = [("a", "b"), ("c", "d")]
    assert interval_over_runs(values[:2], pairs) == pytest.approx(interval(values[:2]))


def test_pairs_sharing_runs_get_a_jackknife_over_runs():
    # three runs, all three pairs: leaving a run out leaves the one pair without it
    values = np.array([0.90, 0.96, 0.99])  # (a, b), (a, c), (b, c)
    mean, low, high, n = interval_over_runs(values, [("a", "b"), ("a", "c"), ("b", "c")])
    leave_outs = np.array([0.99, 0.96, 0.90])  # without a, without b, without c
    se = np.sqrt(2 / 3 * np.sum((leave_outs - leave_outs.mean()) ** 2))
    half = 4.302652729911275 * se  # t(0.975, 2 dof)
    assert (mean, n) == (pytest.approx(0.95), 3)
    assert (low, high) == (pytest.approx(0.95 - half), pytest.approx(0.95 + half))
    # wider than the t interval that treats the three pairs as independent
    assert high - low > interval(values)[2] - interval(values)[1]


def test_one_pair_or_one_leave_out_gives_no_spread():
    mean, low, high, n = interval_over_runs([0.9], [("a", "b")])
    assert (mean, n) == (0.9, 1) and np.isnan(low) and np.isnan(high)
    # two pairs sharing run a: leaving a out leaves nothing, leaving b or c leaves one each
    mean, low, high, n = interval_over_runs([0.9, 0.8], [("a", "b"), ("a", "c")])
    assert n == 2 and np.isfinite(low)
