"""How much compute a training grid needs, from one measured throughput.

    python -m firstlayer.training.estimate config/paper.yaml --images-per-second 225

Every run costs (training images x epochs) passes of its network, plus a forward pass over its
test images per epoch. Networks differ in cost: each one's forward FLOPs per image are counted
(torch's FlopCounterMode) and its throughput is taken as the measured one of the reference
network (VGG11, 64 first-layer filters, full width; measure it on your device with
bench/train_speed.py) scaled by the FLOP ratio. The result is an estimate: memory-bound layers
and small batches make real throughput differ by tens of percent.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from firstlayer.common.config import validate_config
from firstlayer.common.facts import TORCHVISION_DATASETS
from firstlayer.common.grid import build_grid
from firstlayer.errors import InputError
from firstlayer.training.models import build

REFERENCE = ("vgg11", 64, 1.0)


def split_sizes(name: str, datasets: dict) -> tuple[int, int, int, int]:
    """(train images, test images, classes, channels) of a configured dataset."""
    spec = datasets[name]
    if spec["source"] == "torchvision":
        facts = TORCHVISION_DATASETS[spec["name"]]
        return facts.train_images, facts.test_images, facts.classes, facts.channels
    if spec["source"] == "subset":
        train, test, classes, channels = split_sizes(spec["of"], datasets)
        share = len(spec["classes"]) / classes
        return round(train * share), round(test * share), len(spec["classes"]), channels
    raise InputError(
        f"dataset {name!r} ({spec['source']}): its size is known only once built; "
        f"estimate grids of torchvision datasets and their subsets"
    )


def forward_flops(arch: str, first_width: int, width: float, classes: int, channels: int) -> float:
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        model = build(arch, first_width, width, classes, channels)
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, channels, 32, 32))
    return float(counter.get_total_flops())


def estimate(config: dict, images_per_second: float) -> list[dict]:
    grid = build_grid(config["experiments"], config["training"])
    flops, rows = {}, defaultdict(lambda: {"runs": 0, "image_passes": 0.0, "seconds": 0.0})
    for entry in grid.values():
        spec = entry["spec"]
        train, test, classes, channels = split_sizes(spec.dataset, config["datasets"])
        key = (spec.arch, spec.first_width, spec.width, classes, channels)
        if key not in flops:
            flops[key] = forward_flops(*key)
        reference = flops.setdefault(("ref",), forward_flops(*REFERENCE, 10, 3))
        n_train = min(spec.n_train or train, train)
        n_test = min(spec.n_test or test, test)
        # a training pass costs about 3 forward passes (forward + backward)
        passes = spec.epochs * (n_train + n_test / 3)
        seconds = passes * flops[key] / reference / images_per_second
        block = entry["experiments"][0]
        rows[block]["runs"] += 1
        rows[block]["image_passes"] += passes
        rows[block]["seconds"] += seconds
    return [{"block": block, **values} for block, values in rows.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("configfile", help="a complete config, e.g. config/paper.yaml")
    parser.add_argument(
        "--images-per-second",
        type=float,
        required=True,
        help="measured training throughput of full-width VGG11 on the device",
    )
    args = parser.parse_args(argv)
    if not args.images_per_second > 0:
        print(
            f"error: --images-per-second={args.images_per_second}; allowed: a positive number",
            file=sys.stderr,
        )
        return 2
    config = yaml.safe_load(Path(args.configfile).read_text())
    try:
        validate_config(config, Path(__file__).resolve().parents[2] / "config" / "schema.yaml")
        rows = estimate(config, args.images_per_second)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"| block | runs | image passes (M) | device-hours at {args.images_per_second:g} img/s "
        f"(reference VGG11) |\n|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['block']} | {row['runs']} | {row['image_passes'] / 1e6:.1f} | "
            f"{row['seconds'] / 3600:.1f} |"
        )
    total_runs = sum(r["runs"] for r in rows)
    total = sum(r["seconds"] for r in rows) / 3600
    print(
        f"| total | {total_runs} | {sum(r['image_passes'] for r in rows) / 1e6:.1f} | {total:.1f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
