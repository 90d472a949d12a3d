"""What a run does to its training data: label settings and input transforms, by name.

A setting is a function registered under a name (or a family of names with a number in them);
a run names one of each. New settings are added here, never in the training loop.

Label settings
  true        the dataset's labels
  random      one fixed permutation of the training labels (class counts kept), from the seed
  decileN     the decile (0-9) of each training image's patch energy along principal component
              N: labels that carry exactly the patch statistics the theorem assumes they do not
Input transforms
  none        the standardised images
  scaleNxA    the coefficient of principal component N scaled by A in every patch (below)
Augmentations (of each training batch, drawn anew every epoch; the test images never)
  none        the images as they are
  crop_flip   each image padded by 4 black pixels on every side and cropped back to its size at
              a random offset (0-8 pixels each way), then flipped left-right with probability
              1/2; the draws of an epoch come from the run's own seeded stream (`crop_flip_draws`),
              so a run is reproducible, and resumable at an epoch's end, bit for bit

Components are those of the training subset's own k x k patch PCA (k = the run's first-layer
kernel size, `common.architectures.first_layer`) in the standardised input space, computed once
per run from its training images.

How an image is formed from its scaled, overlapping patches: every patch p should become
M x_p with M = I + (A - 1) u u^T, but overlapping patches share pixels. The image whose patches
are closest to the scaled ones in least squares is the per-pixel average of the scaled patches
that cover it,
    x' = x + (A - 1) * conv_transpose(conv(x, u), u) / coverage,
a fixed linear filter (coverage = number of patches covering a pixel: k^2 inside, fewer at the
border). Labels are untouched. Because neighbouring patches overlap, the patch standard
deviation along u moves by a factor somewhat smaller than A and other components move a little;
the runs' patch statistics are measured, not assumed (see `scaled_lambdas`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from firstlayer.common.settings import (
    check_augment,
    check_labels,
    check_transform,
    parse_deciles,
    parse_scaling,
)
from firstlayer.errors import InputError


@dataclass
class Context:
    """The run's training images (uint8 NHWC), normalisation and first-layer kernel size k; the
    patch PCA of its k x k patches on demand."""

    images: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    k: int = 3
    _stats: object = field(default=None, repr=False)

    @property
    def stats(self):
        if self._stats is None:
            from firstlayer.patches.stats import patch_statistics

            self._stats = patch_statistics(self.images, self.k, self.mean, self.std)
        return self._stats

    def component(self, number: int) -> np.ndarray:
        if not 1 <= number <= self.stats.d:
            raise InputError(
                f"principal component {number}; allowed: 1..{self.stats.d} for "
                f"{self.k}x{self.k} patches of {self.stats.channels} channels"
            )
        return self.stats.eigenvectors[:, number - 1]


def true_labels(labels, context, seed):
    return np.asarray(labels, np.int64)


def random_labels(labels, context, seed):
    """One fixed permutation of the training labels (class counts kept), from `seed` alone."""
    order = np.random.default_rng(seed).permutation(len(labels))
    return np.asarray(labels, np.int64)[order]


def decile_labels(labels, context, seed, number: int):
    """The decile (0-9) of each image's patch energy along principal component `number`."""
    from firstlayer.patches.features import image_features

    context.component(number)  # a clear error for a number beyond d
    _, energy = image_features(context.images, context.stats)
    ranks = np.argsort(np.argsort(energy[:, number - 1], kind="stable"), kind="stable")
    return (ranks * 10 // len(ranks)).astype(np.int64)


def scale_component(
    images: torch.Tensor, vector: np.ndarray, factor: float, k: int, chunk: int = 1000
) -> torch.Tensor:
    """x + (factor - 1) conv_transpose(conv(x, u), u) / coverage, in chunks (see the module)."""
    channels = images.shape[1]
    u = torch.as_tensor(vector, dtype=images.dtype, device=images.device).view(1, channels, k, k)
    ones = torch.ones_like(u)
    out = torch.empty_like(images)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk]
        coefficient = F.conv2d(x, u)
        coverage = F.conv_transpose2d(torch.ones_like(coefficient[:1]), ones)[:, :1]
        out[start : start + chunk] = (
            x + (factor - 1) * F.conv_transpose2d(coefficient, u) / coverage
        )
    return out


def apply_labels(name: str, labels, context: Context, seed: int) -> np.ndarray:
    """The labels a run trains on under label setting `name` (same length, int64)."""
    check_labels(name)
    if name == "true":
        return true_labels(labels, context, seed)
    if name == "random":
        return random_labels(labels, context, seed)
    return decile_labels(labels, context, seed, parse_deciles(name))


def apply_transform(name: str, images, context: Context, seed: int):
    """Standardised float NCHW images under input transform `name` (same shape)."""
    check_transform(name)
    if name == "none":
        return images
    number, factor = parse_scaling(name)
    return scale_component(images, context.component(number), factor, context.k)


PAD = 4  # crop_flip: pixels of black padding on each side, so offsets 0..2 * PAD


def crop_flip_draws(n: int, seed: int) -> np.ndarray:
    """The crop_flip draws of one epoch for n training images, (n, 3) int64: vertical and
    horizontal crop offsets in 0..8 and a flip flag, from `seed` alone (a numpy PCG64 stream,
    the same on every platform). Row i belongs to the i-th image of the epoch's order."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, 2 * PAD + 1, size=(n, 2))
    flips = rng.integers(0, 2, size=(n, 1))
    return np.concatenate([offsets, flips], axis=1)


def crop_flip(images: torch.Tensor, draws: torch.Tensor, black: torch.Tensor) -> torch.Tensor:
    """A batch of standardised NCHW images padded by PAD pixels of `black` (the value of a black
    pixel in the input space, per channel), cropped back to H x W at each image's offsets and
    flipped left-right where its flag is set. `draws`: (B, 3) rows of `crop_flip_draws`, on the
    images' device. One gather, no per-image loop; exact (a copy of pixels)."""
    batch, channels, height, width = images.shape
    padded = black.view(1, channels, 1, 1).expand(batch, channels, height + 2 * PAD,
                                                  width + 2 * PAD).clone()  # fmt: skip
    padded[:, :, PAD : PAD + height, PAD : PAD + width] = images
    rows = draws[:, 0:1] + torch.arange(height, device=images.device)  # (B, H)
    across = torch.arange(width, device=images.device)
    across = torch.where(draws[:, 2:3].bool(), width - 1 - across, across)  # (B, W)
    cols = draws[:, 1:2] + across
    index = torch.arange(batch, device=images.device).view(batch, 1, 1)
    out = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def augmenter(name: str, black):
    """The batch augmentation of setting `name`, as f(images, draws) (None for `none`)."""
    check_augment(name)
    if name == "none":
        return None
    return lambda images, draws: crop_flip(images, draws, black)
