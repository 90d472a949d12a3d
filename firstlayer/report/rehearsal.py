"""The check after a rehearsal (`rehearsal: true`, `common.rehearsal`): everything the grid
promises was built and says something.

- Every file of the default target and every file publishing would copy exists and is what its
  name says (PNG and PDF by their signatures, CSV tables with rows, HDF5 files by theirs).
- Tables 1-2 (`results/tables/training/tables.csv`) and Table 3 (`results/tables/theory/
  table3.csv`) have every row the grid feeds (`common.rehearsal.expected_tables`) with a finite
  mean and the n the grid gives it.
- The rehearsal's plan has the same kinds of files, training figures and experiment blocks as
  the real grid's (`common.rehearsal.plan_signature`).

A problem stops the job with one line (the first problem and how many there are); a passing
check writes what it checked.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from firstlayer.common.rehearsal import signature_differences
from firstlayer.errors import InputError

SIGNATURES = {".png": b"\x89PNG", ".pdf": b"%PDF", ".h5": b"\x89HDF"}


def file_problems(paths) -> list[str]:
    problems = []
    for path in map(Path, paths):
        if not path.is_file() or path.stat().st_size == 0:
            problems.append(f"{path} is missing or empty")
            continue
        signature = SIGNATURES.get(path.suffix)
        if signature is not None and not path.read_bytes()[: len(signature)] == signature:
            problems.append(f"{path} is not a {path.suffix[1:].upper()} file")
        if path.suffix == ".csv" and pd.read_csv(path).empty:
            problems.append(f"{path} has no rows")
    return problems


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _same(cell, value) -> bool:
    """A table cell equals a value: as numbers where both are (a CSV reads epochs 1 as 1.0),
    else as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(cell):
        return float(cell) == float(value)
    return str(cell) == str(value)


def table_problems(table: pd.DataFrame, expected: list[dict], where: str, mean: str) -> list[str]:
    """Each expected row (its identifying keys and n) is in `table` once, with a finite `mean`
    and that n."""
    problems = []
    for row in expected:
        keys = {k: v for k, v in row.items() if k != "n" and k in table.columns}
        match = table
        for key, value in keys.items():
            match = match[[_same(cell, value) for cell in match[key]]]
        name = ", ".join(f"{k}={v}" for k, v in keys.items())
        if len(match) != 1:
            problems.append(f"{where}: {len(match)} rows for {name} (expected 1)")
            continue
        found = match.iloc[0]
        if not _finite(found[mean]):
            problems.append(f"{where}: {name} has {mean} {found[mean]} (not a finite value)")
        if int(found["n"]) != row["n"]:
            problems.append(f"{where}: {name} has n = {int(found['n'])}, the grid gives {row['n']}")
    return problems


def check_rehearsal(
    files, expected: dict, real: dict, rehearsal: dict, tables, table3
) -> tuple[list[str], str]:
    """(problems, summary) of a finished rehearsal: `files` its default target and published
    files, `expected` the rows of Tables 1-3 (`expected_tables`), `real` and `rehearsal` the two
    plans' signatures, `tables` and `table3` the built tables' paths."""
    problems = signature_differences(real, rehearsal) + file_problems(files)
    if not problems:
        problems += table_problems(
            pd.read_csv(tables), expected["tables"], "Tables 1-2", "mean"
        ) + table_problems(
            pd.read_csv(table3, dtype={"labels": str, "inputs": str}),
            expected["table3"],
            "Table 3",
            "formula_mean",
        )
    summary = (
        f"rehearsal passed: {len(files)} files; Tables 1-2: {len(expected['tables'])} rows and "
        f"Table 3: {len(expected['table3'])} rows, each finite with the n the grid gives it; "
        f"the plan has the grid's {len(real['files'])} kinds of files and "
        f"{len(real['blocks'])} experiment blocks"
    )
    return problems, summary


def run_check(output, files, expected, real, rehearsal, tables, table3) -> None:
    """`check_rehearsal`, ending in one line on the first problem, else writing the summary."""
    problems, summary = check_rehearsal(files, expected, real, rehearsal, tables, table3)
    for problem in problems:
        print(problem)
    if problems:
        more = f" (and {len(problems) - 1} more, listed above)" if len(problems) > 1 else ""
        raise InputError(f"rehearsal failed: {problems[0]}{more}")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(summary + "\n")
    print(summary)
