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


def formula_profile(lambdas, eta: float, t: float) -> np.ndarray:
    """The theorem's energy profile (unnormalised) at step t for step size eta."""
    lambdas = np.asarray(lambdas, np.float64)
    if np.any(lambdas <= 0) or eta <= 0 or t < 0:
        raise InputError(
            f"formula needs lambdas > 0, eta > 0 and t >= 0; got min lambda "
            f"{lambdas.min():.3g}, eta={eta}, t={t}"
        )
    rate = eta * lambdas**2
    stable = rate < 1
    growth = np.empty_like(rate)
    # 1 - (1 - r)^t, computed without cancellation for small r
    growth[stable] = -np.expm1(t * np.log1p(-rate[stable]))
    growth[~stable] = 1 - np.power(1 - rate[~stable], t)
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
    correlation, tau = best_tau(
        profile, lambda tau: formula_profile(lambdas, eta, tau / eta), tau_range, grid
    )
    return Fit(correlation, tau, tau / eta, eta)


def best_tau(profile, predict, tau_range=(1e-4, 1e4), grid: int = 2001) -> tuple[float, float]:
    """(best Pearson correlation, tau) of `predict(tau)` against `profile`: a log grid over
    `tau_range`, then a bounded 1-D refinement around the best grid point."""
    profile = np.asarray(profile, np.float64)

    def correlation(log_tau):
        return np.corrcoef(predict(np.exp(log_tau)), profile)[0, 1]

    logs = np.linspace(np.log(tau_range[0]), np.log(tau_range[1]), grid)
    scores = np.array([correlation(v) for v in logs])
    best = int(np.nanargmax(scores))
    low, high = logs[max(best - 1, 0)], logs[min(best + 1, grid - 1)]
    refined = minimize_scalar(
        lambda v: -correlation(v), bounds=(low, high), method="bounded", options={"xatol": 1e-8}
    )
    log_tau = refined.x if -refined.fun >= scores[best] else logs[best]
    return float(correlation(log_tau)), float(np.exp(log_tau))
