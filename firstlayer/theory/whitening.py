"""Whitening evidence (the paper's Fig. 6): spatial autocorrelation of first-layer responses.

Natural images are strongly correlated between neighbouring pixels; a filter bank that whitens
patches removes that correlation from its outputs. For a bank of filters (or none: the RGB
channels themselves) the autocorrelation at distance delta is the correlation between a
response and the same channel's response delta pixels to the right or below, pooled over
images, positions and channels (each channel centred and scaled by its own statistics).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from firstlayer.errors import InputError
from firstlayer.patches.stats import PatchStats


def response_autocorrelation(
    images_nchw, bank=None, max_distance: int = 12, chunk: int = 16
) -> np.ndarray:
    """Autocorrelation at distances 0..max_distance of conv(images, bank) (valid, stride 1);
    `bank` None uses the images' channels. Horizontal and vertical shifts are averaged."""
    if chunk < 1:
        raise InputError(f"chunk={chunk}; allowed: a number of images >= 1")
    # float32 responses: correlations need 3 digits
    x = torch.as_tensor(np.asarray(images_nchw), dtype=torch.float32)
    r = x if bank is None else F.conv2d(x, torch.as_tensor(np.asarray(bank), dtype=torch.float32))
    r = r - r.mean(dim=(0, 2, 3), keepdim=True)
    r = r / r.pow(2).mean(dim=(0, 2, 3), keepdim=True).sqrt().clamp_min(1e-300)
    size = min(r.shape[2], r.shape[3])
    if max_distance >= size:
        raise InputError(
            f"max_distance={max_distance}; the responses are {size} pixels wide, "
            f"allowed: at most {size - 1}"
        )
    # products summed over a few images at a time, while they are still in cache (3x as fast
    # as whole-tensor products at 1,000 images), in float64
    across = np.zeros(max_distance + 1)
    down = np.zeros(max_distance + 1)
    height, width = r.shape[2], r.shape[3]
    for start in range(0, len(r), chunk):
        part = r[start : start + chunk]
        for delta in range(max_distance + 1):
            across[delta] += float(
                (part[:, :, :, delta:] * part[:, :, :, : width - delta]).sum(dtype=torch.float64)
            )
            down[delta] += float(
                (part[:, :, delta:, :] * part[:, :, : height - delta, :]).sum(dtype=torch.float64)
            )
    delta = np.arange(max_distance + 1)
    responses = r.shape[0] * r.shape[1]
    return (
        across / (responses * height * (width - delta))
        + down / (responses * (height - delta) * width)
    ) / 2


def whitening_bank(stats: PatchStats, epsilon: float = 1e-4) -> np.ndarray:
    """The ideal whitening filter bank of the patch covariance, as a convolution: ZCA,
    W = U diag(1 / sqrt(eigenvalue + epsilon * max eigenvalue)) U^T, keeps for each channel the
    row of W that outputs the patch's centre pixel; (C, C, k, k) filters for odd k.
    epsilon keeps the noise-level components from dominating; a larger k whitens further out."""
    if stats.k % 2 == 0:
        raise InputError(f"the whitening bank needs an odd patch size; got k={stats.k}")
    values = np.clip(stats.eigenvalues, 0, None)
    scale = 1 / np.sqrt(values + epsilon * values.max())
    matrix = (stats.eigenvectors * scale) @ stats.eigenvectors.T
    centre = (stats.k // 2) * stats.k + stats.k // 2
    rows = [channel * stats.k * stats.k + centre for channel in range(stats.channels)]
    return matrix[rows].reshape(stats.channels, stats.channels, stats.k, stats.k)


def random_bank(filters: int, channels: int, k: int, seed: int) -> np.ndarray:
    """A bank as PyTorch initialises a conv layer (kaiming-uniform, a = sqrt(5)): uniform on
    +-1/sqrt(fan_in)."""
    bound = 1 / math.sqrt(channels * k * k)
    rng = np.random.default_rng(seed)
    return rng.uniform(-bound, bound, (filters, channels, k, k))


def whitening_study(
    dataset_path,
    stats_path,
    run_paths=(),
    k: int = 7,
    epsilon: float = 1e-4,
    images: int = 1000,
    random_banks: int = 20,
    max_distance: int = 12,
):
    """Autocorrelation curves (input, distance, mean, std, n) of RGB, random first layers,
    trained first layers (`run_paths`, final weights) and the ideal whitening bank on a seeded
    sample of training images in the dataset's standardised input space."""
    import pandas as pd

    from firstlayer.datasets.sources import DatasetFile, sample_indices, selected_chunks
    from firstlayer.patches.stats import read_patch_stats, to_input_space
    from firstlayer.training.run import read_run

    stats = read_patch_stats(stats_path)
    if stats.k != k:
        raise InputError(
            f"{stats_path} holds k={stats.k} patch statistics; the whitening bank needs k={k}"
        )
    with DatasetFile(dataset_path) as data:
        indices = sample_indices(data.count("train"), images, 0)
        raw = np.concatenate(list(selected_chunks(data.images("train"), indices, 1000)))
        x = to_input_space(raw, data.mean, data.std).permute(0, 3, 1, 2).numpy()
    runs = [read_run(path) for path in run_paths]
    for run, path in zip(runs, run_paths):
        if run.final.shape[-1] % 2 == 0:
            raise InputError(
                f"{path}: a {run.final.shape[-1]}x{run.final.shape[-1]} first layer; the "
                f"whitening figure compares centred (odd-sized) stride-1 first layers only"
            )
    filters, kernel = (runs[0].final.shape[0], runs[0].final.shape[2]) if runs else (64, 3)
    curves = {
        "RGB input": [response_autocorrelation(x, None, max_distance)],
        f"random init ({filters} filters {kernel}x{kernel})": [
            response_autocorrelation(
                x, random_bank(filters, x.shape[1], kernel, seed), max_distance
            )
            for seed in range(random_banks)
        ],
    }
    # one pair of curves per recipe (optimiser, augmentation) where the runs have several
    recipes = sorted({(run.spec.optimizer, run.spec.augment) for run in runs})
    for recipe in recipes:
        group = [run for run in runs if (run.spec.optimizer, run.spec.augment) == recipe]
        suffix = f" ({', '.join(recipe)})" if len(recipes) > 1 else ""
        curves[f"trained first layer{suffix}"] = [
            response_autocorrelation(x, run.final, max_distance) for run in group
        ]
        # what training added: the part of the filters the theory's profile describes
        curves[f"trained, change from init{suffix}"] = [
            response_autocorrelation(x, run.final - run.init, max_distance) for run in group
        ]
    curves[f"ideal whitening (ZCA {stats.k}x{stats.k})"] = [
        response_autocorrelation(x, whitening_bank(stats, epsilon), max_distance)
    ]
    rows = []
    for name, values in curves.items():
        values = np.asarray(values)
        for distance in range(max_distance + 1):
            rows.append(
                {
                    "input": name,
                    "distance": distance,
                    "mean": values[:, distance].mean(),
                    "std": values[:, distance].std(ddof=0),
                    "n": len(values),
                }
            )
    return pd.DataFrame(rows)
