"""What a run does to its training data: label settings and input transforms, by name.

A setting is a function registered under a name; a run names one of each. New settings (labels
from a function of the images, transformed inputs) are added here, never in the training loop.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import InputError

# name -> f(labels, images_uint8_nhwc, seed) -> new labels (same length, int64)
LABEL_SETTINGS: dict[str, Callable] = {}
# name -> f(images_float_nchw_standardised, seed) -> images of the same shape
INPUT_TRANSFORMS: dict[str, Callable] = {}


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
def true_labels(labels, images, seed):
    return np.asarray(labels, np.int64)


@label_setting("random")
def random_labels(labels, images, seed):
    """One fixed permutation of the training labels (class counts kept), from `seed` alone."""
    order = np.random.default_rng(seed).permutation(len(labels))
    return np.asarray(labels, np.int64)[order]


@input_transform("none")
def unchanged(images, seed):
    return images


def apply_labels(name: str, labels, images, seed: int) -> np.ndarray:
    if name not in LABEL_SETTINGS:
        raise InputError(f"label setting {name!r}; allowed: {', '.join(LABEL_SETTINGS)}")
    return LABEL_SETTINGS[name](labels, images, seed)


def apply_transform(name: str, images, seed: int):
    if name not in INPUT_TRANSFORMS:
        raise InputError(f"input transform {name!r}; allowed: {', '.join(INPUT_TRANSFORMS)}")
    return INPUT_TRANSFORMS[name](images, seed)
