"""One-parameter null families beside the formula, the paper-range fit and honest summaries.

A one-parameter decreasing curve fitted by correlation to a decreasing profile scores high
whatever its family, so the formula's correlation is evidence only against alternatives fitted
the same way to the same profile. The null families (each with one parameter, searched on a grid
and refined exactly as the formula's tau):

    lambda_power   e_i ∝ lambda_i^p        (p in [-4, 8]; the formula runs from p = 1 to -1)
    index_exp      e_i ∝ exp(-i / s)       (s in [0.1, 1e4], log grid; i = 1..d)
    index_power    e_i ∝ i^-p              (p in [-4, 8])

Beside Pearson's r (blind to scale and offset) every curve is also fitted by `log_rmse`: the
RMS difference of the log-profiles after the best overall scale (the standard deviation of
log e - log fit), minimised over the curve's own parameter in the same range. So each measure
compares every curve at its best for that measure, and the best null family by log-RMSE
(`best_null_log`) may differ from the best by r (`best_null`).

Intervals are Student-t 95% intervals of the mean over distinct runs (firstlayer.intervals).

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
from scipy.optimize import minimize_scalar

from firstlayer.errors import InputError
from firstlayer.intervals import interval
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


def best_log_fit(profile, predict, bounds, grid: int = 401, log: bool = True):
    """(smallest log-RMSE, value) of `predict(value)` against `profile` for a value in `bounds`:
    a grid (logarithmic when `log`), then a bounded 1-D refinement around the best grid point,
    as `best_parameter` does for the correlation. (nan, nan) for a profile with a zero entry."""
    profile = np.asarray(profile, np.float64)
    if np.any(profile <= 0) or not np.all(np.isfinite(profile)):
        return float("nan"), float("nan")
    to_value = np.exp if log else (lambda v: v)

    def score(position):
        value = log_rmse(profile, predict(to_value(position)))
        return value if np.isfinite(value) else np.inf

    low, high = (np.log(bounds[0]), np.log(bounds[1])) if log else bounds
    positions = np.linspace(low, high, grid)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        scores = np.array([score(position) for position in positions])
        best = int(np.argmin(scores))
        if not np.isfinite(scores[best]):
            return float("nan"), float("nan")
        left, right = positions[max(best - 1, 0)], positions[min(best + 1, grid - 1)]
        refined = minimize_scalar(score, bounds=(left, right), method="bounded")
        position = refined.x if refined.fun <= scores[best] else positions[best]
        return float(score(position)), float(to_value(position))


def compare_fits(profile, lambdas, eta: float, tau_range, paper_range=None) -> dict:
    """The formula (free tau and, given `paper_range`, the paper's range) and every null family
    fitted to one profile: correlations, parameters, log-RMSEs, the best null and delta r."""
    profile = np.asarray(profile, np.float64)
    lambdas = np.asarray(lambdas, np.float64)
    fit = fit_formula(profile, lambdas, eta, tau_range)

    def formula_log_fit(bounds):
        return best_log_fit(profile, lambda tau: formula_profile(lambdas, eta, tau / eta), bounds)

    row = {"formula_correlation": fit.correlation, "formula_tau": fit.tau, "formula_t": fit.t}
    row["formula_log_rmse"], row["formula_log_tau"] = formula_log_fit(tuple(tau_range))
    # at a bound of the range the formula is lambda^1 (tau -> 0) or lambda^-1 (tau -> inf),
    # members of the lambda^p family: then no comparison can favour the formula
    row["formula_tau_at_bound"] = any(
        at_bound(value, tau_range) for value in (row["formula_tau"], row["formula_log_tau"])
    )
    row["eta"] = eta
    if paper_range is not None:
        paper = fit_formula(profile, lambdas, eta, paper_range)
        row["paper_correlation"] = paper.correlation
        row["paper_tau"] = paper.tau
        row["paper_log_rmse"], row["paper_log_tau"] = formula_log_fit(tuple(paper_range))
    best = best_log = None
    for family in FAMILIES:
        correlation, value = fit_family(profile, lambdas, family)
        row[f"{family.key}_correlation"] = correlation
        row[f"{family.key}_parameter"] = value
        row[f"{family.key}_log_rmse"], row[f"{family.key}_log_parameter"] = best_log_fit(
            profile, lambda v, f=family: f.curve(lambdas, v), (family.low, family.high),
            log=family.log,
        )  # fmt: skip
        if best is None or correlation > row[f"{best}_correlation"]:
            best = family.key
        if best_log is None or _smaller(row[f"{family.key}_log_rmse"], row[f"{best_log}_log_rmse"]):
            best_log = family.key
    row["best_null"] = best
    row["best_null_correlation"] = row[f"{best}_correlation"]
    row["best_null_log"] = best_log
    row["best_null_log_rmse"] = row[f"{best_log}_log_rmse"]
    row["delta_r"] = row["formula_correlation"] - row["best_null_correlation"]
    row["delta_log_rmse"] = row["best_null_log_rmse"] - row["formula_log_rmse"]
    return row


def at_bound(value: float, bounds, tolerance: float = 0.01) -> bool:
    """Whether a fitted parameter sits within `tolerance` (relative) of either end of its range."""
    if not np.isfinite(value):
        return False
    return bool(abs(value / bounds[0] - 1) <= tolerance or abs(value / bounds[1] - 1) <= tolerance)


def _smaller(value: float, than: float) -> bool:
    return bool(np.isfinite(value) and (not np.isfinite(than) or value < than))


def null_curve(row, lambdas) -> np.ndarray:
    """The best null family's curve at its fitted parameter, for a `compare_fits` row."""
    family = next(f for f in FAMILIES if f.key == row["best_null"])
    return family.curve(np.asarray(lambdas, np.float64), row[f"{family.key}_parameter"])


def verdict(low: float, high: float, n: int, better: str = "formula better") -> str:
    """From the interval of (formula - null) advantage: which side wins, or neither."""
    if n < 2:
        return "one value: no verdict"
    if low > 0:
        return better
    if high < 0:
        return "null better"
    return "indistinguishable"


def summarise(frame, **labels) -> dict:
    """One Table 3 row from `compare_fits` rows of distinct runs (or layers): n, the formula's
    and the paper-range fit's mean r, the best null's (per run, the best family by r; the
    family named is the one best most often), delta r and delta log-RMSE (each curve at its
    own best log-RMSE; the null the best family by log-RMSE per run), all with 95% t intervals
    over the rows, and the verdicts."""
    row = {**labels}
    n = len(frame)
    row["n"] = n
    for column in ("formula_correlation", "paper_correlation", "best_null_correlation"):
        if column in frame:
            mean, low, high, _ = interval(frame[column], bounds=(-1, 1))
            stem = column.replace("_correlation", "")
            row[f"{stem}_mean"], row[f"{stem}_low"], row[f"{stem}_high"] = mean, low, high
    row["formula_tau_median"] = float(np.median(frame["formula_tau"])) if n else float("nan")
    if "formula_tau_at_bound" in frame:
        row["formula_tau_at_bound"] = int(frame["formula_tau_at_bound"].astype(bool).sum())
    for column in ("best_null", "best_null_log"):
        if n and column in frame:
            row[column] = _most_often(frame[column])
    for column, name in (("delta_r", "delta_r"), ("delta_log_rmse", "delta_log_rmse")):
        mean, low, high, count = interval(frame[column])
        row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"] = mean, low, high
        row[f"verdict_{name.split('_', 1)[1]}"] = verdict(low, high, count)
    for column in ("formula_log_rmse", "best_null_log_rmse"):  # an RMS: never below 0
        mean, low, high, _ = interval(frame[column], bounds=(0.0, float("inf")))
        row[f"{column}_mean"], row[f"{column}_low"], row[f"{column}_high"] = mean, low, high
    return row


def _most_often(keys) -> str:
    """The family named most often (ties: the first in FAMILIES order)."""
    counts = keys.value_counts()
    order = [f.key for f in FAMILIES if f.key in counts.index]
    return max(order, key=lambda key: counts[key])
