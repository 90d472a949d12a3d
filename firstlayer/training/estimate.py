"""How much compute a training grid needs, and what its cluster jobs ask for.

    python -m firstlayer.training.estimate config/paper.yaml --images-per-second 2000
    python -m firstlayer.training.estimate config/paper.yaml --requests

Both tables come from firstlayer.common.cost, the numbers each `train` job of the workflow
requests: every run costs (training images x epochs) passes of its network, plus a forward pass
over its test images per epoch, scaled by its network's forward FLOPs relative to the reference
network (VGG11, 64 first-layer filters, full width) whose training throughput R is measured on
the device with bench/train_speed.py. R defaults to FIRSTLAYER_IMAGES_PER_SECOND, else to the
assumed (unmeasured) GPU rate of common.cost. The result is an estimate: memory-bound layers and
small batches make real throughput differ by tens of percent.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from firstlayer.common.config import validate_config
from firstlayer.common.cost import (
    BATCH_MINUTES,
    RATE_VARIABLE,
    dataset_facts,
    images_per_second,
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


def estimate(config: dict, images_per_second: float) -> list[dict]:
    """Per experiment block: runs, image passes, estimated device seconds and the requested
    minutes of its jobs."""
    grid = build_grid(config["experiments"], config["training"])
    rows = defaultdict(lambda: {"runs": 0, "image_passes": 0.0, "seconds": 0.0, "requested": 0})
    for entry in grid.values():
        spec = entry["spec"]
        facts = _facts(spec.dataset, config["datasets"])
        cost = training_cost(spec, facts)
        row = rows[entry["experiments"][0]]
        row["runs"] += 1
        row["image_passes"] += cost.image_passes
        row["seconds"] += cost.seconds(images_per_second)
        row["requested"] += training_request(spec, facts, images_per_second).runtime
    return [{"block": block, **values} for block, values in rows.items()]


def requests(config: dict, images_per_second: float) -> list[dict]:
    """One row per kind of run (dataset size, network, epochs): how many runs, the estimated
    minutes of one, and what its job asks for."""
    grid = build_grid(config["experiments"], config["training"])
    kinds: dict[tuple, dict] = {}
    for entry in grid.values():
        spec = entry["spec"]
        facts = _facts(spec.dataset, config["datasets"])
        cost = training_cost(spec, facts)
        request = training_request(spec, facts, images_per_second)
        key = (cost.train_images, spec.arch, spec.first_width, spec.width, spec.epochs)
        row = kinds.setdefault(
            key,
            {
                "train_images": cost.train_images,
                "arch": spec.arch,
                "first_width": spec.first_width,
                "width": spec.width,
                "epochs": spec.epochs,
                "runs": 0,
                "minutes": cost.seconds(images_per_second) / 60,
                "runtime": request.runtime,
                "mem_mb": request.mem_mb,
                "gpu": request.gpu,
                "cpus_per_gpu": request.cpus_per_gpu,
                "batched": request.runtime <= BATCH_MINUTES,
            },
        )
        row["runs"] += 1
    return sorted(kinds.values(), key=lambda r: (r["arch"], r["first_width"], r["width"],
                                                  r["train_images"], r["epochs"]))  # fmt: skip


def requests_markdown(config: dict, images_per_second: float) -> str:
    lines = [
        f"| runs | training images | network | epochs | estimate (min) at R = "
        f"{images_per_second:g} img/s | runtime (min) | mem_mb | gpu | cpus_per_gpu | batched |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in requests(config, images_per_second):
        network = f"{row['arch']} f{row['first_width']} w{row['width']:g}"
        lines.append(
            f"| {row['runs']} | {row['train_images']} | {network} | {row['epochs']} | "
            f"{row['minutes']:.1f} | {row['runtime']} | {row['mem_mb']} | {row['gpu']} | "
            f"{row['cpus_per_gpu']} | {'yes' if row['batched'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def estimate_markdown(config: dict, images_per_second: float) -> str:
    rows = estimate(config, images_per_second)
    lines = [
        f"| block | runs | image passes (M) | device-hours at {images_per_second:g} img/s "
        f"(reference VGG11) | requested hours |",
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


def load_config(path) -> dict:
    config = yaml.safe_load(Path(path).read_text())
    return validate_config(config, Path(__file__).resolve().parents[2] / "config" / "schema.yaml")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("configfile", help="a complete config, e.g. config/paper.yaml")
    parser.add_argument(
        "--images-per-second",
        type=float,
        default=None,
        help=f"measured training throughput of full-width VGG11 on the device (default: "
        f"{RATE_VARIABLE}, else the assumed rate the workflow's requests use)",
    )
    parser.add_argument(
        "--requests", action="store_true", help="the table of what each kind of run asks for"
    )
    args = parser.parse_args(argv)
    try:
        if args.images_per_second is None:
            rate = images_per_second()
        elif args.images_per_second > 0:
            rate = args.images_per_second
        else:
            raise InputError(
                f"--images-per-second={args.images_per_second:g}; allowed: a positive number"
            )
        config = load_config(args.configfile)
        table = (requests_markdown if args.requests else estimate_markdown)(config, rate)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
