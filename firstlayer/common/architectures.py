"""The layer tables of the networks the workflow trains, torch-free: `training.models` builds
the networks from them and `common.cost` counts their FLOPs and parameters from them while the
workflow plans."""

from __future__ import annotations

# CIFAR-style VGG: convolution widths per depth, "M" a 2x2 max-pool (the first entry is the first
# layer, whose width is the run's `first_width`; the others scale with `width`).
VGG_LAYERS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
         512, 512, "M"],
}  # fmt: skip
# CIFAR ResNets: basic blocks per stage and each stage's width (before the `width` multiplier).
RESNETS = {
    "resnet18": ([2, 2, 2, 2], [64, 128, 256, 512]),
    "resnet20": ([3, 3, 3], [16, 32, 64]),
}
ARCHITECTURES = [f"vgg{depth}" for depth in VGG_LAYERS] + list(RESNETS)


def scaled(channels: int, width: float) -> int:
    """A hidden layer's width under the multiplier `width` (at least one channel)."""
    return max(1, int(round(channels * width)))


def vgg_depth(arch: str) -> int | None:
    """The depth of a VGG name (vgg11 -> 11), or None for any other name."""
    if arch.startswith("vgg") and arch[3:].isdigit() and int(arch[3:]) in VGG_LAYERS:
        return int(arch[3:])
    return None
