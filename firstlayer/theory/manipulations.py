"""What the manipulations do to learned profiles (the paper's Figs. 8, 17, 18).

Energy-decile labels tie the labels to one component's patch energy: the theorem's assumption
fails, and the profile learned with them should no longer match the random-label one. Scaling
one component's coefficient by A keeps the labels independent: both true- and random-label
profiles should move as the formula does when lambda_N becomes A lambda_N.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from firstlayer.common.architectures import first_layer
from firstlayer.common.settings import parse_deciles, parse_scaling
from firstlayer.intervals import interval, with_interval
from firstlayer.patches.profiles import similarity
from firstlayer.theory.formula import fit_formula, formula_profile
from firstlayer.theory.nulls import compare_fits, null_curve, verdict
from firstlayer.training.analysis import NO_PAIRS, final_profiles, recipe_columns

# runs compared with each other: same data, network, learning rate and seed (frozen runs are
# left out); random
# labels may train longer (the paper's recipe), so label comparisons ignore the epochs
KEYS = ["dataset", "arch", "first_width", "width", "seed", "lr"]
# a scaled run's unscaled partner, whose fitted tau predicts it: the same recipe in every way
PARTNER_KEYS = [*KEYS, "epochs"]
# the per-run table's columns when no run can be compared (a grid without its baseline)
TABLE_COLUMNS = ["run", "manipulation", "kind", "component", "factor", "labels", *PARTNER_KEYS]
TAU_RANGE = (1e-4, 1e4)


def _vector(frame: pd.DataFrame) -> np.ndarray:
    return frame.sort_values("component")["energy_normalised"].to_numpy()


def energy_ratio(profile, reference, component: int) -> float:
    """How much component `component` (1-based) gained relative to the rest: its energy over
    the profile's mean energy, divided by the same for the reference profile."""
    profile, reference = np.asarray(profile), np.asarray(reference)
    index = component - 1
    return float((profile[index] / profile.mean()) / (reference[index] / reference.mean()))


def predict_rescaled(
    reference,
    lambdas,
    component: int,
    factor: float,
    eta: float = 1e-7,
    tau_range=TAU_RANGE,
    scaled_lambdas=None,
) -> dict:
    """The held-out prediction for inputs whose component `component` is scaled by `factor`:
    tau (and the null families) fitted to the unscaled `reference` profile only, then the
    formula evaluated with lambda_N -> factor lambda_N at that tau (no refit), or, given
    `scaled_lambdas`, with the lambdas the scaled inputs were measured to have (`measured_lambdas`).
    The best null family, a curve in lambda or in the index fitted to the reference, predicts
    the scaled profile with the same fitted parameter: for index curves that is no change at
    all, for lambda^p the change lambda^p -> lambda'^p."""
    lambdas = np.asarray(lambdas, np.float64)
    fits = compare_fits(reference, lambdas, eta, tau_range)
    if scaled_lambdas is None:
        scaled = lambdas.copy()
        scaled[component - 1] *= factor
    else:
        scaled = np.asarray(scaled_lambdas, np.float64)
    before = formula_profile(lambdas, eta, fits["formula_t"])
    after = formula_profile(scaled, eta, fits["formula_t"])
    return {
        "component": component,
        "fits": fits,
        "formula_before": before,
        "formula_after": after,
        "null_before": null_curve(fits, lambdas),
        "null_after": null_curve(fits, scaled),
    }


def scored(prediction: dict, measured, reference) -> dict:
    """A held-out prediction against the measured profile of the scaled run (and the unscaled
    `reference` it was fitted on): the measured and predicted energy ratios along the scaled
    component and whole-profile correlations, formula and best null."""
    component = prediction["component"]
    fits = prediction["fits"]
    return {
        "fitted_tau": fits["formula_tau"],
        "reference_formula_correlation": fits["formula_correlation"],
        "best_null": fits["best_null"],
        "learned_ratio": energy_ratio(measured, reference, component),
        "formula_ratio": energy_ratio(
            prediction["formula_after"], prediction["formula_before"], component
        ),
        "null_ratio": energy_ratio(prediction["null_after"], prediction["null_before"], component),
        "formula_corr_scaled": similarity(measured, prediction["formula_after"]),
        "formula_corr_unscaled": similarity(measured, prediction["formula_before"]),
        "null_corr_scaled": similarity(measured, prediction["null_after"]),
    }


def measured_lambdas(run_paths, dataset_paths: dict, stats: dict) -> dict:
    """{run name: lambda'} for runs with scaled inputs: lambda'_i = lambda_i s'_i / s_i, where
    s'_i and s_i are the patch standard deviations along the dataset's principal component u_i
    (the basis profiles are measured in) of the very images the run trained on, with and
    without its transform. The ratio is taken on the same images, so it holds the transform's
    effect alone, not a difference between image samples. Overlapping patches make the
    transform couple components: on CIFAR-10, scaling component 5 by 4 also moves some small
    components by 2-3x (docs/method.md). Runs sharing a sample and transform share one
    measurement."""
    import dataclasses

    from firstlayer.training.run import read_run

    out, cache = {}, {}
    for path in run_paths:
        spec = read_run(path).spec
        if parse_scaling(spec.inputs) is None:
            continue
        k = first_layer(spec.arch).k  # lambdas along the components of the run's own k
        key = (spec.dataset, k, spec.n_train, spec.subset_seed, spec.inputs)
        if key not in cache:
            print(f"measuring the patch lambdas of {spec.dataset} under {spec.inputs}")
            data = dataset_paths[spec.dataset]
            space = stats[spec.dataset, k]
            scaled = _std_along_components(spec, data, space)
            plain = _std_along_components(dataclasses.replace(spec, inputs="none"), data, space)
            cache[key] = np.asarray(space.lambdas, np.float64) * scaled / plain
        out[Path(path).stem] = cache[key]
    return out


def _std_along_components(spec, dataset_path, space) -> np.ndarray:
    """Patch std along each u_i of `space` of the training images a run of `spec` sees, mapped
    from the run's standardised input into the patch statistics' own input space."""
    from firstlayer.datasets.sources import DatasetFile
    from firstlayer.patches.stats import PatchMoments
    from firstlayer.training.run import prepare_data

    with DatasetFile(dataset_path) as data:
        mean, std = data.mean, data.std
    images = prepare_data(spec, dataset_path, "cpu")["x"]  # the run's own path, labels and all
    _, channels, height, width = images.shape
    moments = PatchMoments(space.k, (height, width, channels))
    # standardised -> [0, 1] pixels -> the statistics' normalisation
    scale = std / np.asarray(space.norm_std)
    shift = (mean - np.asarray(space.norm_mean)) / np.asarray(space.norm_std)
    for start in range(0, len(images), 1000):
        chunk = images[start : start + 1000].permute(0, 2, 3, 1).double().numpy()
        moments.update(chunk * scale + shift)
    u = space.eigenvectors
    return np.sqrt(np.einsum("di,de,ei->i", u, moments.finalize().covariance, u))


def manipulation_table(
    profiles: pd.DataFrame,
    stats: dict,
    eta: float = 1e-7,
    tau_range=TAU_RANGE,
    scaled_lambdas: dict | None = None,
) -> pd.DataFrame:
    """One row per manipulated run against its unmanipulated partner (same dataset, network
    and seed): the profile correlation with the random-label run, and for scaled inputs the
    held-out prediction (`predict_rescaled`, fitted on the partner with the same labels) of the
    energy ratio along the scaled component and of the whole profile, formula and best null:
    with the nominal lambda_N -> A lambda_N, and (columns `*_measured`) with the run's
    `scaled_lambdas` measured on its own transformed images, where given."""
    final = final_profiles(profiles[~profiles["frozen"]])
    runs = final.drop_duplicates("run").set_index("run")
    recipe = recipe_columns(runs)  # a partner has the same optimiser and augmentation
    rows, left_out = [], []
    for run, spec in runs.iterrows():

        def partner(labels, keys=KEYS, spec=spec):
            keys = [*keys, *recipe]
            same = (runs[keys] == spec[keys]).all(axis=1)
            return runs[same & (runs["labels"] == labels) & (runs["inputs"] == "none")].index

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
            if "corr_vs_random" not in row:
                print(
                    f"left out: {run} has no random-label run of the same data, network, lr and "
                    f"seed to compare with"
                )
            rows.append(row)
            continue
        scaling = parse_scaling(spec["inputs"])
        if scaling is None:
            continue
        component, factor = scaling
        base = partner(spec["labels"], PARTNER_KEYS)
        if not len(base):
            print(
                f"left out: {run} has no unscaled run of the same recipe and seed to predict it "
                f"from"
            )
            left_out.append((spec["inputs"], spec["labels"]))
            continue
        reference = _vector(final[final["run"] == base[0]])
        lambdas = stats[spec["dataset"], first_layer(spec["arch"]).k].lambdas
        held_out = predict_rescaled(reference, lambdas, component, factor, eta, tau_range)
        row = {
            "run": run,
            "manipulation": spec["inputs"],
            "kind": "scaled component",
            "component": component,
            "factor": factor,
            "labels": spec["labels"],
            **{k: spec[k] for k in PARTNER_KEYS},
            "reference_run": base[0],
            "corr_vs_unscaled": similarity(vector, reference),
            **scored(held_out, vector, reference),
        }
        if scaled_lambdas and run in scaled_lambdas:
            measured = scaled_lambdas[run]
            row["lambda_ratio_measured"] = float(measured[component - 1] / lambdas[component - 1])
            prediction = predict_rescaled(
                reference, lambdas, component, factor, eta, tau_range, scaled_lambdas=measured
            )
            for key, value in scored(prediction, vector, reference).items():
                if key.startswith(("formula_", "null_")):
                    row[f"{key}_measured"] = value
        rows.append(row)
    table = pd.DataFrame(rows, columns=None if rows else TABLE_COLUMNS)
    table.attrs["left_out"] = sorted(set(left_out))  # scaled runs without a partner
    return table


def unmanipulated_true_vs_random(profiles: pd.DataFrame) -> list[float]:
    """Correlations of true- and random-label profiles of the same seed, unmanipulated inputs."""
    final = final_profiles(profiles[~profiles["frozen"] & (profiles["inputs"] == "none")])
    runs = final.drop_duplicates("run").set_index("run")
    keys = KEYS + recipe_columns(runs)
    values = []
    for run, spec in runs[runs["labels"] == "true"].iterrows():
        match = runs[(runs[keys] == spec[keys]).all(axis=1) & (runs["labels"] == "random")].index
        if len(match):
            values.append(
                similarity(
                    _vector(final[final["run"] == run]), _vector(final[final["run"] == match[0]])
                )
            )
    return values


def _bounds(quantity: str) -> tuple[float, float]:
    """Where a mean of this quantity can lie: a correlation in [-1, 1], a ratio above 0."""
    return (-1.0, 1.0) if "corr" in quantity else (0.0, float("inf"))


def _summary_row(comparison: str, values) -> dict:
    mean, low, high, n = interval(
        values, bounds=_bounds("ratio" if "ratio" in comparison else "corr")
    )
    return {"comparison": comparison, "mean": mean, "low": low, "high": high, "n": n}


def summary(table: pd.DataFrame, baseline: list[float]) -> pd.DataFrame:
    """Mean and 95% t interval (none for n = 1) per manipulation over distinct run pairs, with
    the unmanipulated true-vs-random correlation first."""
    rows = []
    if baseline:
        rows.append(_summary_row("true vs random labels (unmanipulated)", baseline))
    if len(table):
        for name, frame in table[table["kind"] == "decile labels"].groupby("manipulation"):
            values = frame["corr_vs_random"].dropna() if "corr_vs_random" in frame else []
            rows.append(
                _summary_row(f"{name} vs random labels", values)
                if len(values)
                else _no_pairs(f"{name} vs random labels")
            )
        scaled = table[table["kind"] == "scaled component"]
        for (name, labels), frame in (
            scaled.groupby(["manipulation", "labels"]) if len(scaled) else []
        ):
            rows.append(
                _summary_row(
                    f"{name}, {labels} labels: learned energy ratio "
                    f"(formula {frame['formula_ratio'].mean():.2f})",
                    frame["learned_ratio"],
                )
            )
    compared = set()
    if len(table) and "labels" in table:
        scaled = table[table["kind"] == "scaled component"]
        compared = set(zip(scaled["manipulation"], scaled["labels"]))
    for name, labels in table.attrs.get("left_out", []):
        if (name, labels) not in compared:
            rows.append(_no_pairs(f"{name}, {labels} labels: learned energy ratio"))
    return pd.DataFrame(rows, columns=["comparison", "mean", "low", "high", "n"])


def _no_pairs(comparison: str) -> dict:
    """A summary row the grid has no pairs for (as Tables 1 and 2 say it)."""
    print(f"{comparison}: {NO_PAIRS}")
    nan = float("nan")
    return {
        "comparison": f"{comparison} ({NO_PAIRS})",
        "mean": nan,
        "low": nan,
        "high": nan,
        "n": 0,
    }


HELDOUT_COLUMNS = [
    ("learned_ratio", "measured e_N ratio"),
    ("formula_ratio", "formula's predicted ratio"),
    ("null_ratio", "best null's predicted ratio"),
    ("formula_corr_scaled", "r(formula prediction, scaled run)"),
    ("null_corr_scaled", "r(best null prediction, scaled run)"),
    ("corr_vs_unscaled", "r(unscaled run, scaled run)"),
]
# the same prediction from the lambdas the scaled images were measured to have
MEASURED_COLUMNS = [
    ("lambda_ratio_measured", "measured λ_N ratio"),
    ("formula_ratio_measured", "formula's ratio, measured λ"),
    ("null_ratio_measured", "best null's ratio, measured λ"),
    ("formula_corr_scaled_measured", "r(formula, scaled run), measured λ"),
    ("null_corr_scaled_measured", "r(best null, scaled run), measured λ"),
]


def heldout_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The held-out rescaling test per (manipulation, labels), over distinct seeds: each
    quantity's mean with a 95% t interval, and two verdicts from paired differences:
    `verdict_ratio` from |log(predicted / measured ratio)|, null's minus formula's, and
    `verdict_profile` from r(formula prediction) - r(best null prediction)."""
    rows = []
    if not len(table) or "formula_corr_scaled" not in table:
        return pd.DataFrame(rows, columns=["manipulation", "labels", "n"])
    scaled = table[table["kind"] == "scaled component"]
    for (name, labels), frame in scaled.groupby(["manipulation", "labels"], sort=True):
        row = {"manipulation": name, "labels": labels, "n": len(frame)}
        for column, _ in HELDOUT_COLUMNS + MEASURED_COLUMNS:
            if column in frame:
                mean, low, high, _ = interval(frame[column], bounds=_bounds(column))
                row[f"{column}_mean"], row[f"{column}_low"] = mean, low
                row[f"{column}_high"] = high
        for suffix in ("", "_measured"):
            if f"formula_ratio{suffix}" not in frame:
                continue
            measured = np.log(frame["learned_ratio"])
            gain = np.abs(np.log(frame[f"null_ratio{suffix}"]) - measured) - np.abs(
                np.log(frame[f"formula_ratio{suffix}"]) - measured
            )
            profile = frame[f"formula_corr_scaled{suffix}"] - frame[f"null_corr_scaled{suffix}"]
            for key, values in (("ratio", gain), ("profile", profile)):
                mean, low, high, n = interval(values)
                row[f"advantage_{key}{suffix}_mean"] = mean
                row[f"advantage_{key}{suffix}_low"] = low
                row[f"advantage_{key}{suffix}_high"] = high
                row[f"verdict_{key}{suffix}"] = verdict(low, high, n)
        rows.append(row)
    return pd.DataFrame(rows)


def heldout_markdown(summary: pd.DataFrame) -> str:
    """The held-out table as Markdown: means with intervals only where n >= 2."""
    if not len(summary):
        return "No scaled-component runs in this grid.\n"
    lines = [
        "| scaled input | labels | n seeds | "
        + " | ".join(label for _, label in HELDOUT_COLUMNS)
        + " | verdict (ratio) | verdict (profile) |",
        "|---" * (5 + len(HELDOUT_COLUMNS)) + "|",
    ]
    for row in summary.to_dict("records"):
        cells = [
            with_interval(row[f"{c}_mean"], row[f"{c}_low"], row[f"{c}_high"], row["n"])
            for c, _ in HELDOUT_COLUMNS
        ]
        lines.append(
            f"| {row['manipulation']} | {row['labels']} | {row['n']} | "
            + " | ".join(cells)
            + f" | {row['verdict_ratio']} | {row['verdict_profile']} |"
        )
    return "\n".join(lines) + "\n"


def manipulation_curves(
    profiles: pd.DataFrame, table: pd.DataFrame, stats: dict, eta: float = 1e-7, tau_range=TAU_RANGE
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

    if not len(table):
        return pd.DataFrame(columns=["panel", "series", "style", "label", "component", "value"])
    table = table.assign(k=table["arch"].map(lambda arch: first_layer(arch).k))
    several = table["k"].nunique() > 1
    for (dataset, name, k), frame in table.groupby(["dataset", "manipulation", "k"], sort=True):
        panel = f"{dataset}: {name}" + (f" ({k}x{k} first layers)" if several else "")
        # unmanipulated runs of the same networks and seeds as the manipulated ones
        keys = frame[KEYS].drop_duplicates()
        same = final.reset_index().merge(keys, on=KEYS)["run"].unique()
        same = final["run"].isin(same) & (final["inputs"] == "none")
        if frame["kind"].iloc[0] == "decile labels":
            add(panel, "decile", mean_of(frame["run"]), "measured", f"{name} labels")
            for labels in ("true", "random"):
                runs = final[same & (final["labels"] == labels)]["run"].unique()
                if len(runs):
                    add(panel, labels, mean_of(runs), "prediction", f"{labels} labels")
            continue
        component, factor = parse_scaling(name)
        lambdas = stats[dataset, k].lambdas
        references = {}  # unscaled mean profile per label setting
        for labels, group in frame.groupby("labels"):
            add(
                panel,
                f"scaled {labels}",
                mean_of(group["run"]),
                "measured" if labels == "true" else "prediction",
                f"{labels} labels, scaled",
            )
            runs = group["reference_run"].unique()  # the partners the prediction used
            if len(runs):
                reference = references[labels] = mean_of(runs)
                add(
                    panel,
                    f"unscaled {labels}",
                    reference,
                    "prediction",
                    f"{labels} labels, unscaled",
                )
        if references:  # the formula fitted to the true-label reference where there is one
            reference = references.get("true", next(iter(references.values())))
            fit = fit_formula(reference, lambdas, eta, tuple(tau_range))
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


def manipulation_study(
    profiles: pd.DataFrame,
    stats_paths,
    eta: float = 1e-7,
    tau_range=TAU_RANGE,
    run_paths=(),
    dataset_paths=(),
):
    """Rule `manipulations`: (per-run table, summary, held-out summary, figure curves) from the
    training profiles, each dataset's patch statistics (paths in dataset folders) and, for the
    measured-lambda prediction, the scaled runs' files and their datasets' files."""
    from firstlayer.patches.stats import read_stats_files

    stats = read_stats_files(stats_paths)
    datasets = {Path(path).stem: path for path in dataset_paths}
    scaled = measured_lambdas(run_paths, datasets, stats)
    table = manipulation_table(profiles, stats, eta, tuple(tau_range), scaled)
    overview = summary(table, unmanipulated_true_vs_random(profiles))
    heldout = heldout_summary(table)
    print(overview.to_string(index=False))
    print(heldout_markdown(heldout))
    curves = manipulation_curves(profiles, table, stats, eta, tuple(tau_range))
    return table, overview, heldout, curves
