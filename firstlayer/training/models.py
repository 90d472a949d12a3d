"""CIFAR-style networks whose first layer is the object of study.

The number of first-layer filters (`first_width`) and a multiplier for the hidden layers
(`width`) are separate settings, so a narrow network can still have the paper's 64 first-layer
filters. Every model has `first_conv`, a bias-free convolution from the input channels whose
geometry its architecture declares (`common.architectures.first_layer`): 3x3 stride 1 for the
VGGs and ResNets, a KxK stride-K patch embedding for the ViT and the patchify-stem CNN.
"""

from __future__ import annotations

import torch
from torch import nn

from firstlayer.common.architectures import (
    ARCH_HELP,
    PATCH_CNN_LAYERS,
    RESNETS,
    VGG_LAYERS,
    VIT_MLP_RATIO,
    first_layer,
    patch_cnn_patch,
    scaled,
    vgg_depth,
    vit_heads,
    vit_shape,
)
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
        geometry = first_layer(f"vgg{depth}")
        for item in VGG_LAYERS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            out = first_width if first else scaled(item, width)
            size, padding = (geometry.k, geometry.padding) if first else (3, 1)
            conv = nn.Conv2d(channels, out, size, padding=padding, bias=False)
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
        geometry = first_layer("resnet18")
        self.first_conv = nn.Conv2d(
            in_channels, first_width, geometry.k, geometry.stride, geometry.padding, bias=False
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


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map at every position (ConvNeXt's stem norm)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PatchCNN(nn.Module):
    """A ConvNeXt-style patchify stem (KxK stride-K convolution without bias, then a LayerNorm
    over channels) before VGG11's layers from its 8x8 stage on (3x3 convolutions with batch norm
    and ReLU, 2x2 max-pools), global average pooling and a linear classifier."""

    def __init__(
        self,
        patch: int,
        first_width: int = 64,
        width: float = 1.0,
        num_classes: int = 10,
        in_channels: int = 3,
    ):
        super().__init__()
        self.first_conv = nn.Conv2d(in_channels, first_width, patch, patch, bias=False)
        layers, channels = [self.first_conv, LayerNorm2d(first_width)], first_width
        for item in PATCH_CNN_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            out = scaled(item, width)
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class Attention(nn.Module):
    """Multi-head self-attention written with plain matrix products (so every FLOP is counted
    the same way on every device)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * (dim // self.heads) ** -0.5
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """A pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small vision transformer for CIFAR-size images: the patch embedding (a KxK stride-K
    convolution without bias, `first_width` filters: the token width) is the first layer; a
    learned position embedding, `blocks` pre-norm blocks with about one head per 16 channels and
    an MLP of 4 x token width x `width`, a final LayerNorm, the mean over tokens and a linear
    classifier (no class token: the network pools globally, like the CNNs)."""

    def __init__(
        self,
        blocks: int,
        patch: int,
        first_width: int = 64,
        width: float = 1.0,
        num_classes: int = 10,
        in_channels: int = 3,
        side: int = 32,
    ):
        super().__init__()
        grid = (side - patch) // patch + 1
        if grid < 1:
            raise InputError(
                f"patch size {patch} does not fit {side}x{side} images; allowed: at most {side}"
            )
        self.first_conv = nn.Conv2d(in_channels, first_width, patch, patch, bias=False)
        self.position = nn.Parameter(torch.zeros(1, grid * grid, first_width))
        nn.init.normal_(self.position, std=0.02)
        hidden = scaled(VIT_MLP_RATIO * first_width, width)
        heads = vit_heads(first_width)
        self.blocks = nn.Sequential(*(Block(first_width, heads, hidden) for _ in range(blocks)))
        self.norm = nn.LayerNorm(first_width)
        self.classifier = nn.Linear(first_width, num_classes)

    def forward(self, x):
        tokens = self.first_conv(x).flatten(2).transpose(1, 2) + self.position
        return self.classifier(self.norm(self.blocks(tokens)).mean(dim=1))


def build(
    arch: str,
    first_width: int = 64,
    width: float = 1.0,
    num_classes: int = 10,
    in_channels: int = 3,
    side: int = 32,
) -> nn.Module:
    """A model by name: vgg11/13/16/19, resnet18 (2-2-2-2, 64..512), resnet20 (3x3 blocks,
    16..64), vitN / vitNpK (a ViT of N blocks on KxK patches) or patchcnn / patchcnnpK; `side`:
    the images' side (a ViT's position embedding has one entry per patch)."""
    if first_width < 1 or width <= 0:
        raise InputError(f"first_width={first_width}, width={width}; both must be positive")
    if vgg_depth(arch) is not None:
        return VGG(vgg_depth(arch), first_width, width, num_classes, in_channels)
    if arch in RESNETS:
        return ResNet(*RESNETS[arch], first_width, width, num_classes, in_channels)
    if vit_shape(arch) is not None:
        return ViT(*vit_shape(arch), first_width, width, num_classes, in_channels, side)
    if patch_cnn_patch(arch) is not None:
        return PatchCNN(patch_cnn_patch(arch), first_width, width, num_classes, in_channels)
    raise InputError(f"architecture {arch!r}; allowed: {ARCH_HELP}")
