"""What the manipulations do to learned profiles (the paper's Figs. 8, 17, 18).

Energy-decile labels tie the labels to one component's patch energy: the theorem's assumption
fails, and the profile learned with them should no longer match the random-label one. Scaling
one component's coefficient by A keeps the labels independent: both true- and random-label
profiles should move as the formula does when lambda_N becomes A lambda_N.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from firstlayer.common.settings import parse_deciles, parse_scaling
from firstlayer.patches.profiles import similarity
from firstlayer.theory.formula import fit_formula, formula_profile
from firstlayer.training.analysis import final_profiles

KEYS = ["dataset", "arch", "first_width", "width", "seed"]


def _vector(frame: pd.DataFrame) -> np.ndarray:
    return frame.sort_values("component")["energy_normalised"].to_numpy()


def manipulation_table(profiles: pd.DataFrame, stats: dict, eta: float = 1e-7) -> pd.DataFrame:
    """One row per manipulated run against its unmanipulated partner (same dataset, network
    and seed): the profile correlation with the random-label run, and for scaled inputs the
    learned energy ratio along the scaled component beside the formula's prediction."""
    final = final_profiles(profiles[~profiles["frozen"]])
    runs = final.drop_duplicates("run").set_index("run")
    rows = []
    for run, spec in runs.iterrows():

        def partner(labels, inputs="none", spec=spec):
            same = (runs[KEYS] == spec[KEYS]).all(axis=1)
            return runs[same & (runs["labels"] == labels) & (runs["inputs"] == inputs)].index

        vector = _vector(final[final["run"] == run])
        component = parse_deciles(spec["labels"])
        if component is not None and spec["inputs"] == "none":
            row = {
                "run": run,
                "manipulation": spec["labels"],
                "kind": "decile labels",
                "component": component,
                **{k: spec[k] for k in KEYS},
            }
            for labels in ("random", "true"):
                match = partner(labels)
                if len(match):
                    row[f"corr_vs_{labels}"] = similarity(
                        vector, _vector(final[final["run"] == match[0]])
                    )
            rows.append(row)
            continue
        scaling = parse_scaling(spec["inputs"])
        if scaling is None:
            continue
        component, factor = scaling
        base = partner(spec["labels"])
        if not len(base):
            continue
        reference = _vector(final[final["run"] == base[0]])
        lambdas = stats[spec["dataset"]].lambdas
        fit = fit_formula(reference, lambdas, eta)
        scaled = lambdas.copy()
        scaled[component - 1] *= factor
        before = formula_profile(lambdas, eta, fit.t)
        after = formula_profile(scaled, eta, fit.t)
        index = component - 1
        rows.append(
            {
                "run": run,
                "manipulation": spec["inputs"],
                "kind": "scaled component",
                "component": component,
                "factor": factor,
                "labels": spec["labels"],
                **{k: spec[k] for k in KEYS},
                "corr_vs_unscaled": similarity(vector, reference),
                "learned_ratio": (vector[index] / vector.mean())
                / (reference[index] / reference.mean()),
                "formula_ratio": (after[index] / after.mean()) / (before[index] / before.mean()),
                "formula_corr_scaled": similarity(vector, after),
                "formula_corr_unscaled": similarity(vector, before),
            }
        )
    return pd.DataFrame(rows)


def unmanipulated_true_vs_random(profiles: pd.DataFrame) -> list[float]:
    """Correlations of true- and random-label profiles of the same seed, unmanipulated inputs."""
    final = final_profiles(profiles[~profiles["frozen"] & (profiles["inputs"] == "none")])
    runs = final.drop_duplicates("run").set_index("run")
    values = []
    for run, spec in runs[runs["labels"] == "true"].iterrows():
        match = runs[(runs[KEYS] == spec[KEYS]).all(axis=1) & (runs["labels"] == "random")].index
        if len(match):
            values.append(
                similarity(
                    _vector(final[final["run"] == run]), _vector(final[final["run"] == match[0]])
                )
            )
    return values


def summary(table: pd.DataFrame, baseline: list[float]) -> pd.DataFrame:
    """Mean ± std per manipulation, with the unmanipulated true-vs-random correlation first."""
    rows = []
    if baseline:
        rows.append(
            {
                "comparison": "true vs random labels (unmanipulated)",
                "mean": np.mean(baseline),
                "std": np.std(baseline),
                "n": len(baseline),
            }
        )
    if len(table):
        for name, frame in table[table["kind"] == "decile labels"].groupby("manipulation"):
            values = frame["corr_vs_random"].dropna()
            rows.append(
                {
                    "comparison": f"{name} vs random labels",
                    "mean": values.mean(),
                    "std": values.std(ddof=0),
                    "n": len(values),
                }
            )
        for (name, labels), frame in table[table["kind"] == "scaled component"].groupby(
            ["manipulation", "labels"]
        ):
            rows.append(
                {
                    "comparison": f"{name}, {labels} labels: learned energy ratio "
                    f"(formula {frame['formula_ratio'].mean():.2f})",
                    "mean": frame["learned_ratio"].mean(),
                    "std": frame["learned_ratio"].std(ddof=0),
                    "n": len(frame),
                }
            )
    return pd.DataFrame(rows)


def manipulation_curves(
    profiles: pd.DataFrame, table: pd.DataFrame, stats: dict, eta: float = 1e-7
) -> pd.DataFrame:
    """Figure curves: per manipulation, the mean (over seeds) final profile of the manipulated
    runs beside their unmanipulated partners, and for scaled inputs the formula with the
    component's lambda scaled, at the tau fitted to the unscaled runs."""
    final = final_profiles(profiles[~profiles["frozen"]])
    curves = []

    def add(panel, series, values, style, label):
        curves.append(
            pd.DataFrame(
                {
                    "panel": panel,
                    "series": series,
                    "style": style,
                    "label": label,
                    "component": np.arange(1, len(values) + 1),
                    "value": values,
                }
            )
        )

    def mean_of(runs):
        frame = final[final["run"].isin(runs)]
        return frame.groupby("component")["energy_normalised"].mean().to_numpy()

    for (dataset, name), frame in table.groupby(["dataset", "manipulation"], sort=True):
        panel = f"{dataset}: {name}"
        seeds = set(frame["seed"])
        same = (
            (final["dataset"] == dataset) & final["seed"].isin(seeds) & (final["inputs"] == "none")
        )
        if frame["kind"].iloc[0] == "decile labels":
            add(panel, "decile", mean_of(frame["run"]), "measured", f"{name} labels")
            for labels in ("true", "random"):
                runs = final[same & (final["labels"] == labels)]["run"].unique()
                if len(runs):
                    add(panel, labels, mean_of(runs), "prediction", f"{labels} labels")
            continue
        component, factor = parse_scaling(name)
        lambdas = stats[dataset].lambdas
        for labels, group in frame.groupby("labels"):
            add(
                panel,
                f"scaled {labels}",
                mean_of(group["run"]),
                "measured" if labels == "true" else "prediction",
                f"{labels} labels, scaled",
            )
            runs = final[same & (final["labels"] == labels)]["run"].unique()
            if len(runs):
                reference = mean_of(runs)
                add(
                    panel,
                    f"unscaled {labels}",
                    reference,
                    "prediction",
                    f"{labels} labels, unscaled",
                )
        if len(runs):
            fit = fit_formula(reference, lambdas, eta)
            scaled = lambdas.copy()
            scaled[component - 1] *= factor
            add(
                panel,
                "formula",
                formula_profile(scaled, eta, fit.t),
                "prediction",
                f"formula, λ{component} x {factor:g}",
            )
    return (
        pd.concat(curves, ignore_index=True)
        if curves
        else pd.DataFrame(columns=["panel", "series", "style", "label", "component", "value"])
    )
