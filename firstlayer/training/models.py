"""CIFAR-style CNNs whose first layer is the object of study.

The number of first-layer filters (`first_width`) and a multiplier for the hidden layers
(`width`) are separate settings, so a narrow network can still have the paper's 64 first-layer
filters. Every model has `first_conv`, a bias-free 3x3 convolution from the input channels.
"""

from __future__ import annotations

import torch
from torch import nn

from firstlayer.common.architectures import ARCHITECTURES, RESNETS, VGG_LAYERS, scaled, vgg_depth
from firstlayer.common.facts import FIRST_LAYER_K
from firstlayer.errors import InputError


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
            out = first_width if first else scaled(item, width)
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
            out = scaled(stage_width, width)
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
    if vgg_depth(arch) is not None:
        return VGG(vgg_depth(arch), first_width, width, num_classes, in_channels)
    if arch in RESNETS:
        return ResNet(*RESNETS[arch], first_width, width, num_classes, in_channels)
    raise InputError(f"architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
