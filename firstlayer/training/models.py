"""CIFAR-style CNNs whose first layer is the object of study.

The number of first-layer filters (`first_width`) and a multiplier for the hidden layers
(`width`) are separate settings, so a narrow network can still have the paper's 64 first-layer
filters. Every model has `first_conv`, a bias-free 3x3 convolution from the input channels.
"""

from __future__ import annotations

import torch
from torch import nn

from firstlayer.common.facts import FIRST_LAYER_K
from firstlayer.errors import InputError

VGG_LAYERS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}
ARCHITECTURES = ["vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet20"]


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class VGG(nn.Module):
    """VGG with batch norm for small images: first conv in_channels -> first_width, 3x3, pad 1."""

    def __init__(
        self,
        depth: int,
        first_width: int = 64,
        width: float = 1.0,
        num_classes: int = 10,
        in_channels: int = 3,
    ):
        super().__init__()
        layers, channels, first = [], in_channels, True
        for item in VGG_LAYERS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            out = first_width if first else _scaled(item, width)
            size = FIRST_LAYER_K if first else 3
            conv = nn.Conv2d(channels, out, size, padding=size // 2, bias=False)
            if first:
                self.first_conv, first = conv, False
            layers += [conv, nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem in_channels -> first_width, no max-pool, then basic-block stages."""

    def __init__(
        self,
        blocks: list[int],
        stage_widths: list[int],
        first_width: int = 64,
        width: float = 1.0,
        num_classes: int = 10,
        in_channels: int = 3,
    ):
        super().__init__()
        self.first_conv = nn.Conv2d(
            in_channels, first_width, FIRST_LAYER_K, 1, FIRST_LAYER_K // 2, bias=False
        )
        self.stem = nn.Sequential(
            self.first_conv, nn.BatchNorm2d(first_width), nn.ReLU(inplace=True)
        )
        stages, channels = [], first_width
        for index, (count, stage_width) in enumerate(zip(blocks, stage_widths)):
            out = _scaled(stage_width, width)
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(BasicBlock(channels, out, stride))
                channels = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build(
    arch: str,
    first_width: int = 64,
    width: float = 1.0,
    num_classes: int = 10,
    in_channels: int = 3,
) -> nn.Module:
    """A model by name: vgg11/13/16/19, resnet18 (2-2-2-2, 64..512) or resnet20 (3x3 blocks,
    16..64)."""
    if first_width < 1 or width <= 0:
        raise InputError(f"first_width={first_width}, width={width}; both must be positive")
    if arch.startswith("vgg") and arch[3:].isdigit() and int(arch[3:]) in VGG_LAYERS:
        return VGG(int(arch[3:]), first_width, width, num_classes, in_channels)
    if arch == "resnet18":
        return ResNet(
            [2, 2, 2, 2], [64, 128, 256, 512], first_width, width, num_classes, in_channels
        )
    if arch == "resnet20":
        return ResNet([3, 3, 3], [16, 32, 64], first_width, width, num_classes, in_channels)
    raise InputError(f"architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
