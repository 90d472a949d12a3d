"""The patch statistics against independent plain-numpy computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import smooth_images

from firstlayer.h5io import atomic_h5
from firstlayer.patches.stats import (
    PatchMoments,
    PatchStats,
    fix_signs,
    patch_statistics,
    read_patch_stats,
    to_input_space,
    write_patch_stats,
)


def loop_covariance(images, k, mean, std):
    """Independent reference: every patch by explicit loops, (c, kh, kw) order, np.cov."""
    x = (images.astype(np.float64) / 255.0 - mean) / std
    patches = []
    for image in x:
        for p in range(image.shape[0] - k + 1):
            for q in range(image.shape[1] - k + 1):
                window = image[p : p + k, q : q + k, :]  # (kh, kw, c)
                patches.append(window.transpose(2, 0, 1).ravel())  # (c, kh, kw)
    patches = np.array(patches)
    return patches.mean(0), np.cov(patches.T, bias=True), len(patches)


def test_patch_order_matches_conv2d():
    """A patch vector times w.flatten() equals conv2d at that location."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(2, 9, 11, 3), dtype=np.uint8)
    weight = torch.from_numpy(rng.normal(size=(4, 3, 3, 3)))
    x = to_input_space(images, [0.5, 0.4, 0.3], [0.2, 0.3, 0.25])  # NHWC
    out = F.conv2d(x.permute(0, 3, 1, 2), weight)
    unfolded = F.unfold(x.permute(0, 3, 1, 2), 3)  # the layout PatchMoments' unfold path uses
    n, p, q = 1, 4, 6
    patch = x[n, p : p + 3, q : q + 3, :].permute(2, 0, 1).reshape(-1)
    assert torch.allclose(patch @ weight.reshape(4, -1).T, out[n, :, p, q], atol=1e-12)
    assert torch.allclose(unfolded[n, :, p * 9 + q], patch, atol=1e-15)


@pytest.mark.parametrize("strategy", ["band", "unfold"])
@pytest.mark.parametrize(
    "k,channels,size",
    [(3, 3, (13, 12)), (7, 3, (17, 19)), (2, 1, (10, 9)), (4, 3, (12, 12)), (1, 3, (5, 6))],
)
def test_streaming_covariance_matches_loop(strategy, k, channels, size):
    images = smooth_images(23, *size, channels, seed=k)
    mean = np.linspace(0.3, 0.5, channels)
    std = np.linspace(0.2, 0.3, channels)
    ref_mean, ref_cov, ref_count = loop_covariance(images, k, mean, std)
    stats = patch_statistics(images, k, mean, std, chunk=5, strategy=strategy)
    assert stats.count == ref_count
    assert np.abs(stats.covariance - ref_cov).max() <= 1e-10 * np.abs(ref_cov).max()
    assert np.allclose(stats.mean, ref_mean, rtol=0, atol=1e-12)
    values = np.linalg.eigvalsh(ref_cov)[::-1]
    assert np.allclose(stats.eigenvalues, values, rtol=1e-9, atol=1e-12)
    assert np.all(np.diff(stats.eigenvalues) <= 0)


def test_strategies_agree_and_chunking_does_not_matter():
    images = smooth_images(40, 16, 16, 3)
    a = patch_statistics(images, 5, [0.5] * 3, [0.25] * 3, chunk=7, strategy="band")
    b = patch_statistics(images, 5, [0.5] * 3, [0.25] * 3, chunk=40, strategy="unfold")
    assert np.allclose(a.covariance, b.covariance, rtol=1e-12, atol=1e-13)
    assert np.allclose(a.eigenvectors, b.eigenvectors, atol=1e-8)


def test_merge_equals_one_pass():
    images = smooth_images(30, 10, 10, 3)
    x = to_input_space(images, [0.5] * 3, [0.25] * 3)
    whole, left, right = (PatchMoments(3, (10, 10, 3)) for _ in range(3))
    whole.update(x)
    left.update(x[:11])
    right.update(x[11:])
    left.merge(right)
    assert np.allclose(left.finalize().covariance, whole.finalize().covariance, rtol=1e-13)


def test_eigenvectors_orthonormal_and_sign_fixed():
    stats = patch_statistics(smooth_images(20, 12, 12, 3), 3, [0.5] * 3, [0.25] * 3)
    u = stats.eigenvectors
    assert np.allclose(u.T @ u, np.eye(stats.d), atol=1e-10)
    assert np.allclose(u @ np.diag(stats.eigenvalues) @ u.T, stats.covariance, atol=1e-10)
    pivots = np.argmax(np.abs(u), axis=0)
    assert np.all(u[pivots, np.arange(stats.d)] > 0)
    assert np.array_equal(fix_signs(-u), u)  # deterministic whatever sign the solver returns


def test_input_space_change_is_exact():
    """Re-expressing the statistics in another normalisation equals recomputing them there."""
    images = smooth_images(15, 11, 11, 3)
    a = patch_statistics(images, 3, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    direct = patch_statistics(images, 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    moved = a.in_input_space([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert np.allclose(moved.covariance, direct.covariance, rtol=1e-10, atol=1e-12)
    assert np.allclose(moved.mean, direct.mean, atol=1e-10)
    assert np.allclose(moved.eigenvalues, direct.eigenvalues, rtol=1e-9)


def test_k_larger_than_image_is_refused():
    with pytest.raises(
        ValueError, match="k=9 does not fit images of size 8x8; allowed: 1 <= k <= 8"
    ):
        PatchMoments(9, (8, 8, 3))


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="strategy='fast'; allowed: auto, unfold, band"):
        PatchMoments(3, (8, 8, 3), strategy="fast")


def test_round_trip_through_hdf5(tmp_path):
    stats = patch_statistics(smooth_images(5, 8, 8, 1), 3, [0.5], [0.25])
    with atomic_h5(tmp_path / "p.h5", "firstlayer.patch_stats") as handle:
        write_patch_stats(handle, stats)
    back = read_patch_stats(tmp_path / "p.h5")
    assert isinstance(back, PatchStats) and back.k == 3 and back.channels == 1
    assert np.array_equal(back.covariance, stats.covariance)
    assert np.array_equal(back.eigenvectors, stats.eigenvectors)


def test_real_cifar10_patches_match_numpy(cifar_lossless):
    """On real CIFAR-10 (exact pixels): eigenvalues and profiles against plain numpy."""
    from firstlayer.patches.profiles import energy_profile

    images = cifar_lossless[0][:1000]
    mean = images.reshape(-1, 3).mean(0) / 255
    std = (images.reshape(-1, 3) / 255).std(0)
    x = (images.astype(np.float64) / 255 - mean) / std
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # n,30,30,c,3,3
    patches = windows.reshape(-1, 27)  # (c, kh, kw) order
    cov = np.cov(patches.T, bias=True)
    values, vectors = np.linalg.eigh(cov)
    values, vectors = values[::-1], vectors[:, ::-1]
    stats = patch_statistics(images, 3, mean, std, chunk=300)
    assert np.allclose(stats.eigenvalues, values, rtol=1e-9)
    weights = np.random.default_rng(0).normal(size=(64, 3, 3, 3))
    reference = np.sqrt(((weights.reshape(64, -1) @ vectors) ** 2).mean(0))
    assert np.allclose(energy_profile(weights, stats.eigenvectors), reference, rtol=1e-8)
    # natural-image signature: the first component (mean luminance) dominates
    assert stats.eigenvalues[0] > 10 * stats.eigenvalues[1]
