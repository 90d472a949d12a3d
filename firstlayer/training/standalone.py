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
jsonschema, SciPy or tqdm. The config is read as the workflow reads it (the schema's defaults,
so that run names and specs are those the workflow gives the same config, which
tests/test_standalone.py checks against the workflow's own plan) and, where jsonschema is
installed, validated as the workflow validates it, its datasets being the --data files. A
mistake stops the call with one line before anything is built: a config that cannot be read, an
argument that cannot work (a --time-limit not above 0, an --archive in a missing folder, a device
this machine does not have), a --data name the grid does not train on, and an --out that holds a
dataset built from other data or a run of the same name trained with another spec.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import yaml

from firstlayer.common.architectures import first_layer
from firstlayer.common.config import ConfigError, fill_defaults
from firstlayer.common.grid import build_grid
from firstlayer.errors import InputError

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
PATCH_KEYS = ("split", "n_images", "seed", "normalization")  # what the patch statistics depend on


def plan(config: dict) -> dict:
    """{run name: RunSpec} of a config's grid, as the workflow names them (a config with the
    schema's defaults filled in: `validated`)."""
    return {
        name: entry["spec"]
        for name, entry in build_grid(config["experiments"], config["training"]).items()
    }


def patch_stats(config: dict) -> list[tuple[str, int]]:
    """(dataset, k) of every dataset the grid trains on and each first-layer kernel size its
    runs there have (3 for a VGG or ResNet, the patch size of a ViT or patchify stem): the patch
    statistics whose PCA the profiles use, as the workflow's plan lists them."""
    return sorted({(spec.dataset, first_layer(spec.arch).k) for spec in plan(config).values()})


def read_config(config_path) -> dict:
    """A config file as YAML (one line when it cannot be read)."""
    path = Path(config_path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(
            f"config {path} cannot be read ({error.__class__.__name__}: "
            f"{getattr(error, 'strerror', None) or error})"
        ) from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise InputError(
            f"config {path} is not valid YAML{line}; allowed: a config such as "
            f"config/paper-core.yaml"
        ) from None
    if not isinstance(config, dict):
        raise InputError(
            f"config {path} holds a {type(config).__name__}, not a mapping of "
            f"config keys; allowed: a config such as config/paper-core.yaml"
        )
    return config


def grid_datasets(config: dict) -> list[str]:
    """The datasets the config's experiment blocks train on, as written (before validation)."""
    blocks = config.get("experiments")
    if not isinstance(blocks, dict):
        return []
    names = set()
    for block in blocks.values():
        values = block.get("datasets") if isinstance(block, dict) else None
        names |= {v for v in values if isinstance(v, str)} if isinstance(values, list) else set()
    return sorted(names)


def _kind(source: Path) -> str:
    return "npz" if source.suffix == ".npz" else "imagefolder"


def validated(config: dict, given: dict, out: Path, files=()) -> dict:
    """The part of `config` the grid needs (its datasets, patch settings, training defaults and
    experiments), each dataset read from its --data file, with the schema's defaults filled in
    and, where jsonschema is installed, checked as the workflow checks it (ConfigError; `files`:
    the config files it was read from, checked for keys written twice). Its patches.k are the
    first-layer kernel sizes of the grid's runs (`patch_stats`)."""
    datasets = config.get("datasets") if isinstance(config.get("datasets"), dict) else {}
    reduced = {"datasets": {}, "pretrained": {"models": {}}}
    names = grid_datasets(config)
    if not names and isinstance(config.get("experiments", {}), dict):
        raise InputError(
            "the config trains no run: no experiment block names a dataset; allowed: a config "
            "with experiments, such as config/paper-core.yaml"
        )
    for name in names:
        entry = datasets.get(name)
        if not isinstance(entry, dict):
            raise InputError(
                f"the experiments train on dataset {name!r}, which the config's datasets do not "
                f"configure; allowed: {', '.join(map(str, datasets)) or 'a datasets section'}"
            )
        built = out / "resources" / "datasets" / f"{name}.h5"
        if name in given:
            source = Path(given[name])
            drop = ("source", "name", "archive", "path")
            entry = {k: v for k, v in entry.items() if k not in drop}
            entry.update(source=_kind(source), path=str(source))
        elif built.is_file():  # built by an earlier call: the dataset file stands for its data
            entry = {"source": "npz", "path": str(built)}
        else:
            given_names = ", ".join(sorted(given)) or "none"
            raise InputError(
                f"dataset {name!r} of the grid has no --data {name}=PATH; given: {given_names}"
            )
        reduced["datasets"][name] = entry
    patches = config.get("patches") if isinstance(config.get("patches"), dict) else {}
    reduced["patches"] = {key: patches[key] for key in PATCH_KEYS if key in patches}
    reduced["patches"].update(datasets=sorted(reduced["datasets"]) or None)
    for key in ("training", "experiments"):
        if key in config:
            reduced[key] = copy.deepcopy(config[key])
    try:
        from firstlayer.common.config import validate_config
    except ImportError:  # no jsonschema: the defaults, as the workflow fills them
        config = fill_defaults(reduced, SCHEMA)
    else:
        config = validate_config(reduced, SCHEMA, files)
    config["patches"]["k"] = sorted({k for _, k in patch_stats(config)})
    return config


def _dataset(name: str, settings: dict, given: dict, out: Path, log) -> Path:
    """resources/datasets/{name}.h5 from the --data file given for it (built once; an earlier
    build from other data is refused)."""
    from firstlayer.datasets.sources import DatasetFile, _sha256_tree, build_dataset

    path = out / "resources" / "datasets" / f"{name}.h5"
    if path.is_file():
        if name in given:
            with DatasetFile(path) as dataset:
                recorded = dataset.source_sha256
            if recorded != _sha256_tree(Path(given[name])):
                raise InputError(
                    f"--out {out} holds dataset {name} built from other data than --data "
                    f"{name}={given[name]}; allowed: the same data, or another --out"
                )
        return path
    log(f"building dataset {name} from {settings['path']} ({settings['source']})")
    build_dataset(name, settings, path, out / "resources" / "downloads")
    return path


def _check_runs(out: Path, grid: dict) -> None:
    """Refuse an --out whose run files of this grid's names hold other specs (another config's
    runs, whose names its defaults made the same): they would count as done."""
    from firstlayer.training.run import read_run

    for name, spec in grid.items():
        target = out / "results" / "runs" / f"{name}.h5"
        if not target.is_file():
            continue
        held = read_run(target).spec
        if held != spec:
            key = next(k for k in spec.__dataclass_fields__ if getattr(held, k) != getattr(spec, k))
            raise InputError(
                f"--out {out} holds run {name} trained with another spec ({key} "
                f"{getattr(held, key)!r} there, {getattr(spec, key)!r} in this config); allowed: "
                f"another --out, or that run file moved away"
            )


def _tables(out: Path, stats_paths: list[Path], log) -> None:
    """Profiles and metrics of every finished run; Tables 1 and 2 when SciPy is importable."""
    from firstlayer.training.analysis import consistency_tables, profile_runs

    runs = sorted((out / "results" / "runs").glob("*.h5"))
    if not runs:
        return
    tables = out / "results" / "tables" / "training"
    tables.mkdir(parents=True, exist_ok=True)
    profiles, metrics = profile_runs(runs, stats_paths)
    _write_csv(profiles, tables / "profiles.csv")
    _write_csv(metrics, tables / "metrics.csv")
    try:
        import scipy  # noqa: F401  (the intervals of Tables 1 and 2)
    except ImportError:
        log("SciPy is not installed: Tables 1 and 2 are left to the workflow")
        return
    _write_csv(consistency_tables(profiles), tables / "tables.csv")


def _write_csv(frame, path: Path) -> None:
    """A table written under a temporary name, then renamed: a call cut off while writing
    leaves the earlier table, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


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
    config = read_config(config_path)
    unknown = sorted(set(data) - set(grid_datasets(config)))
    if unknown and grid_datasets(config):  # without any, `validated` says the grid is empty
        raise InputError(
            f"--data {unknown[0]}=...: the grid trains on no dataset {unknown[0]!r}; allowed: "
            f"{', '.join(grid_datasets(config)) or 'none'}"
        )
    config = validated(config, data, out, files=[config_path])
    grid = plan(config)
    _check_runs(out, grid)
    datasets = {spec.dataset for spec in grid.values()}
    paths = {
        name: _dataset(name, config["datasets"][name], data, out, log) for name in sorted(datasets)
    }
    stats_paths = []  # each run's profiles use the statistics of its own first layer's patches
    for name, k in patch_stats(config):
        stats = out / "results" / "patches" / name / f"k{k}.h5"
        if not stats.is_file():
            settings = {key: config["patches"][key] for key in PATCH_KEYS}
            build_patch_stats(paths[name], stats, k, **settings)
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
    tables = out / "results" / "tables" / "training"
    if not all((tables / f"{name}.csv").is_file() for name in ("profiles", "metrics", "tables")):
        _tables(out, stats_paths, log)  # e.g. a call cut off after its last run, before them
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


def argument_problem(args, data: dict) -> str | None:
    """What makes an argument unworkable (checked before anything is built), or None."""
    if args.time_limit is not None and not args.time_limit > 0:
        return f"--time-limit {args.time_limit:g}; allowed: seconds > 0 (leave it out for no limit)"
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; allowed: a folder (made if missing)"
    if args.archive:
        archive_path = Path(args.archive)
        if archive_path.is_dir():
            return f"--archive {archive_path} is a folder; allowed: a .tar.gz file name"
        if not archive_path.parent.is_dir():
            return (
                f"--archive {archive_path}: folder {archive_path.parent} does not exist; allowed: "
                f"a file in an existing folder"
            )
    for name, path in data.items():
        if not Path(path).exists():
            return f"--data {name}={path}: no such file or folder"
    if args.device:
        import torch

        try:
            device = torch.device(args.device)
        except RuntimeError:
            return f"--device {args.device}; allowed: cpu, cuda, cuda:N"
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if (device.index or 0) >= count:
                return (
                    f"--device {args.device}: this machine has {count} CUDA device(s); allowed: "
                    f"{'cpu' if not count else f'cpu, cuda:0..cuda:{count - 1}'}"
                )
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firstlayer.training.standalone",
        description="Train a config's grid without Snakemake.",
    )
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
    data, problem = {}, None
    for item in args.data:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            problem = problem or (
                f"--data {item!r}; allowed: NAME=PATH, e.g. cifar10=cifar10-train.zip"
            )
        elif name in data:
            problem = problem or (
                f"--data {name} given twice ({data[name]}, {path}); allowed: one file per dataset"
            )
        data.setdefault(name, path)
    problem = problem or argument_problem(args, data)
    if problem:  # one line, as firstlayer-profile says it (no usage text)
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    try:
        summary = run_grid(
            args.config,
            data,
            args.out,
            args.device,
            args.time_limit,
            log=lambda m: print(m, flush=True),
        )
    except ConfigError as error:  # "config error: ...", as the workflow says it
        print(error, file=sys.stderr)
        return 1
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.archive:
        print(f"wrote {archive(args.out, args.archive)}")
    done, skipped = len(summary["done"]), len(summary["skipped"])
    print(f"{done} runs done, {skipped} skipped, {summary['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
