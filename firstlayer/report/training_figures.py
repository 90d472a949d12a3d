"""The training figures by name, from the training tables (a module of its own: only the
`plot_*` training rules depend on the training analysis through it)."""

from __future__ import annotations

import pandas as pd

from firstlayer.report import plots


def training_figure(figure: str, profiles_csv, metrics_csv, correlations_csv, *paths) -> None:
    """One training figure by name: true_vs_random, consistency, frozen or heatmap."""
    from firstlayer.common.settings import learned_unmanipulated
    from firstlayer.training.analysis import final_profiles, read_table, with_both

    profiles = read_table(profiles_csv)  # labels stay text
    learned = final_profiles(profiles[learned_unmanipulated(profiles)])
    if figure == "true_vs_random":
        plots.true_vs_random(with_both(learned, "labels", ("true", "random")), *paths)
    elif figure == "consistency":
        plots.consistency(
            learned[learned["labels"] == "true"], profiles[profiles["step"] == 0], *paths
        )
    elif figure == "frozen":
        metrics = read_table(metrics_csv)
        true = metrics[metrics["labels"] == "true"]
        plots.frozen_curves(with_both(true, "frozen", (True, False)), *paths)
    else:
        title = "Learned-profile correlations of all runs"
        plots.correlation_heatmap(pd.read_csv(correlations_csv), title, *paths)
    print(f"wrote {paths[0]}")
