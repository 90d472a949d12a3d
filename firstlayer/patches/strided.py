"""How much the patches a strided first layer sees differ from all k x k patches.

Profiles are measured on the PCA of every k x k position (stride 1), as for the 3x3 stems. A
patchify stem (a k x k stride-k convolution) sees only the positions 0, k, 2k, ... of each image,
whose statistics differ from all positions' by how images differ between the strided grid and
the positions between its points (image borders, and the spatial phase of structure). This
module measures the difference on the same sampled images:

- per component i: lambda_i of all positions, and the patch standard deviation along the same
  u_i on the strided grid (`strided_std_along`, ratio near 1: the strided patches vary alike
  along the basis the profiles use); the strided grid's own lambda'_i; |u_i . u'_i| and the
  overlap of the leading i components of the two bases, ||U_i^T U'_i||_F^2 / i (1: the same
  subspace);
- per run of that geometry (`theory.recipes`), the correlation of its final learned profile
  computed on the two bases (1: the choice of basis does not change the profile).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from firstlayer.patches.stats import (
    PatchStats,
    patch_statistics,
    read_patch_stats,
    write_patch_stats,
)


def compare_bases(full: PatchStats, strided: PatchStats) -> pd.DataFrame:
    """One row per component: all-position and strided statistics side by side (see module)."""
    u, v = full.eigenvectors, strided.eigenvectors
    along = np.sqrt(np.clip(np.einsum("di,de,ei->i", u, strided.covariance, u), 0, None))
    cosines = np.abs(np.einsum("di,di->i", u, v))
    overlap = [float(np.sum((u[:, :i].T @ v[:, :i]) ** 2) / i) for i in range(1, full.d + 1)]
    return pd.DataFrame(
        {
            "component": np.arange(1, full.d + 1),
            "lambda_all": full.lambdas,
            "std_strided_along_u": along,
            "std_ratio": along / np.where(full.lambdas > 0, full.lambdas, np.nan),
            "lambda_strided": strided.lambdas,
            "abs_cosine": cosines,
            "subspace_overlap": overlap,
        }
    )


def strided_study(dataset_path, stats_path, stride: int, out_path, chunk: int = 1000):
    """The strided grid's patch statistics of the images the all-position statistics
    `stats_path` were computed on, in the same input space, written to `out_path` (the layout of
    any patch-statistics file); returns the per-component comparison table."""
    from firstlayer.datasets.sources import DatasetFile
    from firstlayer.h5io import atomic_h5, open_checked

    full = read_patch_stats(stats_path)
    with open_checked(stats_path, "firstlayer.patch_stats") as handle:
        indices = handle["image_indices"][()]
        provenance = json.loads(handle.attrs["provenance"])
    with DatasetFile(dataset_path) as data:
        strided = patch_statistics(
            data.images(provenance.get("split", "train")),
            full.k,
            full.norm_mean,
            full.norm_std,
            chunk=chunk,
            indices=indices,
            stride=stride,
        )
    with atomic_h5(out_path, "firstlayer.patch_stats", {**provenance, "stride": stride}) as handle:
        write_patch_stats(handle, strided)
        handle.create_dataset("image_indices", data=indices)
        handle.attrs["stride"] = stride
    table = compare_bases(full, strided)
    table.insert(0, "stride", stride)
    table.insert(0, "k", full.k)
    print(
        f"k={full.k}: {full.count} patches at every position, {strided.count} on the stride-"
        f"{stride} grid; std ratio along u_i {table['std_ratio'].min():.3f}.."
        f"{table['std_ratio'].max():.3f}; |cos(u_i, u'_i)| of the first 5 "
        f"{np.round(table['abs_cosine'].head(5).to_numpy(), 3)}"
    )
    return table
