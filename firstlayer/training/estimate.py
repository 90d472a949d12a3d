"""How much compute a training grid needs, and what its cluster jobs ask for.

    python -m firstlayer.training.estimate config/paper.yaml
    python -m firstlayer.training.estimate --requests config/paper.yaml [site.yaml]

Both tables come from firstlayer.common.cost, the numbers each `train` job of the workflow
requests: every run costs (training images x epochs) passes of its network, plus a forward pass
over its test images per epoch, at its network's training throughput. The throughput is, first
found: --images-per-second or FIRSTLAYER_IMAGES_PER_SECOND (the reference network's rate,
VGG11 with 64 first-layer filters at full width, other networks scaled by FLOPs); the
calibration file `snakemake calibrate` writes (resources/calibration.json, or --calibration),
every network of the grid measured on the cluster's GPU with the real trainer; the measured
default of common.cost. The first line printed says which. Config files after the first
override it as `--configfile` does in the workflow (a site file pointing a dataset elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from firstlayer.common.config import apply_dataset_overrides, validate_config
from firstlayer.common.cost import (
    CALIBRATION,
    RATE_VARIABLE,
    Throughput,
    as_throughput,
    dataset_facts,
    throughput,
    training_cost,
    training_request,
)
from firstlayer.common.facts import TorchvisionDataset
from firstlayer.common.grid import build_grid
from firstlayer.errors import InputError


def _facts(name: str, datasets: dict) -> TorchvisionDataset:
    facts = dataset_facts(name, datasets)
    if facts is None:
        raise InputError(
            f"dataset {name!r} ({datasets[name]['source']}): its size is known only once built; "
            f"estimate grids of torchvision datasets and their subsets"
        )
    return facts


def estimate(config: dict, rate) -> list[dict]:
    """Per experiment block: runs, image passes, estimated device seconds and the requested
    minutes of its jobs. `rate`: a Throughput, or the reference network's images/s."""
    rate = as_throughput(rate)
    grid = build_grid(config["experiments"], config["training"])
    rows = defaultdict(lambda: {"runs": 0, "image_passes": 0.0, "seconds": 0.0, "requested": 0})
    for entry in grid.values():
        spec = entry["spec"]
        facts = _facts(spec.dataset, config["datasets"])
        cost = training_cost(spec, facts)
        row = rows[entry["experiments"][0]]
        row["runs"] += 1
        row["image_passes"] += cost.image_passes
        row["seconds"] += cost.seconds(rate)
        row["requested"] += training_request(spec, facts, rate).runtime
    return [{"block": block, **values} for block, values in rows.items()]


def requests(config: dict, rate, attempt: int = 1) -> list[dict]:
    """One row per kind of run (dataset size, network, epochs): how many runs, the rate and
    estimated minutes of one, and what its job asks for (at `attempt`)."""
    rate = as_throughput(rate)
    grid = build_grid(config["experiments"], config["training"])
    kinds: dict[tuple, dict] = {}
    for entry in grid.values():
        spec = entry["spec"]
        facts = _facts(spec.dataset, config["datasets"])
        cost = training_cost(spec, facts)
        request = training_request(spec, facts, rate, attempt)
        key = (cost.train_images, cost.network, spec.epochs)
        row = kinds.setdefault(
            key,
            {
                "train_images": cost.train_images,
                "network": cost.network,
                "arch": spec.arch,
                "first_width": spec.first_width,
                "width": spec.width,
                "epochs": spec.epochs,
                "runs": 0,
                "images_per_second": cost.rate(rate),
                "minutes": cost.seconds(rate) / 60,
                "runtime": request.runtime,
                "mem_mb": request.mem_mb,
                "gpu": request.gpu,
                "cpus_per_gpu": request.cpus_per_gpu,
                "batched": request.batched,
            },
        )
        row["runs"] += 1
    order = ("arch", "first_width", "width", "network", "train_images", "epochs")
    return sorted(kinds.values(), key=lambda row: tuple(row[key] for key in order))


def requests_markdown(config: dict, rate) -> str:
    lines = [
        "| runs | training images | network | epochs | images/s | estimate (min) | runtime (min) "
        "| mem_mb | gpu | cpus_per_gpu | batched |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in requests(config, rate):
        lines.append(
            f"| {row['runs']} | {row['train_images']} | {row['network']} | {row['epochs']} | "
            f"{row['images_per_second']:,.0f} | {row['minutes']:.1f} | {row['runtime']} | "
            f"{row['mem_mb']} | {row['gpu']} | {row['cpus_per_gpu']} | "
            f"{'yes' if row['batched'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def estimate_markdown(config: dict, rate) -> str:
    rows = estimate(config, rate)
    lines = [
        "| block | runs | image passes (M) | device-hours | requested hours |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['block']} | {row['runs']} | {row['image_passes'] / 1e6:.1f} | "
            f"{row['seconds'] / 3600:.1f} | {row['requested'] / 60:.1f} |"
        )
    lines.append(
        f"| total | {sum(r['runs'] for r in rows)} | "
        f"{sum(r['image_passes'] for r in rows) / 1e6:.1f} | "
        f"{sum(r['seconds'] for r in rows) / 3600:.1f} | "
        f"{sum(r['requested'] for r in rows) / 60:.1f} |"
    )
    return "\n".join(lines) + "\n"


def load_config(path, *overrides) -> dict:
    """A config file validated as the workflow does, with later files overriding it."""
    config = yaml.safe_load(Path(path).read_text())
    layers = [yaml.safe_load(Path(extra).read_text()) or {} for extra in overrides]
    for layer in layers:  # deep merge, as Snakemake merges --configfile files
        _merge(config, layer)
    apply_dataset_overrides(config, layers)
    return validate_config(config, Path(__file__).resolve().parents[2] / "config" / "schema.yaml")


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "configfiles", nargs="+", help="a complete config (e.g. config/paper.yaml), then overrides"
    )
    parser.add_argument(
        "--images-per-second",
        type=float,
        default=None,
        help=f"the reference network's training throughput (default: {RATE_VARIABLE}, else the "
        f"calibration file, else the measured default)",
    )
    parser.add_argument(
        "--calibration",
        default=CALIBRATION,
        help=f"the calibration file `snakemake calibrate` wrote (default: {CALIBRATION})",
    )
    parser.add_argument(
        "--requests", action="store_true", help="the table of what each kind of run asks for"
    )
    args = parser.parse_args(argv)
    try:
        if args.images_per_second is None:
            rate = throughput(calibration=args.calibration)
        elif args.images_per_second > 0:
            rate = Throughput(args.images_per_second, source="--images-per-second")
        else:
            raise InputError(
                f"--images-per-second={args.images_per_second:g}; allowed: a positive number"
            )
        config = load_config(*args.configfiles)
        table = (requests_markdown if args.requests else estimate_markdown)(config, rate)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"rates: {rate.source}")
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
