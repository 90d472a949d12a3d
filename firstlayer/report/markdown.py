"""Generated blocks of the docs: text between `<!-- results:NAME:begin -->` and `...:end -->`
markers, rewritten from committed tables (never typed in), and the Tables 1-2 block.
"""

from __future__ import annotations

import pandas as pd

# What the paper reports for each comparison (VGG11, CIFAR-10 unless noted), for context.
PAPER = {
    "across seeds": "0.97–0.99",
    "across first-layer widths": "0.98",
    "trained vs init": "−0.13 ± 0.18",
    "VGG vs ResNet": "0.80–0.92",
    "random labels vs init": "—",
    "true vs random labels": "0.90 (CIFAR-100: 0.91)",
}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- results:{name}:begin -->", f"<!-- results:{name}:end -->"


def results_block(tables: pd.DataFrame, source: str, name: str) -> str:
    begin, end = markers(name)
    lines = [
        begin,
        "",
        f"From `{source}` (written by the workflow's `consistency_tables` rule):",
        "",
        "| table | comparison | dataset | correlation, mean ± std [95% interval] "
        "| pairs or runs (n) | paper |",
        "|---|---|---|---|---|---|",
    ]
    for row in tables.itertuples():
        # a spread only where there is more than one pair or run to spread over
        value = f"{row.mean:.3f}"
        if row.n >= 2:
            value += f" ± {row.std:.3f}"
            if "low" in tables:  # tables written before intervals were added have none
                value += f" [{row.low:.3f}, {row.high:.3f}]"
        lines.append(
            f"| {row.table} | {row.comparison} | {row.dataset} | {value} | {row.n} | "
            f"{PAPER.get(row.comparison, '—')} |"
        )
    return "\n".join(lines + ["", end])


def guarantees_block(cases) -> str:
    """The Guarantees table of docs/reliability.md from the bad-input suite's case table: one
    row per case (`kind`, `fault`, `guarantee`, `id` attributes), grouped by kind in order of
    first appearance, with the test that checks it."""
    begin, end = markers("guarantees")
    kinds = list(dict.fromkeys(case.kind for case in cases))
    lines = [
        begin,
        "",
        f"{len(cases)} cases, each run through Snakemake on the tiny workflow by "
        "`tests/test_bad_inputs.py` (generated from its case table):",
        "",
        "| class | fault | what the workflow does | test |",
        "|---|---|---|---|",
    ]
    for kind in kinds:
        for case in (c for c in cases if c.kind == kind):
            lines.append(f"| {kind} | {case.fault} | {case.guarantee} | `{case.id}` |")
    return "\n".join(lines + ["", end])


def replace_block(text: str, block: str, name: str) -> str:
    begin, end = markers(name)
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[:start] + block + text[stop:]


def _cell(row, stem: str) -> str:
    """A table row's {stem}_mean with its interval where the row has one ('—' without a mean)."""
    from firstlayer.intervals import with_interval

    if f"{stem}_mean" not in row:
        return "—"
    nan = float("nan")
    low, high = row.get(f"{stem}_low", nan), row.get(f"{stem}_high", nan)
    return with_interval(row[f"{stem}_mean"], low, high, int(row["n"]))


def _family(key) -> str:
    from firstlayer.theory.nulls import FAMILY_LABELS

    return FAMILY_LABELS.get(key, "—") if isinstance(key, str) else "—"


def _read_table(path):
    return pd.read_csv(path, dtype={"labels": str}) if path.is_file() else None


# The committed result sets of trained runs, in the order the docs show them.
TRAINED_SETS = ("default", "extended", "regime", "paper-core")


def _committed(root, filename: str, sets=TRAINED_SETS):
    """(result set, table) for each committed set whose `filename` has rows."""
    for name in sets:
        table = _read_table(root / name / filename)
        if table is not None and not table.empty:
            yield name, table


def _bound_note(row) -> str:
    """A note where fitted taus sit at a bound of the range (the formula is then lambda^±1)."""
    count = row.get("formula_tau_at_bound", 0)
    count = 0 if count != count else int(count)  # nan in tables without the column
    return f" (τ at a bound in {count} of {row['n']})" if count else ""


def _recipe(row) -> str:
    """'lr 0.1, 15 epochs' for a row of trained runs (tables written before Table 3 split
    recipes have no such columns)."""
    lr, epochs = row.get("lr"), row.get("epochs")
    if lr is None or epochs is None or lr != lr or epochs != epochs:
        return "—"
    return f"lr {lr:g}, {epochs:g} epochs"


def _tau(row) -> str:
    value = row.get("formula_tau_median")
    return "—" if value is None or value != value else f"{value:.3g}"


def table3_block(root) -> str:
    """Table 3 with its null models for every committed result set (docs/results/*/table3.csv
    and the pretrained k*_table3.csv): per group n, the formula's r, the paper-range r, the
    best null by r and Δr, the log-RMSEs and the two verdicts."""
    from pathlib import Path

    root = Path(root)
    begin, end = markers("table3")
    lines = [
        begin,
        "",
        "Generated from the committed `table3.csv` files (`docs/results/<set>/`); n = distinct "
        "runs (or layers); means over n ≥ 2 carry their 95% t interval; Δr = r(formula) − "
        "r(best null by r); Δlog-RMSE = log-RMSE(best null by log-RMSE) − log-RMSE(formula), "
        "each curve fitted at its own best for that measure; a verdict needs the interval of the "
        "difference to exclude 0.",
        "",
        "| set | dataset | network | labels | inputs | recipe | n | formula r | paper-range r "
        "| best null by r | Δr | verdict (r) | formula log-RMSE | best null by log-RMSE "
        "| Δlog-RMSE | verdict (log-RMSE) | median τ̂ |",
        "|---" * 17 + "|",
    ]
    sets = [(name, root / name / "table3.csv") for name in TRAINED_SETS]
    sets += [("pretrained", path) for path in sorted((root / "pretrained").glob("k*_table3.csv"))]
    for name, path in sets:
        table = _read_table(path)
        if table is None:
            continue
        for row in table.to_dict("records"):
            by_log = row.get("best_null_log")
            lines.append(
                f"| {name} | {row.get('dataset', '—')} | {row['network']} | "
                f"{row.get('labels', '—')} | "
                f"{row.get('inputs', '—')} | {_recipe(row)} | {row['n']} | "
                f"{_cell(row, 'formula')} | "
                f"{_cell(row, 'paper')} | "
                f"{_family(row.get('best_null'))} {_cell(row, 'best_null')} | "
                f"{_cell(row, 'delta_r')} | {row.get('verdict_r', '—')} | "
                f"{_cell(row, 'formula_log_rmse')} | "
                f"{_family(by_log)} {_cell(row, 'best_null_log_rmse')} | "
                f"{_cell(row, 'delta_log_rmse')} | {row.get('verdict_log_rmse', '—')}"
                f"{_bound_note(row)} | {_tau(row)} |"
            )
    return "\n".join(lines + ["", end])


def heldout_block(root) -> str:
    """The held-out tests of every committed result set: the rescaled-component prediction
    (heldout_rescaling.csv) and the cross-dataset prediction (cross_dataset_summary.csv)."""
    from pathlib import Path

    root = Path(root)
    begin, end = markers("heldout")
    lines = [begin, ""]
    for name, table in _committed(root, "heldout_rescaling.csv"):
        lines += [
            f"Rescaled component, τ from the same seed's unscaled run, no refit "
            f"(`docs/results/{name}/heldout_rescaling.csv`; n = seeds):",
            "",
            "| set | scaled input | labels | n | measured e_N ratio | formula, λ_N → Aλ_N "
            "| best null | verdict (ratio) | measured λ_N ratio | formula, measured λ "
            "| verdict (ratio, measured λ) | r(formula, run), measured λ | r(best null, run) "
            "| verdict (profile, measured λ) |",
            "|---" * 14 + "|",
        ]
        for row in table.to_dict("records"):
            lines.append(
                f"| {name} | {row['manipulation']} | {row['labels']} | {row['n']} | "
                f"{_cell(row, 'learned_ratio')} | {_cell(row, 'formula_ratio')} | "
                f"{_cell(row, 'null_ratio')} | {row['verdict_ratio']} | "
                f"{_cell(row, 'lambda_ratio_measured')} | {_cell(row, 'formula_ratio_measured')} | "
                f"{row.get('verdict_ratio_measured', '—')} | "
                f"{_cell(row, 'formula_corr_scaled_measured')} | "
                f"{_cell(row, 'null_corr_scaled_measured')} | "
                f"{row.get('verdict_profile_measured', '—')} |"
            )
        lines.append("")
    for name, table in _committed(root, "cross_dataset_summary.csv"):
        lines += [
            f"Another dataset, τ fitted on the source's runs predicts the target's profiles from "
            f"the target's own λ, no refit (`docs/results/{name}/cross_dataset_summary.csv`; "
            f"n = target runs):",
            "",
            "| set | source → target | network | labels | n | predicted r | in-sample r "
            "| best null's predicted r | verdict |",
            "|---" * 9 + "|",
        ]
        for row in table.to_dict("records"):
            lines.append(
                f"| {name} | {row['source']} → {row['target']} | {row['network']} | "
                f"{row['labels']} | {row['n']} | {_cell(row, 'predicted')} | "
                f"{_cell(row, 'in_sample')} | {_cell(row, 'null_predicted')} | {row['verdict']} |"
            )
        lines.append("")
    return "\n".join(lines + [end])


def findings_block(root) -> str:
    """The README's few lines on what the theory tests found, from the committed tables: the
    formula against the best null family (trained VGG11, random inits, ImageNet-trained first
    layers), the held-out rescaling and the cross-dataset prediction."""
    from pathlib import Path

    root = Path(root)
    begin, end = markers("findings")
    lines = [begin, ""]

    def versus(row) -> str:
        return (
            f"formula r {_cell(row, 'formula')} vs best null {_family(row.get('best_null'))} "
            f"{_cell(row, 'best_null')}: **{row.get('verdict_r', '—')}** by r, "
            f"**{row.get('verdict_log_rmse', '—')}** by log-RMSE (n = {row['n']})"
        )

    # Table 3 from the richest committed set that has it (more distinct runs per row)
    tables = [
        (n, t[t["dataset"] == "cifar10"])
        for n, t in _committed(root, "table3.csv", ("extended", "default"))
    ]
    if tables:
        name, table = tables[0]
        for network, labels, text in (
            ("vgg11", "true", "Trained VGG11, true labels"),
            ("vgg11", "random", "Trained VGG11, random labels"),
            ("random init", "-", "Random initialisations"),
        ):
            rows = table[(table["network"] == network) & (table["labels"] == labels)]
            rows = rows[rows["inputs"].isin(["none", "-"])]
            if len(rows):
                lines.append(f"- {text} (`{name}`): {versus(rows.iloc[0])}.")
    for path in sorted((root / "pretrained").glob("k*_table3.csv")):
        rows = _read_table(path)
        rows = rows[rows["network"].str.startswith("trained on ImageNet")]
        if len(rows):
            row = rows.iloc[0]
            lines.append(
                f"- ImageNet-trained first layers ({row['layers']}; paper ≈ 0.90): {versus(row)}."
            )
    # the held-out tests from the richest committed set that has them
    held = list(_committed(root, "heldout_rescaling.csv", ("extended", "default")))
    if held:
        name, table = held[0]
        parts = [
            f"{row['manipulation']} ({row['labels']} labels) measured e_N ratio "
            f"{_cell(row, 'learned_ratio')}, formula {_cell(row, 'formula_ratio_measured')} "
            f"(**{row.get('verdict_ratio_measured', '—')}**)"
            for row in table.to_dict("records")
        ]
        lines.append(
            f"- Held-out rescaled component (`{name}`, τ from the unscaled run, measured λ, n = "
            f"seeds): " + "; ".join(parts) + "."
        )
    for name, across in _committed(root, "cross_dataset_summary.csv"):
        parts = [
            f"{row['source']} → {row['target']} predicted r {_cell(row, 'predicted')} "
            f"(in-sample {_cell(row, 'in_sample')}, best null {_cell(row, 'null_predicted')}: "
            f"**{row['verdict']}**, n = {row['n']})"
            for row in across.to_dict("records")
        ]
        lines.append(f"- Cross-dataset prediction (`{name}`): " + "; ".join(parts) + ".")
    return "\n".join(lines + ["", end])
