"""`firstlayer-profile`: the energy profile of any first-layer file on any patch-statistics file,
or on a dataset file, whose k x k patch statistics are then computed for the layer's own k.

firstlayer-profile WEIGHTS PATCHES [--tensor NAME] [--input-mean M M M --input-std S S S]
                   [--input-space model|raw] [--images N] [--out profile.csv]
"""

from __future__ import annotations

import argparse
import sys

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
        table.to_csv(args.out, index=False)
        print(f"wrote {args.out} ({len(table)} components)")
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
