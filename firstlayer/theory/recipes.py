"""Beyond the paper's recipe: each cell (architecture, optimiser, augmentation, labels) of a grid
against the paper's recipe (plain SGD, no augmentation) of the same architecture.

A cell is the set of learned, unmanipulated runs that differ only in their seed. Per cell:
accuracy, training loss and how far the first layer moved (relative change ||w - w0|| / ||w0||,
from the profiles: the sum of a profile's squares is the bank's squared norm over K); whether it
learned at all (`status`: a cell whose training accuracy is within CHANCE_MARGIN of chance, or
whose first layer moved less than MIN_CHANGE, "did not learn" and gets no verdict); its final
learned profiles' correlation across seeds, with the paper's recipe of the same architecture and
labels, and between true and random labels; the formula against the best one-parameter null
(`nulls.summarise`); the fitted exponent p of the null lambda^p (the formula runs from p = 1 at
the start of training to p = -1 when it has whitened) and its difference from the paper's
recipe, at the end of training and at the recorded epoch whose training loss is closest to the
paper's recipe's final training loss (`p_matched`); and for a strided first layer, how well its
profile on the all-position patch basis agrees with its profile on its own stride grid's basis.
Every mean over n >= 2 runs (or pairs) carries a 95% interval.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from firstlayer.common.architectures import first_layer
from firstlayer.intervals import difference_interval, interval, interval_over_runs
from firstlayer.patches.profiles import energy_profile, similarity
from firstlayer.theory.nulls import summarise
from firstlayer.training.analysis import LATER_COLUMNS, final_profiles, geometry_label

CHANCE_MARGIN = 0.05  # a cell whose training accuracy is at most chance + this did not learn
MIN_CHANGE = 0.02  # nor one whose first layer moved less than this, relative to its init
PAPER = {"optimizer": "sgd", "augment": "none"}  # the paper's recipe
CELL = ["dataset", "arch", "first_width", "width", "labels", "optimizer", "augment", "lr", "epochs"]
# what a cell shares with the paper's recipe cell it is compared with (the lr is the optimiser's)
SAME_MODEL = ["dataset", "arch", "first_width", "width", "labels", "epochs"]
DID_NOT_LEARN = "did not learn"


def _with_recipe_columns(frame: pd.DataFrame) -> pd.DataFrame:
    for column, default in LATER_COLUMNS.items():
        if column not in frame.columns:
            frame = frame.assign(**{column: default})
    return frame


def _pairs(a, b, change) -> list[tuple[float, tuple]]:
    return [(similarity(change[x], change[y]), (x, y)) for x, y in itertools.product(a, b)]


def _stats(prefix: str, values, bounds=None) -> dict:
    mean, low, high, n = interval(values, bounds=bounds)
    return {f"{prefix}_mean": mean, f"{prefix}_low": low, f"{prefix}_high": high}


def _correlations(prefix: str, items) -> dict:
    if not items:
        return {f"{prefix}_mean": np.nan, f"{prefix}_low": np.nan, f"{prefix}_high": np.nan,
                f"{prefix}_n": 0}  # fmt: skip
    values = [value for value, _ in items]
    mean, low, high, n = interval_over_runs(values, [runs for _, runs in items], bounds=(-1, 1))
    return {f"{prefix}_mean": mean, f"{prefix}_low": low, f"{prefix}_high": high, f"{prefix}_n": n}


def _difference(prefix: str, a, b) -> dict:
    mean, low, high, _, _ = difference_interval(a, b)
    return {f"{prefix}_mean": mean, f"{prefix}_low": low, f"{prefix}_high": high}


def recipe_table(
    profiles: pd.DataFrame,
    metrics: pd.DataFrame,
    fits: pd.DataFrame,
    classes: dict,
    stride_agreement: dict | None = None,
) -> pd.DataFrame:
    """One row per cell (module docstring). `classes`: {dataset: number of classes};
    `stride_agreement`: {run: r(profile on the all-position basis, on its stride grid's)}."""
    profiles, metrics, fits = map(_with_recipe_columns, (profiles, metrics, fits))
    learned = profiles[
        ~profiles["frozen"].astype(bool)
        & (profiles["inputs"] == "none")
        & profiles["labels"].isin(["true", "random"])
    ]
    final = final_profiles(learned)
    change = {
        run: group.sort_values("component")["energy"].to_numpy()
        for run, group in final.groupby("run")
    }
    init = (
        learned[learned["step"] == 0]
        .groupby("run")["energy_raw"]
        .apply(lambda e: float(np.sqrt(np.sum(np.square(e)))))
    )
    moved = {run: float(np.sqrt(np.sum(np.square(v)))) / init[run] for run, v in change.items()}
    runs = final.drop_duplicates("run").set_index("run")[CELL]
    last = metrics.sort_values("epoch").groupby("run").tail(1).set_index("run")
    fitted = fits[(fits["kind"] == "learned") & fits["final"]].set_index("run")
    learned_fits = fits[fits["kind"] == "learned"].set_index(["run", "step"])
    cells = {tuple(key): list(frame.index) for key, frame in runs.groupby(CELL, sort=True)}

    def reference_of(key) -> list[str]:
        cell = dict(zip(CELL, key))
        found = [
            members
            for other, members in cells.items()
            if all(dict(zip(CELL, other))[c] == cell[c] for c in SAME_MODEL)
            and all(dict(zip(CELL, other))[c] == v for c, v in PAPER.items())
        ]
        return found[0] if found else []

    rows = []
    for key, members in cells.items():
        cell = dict(zip(CELL, key))
        chance = 1 / classes[cell["dataset"]]
        row = {**cell, "first_layer": geometry_label(cell["arch"]), "n": len(members)}
        row["chance"] = chance
        for column in ("test_acc", "train_acc", "train_loss"):
            row.update(_stats(column, last.loc[members, column], (0, np.inf)))
        row.update(_stats("relative_change", [moved[r] for r in members], (0, np.inf)))
        if row["train_acc_mean"] <= chance + CHANCE_MARGIN:
            row["status"] = f"{DID_NOT_LEARN}: training accuracy at chance"
        elif row["relative_change_mean"] < MIN_CHANGE:
            row["status"] = f"{DID_NOT_LEARN}: first layer barely moved"
        else:
            row["status"] = "learned"
        seeds = [
            (similarity(change[a], change[b]), (a, b))
            for a, b in itertools.combinations(members, 2)
        ]
        row.update(_correlations("across_seeds", seeds))
        reference = reference_of(key)
        is_paper = all(cell[c] == v for c, v in PAPER.items())
        row["paper_recipe"] = is_paper
        versus = [] if is_paper else _pairs(members, reference, change)
        row.update(_correlations("vs_paper", versus))
        random = []
        if cell["labels"] == "true":
            twin = tuple(cell[c] if c != "labels" else "random" for c in CELL)
            random = _pairs(members, cells.get(twin, []), change)
        row.update(_correlations("true_vs_random", random))
        summary = summarise(fitted.loc[members].reset_index())
        for column in ("formula", "best_null", "delta_r"):
            for part in ("mean", "low", "high"):
                row[f"{column}_{part}"] = summary[f"{column}_{part}"]
        row["best_null"] = summary.get("best_null")
        learned_cell = row["status"] == "learned"
        for column in ("verdict_r", "verdict_log_rmse"):
            row[column] = summary[column] if learned_cell else DID_NOT_LEARN
        p = fitted.loc[members, "lambda_power_parameter"]
        row.update(_stats("p", p))
        p_reference = fitted.loc[reference, "lambda_power_parameter"] if reference else []
        row.update(_difference("delta_p", p if not is_paper else [], p_reference))
        matched, losses = [], []
        if reference and not is_paper:
            target = float(last.loc[reference, "train_loss"].mean())
            for run in members:
                history = metrics[metrics["run"] == run]
                best = history.iloc[int(np.argmin(np.abs(history["train_loss"] - target)))]
                losses.append(best["train_loss"])
                step = int(best["step"])
                if (run, step) in learned_fits.index:
                    matched.append(learned_fits.loc[(run, step), "lambda_power_parameter"])
            row["matched_target_loss"] = target
        row.update(_stats("matched_loss", losses, (0, np.inf)))
        row.update(_stats("p_matched", matched))
        row.update(_difference("delta_p_matched", matched, p_reference))
        agreement = [(stride_agreement or {}).get(r, np.nan) for r in members]
        row.update(_stats("stride_basis_agreement", agreement, (-1, 1)))
        rows.append(row)
    return pd.DataFrame(rows)


def stride_agreement(run_paths, bases: dict) -> dict:
    """{run: r(final change profile on the all-position basis, on the stride grid's basis)} for
    runs whose first layer is strided; `bases`: {(dataset, k, stride): (all-position stats,
    stride-grid stats)}."""
    from firstlayer.training.run import read_run

    out = {}
    for path in run_paths:
        run = read_run(path)
        geometry = first_layer(run.spec.arch)
        key = (run.spec.dataset, geometry.k, geometry.stride)
        if key not in bases:
            continue
        full, strided = bases[key]
        a = energy_profile(run.final, full.eigenvectors, reference=run.init)
        b = energy_profile(run.final, strided.eigenvectors, reference=run.init)
        out[Path(path).stem] = similarity(a, b)
    return out


def recipe_curves(profiles: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Figure curves: one panel per (dataset, architecture, labels), the mean max-normalised
    final profile of each cell that learned, the paper's recipe drawn black."""
    profiles = _with_recipe_columns(profiles)
    final = final_profiles(profiles[~profiles["frozen"].astype(bool)])
    curves = []
    for _, row in table.iterrows():
        if row["status"] != "learned":
            continue
        same = (final[CELL] == row[CELL]).all(axis=1)
        mean = final[same].groupby("component")["energy_normalised"].mean()
        label = f"{row['optimizer']}, {row['augment']} (n = {row['n']})"
        curves.append(
            pd.DataFrame(
                {
                    "panel": f"{row['dataset']} {row['arch']}, {row['labels']} labels",
                    "series": label,
                    "style": "measured" if row["paper_recipe"] else "recipe",
                    "label": label,
                    "component": mean.index.to_numpy(),
                    "value": mean.to_numpy(),
                }
            )
        )
    columns = ["panel", "series", "style", "label", "component", "value"]
    return pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=columns)


def recipe_study(profiles, metrics, fits, dataset_paths, run_paths=(), strided_paths=()):
    """Rule `recipes`: (cell table, figure curves) from the training tables, the fits, the
    datasets (for their number of classes) and, for strided first layers, their runs and the
    stride-grid statistics (results/patches/{dataset}/k{k}_stride{s}.h5, beside k{k}.h5)."""
    from firstlayer.datasets.sources import DatasetFile
    from firstlayer.patches.stats import read_patch_stats

    classes = {}
    for path in dataset_paths:
        with DatasetFile(path) as data:
            classes[Path(path).stem] = len(data.class_names)
    bases = {}
    for path in strided_paths:
        path = Path(path)
        k, stride = (int(part) for part in path.stem[1:].split("_stride"))
        full = read_patch_stats(path.with_name(f"k{k}.h5"))
        bases[path.parent.name, k, stride] = (full, read_patch_stats(path))
    agreement = stride_agreement(run_paths, bases)
    table = recipe_table(profiles, metrics, fits, classes, agreement)
    shown = ["arch", "labels", "optimizer", "augment", "n", "status", "test_acc_mean"]
    shown += ["relative_change_mean", "vs_paper_mean", "p_mean", "delta_p_mean", "verdict_r"]
    print(table[shown].to_string(index=False))
    return table, recipe_curves(profiles, table)
