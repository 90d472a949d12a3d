"""The check after a rehearsal (`rehearsal: true`, `common.rehearsal`): everything the grid
promises was built and says something.

- Every file of the default target and every file publishing would copy exists and is what its
  name says (PNG and PDF by their signatures, CSV tables with rows, HDF5 files by theirs).
- Tables 1-2 (`results/tables/training/tables.csv`) and Table 3 (`results/tables/theory/
  table3.csv`) have every row the grid feeds (`expected_tables`) with a finite
  mean and the n the grid gives it.
- The rehearsal's plan has the same kinds of files, training figures and experiment blocks as
  the real grid's (`common.rehearsal.plan_signature`).

A problem stops the job with one line (the first problem and how many there are); a passing
check writes what it checked.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd

from firstlayer.common.rehearsal import signature_differences
from firstlayer.common.settings import learned_unmanipulated
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


# ---------------------------------------------------------------- Tables 1-3 a grid must fill

PAIRS = {  # comparison: (spec fields equal within a pair, fields that differ), as
    # `training.analysis.consistency_tables` pairs runs; runs of another optimizer, augmentation
    # or first-layer geometry are in another row of the tables (`group_keys`), never paired
    "across seeds": (["arch", "first_width", "width", "inputs", "epochs", "lr"], ["seed"]),
    "across first-layer widths": (["arch", "width", "inputs", "lr"], ["first_width"]),
}
TRUE_VS_RANDOM = ["arch", "first_width", "width", "inputs", "lr"]  # equal within such a pair
# Table 3 pools the runs of one recipe: these and the later spec columns the grid has, as
# `theory.fits.recipe` (which imports torch; the workflow plans without it) reads them.
RECIPE = ["lr", "epochs"]


def runs_table(specs):
    """One row per run with the spec columns its training profiles hold (`training.analysis.
    run_profiles`: optimizer and augment only where some run of the grid is off their default,
    the default elsewhere) and its first layer's geometry (`first_layer`), as the tables' own
    grouping functions read them. Imports pandas."""
    import pandas as pd

    from firstlayer.training.analysis import (
        LATER_COLUMNS,
        SPEC_COLUMNS,
        geometry_label,
        with_later_defaults,
    )

    rows = []
    for spec in specs:
        held = spec.as_dict()
        rows.append({c: held[c] for c in SPEC_COLUMNS + [c for c in LATER_COLUMNS if c in held]})
    frame = with_later_defaults(pd.DataFrame(rows) if rows else pd.DataFrame(columns=SPEC_COLUMNS))
    return frame.assign(first_layer=frame["arch"].map(geometry_label))


def _grouped(specs, keys: list[str]) -> dict[tuple, list]:
    """{values of `keys`: the specs that have them}, in order; the column `first_layer` is a
    spec's first-layer geometry by name (as `training.analysis` names it), `k` its kernel size."""
    from firstlayer.common.architectures import first_layer

    def value(spec, key):
        if key == "first_layer":
            return str(first_layer(spec.arch))
        return first_layer(spec.arch).k if key == "k" else getattr(spec, key)

    groups: dict[tuple, list] = {}
    for spec in specs:
        groups.setdefault(tuple(value(spec, key) for key in keys), []).append(spec)
    return dict(sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))))


def expected_tables(plan) -> dict[str, list[dict]]:
    """{"tables": rows of Tables 1-2, "table3": rows of Table 3}, each row a dict of the keys
    that identify it and `n`, the number of pairs or runs the grid gives it (as
    `training.analysis.consistency_tables` and `theory.fits.table3` count them). Tables 1-2 have
    a row per dataset, split by optimizer, augmentation and first-layer geometry where the
    grid's learned runs have several (`training.analysis.group_keys`); Table 3 one per dataset,
    network, labels, inputs and recipe (lr, epochs, and optimizer and augment where the grid
    has them), and one of random inits per dataset and first-layer kernel size (named by the
    size where the grid has several). Imports pandas, not torch."""
    from firstlayer.training.analysis import group_keys, recipe_columns

    specs = plan.specs
    runs = runs_table(specs)
    keys = group_keys(runs[learned_unmanipulated(runs)])

    def same(a, b, fields):
        return all(getattr(a, f) == getattr(b, f) for f in fields)

    rows = []
    learned = [spec for spec in specs if learned_unmanipulated(spec)]
    for values, group in _grouped(learned, keys).items():
        true = [s for s in group if s.labels == "true"]
        random = [s for s in group if s.labels == "random"]
        counts = {
            name: sum(
                1
                for a, b in itertools.combinations(true, 2)
                if same(a, b, equal) and all(getattr(a, f) != getattr(b, f) for f in differ)
            )
            for name, (equal, differ) in PAIRS.items()
        }
        counts["trained vs init"] = len(true)
        counts["VGG vs ResNet"] = sum(
            1
            for a, b in itertools.product(true, true)
            if a.arch.startswith("vgg") and b.arch.startswith("resnet") and a.lr == b.lr
        )
        counts["random labels vs init"] = len(random)
        counts["true vs random labels"] = sum(
            1 for a, b in itertools.product(true, random) if same(a, b, TRUE_VS_RANDOM)
        )
        labels = dict(zip(keys, values))
        rows += [{"comparison": name, **labels, "n": n} for name, n in counts.items() if n]
    columns = ["dataset", "arch", "labels", "inputs", *RECIPE, *recipe_columns(runs)]
    names = ["network" if column == "arch" else column for column in columns]
    table3 = [
        {**dict(zip(names, values)), "n": len(group)}
        for values, group in _grouped([s for s in specs if not s.frozen], columns).items()
    ]
    inits = _grouped(specs, ["dataset", "k"])  # every run has its own init
    several = len({k for _, k in inits}) > 1
    for (dataset, k), group in inits.items():
        network = f"random init, {k}x{k}" if several else "random init"
        table3.append({"dataset": dataset, "network": network, "n": len(group)})
    return {"tables": rows, "table3": table3}
