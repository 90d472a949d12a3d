"""How the labels relate to the patch statistics (the paper's Fig. 5).

The theorem assumes labels carry no information about the patch statistics; the energy of
image n along component i (`firstlayer.patches.features`) makes that checkable: its correlation
with each class indicator should be near zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def label_correlations(energies, labels, class_names) -> pd.DataFrame:
    """Pearson correlation of each class indicator with each component's per-image energy:
    a tidy table (class, component, correlation)."""
    energies = np.asarray(energies, np.float64)
    z = (energies - energies.mean(0)) / energies.std(0)
    rows = []
    for index, name in enumerate(class_names):
        indicator = (np.asarray(labels) == index).astype(np.float64)
        if indicator.std() == 0:
            continue
        zi = (indicator - indicator.mean()) / indicator.std()
        for component, value in enumerate(z.T @ zi / len(zi), start=1):
            rows.append({"class": name, "component": component, "correlation": value})
    return pd.DataFrame(rows)


def label_study(features: dict, dataset: str) -> pd.DataFrame:
    """Rule `label_stats`: the correlation table of one dataset's per-image features, with the
    strongest class-energy correlation printed to the log."""
    table = label_correlations(features["energies"], features["labels"], features["class_names"])
    table.insert(0, "dataset", dataset)
    strongest = table.loc[table["correlation"].abs().idxmax()]
    print(
        f"largest |correlation| {abs(strongest.correlation):.3f} ({strongest['class']}, "
        f"component {strongest.component})"
    )
    return table
