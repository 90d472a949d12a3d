"""The linear-CNN theory: the closed-form energy profile and its fit to measured profiles.

For a depth-2 linear CNN (conv, global average pooling summed over filters) trained by gradient
descent from small initialisation with step eta, the paper's Theorem 4.2 (v2) gives

    e_i(t) ∝ lambda_i * |1 - (1 - eta lambda_i^2)^t| / (eta lambda_i^2)

with lambda_i the patch standard deviation along component i. Early on e ∝ lambda (top
components dominate); as t grows it tends to 1/lambda (whitening). For small eta the shape
depends on tau = eta * t alone, since (1 - eta lambda^2)^t -> exp(-tau lambda^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from firstlayer.errors import InputError


def formula_profile(lambdas, eta: float, t) -> np.ndarray:
    """The theorem's energy profile (unnormalised) at step t for step size eta; for an array
    of steps, one profile per step (rows)."""
    lambdas = np.asarray(lambdas, np.float64)
    steps = np.asarray(t, np.float64)
    if np.any(lambdas <= 0) or eta <= 0 or np.any(steps < 0):
        raise InputError(
            f"formula needs lambdas > 0, eta > 0 and t >= 0; got min lambda "
            f"{lambdas.min():.3g}, eta={eta}, t={steps.min() if steps.size else t}"
        )
    rate = eta * lambdas**2
    stable = rate < 1
    exponent = steps[..., None] if steps.ndim else steps
    with np.errstate(invalid="ignore"):
        # 1 - (1 - r)^t, computed without cancellation for small r
        growth = np.where(
            stable,
            -np.expm1(exponent * np.log1p(-np.where(stable, rate, 0.0))),
            1 - np.power(1 - rate, exponent),
        )
    return lambdas * np.abs(growth) / rate


@dataclass
class Fit:
    """Best fit of the formula to a profile: Pearson correlation, tau = eta * t, and t."""

    correlation: float
    tau: float
    t: float
    eta: float


def fit_formula(
    profile, lambdas, eta: float = 1e-7, tau_range=(1e-4, 1e4), grid: int = 2001
) -> Fit:
    """Fit the formula to `profile` over t at fixed eta, maximising the Pearson correlation.

    tau = eta * t is searched on a log grid over `tau_range` (in patch-variance units, i.e. for
    lambdas of the patch statistics used), then refined by a bounded 1-D optimisation around
    the best grid point. The default grid is far finer than a scan of t in steps of 250.
    """
    profile = np.asarray(profile, np.float64)
    lambdas = np.asarray(lambdas, np.float64)
    if profile.shape != lambdas.shape:
        raise InputError(
            f"profile of {profile.shape[0]} components against {lambdas.shape[0]} patch lambdas"
        )
    correlation, tau = best_parameter(
        profile,
        lambda tau: formula_profile(lambdas, eta, np.asarray(tau) / eta),
        tau_range,
        grid,
        vectorised=True,
    )
    return Fit(correlation, tau, tau / eta, eta)


def best_tau(profile, predict, tau_range=(1e-4, 1e4), grid: int = 2001) -> tuple[float, float]:
    """(best Pearson correlation, tau) of `predict(tau)` against `profile`: a log grid over
    `tau_range`, then a bounded 1-D refinement around the best grid point."""
    return best_parameter(profile, predict, tau_range, grid, log=True)


def best_parameter(
    profile, predict, bounds, grid: int = 2001, log: bool = True, vectorised: bool = False
) -> tuple[float, float]:
    """(best Pearson correlation, value) of `predict(value)` against `profile` for a value in
    `bounds`: a grid (logarithmic when `log`), then a bounded 1-D refinement around the best
    grid point. A constant prediction (no correlation defined) scores -1. `vectorised`:
    `predict` maps an array of values to one prediction per row."""
    profile = np.asarray(profile, np.float64)
    to_value = np.exp if log else (lambda v: v)

    def correlation(position):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            prediction = np.asarray(predict(to_value(position)), np.float64)
            if not np.all(np.isfinite(prediction)) or np.ptp(prediction) == 0:
                return -1.0
            value = np.corrcoef(prediction, profile)[0, 1]
        return float(value) if np.isfinite(value) else -1.0

    low, high = (np.log(bounds[0]), np.log(bounds[1])) if log else bounds
    positions = np.linspace(low, high, grid)
    values = to_value(positions)
    predictions = predict(values) if vectorised else np.array([predict(v) for v in values])
    scores = _correlations(np.asarray(predictions, np.float64), profile)
    best = int(np.argmax(scores))
    left, right = positions[max(best - 1, 0)], positions[min(best + 1, grid - 1)]
    refined = minimize_scalar(
        lambda v: -correlation(v), bounds=(left, right), method="bounded", options={"xatol": 1e-8}
    )
    position = refined.x if -refined.fun >= scores[best] else positions[best]
    return float(correlation(position)), float(to_value(position))


def _correlations(predictions: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of `predictions` with `profile` (-1 where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        centred = predictions - predictions.mean(axis=1, keepdims=True)
        target = profile - profile.mean()
        scores = centred @ target / (np.linalg.norm(centred, axis=1) * np.linalg.norm(target))
    return np.where(np.isfinite(scores), scores, -1.0)
