"""Per-image patch statistics, label statistics, whitening and the fit tables, against
independent computations and real CIFAR-10."""

import numpy as np
import pandas as pd
import pytest
from conftest import smooth_images

from firstlayer.datasets.sources import channel_stats
from firstlayer.errors import InputError
from firstlayer.patches.features import image_features
from firstlayer.patches.stats import patch_statistics
from firstlayer.theory.fits import fit_profiles, table3
from firstlayer.theory.formula import formula_profile
from firstlayer.theory.label_stats import label_correlations
from firstlayer.theory.whitening import random_bank, response_autocorrelation, whitening_bank


def test_image_features_equal_a_direct_patch_loop():
    images = smooth_images(5, 8, 8, 3)
    mean, std = channel_stats(images)
    stats = patch_statistics(images, 3, mean, std)
    average, energy = image_features(images, stats, chunk=2)
    x = (images / 255.0 - mean) / std
    for n in range(5):
        patches = np.array(
            [
                x[n, i : i + 3, j : j + 3].transpose(2, 0, 1).ravel()
                for i in range(6)
                for j in range(6)
            ]
        )
        assert np.allclose(average[n], patches.mean(0), atol=1e-12)
        coefficients = (patches - stats.mean) @ stats.eigenvectors
        assert np.allclose(energy[n], (coefficients**2).mean(0), rtol=1e-9)


def test_label_statistics_find_a_class_tied_to_one_component():
    rng = np.random.default_rng(0)
    energies = rng.lognormal(size=(600, 27))
    labels = rng.integers(0, 3, 600)
    energies[labels == 2, 4] *= 3  # class 2 has more energy along component 5
    table = label_correlations(energies, labels, ["a", "b", "c"])
    strongest = table.loc[table["correlation"].abs().idxmax()]
    assert (strongest["class"], strongest["component"]) == ("c", 5)
    indicator = (labels == 2).astype(float)
    assert strongest["correlation"] == pytest.approx(np.corrcoef(indicator, energies[:, 4])[0, 1])
    others = table[(table["component"] != 5)]["correlation"].abs()
    assert others.max() < 0.2


def test_autocorrelation_of_white_noise_is_zero_off_centre():
    x = np.random.default_rng(0).normal(size=(50, 3, 24, 24))
    curve = response_autocorrelation(x, None, 5)
    assert curve[0] == pytest.approx(1) and np.abs(curve[1:]).max() < 0.02


def test_autocorrelation_in_chunks_equals_the_whole_tensor_formula():
    """Summed a few images at a time (37 images: a partial last chunk), the autocorrelation is
    the per-channel correlation of the whole tensor, computed here directly in numpy."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 3, 20, 20)).cumsum(axis=3).cumsum(axis=2)  # correlated neighbours
    bank = random_bank(5, 3, 3, 0)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))
    r = np.einsum("ncijkl,fckl->nfij", windows, bank)  # valid cross-correlation, as conv2d
    r = (r - r.mean(axis=(0, 2, 3), keepdims=True)) / r.std(axis=(0, 2, 3), keepdims=True)
    size = r.shape[3]
    expected = [
        np.mean(
            [
                (r[:, f, :, d:] * r[:, f, :, : size - d]).mean()
                + (r[:, f, d:, :] * r[:, f, : size - d, :]).mean()
                for f in range(5)
            ]
        )
        / 2
        for d in range(8)
    ]
    curve = response_autocorrelation(x, bank, 7, chunk=16)
    assert curve[1] > 0.5
    assert np.allclose(curve, expected, rtol=0, atol=1e-6)


def test_autocorrelation_refuses_an_empty_chunk_before_any_convolution():
    with pytest.raises(InputError, match=r"chunk=0; allowed: a number of images >= 1"):
        response_autocorrelation(np.zeros((2, 3, 8, 8)), None, 3, chunk=0)


def test_whitening_bank_decorrelates_real_images_and_rgb_does_not(cifar_lossless):
    images, _ = cifar_lossless
    mean, std = channel_stats(images)
    stats = patch_statistics(images, 7, mean, std)
    x = ((images[:500] / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    rgb = response_autocorrelation(x, None, 12)
    white = response_autocorrelation(x, whitening_bank(stats), 12)
    random = response_autocorrelation(x, random_bank(64, 3, 3, 0), 12)
    assert rgb[1:].min() > 0.3 and random[10] > 0.25
    assert np.abs(white[2:]).max() < 0.08


def test_table3_summarises_final_fits_and_the_random_init_baseline():
    lambdas = np.sort(np.random.default_rng(0).lognormal(0, 1.2, 27))[::-1]
    rows = []
    for run, tau, lr in (("a", 0.1, 0.01), ("b", 0.3, 0.01), ("c", 0.2, 0.1)):
        for step, profile, raw in (
            # each run its own initialisation (runs sharing one count once)
            (0, np.zeros(27), np.random.default_rng(ord(run)).uniform(0.5, 1, 27)),
            (10, formula_profile(lambdas, 1e-7, tau / 1e-7), None),
        ):
            rows.append(
                pd.DataFrame(
                    {
                        "run": run,
                        "step": step,
                        "epoch": step / 10,
                        "component": np.arange(1, 28),
                        "energy": profile,
                        "energy_raw": raw if raw is not None else profile,
                        "dataset": "d",
                        "arch": "vgg11",
                        "first_width": 8,
                        "width": 1.0,
                        "seed": 0,
                        "labels": "true",
                        "inputs": "none",
                        "frozen": False,
                        "epochs": 1,
                        "lr": lr,
                    }
                )
            )
    fits = fit_profiles(pd.concat(rows), {("d", 3): type("S", (), {"lambdas": lambdas})()})
    learned = fits[fits["kind"] == "learned"].set_index("run")
    assert learned.loc["a", "formula_tau"] == pytest.approx(0.1, rel=1e-3)
    assert learned.loc["b", "formula_correlation"] > 0.99999
    table = table3(fits)
    # runs of another learning rate are another row, never pooled
    assert sorted(table.loc[table["network"] == "vgg11", "lr"]) == [0.01, 0.1]
    table = table[table["lr"].isna() | (table["lr"] == 0.01)].set_index("network")
    assert table.loc["vgg11", "n"] == 2 and table.loc["random init", "n"] == 3
    assert table.loc["vgg11", "formula_mean"] > 0.99999
