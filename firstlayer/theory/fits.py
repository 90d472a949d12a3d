"""Fits of the two linear predictions to measured profiles (the paper's Table 3, Figs. 7, 14-16).

For every run: the learned profile (change from init) at each recorded step is fitted by the
paper's formula (search over tau = eta t; also within the authors' own search range), by the
one-parameter null families of `firstlayer.theory.nulls`, and by the exact linear prediction
(the random-label expectation from the average-patch moments A, search over tau = eta K t); the
raw profile at step 0 is fitted too (one row per distinct initialisation), the random-init
baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from firstlayer.theory.formula import best_tau, fit_formula, formula_profile
from firstlayer.theory.linear_cnn import ExactProfile, Moments
from firstlayer.theory.nulls import (
    FAMILY_LABELS,
    compare_fits,
    interval,
    null_curve,
    paper_tau_range,
    summarise,
)
from firstlayer.training.analysis import SPEC_COLUMNS

EXACT_TAU_RANGE = (1e-4, 1e8)


def fit_profiles(
    profiles: pd.DataFrame,
    stats: dict,
    exact: dict | None = None,
    eta: float = 1e-7,
    tau_range=(1e-4, 1e4),
    paper_ranges: dict | None = None,
) -> pd.DataFrame:
    """One row per (run, step): the formula (free tau, and the paper's tau range when
    `paper_ranges` has the run's dataset) and the null families fitted to the learned profile
    (`nulls.compare_fits`), and the exact-prediction fit when `exact` has an ExactProfile for
    the run's dataset; plus one `random init` row per distinct initialisation (the raw profile at
    step 0; runs that share an initialisation give one row)."""
    rows = []
    seen_inits = set()
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
            if kind == "random init":
                key = (spec["dataset"], tuple(np.round(profile, 12)))
                if key in seen_inits:
                    continue
                seen_inits.add(key)
            row = {
                "run": run,
                **spec,
                "step": int(step),
                "epoch": float(first["epoch"]),
                "kind": kind,
                **compare_fits(
                    profile, lambdas, eta, tau_range, (paper_ranges or {}).get(spec["dataset"])
                ),
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
    """Table 3 with its null models: per (dataset, network, labels, inputs) the final learned
    profiles of distinct runs, and per dataset the distinct random initialisations; see
    `nulls.summarise` for the columns (n, means with 95% bootstrap intervals, best null family,
    delta r and delta log-RMSE, verdicts), plus the exact prediction's mean r and interval."""
    final = fits[(fits["kind"] == "learned") & fits["final"] & ~fits["frozen"]]
    rows = []

    def add(frame, **labels):
        row = summarise(frame, **labels)
        if "exact_correlation" in frame:
            row["exact_mean"], row["exact_low"], row["exact_high"], _ = interval(
                frame["exact_correlation"]
            )
        rows.append(row)

    for (dataset, arch, labels, inputs), frame in final.groupby(
        ["dataset", "arch", "labels", "inputs"], sort=True
    ):
        add(frame, dataset=dataset, network=arch, labels=labels, inputs=inputs)
    for dataset, frame in fits[fits["kind"] == "random init"].groupby("dataset", sort=True):
        add(frame, dataset=dataset, network="random init", labels="-", inputs="-")
    return pd.DataFrame(rows)


def paper_ranges(patches_per_image: dict) -> dict:
    """{dataset: the authors' tau range} from each dataset's patch positions per image."""
    return {name: paper_tau_range(count) for name, count in patches_per_image.items()}


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
        null = compare_fits(measured, lambdas, eta, (1e-4, 1e4))
        series = [
            ("measured", measured, "measured", label),
            (
                "formula",
                formula_profile(lambdas, eta, fit.t),
                "prediction",
                f"formula (r = {fit.correlation:.3f})",
            ),
            (
                "null",
                null_curve(null, lambdas),
                "prediction",
                f"best null {FAMILY_LABELS[null['best_null']]} "
                f"(r = {null['best_null_correlation']:.3f})",
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


def fit_study(profiles: pd.DataFrame, stats_paths, feature_paths, eta: float, tau_range):
    """Rule `formula_fits`: (fits, Table 3, figure curves) from the training profiles, each
    dataset's patch statistics and per-image features (file paths, in dataset folders)."""
    from pathlib import Path

    from firstlayer.patches.features import read_image_features
    from firstlayer.patches.stats import read_patch_stats

    stats = {Path(path).parent.name: read_patch_stats(path) for path in stats_paths}
    features = {Path(path).parent.name: read_image_features(path) for path in feature_paths}
    moments = {name: Moments.of(data["average_patches"]) for name, data in features.items()}
    exact = exact_predictors(moments, stats)
    ranges = paper_ranges({name: data["patches_per_image"] for name, data in features.items()})
    print(f"fitting {profiles['run'].nunique()} runs at every recorded step; paper ranges {ranges}")
    fits = fit_profiles(profiles, stats, exact, eta, tuple(tau_range), ranges)
    table = table3(fits)
    print(table.to_string(index=False))
    return fits, table, fit_curves(profiles, fits, stats, exact, eta)
