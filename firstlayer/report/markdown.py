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
    extra = [c for c in ("optimizer", "augment", "first_layer") if c in tables.columns]
    for row in tables.itertuples():
        # a spread only where there is more than one pair or run to spread over
        value = f"{row.mean:.3f}"
        dataset = ", ".join([row.dataset, *(str(getattr(row, c)) for c in extra)])
        if row.n >= 2:
            value += f" ± {row.std:.3f}"
            if "low" in tables:  # tables written before intervals were added have none
                value += f" [{row.low:.3f}, {row.high:.3f}]"
        lines.append(
            f"| {row.table} | {row.comparison} | {dataset} | {value} | {row.n} | "
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
        f"{len(cases)} cases, each run through Snakemake on the tiny workflow (or through the "
        "command line, for the command-line tools) by `tests/test_bad_inputs.py` (generated from "
        "its case table):",
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
    sets = [(name, root / name / "table3.csv") for name in (*TRAINED_SETS, *RECIPE_SETS)]
    sets += [("pretrained", path) for path in sorted((root / "pretrained").glob("k*_table3.csv"))]
    for name, path in sets:
        table = _read_table(path)
        if table is None:
            continue
        for row in table.to_dict("records"):
            by_log = row.get("best_null_log")
            recipe = [str(row[c]) for c in ("optimizer", "augment") if c in row]
            network = row["network"] + (
                f" ({', '.join(recipe)})" if recipe and recipe[0] != "nan" else ""
            )
            lines.append(
                f"| {name} | {row.get('dataset', '—')} | {network} | "
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
    """The README's few lines on what the theory tests found, from the committed tables, the
    paper's regime first: Table 3 at the paper's own scale (a GPU set) and at its lr x steps on a
    CPU with the held-out test there, the run at the paper's own recipe beside its twin, the
    clock test; AdamW against SGD beyond the paper; then the CPU-scale sets (trained VGG11,
    ImageNet-trained first layers, held-out rescaling). docs/results.md has the rest (random
    inits, the cross-dataset prediction)."""
    from pathlib import Path

    from firstlayer.theory.nulls import paper_tau_range

    root = Path(root)
    begin, end = markers("findings")
    lines = [begin, ""]
    low, high = paper_tau_range(30 * 30)  # CIFAR's 32 x 32 images, 3 x 3 patches

    def versus(row) -> str:
        return (
            f"formula r {_cell(row, 'formula')} vs best null {_family(row.get('best_null'))} "
            f"{_cell(row, 'best_null')}: **{row.get('verdict_r', '—')}** by r, "
            f"**{row.get('verdict_log_rmse', '—')}** by log-RMSE (n = {row['n']})"
        )

    def held_out(name, table) -> str:
        parts = [
            f"{row['manipulation']} ({row['labels']} labels) measured e_N ratio "
            f"{_cell(row, 'learned_ratio')}, formula {_cell(row, 'formula_ratio_measured')}, "
            f"best null {_cell(row, 'null_ratio_measured')} "
            f"(**{row.get('verdict_ratio_measured', '—')}**)"
            for row in table.to_dict("records")
        ]
        return (
            f"- Held-out rescaled component (`{name}`, τ from the unscaled run, measured λ, n = "
            f"seeds): " + "; ".join(parts) + "."
        )

    for name in ("paper-core", "regime"):  # the paper's regime leads
        table = _read_table(root / name / "table3.csv")
        if table is None:
            continue
        learned = table[(table["dataset"] == "cifar10") & table["network"].str.startswith("vgg")]
        for row in learned[learned["inputs"] == "none"].to_dict("records"):
            lines.append(
                f"- Paper's regime (`{name}`), VGG11 {row['labels']} labels, {_recipe(row)}: "
                f"{versus(row)}; paper-range r {_cell(row, 'paper')}; median fitted τ "
                f"{_tau(row)} against the authors' range {low:.2f}–{high:.0f}."
            )
        heldout = _read_table(root / name / "heldout_rescaling.csv")
        if heldout is not None and len(heldout):
            lines.append(held_out(name, heldout))
        twins = _read_table(root / name / "clock_twins.csv")
        if twins is not None and len(twins):
            row = twins.loc[twins["lr_steps"].idxmax()]
            lines.append(
                f"- The paper's own lr {row['lr_a']:g} for {row['step_a']:,} steps beside lr "
                f"{row['lr_b']:g} for {row['step_b']:,} (`{name}`, same lr × steps "
                f"{row['lr_steps']:g}, one seed): profiles correlate {row['correlation']:.3f}; "
                f"fitted τ {row['formula_tau_a']:.3g} against {row['formula_tau_b']:.3g}."
            )
    clock = _read_table(root / "clock" / "clock.csv")
    if clock is not None:
        pooled = clock[
            (clock["scope"] == "pooled")
            & (clock["clock"] == "lr_steps")
            & (clock["tau_fit"] == "formula_tau")
        ].set_index("system")
        parts = []
        for system, text in (
            ("trained", "trained VGG11"),
            ("linear CNN, synthetic independent patches", "the linear CNN on independent patches"),
            ("linear CNN, cifar10 patches", "the linear CNN on CIFAR-10's patches"),
        ):
            if system in pooled.index:
                row = pooled.loc[system]
                parts.append(
                    f"{text} a = {_cell(row, 'a')}, b = {_cell(row, 'b')} (n = {row['n']})"
                )
        if parts:
            lines.append(
                "- The clock (`clock`; fitted τ ∝ step^a · lr^b, where τ = η·t predicts a = b "
                "= 1): " + "; ".join(parts) + "."
            )
    for name, recipes in _committed(root, "recipes.csv", RECIPE_SETS):
        adamw = recipes[
            (recipes["optimizer"] == "adamw")
            & (recipes["augment"] == "none")
            & (recipes["labels"] == "true")
            & recipes["delta_p_mean"].notna()
        ]
        parts = [
            f"{row['arch']} Δp {_cell(row, 'delta_p')} at the end, "
            f"{_cell(row, 'delta_p_matched')} at matched training loss (n = {row['n']})"
            for row in adamw.to_dict("records")
        ]
        if parts:
            lines.append(
                f"- Beyond the paper (`{name}`): AdamW against SGD, the exponent p of λ^p fitted "
                f"to the learned profile (negative: flatter), true labels: "
                + "; ".join(parts)
                + "."
            )
    # Table 3 from the richest CPU-scale set that has it (more distinct runs per row)
    tables = [
        (n, t[t["dataset"] == "cifar10"])
        for n, t in _committed(root, "table3.csv", ("extended", "default"))
    ]
    if tables:
        name, table = tables[0]
        for network, labels, text in (
            ("vgg11", "true", "Trained VGG11, true labels"),
            ("vgg11", "random", "Trained VGG11, random labels"),
        ):
            rows = table[(table["network"] == network) & (table["labels"] == labels)]
            rows = rows[rows["inputs"].isin(["none", "-"])]
            if len(rows):
                # both CPU-scale sets train 400 steps at lr 0.01 (tables before recipes had none)
                where = f"{name}, 400 steps at lr 0.01"
                lines.append(f"- {text} (`{where}`): {versus(rows.iloc[0])}.")
    for path in sorted((root / "pretrained").glob("k*_table3.csv")):
        rows = _read_table(path)
        rows = rows[rows["network"].str.startswith("trained on ImageNet")]
        if len(rows):
            row = rows.iloc[0]
            lines.append(
                f"- ImageNet-trained first layers ({row['layers']}; paper ≈ 0.90): {versus(row)}."
            )
    # the held-out tests from the richest CPU-scale set that has them
    held = list(_committed(root, "heldout_rescaling.csv", ("extended", "default")))
    if held:
        lines.append(held_out(*held[0]))
    return "\n".join(lines + ["", end])


def _n_cell(row, stem: str) -> str:
    """A correlation over pairs (or runs) with its interval and its own n ('—' without one)."""
    n = row.get(f"{stem}_n", 0)
    n = 0 if n != n else int(n)
    if not n:
        return "—"
    from firstlayer.intervals import with_interval

    nan = float("nan")
    text = with_interval(row[f"{stem}_mean"], row.get(f"{stem}_low", nan),
                         row.get(f"{stem}_high", nan), n)  # fmt: skip
    return f"{text} (n={n})"


def recipes_block(root) -> str:
    """Every committed recipes.csv (`rule recipes`): per cell of architecture, optimiser,
    augmentation and labels, n runs, accuracy, how far the first layer moved, whether it
    learned, the profile correlations (across seeds, with the paper's recipe of the same
    architecture, true vs random labels, each with its own n of pairs), the formula against the
    best null and the fitted exponent p of lambda^p with its difference from the paper's recipe
    (at the end, and at the epoch of matched training loss)."""
    from pathlib import Path

    root = Path(root)
    begin, end = markers("recipes")
    lines = [begin, ""]
    for name, table in _committed(root, "recipes.csv", RECIPE_SETS):
        lines += [
            f"From `docs/results/{name}/recipes.csv` (rule `recipes`); n = runs (seeds) of the "
            "cell, or pairs of runs where a column says its own n; means over n ≥ 2 carry their "
            "95% interval (t over runs; a jackknife over runs for pairs sharing runs; Welch's t "
            "for a difference of two cells). p: the exponent of the null λ^p fitted to the final "
            "learned profile (the formula moves from p = 1 early to p = −1 when it has "
            "whitened); Δp: minus the paper's recipe of the same network and labels; "
            "Δp (matched loss): at the recorded epoch whose training loss is closest to the "
            "paper recipe's final one. A cell whose training accuracy is within 0.05 of chance "
            "or whose first layer moved less than 2% did not learn and gets no verdict.",
            "",
            "| network (first layer) | labels | optimiser (lr) | augmentation | n | test acc "
            "| train loss | ‖w − w₀‖/‖w₀‖ | status | r across seeds | r vs paper recipe "
            "| r true vs random | formula r | best null by r | verdict (r) | p | Δp (final) "
            "| Δp (matched loss) |",
            "|---" * 18 + "|",
        ]
        for row in table.to_dict("records"):
            n = int(row["n"])

            def cell(stem, row=row, n=n):
                from firstlayer.intervals import with_interval

                return with_interval(row[f"{stem}_mean"], row[f"{stem}_low"],
                                     row[f"{stem}_high"], n)  # fmt: skip

            learned = row["status"] == "learned"
            lines.append(
                f"| {row['arch']} ({row['first_layer']}) | {row['labels']} | "
                f"{row['optimizer']} ({row['lr']:g}) | {row['augment']} | {n} | "
                f"{cell('test_acc')} | {cell('train_loss')} | {cell('relative_change')} | "
                f"{row['status']} | {_n_cell(row, 'across_seeds')} | {_n_cell(row, 'vs_paper')} | "
                f"{_n_cell(row, 'true_vs_random')} | "
                f"{cell('formula') if learned else '—'} | "
                f"{_family(row.get('best_null')) + ' ' + cell('best_null') if learned else '—'} | "
                f"{row['verdict_r']} | {cell('p') if learned else '—'} | "
                f"{cell('delta_p') if learned else '—'} | "
                f"{cell('delta_p_matched') if learned else '—'} |"
            )
        lines.append("")
    return "\n".join(lines + [end])


def strided_block(root) -> str:
    """The committed comparisons of a stride-k grid's patch statistics with all positions'
    (`rule strided_stats`, published as <dataset>_k<k>_stride<s>.csv), and the agreement of the
    strided runs' profiles on the two bases (recipes.csv)."""
    from pathlib import Path

    root = Path(root)
    begin, end = markers("strided")
    lines = [begin, ""]
    for name in RECIPE_SETS:
        for path in sorted((root / name).glob("*_stride*.csv")):
            table = pd.read_csv(path)
            k, stride = int(table["k"].iloc[0]), int(table["stride"].iloc[0])
            recipes = _read_table(root / name / "recipes.csv")
            agreement = "—"
            if recipes is not None:
                rows = recipes[recipes["first_layer"] == f"{k}x{k} stride {stride}"]
                values = [v for v in rows["stride_basis_agreement_mean"] if v == v]
                runs = int(rows.loc[rows["stride_basis_agreement_mean"].notna(), "n"].sum())
                if values:
                    agreement = f"{min(values):.3f}–{max(values):.3f} (cell means, {runs} runs)"
            top = table.head(10)
            ratio = table["std_ratio"]
            lines += [
                f"- `docs/results/{name}/{path.name}` ({k}x{k} patches, stride {stride}; d = "
                f"{len(table)}): along the all-position components u_i, the stride-grid patches' "
                f"std is {ratio.min():.3f}–{ratio.max():.3f} times λ_i (median "
                f"{ratio.median():.3f}); the grid's own components match u_1..u_10 with "
                f"|cos| {top['abs_cosine'].min():.3f}–{top['abs_cosine'].max():.3f}, and its "
                f"leading 5 and 10 span the same subspaces up to an overlap of "
                f"{table['subspace_overlap'].iloc[4]:.3f} and "
                f"{table['subspace_overlap'].iloc[min(9, len(table) - 1)]:.3f} (1 = identical); "
                f"a strided run's final profile on the two bases correlates {agreement}.",
            ]
    if len(lines) == 2:
        lines.append("No strided first layer in a committed result set.")
    return "\n".join(lines + ["", end])


RECIPE_SETS = ("beyond",)
