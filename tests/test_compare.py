"""`python -m firstlayer.report.compare`: a rebuild against a published result set, on copies of
the committed default set (an unperturbed copy, a perturbation within the seed-to-seed
differences, a planted verdict flip, a table that gained a column)."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from firstlayer.report.compare import compare_sets, main

COMMITTED = ROOT / "docs" / "results" / "default"
TRUE = "cifar10_vgg11_f64_w0.125_true_s{}_e10_n10000"


@pytest.fixture
def rebuild(tmp_path):
    """A build folder holding the committed set's tables where the build wrote them."""
    for name, entry in json.loads((COMMITTED / "published.json").read_text()).items():
        target = tmp_path / entry["source"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(COMMITTED / name, target)
    return tmp_path


def table(build, name):
    source = json.loads((COMMITTED / "published.json").read_text())[name]["source"]
    return build / source


def reports_of(build):
    reports, extra = compare_sets(COMMITTED, build)
    return {r.name: r for r in reports}, extra


def test_an_unperturbed_copy_has_no_differences(rebuild, capsys):
    assert main([str(COMMITTED), "--build", str(rebuild)]) == 0
    out = capsys.readouterr().out
    assert "Verdicts that flipped: none" in out
    reports, extra = reports_of(rebuild)
    assert {r.status for r in reports.values()} == {"identical"}
    assert extra == {"missing": [], "figures": (13, 0)}  # every figure byte-identical


def test_a_small_perturbation_is_within_the_seed_to_seed_differences(rebuild, capsys):
    metrics = pd.read_csv(table(rebuild, "metrics.csv"))
    # the committed seed-to-seed difference of test accuracy, computed here independently:
    # the largest |seed 0 - seed 1| over the same run and epoch
    committed = pd.read_csv(COMMITTED / "metrics.csv")
    committed["model"] = committed["run"].str.replace(r"_s\d+_", "_s*_", regex=True)
    by_seed = committed.pivot_table(index=["model", "epoch"], columns="seed", values="test_acc")
    seed_to_seed = float((by_seed[0] - by_seed[1]).abs().max())
    row = metrics.index[(metrics["run"] == TRUE.format(0)) & (metrics["epoch"] == 10)][0]
    metrics.loc[row, "test_acc"] += 0.3 * seed_to_seed
    metrics.to_csv(table(rebuild, "metrics.csv"), index=False)
    # Table 1 "trained vs init" is a mean over n = 2 runs: its seed-to-seed difference is
    # sqrt(2 / n) s = s, the std column
    tables = pd.read_csv(table(rebuild, "tables.csv"))
    trained = tables.index[tables["comparison"] == "trained vs init"][0]
    std = float(tables.loc[trained, "std"])
    tables.loc[trained, "mean"] += 0.5 * std
    tables.to_csv(table(rebuild, "tables.csv"), index=False)
    reports, _ = reports_of(rebuild)
    top = reports["metrics.csv"].headline
    assert (top.name, top.where) == ("test_acc", f"{TRUE.format(0)}, 10.0")
    assert top.largest == pytest.approx(0.3 * seed_to_seed)
    assert top.reference == pytest.approx(seed_to_seed)
    assert reports["metrics.csv"].status == "within seed-to-seed (0.30x)"
    top = reports["tables.csv"].headline
    assert top.name == "mean" and top.reference == pytest.approx(std)
    assert reports["tables.csv"].status == "within seed-to-seed (0.50x)"
    assert main([str(COMMITTED), "--build", str(rebuild)]) == 0
    assert "| tables.csv | 4 | " in capsys.readouterr().out


def test_a_difference_beyond_the_seed_to_seed_differences_fails(rebuild):
    fits = pd.read_csv(table(rebuild, "fits.csv"))
    fits["formula_correlation"] -= 0.5  # every run's fit, far beyond any two seeds' difference
    fits.to_csv(table(rebuild, "fits.csv"), index=False)
    reports, _ = reports_of(rebuild)
    assert reports["fits.csv"].status.startswith("beyond seed-to-seed")
    assert main([str(COMMITTED), "--build", str(rebuild)]) == 1


def test_a_planted_verdict_flip_is_listed(rebuild, capsys):
    path = table(rebuild, "table3.csv")
    table3 = pd.read_csv(path, dtype={"labels": str})
    row = table3.index[(table3["labels"] == "true") & (table3["inputs"] == "none")][0]
    before = table3.loc[row, "verdict_log_rmse"]
    table3.loc[row, "verdict_log_rmse"] = "formula better"
    table3.to_csv(path, index=False)
    assert main([str(COMMITTED), "--build", str(rebuild)]) == 1
    out = capsys.readouterr().out
    assert "Verdicts that flipped: 1\n" in out
    flip = f"- table3.csv, cifar10, vgg11, true, none: verdict_log_rmse: {before} -> formula better"
    assert flip in out


def test_columns_only_one_side_has_are_named_and_the_rest_compared(rebuild, capsys):
    path = table(rebuild, "table3.csv")
    table3 = pd.read_csv(path, dtype={"labels": str})
    table3.insert(4, "lr", 0.01)  # a table that gained a column since it was published
    table3.to_csv(path, index=False)
    assert main([str(COMMITTED), "--build", str(rebuild)]) == 0
    out = capsys.readouterr().out
    expected = "table3.csv: compared on the columns both have; only in the committed table: "
    assert expected + "none; only in the rebuild: lr" in out
    assert "| table3.csv | 5 | 0 | — | — | — | identical |" in out


def test_a_mean_over_n_runs_takes_its_spread_from_its_interval(rebuild):
    """table3's formula_mean has no std column: s comes from the t interval, half-width
    t(n - 1) s / sqrt(n), the wider side where a bound clips the other."""
    from scipy.stats import t

    committed = pd.read_csv(COMMITTED / "table3.csv", dtype={"labels": str})
    path = table(rebuild, "table3.csv")
    table3 = committed.copy()
    table3["formula_mean"] += 1e-4
    table3.to_csv(path, index=False)
    n = committed["n"].to_numpy(float)
    half = np.maximum(
        committed["formula_mean"] - committed["formula_low"],
        committed["formula_high"] - committed["formula_mean"],
    ).to_numpy()
    s = half * np.sqrt(n) / t.ppf(0.975, n - 1)
    expected = np.nanmax(np.where(n >= 2, s * np.sqrt(2 / n), np.nan))
    column = reports_of(rebuild)[0]["table3.csv"].headline
    assert column.name == "formula_mean" and math.isclose(column.reference, expected)


def test_the_command_line_refuses_a_missing_set_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "firstlayer.report.compare", "nosuchset", "--build", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"compare: error: {tmp_path}/docs/results/nosuchset/published.json does not exist; "
        f"allowed: a result set under docs/results/ of --build (or its folder)"
    ]


def test_a_manifest_that_is_not_one_and_a_table_that_is_not_text(rebuild, tmp_path):
    """A published.json holding a list is refused in one line; a build table of binary bytes
    is listed as missing with the reason, and the other tables are compared."""
    from firstlayer.errors import InputError

    odd = tmp_path / "set"
    odd.mkdir()
    (odd / "published.json").write_text('["table3.csv"]')
    with pytest.raises(InputError, match="is not a manifest of published files"):
        compare_sets(odd, rebuild)
    table(rebuild, "table3.csv").write_bytes(bytes(range(256)) * 4)
    reports, extra = reports_of(rebuild)
    assert (
        "table3.csv" not in reports
        and len(reports)
        == len(
            [
                n
                for n in json.loads((COMMITTED / "published.json").read_text())
                if n.endswith(".csv")
            ]
        )
        - 1
    )
    (entry,) = extra["missing"]
    assert entry.startswith("table3.csv (the build's ") and "cannot be read: 'utf-8' codec" in entry
