"""`firstlayer-profile`: the energy profile of any first-layer file on any patch-statistics file,
or on a dataset file, whose k x k patch statistics are then computed for the layer's own k.

firstlayer-profile WEIGHTS PATCHES [--tensor NAME] [--input-mean M M M --input-std S S S]
                   [--input-space model|raw] [--images N] [--out profile.csv]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from firstlayer.h5io import FormatError
from firstlayer.pretrained.layers import WeightsError, profile_weight_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="firstlayer-profile",
        description="Energy profile of a first layer of any kernel size and stride (.npy OIHW "
        "array, PyTorch checkpoint or state_dict, or a first-layer .h5 of the workflow) on the "
        "principal components of a patch-statistics file (results/patches/<dataset>/k<k>.h5), "
        "or of the layer's own k x k patches of a dataset file "
        "(resources/datasets/<dataset>.h5), computed on the fly (every position, stride 1).",
    )
    parser.add_argument("weights", help="weight file: .npy, .pt/.pth/.ckpt, or first-layer .h5")
    parser.add_argument(
        "patches", help="patch-statistics .h5, or a dataset .h5 written by the workflow"
    )
    parser.add_argument(
        "--images",
        type=int,
        default=10000,
        help="with a dataset file: training images sampled (seed 0) for the patch statistics",
    )
    parser.add_argument("--tensor", help="name of the first-layer tensor in a checkpoint")
    parser.add_argument(
        "--input-mean",
        type=float,
        nargs="+",
        help="per-channel mean of the model's input normalisation (default: the patch file's)",
    )
    parser.add_argument("--input-std", type=float, nargs="+", help="per-channel std, likewise")
    parser.add_argument(
        "--input-space",
        choices=["model", "raw"],
        default="model",
        help="model: the input the layer sees; raw: [0, 1] pixels",
    )
    parser.add_argument("--out", help="write the profile table to this CSV instead of stdout")
    args = parser.parse_args(argv)
    problem = _check_arguments(args)
    if problem:  # before any file is read: one line, no warning, nothing computed is lost
        print(f"firstlayer-profile: error: {problem}", file=sys.stderr)
        return 2
    try:
        table = profile_weight_file(
            args.weights,
            args.patches,
            args.tensor,
            args.input_mean,
            args.input_std,
            args.input_space,
            args.images,
        )
    except (WeightsError, FormatError, ValueError) as err:
        print(f"firstlayer-profile: error: {err}", file=sys.stderr)
        return 2
    if args.out:
        try:
            table.to_csv(args.out, index=False)
        except OSError as err:  # e.g. the disk filled up meanwhile
            print(
                f"firstlayer-profile: error: cannot write --out {args.out} ({err})", file=sys.stderr
            )
            return 2
        print(f"wrote {args.out} ({len(table)} components)")
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0


def _check_arguments(args) -> str | None:
    """What is wrong with the command line, checked before anything is read or computed: the
    normalisation (both or neither, equal lengths, finite, std > 0) and where --out goes."""
    mean, std = args.input_mean, args.input_std
    if (mean is None) != (std is None):
        return "give both --input-mean and --input-std (one value per input channel), or neither"
    if mean is not None:
        if len(mean) != len(std):
            return (
                f"--input-mean has {len(mean)} values and --input-std {len(std)}; allowed: one "
                f"value per input channel in each"
            )
        if not all(math.isfinite(v) for v in (*mean, *std)):
            return "--input-mean and --input-std must be finite numbers"
        if not all(v > 0 for v in std):
            return f"--input-std {' '.join(f'{v:g}' for v in std)}; allowed: values > 0"
    if args.out:
        folder = Path(args.out).parent
        if not folder.is_dir():
            return f"--out {args.out}: folder {folder} does not exist"
        if not os.access(folder, os.W_OK):
            return f"--out {args.out}: folder {folder} is not writable"
        if Path(args.out).is_dir():
            return f"--out {args.out} is a folder; allowed: a file name"
    return None


if __name__ == "__main__":
    sys.exit(main())
