"""Per-image patch statistics: each image's average patch (all a linear CNN with global average
pooling sees) and its patch energy along every principal component,
E_ni = mean over its patches p of (u_i . (x_p - mu))^2.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from firstlayer.datasets.sources import DatasetFile, selected_chunks
from firstlayer.errors import InputError
from firstlayer.h5io import atomic_h5, open_checked
from firstlayer.patches.stats import PatchStats, read_patch_stats, to_input_space

FORMAT = "firstlayer.image_features"


def average_patches(images_nchw, k: int, stride: int = 1) -> np.ndarray:
    """m(x) for every image: the mean of its k x k patches at `stride`, (N, C*k*k) in
    (c, kh, kw) order, float64. Exactly GAP(conv(x, w)) = w . m(x)."""
    x = torch.as_tensor(np.asarray(images_nchw), dtype=torch.float64)
    n, channels, height, width = x.shape
    if not 1 <= k <= min(height, width):
        raise InputError(f"patch size k={k} does not fit {height}x{width} images")
    rows = torch.arange(0, height - k + 1, stride)
    cols = torch.arange(0, width - k + 1, stride)
    out = torch.empty(n, channels, k, k, dtype=torch.float64)
    for a in range(k):
        for b in range(k):
            out[:, :, a, b] = x[:, :, rows + a][:, :, :, cols + b].mean(dim=(2, 3))
    return out.reshape(n, -1).numpy()


def image_features(images_uint8_nhwc, stats: PatchStats, chunk: int = 250):
    """(average patches (N, d), energies (N, d)) of uint8 NHWC images in the input space of
    `stats`; average patches are at stride 1 (what a stride-1 conv with GAP sees)."""
    basis = torch.from_numpy(
        stats.eigenvectors.T.reshape(stats.d, stats.channels, stats.k, stats.k)
    )
    offset = torch.from_numpy(stats.eigenvectors.T @ stats.mean).view(1, -1, 1, 1)
    averages, energies = [], []
    for start in range(0, len(images_uint8_nhwc), chunk):
        x = to_input_space(
            images_uint8_nhwc[start : start + chunk], stats.norm_mean, stats.norm_std
        ).permute(0, 3, 1, 2)
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
    with atomic_h5(
        out_path,
        FORMAT,
        {"dataset": str(dataset_path), "patches": str(patches_path), "split": split},
    ) as handle:
        handle.create_dataset("average_patches", data=np.concatenate(averages))
        handle.create_dataset("energies", data=np.concatenate(energies))
        handle.create_dataset("labels", data=labels)
        handle.create_dataset("image_indices", data=indices)
        handle.attrs["class_names"] = classes
        handle.attrs["k"] = stats.k
        handle.attrs["patches_per_image"] = (height - stats.k + 1) * (width - stats.k + 1)


def read_image_features(path) -> dict:
    with open_checked(path, FORMAT) as handle:
        return {
            "average_patches": handle["average_patches"][()],
            "energies": handle["energies"][()],
            "labels": handle["labels"][()],
            "class_names": [str(name) for name in handle.attrs["class_names"]],
            "patches_per_image": int(handle.attrs["patches_per_image"]),
            "k": int(handle.attrs["k"]),
        }
