"""Figures of the theory and mechanism experiments, one function each (PDF and PNG)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from firstlayer.report.plots import STYLE, empty_figure, save, show_vector
from firstlayer.theory.formula import formula_profile


def formula_vs_t(lambdas, taus, title: str, *paths) -> None:
    """Fig. 4: the formula's profile (max = 1, log scale) at several tau = eta t."""
    lambdas = np.asarray(lambdas, np.float64)
    components = np.arange(1, len(lambdas) + 1)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        colours = sns.color_palette("viridis", len(taus))
        for tau, colour in zip(taus, colours):
            profile = (
                formula_profile(lambdas, 1.0, tau)
                if tau * lambdas.max() ** 2 < 1
                else formula_profile(lambdas, 1e-9, tau / 1e-9)
            )
            ax.semilogy(components, profile / profile.max(), color=colour, label=f"τ = {tau:.3g}")
        ax.semilogy(components, lambdas / lambdas.max(), "k--", linewidth=1, label="∝ λ (t → 0)")
        ax.semilogy(components, lambdas.min() / lambdas, "k:", linewidth=1, label="∝ 1/λ (t → ∞)")
        ax.set_xlabel("principal component of patches")
        ax.set_ylabel("energy (max = 1)")
        ax.set_title(title)
        ax.legend(fontsize=6, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
        save(fig, *paths)


def profile_panels(curves: pd.DataFrame, title: str, *paths, columns: int = 3) -> None:
    """Panels of max-normalised profiles. `curves`: panel, series, component, value, and
    optionally `style` ("measured", "prediction", "single", "recipe") and `label` (legend
    text). Without curves (a grid without the runs they compare) the figure says so."""
    if not len(curves):
        return empty_figure(f"{title}: no runs in this grid to compare", *paths)
    panels = list(dict.fromkeys(curves["panel"]))
    rows = -(-len(panels) // columns)
    columns = min(columns, len(panels))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
        for ax in axes.flat[len(panels) :]:
            ax.set_axis_off()
        for ax, panel in zip(axes.flat, panels):
            frame = curves[curves["panel"] == panel]
            for series, group in frame.groupby("series", sort=False):
                group = group.sort_values("component")
                style = group["style"].iloc[0] if "style" in group else "measured"
                label = group["label"].iloc[0] if "label" in group else series
                values = group["value"].to_numpy()
                kwargs = {
                    "measured": dict(color="k", linewidth=1.6),
                    "prediction": dict(linestyle="--", linewidth=1.3),
                    "single": dict(color="0.6", linewidth=0.5, alpha=0.6),
                    "recipe": dict(linewidth=1.2),
                }[style]
                ax.plot(
                    group["component"],
                    values / values.max(),
                    label=None if style == "single" else label,
                    **kwargs,
                )
            ax.set_xscale("log")
            ax.set_title(panel, fontsize=8)
            ax.set_xlabel("principal component of patches")
            ax.set_ylabel("energy (max = 1)")
            ax.legend(fontsize=6, frameon=False)
        fig.suptitle(title)
        fig.tight_layout()
        save(fig, *paths)


def fitted_t(fits: pd.DataFrame, *paths) -> None:
    """Fitted tau of the formula against the SGD step, one line per run (log-log)."""
    learned = fits[(fits["kind"] == "learned") & ~fits["frozen"]]
    for column in ("optimizer", "augment"):  # present where a run is off the paper's recipe
        if column in learned:
            learned = learned.assign(arch=learned["arch"] + " " + learned[column].astype(str))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        sns.lineplot(
            data=learned,
            x="step",
            y="formula_tau",
            hue="arch",
            style="labels",
            units="run",
            estimator=None,
            ax=axes[0],
            linewidth=0.9,
        )
        axes[0].set_xscale("log")
        axes[0].set_yscale("log")
        axes[0].set_ylabel("fitted τ = η t of the formula")
        sns.lineplot(
            data=learned,
            x="step",
            y="formula_correlation",
            hue="arch",
            style="labels",
            units="run",
            estimator=None,
            ax=axes[1],
            linewidth=0.9,
            legend=False,
        )
        axes[1].set_xscale("log")
        axes[1].set_ylabel("fit correlation")
        for ax in axes:
            ax.set_xlabel("SGD step")
        save(fig, *paths)


def label_statistics(table: pd.DataFrame, title: str, *paths) -> None:
    """Fig. 5: correlation of each class indicator with per-image patch energy per component."""
    matrix = table.pivot(index="class", columns="component", values="correlation")
    matrix = matrix.loc[list(dict.fromkeys(table["class"]))]
    limit = max(float(np.abs(matrix.values).max()), 1e-3)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(1.5 + 0.22 * matrix.shape[1], 1 + 0.3 * matrix.shape[0]))
        sns.heatmap(
            matrix,
            ax=ax,
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            cbar_kws={"label": "correlation with class indicator"},
        )
        ax.set_xlabel("principal component of patches")
        ax.set_ylabel("")
        ax.set_title(title)
        save(fig, *paths)


def whitening_curves(table: pd.DataFrame, *paths) -> None:
    """Fig. 6: response autocorrelation against pixel distance, mean ± std over banks."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for name, group in table.groupby("input", sort=False):
            group = group.sort_values("distance")
            (line,) = ax.plot(
                group["distance"], group["mean"], marker="o", markersize=2.5, label=name
            )
            ax.fill_between(
                group["distance"],
                group["mean"] - group["std"],
                group["mean"] + group["std"],
                color=line.get_color(),
                alpha=0.2,
            )
        ax.axhline(0, color="0.7", linewidth=0.6)
        ax.set_xlabel("distance (pixels)")
        ax.set_ylabel("autocorrelation of responses")
        ax.legend(fontsize=7, frameon=False)
        save(fig, *paths)


def filters(banks: dict, title: str, *paths) -> None:
    """Fig. 19: filter banks (K, C, k, k) side by side (e.g. after training and the change from
    init), each filter as an image with its own symmetric range (grey = 0)."""
    banks = {name: np.asarray(weights, np.float64) for name, weights in banks.items()}
    count = next(iter(banks.values())).shape[0]
    columns = int(np.ceil(np.sqrt(count)))
    rows = -(-count // columns)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(len(banks) * (columns * 0.6 + 0.3), rows * 0.6 + 0.7))
        for panel, (name, weights) in zip(
            fig.subfigures(1, len(banks), squeeze=False).flat, banks.items()
        ):
            channels, k = weights.shape[1], weights.shape[2]
            axes = panel.subplots(rows, columns, squeeze=False)
            for i, ax in enumerate(axes.flat):
                ax.set_axis_off()
                if i >= count:
                    continue
                show_vector(ax, weights[i].reshape(-1), channels, k)
            panel.suptitle(name, fontsize=8)
        fig.suptitle(title, fontsize=8, y=1.02)
        save(fig, *paths)


def clock_figure(records: pd.DataFrame, slopes: pd.DataFrame, *paths) -> None:
    """The clock test: the formula's fitted tau (by r; fits at a bound of the range left out)
    against each clock, one panel per system, group and clock, one colour per learning rate
    (points: seeds; line: their median), a slope-1 guide, and the pooled slopes in the title."""
    from firstlayer.theory.clock import CLOCKS, GROUP_COLUMNS

    key = [column for column in GROUP_COLUMNS if column in records]
    usable = records[~records["formula_tau_at_bound"].astype(bool)]
    panels = []
    for group, frame in usable.groupby(key, sort=False):
        for clock in CLOCKS:
            column = f"clock_{clock}"
            if column in frame and frame[column].notna().any():
                panels.append((dict(zip(key, group)), clock, frame))
    columns = min(3, max(1, len(panels)))
    rows = max(1, -(-len(panels) // columns))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
        for ax in axes.flat[len(panels) :]:
            ax.set_axis_off()
        for ax, (group, clock, frame) in zip(axes.flat, panels):
            column = f"clock_{clock}"
            lrs = sorted(frame["lr"].unique())
            colours = sns.color_palette("viridis", len(lrs))
            for lr, colour in zip(lrs, colours):
                mine = frame[frame["lr"] == lr].sort_values(column)
                ax.scatter(mine[column], mine["formula_tau"], s=5, color=colour, alpha=0.5)
                median = mine.groupby("step")[[column, "formula_tau"]].median()
                ax.plot(median[column], median["formula_tau"], color=colour, label=f"lr {lr:.3g}")
            x = frame[column].to_numpy()
            middle = np.exp(np.mean(np.log(x))), np.exp(np.mean(np.log(frame["formula_tau"])))
            guide = np.geomspace(x.min(), x.max(), 2)
            ax.plot(guide, middle[1] * guide / middle[0], "k:", linewidth=0.8, label="slope 1")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(CLOCKS[clock])
            ax.set_ylabel("fitted τ of the formula")
            title = f"{group.get('system', '')}: {group.get('labels', '')} labels"
            if group.get("inputs", "none") != "none":
                title += f", {group['inputs']}"
            pooled = slopes[
                (slopes["clock"] == clock)
                & (slopes["tau_fit"] == "formula_tau")
                & (slopes["scope"] == "pooled")
            ]
            for column_name, value in group.items():
                if column_name in pooled:
                    pooled = pooled[pooled[column_name] == value]
            if len(pooled) and pooled["n"].iloc[0] > 0:
                row = pooled.iloc[0]
                title += f"\na = {row['a_mean']:.2f}, b = {row['b_mean']:.2f} (n = {row['n']})"
            ax.set_title(title, fontsize=8)
            ax.legend(fontsize=6, frameon=False)
        fig.tight_layout()
        save(fig, *paths)
