"""The paper's numbers beside this project's, generated from committed result tables: the block
between `results:paper:begin` and `results:paper:end` of docs/results.md (written by
`firstlayer.report.publish`). Every number
on our side is read from a table the workflow wrote (copied under docs/results/{set}/); a
missing table leaves its row saying which target produces it. Means carry a 95% t interval
over distinct runs (or pairs) when there are at least two, and n always.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from firstlayer.intervals import with_interval
from firstlayer.theory.nulls import FAMILY_LABELS


def _read(root: Path, name: str) -> pd.DataFrame | None:
    path = root / name
    # label settings stay text ("true", not the boolean True)
    return pd.read_csv(path, dtype={"labels": str}) if path.is_file() else None


def _pm(mean, std, n=2) -> str:
    """mean ± std, or the mean alone when it comes from a single value."""
    return f"{mean:.3f}" if n < 2 else f"{mean:.3f} ± {std:.3f}"


def _ci(row, stem: str) -> str:
    """'mean [low, high] (n=…)' from a table row's {stem}_mean/_low/_high and n."""
    n = int(row["n"])
    return (
        f"{with_interval(row[f'{stem}_mean'], row[f'{stem}_low'], row[f'{stem}_high'], n)} (n={n})"
    )


def scale(root: Path, result_set: str) -> str:
    """One line describing the runs of a result set, from its metrics table."""
    metrics = _read(root, f"{result_set}/metrics.csv")
    if metrics is None:
        return "—"
    runs = metrics.drop_duplicates("run")
    arch = "/".join(sorted(runs["arch"].unique()))
    widths = "/".join(f"{w:g}" for w in sorted(runs["width"].unique()))
    n_train = runs["n_train"].iloc[0]
    images = "all" if pd.isna(n_train) else f"{int(n_train):,}"
    return (
        f"{arch}, hidden width x{widths}, {images} CIFAR-10 images (JPEG copy), "
        f"{int(runs['epochs'].max())} epochs, {runs['seed'].nunique()} seeds, CPU"
    )


def consistency(root, result_set, comparison):
    table = _read(root, f"{result_set}/tables.csv")
    if table is None:
        return None
    row = table[(table["comparison"] == comparison) & (table["dataset"] == "cifar10")]
    if row.empty:
        return None
    row = row.iloc[0]
    if "low" in row and int(row["n"]) >= 2:
        spread = f"± {row['std']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"
        return f"{row['mean']:.3f} {spread} (n={row['n']})"
    return f"{_pm(row['mean'], row['std'], int(row['n']))} (n={row['n']})"


def _table3_row(root, result_set, network, labels="true", inputs="none"):
    table = _read(root, f"{result_set}/table3.csv")
    if table is None:
        return None
    rows = table[
        (table["network"] == network)
        & (table["labels"] == labels)
        & (table["dataset"] == "cifar10")
    ]
    if "inputs" in rows and network != "random init":
        rows = rows[rows["inputs"] == inputs]
    return None if rows.empty else rows.iloc[0]


def fit(root, result_set, network, labels="true", column="formula"):
    row = _table3_row(root, result_set, network, labels)
    if row is None or f"{column}_mean" not in row:
        return None
    if f"{column}_low" not in row:  # a table written before intervals: mean ± std
        return f"{_pm(row[f'{column}_mean'], row[f'{column}_std'], int(row['n']))} (n={row['n']})"
    return _ci(row, column)


def against_nulls(row) -> str:
    """The best null families (by r and by log-RMSE), the differences with their intervals and
    the verdicts of one Table 3 row."""
    family = FAMILY_LABELS.get(row["best_null"], row["best_null"])
    text = (
        f"best null by r {family}: {_ci(row, 'best_null')}; Δr = {_ci(row, 'delta_r')}: "
        f"{row['verdict_r']}"
    )
    if "best_null_log" in row and isinstance(row["best_null_log"], str):
        by_log = FAMILY_LABELS.get(row["best_null_log"], row["best_null_log"])
        text += (
            f"; log-RMSE formula {_ci(row, 'formula_log_rmse')} vs best null {by_log} "
            f"{_ci(row, 'best_null_log_rmse')}: {row['verdict_log_rmse']}"
        )
    else:  # a table written before the log-RMSE fits
        text += f" (log-RMSE: {row['verdict_log_rmse']})"
    return text


def nulls(root, result_set, network, labels="true"):
    row = _table3_row(root, result_set, network, labels)
    return None if row is None or "best_null" not in row else against_nulls(row)


def pretrained(root, result_set, group="trained on ImageNet-1k"):
    table = _read(root, f"{result_set}/k3_table3.csv")
    if table is None:
        return None
    rows = table[table["network"] == group]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return (
        f"{_ci(row, 'formula')}; paper's τ range {_ci(row, 'paper')}; {against_nulls(row)} "
        f"({row['layers']})"
    )


def heldout(root, result_set):
    table = _read(root, f"{result_set}/heldout_rescaling.csv")
    if table is None or table.empty:
        return None
    parts = []
    for row in table.to_dict("records"):
        n = int(row["n"])

        def value(stem, row=row, n=n):
            return with_interval(row[f"{stem}_mean"], row[f"{stem}_low"], row[f"{stem}_high"], n)

        text = (
            f"{row['manipulation']} ({row['labels']} labels, n={n}): measured e_N ratio "
            f"{value('learned_ratio')}, formula {value('formula_ratio')}, best null "
            f"{value('null_ratio')} → {row['verdict_ratio']}; r(prediction, run) formula "
            f"{value('formula_corr_scaled')} vs null {value('null_corr_scaled')} → "
            f"{row['verdict_profile']}"
        )
        if "formula_ratio_measured_mean" in row:
            text += (
                f"; from the measured λ (λ_N x {value('lambda_ratio_measured')}): formula "
                f"{value('formula_ratio_measured')} → {row['verdict_ratio_measured']}, "
                f"r {value('formula_corr_scaled_measured')} vs null "
                f"{value('null_corr_scaled_measured')} → {row['verdict_profile_measured']}"
            )
        parts.append(text)
    return "; ".join(parts)


def across_datasets(root, result_set):
    table = _read(root, f"{result_set}/cross_dataset_summary.csv")
    if table is None or table.empty:
        return None
    parts = []
    for row in table.to_dict("records"):
        n = int(row["n"])
        values = {
            stem: with_interval(row[f"{stem}_mean"], row[f"{stem}_low"], row[f"{stem}_high"], n)
            for stem in ("predicted", "in_sample", "null_predicted")
        }
        parts.append(
            f"{row['source']} → {row['target']} (n={n}): predicted {values['predicted']}, "
            f"in-sample {values['in_sample']}, best null predicted {values['null_predicted']} "
            f"→ {row['verdict']}"
        )
    return "; ".join(parts)


def autocorrelation(root, result_set, prefix, distance=10):
    table = _read(root, f"{result_set}/whitening.csv")
    if table is None:
        return None
    rows = table[table["input"].str.startswith(prefix) & (table["distance"] == distance)]
    if rows.empty:
        return None
    row = rows.iloc[0]  # mean ± std over the layers (runs, banks) of that input, and their n
    n = int(row["n"]) if "n" in row else 1
    return f"{_pm(row['mean'], row['std'], n)} (n={n})"


def linear_cnn(root, result_set, data, column):
    table = _read(root, f"{result_set}/linear_cnn.csv")
    if table is None:
        return None
    rows = table[table["data"].str.endswith(data)]
    if rows.empty:
        return None
    low, high = rows[column].min(), rows[column].max()
    return f"{low:.3f}–{high:.3f} (t = {', '.join(str(s) for s in rows['steps'])})"


def manipulation(root, result_set, startswith):
    table = _read(root, f"{result_set}/manipulations_summary.csv")
    if table is None:
        return None
    rows = table[table["comparison"].str.startswith(startswith)]
    if rows.empty:
        return None
    if "low" not in rows:  # tables written before intervals: mean ± std
        return "; ".join(
            f"{r.comparison.split(' vs ')[0]}: {_pm(r.mean, r.std, r.n)} (n={r.n})"
            for r in rows.itertuples()
        )
    return "; ".join(
        f"{r.comparison.split(' vs ')[0]}: {with_interval(r.mean, r.low, r.high, r.n)} (n={r.n})"
        for r in rows.itertuples()
    )


IMAGES = "10,000 CIFAR-10 training images (JPEG copy)"
LINEAR = "linear CNN, 8 filters, 64 label draws, " + IMAGES
# (quantity, paper value, paper scale, result set, lookup, target that produces it[, our scale
# when it is not that of the result set's trained runs])
PAPER_SCALE = "VGG11 full width, all 50,000 CIFAR-10 images, 30 epochs (100 random labels), GPU"
ROWS = [
    (
        "profile correlation across seeds",
        "0.97–0.99",
        PAPER_SCALE,
        "default",
        lambda r, s: consistency(r, s, "across seeds"),
        "fig_tables",
    ),
    (
        "across first-layer widths",
        "0.98",
        PAPER_SCALE,
        "extended",
        lambda r, s: consistency(r, s, "across first-layer widths"),
        "fig_tables",
    ),
    (
        "trained vs init",
        "−0.13 ± 0.18",
        PAPER_SCALE,
        "default",
        lambda r, s: consistency(r, s, "trained vs init"),
        "fig_tables",
    ),
    (
        "VGG vs ResNet18",
        "0.80–0.92",
        PAPER_SCALE,
        "extended",
        lambda r, s: consistency(r, s, "VGG vs ResNet"),
        "fig_tables",
    ),
    (
        "true vs random labels",
        "0.90",
        PAPER_SCALE,
        "default",
        lambda r, s: consistency(r, s, "true vs random labels"),
        "fig_tables",
    ),
    (
        "formula fit, trained VGG11",
        "0.94 ± 0.01",
        PAPER_SCALE,
        "default",
        lambda r, s: fit(r, s, "vgg11"),
        "fig_fits",
    ),
    (
        "formula fit, trained VGG11, the paper's τ range",
        "0.94 ± 0.01",
        PAPER_SCALE,
        "default",
        lambda r, s: fit(r, s, "vgg11", column="paper"),
        "fig_fits",
    ),
    (
        "trained VGG11: formula vs one-parameter null families",
        "— (no null model)",
        "—",
        "default",
        lambda r, s: nulls(r, s, "vgg11"),
        "fig_fits",
    ),
    (
        "formula fit, random init",
        "0.1 ± 0.15",
        "VGG11 init",
        "default",
        lambda r, s: fit(r, s, "random init", "-"),
        "fig_fits",
    ),
    (
        "random init: formula vs null families",
        "—",
        "—",
        "default",
        lambda r, s: nulls(r, s, "random init", "-"),
        "fig_fits",
    ),
    (
        "formula fit, ImageNet-trained first layers",
        "0.90",
        "torchvision ImageNet models",
        "pretrained",
        lambda r, s: pretrained(r, s),
        "pretrained",
        "ImageNet-trained 3x3 stems named in the cell, on 10,000 CIFAR-10 images (JPEG copy)",
    ),
    (
        "held-out: component 5 rescaled, τ from the same seed's unscaled run",
        "profiles move as the formula with λ_t → αλ_t predicts (Fig. 8b, 18)",
        PAPER_SCALE,
        "default",
        lambda r, s: heldout(r, s),
        "fig_manipulations",
    ),
    (
        "held-out: τ fitted on one dataset predicts another from its own λ",
        "—",
        "—",
        "extended",
        lambda r, s: across_datasets(r, s),
        "fig_fits",
    ),
    (
        "autocorrelation at 10 px, RGB",
        "> 0.5",
        "CIFAR-10",
        "default",
        lambda r, s: autocorrelation(r, s, "RGB"),
        "fig_whitening",
        "1,000 of " + IMAGES,
    ),
    (
        "autocorrelation at 10 px, learned layer",
        "≈ 0.2",
        PAPER_SCALE,
        "default",
        lambda r, s: autocorrelation(r, s, "trained first layer"),
        "fig_whitening",
    ),
    (
        "autocorrelation at 10 px, whitening",
        "0",
        "ideal whitening",
        "default",
        lambda r, s: autocorrelation(r, s, "ideal whitening"),
        "fig_whitening",
        "ZCA of 7x7 patches, 1,000 of " + IMAGES,
    ),
    (
        "decile labels vs random labels",
        "profiles diverge (Fig. 17)",
        PAPER_SCALE,
        "extended",
        lambda r, s: manipulation(r, s, "decile"),
        "fig_manipulations",
    ),
    (
        "beyond the paper: exact linear prediction fit, trained VGG11",
        "—",
        "—",
        "default",
        lambda r, s: fit(r, s, "vgg11", column="exact"),
        "fig_fits",
    ),
    (
        "beyond the paper: linear CNN (random labels) vs exact prediction",
        "—",
        "—",
        "default",
        lambda r, s: linear_cnn(r, s, "cifar10, random labels", "mean_vs_exact"),
        "fig_linear_cnn",
        LINEAR,
    ),
    (
        "beyond the paper: linear CNN (random labels) vs formula, best t",
        "—",
        "—",
        "default",
        lambda r, s: linear_cnn(r, s, "cifar10, random labels", "mean_vs_formula_best_fit"),
        "fig_linear_cnn",
        LINEAR,
    ),
]


def paper_block(root) -> str:
    root = Path(root)
    lines = [
        "<!-- results:paper:begin -->",
        "",
        "Generated by `snakemake publish` (or `python -m firstlayer.report.publish`) from the "
        "committed tables in docs/results; n counts distinct runs (or pairs of them); a mean "
        "from two or more carries its 95% interval [low, high] (t over independent runs; a "
        "jackknife over runs for pairs that share runs; Tables 1-2 rows also ± std), "
        "a single value none.",
        "",
        "| quantity | paper | paper's scale | this project | our scale (result set) |",
        "|---|---|---|---|---|",
    ]
    for quantity, paper, paper_scale, result_set, lookup, target, *own_scale in ROWS:
        ours = lookup(root, result_set) or f"not in the committed results (target `{target}`)"
        our_scale = (
            own_scale[0]
            if own_scale
            else (scale(root, result_set) if result_set != "pretrained" else "—")
        )
        lines.append(
            f"| {quantity} | {paper} | {paper_scale} | {ours} | {our_scale} (`{result_set}`) |"
        )
    return "\n".join(lines + ["", "<!-- results:paper:end -->"])
