"""A config's training grid without Snakemake, for a machine that has torch but not the
workflow's tools (a GPU node lent for minutes, with no internet): every run of every block, one
after another, each written as soon as it ends in the workflow's own format and name
(results/runs/{run}.h5), and after each run the training profiles, metrics and (when SciPy is
there) Tables 1 and 2, so that a call cut off by its time limit still returns what it finished.
Back on a workstation the workflow takes the run files as its own and builds the rest
(docs/cluster.md, "A grid without Snakemake").

    python -m firstlayer.training.standalone config/paper-core.yaml \\
        --data cifar10=path/to/cifar10-train.zip --out DIR --device cuda \\
        --time-limit 380 --archive DIR.tar.gz

Needs numpy, torch, h5py, pandas, pyyaml and Pillow (for ImageFolder data); not Snakemake,
jsonschema, SciPy or tqdm. The config is read as YAML and not validated (validation needs
jsonschema): run names and specs are those the workflow gives the same config, which
tests/test_standalone.py checks against the workflow's own plan.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import time
from pathlib import Path

import yaml

from firstlayer.common.grid import build_grid
from firstlayer.errors import InputError

PATCH_K = 3  # the first layer's patch size, whose PCA the profiles use


def plan(config: dict) -> dict:
    """{run name: RunSpec} of a config's grid, as the workflow names them."""
    return {
        name: entry["spec"]
        for name, entry in build_grid(config["experiments"], config["training"]).items()
    }


def _dataset(name: str, spec: dict, given: dict, out: Path, log) -> Path:
    """resources/datasets/{name}.h5 from the --data file given for it (built once)."""
    from firstlayer.datasets.sources import build_dataset

    path = out / "resources" / "datasets" / f"{name}.h5"
    if path.is_file():
        return path
    if name not in given:
        given = ", ".join(sorted(given)) or "none"
        raise InputError(f"dataset {name!r} of the grid has no --data {name}=PATH; given: {given}")
    source = Path(given[name])
    kind = "npz" if source.suffix == ".npz" else "imagefolder"
    settings = {**{k: v for k, v in spec.items() if k not in ("source", "name", "archive")}}
    settings.update(source=kind, path=str(source))
    log(f"building dataset {name} from {source} ({kind})")
    build_dataset(name, settings, path, out / "resources" / "downloads")
    return path


def _tables(out: Path, stats_paths: list[Path], log) -> None:
    """Profiles and metrics of every finished run; Tables 1 and 2 when SciPy is importable."""
    from firstlayer.training.analysis import consistency_tables, profile_runs

    runs = sorted((out / "results" / "runs").glob("*.h5"))
    if not runs:
        return
    tables = out / "results" / "tables" / "training"
    tables.mkdir(parents=True, exist_ok=True)
    profiles, metrics = profile_runs(runs, stats_paths)
    profiles.to_csv(tables / "profiles.csv", index=False)
    metrics.to_csv(tables / "metrics.csv", index=False)
    try:
        import scipy  # noqa: F401  (the intervals of Tables 1 and 2)
    except ImportError:
        log("SciPy is not installed: Tables 1 and 2 are left to the workflow")
        return
    consistency_tables(profiles).to_csv(tables / "tables.csv", index=False)


def run_grid(config_path, data: dict, out, device=None, time_limit=None, log=print) -> dict:
    """Train every run of the config's grid not yet in `out`, in grid order, stopping before a
    run that the time limit (seconds from the start) would not leave room for, judged by the
    throughput of the runs so far. Returns {"done": [...], "skipped": [...], "seconds": ...}."""
    import torch

    from firstlayer.datasets.sources import DatasetFile
    from firstlayer.patches.stats import build_patch_stats
    from firstlayer.training.run import train

    start = time.perf_counter()
    out = Path(out)
    config = yaml.safe_load(Path(config_path).read_text())
    grid = plan(config)
    datasets = {spec.dataset for spec in grid.values()}
    paths = {
        name: _dataset(name, config["datasets"][name], data, out, log) for name in sorted(datasets)
    }
    stats_paths = []
    for name, path in paths.items():
        stats = out / "results" / "patches" / name / f"k{PATCH_K}.h5"
        if not stats.is_file():
            settings = {key: config.get("patches", {}).get(key) for key in ("n_images", "seed")}
            build_patch_stats(
                path, stats, PATCH_K, **{k: v for k, v in settings.items() if v is not None}
            )
        stats_paths.append(stats)
    runs_dir = out / "results" / "runs"
    rate = None  # images per second of the runs trained so far
    done, skipped = [], []
    for name, spec in grid.items():
        target = runs_dir / f"{name}.h5"
        if target.is_file():
            done.append(name)
            continue
        with DatasetFile(paths[spec.dataset]) as dataset:
            images = spec.n_train or dataset.count("train")
        work = images * spec.epochs
        elapsed = time.perf_counter() - start
        if time_limit and rate and elapsed + 1.2 * work / rate > time_limit:
            log(
                f"skipping {name}: {work / rate:.0f} s more would pass the {time_limit:.0f} s limit"
            )
            skipped.append(name)
            continue
        begun = time.perf_counter()
        train(
            spec,
            paths[spec.dataset],
            target,
            out / "checkpoints" / f"{name}.pt",
            device=device,
            log=log,
        )
        seconds = time.perf_counter() - begun
        rate = work / seconds if rate is None else (rate + work / seconds) / 2
        log(f"{name}: {seconds:.1f} s ({work / seconds:,.0f} images/s)")
        done.append(name)
        _tables(out, stats_paths, log)
    summary = {
        "done": done,
        "skipped": skipped,
        "seconds": time.perf_counter() - start,
        "device": str(device or ("cuda" if torch.cuda.is_available() else "cpu")),
        "torch": torch.__version__,
    }
    (out / "standalone.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def archive(out, path) -> Path:
    """The run files, tables and summary of `out` as one .tar.gz (datasets and patch statistics,
    rebuilt from the data by the workflow, are left out)."""
    out, path = Path(out), Path(path)
    with tarfile.open(path, "w:gz") as tar:
        for member in ["standalone.json", "results/runs", "results/tables"]:
            if (out / member).exists():
                tar.add(out / member, arcname=member)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train a config's grid without Snakemake.")
    parser.add_argument("config", help="a config file (e.g. config/paper-core.yaml)")
    parser.add_argument(
        "--data", action="append", default=[], metavar="NAME=PATH",
        help="a dataset's images: an ImageFolder folder or archive, or an .npz (repeatable)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="folder for datasets, runs and tables")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: CUDA if any)")
    parser.add_argument(
        "--time-limit", type=float, default=None, help="seconds; no run starts that would pass it"
    )
    parser.add_argument("--archive", default=None, help="write the runs and tables to this .tar.gz")
    args = parser.parse_args(argv)
    data = {}
    for item in args.data:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--data {item!r}; allowed: NAME=PATH, e.g. cifar10=cifar10-train.zip")
        data[name] = path
    try:
        summary = run_grid(
            args.config,
            data,
            args.out,
            args.device,
            args.time_limit,
            log=lambda m: print(m, flush=True),
        )
    except InputError as error:
        print(error)
        return 1
    if args.archive:
        print(f"wrote {archive(args.out, args.archive)}")
    done, skipped = len(summary["done"]), len(summary["skipped"])
    print(f"{done} runs done, {skipped} skipped, {summary['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
