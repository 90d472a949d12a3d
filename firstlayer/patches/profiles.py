"""Energy profiles of first-layer filter banks on a patch basis, and their similarities.

For filters w_k (K of them, each of length d in (c, kh, kw) order) and an orthonormal basis u_i
(the patch principal components), the energy profile is e_i = sqrt(mean_k (w_k . u_i)^2).
For trained networks the profile of the change from initialisation, w_k(t) - w_k(0), is the one
the theory speaks about; pretrained models, whose init is unknown, use raw weights.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd


def as_filter_matrix(weights) -> np.ndarray:
    """(K, C, k, k) or (K, d) weights as a float64 (K, d) matrix, rows in (c, kh, kw) order."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim not in (2, 4):
        raise ValueError(f"filter bank of shape {w.shape}; expected (K, C, k, k) or (K, d)")
    return w.reshape(w.shape[0], -1)


def energy_profile(weights, basis: np.ndarray, reference=None) -> np.ndarray:
    """Energy of a filter bank along each basis vector (columns of `basis`).

    With `reference` (the bank at initialisation, same shape), the profile of the change
    weights - reference. Returns the raw profile, length d.
    """
    w = as_filter_matrix(weights)
    if reference is not None:
        ref = as_filter_matrix(reference)
        if ref.shape != w.shape:
            raise ValueError(f"reference bank of shape {ref.shape} differs from {w.shape}")
        w = w - ref
    basis = np.asarray(basis, dtype=np.float64)
    if basis.shape[0] != w.shape[1]:
        raise ValueError(
            f"filters have {w.shape[1]} entries (C*k*k) but the basis has "
            f"{basis.shape[0]}: the patch size or channel count does not match"
        )
    coefficients = w @ basis
    return np.sqrt(np.mean(coefficients**2, axis=0))


def normalise(profile) -> np.ndarray:
    """Profile scaled to a maximum of 1 (the form plots and similarities use)."""
    profile = np.asarray(profile, dtype=np.float64)
    peak = profile.max()
    if not peak > 0:
        raise ValueError(
            "profile is all zeros: the filters are orthogonal to every component "
            "or equal to the reference"
        )
    return profile / peak


def similarity(a, b) -> float:
    """Pearson correlation of two profiles."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"profiles of different lengths {a.shape} and {b.shape}")
    return float(np.corrcoef(a, b)[0, 1])


def profile_table(profiles: dict[str, np.ndarray], **columns) -> pd.DataFrame:
    """Tidy table: one row per (name, component) with raw and max-normalised energy.

    Extra keyword columns (e.g. dataset="cifar10") are added to every row.
    """
    frames = []
    for name, profile in profiles.items():
        profile = np.asarray(profile, np.float64)
        frames.append(
            pd.DataFrame(
                {
                    "name": name,
                    "component": np.arange(1, len(profile) + 1),
                    "energy": profile,
                    "energy_normalised": normalise(profile),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    for key, value in columns.items():
        table[key] = value
    return table


def correlation_table(profiles: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy table of the Pearson correlation of every ordered pair of profiles (a, b)."""
    names = list(profiles)
    rows = [
        {"a": a, "b": b, "correlation": similarity(profiles[a], profiles[b])}
        for a, b in itertools.product(names, names)
    ]
    return pd.DataFrame(rows, columns=["a", "b", "correlation"])
