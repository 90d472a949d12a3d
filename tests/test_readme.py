"""The README quotes the committed result tables exactly, and its commands are the CI's."""
import pandas as pd
import pytest

from conftest import ROOT
from firstlayer.markdown import results_block

TABLES = "docs/results/{}/tables.csv"


@pytest.mark.parametrize("name", ["default", "extended"])
def test_readme_quotes_the_committed_tables(name):
    tables = pd.read_csv(ROOT / TABLES.format(name))
    assert results_block(tables, TABLES.format(name), name) in (ROOT / "README.md").read_text()


def test_committed_run_meets_the_targets():
    """The committed default-scale run on real CIFAR-10 shows the paper's effects."""
    rows = pd.read_csv(ROOT / TABLES.format("default")).set_index("comparison")
    assert rows.loc["across seeds", "mean"] >= 0.95
    assert rows.loc["true vs random labels", "mean"] >= 0.90
    assert abs(rows.loc["trained vs init", "mean"]) <= 0.3


def test_ci_runs_the_readme_test_command():
    command = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    assert command in (ROOT / "README.md").read_text()
    assert command in (ROOT / ".ci" / "run").read_text()
