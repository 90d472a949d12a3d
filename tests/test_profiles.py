"""Energy profiles: the properties that make them meaningful."""

import numpy as np
import pytest
from conftest import smooth_images
from scipy.stats import ortho_group

from firstlayer.patches.profiles import (
    correlation_table,
    energy_profile,
    normalise,
    profile_table,
    similarity,
)
from firstlayer.patches.stats import patch_statistics


@pytest.fixture(scope="module")
def basis():
    return patch_statistics(smooth_images(30, 12, 12, 3), 3, [0.5] * 3, [0.25] * 3).eigenvectors


@pytest.fixture
def bank():
    return np.random.default_rng(3).normal(size=(16, 3, 3, 3))


@pytest.mark.parametrize("j", [0, 5, 26])
def test_filter_equal_to_eigenvector_is_one_hot(basis, j):
    profile = energy_profile(basis[:, j].reshape(1, 3, 3, 3), basis)
    expected = np.zeros(27)
    expected[j] = 1.0
    assert np.allclose(profile, expected, atol=1e-12)


def test_invariant_to_filter_permutation(basis, bank):
    shuffled = bank[np.random.default_rng(0).permutation(len(bank))]
    assert np.allclose(energy_profile(shuffled, basis), energy_profile(bank, basis), rtol=1e-12)


def test_invariant_to_orthogonal_mixing_of_filters(basis, bank):
    """Mixing the K filters by an orthogonal K x K matrix keeps every component's energy."""
    q = ortho_group.rvs(len(bank), random_state=1)
    mixed = (q @ bank.reshape(len(bank), -1)).reshape(bank.shape)
    assert np.allclose(energy_profile(mixed, basis), energy_profile(bank, basis), rtol=1e-10)


def test_normalised_profile_invariant_to_scale(basis, bank):
    assert np.allclose(
        normalise(energy_profile(7.5 * bank, basis)),
        normalise(energy_profile(bank, basis)),
        rtol=1e-12,
    )
    assert np.isclose(normalise(energy_profile(bank, basis)).max(), 1.0)


def test_profile_of_change_from_reference(basis, bank):
    init = np.random.default_rng(9).normal(size=bank.shape)
    assert np.allclose(
        energy_profile(init + bank, basis, reference=init), energy_profile(bank, basis), rtol=1e-10
    )


def test_energy_is_preserved(basis, bank):
    """An orthonormal basis keeps the total energy: sum_i e_i^2 = mean_k |w_k|^2."""
    profile = energy_profile(bank, basis)
    assert np.isclose((profile**2).sum(), (bank.reshape(16, -1) ** 2).sum(1).mean())


def test_mismatched_sizes_are_refused(basis):
    with pytest.raises(ValueError, match="filters have 75 entries .* the basis has 27"):
        energy_profile(np.ones((4, 3, 5, 5)), basis)
    with pytest.raises(ValueError, match="reference bank of shape"):
        energy_profile(np.ones((4, 27)), basis, reference=np.ones((5, 27)))


def test_tables(basis, bank):
    profiles = {
        "a": energy_profile(bank, basis),
        "b": energy_profile(bank[:8], basis),
        "c": energy_profile(basis[:, :2].T, basis),
    }
    table = profile_table(profiles, dataset="toy")
    assert len(table) == 3 * 27 and set(table.columns) >= {
        "name",
        "component",
        "energy",
        "energy_normalised",
        "dataset",
    }
    assert table.groupby("name")["energy_normalised"].max().eq(1).all()
    corr = correlation_table(profiles)
    assert len(corr) == 9
    pairs = corr.set_index(["a", "b"])["correlation"]
    assert pairs["a", "a"] == pytest.approx(1.0)
    assert pairs["a", "c"] == pytest.approx(np.corrcoef(profiles["a"], profiles["c"])[0, 1])
    assert pairs["a", "b"] == pytest.approx(pairs["b", "a"])
    assert similarity(profiles["a"], 3 * profiles["a"]) == pytest.approx(1.0)
