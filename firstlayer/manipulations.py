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

Components are those of the training subset's own k x k patch PCA (k = 3, the first layer's
size) in the standardised input space, computed once per run from its training images.

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

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError

# name -> f(labels, context, seed) -> new labels (same length, int64)
LABEL_SETTINGS: dict[str, Callable] = {}
# name -> f(images_float_nchw_standardised, context, seed) -> images of the same shape
INPUT_TRANSFORMS: dict[str, Callable] = {}
# families: (regex with groups, factory(*groups) -> setting function, description)
LABEL_FAMILIES: list[tuple[str, Callable, str]] = []
TRANSFORM_FAMILIES: list[tuple[str, Callable, str]] = []

PCA_K = 3


@dataclass
class Context:
    """The run's training images (uint8 NHWC) and normalisation; the patch PCA on demand."""

    images: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    _stats: object = field(default=None, repr=False)

    @property
    def stats(self):
        if self._stats is None:
            from .patches import patch_statistics
            self._stats = patch_statistics(self.images, PCA_K, self.mean, self.std)
        return self._stats

    def component(self, number: int) -> np.ndarray:
        if not 1 <= number <= self.stats.d:
            raise InputError(f"principal component {number}; allowed: 1..{self.stats.d} for "
                             f"{PCA_K}x{PCA_K} patches of {self.stats.channels} channels")
        return self.stats.eigenvectors[:, number - 1]


def label_setting(name: str):
    def register(function):
        LABEL_SETTINGS[name] = function
        return function
    return register


def input_transform(name: str):
    def register(function):
        INPUT_TRANSFORMS[name] = function
        return function
    return register


@label_setting("true")
def true_labels(labels, context, seed):
    return np.asarray(labels, np.int64)


@label_setting("random")
def random_labels(labels, context, seed):
    """One fixed permutation of the training labels (class counts kept), from `seed` alone."""
    order = np.random.default_rng(seed).permutation(len(labels))
    return np.asarray(labels, np.int64)[order]


def energy_deciles(number: int):
    def decile_labels(labels, context, seed):
        from .image_stats import image_features

        context.component(number)  # a clear error for a number beyond d
        _, energy = image_features(context.images, context.stats)
        ranks = np.argsort(np.argsort(energy[:, number - 1], kind="stable"), kind="stable")
        return (ranks * 10 // len(ranks)).astype(np.int64)
    return decile_labels


LABEL_FAMILIES.append((r"decile([1-9][0-9]*)", lambda n: energy_deciles(int(n)),
                       "decileN (N a principal component, 1-based)"))


@input_transform("none")
def unchanged(images, context, seed):
    return images


def scale_component(images: torch.Tensor, vector: np.ndarray, factor: float, k: int,
                    chunk: int = 1000) -> torch.Tensor:
    """x + (factor - 1) conv_transpose(conv(x, u), u) / coverage, in chunks (see the module)."""
    channels = images.shape[1]
    u = torch.as_tensor(vector, dtype=images.dtype, device=images.device).view(1, channels, k, k)
    ones = torch.ones_like(u)
    out = torch.empty_like(images)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk]
        coefficient = F.conv2d(x, u)
        coverage = F.conv_transpose2d(torch.ones_like(coefficient[:1]), ones)[:, :1]
        out[start:start + chunk] = x + (factor - 1) * F.conv_transpose2d(coefficient, u) / coverage
    return out


def component_scaling(number: int, factor: float):
    if not factor > 0:
        raise InputError(f"scale factor {factor}; allowed: a positive number")

    def scaled(images, context, seed):
        return scale_component(images, context.component(number), factor, PCA_K)
    return scaled


TRANSFORM_FAMILIES.append((r"scale([1-9][0-9]*)x([0-9]+(?:\.[0-9]+)?)",
                           lambda n, a: component_scaling(int(n), float(a)),
                           "scaleNxA (component N scaled by A > 0, e.g. scale1x0.5)"))


def _resolve(name: str, exact: dict, families: list, what: str) -> Callable:
    if name in exact:
        return exact[name]
    for pattern, factory, _ in families:
        match = re.fullmatch(pattern, name)
        if match:
            return factory(*match.groups())
    allowed = ", ".join([*exact, *(text for _, _, text in families)])
    raise InputError(f"{what} {name!r}; allowed: {allowed}")


def check_labels(name: str) -> None:
    _resolve(name, LABEL_SETTINGS, LABEL_FAMILIES, "label setting")


def check_transform(name: str) -> None:
    _resolve(name, INPUT_TRANSFORMS, TRANSFORM_FAMILIES, "input transform")


def apply_labels(name: str, labels, context: Context, seed: int) -> np.ndarray:
    return _resolve(name, LABEL_SETTINGS, LABEL_FAMILIES, "label setting")(labels, context, seed)


def apply_transform(name: str, images, context: Context, seed: int):
    return _resolve(name, INPUT_TRANSFORMS, TRANSFORM_FAMILIES, "input transform")(
        images, context, seed)


def parse_scaling(name: str) -> tuple[int, float] | None:
    """(component, factor) of a scaleNxA transform name, else None."""
    match = re.fullmatch(TRANSFORM_FAMILIES[0][0], name)
    return (int(match.group(1)), float(match.group(2))) if match else None


def parse_deciles(name: str) -> int | None:
    match = re.fullmatch(LABEL_FAMILIES[0][0], name)
    return int(match.group(1)) if match else None
