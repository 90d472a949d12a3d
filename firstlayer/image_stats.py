"""Per-image patch statistics: each image's average patch and its patch energy along every
principal component, and how the labels relate to them (the paper's Fig. 5).

The theorem assumes labels carry no information about the patch statistics; the energy of
image n along component i, E_ni = mean over its patches p of (u_i . (x_p - mu))^2, makes that
checkable: its correlation with each class indicator should be near zero.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .datasets import DatasetFile, selected_chunks
from .h5io import atomic_h5, open_checked
from .linear_cnn import average_patches
from .patches import PatchStats, read_patch_stats, to_input_space

FORMAT = "firstlayer.image_features"


def image_features(images_uint8_nhwc, stats: PatchStats, chunk: int = 250):
    """(average patches (N, d), energies (N, d)) of uint8 NHWC images in the input space of
    `stats`; average patches are at stride 1 (what a stride-1 conv with GAP sees)."""
    basis = torch.from_numpy(stats.eigenvectors.T.reshape(stats.d, stats.channels, stats.k, stats.k))
    offset = torch.from_numpy(stats.eigenvectors.T @ stats.mean).view(1, -1, 1, 1)
    averages, energies = [], []
    for start in range(0, len(images_uint8_nhwc), chunk):
        x = to_input_space(images_uint8_nhwc[start:start + chunk], stats.norm_mean,
                           stats.norm_std).permute(0, 3, 1, 2)
        averages.append(average_patches(x, stats.k))
        coefficients = F.conv2d(x, basis) - offset  # u_i . (x_p - mu) at every position
        energies.append(coefficients.pow(2).mean(dim=(2, 3)).numpy())
    return np.concatenate(averages), np.concatenate(energies)


def build_image_features(dataset_path, patches_path, out_path, progress=None) -> None:
    """Features of the images the patch statistics were computed on (their recorded indices)."""
    stats = read_patch_stats(patches_path)
    with open_checked(patches_path, "firstlayer.patch_stats") as handle:
        indices = handle["image_indices"][()]
        split = json.loads(handle.attrs["provenance"]).get("split", "train")
    with DatasetFile(dataset_path) as data:
        labels = data.labels(split)[indices]
        classes = list(data.class_names)
        height, width, _ = data.shape
        averages, energies, done = [], [], 0
        for block in selected_chunks(data.images(split), indices, 1000):
            average, energy = image_features(block, stats)
            averages.append(average)
            energies.append(energy)
            done += len(block)
            if progress is not None:
                progress(done, len(indices))
    with atomic_h5(out_path, FORMAT, {"dataset": str(dataset_path),
                                      "patches": str(patches_path), "split": split}) as handle:
        handle.create_dataset("average_patches", data=np.concatenate(averages))
        handle.create_dataset("energies", data=np.concatenate(energies))
        handle.create_dataset("labels", data=labels)
        handle.create_dataset("image_indices", data=indices)
        handle.attrs["class_names"] = classes
        handle.attrs["k"] = stats.k
        handle.attrs["patches_per_image"] = (height - stats.k + 1) * (width - stats.k + 1)


def read_image_features(path) -> dict:
    with open_checked(path, FORMAT) as handle:
        return {"average_patches": handle["average_patches"][()],
                "energies": handle["energies"][()], "labels": handle["labels"][()],
                "class_names": [str(name) for name in handle.attrs["class_names"]],
                "patches_per_image": int(handle.attrs["patches_per_image"])}


def label_correlations(energies, labels, class_names) -> pd.DataFrame:
    """Pearson correlation of each class indicator with each component's per-image energy:
    a tidy table (class, component, correlation)."""
    energies = np.asarray(energies, np.float64)
    z = (energies - energies.mean(0)) / energies.std(0)
    rows = []
    for index, name in enumerate(class_names):
        indicator = (np.asarray(labels) == index).astype(np.float64)
        if indicator.std() == 0:
            continue
        zi = (indicator - indicator.mean()) / indicator.std()
        for component, value in enumerate(z.T @ zi / len(zi), start=1):
            rows.append({"class": name, "component": component, "correlation": value})
    return pd.DataFrame(rows)
