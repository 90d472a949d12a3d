"""Fits of the two linear predictions to measured profiles (the paper's Table 3, Figs. 7, 14-16).

For every run: the learned profile (change from init) at each recorded step is fitted by the
paper's formula (search over tau = eta t) and by the exact linear prediction (the random-label
expectation from the average-patch moments A, search over tau = eta K t); the raw profile at
step 0 is fitted too, the random-init baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from firstlayer.theory.formula import best_tau, fit_formula, formula_profile
from firstlayer.theory.linear_cnn import ExactProfile
from firstlayer.training.analysis import SPEC_COLUMNS

EXACT_TAU_RANGE = (1e-4, 1e8)


def fit_profiles(
    profiles: pd.DataFrame,
    stats: dict,
    exact: dict | None = None,
    eta: float = 1e-7,
    tau_range=(1e-4, 1e4),
) -> pd.DataFrame:
    """One row per (run, step): formula fit (correlation, tau, t) of the learned profile, and
    the exact-prediction fit when `exact` has an ExactProfile for the run's dataset; plus one
    `random init` row per run for the raw profile at step 0."""
    rows = []
    for (run, step), group in profiles.groupby(["run", "step"], sort=True):
        group = group.sort_values("component")
        first = group.iloc[0]
        spec = {column: first[column] for column in SPEC_COLUMNS}
        lambdas = stats[spec["dataset"]].lambdas
        predictor = (exact or {}).get(spec["dataset"])
        targets = [("random init", "energy_raw")] if step == 0 else [("learned", "energy")]
        for kind, column in targets:
            profile = group[column].to_numpy()
            if not np.all(np.isfinite(profile)) or profile.max() <= 0:
                continue
            fit = fit_formula(profile, lambdas, eta, tau_range)
            row = {
                "run": run,
                **spec,
                "step": int(step),
                "epoch": float(first["epoch"]),
                "kind": kind,
                "formula_correlation": fit.correlation,
                "formula_tau": fit.tau,
                "formula_t": fit.t,
                "eta": eta,
            }
            if predictor is not None:
                row["exact_correlation"], row["exact_tau"] = best_tau(
                    profile, predictor, EXACT_TAU_RANGE, grid=401
                )
            rows.append(row)
    table = pd.DataFrame(rows)
    last = table[table["kind"] == "learned"].groupby("run")["step"].transform("max")
    table["final"] = False
    table.loc[last.index, "final"] = table.loc[last.index, "step"] == last
    return table


def table3(fits: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of the fit correlations of final learned profiles, by dataset, network and
    label setting, and of random-init profiles (the baseline) by dataset."""
    final = fits[(fits["kind"] == "learned") & fits["final"] & ~fits["frozen"]]
    has_exact = "exact_correlation" in fits
    rows = []

    def summary(frame, **labels):
        row = {
            **labels,
            "n": len(frame),
            "formula_mean": frame["formula_correlation"].mean(),
            "formula_std": frame["formula_correlation"].std(ddof=0),
            "formula_tau_median": frame["formula_tau"].median(),
        }
        if has_exact:
            row["exact_mean"] = frame["exact_correlation"].mean()
            row["exact_std"] = frame["exact_correlation"].std(ddof=0)
        rows.append(row)

    for (dataset, arch, labels, inputs), frame in final.groupby(
        ["dataset", "arch", "labels", "inputs"], sort=True
    ):
        summary(frame, dataset=dataset, network=arch, labels=labels, inputs=inputs)
    for dataset, frame in fits[fits["kind"] == "random init"].groupby("dataset", sort=True):
        summary(frame, dataset=dataset, network="random init", labels="-", inputs="-")
    return pd.DataFrame(rows)


def exact_predictors(moments_by_dataset: dict, stats: dict) -> dict:
    return {
        name: ExactProfile(moments, stats[name].eigenvectors)
        for name, moments in moments_by_dataset.items()
    }


def fit_curves(
    profiles: pd.DataFrame,
    fits: pd.DataFrame,
    stats: dict,
    exact: dict | None = None,
    eta: float = 1e-7,
) -> pd.DataFrame:
    """Curves for the fit figure: per (dataset, arch, labels, inputs), the mean over seeds of the
    final learned profiles (max-normalised) with the formula and the exact prediction fitted to
    that mean; and one random init's raw profile per dataset with its formula fit."""
    final = profiles.merge(fits[fits["final"]][["run", "step"]], on=["run", "step"])
    final = final[~final["frozen"]]
    panels = []
    for (dataset, arch, labels, inputs), frame in final.groupby(
        ["dataset", "arch", "labels", "inputs"], sort=True
    ):
        mean = frame.groupby("component")["energy_normalised"].mean().to_numpy()
        title = f"{dataset} {arch}, {labels} labels" + ("" if inputs == "none" else f", {inputs}")
        panels.append((title, f"learned (mean of {frame['run'].nunique()} runs)", mean, dataset))
    init = profiles[profiles["step"] == 0]
    for dataset, frame in init.groupby("dataset", sort=True):
        one = frame[frame["run"] == frame["run"].iloc[0]].sort_values("component")
        panels.append(
            (
                f"{dataset}, a random init",
                "random init (raw)",
                one["energy_raw_normalised"].to_numpy(),
                dataset,
            )
        )
    rows = []
    for title, label, measured, dataset in panels:
        lambdas = stats[dataset].lambdas
        fit = fit_formula(measured, lambdas, eta)
        series = [
            ("measured", measured, "measured", label),
            (
                "formula",
                formula_profile(lambdas, eta, fit.t),
                "prediction",
                f"formula (r = {fit.correlation:.3f})",
            ),
        ]
        predictor = (exact or {}).get(dataset)
        if predictor is not None:
            correlation, tau = best_tau(measured, predictor, EXACT_TAU_RANGE, grid=401)
            series.append(
                ("exact", predictor(tau), "prediction", f"exact linear (r = {correlation:.3f})")
            )
        for key, values, style, text in series:
            rows.append(
                pd.DataFrame(
                    {
                        "panel": title,
                        "series": key,
                        "style": style,
                        "label": text,
                        "component": np.arange(1, len(values) + 1),
                        "value": values,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)
