"""Results quoted in the README come from committed tables, never typed in.

    python -m firstlayer.markdown README.md docs/results/default/tables.csv default

rewrites the block between the `results:default:begin` and `results:default:end` markers of
README.md from the tables; a test checks that the README and the committed tables agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
        "| table | comparison | dataset | correlation, mean ± std | pairs or runs | paper |",
        "|---|---|---|---|---|---|",
    ]
    for row in tables.itertuples():
        lines.append(
            f"| {row.table} | {row.comparison} | {row.dataset} | {row.mean:.3f} ± "
            f"{row.std:.3f} | {row.n} | {PAPER.get(row.comparison, '—')} |"
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


def main(argv=None) -> int:
    readme, tables, name = (argv or sys.argv[1:])[:3]
    path = Path(readme)
    block = results_block(pd.read_csv(tables), tables, name)
    path.write_text(replace_block(path.read_text(), block, name))
    print(f"updated {readme} from {tables}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
