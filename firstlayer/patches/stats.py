"""Exact statistics of image patches: streaming covariance, eigendecomposition, input spaces.

A patch is a stride-1, unpadded k x k window over all C channels, flattened in (c, kh, kw) order:
the order of `conv.weight.flatten(1)`, so that `conv2d(x, w)` at a location equals `patch @ w`.

Moments are summed exactly in float64 over image chunks (never materialising every patch and
never averaging per-chunk eigenvectors), then decomposed once with a symmetric solver. Two
exact accumulation strategies exist (see `PatchMoments`); both give the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from firstlayer.errors import InputError

LAYOUT = "c,kh,kw"


def patch_offsets(height: int, width: int, channels: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets into a flattened (y, x, c) image: of one patch's elements, in (c, kh, kw) order,
    and of the patch's top-left corner at every valid position."""
    c, i, j = np.meshgrid(np.arange(channels), np.arange(k), np.arange(k), indexing="ij")
    elements = (i * width * channels + j * channels + c).ravel()
    p, q = np.meshgrid(np.arange(height - k + 1), np.arange(width - k + 1), indexing="ij")
    corners = (p * width * channels + q * channels).ravel()
    return elements, corners


class PatchMoments:
    """Running float64 sums of all k x k patches of a stream of (n, H, W, C) float image chunks.

    Strategies (both exact, same numbers to rounding):
    - "unfold": unfold each chunk into its patches and add their Gram matrix: every pixel is
      copied into up to k*k patches, so memory traffic dominates.
    - "band": add the second moments of pixel pairs less than k rows apart, as a few large
      matrix products over bands of image rows, and sum the patch moments out of them at the
      end. Every pixel is read once per band product; one pass serves any k up to the band
      height + 1. Needs a (HWC)^2 accumulator, so it is used for small images only.
    `strategy="auto"` picks band when the accumulator is at most 512 MB. `centre` (per channel)
    is subtracted before summing: it leaves the covariance unchanged and keeps sums well
    conditioned. `stride` > 1 takes the patches of a strided grid only (positions 0, s, 2s, ...
    in each direction, as a stride-s first layer sees them; unfold strategy).
    """

    MAX_BAND_PIXELS = 8192

    def __init__(
        self,
        k: int,
        shape: tuple[int, int, int],
        strategy: str = "auto",
        centre: np.ndarray | None = None,
        stride: int = 1,
    ):
        height, width, channels = shape
        if not 1 <= k <= min(height, width):
            raise ValueError(
                f"patch size k={k} does not fit images of size {height}x{width}; "
                f"allowed: 1 <= k <= {min(height, width)}"
            )
        if stride < 1:
            raise ValueError(f"stride={stride}; allowed: a whole number >= 1")
        self.k, self.shape, self.stride = k, (height, width, channels), stride
        self.d = channels * k * k
        self.positions = ((height - k) // stride + 1) * ((width - k) // stride + 1)
        if strategy == "auto":
            small = height * width * channels <= self.MAX_BAND_PIXELS
            strategy = "band" if small and stride == 1 else "unfold"
        if strategy not in ("unfold", "band"):
            raise ValueError(f"strategy={strategy!r}; allowed: auto, unfold, band")
        if strategy == "band" and stride != 1:
            raise ValueError(f"strategy band with stride={stride}; allowed: unfold (or auto)")
        self.strategy = strategy
        self.centre = np.zeros(channels) if centre is None else np.asarray(centre, np.float64)
        self.images = 0
        size = self.d if strategy == "unfold" else height * width * channels
        self._sum = np.zeros(size)
        self._gram = np.zeros((size, size))
        self._buffer = None
        # Bands of at least k-1 rows: pixel pairs of one patch lie in one band or two adjacent.
        self.band_rows = max(k - 1, 4)

    def update(self, chunk: torch.Tensor | np.ndarray) -> None:
        """Add a chunk of images, (n, H, W, C), already in the input space being studied."""
        x = np.asarray(chunk, dtype=np.float64)
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"chunk of shape {tuple(x.shape)}; expected (n, {self.shape})")
        self._accumulate(x - self.centre)

    def update_uint8(self, images: np.ndarray, norm_mean, norm_std) -> None:
        """Add uint8 NHWC images, mapped to the input space (x / 255 - mean) / std in a buffer
        that is reused from chunk to chunk (so memory stays flat however many chunks come)."""
        images = np.asarray(images)
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"chunk of shape {images.shape}; expected (n, {self.shape})")
        if self._buffer is None or len(self._buffer) < len(images):
            self._buffer = np.empty((len(images),) + self.shape)
        x = self._buffer[: len(images)]
        std = np.asarray(norm_std, np.float64)
        np.multiply(images, 1.0 / (255.0 * std), out=x)
        x -= np.asarray(norm_mean, np.float64) / std + self.centre
        self._accumulate(x)

    def _accumulate(self, x: np.ndarray) -> None:
        """Add centred float64 images (n, H, W, C)."""
        # Products go through numpy's BLAS: on this workload it is both faster and ~10x more
        # accurate than torch's float64 matmul for tall, thin operands (measured: 3e-15 vs 4e-14
        # relative on a 900,000 x 27 Gram), which matters for the smallest eigenvalues.
        if self.strategy == "unfold":
            patches = F.unfold(
                torch.from_numpy(x).permute(0, 3, 1, 2), self.k, stride=self.stride
            )  # (n, d, P)
            rows = patches.transpose(1, 2).reshape(-1, self.d).numpy()
            for start in range(0, len(rows), 65536):  # short sums keep rounding small
                block = rows[start : start + 65536]
                self._gram += block.T @ block
        else:
            rows = x.reshape(x.shape[0], -1)
            height, width, channels = self.shape
            step = self.band_rows * width * channels
            for start in range(0, rows.shape[1], step):
                stop = min(start + 2 * step, rows.shape[1])
                self._gram[start : start + step, start:stop] += (
                    rows[:, start : start + step].T @ rows[:, start:stop]
                )
        self._sum += rows.sum(0)
        self.images += x.shape[0]

    def merge(self, other: PatchMoments) -> None:
        """Add another accumulator's sums (e.g. from a parallel worker)."""
        if (other.k, other.shape, other.strategy, other.stride) != (
            self.k,
            self.shape,
            self.strategy,
            self.stride,
        ) or not np.array_equal(other.centre, self.centre):
            raise ValueError("cannot merge patch moments of different k, shape, strategy or centre")
        self._sum += other._sum
        self._gram += other._gram
        self.images += other.images

    def patch_sums(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(sum of patches, sum of patch outer products, number of patches), centred sums."""
        count = self.images * self.positions
        total, gram = self._sum, self._gram
        if self.strategy == "unfold":
            return total.copy(), gram.copy(), count
        height, width, channels = self.shape
        step = self.band_rows * width * channels
        for start in range(step, gram.shape[0], step):  # mirror the upper off-diagonal bands
            gram[start : start + step, start - step : start] = gram[
                start - step : start, start : start + step
            ].T
        elements, corners = patch_offsets(height, width, channels, self.k)
        index = elements[:, None] + corners[None, :]  # (d, P): pixel of element e at corner t
        patch_total = total[index].sum(1)
        patch_gram = np.empty((self.d, self.d))
        for e in range(self.d):  # G[e, f] = sum over corners t of M[e + t, f + t]
            patch_gram[e] = gram[index[e][None, :], index].sum(1)
        return patch_total, patch_gram, count

    def finalize(self) -> PatchStats:
        if self.images == 0:
            raise ValueError("no images were accumulated")
        total, gram, count = self.patch_sums()
        mean_centred = total / count
        covariance = gram / count - np.outer(mean_centred, mean_centred)
        covariance = (covariance + covariance.T) / 2
        centre = np.repeat(self.centre, self.k * self.k)
        return PatchStats.from_moments(
            k=self.k,
            channels=self.shape[2],
            count=count,
            mean=mean_centred + centre,
            covariance=covariance,
        )


@dataclass
class PatchStats:
    """Patch covariance and its principal components in one input space.

    eigenvalues: descending variances; eigenvectors: columns, sign-fixed so each one's largest
    entry (first, on ties) is positive; `lambdas` = sqrt(eigenvalues), the patch standard
    deviation along each component (the paper's patch profile). `norm_mean`/`norm_std` record
    the input space: pixels in [0, 1], then (x - norm_mean[c]) / norm_std[c].
    """

    k: int
    channels: int
    count: int
    mean: np.ndarray
    covariance: np.ndarray
    eigenvalues: np.ndarray = field(repr=False)
    eigenvectors: np.ndarray = field(repr=False)
    norm_mean: np.ndarray = field(default=None, repr=False)
    norm_std: np.ndarray = field(default=None, repr=False)

    @classmethod
    def from_moments(cls, k, channels, count, mean, covariance, norm_mean=None, norm_std=None):
        eigenvalues, eigenvectors = eigendecompose(covariance)
        norm_mean = np.zeros(channels) if norm_mean is None else np.asarray(norm_mean, np.float64)
        norm_std = np.ones(channels) if norm_std is None else np.asarray(norm_std, np.float64)
        return cls(
            k,
            channels,
            count,
            np.asarray(mean, np.float64),
            covariance,
            eigenvalues,
            eigenvectors,
            norm_mean,
            norm_std,
        )

    @property
    def d(self) -> int:
        return self.channels * self.k * self.k

    @property
    def lambdas(self) -> np.ndarray:
        return np.sqrt(np.clip(self.eigenvalues, 0, None))

    def in_input_space(self, norm_mean, norm_std) -> PatchStats:
        """The same patches seen through another per-channel normalisation, exactly.

        A per-channel affine change x' = a x + b maps the covariance to diag(a) C diag(a), so no
        second pass over the images is needed to study a model that sees other inputs.
        """
        norm_mean = np.asarray(norm_mean, np.float64)
        norm_std = np.asarray(norm_std, np.float64)
        if norm_mean.shape != (self.channels,) or norm_std.shape != (self.channels,):
            raise ValueError(
                f"normalisation for {norm_mean.shape} channels; these patches have {self.channels}"
            )
        scale = self.norm_std / norm_std
        shift = (self.norm_mean - norm_mean) / norm_std
        a = np.repeat(scale, self.k * self.k)
        b = np.repeat(shift, self.k * self.k)
        covariance = self.covariance * np.outer(a, a)
        return PatchStats.from_moments(
            self.k, self.channels, self.count, a * self.mean + b, covariance, norm_mean, norm_std
        )


def eigendecompose(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and sign-fixed eigenvectors (columns) of a symmetric matrix."""
    values, vectors = np.linalg.eigh(np.asarray(covariance, np.float64))
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    return values, fix_signs(vectors)


def fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry (the first, on ties) is positive."""
    pivots = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[pivots, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1
    return vectors * signs


def to_input_space(images_uint8_nhwc: np.ndarray, norm_mean, norm_std) -> torch.Tensor:
    """uint8 NHWC images to float64 NHWC in the input space (x / 255 - mean) / std."""
    x = torch.from_numpy(np.ascontiguousarray(images_uint8_nhwc)).to(torch.float64)
    std = np.asarray(norm_std, np.float64)
    scale = torch.as_tensor(1.0 / (255.0 * std))
    shift = torch.as_tensor(np.asarray(norm_mean, np.float64) / std)
    return x * scale - shift


def patch_statistics(
    images_uint8_nhwc,
    k: int,
    norm_mean,
    norm_std,
    chunk: int = 1000,
    strategy: str = "auto",
    progress=None,
    indices=None,
    stride: int = 1,
) -> PatchStats:
    """Exact patch statistics of uint8 NHWC images (all of them, or the sorted `indices`), of
    every k x k position (`stride` 1) or of a stride-s grid of positions.

    `images_uint8_nhwc` may be an array or an h5py dataset; it is read `chunk` images at a time,
    so memory stays flat in the number of images. `progress` is an optional callable(n_done).
    """
    from firstlayer.datasets.sources import selected_chunks

    if indices is None:
        indices = np.arange(len(images_uint8_nhwc))
    _, height, width, channels = images_uint8_nhwc.shape
    norm_mean = np.asarray(norm_mean, np.float64)
    norm_std = np.asarray(norm_std, np.float64)
    # Centre on mid-grey in the target space: exactness does not depend on it, conditioning does.
    centre = (0.5 - norm_mean) / norm_std
    moments = PatchMoments(
        k, (height, width, channels), strategy=strategy, centre=centre, stride=stride
    )
    done = 0
    for block in selected_chunks(images_uint8_nhwc, indices, chunk):
        moments.update_uint8(block, norm_mean, norm_std)
        done += len(block)
        if progress is not None:
            progress(done)
    stats = moments.finalize()
    stats.norm_mean, stats.norm_std = norm_mean, norm_std
    return stats


def write_patch_stats(handle, stats: PatchStats) -> None:
    """Store `stats` in an open HDF5 file (layout in docs/formats.md)."""
    handle.create_dataset("eigenvalues", data=stats.eigenvalues)
    handle.create_dataset("eigenvectors", data=stats.eigenvectors)
    handle.create_dataset("covariance", data=stats.covariance)
    handle.create_dataset("mean", data=stats.mean)
    handle.attrs.update(
        {
            "k": stats.k,
            "channels": stats.channels,
            "count": stats.count,
            "layout": LAYOUT,
            "norm_mean": stats.norm_mean,
            "norm_std": stats.norm_std,
        }
    )


def read_patch_stats(path) -> PatchStats:
    from firstlayer.h5io import open_checked

    with open_checked(path, "firstlayer.patch_stats") as handle:
        if handle.attrs["layout"] != LAYOUT:
            raise InputError(
                f"{path}: patch layout {handle.attrs['layout']!r}; expected {LAYOUT!r}"
            )
        return PatchStats(
            k=int(handle.attrs["k"]),
            channels=int(handle.attrs["channels"]),
            count=int(handle.attrs["count"]),
            mean=handle["mean"][()],
            covariance=handle["covariance"][()],
            eigenvalues=handle["eigenvalues"][()],
            eigenvectors=handle["eigenvectors"][()],
            norm_mean=np.asarray(handle.attrs["norm_mean"]),
            norm_std=np.asarray(handle.attrs["norm_std"]),
        )


def read_stats_files(paths) -> dict:
    """{(dataset, k): PatchStats} of patch-statistics files results/patches/{dataset}/k{k}.h5
    (the dataset is the file's folder): runs look up the statistics of their own first layer."""
    from pathlib import Path

    out = {}
    for path in paths:
        stats = read_patch_stats(path)
        out[Path(path).parent.name, stats.k] = stats
    return out


def build_patch_stats(
    dataset_path,
    out_path,
    k: int,
    split: str = "train",
    n_images=None,
    seed: int = 0,
    normalization: str = "dataset",
    chunk_images: int = 1000,
    strategy: str = "auto",
    progress=None,
) -> PatchStats:
    """Patch statistics of a dataset file written to `out_path` (layout in docs/formats.md).

    Checks k against the image size before any expensive work. `progress(done, total)` is an
    optional callback.
    """
    from firstlayer.datasets.sources import DatasetFile, sample_indices
    from firstlayer.h5io import atomic_h5

    start = time.perf_counter()
    with DatasetFile(dataset_path) as data:
        height, width, channels = data.shape
        if not 1 <= k <= min(height, width):
            raise InputError(
                f"patch size k={k} does not fit the {height}x{width} images of "
                f"{dataset_path}; allowed: 1 <= k <= {min(height, width)}"
            )
        if normalization == "dataset":
            mean, std = data.mean, data.std
        elif normalization == "unit":
            mean, std = np.zeros(channels), np.ones(channels)
        else:
            raise InputError(f"normalization={normalization!r}; allowed: dataset, unit")
        indices = sample_indices(data.count(split), n_images, seed)
        print(
            f"{len(indices)} of {data.count(split)} {split} images, k={k}, normalisation "
            f"{normalization} (mean {np.round(mean, 4)}, std {np.round(std, 4)})"
        )
        stats = patch_statistics(
            data.images(split),
            k,
            mean,
            std,
            chunk=chunk_images,
            strategy=strategy,
            indices=indices,
            progress=None if progress is None else (lambda done: progress(done, len(indices))),
        )
        provenance = {
            "dataset": str(dataset_path),
            "dataset_sha256": data.source_sha256,
            "split": split,
            "n_images": n_images,
            "seed": seed,
            "normalization": normalization,
            "strategy": strategy,
        }
    with atomic_h5(out_path, "firstlayer.patch_stats", provenance) as handle:
        write_patch_stats(handle, stats)
        handle.create_dataset("image_indices", data=indices)
    print(
        f"{stats.count} patches of dimension {stats.d} in {time.perf_counter() - start:.1f} s; "
        f"top eigenvalues {np.round(stats.eigenvalues[:5], 5)}"
    )
    return stats
