"""The theory's clock: does training act on the first layer through lr x steps?

In the formula training enters only through tau = eta t, so the tau fitted to a run should grow in
proportion to its step and, at a fixed step, to its learning rate. Runs of one recipe at several
learning rates, recorded at equal values of lr x step (`record_lr_steps`), test this twice:

- Slopes. Per seed, over the records of every learning rate in the span they all reach,
  log tau_hat = c + a log t + b log lr (least squares); the clock predicts a = b = 1. With the
  normalised clock C (below) in place of the step: log tau_hat = c + a log C + b log lr, where
  the clock predicts a = 1 and b = 0 (C already holds the learning rate). Means of a and b carry
  a 95% t interval over seeds. A fit whose tau sits at a bound of its range says only "lambda^1"
  or "lambda^-1": such records are left out and counted.
- Collapse. Profiles of two learning rates compared at equal clock, beside the same two runs at
  equal step, the same run at clocks a learning-rate ratio apart, and two seeds at equal learning
  rate and clock (the ceiling that seed-to-seed noise leaves).

The normalised clock. A BatchNorm after the first convolution makes the loss blind to each
filter's scale; SGD then turns a filter's direction by lr / |w_k|^2 per unit of gradient, a step
that shrinks as the filter grows. Runs record C_k = sum over steps of lr / |w_k|^2 (the weights
each step started from); C is its mean over filters. Between records, a profile at any clock
value comes from the weights interpolated linearly in log clock.

The linear CNN of the theory, trained by gradient descent at several step sizes, is the
reference: on synthetic independent patches the formula holds and its tau is eta K t / P exactly;
on the dataset's own patches it does not hold (firstlayer.theory.linear_cnn).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from firstlayer.common.architectures import first_layer
from firstlayer.intervals import interval, interval_over_runs
from firstlayer.patches.profiles import similarity
from firstlayer.theory.formula import fit_formula, formula_profile
from firstlayer.theory.nulls import at_bound, best_log_fit

CLOCKS = {"lr_steps": "lr × step", "normalised": "Σ lr/|w|² (normalised)"}
TAU_FITS = {"formula_tau": "τ by r", "formula_log_tau": "τ by log-RMSE"}
# what the clock predicts for the two slopes of each form
PREDICTED = {"lr_steps": (1.0, 1.0), "normalised": (1.0, 0.0)}
# optimiser and augmentation too: an AdamW run's lr is not on SGD's scale
GROUP_COLUMNS = [
    "system",
    *("dataset", "arch", "first_width", "width", "labels", "inputs", "optimizer", "augment"),
]
TWIN_FITS = [
    "formula_tau",
    "formula_tau_at_bound",
    "formula_log_tau",
    "formula_log_tau_at_bound",
    "formula_correlation",
]
# the columns of `twins`, in order
TWIN_COLUMNS = [
    *GROUP_COLUMNS,
    *("seed", "lr_steps", "run_a", "lr_a", "step_a", "run_b", "lr_b", "step_b", "correlation"),
    *(f"{column}_{side}" for side in "ab" for column in TWIN_FITS),
]


@dataclass
class Trajectory:
    """One training run's (or one seed's batch of linear CNNs') first layer along training:
    weights (records, ..., d) in patch order, the init (..., d), and at every record the step
    and the clocks. `grid`: the lr x step values the run was asked to record (exact records)."""

    name: str
    group: dict
    seed: int
    lr: float
    steps: np.ndarray
    weights: np.ndarray
    init: np.ndarray
    clocks: dict
    grid: tuple = ()
    epochs: int = 0
    extra: dict = field(default_factory=dict)

    def change(self, index: int) -> np.ndarray:
        return self.weights[index] - self.init

    def span(self, clock: str) -> tuple[float, float]:
        values = self.clocks[clock][1:]
        return float(values.min()), float(values.max())

    def at(self, clock: str, value: float) -> np.ndarray:
        """The change from init at a clock value inside the recorded span: the weights
        interpolated linearly in log clock between the two records around it."""
        values = self.clocks[clock]
        low, high = self.span(clock)
        if not low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
            raise ValueError(
                f"{self.name}: clock {value:g} outside its records [{low:g}, {high:g}]"
            )
        order = np.argsort(values[1:]) + 1  # record 0 is the init, at clock 0
        x, position = values[order], np.log(value)
        right = int(np.clip(np.searchsorted(x, value), 1, len(x) - 1)) if len(x) > 1 else 0
        if len(x) == 1 or np.isclose(x[right], value, rtol=1e-12):
            return self.change(order[right])
        left = right - 1
        share = (position - np.log(x[left])) / (np.log(x[right]) - np.log(x[left]))
        return (1 - share) * self.change(order[left]) + share * self.change(order[right])


def stats_key(group: dict) -> tuple[str, str]:
    """Which patch statistics a group's profiles are on: its dataset's, for its network's own
    first layer (the linear CNN is on the theory's patches of its dataset)."""
    return group["dataset"], group["arch"]


def energy(change: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Energy profile of a change (..., d) along the columns of `basis`: the root mean square
    of the coefficients over every leading axis (filters, and runs for the linear CNN)."""
    coefficients = change.reshape(-1, change.shape[-1]) @ basis
    return np.sqrt(np.mean(coefficients**2, axis=0))


def from_run(name: str, run, system: str = "trained") -> Trajectory:
    """A trained run (firstlayer.training.run.Run) as a Trajectory."""
    spec = run.spec
    weights = run.weights.reshape(len(run.weights), run.weights.shape[1], -1).astype(np.float64)
    clocks = {"lr_steps": spec.lr * run.steps.astype(np.float64)}
    if run.normalised_clock is not None:
        clocks["normalised"] = np.asarray(run.normalised_clock, np.float64).mean(axis=1)
    group = {
        "system": system,
        **{key: getattr(spec, key) for key in GROUP_COLUMNS[1:]},
    }
    return Trajectory(
        name,
        group,
        spec.seed,
        spec.lr,
        np.asarray(run.steps),
        weights,
        weights[0],
        clocks,
        tuple(spec.record_lr_steps),
        spec.epochs,
        {"norm2": np.sum(weights**2, axis=-1).mean(axis=-1)},
    )


def on_grid(trajectory: Trajectory) -> np.ndarray:
    """Which records are the ones asked for at the lr x step values of the run's grid."""
    last = int(trajectory.steps.max())  # values far beyond the run (or a tiny lr): no step
    wanted = {
        max(1, round(c / trajectory.lr)) for c in trajectory.grid if c / trajectory.lr <= last + 1
    }
    return np.isin(trajectory.steps, sorted(wanted))


def fit_records(trajectories, lambdas: dict, basis: dict, eta: float, tau_range) -> pd.DataFrame:
    """One row per record after the init: the clocks, the filters' mean squared norm, and the
    formula's tau fitted by correlation (`formula_tau`) and by log-RMSE (`formula_log_tau`),
    each flagged where it sits at a bound of `tau_range`. `lambdas` and `basis` by `stats_key`."""
    rows = []
    for path in trajectories:
        dataset = stats_key(path.group)
        grid = on_grid(path)
        for index in range(1, len(path.steps)):
            profile = energy(path.change(index), basis[dataset])
            if not profile.max() > 0:
                continue
            fit = fit_formula(profile, lambdas[dataset], eta, tau_range)
            log_rmse, log_tau = best_log_fit(
                profile,
                lambda tau, lam=lambdas[dataset]: formula_profile(lam, eta, tau / eta),
                tuple(tau_range),
            )
            row = {
                "run": path.name,
                **path.group,
                "seed": path.seed,
                "lr": path.lr,
                "epochs": path.epochs,
                "step": int(path.steps[index]),
                "on_grid": bool(grid[index]),
                **{f"clock_{kind}": float(values[index]) for kind, values in path.clocks.items()},
                "formula_tau": fit.tau,
                "formula_correlation": fit.correlation,
                "formula_tau_at_bound": at_bound(fit.tau, tau_range),
                "formula_log_tau": log_tau,
                "formula_log_rmse": log_rmse,
                "formula_log_tau_at_bound": at_bound(log_tau, tau_range),
            }
            if "norm2" in path.extra:
                row["filter_norm2_mean"] = float(path.extra["norm2"][index])
            rows.append(row)
    return pd.DataFrame(rows)


def _group_key(frame: pd.DataFrame) -> list[str]:
    return [column for column in GROUP_COLUMNS if column in frame]


def common_span(records: pd.DataFrame) -> tuple[float, float]:
    """The lr x step span that every learning rate of `records` (one group and seed) reaches
    on its grid."""
    grid = records[records["on_grid"]]
    spans = grid.groupby("lr")["clock_lr_steps"].agg(["min", "max"])
    return float(spans["min"].max()), float(spans["max"].min())


def _regression(x, lr, tau, with_lr: bool) -> tuple[float, float]:
    columns = [np.ones_like(x), np.log(x)] + ([np.log(lr)] if with_lr else [])
    coefficients, *_ = np.linalg.lstsq(np.column_stack(columns), np.log(tau), rcond=None)
    return float(coefficients[1]), float(coefficients[2]) if with_lr else float("nan")


def slopes(records: pd.DataFrame) -> pd.DataFrame:
    """The clock's slopes: per group, clock form (lr x step, normalised), tau fit and scope
    (`pooled`: every learning rate in the span all reach; or one learning rate over its own
    grid), the per-seed least-squares slopes a (on log step, or on log C) and b (on log lr),
    their means with 95% t intervals over seeds (n = seeds), the prediction, the records used
    and those left out with tau at a bound."""
    rows = []
    if records.empty:
        return pd.DataFrame(rows)
    key = _group_key(records)
    for group, frame in records.groupby(key, sort=True):
        group = dict(zip(key, group if isinstance(group, tuple) else (group,)))
        lrs = sorted(frame["lr"].unique())
        scopes = ([("pooled", None)] if len(lrs) > 1 else []) + [(f"lr {lr:.3g}", lr) for lr in lrs]
        for clock in CLOCKS:
            if f"clock_{clock}" not in frame or frame[f"clock_{clock}"].isna().all():
                continue
            for tau_column in TAU_FITS:
                for scope, only in scopes:
                    per_seed, used, excluded = {"a": [], "b": []}, 0, 0
                    for _, seeded in frame.groupby("seed"):
                        chosen = seeded[seeded["on_grid"]]
                        if only is None:
                            low, high = common_span(seeded)
                            inside = chosen["clock_lr_steps"].between(
                                low * (1 - 1e-9), high * (1 + 1e-9)
                            )
                            chosen = chosen[inside]
                            if chosen["lr"].nunique() < 2:
                                continue
                        else:
                            chosen = chosen[chosen["lr"] == only]
                        bound = chosen[f"{tau_column}_at_bound"].astype(bool)
                        excluded += int(bound.sum())
                        chosen = chosen[~bound]
                        if len(chosen) < (4 if only is None else 3):
                            continue
                        used += len(chosen)
                        # a: the slope on log t (with lr x step) or on log C (normalised)
                        x = chosen["step" if clock == "lr_steps" else f"clock_{clock}"]
                        x = x.to_numpy(np.float64)
                        a, b = _regression(
                            x, chosen["lr"].to_numpy(), chosen[tau_column].to_numpy(), only is None
                        )
                        per_seed["a"].append(a)
                        per_seed["b"].append(b)
                    row = {
                        **group,
                        "clock": clock,
                        "tau_fit": tau_column,
                        "scope": scope,
                        "learning_rates": " ".join(f"{lr:.3g}" for lr in lrs),
                        "predicted_a": PREDICTED[clock][0],
                        "predicted_b": PREDICTED[clock][1] if only is None else float("nan"),
                        "records": used,
                        "at_bound": excluded,
                    }
                    row["n"] = interval(per_seed["a"])[3]  # seeds with a slope
                    for name, values in per_seed.items():
                        mean, low, high, _ = interval(values)
                        row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"] = (
                            mean,
                            low,
                            high,
                        )
                    rows.append(row)
    return pd.DataFrame(rows)


def _evaluation_points(a: Trajectory, b: Trajectory, clock: str, points: int) -> np.ndarray:
    """Clock values both trajectories recorded around: their common grid values for lr x step,
    else `points` log-spaced values across the common span."""
    low = max(a.span(clock)[0], b.span(clock)[0])
    high = min(a.span(clock)[1], b.span(clock)[1])
    if not high > low:
        return np.array([])
    if clock == "lr_steps" and a.grid:
        grid = np.array(sorted(set(a.grid) & set(b.grid)))
        return grid[(grid >= low * (1 - 1e-9)) & (grid <= high * (1 + 1e-9))]
    return np.geomspace(low, high, points)


def collapse(trajectories, basis: dict, points: int = 6) -> pd.DataFrame:
    """Profile correlations that say whether a clock collapses the learning rates, per group,
    clock form and pair of learning rates (lr_a < lr_b, ratio = lr_b / lr_a), each a mean over
    the clock values compared, then over seeds (95% t interval, n = seeds; for the seed-to-seed
    row, pairs of seeds with a jackknife over runs):

    - `equal clock`: the two learning rates at the same clock value (same seed);
    - `equal step`: the same two runs at the steps both recorded (their lr x step a ratio
      apart), from the slower run's first grid value of lr x step on;
    - `equal lr, clock x ratio`: the run at lr_a against itself at clocks a ratio apart;
    - `seeds, equal lr and clock`: two seeds at lr_a, same clock (the noise ceiling)."""
    rows = []
    groups: dict[tuple, list[Trajectory]] = {}
    for path in trajectories:
        groups.setdefault(tuple(path.group.items()), []).append(path)
    for group_items, members in groups.items():
        group = dict(group_items)
        lrs = sorted({path.lr for path in members})
        by_lr_seed = {(path.lr, path.seed): path for path in members}
        u = basis[stats_key(group)]
        for clock in CLOCKS:
            if not all(clock in path.clocks for path in members):
                continue
            for lr_a, lr_b in itertools.combinations(lrs, 2):
                ratio = lr_b / lr_a
                values = {name: [] for name in ("equal clock", "equal step", "clock x ratio")}
                seeds = sorted(
                    {s for (lr, s) in by_lr_seed if lr == lr_a}
                    & {s for (lr, s) in by_lr_seed if lr == lr_b}
                )
                for seed in seeds:
                    a, b = by_lr_seed[lr_a, seed], by_lr_seed[lr_b, seed]
                    at = _evaluation_points(a, b, clock, points)
                    if len(at):
                        values["equal clock"].append(
                            np.mean(
                                [
                                    similarity(energy(a.at(clock, c), u), energy(b.at(clock, c), u))
                                    for c in at
                                ]
                            )
                        )
                    # steps both recorded from the slower run's first clock value on, where both
                    # are as far into training as the equal-clock comparison looks
                    floor = min(a.grid) / a.lr * (1 - 1e-9) if a.grid else 1
                    shared = sorted(s for s in set(a.steps) & set(b.steps) if s >= floor)
                    if shared:
                        index_a = {step: i for i, step in enumerate(a.steps)}
                        index_b = {step: i for i, step in enumerate(b.steps)}
                        values["equal step"].append(
                            np.mean(
                                [
                                    similarity(
                                        energy(a.change(index_a[s]), u),
                                        energy(b.change(index_b[s]), u),
                                    )
                                    for s in shared
                                ]
                            )
                        )
                    low, high = a.span(clock)
                    apart = (
                        [c for c in np.geomspace(low, high / ratio, points)]
                        if high / ratio > low
                        else []
                    )
                    if apart:
                        values["clock x ratio"].append(
                            np.mean(
                                [
                                    similarity(
                                        energy(a.at(clock, c), u), energy(a.at(clock, c * ratio), u)
                                    )
                                    for c in apart
                                ]
                            )
                        )
                base = {**group, "clock": clock, "lr_a": lr_a, "lr_b": lr_b, "ratio": ratio}
                names = {
                    "equal clock": "equal clock, lr_a vs lr_b",
                    "equal step": "equal step, lr_a vs lr_b",
                    "clock x ratio": "equal lr (lr_a), clock × ratio",
                }
                for key, label in names.items():
                    mean, low, high, n = interval(values[key], bounds=(-1, 1))
                    if n == 0:  # e.g. no step recorded by both runs
                        continue
                    rows.append(
                        {
                            **base,
                            "comparison": label,
                            "n": n,
                            "mean": mean,
                            "low": low,
                            "high": high,
                        }
                    )
            for lr in lrs:
                seeded = sorted(s for (rate, s) in by_lr_seed if rate == lr)
                pairs, runs = [], []
                for s, t in itertools.combinations(seeded, 2):
                    a, b = by_lr_seed[lr, s], by_lr_seed[lr, t]
                    at = _evaluation_points(a, b, clock, points)
                    if len(at):
                        pairs.append(
                            np.mean(
                                [
                                    similarity(energy(a.at(clock, c), u), energy(b.at(clock, c), u))
                                    for c in at
                                ]
                            )
                        )
                        runs.append((a.name, b.name))
                mean, low, high, n = interval_over_runs(pairs, runs, bounds=(-1, 1))
                if n == 0:
                    continue
                rows.append(
                    {
                        **group,
                        "clock": clock,
                        "lr_a": lr,
                        "lr_b": lr,
                        "ratio": 1.0,
                        "comparison": "seeds, equal lr and clock",
                        "n": n,
                        "mean": mean,
                        "low": low,
                        "high": high,
                    }
                )
    return pd.DataFrame(rows)


def twins(trajectories, records: pd.DataFrame, basis: dict) -> pd.DataFrame:
    """Every pair of runs of one group and seed at two learning rates, at every lr x step value
    both recorded on their grids: the profile correlation and each run's fitted tau (by r and
    by log-RMSE) side by side, e.g. a run at the paper's own lr and its twin at a larger one."""
    rows = []
    if records.empty:
        return pd.DataFrame(columns=TWIN_COLUMNS)
    grid = records[records["on_grid"]].set_index(["run", "step"])
    groups: dict[tuple, list[Trajectory]] = {}
    for path in trajectories:
        groups.setdefault((tuple(path.group.items()), path.seed), []).append(path)
    for (group_items, seed), members in groups.items():
        for a, b in itertools.combinations(sorted(members, key=lambda p: p.lr), 2):
            if a.lr == b.lr or not a.grid:
                continue
            for c in _evaluation_points(a, b, "lr_steps", 0):
                steps = (max(1, round(c / a.lr)), max(1, round(c / b.lr)))
                if (a.name, steps[0]) not in grid.index or (b.name, steps[1]) not in grid.index:
                    continue
                fa, fb = grid.loc[(a.name, steps[0])], grid.loc[(b.name, steps[1])]
                u = basis[stats_key(a.group)]
                rows.append(
                    {
                        **dict(group_items),
                        "seed": seed,
                        "lr_steps": float(c),
                        "run_a": a.name,
                        "lr_a": a.lr,
                        "step_a": steps[0],
                        "run_b": b.name,
                        "lr_b": b.lr,
                        "step_b": steps[1],
                        "correlation": similarity(
                            energy(a.change(int(np.flatnonzero(a.steps == steps[0])[0])), u),
                            energy(b.change(int(np.flatnonzero(b.steps == steps[1])[0])), u),
                        ),
                        **{
                            f"{column}_{side}": float(frame[column])
                            for side, frame in (("a", fa), ("b", fb))
                            for column in TWIN_FITS
                        },
                    }
                )
    # a grid of one learning rate has no twins: the table keeps its header
    return pd.DataFrame(rows, columns=TWIN_COLUMNS)


def linear_trajectories(
    average, settings: dict, system: str, dataset: str, seed: int = 0
) -> list[Trajectory]:
    """The theory's linear CNN on the (N, d) average patches `average`, trained by full-batch
    gradient descent from a small init with random +-1 labels: per seed, `runs` label draws
    (their root-mean-square profile is the measured one) at each step size `fraction` x the
    largest stable one, recorded where eta K a_max t (a_max the top eigenvalue of A) takes each
    value of `x`, i.e. at equal eta t for every step size. The weights at a record are gradient
    descent's exact solution (firstlayer.theory.linear_cnn: the same numbers as stepping)."""
    from firstlayer.theory.linear_cnn import Moments, growth, random_sign_labels, stable_eta

    average = np.asarray(average, np.float64)
    moments = Moments.of(average)
    filters, runs = settings["filters"], settings["runs"]
    a, vectors = np.linalg.eigh(moments.A)
    grid = tuple(float(x) / (filters * float(a[-1])) for x in settings["x"])
    out = []
    for offset in range(settings["seeds"]):
        labels = random_sign_labels(runs, len(average), seed + 1000 + offset)
        init = np.random.default_rng(seed + 2000 + offset).normal(
            0, settings["init_std"], (runs, filters, average.shape[1])
        )
        # every filter moves by G(t) (b_r - A s_r(0)), in A's eigenbasis
        target = (labels @ average / len(average) - init.sum(axis=1) @ moments.A) @ vectors
        for fraction in settings["fractions"]:
            eta = stable_eta(moments, filters, fraction)
            steps = np.array([0, *sorted({max(1, round(c / eta)) for c in grid})])
            changes = [(target * growth(a, eta, t, filters)) @ vectors.T for t in steps]
            weights = init[None] + np.stack(changes)[:, :, None, :]
            out.append(
                Trajectory(
                    f"linear CNN, {system}, seed {offset}, fraction {fraction:g}",
                    {
                        "system": f"linear CNN, {system}",
                        "dataset": dataset,
                        "arch": "linear",
                        "first_width": filters,
                        "width": 0.0,  # no hidden layers
                        "labels": "random",
                        "inputs": "none",
                        "optimizer": "gd",  # full-batch gradient descent
                        "augment": "none",
                    },
                    offset,
                    eta,
                    steps,
                    weights,
                    init,
                    {"lr_steps": eta * steps.astype(np.float64)},
                    grid,
                    0,
                    {"fraction": fraction},
                )
            )
    return out


def clock_study(run_paths, stats_paths, feature_paths, settings: dict, eta: float, tau_range):
    """Rule `clock`: {table name: table} (records, slopes, collapse) for the trained runs in
    `run_paths` and the linear-CNN references on synthetic independent patches and on each
    dataset's own average patches (`settings`: theory.clock with the linear CNN's filters, init
    and synthetic-data settings)."""
    from pathlib import Path

    from firstlayer.patches.features import average_patches, read_image_features
    from firstlayer.patches.stats import read_stats_files
    from firstlayer.theory.linear_cnn import tiled_images
    from firstlayer.training.run import read_run

    stats = read_stats_files(stats_paths)  # {(dataset, k): statistics}
    features = {}  # {(dataset, k): image features}
    for path in feature_paths:
        data = read_image_features(path)
        features[Path(path).parent.name, data["k"]] = data
    trajectories = [from_run(Path(path).stem, read_run(path)) for path in run_paths]
    print(f"{len(trajectories)} trained runs at {len({t.lr for t in trajectories})} learning rates")
    chosen = {}  # (dataset, arch): (dataset, k) of the statistics its profiles are on
    for path in trajectories:
        dataset, arch = stats_key(path.group)
        chosen[dataset, arch] = (dataset, first_layer(arch).k)
    for dataset in sorted({t.group["dataset"] for t in trajectories}):
        # the reference on the theory's patches of the dataset (3x3 where there are several)
        k = min((k for d, k in features if d == dataset), key=lambda k: (k != 3, k))
        data = stats[dataset, k]
        chosen[dataset, "linear"] = (dataset, k)
        synthetic = tiled_images(
            settings["synthetic_images"],
            data.covariance,
            data.channels,
            data.k,
            settings["tiles"],
            settings["seed"],
        )
        references = [
            ("synthetic independent patches", average_patches(synthetic, data.k, stride=data.k)),
            (f"{dataset} patches", features[dataset, k]["average_patches"]),
        ]
        for system, average in references:
            print(f"linear CNN on {system}: {len(average)} images")
            trajectories += linear_trajectories(
                average, settings, system, dataset, settings["seed"]
            )
    lambdas = {key: stats[where].lambdas for key, where in chosen.items()}
    basis = {key: stats[where].eigenvectors for key, where in chosen.items()}
    records = fit_records(trajectories, lambdas, basis, eta, tau_range)
    for path in trajectories:
        if path.group["system"] == "trained" and not on_grid(path).any():
            print(
                f"{path.name}: none of its record_lr_steps lies within its {path.steps.max()} "
                f"steps (lr x steps {path.lr * path.steps.max():g}): no record for the slopes"
            )
    table = slopes(records)
    print(table.to_string(index=False))
    trained = [path for path in trajectories if path.group["system"] == "trained"]
    return {
        "records": records,
        "slopes": table,
        "collapse": collapse(trajectories, basis),
        "twins": twins(trained, records, basis),
    }
