"""Analyses of trained runs: energy profiles along training and the paper's Tables 1 and 2."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from firstlayer.common.architectures import first_layer
from firstlayer.intervals import interval_over_runs
from firstlayer.patches.profiles import energy_profile, normalise, similarity

SPEC_COLUMNS = [
    "dataset",
    "arch",
    "first_width",
    "width",
    "seed",
    "labels",
    "inputs",
    "frozen",
    "epochs",
    "lr",
]
# Spec fields added later: a table has their column only when some run is off the default
# (so the tables of grids without them stay as they were), read as the default where absent.
LATER_COLUMNS = {"optimizer": "sgd", "augment": "none"}


def spec_columns(frame: pd.DataFrame) -> list[str]:
    """SPEC_COLUMNS and the later spec columns `frame` has."""
    return SPEC_COLUMNS + [column for column in LATER_COLUMNS if column in frame.columns]


def recipe_columns(frame: pd.DataFrame) -> list[str]:
    """The later spec columns `frame` has (optimizer, augment): runs that differ in one are
    never pooled or paired as the same recipe."""
    return [column for column in LATER_COLUMNS if column in frame.columns]


def with_later_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """A table concatenated from runs with and without later spec columns: the runs without one
    hold its default (pandas left them empty)."""
    for column, default in LATER_COLUMNS.items():
        if column in frame.columns:
            frame[column] = frame[column].fillna(default)
    return frame


def geometry_label(arch: str) -> str:
    """A run's first-layer geometry as tables name it, e.g. '4x4 stride 4'."""
    return str(first_layer(arch))


def read_table(path) -> pd.DataFrame:
    """A profiles or metrics table as written: label settings and input transforms stay text
    (pandas would read a column holding only `true` as booleans, and every comparison of
    `labels == "true"` would then find nothing)."""
    return pd.read_csv(path, dtype={"labels": str, "inputs": str})


def run_profiles(name: str, run, stats) -> pd.DataFrame:
    """Tidy profiles of one run at every recorded step: of the change from init (`energy`) and
    of the raw weights (`energy_raw`), raw and max-normalised."""
    frames = []
    for step, epoch, weights in zip(run.steps, run.epochs, run.weights):
        raw = energy_profile(weights, stats.eigenvectors)
        change = energy_profile(weights, stats.eigenvectors, reference=run.init)
        frame = pd.DataFrame(
            {
                "component": np.arange(1, stats.d + 1),
                "energy": change,
                "energy_raw": raw,
                "energy_raw_normalised": normalise(raw),
            }
        )
        frame["energy_normalised"] = normalise(change) if change.max() > 0 else np.nan
        frame["step"], frame["epoch"] = int(step), float(epoch)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    spec = run.spec.as_dict()
    for column in SPEC_COLUMNS + [c for c in LATER_COLUMNS if c in spec]:
        table[column] = spec[column]
    table.insert(0, "run", name)
    return table


def final_profiles(profiles: pd.DataFrame) -> pd.DataFrame:
    """The last recorded step of every run."""
    last = profiles.groupby("run")["step"].transform("max")
    return profiles[profiles["step"] == last]


def _vectors(final: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    return {
        run: group.sort_values("component")[column].to_numpy()
        for run, group in final.groupby("run")
    }


def _summary(table: str, comparison: str, dataset: str, items: list[tuple]) -> dict:
    """Mean, sample std and 95% interval of correlations over n pairs (or runs), `items` being
    (value, runs it came from); no spread from a single one. Pairs drawn from one pool of runs
    share runs, so their interval is a jackknife over runs (`interval_over_runs`)."""
    values = [value for value, _ in items]
    mean, low, high, n = interval_over_runs(values, [runs for _, runs in items], bounds=(-1, 1))
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    spread = float(np.std(finite, ddof=1)) if n >= 2 else float("nan")
    return {
        "table": table,
        "comparison": comparison,
        "dataset": dataset,
        "mean": mean,
        "std": spread,
        "low": low,
        "high": high,
        "n": n,
    }


def consistency_tables(profiles: pd.DataFrame) -> pd.DataFrame:
    """Tables 1 and 2 of the paper as mean ± std of profile correlations over all eligible
    pairs (or runs) of unmanipulated inputs, per dataset. Learned profiles are of the change
    from initialisation."""
    final = final_profiles(profiles)
    change = _vectors(final, "energy")
    init = _vectors(profiles[profiles["step"] == 0], "energy_raw")  # raw profile at step 0
    runs = final.drop_duplicates("run").set_index("run")[spec_columns(final)]
    runs = runs.assign(first_layer=runs["arch"].map(geometry_label))
    # Tables 1-2 are about unmanipulated data: manipulated runs have their own analysis
    learned = runs[~runs["frozen"] & (runs["inputs"] == "none")]
    # one row per dataset, and per optimiser, augmentation and first-layer geometry where the
    # grid has several: runs of different recipes or geometries are never pooled
    keys = group_keys(learned)
    rows = []
    for values, group in learned.groupby(keys):
        labels = dict(zip(keys, values))
        dataset = labels.pop("dataset")
        true, random = group[group["labels"] == "true"], group[group["labels"] == "random"]

        def pairs(frame, same, differ):
            out = []
            for a, b in itertools.combinations(frame.index, 2):
                ra, rb = frame.loc[a], frame.loc[b]
                if all(ra[c] == rb[c] for c in same) and all(ra[c] != rb[c] for c in differ):
                    out.append((similarity(change[a], change[b]), (a, b)))
            return out

        candidates = [
            (
                "Table 1",
                "across seeds",
                pairs(true, ["arch", "first_width", "width", "inputs", "epochs", "lr"], ["seed"]),
            ),
            (
                "Table 1",
                "across first-layer widths",
                pairs(true, ["arch", "width", "inputs", "lr"], ["first_width"]),
            ),
            (
                "Table 1",
                "trained vs init",
                [(similarity(change[r], init[r]), (r,)) for r in true.index],
            ),
            (
                "Table 1",
                "VGG vs ResNet",
                [
                    (similarity(change[a], change[b]), (a, b))
                    for a, b in itertools.product(
                        true.index[true["arch"].str.startswith("vgg")],
                        true.index[true["arch"].str.startswith("resnet")],
                    )
                    if true.loc[a, "lr"] == true.loc[b, "lr"]
                ],
            ),
            (
                "Table 2",
                "random labels vs init",
                [(similarity(change[r], init[r]), (r,)) for r in random.index],
            ),
            (
                "Table 2",
                "true vs random labels",
                [
                    (similarity(change[a], change[b]), (a, b))
                    for a, b in itertools.product(true.index, random.index)
                    if all(
                        true.loc[a, c] == random.loc[b, c]
                        for c in ["arch", "first_width", "width", "inputs", "lr"]
                    )
                ],
            ),
        ]
        rows += [{**_summary(t, c, dataset, v), **labels} for t, c, v in candidates if v]
    columns = ["table", "comparison", "dataset", *keys[1:], "mean", "std", "low", "high", "n"]
    return pd.DataFrame(rows, columns=columns)


def group_keys(runs: pd.DataFrame) -> list[str]:
    """How Tables 1 and 2 split `runs` (one row per run): by dataset, and by the later spec
    columns and the first-layer geometry wherever the runs hold more than one value."""
    extra = [c for c in [*recipe_columns(runs), "first_layer"] if c in runs]
    return ["dataset"] + [c for c in extra if runs[c].nunique() > 1]


def run_correlations(profiles: pd.DataFrame) -> pd.DataFrame:
    """Correlations of the final learned (change) profiles of every pair of runs (tidy a, b)
    whose first layers have the same number of components (profiles of other geometries have
    no common basis)."""
    from firstlayer.patches.profiles import correlation_table

    vectors = _vectors(final_profiles(profiles), "energy")
    sizes = sorted({len(vector) for vector in vectors.values()})
    return pd.concat(
        [
            correlation_table({r: v for r, v in vectors.items() if len(v) == size})
            for size in sizes or [0]
        ],
        ignore_index=True,
    )


# Every comparison of Tables 1 and 2, in the paper's order.
COMPARISONS = [
    ("Table 1", "across seeds"),
    ("Table 1", "across first-layer widths"),
    ("Table 1", "trained vs init"),
    ("Table 1", "VGG vs ResNet"),
    ("Table 2", "random labels vs init"),
    ("Table 2", "true vs random labels"),
]
NO_PAIRS = "no pairs in this grid"


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """Tables 1/2 as text cells 'mean ± std (n)' for rendering (the spread only when n >= 2);
    a comparison the grid has no pairs (or runs) for says so instead of being left out. Rows
    split by recipe or geometry name them after the dataset."""
    extra = [c for c in ("optimizer", "augment", "first_layer") if c in table.columns]
    names = table["dataset"].astype(str)
    for column in extra:
        names = names + ", " + table[column].astype(str)
    table = table.assign(dataset=names)
    rows = []
    for dataset in sorted(table["dataset"].unique()) or ["any"]:
        found = table[table["dataset"] == dataset].set_index("comparison")
        for name, comparison in COMPARISONS:
            if comparison in found.index:
                row = found.loc[comparison]
                spread = f" ± {row['std']:.2f}" if row["n"] >= 2 else ""
                cell = f"{row['mean']:.2f}{spread}  (n={row['n']})"
            else:
                cell = NO_PAIRS
            rows.append((name, comparison, dataset, cell))
    return pd.DataFrame(rows, columns=["table", "comparison", "dataset", "correlation"])


MODEL_COLUMNS = ["dataset", "arch", "first_width", "width", "inputs"]


def with_both(table: pd.DataFrame, column: str, values: tuple) -> pd.DataFrame:
    """Rows of the model configurations (dataset, arch, widths, inputs, and optimiser and
    augmentation where the table has them) that have runs with every one of `values` in
    `column`: e.g. both true and random labels, or frozen and learned."""
    models = MODEL_COLUMNS + recipe_columns(table)
    keep = table.groupby(models)[column].transform(lambda v: set(values) <= set(v))
    return table[keep.astype(bool)]


def profile_runs(run_paths, stats_paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(profiles, metrics): every run's profiles at every recorded step on its dataset's patch
    statistics (stats files are results/patches/{dataset}/k*.h5), and its metrics with its spec."""
    from pathlib import Path

    from firstlayer.patches.stats import read_stats_files
    from firstlayer.training.run import read_run

    stats = read_stats_files(stats_paths)
    profiles, metrics = [], []
    for path in run_paths:
        name, run = Path(path).stem, read_run(path)
        k = first_layer(run.spec.arch).k
        profiles.append(run_profiles(name, run, stats[run.spec.dataset, k]))
        frame = pd.DataFrame(run.metrics)
        for key, value in run.spec.as_dict().items():
            frame[key] = str(value) if isinstance(value, list) else value  # one cell
        frame.insert(0, "run", name)
        metrics.append(frame)
    print(f"profiled {len(profiles)} runs")
    return with_later_defaults(pd.concat(profiles)), with_later_defaults(pd.concat(metrics))
