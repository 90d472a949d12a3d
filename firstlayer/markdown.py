"""Results quoted in the README come from committed tables, never typed in.

    python -m firstlayer.markdown README.md docs/results/default/tables.csv

rewrites the block between the `results:begin` and `results:end` markers of README.md from
the tables; a test checks that the README and the committed tables agree.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# What the paper reports for each comparison (VGG11, CIFAR-10 unless noted), for context.
PAPER = {"across seeds": "0.97–0.99", "across first-layer widths": "0.98",
         "trained vs init": "−0.13 ± 0.18", "VGG vs ResNet": "0.80–0.92",
         "random labels vs init": "—", "true vs random labels": "0.90 (CIFAR-100: 0.91)"}


def results_block(tables: pd.DataFrame, source: str) -> str:
    lines = [BEGIN, "", f"From `{source}` (written by the workflow's `consistency_tables` rule):", "",
             "| table | comparison | dataset | correlation, mean ± std | pairs or runs | paper |",
             "|---|---|---|---|---|---|"]
    for row in tables.itertuples():
        lines.append(f"| {row.table} | {row.comparison} | {row.dataset} | {row.mean:.3f} ± "
                     f"{row.std:.3f} | {row.n} | {PAPER.get(row.comparison, '—')} |")
    return "\n".join(lines + ["", END])


def replace_block(text: str, block: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block + text[end:]


def main(argv=None) -> int:
    readme, tables = (argv or sys.argv[1:])[:2]
    path = Path(readme)
    block = results_block(pd.read_csv(tables), tables)
    path.write_text(replace_block(path.read_text(), block))
    print(f"updated {readme} from {tables}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
