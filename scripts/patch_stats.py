"""Rule `patch_stats`: exact patch covariance and PCA of one dataset split for one k."""
import time

import numpy as np
import torch

from firstlayer.datasets import DatasetFile, sample_indices
from firstlayer.h5io import atomic_h5
from firstlayer.logs import progress, redirect_to
from firstlayer.patches import patch_statistics, write_patch_stats

redirect_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings = dict(snakemake.params.settings)
k = int(snakemake.wildcards.k)

with DatasetFile(snakemake.input[0]) as data:
    height, width, _ = data.shape
    if k > min(height, width):  # before any expensive work
        raise SystemExit(f"patch size k={k} is larger than the images of "
                         f"{snakemake.wildcards.dataset} ({height}x{width}); allowed: k <= "
                         f"{min(height, width)}")
    if settings["normalization"] == "dataset":
        mean, std = data.mean, data.std
    else:
        mean, std = np.zeros(len(data.mean)), np.ones(len(data.mean))
    split = settings["split"]
    indices = sample_indices(data.count(split), settings["n_images"], settings["seed"])
    print(f"{len(indices)} of {data.count(split)} {split} images, k={k}, "
          f"normalisation {settings['normalization']} (mean {mean}, std {std})")
    images = data.images(split)[indices] if len(indices) < data.count(split) else data.images(split)
    start = time.perf_counter()
    with progress(len(indices), f"patches k={k}") as bar:
        stats = patch_statistics(images, k, mean, std, chunk=settings["chunk_images"],
                                 strategy=settings["strategy"],
                                 progress=lambda done: bar.update(done - bar.n))
    seconds = time.perf_counter() - start
    print(f"{stats.count} patches of dimension {stats.d} in {seconds:.1f} s; top eigenvalues "
          f"{np.round(stats.eigenvalues[:5], 5)}")
    provenance = {"dataset": snakemake.wildcards.dataset, "settings": settings,
                  "dataset_sha256": data.source_sha256, "images_used": len(indices),
                  "normalization": settings["normalization"]}
with atomic_h5(snakemake.output[0], "firstlayer.patch_stats", provenance) as handle:
    write_patch_stats(handle, stats)
    handle.create_dataset("image_indices", data=indices)
