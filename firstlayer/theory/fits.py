"""Fits of the two linear predictions to measured profiles (the paper's Table 3, Figs. 7, 14-16).

For every run: the learned profile (change from init) at each recorded step is fitted by the
paper's formula (search over tau = eta t; also within the authors' own search range), by the
one-parameter null families of `firstlayer.theory.nulls`, and by the exact linear prediction
(the random-label expectation from the average-patch moments A, search over tau = eta K t); the
raw profile at step 0 is fitted too (one row per distinct initialisation), the random-init
baseline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from firstlayer.common.architectures import first_layer
from firstlayer.intervals import interval
from firstlayer.patches.profiles import similarity
from firstlayer.theory.formula import best_tau, fit_formula, formula_profile
from firstlayer.theory.linear_cnn import ExactProfile, Moments
from firstlayer.theory.nulls import (
    FAMILIES,
    FAMILY_LABELS,
    compare_fits,
    null_curve,
    paper_tau_range,
    summarise,
    verdict,
)
from firstlayer.training.analysis import recipe_columns, spec_columns

EXACT_TAU_RANGE = (1e-4, 1e8)


def check_spectrum(stats, where) -> None:
    """One line, before any fit, when patch statistics have components of zero variance (more
    dimensions than patches, e.g. 16x16x3 patches of a few small images): the formula needs
    every lambda > 0."""
    from firstlayer.errors import InputError

    zeros = int(np.sum(stats.lambdas <= 1e-6 * stats.lambdas.max()))  # variance 1e-12 of the top
    if zeros:
        raise InputError(
            f"{where}: {zeros} of the {stats.d} components of the {stats.k}x{stats.k}x"
            f"{stats.channels} patches have zero variance ({stats.count} patches); the formula "
            f"needs every lambda > 0; allowed: more images (patches.n_images) or a smaller k"
        )


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
    step 0; runs that share an initialisation give one row). `stats`, `exact` and
    `paper_ranges` are keyed by (dataset, k): each run is fitted on its own first layer's patch
    statistics."""
    rows = []
    seen_inits = set()
    columns = spec_columns(profiles)
    for (run, step), group in profiles.groupby(["run", "step"], sort=True):
        group = group.sort_values("component")
        first = group.iloc[0]
        spec = {column: first[column] for column in columns}
        where = (spec["dataset"], first_layer(spec["arch"]).k)  # the run's patch statistics
        lambdas = stats[where].lambdas
        predictor = (exact or {}).get(where)
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
                **compare_fits(profile, lambdas, eta, tau_range, (paper_ranges or {}).get(where)),
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


# Runs of one Table 3 row share these too: a recipe trained further or faster is another regime.
RECIPE = ["lr", "epochs"]


def recipe(frame: pd.DataFrame) -> list[str]:
    """RECIPE and the later spec columns the table has (optimizer, augment)."""
    return RECIPE + recipe_columns(frame)


def table3(fits: pd.DataFrame) -> pd.DataFrame:
    """Table 3 with its null models: per (dataset, network, labels, inputs, lr, epochs, and
    optimizer and augment where the grid has them) the final learned profiles of distinct runs,
    and per dataset (and first-layer kernel size, where runs have several) the distinct random
    initialisations; see `nulls.summarise` for the columns (n, means with 95% t intervals, best
    null family, delta r and delta log-RMSE, verdicts), plus the exact prediction's mean r and
    interval."""
    final = fits[(fits["kind"] == "learned") & fits["final"] & ~fits["frozen"]]
    keys = recipe(fits)
    rows = []

    def add(frame, **labels):
        row = summarise(frame, **labels)
        if "exact_correlation" in frame:
            row["exact_mean"], row["exact_low"], row["exact_high"], _ = interval(
                frame["exact_correlation"], bounds=(-1, 1)
            )
        rows.append(row)

    for values, frame in final.groupby(["dataset", "arch", "labels", "inputs", *keys], sort=True):
        dataset, arch, labels, inputs, *settings = values
        add(
            frame,
            dataset=dataset,
            network=arch,
            labels=labels,
            inputs=inputs,
            **dict(zip(keys, settings)),
        )
    inits = fits[fits["kind"] == "random init"]
    inits = inits.assign(k=inits["arch"].map(lambda arch: first_layer(arch).k))
    several = inits["k"].nunique() > 1  # random inits of several geometries: one row each
    for (dataset, k), frame in inits.groupby(["dataset", "k"], sort=True):
        network = f"random init, {k}x{k}" if several else "random init"
        add(frame, dataset=dataset, network=network, labels="-", inputs="-")
    return pd.DataFrame(rows)


def paper_ranges(patches_per_image: dict) -> dict:
    """{(dataset, k): the authors' tau range} from the patch positions per image."""
    return {key: paper_tau_range(count) for key, count in patches_per_image.items()}


def exact_predictors(moments_by_key: dict, stats: dict) -> dict:
    """{(dataset, k): the exact linear prediction} from the average-patch moments."""
    return {
        key: ExactProfile(moments, stats[key].eigenvectors)
        for key, moments in moments_by_key.items()
    }


def fit_curves(
    profiles: pd.DataFrame,
    fits: pd.DataFrame,
    stats: dict,
    exact: dict | None = None,
    eta: float = 1e-7,
    tau_range=(1e-4, 1e4),
) -> pd.DataFrame:
    """Curves for the fit figure: per (dataset, arch, labels, inputs, lr, epochs, and optimizer
    and augment where present), the mean over seeds of the final learned profiles
    (max-normalised) with the formula and the exact prediction fitted to that mean; and one
    random init's raw profile per dataset and first-layer kernel size with its formula fit."""
    final = profiles.merge(fits[fits["final"]][["run", "step"]], on=["run", "step"])
    final = final[~final["frozen"]]
    panels = []
    keys = recipe(final)
    several = {key: final[key].nunique() > 1 for key in keys}  # named only where they differ
    for values, frame in final.groupby(["dataset", "arch", "labels", "inputs", *keys], sort=True):
        dataset, arch, labels, inputs, *settings = values
        setting = dict(zip(keys, settings))
        mean = frame.groupby("component")["energy_normalised"].mean().to_numpy()
        title = f"{dataset} {arch}, {labels} labels" + ("" if inputs == "none" else f", {inputs}")
        title += f", lr {setting['lr']:g}" if several["lr"] else ""
        title += f", {setting['epochs']} epochs" if several["epochs"] else ""
        for key in keys[len(RECIPE) :]:
            title += f", {setting[key]}" if several[key] else ""
        key = (dataset, first_layer(arch).k)
        panels.append((title, f"learned (mean of {frame['run'].nunique()} runs)", mean, key))
    init = profiles[profiles["step"] == 0]
    init = init.assign(k=init["arch"].map(lambda arch: first_layer(arch).k))
    for (dataset, k), frame in init.groupby(["dataset", "k"], sort=True):
        one = frame[frame["run"] == frame["run"].iloc[0]].sort_values("component")
        title = f"{dataset}, a random init" + (f" ({k}x{k})" if init["k"].nunique() > 1 else "")
        panels.append(
            (title, "random init (raw)", one["energy_raw_normalised"].to_numpy(), (dataset, k))
        )
    rows = []
    for title, label, measured, dataset in panels:
        lambdas = stats[dataset].lambdas
        fit = fit_formula(measured, lambdas, eta, tuple(tau_range))
        null = compare_fits(measured, lambdas, eta, tuple(tau_range))
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
    """Rule `formula_fits`: {output name: table} (fits, Table 3, figure curves, cross-dataset
    predictions and their summary) from the training profiles, each dataset's patch statistics
    and per-image features (file paths, in dataset folders)."""
    from firstlayer.patches.features import read_image_features
    from firstlayer.patches.stats import read_stats_files

    stats = read_stats_files(stats_paths)
    for (dataset, k), spectrum in stats.items():
        check_spectrum(spectrum, f"results/patches/{dataset}/k{k}.h5")
    features = {}
    for path in feature_paths:
        data = read_image_features(path)
        features[Path(path).parent.name, data["k"]] = data
    moments = {key: Moments.of(data["average_patches"]) for key, data in features.items()}
    exact = exact_predictors(moments, stats)
    ranges = paper_ranges({key: data["patches_per_image"] for key, data in features.items()})
    print(f"fitting {profiles['run'].nunique()} runs at every recorded step; paper ranges {ranges}")
    fits = fit_profiles(profiles, stats, exact, eta, tuple(tau_range), ranges)
    table = table3(fits)
    print(table.to_string(index=False))
    across = cross_dataset(profiles, fits, stats)
    return {
        "fits": fits,
        "table": table,
        "curves": fit_curves(profiles, fits, stats, exact, eta, tau_range),
        "cross_dataset": across,
        "cross_dataset_summary": cross_dataset_summary(across),
    }


PRETRAINED_GROUPS = {"torchvision": "ImageNet-trained (torchvision)", "file": "weight files"}
TORCHVISION_TRAINED_ON = "ImageNet-1k"  # the classification weights torchvision downloads


def pretrained_fits(
    layer_paths,
    stats,
    input_space: str,
    dataset_norm,
    patches_per_image: int,
    eta,
    tau_range,
    trained_on=None,
):
    """The formula (free tau and the paper's range) and the null families fitted to the raw
    profile of every first layer in `layer_paths` whose kernel matches `stats` (the init of a
    downloaded model is unknown), each on the patch PCA re-expressed in the layer's own input
    space. `trained_on`: {weight file name: what it was trained on, or None}. Returns (one row
    per layer, Table 3 rows: one per source group, one per training set ("trained on X") and
    one over all layers, with n = distinct layers)."""
    trained_on = trained_on or {}
    from firstlayer.pretrained.layers import layer_profile, read_first_layer

    ranges = paper_tau_range(patches_per_image)
    rows = []
    for path in layer_paths:
        layer = read_first_layer(path)
        if layer.k != stats.k:
            continue
        check_spectrum(stats, f"patch statistics for {layer.name}")
        if layer.input_mean.size == 0:  # a user file without its own normalisation
            layer.input_mean, layer.input_std = map(np.asarray, dataset_norm)
        space = (
            stats.in_input_space(layer.input_mean, layer.input_std)
            if input_space == "model"
            else stats.in_input_space(np.zeros(stats.channels), np.ones(stats.channels))
        )
        profile = layer_profile(layer, stats, input_space)
        rows.append(
            {
                "name": layer.name,
                # a user file by its name only: tables leave the machine's paths behind
                "source": _source_name(layer.source),
                "group": PRETRAINED_GROUPS[layer.source.split(":", 1)[0]],
                "trained_on": (
                    TORCHVISION_TRAINED_ON
                    if layer.source.startswith("torchvision")
                    else trained_on.get(layer.name)
                ),
                "k": stats.k,
                "input_space": input_space,
                **compare_fits(profile, space.lambdas, eta, tuple(tau_range), ranges),
            }
        )
    layers = pd.DataFrame(rows)
    summary = []
    if len(layers):
        for group, frame in layers.groupby("group", sort=True):
            summary.append(summarise(frame, network=group, k=stats.k, layers=_names(frame)))
        for data, frame in layers.dropna(subset=["trained_on"]).groupby("trained_on"):
            label = f"trained on {data}"
            summary.append(summarise(frame, network=label, k=stats.k, layers=_names(frame)))
        summary.append(
            summarise(layers, network="all first layers", k=stats.k, layers=_names(layers))
        )
    return layers, pd.DataFrame(summary)


def _source_name(source: str) -> str:
    kind, _, where = source.partition(":")
    return f"{kind}:{Path(where).name}" if kind == "file" else source


def _names(frame) -> str:
    return ", ".join(sorted(frame["name"]))


def pretrained_fit_study(
    stats_path, dataset_path, layer_paths, input_space, eta, tau_range, trained_on=None
):
    """Rule `pretrained_fits`: `pretrained_fits` from file paths (patch statistics, the dataset
    for its normalisation and image size, first-layer files)."""
    from firstlayer.datasets.sources import DatasetFile
    from firstlayer.patches.stats import read_patch_stats

    stats = read_patch_stats(stats_path)
    with DatasetFile(dataset_path) as data:
        norm = (data.mean, data.std)
        height, width = data.images("train").shape[1:3]
    positions = (height - stats.k + 1) * (width - stats.k + 1)
    layers, table = pretrained_fits(
        layer_paths, stats, input_space, norm, positions, eta, tau_range, trained_on
    )
    print(table.to_string(index=False))
    return layers, table


MATCH = ["arch", "first_width", "width", "labels", "inputs", "epochs", "lr"]
CROSS_DATASET_COLUMNS = [
    *("source", "source_runs", "target", "run", *MATCH, "seed", "source_tau"),
    *("predicted_correlation", "in_sample_correlation", "in_sample_tau", "null_family"),
    *("null_predicted_correlation", "null_in_sample_correlation"),
]


def cross_dataset(profiles: pd.DataFrame, fits: pd.DataFrame, stats: dict) -> pd.DataFrame:
    """Held-out prediction across datasets, no refit: for every final learned profile of a run
    on dataset B and every other dataset A with runs of the same recipe (network, widths,
    labels, inputs, epochs), the formula at A's median fitted tau evaluated with B's own lambda,
    and A's most frequent best null family at its median parameter evaluated on B. One row per
    (A, run on B), beside the run's in-sample formula and best-null correlations."""
    final = fits[(fits["kind"] == "learned") & fits["final"] & ~fits["frozen"]]
    final = final[final["inputs"] == "none"]
    match = MATCH + recipe_columns(final)
    rows = []
    for _, run in final.iterrows():
        measured = (
            profiles[(profiles["run"] == run["run"]) & (profiles["step"] == run["step"])]
            .sort_values("component")["energy"]
            .to_numpy()
        )
        lambdas = np.asarray(stats[run["dataset"], first_layer(run["arch"]).k].lambdas, np.float64)
        same = (final[match] == run[match]).all(axis=1)
        for source, donors in final[same & (final["dataset"] != run["dataset"])].groupby("dataset"):
            tau = float(donors["formula_tau"].median())
            family = donors["best_null"].mode().iloc[0]
            parameter = float(donors[f"{family}_parameter"].median())
            curve = next(f for f in FAMILIES if f.key == family).curve(lambdas, parameter)
            rows.append(
                {
                    "source": source,
                    "source_runs": len(donors),
                    "target": run["dataset"],
                    "run": run["run"],
                    **{column: run[column] for column in MATCH},
                    "seed": run["seed"],
                    "source_tau": tau,
                    "predicted_correlation": similarity(
                        measured, formula_profile(lambdas, run["eta"], tau / run["eta"])
                    ),
                    "in_sample_correlation": run["formula_correlation"],
                    "in_sample_tau": run["formula_tau"],
                    "null_family": family,
                    "null_predicted_correlation": similarity(measured, curve),
                    "null_in_sample_correlation": run["best_null_correlation"],
                }
            )
    # a grid of one dataset predicts nothing: a header-only table, readable like any other
    return pd.DataFrame(rows, columns=CROSS_DATASET_COLUMNS)


def cross_dataset_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (source, target, network, labels): n distinct target runs, mean correlations with
    95% t intervals, and the verdict on predicted r, formula minus null."""
    out = []
    stems = ("predicted", "in_sample", "null_predicted", "null_in_sample", "advantage")
    columns = ["source", "target", "network", "labels", "n"]
    columns += [f"{stem}_{part}" for stem in stems for part in ("mean", "low", "high")]
    columns += ["verdict"]
    for (source, target, arch, labels), frame in rows.groupby(
        ["source", "target", "arch", "labels"], sort=True
    ):
        row = {"source": source, "target": target, "network": arch, "labels": labels}
        row["n"] = len(frame)
        for column in (
            "predicted_correlation",
            "in_sample_correlation",
            "null_predicted_correlation",
            "null_in_sample_correlation",
        ):
            stem = column.replace("_correlation", "")
            row[f"{stem}_mean"], row[f"{stem}_low"], row[f"{stem}_high"], _ = interval(
                frame[column], bounds=(-1, 1)
            )
        mean, low, high, n = interval(
            frame["predicted_correlation"] - frame["null_predicted_correlation"]
        )
        row["advantage_mean"], row["advantage_low"], row["advantage_high"] = mean, low, high
        row["verdict"] = verdict(low, high, n)
        out.append(row)
    return pd.DataFrame(out, columns=columns)
