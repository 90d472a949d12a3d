"""The theory's linear CNN: autograd training against the closed form, the formula where its
assumption holds, and how far the formula is on real images."""

import numpy as np
import pytest
import torch
from conftest import smooth_images

from firstlayer.datasets.sources import channel_stats
from firstlayer.patches.features import average_patches
from firstlayer.patches.stats import patch_statistics
from firstlayer.theory.formula import fit_formula, formula_profile
from firstlayer.theory.linear_cnn import (
    LinearCNN,
    Moments,
    energy_of_change,
    exact_change,
    expected_random_label_profile,
    random_sign_labels,
    stable_eta,
    tiled_images,
    train_linear_cnn,
    train_on_average_patches,
)


def corr(a, b):
    return np.corrcoef(a, b)[0, 1]


def small_images(n=40, size=9, seed=0):
    x = smooth_images(n, size, size, 3, seed).astype(np.float64) / 255
    return (x - x.mean((0, 1, 2))).transpose(0, 3, 1, 2) / x.std()


@pytest.mark.parametrize("stride", [1, 3])
def test_average_patch_is_what_the_network_sees(stride):
    x = small_images()
    model = LinearCNN(3, 3, filters=4, stride=stride).double()
    average = average_patches(x, 3, stride)
    s = model.conv.weight.detach().numpy().reshape(4, -1).sum(0)
    assert np.allclose(model(torch.from_numpy(x)).detach().numpy(), average @ s, atol=1e-13)


def test_autograd_training_equals_the_closed_form():
    """Same labels, same init: the conv network trained by autograd lands on the eigen-
    decomposition formula Delta(t) = G(t) (b - A s(0)) to numerical precision."""
    x = small_images()
    y = np.where(np.arange(len(x)) % 3 == 0, 1.0, -1.0)
    torch.manual_seed(0)
    model = LinearCNN(3, 3, filters=4).double()
    init = model.conv.weight.detach().clone()
    moments = Moments.of(average_patches(x, 3), y)
    eta, steps = stable_eta(moments, 4, 0.9), 300
    trained = train_linear_cnn(model, torch.from_numpy(x), torch.from_numpy(y), eta, steps)
    predicted = exact_change(
        moments, eta, steps, filters=4, init_sum=init.numpy().reshape(4, -1).sum(0)
    )
    change = (trained - init).numpy().reshape(4, -1)
    assert np.abs(change - predicted).max() <= 1e-10 * np.abs(predicted).max()
    # the many-runs trainer on average patches is the same network
    batch = train_on_average_patches(
        average_patches(x, 3), y[None], init.numpy().reshape(1, 4, -1), eta, steps
    )
    assert np.allclose(batch[0], trained.numpy().reshape(4, -1), rtol=0, atol=1e-12)


def synthetic_setup(seed=0, n=2000, tiles=8):
    rng = np.random.default_rng(seed)
    lam2 = 1.0 / np.arange(1, 28) ** 1.5
    basis, _ = np.linalg.qr(rng.standard_normal((27, 27)))
    images = tiled_images(n, (basis * lam2) @ basis.T, 3, 3, tiles, seed + 1)
    return images, basis, np.sqrt(lam2), tiles * tiles


def test_seed_average_matches_the_formula_when_patches_are_independent():
    """No fitting: the formula at the known eta' = eta K / P and t."""
    images, basis, lambdas, patches_per_image = synthetic_setup()
    average = average_patches(images, 3, stride=3)
    moments, filters, runs = Moments.of(average), 8, 128
    eta, steps = stable_eta(moments, filters), 150
    init = np.random.default_rng(5).normal(0, 1e-4, (runs, filters, 27))
    weights = train_on_average_patches(
        average, random_sign_labels(runs, len(average), 4), init, eta, steps
    )
    profiles = energy_of_change(weights, init, basis)
    mean_profile = np.sqrt(np.mean(profiles**2, axis=0))
    formula = formula_profile(lambdas, eta * filters / patches_per_image, steps)
    assert corr(mean_profile, formula) >= 0.95
    assert np.median([corr(p, formula) for p in profiles]) < 0.8  # single runs scatter
    exact = expected_random_label_profile(moments, basis, eta, steps, filters, 1e-4)
    assert corr(mean_profile, exact) >= 0.95


def test_a_label_tied_to_one_component_breaks_the_formula():
    images, basis, lambdas, patches_per_image = synthetic_setup()
    average = average_patches(images, 3, stride=3)
    moments, filters, runs = Moments.of(average), 8, 48
    eta, steps = stable_eta(moments, filters), 150
    tied = np.sign(average @ basis[:, 10])  # the label is the sign along component 11
    init = np.random.default_rng(5).normal(0, 1e-4, (runs, filters, 27))
    weights = train_on_average_patches(average, np.repeat(tied[None], runs, 0), init, eta, steps)
    mean_profile = np.sqrt(np.mean(energy_of_change(weights, init, basis) ** 2, axis=0))
    formula = formula_profile(lambdas, eta * filters / patches_per_image, steps)
    assert np.argmax(mean_profile) == 10
    assert corr(mean_profile, formula) < 0.5


def test_on_real_images_the_exact_prediction_holds_and_the_formula_does_not(cifar_lossless):
    images, _ = cifar_lossless
    images = images[:2000]
    mean, std = channel_stats(images)
    stats = patch_statistics(images, 3, mean, std)
    x = ((images / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    average = average_patches(x, 3)
    moments, filters, runs = Moments.of(average), 8, 48
    eta, steps = stable_eta(moments, filters), 1000
    init = np.random.default_rng(1).normal(0, 1e-4, (runs, filters, 27))
    weights = train_on_average_patches(
        average, random_sign_labels(runs, len(x), 2), init, eta, steps
    )
    profiles = energy_of_change(weights, init, stats.eigenvectors)
    mean_profile = np.sqrt(np.mean(profiles**2, axis=0))
    exact = expected_random_label_profile(moments, stats.eigenvectors, eta, steps, filters, 1e-4)
    assert corr(mean_profile, exact) >= 0.98
    assert fit_formula(mean_profile, stats.lambdas).correlation < 0.9
