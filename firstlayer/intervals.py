"""Means over distinct runs with their 95% intervals, and how a table prints them.

A Student-t interval, mean ± t(n - 1) s / sqrt(n): with the two to five runs a CPU grid has, a
percentile bootstrap over the runs is the range of their values (at n = 2 its coverage is 50%),
so it would claim far more than the runs support. A single value gets no spread.
"""

from __future__ import annotations

import numpy as np


def interval(values, level: float = 0.95, bounds=None):
    """(mean, low, high, n): the mean of the finite `values` with its Student-t interval
    (mean ± t(n - 1) s / sqrt(n), s with n - 1 degrees of freedom), clipped to `bounds` (e.g.
    (-1, 1) for correlations) where given; low = high = nan when n < 2 (no spread from a
    single value)."""
    from scipy.stats import t as student_t

    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    if n < 2:
        return float(values[0]), float("nan"), float("nan"), 1
    mean = float(values.mean())
    half = float(student_t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, float(low), float(high), n


def with_interval(mean: float, low: float, high: float, n: int, digits: int = 3) -> str:
    """'0.961 [0.950, 0.972]' for n >= 2, '0.961' for a single value, '—' for none."""
    if n == 0 or not np.isfinite(mean):
        return "—"
    if n < 2 or not np.isfinite(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def interval_over_runs(values, runs, level: float = 0.95, bounds=None):
    """(mean, low, high, n) for values each computed from one or more runs (`runs`: a tuple of
    run names per value, e.g. the two runs of a pair). Values that share no run are
    independent: the t interval of `interval`. Pairs drawn from a pool of runs share them and
    are not: then a leave-one-run-out jackknife, se^2 = (R - 1) / R sum_r (m_(r) - m_(.))^2 with
    m_(r) the mean of the values not involving run r, and t with R - 1 degrees of freedom (R:
    runs whose leave-out leaves a value). n is the number of values."""
    from scipy.stats import t as student_t

    values = np.asarray(values, np.float64)
    keep = np.isfinite(values)
    values, runs = values[keep], [tuple(r) for r, k in zip(runs, keep) if k]
    pool = sorted({run for members in runs for run in members})
    if sum(len(members) for members in runs) == len(pool):  # no run is used twice
        return interval(values, level, bounds)
    n = len(values)
    mean = float(values.mean())
    leave_outs = []
    for run in pool:
        rest = [v for v, members in zip(values, runs) if run not in members]
        if rest:
            leave_outs.append(np.mean(rest))
    if len(leave_outs) < 2:
        return mean, float("nan"), float("nan"), n
    leave_outs = np.asarray(leave_outs)
    count = len(leave_outs)
    se = np.sqrt((count - 1) / count * np.sum((leave_outs - leave_outs.mean()) ** 2))
    half = float(student_t.ppf((1 + level) / 2, count - 1) * se)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, float(low), float(high), n


def difference_interval(a, b, level: float = 0.95):
    """(mean(a) - mean(b), low, high, n_a, n_b): the difference of the means of two independent
    samples (e.g. the runs of two recipes) with Welch's t interval; no spread unless both
    samples have at least two finite values."""
    from scipy.stats import t as student_t

    a, b = (np.asarray(v, np.float64) for v in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return float("nan"), float("nan"), float("nan"), len(a), len(b)
    mean = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return mean, float("nan"), float("nan"), len(a), len(b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return mean, mean, mean, len(a), len(b)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(student_t.ppf((1 + level) / 2, dof) * se)
    return mean, mean - half, mean + half, len(a), len(b)
