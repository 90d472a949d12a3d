"""The README is a short front door, the docs quote the committed results exactly (generated,
never typed), and the README's commands are the CI's."""

import hashlib
import json

import pandas as pd
from conftest import ROOT

from firstlayer.report.markdown import results_block
from firstlayer.report.publish import generated_blocks, publish

TABLES = "docs/results/{}/tables.csv"
DOCS = ROOT / "docs"


def test_generated_blocks_of_the_docs_are_current():
    """The config reference, the Tables 1-2 blocks and the paper comparison equal what the
    library generates from config/schema.yaml and the committed tables."""
    for page, blocks in generated_blocks(DOCS).items():
        text = (DOCS / page).read_text()
        for name, block in blocks:
            assert block in text, (
                f"docs/{page} block {name!r} is stale: run `python -m firstlayer.report.publish`"
            )


def test_readme_is_a_short_front_door_to_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for page in sorted(DOCS.glob("*.md")):
        assert f"](docs/{page.name})" in readme, page.name


def test_publish_copies_results_with_their_sources_and_regenerates_the_docs(tmp_path):
    source = tmp_path / "results" / "tables.csv"
    source.parent.mkdir()
    source.write_text("table,comparison,dataset,mean,std,n\nTable 1,across seeds,toy,0.5,0.1,3\n")
    docs = tmp_path / "docs"
    (docs / "results" / "default").mkdir(parents=True)
    for page in ("configuration.md", "results.md"):
        (docs / page).write_text((DOCS / page).read_text())
    manifest = publish({str(source): "tables.csv"}, docs / "results" / "default", docs=docs)
    entry = json.loads(manifest.read_text())["tables.csv"]
    assert entry["source"] == str(source)
    assert entry["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (docs / "results" / "default" / "tables.csv").read_bytes() == source.read_bytes()
    assert (
        "| Table 1 | across seeds | toy | 0.500 ± 0.100 | 3 |" in (docs / "results.md").read_text()
    )


def test_publish_removes_what_it_published_before_and_this_build_no_longer_makes(tmp_path):
    source = tmp_path / "tables.csv"
    source.write_text("table,comparison,dataset,mean,std,n\nTable 1,across seeds,toy,0.5,0.1,3\n")
    extra = tmp_path / "cross_dataset.csv"
    extra.write_text("source,target\n")
    docs = tmp_path / "docs"
    folder = docs / "results" / "default"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("how these were made\n")
    for page in ("configuration.md", "results.md"):
        (docs / page).write_text((DOCS / page).read_text())
    publish({str(source): "tables.csv", str(extra): "cross_dataset.csv"}, folder, docs=docs)
    manifest = publish({str(source): "tables.csv"}, folder, docs=docs)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "published.json", "tables.csv"]
    assert list(json.loads(manifest.read_text())) == ["tables.csv"]


def test_a_single_pair_is_shown_without_a_spread():
    one = pd.DataFrame([{"table": "Table 1", "comparison": "across seeds", "dataset": "toy",
                         "mean": 0.9, "std": 0.0, "n": 1}])  # fmt: skip
    assert "| toy | 0.900 | 1 |" in results_block(one, "x.csv", "default")


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


def test_committed_run_meets_the_theory_targets():
    """Default scale, real CIFAR-10: the formula fits trained VGG11 runs (paper 0.94 ± 0.01) and
    not random initialisations (paper 0.1 ± 0.15); the linear CNN follows the exact prediction."""
    table3 = pd.read_csv(ROOT / "docs/results/default/table3.csv")
    vgg = table3[(table3["network"] == "vgg11") & (table3["labels"] == "true")].iloc[0]
    init = table3[table3["network"] == "random init"].iloc[0]
    assert vgg["formula_mean"] >= 0.9 and init["formula_mean"] <= 0.5
    linear = pd.read_csv(ROOT / "docs/results/default/linear_cnn.csv")
    real = linear[linear["data"] == "cifar10, random labels"]
    assert (real["mean_vs_exact"] >= 0.98).all()
    assert (real["mean_vs_formula_best_fit"] < real["mean_vs_exact"]).all()
    synthetic = linear[linear["data"].str.startswith("synthetic")]
    assert (synthetic["mean_vs_formula"] >= 0.95).all()


def test_committed_decile_labels_break_label_independence():
    summary = pd.read_csv(ROOT / "docs/results/extended/manipulations_summary.csv")
    baseline = summary[summary["comparison"].str.startswith("true vs random")]["mean"].iloc[0]
    deciles = summary[summary["comparison"].str.startswith("decile")]["mean"]
    assert len(deciles) and (deciles < baseline - 0.1).all()


def test_ci_rehearses_the_paper_grid_after_the_test_suite():
    ci = (ROOT / ".ci" / "run").read_text()
    rehearsal = (
        ".venv/bin/snakemake --cores 2 --configfile config/paper.yaml --config rehearsal=true"
    )
    assert rehearsal in ci and ci.index(rehearsal) > ci.index(".venv/bin/pytest")
    assert "rm -rf rehearsal\n" in ci  # from scratch, never an earlier rehearsal's files
