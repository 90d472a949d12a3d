"""The clock test's generated blocks of docs/results.md (from the committed clock.csv,
clock_collapse.csv, clock_twins.csv, clock_fits.csv and metrics.csv of a result set): the slopes
of the fitted tau on the step, the learning rate and the normalised clock; the profiles' collapse;
what a run's filters and accuracy did at equal lr x step; and runs at two learning rates compared
at equal lr x step (the paper's own recipe beside its twin)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from firstlayer.intervals import with_interval

CLOCK_SETS = ("clock", "regime")
CLOCK_NAMES = {"lr_steps": "lr × step", "normalised": "Σ lr/‖w‖²"}


def _read(path: Path):
    return pd.read_csv(path, dtype={"labels": str}) if path.is_file() else None


def _ci(row, stem: str) -> str:
    return with_interval(
        row[f"{stem}_mean"], row[f"{stem}_low"], row[f"{stem}_high"], int(row["n"]), 2
    )


def _group(row) -> str:
    text = f"{row['labels']} labels"
    if row.get("inputs", "none") != "none":
        text += f", {row['inputs']}"
    return text


def slopes_block(root, sets=CLOCK_SETS) -> list[str]:
    lines = [
        "Slopes of log τ̂ (the formula's τ fitted to a profile) per seed, by least squares over "
        "the records: with lr × step, log τ̂ = c + a log t + b log lr (the clock predicts a = b "
        "= 1); with the normalised clock C = Σ lr/‖w‖², log τ̂ = c + a log C + b log lr (predicts "
        "a = 1, b = 0). `pooled`: every learning rate over the lr × step span all of them reach; "
        "`lr x`: one learning rate over its own records (a only). Means over seeds with 95% t "
        "intervals, n = seeds; records whose τ̂ sits at a bound of its range are left out "
        "(counted).",
        "",
        "| set | system | labels | clock | scope | n | a, τ by r | b, τ by r | a, τ by log-RMSE "
        "| b, τ by log-RMSE | predicted a, b | records (τ at a bound) |",
        "|---" * 12 + "|",
    ]
    for name in sets:
        table = _read(Path(root) / name / "clock.csv")
        if table is None:
            continue
        keys = ["system", "labels", "inputs", "clock", "scope"]
        for _, frame in table.groupby(keys, sort=False):
            by = frame.set_index("tau_fit")
            if not {"formula_tau", "formula_log_tau"} <= set(by.index):
                continue
            r, log = by.loc["formula_tau"], by.loc["formula_log_tau"]
            pooled = r["scope"] == "pooled"
            predicted = (
                f"{r['predicted_a']:g}, {r['predicted_b']:g}"
                if pooled
                else f"{r['predicted_a']:g}, —"
            )
            lines.append(
                f"| {name} | {r['system']} | {_group(r)} | {CLOCK_NAMES[r['clock']]} | "
                f"{r['scope']} | {r['n']} | {_ci(r, 'a')} | {_ci(r, 'b') if pooled else '—'} | "
                f"{_ci(log, 'a')} | {_ci(log, 'b') if pooled else '—'} | {predicted} | "
                f"{r['records']} ({r['at_bound']}) / {log['records']} ({log['at_bound']}) |"
            )
    return lines


def collapse_block(root, sets=CLOCK_SETS) -> list[str]:
    lines = [
        "Does the clock collapse the learning rates? Profile correlations of two learning rates at "
        "equal clock, beside the same two runs at equal step, one run against itself at clocks "
        "the learning-rate ratio apart, and two seeds at equal learning rate and clock (the "
        "ceiling seed-to-seed noise leaves); each a mean over the clock values compared, then "
        "over seeds (95% t interval; n = seeds, or pairs of seeds).",
        "",
        "| set | system | clock | lr_a → lr_b | equal clock | equal step | equal lr_a, clock × "
        "ratio | seeds at lr_a, equal clock |",
        "|---" * 8 + "|",
    ]
    for name in sets:
        table = _read(Path(root) / name / "clock_collapse.csv")
        if table is None:
            continue
        for (system, clock), frame in table.groupby(["system", "clock"], sort=False):
            ceiling = frame[frame["comparison"].str.startswith("seeds")].set_index("lr_a")
            pairs = frame[~frame["comparison"].str.startswith("seeds")]
            for (lr_a, lr_b), pair in pairs.groupby(["lr_a", "lr_b"], sort=True):
                cells = {row["comparison"].split(",")[0]: row for row in pair.to_dict("records")}

                def cell(key, cells=cells):
                    row = cells.get(key)
                    return f"{_ci_plain(row)} (n={row['n']})" if row is not None else "—"

                seeds = ceiling.loc[lr_a] if lr_a in ceiling.index else None
                lines.append(
                    f"| {name} | {system} | {CLOCK_NAMES[clock]} | {lr_a:.3g} → {lr_b:.3g} | "
                    f"{cell('equal clock')} | {cell('equal step')} | {cell('equal lr (lr_a)')} | "
                    + (f"{_ci_plain(seeds)} (n={seeds['n']})" if seeds is not None else "—")
                    + " |"
                )
    return lines


def _ci_plain(row) -> str:
    return with_interval(row["mean"], row["low"], row["high"], int(row["n"]))


def drift_block(root, sets=CLOCK_SETS) -> list[str]:
    """Per learning rate, from the trained runs' records and metrics: how far lr x step went,
    how much the filters' norm changed (the normalised clock's only difference from lr x step),
    and the training accuracy at the end."""
    lines = [
        "The trained runs at the end of their records, per learning rate (median over seeds; "
        "n = seeds): a filter's norm barely moves, so the normalised clock is lr × step over a "
        "constant, and equal lr × step is not equal progress in accuracy.",
        "",
        "| set | labels | lr | n | steps | lr × step | change of the mean filter norm | train "
        "accuracy | test accuracy |",
        "|---" * 9 + "|",
    ]
    for name in sets:
        records = _read(Path(root) / name / "clock_fits.csv")
        metrics = _read(Path(root) / name / "metrics.csv")
        if records is None or metrics is None or "filter_norm2_mean" not in records:
            continue
        trained = records[records["system"] == "trained"].sort_values("step")
        ends = trained.groupby("run").agg(
            first=("filter_norm2_mean", "first"), last=("filter_norm2_mean", "last")
        )
        ends["change"] = (ends["last"] / ends["first"]) ** 0.5 - 1
        final = metrics.sort_values("epoch").groupby("run").last()
        runs = final.join(ends, how="inner")
        for (labels, inputs, lr), frame in runs.groupby(["labels", "inputs", "lr"], sort=True):
            group = f"{labels}" + ("" if inputs == "none" else f", {inputs}")
            lines.append(
                f"| {name} | {group} | {lr:g} | {len(frame)} | {frame['step'].median():.0f} | "
                f"{(lr * frame['step']).median():.3g} | {100 * frame['change'].median():+.2f}% | "
                f"{frame['train_acc'].median():.3f} | {frame['test_acc'].median():.3f} |"
            )
    return lines


def _taus(row, column: str) -> str:
    """'a / b' fitted taus, a tau at a bound of its range starred."""

    def one(side):
        bound = bool(row.get(f"{column}_at_bound_{side}", False))
        return f"{row[f'{column}_{side}']:.3g}" + ("*" if bound else "")

    return f"{one('a')} / {one('b')}"


def twins_block(root, sets=CLOCK_SETS) -> list[str]:
    """Runs of one seed at two learning rates at their largest common lr x step value."""
    lines = [
        "Runs of one seed at two learning rates, compared at the largest lr × step both "
        "recorded: profile correlation and each run's fitted τ (single runs: no interval; * a τ "
        "at a bound of its range, where the formula is λ^±1).",
        "",
        "| set | labels | seed | lr × step | lr_a (steps) | lr_b (steps) | r(profiles) | τ̂ by r, "
        "a / b | τ̂ by log-RMSE, a / b |",
        "|---" * 9 + "|",
    ]
    for name in sets:
        table = _read(Path(root) / name / "clock_twins.csv")
        if table is None or table.empty:
            continue
        last = table.loc[
            table.groupby(["labels", "inputs", "seed", "lr_a", "lr_b"])["lr_steps"].idxmax()
        ]
        if name == "clock":  # the clock set's runs stop at its last value; one row per lr pair
            last = last[last["seed"] == last["seed"].min()]
        for row in last.to_dict("records"):
            lines.append(
                f"| {name} | {_group(row)} | {row['seed']} | {row['lr_steps']:g} | "
                f"{row['lr_a']:g} ({row['step_a']}) | {row['lr_b']:g} ({row['step_b']}) | "
                f"{row['correlation']:.3f} | {_taus(row, 'formula_tau')} | "
                f"{_taus(row, 'formula_log_tau')} |"
            )
    return lines


def clock_block(root) -> str:
    """The block `clock` of docs/results.md: every table above from the committed sets."""
    from firstlayer.report.markdown import markers

    begin, end = markers("clock")
    root = Path(root)
    if not any((root / name / "clock.csv").is_file() for name in CLOCK_SETS):
        return "\n".join([begin, "", "No committed clock test yet (`config/clock.yaml`).", "", end])
    parts = [slopes_block(root), collapse_block(root), drift_block(root), twins_block(root)]
    lines = [begin, ""]
    for part in parts:
        lines += part + [""]
    return "\n".join(lines + [end])
