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
