"""The committed results and the documentation quoting them, never copied or typed by hand.

`snakemake publish` copies a finished build's tables and figures (`Plan.published`) into
`docs/results/<publish>/` of its working directory (with a manifest of where each came from),
removes the tables and figures an earlier publish left there that this build no longer makes,
and regenerates every generated block of the docs of that same working directory (run from the
repository, its README and docs; it never writes outside its working directory):

    python -m firstlayer.report.publish        # regenerate the docs' blocks only

The blocks are the configuration reference (docs/configuration.md, from config/schema.yaml), the
result tables, the paper comparison, Table 3 with its null models and the held-out tests
(docs/results.md, from docs/results/*) and the findings (README.md); a test checks each block
equals what this module generates from the committed files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from firstlayer.report.clock_blocks import clock_block
from firstlayer.report.markdown import (
    findings_block,
    heldout_block,
    recipes_block,
    replace_block,
    results_block,
    strided_block,
    table3_block,
)
from firstlayer.report.paper import paper_block
from firstlayer.report.schema_doc import reference_block

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RESULT_SETS = ("default", "extended", "regime", "paper-core", "beyond")
PAGES = ("configuration.md", "results.md", "../README.md")  # the pages with generated blocks


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# What a result set holds besides its README: tables and figures, every one of them published.
PUBLISHED_SUFFIXES = (".csv", ".png", ".pdf")


def publish(files: dict[str, str], destination, docs=None) -> Path:
    """Copy `files` ({source: name}) into `destination`, write its manifest, remove what an
    earlier publish left there that this build does not make, regenerate the blocks of the docs
    `docs` (default: the `docs` folder that holds `destination`, docs/results/<set>); returns
    the manifest's path."""
    destination = Path(destination)
    docs = destination.parent.parent if docs is None else Path(docs)
    destination.mkdir(parents=True, exist_ok=True)
    path = destination / "published.json"
    # What an earlier publish put here and this build no longer makes would read as current.
    # The workflow deletes the earlier manifest before the job (a declared output), so every
    # table and figure of the set counts, with the manifest's names where there is one.
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    earlier = set(earlier) | {
        p.name for p in destination.iterdir() if p.is_file() and p.suffix in PUBLISHED_SUFFIXES
    }
    for name in sorted(earlier - set(files.values())):
        (destination / name).unlink(missing_ok=True)
        print(f"removed {destination / name} (published before, not made by this build)")
    manifest = {}
    for source, name in sorted(files.items(), key=lambda item: item[1]):
        shutil.copyfile(source, destination / name)
        manifest[name] = {"source": source, "sha256": _sha256(destination / name)}
        print(f"published {source} -> {destination / name}")
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    update_docs(docs)
    return path


def generated_blocks(docs=DOCS) -> dict[str, list[tuple[str, str]]]:
    """{docs page: [(block name, block text)]} of every generated block."""
    docs = Path(docs)
    results = []
    for name in RESULT_SETS:
        tables = docs / "results" / name / "tables.csv"
        if tables.is_file():
            source = f"docs/results/{name}/tables.csv"
            results.append((name, results_block(pd.read_csv(tables), source, name)))
    results.append(("paper", paper_block(docs / "results")))
    results.append(("table3", table3_block(docs / "results")))
    results.append(("heldout", heldout_block(docs / "results")))
    results.append(("clock", clock_block(docs / "results")))
    results.append(("recipes", recipes_block(docs / "results")))
    results.append(("strided", strided_block(docs / "results")))
    return {
        "configuration.md": [("config-reference", reference_block())],
        "results.md": results,
        "../README.md": [("findings", findings_block(docs / "results"))],
    }


def update_docs(docs=DOCS) -> None:
    """Regenerate the generated blocks of the pages under `docs` (and its ../README.md) that
    exist there; a working directory without the project's docs has none to regenerate."""
    pages = [page for page in PAGES if (Path(docs) / page).is_file()]
    if not pages:
        print(f"no docs pages under {docs}: no generated blocks to regenerate")
        return
    for page, blocks in generated_blocks(docs).items():
        path = Path(docs) / page
        if page not in pages:  # a docs folder without the project's README (tests)
            continue
        text = path.read_text()
        for name, block in blocks:
            text = replace_block(text, block, name)
        path.write_text(text)
        print(f"regenerated {len(blocks)} block(s) of {path}")


def main(argv=None) -> int:
    update_docs(Path((argv or sys.argv[1:] or [DOCS])[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
