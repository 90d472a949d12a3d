"""One-parameter null families beside the formula, the paper-range fit and honest summaries.

A one-parameter decreasing curve fitted by correlation to a decreasing profile scores high
whatever its family, so the formula's correlation is evidence only against alternatives fitted
the same way to the same profile. The null families (each with one parameter, searched on a grid
and refined exactly as the formula's tau):

    lambda_power   e_i ∝ lambda_i^p        (p in [-4, 8]; the formula runs from p = 1 to -1)
    index_exp      e_i ∝ exp(-i / s)       (s in [0.1, 1e4], log grid; i = 1..d)
    index_power    e_i ∝ i^-p              (p in [-4, 8])

Beside Pearson's r (blind to scale and offset) every fit reports `log_rmse`: the RMS difference
of the log-profiles after the best overall scale (the standard deviation of log e - log fit),
at the parameter the correlation chose.

The paper's search range: the authors' code scans t over range(1e4, 5e6, 250) with eta' = 1e-7
on lambda'^2 / (2 n) where lambda' are the singular values of the centred patch matrix of n
images (lambda'^2 = n P lambda^2 for P patch positions per image). (1 - eta' n P lambda^2 /
(2 n))^t = exp(-tau lambda^2) with tau = eta' P t / 2: for 32 x 32 images and 3 x 3 patches
(P = 900), tau in [0.45, 225). `paper_tau_range` does this conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firstlayer.errors import InputError
from firstlayer.theory.formula import best_parameter, fit_formula, formula_profile

PAPER_ETA = 1e-7
PAPER_STEPS = (10_000, 5_000_000)  # range(10000, 5000000, 250): the end is excluded
PAPER_STEP = 250


def paper_tau_range(patches_per_image: int) -> tuple[float, float]:
    """The authors' t search range in this project's tau = eta t units (module docstring)."""
    if patches_per_image < 1:
        raise InputError(f"patches_per_image={patches_per_image}; allowed: a positive integer")
    factor = PAPER_ETA * patches_per_image / 2
    return PAPER_STEPS[0] * factor, (PAPER_STEPS[1] - PAPER_STEP) * factor


@dataclass(frozen=True)
class Family:
    key: str
    label: str
    low: float
    high: float
    log: bool
    curve: Callable[[np.ndarray, float], np.ndarray]


def _index(lambdas) -> np.ndarray:
    return np.arange(1, len(lambdas) + 1, dtype=np.float64)


FAMILIES = (
    Family("lambda_power", "λ^p", -4.0, 8.0, False, lambda lam, p: np.power(lam, p)),
    Family("index_exp", "exp(−i/s)", 0.1, 1e4, True, lambda lam, s: np.exp(-_index(lam) / s)),
    Family("index_power", "i^−p", -4.0, 8.0, False, lambda lam, p: np.power(_index(lam), -p)),
)
FAMILY_LABELS = {family.key: family.label for family in FAMILIES}


def log_rmse(profile, prediction) -> float:
    """RMS difference of log-profiles after the best overall scale (nan if not all positive)."""
    profile, prediction = np.asarray(profile, np.float64), np.asarray(prediction, np.float64)
    if np.any(profile <= 0) or np.any(prediction <= 0) or not np.all(np.isfinite(prediction)):
        return float("nan")
    return float(np.std(np.log(profile) - np.log(prediction)))


def fit_family(profile, lambdas, family: Family, grid: int = 401) -> tuple[float, float]:
    """(best correlation, parameter) of one null family, searched like the formula's tau."""
    lambdas = np.asarray(lambdas, np.float64)
    return best_parameter(
        profile, lambda v: family.curve(lambdas, v), (family.low, family.high), grid, family.log
    )


def compare_fits(profile, lambdas, eta: float, tau_range, paper_range=None) -> dict:
    """The formula (free tau and, given `paper_range`, the paper's range) and every null family
    fitted to one profile: correlations, parameters, log-RMSEs, the best null and delta r."""
    profile = np.asarray(profile, np.float64)
    lambdas = np.asarray(lambdas, np.float64)
    fit = fit_formula(profile, lambdas, eta, tau_range)
    row = {
        "formula_correlation": fit.correlation,
        "formula_tau": fit.tau,
        "formula_t": fit.t,
        "formula_log_rmse": log_rmse(profile, formula_profile(lambdas, eta, fit.t)),
        "eta": eta,
    }
    if paper_range is not None:
        paper = fit_formula(profile, lambdas, eta, paper_range)
        row["paper_correlation"] = paper.correlation
        row["paper_tau"] = paper.tau
        row["paper_log_rmse"] = log_rmse(profile, formula_profile(lambdas, eta, paper.t))
    best = None
    for family in FAMILIES:
        correlation, value = fit_family(profile, lambdas, family)
        row[f"{family.key}_correlation"] = correlation
        row[f"{family.key}_parameter"] = value
        row[f"{family.key}_log_rmse"] = log_rmse(profile, family.curve(lambdas, value))
        if best is None or correlation > row[f"{best}_correlation"]:
            best = family.key
    row["best_null"] = best
    row["best_null_correlation"] = row[f"{best}_correlation"]
    row["best_null_log_rmse"] = row[f"{best}_log_rmse"]
    row["delta_r"] = row["formula_correlation"] - row["best_null_correlation"]
    row["delta_log_rmse"] = row["best_null_log_rmse"] - row["formula_log_rmse"]
    return row


def null_curve(row, lambdas) -> np.ndarray:
    """The best null family's curve at its fitted parameter, for a `compare_fits` row."""
    family = next(f for f in FAMILIES if f.key == row["best_null"])
    return family.curve(np.asarray(lambdas, np.float64), row[f"{family.key}_parameter"])


def interval(values, level: float = 0.95, resamples: int = 10_000, seed: int = 0):
    """(mean, low, high, n): the mean of finite `values` with a percentile bootstrap interval
    over them; low = high = nan when n < 2 (no spread from a single value)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    if n < 2:
        return float(values[0]), float("nan"), float("nan"), 1
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(values.mean()), float(low), float(high), n


def verdict(low: float, high: float, n: int, better: str = "formula better") -> str:
    """From the interval of (formula - null) advantage: which side wins, or neither."""
    if n < 2:
        return "one value: no verdict"
    if low > 0:
        return better
    if high < 0:
        return "null better"
    return "indistinguishable"


def with_interval(mean: float, low: float, high: float, n: int, digits: int = 3) -> str:
    """'0.961 [0.950, 0.972]' for n >= 2, '0.961' for a single value, '—' for none."""
    if n == 0 or not np.isfinite(mean):
        return "—"
    if n < 2 or not np.isfinite(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def summarise(frame, **labels) -> dict:
    """One Table 3 row from `compare_fits` rows of distinct runs (or layers): n, the formula's
    and the paper-range fit's mean r, the best null family, delta r and delta log-RMSE with
    95% bootstrap intervals over the rows, and the verdicts."""
    row = {**labels}
    n = len(frame)
    row["n"] = n
    for column in ("formula_correlation", "paper_correlation", "best_null_correlation"):
        if column in frame:
            mean, low, high, _ = interval(frame[column])
            stem = column.replace("_correlation", "")
            row[f"{stem}_mean"], row[f"{stem}_low"], row[f"{stem}_high"] = mean, low, high
    row["formula_tau_median"] = float(np.median(frame["formula_tau"])) if n else float("nan")
    if n:
        # the family that is best most often (ties: the first in FAMILIES order)
        counts = frame["best_null"].value_counts()
        order = [f.key for f in FAMILIES if f.key in counts.index]
        row["best_null"] = max(order, key=lambda key: counts[key])
    for column, name in (("delta_r", "delta_r"), ("delta_log_rmse", "delta_log_rmse")):
        mean, low, high, count = interval(frame[column])
        row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"] = mean, low, high
        row[f"verdict_{name.split('_', 1)[1]}"] = verdict(low, high, count)
    row["formula_log_rmse_mean"] = float(frame["formula_log_rmse"].mean())
    row["best_null_log_rmse_mean"] = float(frame["best_null_log_rmse"].mean())
    return row
