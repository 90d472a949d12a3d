"""How far a rebuild is from a published result set: `python -m firstlayer.report.compare`.

    python -m firstlayer.report.compare default          # in the clone that rebuilt it
    python -m firstlayer.report.compare extended --build /path/to/build

A result set (docs/results/<set>/) names in its `published.json` the file of the build each of
its tables was copied from. For every table the rebuild's file is read from the same place under
the build folder, the rows are matched on the table's key columns, and the tool reports:

- the largest difference between the two, column and row, beside that table's own seed-to-seed
  differences in that column, and whether every column stays within them;
- every verdict (a column named `verdict*`) that flipped, and any other text that changed;
- rows and columns that only one side has (tables gain columns over time: they are compared on
  the columns both have, and the others are named).

Seed-to-seed differences come from the committed table itself. In a table of runs (a `run`
column, or `a` and `b` for pairs of runs) they are the largest difference, in each column,
between two runs that differ only in their seed (the same row otherwise: epoch, step, ...). In a
table of means over n runs they are, per row, the difference two independent sets of n seeds
would show, sqrt(2 / n) s, with s the runs' standard deviation (the `std` column, or recovered
from the row's 95% t interval: half-width = t(n - 1) s / sqrt(n)); a row of one run has none. So
a rebuild that is another sample of the same runs (another processor, another BLAS) lands
"within"; the intervals themselves, at n = 1 or 2, would pass almost anything. Tables that do
not depend on training seeds (label statistics, the linear CNN's fixed runs, pretrained models)
have no seed-to-seed reference: there the tool says whether they are equal up to rounding.

A table that cannot be read on either side (empty, not CSV text) counts as missing and says why.
Exit status: 0 when every table is equal, equal up to rounding, or within its seed-to-seed
differences, and no verdict flipped and nothing is missing; 1 otherwise; 2 for a bad argument
(a --build that is not a folder, a set without a readable `published.json`), in one line.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from firstlayer.errors import InputError

# Rows of each table are matched on these columns (those both sides have); other tables on
# their text and integer columns. `k*_...` are the pretrained study's tables.
KEYS = {
    "metrics.csv": ["run", "epoch"],
    "fits.csv": ["run", "step"],
    "manipulations.csv": ["run"],
    "run_correlations.csv": ["a", "b"],
    "cross_dataset.csv": ["source", "target", "run"],
    "tables.csv": ["table", "comparison", "dataset", "lr", "epochs"],
    "table3.csv": ["dataset", "network", "labels", "inputs", "lr", "epochs"],
    "heldout_rescaling.csv": ["manipulation", "labels", "lr", "epochs"],
    "manipulations_summary.csv": ["comparison"],
    "cross_dataset_summary.csv": ["source", "target", "network", "labels"],
    "whitening.csv": ["dataset", "input", "distance"],
    "label_stats.csv": ["dataset", "class", "component"],
    "linear_cnn.csv": ["dataset", "data", "steps"],
    "k_table3.csv": ["dataset", "network", "k"],
    "k_fits.csv": ["dataset", "name", "k"],
    "k_profiles.csv": ["dataset", "name", "component", "k"],
}
IGNORED = {"seconds"}  # wall-clock time differs between any two builds
ROUNDING = 1e-9  # relative: differences this small are floating-point rounding
SEED = re.compile(r"_s\d+_")


def _keys_of(name: str, committed: pd.DataFrame, rebuild: pd.DataFrame) -> list[str]:
    common = [c for c in committed.columns if c in rebuild.columns]
    wanted = KEYS.get(re.sub(r"^k\d+_", "k_", name))
    if wanted is None:
        wanted = [c for c in common if not pd.api.types.is_float_dtype(committed[c])]
    return [c for c in wanted if c in common]


def _key_text(value) -> str:
    """A key cell as text; numbers a label carries in parentheses (a summary's "(formula 0.27)")
    are left out, so that a changed number does not unmatch its row."""
    text = str(value)
    return re.sub(r"\((formula) [^)]*\)", r"(\1)", text)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"labels": str})


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    return pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(
        frame[column]
    )


def seed_to_seed(table: pd.DataFrame, keys: list[str], columns: list[str]) -> dict[str, float]:
    """{column: the largest difference between two runs that differ only in their seed}, for a
    table of runs (`run`, or `a` and `b`); {} for other tables."""
    runs = [c for c in ("run", "a", "b") if c in keys]
    if not runs:
        return {}
    frame = table.copy()
    if {"a", "b"} <= set(runs):
        frame = frame[frame["a"] != frame["b"]]  # a run with itself says nothing about seeds
    for column in runs:
        frame[f"_seed_{column}"] = frame[column].astype(str).str.findall(SEED.pattern).str.join("")
        frame[column] = frame[column].astype(str).str.replace(SEED, "_s*_", regex=True)
    seeds = frame[[f"_seed_{c}" for c in runs]].astype(str).agg("|".join, axis=1)
    frame = frame.assign(_seeds=seeds)
    groups = [c for c in keys if c in frame.columns]
    out = {}
    for column in columns:
        spread = frame.groupby(groups, dropna=False).agg(
            seeds=("_seeds", "nunique"), low=(column, "min"), high=(column, "max")
        )
        spread = spread[spread["seeds"] >= 2]
        values = (spread["high"] - spread["low"]).dropna()
        if len(values):
            out[column] = float(values.max())
    return out


def _t(n: int) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.975, n - 1))


def mean_spreads(table: pd.DataFrame, columns: list[str]) -> dict[str, pd.Series]:
    """{column: per row, sqrt(2 / n) s} for the means of a table of means over n runs (`n`):
    `mean` or `<stem>_mean`, s from the `std` column or from the row's t interval `low`/`high`
    (`<stem>_low`/`<stem>_high`); a bound clips one side at most, so the wider side is the
    half-width t(n - 1) s / sqrt(n)."""
    if "n" not in table:
        return {}
    n = pd.to_numeric(table["n"], errors="coerce")
    t = n.map(lambda count: _t(int(count)) if count >= 2 else np.nan)
    out = {}
    for column in columns:
        stem = "" if column == "mean" else column.removesuffix("_mean") + "_"
        if not column.endswith("mean"):
            continue
        if column == "mean" and "std" in table:
            s = pd.to_numeric(table["std"], errors="coerce")
        elif {f"{stem}low", f"{stem}high"} <= set(table.columns):
            mean = table[column].astype(float)
            half = np.maximum(mean - table[f"{stem}low"], table[f"{stem}high"] - mean)
            s = half * np.sqrt(n) / t
        else:
            continue
        out[column] = (s * np.sqrt(2 / n)).where(n >= 2)
    return out


def spread_column(column: str) -> bool:
    """A column that states a spread (std, interval bounds): compared, not judged, since it
    moves with the spread itself (at n = 2 an interval bound moves 12.7 / sqrt(2) times s)."""
    return column in ("std", "low", "high") or column.endswith(("_std", "_low", "_high"))


@dataclass
class Column:
    name: str
    largest: float  # the largest absolute difference (inf: a value on one side only)
    where: str  # the row's key
    reference: float  # seed-to-seed difference (nan: none)
    rounding: bool  # the largest difference is floating-point rounding

    @property
    def verdict(self) -> str:
        if self.rounding:
            return "rounding"
        if not math.isfinite(self.reference) or spread_column(self.name):
            return "unjudged"
        return "beyond" if self.largest > self.reference else "within"


@dataclass
class TableReport:
    name: str
    rows: int = 0
    columns: list = field(default_factory=list)  # Column, for every numeric column that differs
    flips: list = field(default_factory=list)  # (row, column, committed, rebuild)
    text_changes: list = field(default_factory=list)
    only_committed: list = field(default_factory=list)  # columns
    only_rebuild: list = field(default_factory=list)
    rows_only_committed: list = field(default_factory=list)
    rows_only_rebuild: list = field(default_factory=list)

    @property
    def judged(self) -> list:
        return [c for c in self.columns if c.verdict in ("within", "beyond")]

    @property
    def headline(self) -> Column | None:
        """The judged column furthest beyond (or least within) its seed-to-seed difference;
        without one, the column with the largest difference."""
        if self.judged:
            return max(self.judged, key=lambda c: c.largest / c.reference)
        return max(self.columns, key=lambda c: c.largest, default=None)

    @property
    def status(self) -> str:
        verdicts = {c.verdict for c in self.columns}
        if not self.columns:
            return "identical"
        if verdicts == {"rounding"}:
            return "equal up to rounding"
        if not self.judged:
            return "differs (no seed-to-seed reference)"
        ratio = self.headline.largest / self.headline.reference
        return f"{'beyond' if ratio > 1 else 'within'} seed-to-seed ({ratio:.2f}x)"

    @property
    def fine(self) -> bool:
        return (
            not self.status.startswith(("beyond", "differs"))
            and not self.flips
            and not self.rows_only_committed
            and not self.rows_only_rebuild
            and not self.only_committed
        )


def compare_table(name: str, committed: pd.DataFrame, rebuild: pd.DataFrame) -> TableReport:
    """A rebuild's table against the committed one (module docstring)."""
    report = TableReport(name)
    report.only_committed = [c for c in committed.columns if c not in rebuild.columns]
    report.only_rebuild = [c for c in rebuild.columns if c not in committed.columns]
    keys = _keys_of(name, committed, rebuild)
    common = [c for c in committed.columns if c in rebuild.columns and c not in IGNORED]
    values = [c for c in common if c not in keys]
    numeric = [c for c in values if _numeric(committed, c) and _numeric(rebuild, c)]
    references = seed_to_seed(committed, keys, numeric)
    left, right = committed.copy(), rebuild.copy()
    spreads = mean_spreads(committed, numeric)
    for column, spread in spreads.items():  # per row: carried through the merge
        left[f"_spread_{column}"] = spread.to_numpy()
    for frame in (left, right):
        frame["_key"] = (
            frame[keys].map(_key_text).agg(", ".join, axis=1) if keys else frame.index.astype(str)
        )
        frame["_n"] = frame.groupby("_key").cumcount()  # duplicated keys: matched in order
    merged = left.merge(
        right, on=["_key", "_n"], how="outer", suffixes=("", "__new"), indicator=True
    )
    report.rows_only_committed = merged.loc[merged["_merge"] == "left_only", "_key"].tolist()
    report.rows_only_rebuild = merged.loc[merged["_merge"] == "right_only", "_key"].tolist()
    both = merged[merged["_merge"] == "both"]
    report.rows = len(both)
    for column in values:
        old, new = both[column], both[f"{column}__new"]
        if column not in numeric:
            changed = both[old.astype(str) != new.astype(str)]
            for _, row in changed.iterrows():
                entry = (row["_key"], column, row[column], row[f"{column}__new"])
                target = report.flips if column.startswith("verdict") else report.text_changes
                target.append(entry)
            continue
        a, b = old.astype(float).to_numpy(), new.astype(float).to_numpy()
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
        diff = np.where(np.isnan(diff), np.inf, diff)  # a value on one side only
        if not len(diff) or diff.max() == 0:
            continue
        position = int(np.argmax(diff))
        if column in spreads:
            per_row = both[f"_spread_{column}"].to_numpy(dtype=float)
            reference = float(np.nanmax(per_row)) if np.isfinite(per_row).any() else math.nan
        else:
            reference = references.get(column, math.nan)
        largest = float(diff[position])
        scale = max(float(np.nanmax(np.abs(a), initial=0.0)), 1.0)
        report.columns.append(
            Column(
                column, largest, both["_key"].iloc[position], reference, largest <= ROUNDING * scale
            )
        )
    return report


def read_manifest(committed_dir) -> dict:
    """A result set's `published.json`: {name: {"source": the build's file, ...}}; an InputError
    (one line) when it is not one."""
    path = Path(committed_dir) / "published.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(
            f"{path} cannot be read ({error}); allowed: a manifest written by `snakemake publish`"
        ) from None
    if not isinstance(manifest, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("source"), str)
        for entry in manifest.values()
    ):
        raise InputError(
            f'{path} is not a manifest of published files; allowed: {{name: {{"source": '
            f"path in the build, ...}}}}, as `snakemake publish` writes it"
        )
    return manifest


def _readable(path: Path) -> pd.DataFrame | str:
    """The table at `path`, or why it cannot be read (empty, not CSV text)."""
    try:
        return _read(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        return str(error).splitlines()[0] if str(error) else type(error).__name__


def compare_sets(committed_dir, build_dir) -> tuple[list[TableReport], dict]:
    """(a report per table of a committed result set against the build's file it was published
    from, {"missing": tables the build lacks or that cannot be read, "figures": (byte-identical,
    different)})."""
    committed_dir, build_dir = Path(committed_dir), Path(build_dir)
    manifest = read_manifest(committed_dir)
    reports, missing, figures = [], [], [0, 0]
    for name, entry in sorted(manifest.items()):
        source = build_dir / entry["source"]
        if not name.endswith(".csv"):
            if source.is_file():
                same = source.read_bytes() == (committed_dir / name).read_bytes()
                figures[0 if same else 1] += 1
            continue
        if not source.is_file():
            missing.append(f"{name} (the build has no {entry['source']})")
            continue
        tables = [_readable(committed_dir / name), _readable(source)]
        unreadable = [
            f"{side} {path} cannot be read: {table}"
            for side, path, table in zip(
                ("the set's", "the build's"), (committed_dir / name, source), tables
            )
            if isinstance(table, str)
        ]
        if unreadable:
            missing.append(f"{name} ({'; '.join(unreadable)})")
            continue
        reports.append(compare_table(name, *tables))
    return reports, {"missing": missing, "figures": tuple(figures)}


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "—" if math.isnan(value) else "a value on one side only"
    return f"{value:.3g}"


def render(reports: list[TableReport], extra: dict, committed_dir, build_dir) -> str:
    lines = [
        f"Rebuild in {build_dir} against {committed_dir} ({len(reports)} tables):",
        "",
        "| table | rows | largest difference | column | row | seed-to-seed difference | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        top = r.headline
        cells = (
            [_number(top.largest), top.name, top.where, _number(top.reference)]
            if top
            else ["0", "—", "—", "—"]
        )
        lines.append(f"| {r.name} | {r.rows} | {' | '.join(cells)} | {r.status} |")
    flips = [(r.name, *flip) for r in reports for flip in r.flips]
    lines += ["", f"Verdicts that flipped: {len(flips) or 'none'}"]
    lines += [f"- {t}, {row}: {col}: {old} -> {new}" for t, row, col, old, new in flips]
    spreads = sum(
        spread_column(c.name) and c.verdict != "rounding" for r in reports for c in r.columns
    )
    unjudged = [
        f"{r.name} {c.name} ({_number(c.largest)})"
        for r in reports
        for c in r.columns
        if c.verdict == "unjudged" and not spread_column(c.name)
    ]
    if unjudged:
        lines += ["", "Differences without a seed-to-seed reference: " + "; ".join(unjudged)]
    if spreads:
        lines += [
            "",
            f"Standard deviations and interval bounds that differ: {spreads} columns (not judged: "
            f"they move with the spread itself)",
        ]
    texts = [(r.name, *change) for r in reports for change in r.text_changes]
    if texts:
        lines += ["", f"Other text that changed: {len(texts)}"]
        lines += [f"- {t}, {row}: {col}: {old} -> {new}" for t, row, col, old, new in texts[:20]]
        lines += ["- ..."] if len(texts) > 20 else []
    notes = []
    for r in reports:
        if r.only_committed or r.only_rebuild:
            notes.append(
                f"{r.name}: compared on the columns both have; only in the committed table: "
                f"{', '.join(r.only_committed) or 'none'}; only in the rebuild: "
                f"{', '.join(r.only_rebuild) or 'none'}"
            )
        for side, rows in (
            ("committed table", r.rows_only_committed),
            ("rebuild", r.rows_only_rebuild),
        ):
            if rows:
                notes.append(f"{r.name}: {len(rows)} row(s) only in the {side}, e.g. {rows[0]}")
    notes += [f"missing from the build: {name}" for name in extra["missing"]]
    if notes:
        lines += ["", *notes]
    same, different = extra["figures"]
    lines += ["", f"Figures (not compared further): {same} byte-identical, {different} differ."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firstlayer.report.compare",
        description="Compare a rebuild's tables with a published result set (docs/results/<set>).",
    )
    parser.add_argument("set", nargs="?", default="default", help="result set name or folder")
    parser.add_argument("--build", default=".", help="the build's working directory (default: .)")
    args = parser.parse_args(argv)
    build = Path(args.build)
    committed = Path(args.set) if "/" in args.set else build / "docs" / "results" / args.set
    if not build.is_dir():
        return _error(f"--build {build} is not a folder; allowed: the build's working directory")
    if not (committed / "published.json").is_file():
        return _error(
            f"{committed}/published.json does not exist; allowed: a result set under "
            f"docs/results/ of --build (or its folder)"
        )
    try:
        reports, extra = compare_sets(committed, build)
    except InputError as error:
        return _error(str(error))
    print(render(reports, extra, committed, build))
    return 0 if all(r.fine for r in reports) and not extra["missing"] else 1


def _error(message: str) -> int:
    print(f"compare: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
