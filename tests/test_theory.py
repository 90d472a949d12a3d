"""The linear-CNN formula: its limits, and fits that recover a known t."""

import numpy as np
import pytest

from firstlayer.theory.formula import fit_formula, formula_profile

LAMBDAS = np.sort(np.random.default_rng(0).lognormal(0, 1.2, 27))[::-1]


def corr(a, b):
    return np.corrcoef(a, b)[0, 1]


def test_early_profile_follows_lambda():
    assert corr(formula_profile(LAMBDAS, 1e-7, 10), LAMBDAS) > 0.999999


def test_late_profile_whitens():
    """t -> infinity: e_i -> 1 / (eta lambda_i), the whitening profile."""
    late = formula_profile(LAMBDAS, 1e-4, 1e9)
    assert np.allclose(late, 1 / (1e-4 * LAMBDAS), rtol=1e-9)


def test_matches_direct_power_evaluation():
    eta, t = 1e-3, 500
    direct = LAMBDAS * np.abs(1 - (1 - eta * LAMBDAS**2) ** t) / (eta * LAMBDAS**2)
    assert np.allclose(formula_profile(LAMBDAS, eta, t), direct, rtol=1e-10)


def test_shape_depends_on_eta_times_t_for_small_eta():
    a = formula_profile(LAMBDAS, 1e-7, 2e7)
    b = formula_profile(LAMBDAS, 1e-6, 2e6)
    assert np.allclose(a / a.max(), b / b.max(), rtol=1e-5)


@pytest.mark.parametrize("tau", [0.05, 0.7, 3.0])
def test_fit_recovers_a_known_t(tau):
    eta = 1e-7
    noisy = formula_profile(LAMBDAS, eta, tau / eta) * (
        1 + 0.01 * np.random.default_rng(1).normal(size=27)
    )
    fit = fit_formula(noisy, LAMBDAS, eta)
    assert fit.correlation > 0.99
    assert fit.tau == pytest.approx(tau, rel=0.1)
    assert fit.t == pytest.approx(fit.tau / eta)
    exact = fit_formula(formula_profile(LAMBDAS, eta, tau / eta), LAMBDAS, eta)
    assert exact.correlation == pytest.approx(1.0, abs=1e-10)
    assert exact.tau == pytest.approx(tau, rel=1e-4)


def test_random_profile_fits_poorly():
    rng = np.random.default_rng(2)
    scores = [fit_formula(rng.random(27), LAMBDAS).correlation for _ in range(5)]
    assert np.mean(scores) < 0.8
