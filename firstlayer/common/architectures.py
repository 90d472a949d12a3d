"""The layer tables of the networks the workflow trains, and the geometry of each network's first
layer, torch-free: `training.models` builds the networks from them, `common.cost` counts their
FLOPs and parameters from them while the workflow plans, and every analysis takes a run's patch
size from its architecture here.

Architectures by name:
  vgg11, vgg13, vgg16, vgg19   CIFAR-style VGG with batch norm; first layer 3x3, stride 1, pad 1
  resnet18, resnet20           CIFAR ResNets; first layer 3x3, stride 1, pad 1
  vitN, vitNpK                 a small vision transformer with N blocks; its first layer is the
                               patch embedding, a KxK stride-K convolution without bias (K = 4
                               when not named)
  patchcnn, patchcnnpK         VGG11's layers from its 8x8 stage on behind a ConvNeXt-style
                               patchify stem: a KxK stride-K convolution and a LayerNorm (K = 4)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firstlayer.errors import InputError

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
# The body of `patchcnn` behind its stem: VGG11's layers from the resolution a stride-4 stem
# leaves a 32x32 image at (8x8) on; 3x3 convolutions with batch norm, widths scaled by `width`.
PATCH_CNN_LAYERS = [256, 256, "M", 512, 512, "M", 512, 512, "M"]
DEFAULT_PATCH = 4  # the patch (kernel and stride) of vitN and patchcnn when not named
VIT_PATTERN = r"vit([1-9][0-9]*)(?:p([1-9][0-9]*))?"
PATCH_CNN_PATTERN = r"patchcnn(?:p([1-9][0-9]*))?"
# Names of every kind, for messages and tests (vitN and patchcnnpK name families).
ARCHITECTURES = [f"vgg{depth}" for depth in VGG_LAYERS] + list(RESNETS) + ["vit2", "patchcnn"]
ARCH_HELP = (
    "vgg11, vgg13, vgg16, vgg19, resnet18, resnet20, vitN (a vision transformer of N blocks on "
    "4x4 patches), vitNpK (on KxK patches), patchcnn (a 4x4 stride-4 patchify stem), patchcnnpK"
)
VIT_HEAD_WIDTH = 16  # attention heads of a ViT: its token width / 16 (at least one, a divisor)
VIT_MLP_RATIO = 4  # a ViT block's MLP hidden width: 4 x token width x `width`


def scaled(channels: int, width: float) -> int:
    """A hidden layer's width under the multiplier `width` (at least one channel)."""
    return max(1, int(round(channels * width)))


def vgg_depth(arch: str) -> int | None:
    """The depth of a VGG name (vgg11 -> 11), or None for any other name."""
    if arch.startswith("vgg") and arch[3:].isdigit() and int(arch[3:]) in VGG_LAYERS:
        return int(arch[3:])
    return None


def vit_shape(arch: str) -> tuple[int, int] | None:
    """(blocks, patch size) of a vitN / vitNpK name, or None for any other name."""
    match = re.fullmatch(VIT_PATTERN, arch)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or DEFAULT_PATCH)


def patch_cnn_patch(arch: str) -> int | None:
    """The stem's patch size of a patchcnn / patchcnnpK name, or None for any other name."""
    match = re.fullmatch(PATCH_CNN_PATTERN, arch)
    return None if match is None else int(match.group(1) or DEFAULT_PATCH)


def vit_heads(width: int) -> int:
    """Attention heads of a ViT whose tokens are `width` wide: about width / 16, a divisor."""
    target = max(1, width // VIT_HEAD_WIDTH)
    return max(h for h in range(1, target + 1) if width % h == 0)


@dataclass(frozen=True)
class Geometry:
    """A first layer's kernel size k, stride and padding (its filters are C x k x k)."""

    k: int
    stride: int = 1
    padding: int = 0

    def __str__(self) -> str:
        return f"{self.k}x{self.k} stride {self.stride}"

    def output_side(self, side: int) -> int:
        return (side + 2 * self.padding - self.k) // self.stride + 1


def check_architecture(arch: str) -> None:
    """Raise InputError naming `arch` and what is allowed, unless it names an architecture."""
    known = vgg_depth(arch) is not None or arch in RESNETS
    if not known and vit_shape(arch) is None and patch_cnn_patch(arch) is None:
        raise InputError(f"architecture {arch!r}; allowed: {ARCH_HELP}")


def first_layer(arch: str) -> Geometry:
    """The geometry of an architecture's first layer: 3x3 stride 1 (padding 1) for the VGGs and
    ResNets, KxK stride K (no padding) for the patch embedding of a ViT and a patchify stem."""
    check_architecture(arch)
    vit = vit_shape(arch)
    patch = vit[1] if vit else patch_cnn_patch(arch)
    if patch is not None:
        return Geometry(patch, patch, 0)
    return Geometry(3, 1, 1)


def check_fits(arch: str, side: int) -> None:
    """Raise InputError when the first layer of `arch` does not fit `side` x `side` images."""
    geometry = first_layer(arch)
    if geometry.output_side(side) < 1:
        raise InputError(
            f"architecture {arch!r}: its {geometry} first layer does not fit {side}x{side} "
            f"images; allowed: a patch size of at most {side}"
        )
