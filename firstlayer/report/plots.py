"""Figures, one function each. Every function writes the same figure as PDF and PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

STYLE = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
}


def save(fig, *paths) -> None:
    """Save one figure to every path (format from the suffix), atomically per file."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, bbox_inches="tight")
        tmp.replace(path)
    plt.close(fig)


def empty_figure(message: str, *paths) -> None:
    """A figure the grid has no data for: it says so (and the job's log says so too)."""
    print(f"nothing to plot: {message}")
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"nothing to plot: {message}", ha="center", va="center", wrap=True)
        save(fig, *paths)


def patch_spectrum(stats, title: str, *paths) -> None:
    """Eigenvalues of the patch covariance, descending, on a log scale."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.semilogy(
            np.arange(1, len(stats.eigenvalues) + 1),
            np.clip(stats.eigenvalues, 1e-300, None),
            marker="o",
            markersize=2.5,
            linewidth=1,
        )
        ax.set_xlabel("principal component")
        ax.set_ylabel("variance (eigenvalue)")
        ax.set_title(title)
        save(fig, *paths)


def component_image(vector: np.ndarray, channels: int, k: int) -> np.ndarray:
    """An eigenvector as a k x k image with one symmetric range: 0.5 is zero, 0 and 1 are -/+max."""
    v = vector.reshape(channels, k, k).transpose(1, 2, 0)
    peak = np.abs(v).max() or 1.0
    return 0.5 + 0.5 * v / peak


def show_vector(ax, vector: np.ndarray, channels: int, k: int) -> None:
    """Draw a (c, kh, kw) vector as a k x k image on its own symmetric range (colour for RGB)."""
    image = component_image(vector, channels, k)
    if channels == 1:
        ax.imshow(image[..., 0], cmap="RdBu_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")


def patch_components(stats, title: str, *paths, max_components: int = 64) -> None:
    """The leading principal components as k x k images (colour for RGB)."""
    n = min(stats.d, max_components)
    columns = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            rows, columns, figsize=(columns * 0.8, rows * 0.8 + 0.4), squeeze=False
        )
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i >= n:
                continue
            show_vector(ax, stats.eigenvectors[:, i], stats.channels, stats.k)
            ax.set_title(str(i + 1), fontsize=6, pad=1)
        fig.suptitle(title)
        save(fig, *paths)


def profile_lines(
    table: pd.DataFrame, title: str, *paths, reference: pd.Series | None = None
) -> None:
    """Max-normalised energy profiles (tidy table: name, component, energy_normalised), one line
    each; `reference` (indexed by component) is drawn dashed, e.g. the patch lambdas."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        sns.lineplot(
            data=table,
            x="component",
            y="energy_normalised",
            hue="name",
            ax=ax,
            linewidth=0.9,
            legend="brief",
        )
        if reference is not None:
            ax.plot(
                reference.index,
                reference.values / reference.values.max(),
                "k--",
                linewidth=1.2,
                label="patch std (λ)",
            )
        ax.set_xscale("log")
        ax.set_xlabel("principal component of patches")
        ax.set_ylabel("energy (max = 1)")
        ax.set_title(title)
        ax.legend(fontsize=6, ncol=2, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
        save(fig, *paths)


def correlation_heatmap(table: pd.DataFrame, title: str, *paths) -> None:
    """Heatmap of a tidy correlation table (a, b, correlation)."""
    if table.empty:
        return empty_figure("no profiles to correlate", *paths)
    matrix = table.pivot(index="a", columns="b", values="correlation")
    order = list(dict.fromkeys(table["a"]))
    matrix = matrix.loc[order, order]
    size = 2.5 + 0.32 * len(order)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(size + 1, size))
        sns.heatmap(
            matrix,
            ax=ax,
            vmin=-1,
            vmax=1,
            cmap="RdBu_r",
            square=True,
            annot=len(order) <= 20,
            fmt=".2f",
            annot_kws={"fontsize": 5},
            cbar_kws={"label": "Pearson correlation of profiles"},
        )
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_title(title)
        save(fig, *paths)


def true_vs_random(final: pd.DataFrame, *paths) -> None:
    """Mean learned profile (max-normalised) with a ±1 std band over seeds, true vs random labels,
    one panel per dataset."""
    if final.empty:
        return empty_figure("no model has runs with both true and random labels", *paths)
    final = final.assign(dataset=panel_names(final))
    datasets = sorted(final["dataset"].unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, len(datasets), figsize=(4.2 * len(datasets), 3.2), squeeze=False
        )
        for ax, dataset in zip(axes.flat, datasets):
            sns.lineplot(
                data=final[final["dataset"] == dataset],
                x="component",
                y="energy_normalised",
                hue="labels",
                errorbar="sd",
                ax=ax,
                hue_order=[h for h in ("true", "random") if h in set(final["labels"])],
            )
            ax.set_xscale("log")
            ax.set_title(dataset)
            ax.set_xlabel("principal component of patches")
            ax.set_ylabel("learned energy (max = 1)")
        save(fig, *paths)


def panel_names(final: pd.DataFrame) -> pd.Series:
    """One panel per dataset, and per architecture, optimiser and augmentation wherever the
    runs hold several (their profiles are not pooled): the dataset's name, with what varies."""
    names = final["dataset"].astype(str)
    for column in ("arch", "optimizer", "augment"):
        if column in final and final[column].nunique() > 1:
            names = names + " " + final[column].astype(str)
    return names


def consistency(final: pd.DataFrame, init: pd.DataFrame, *paths) -> None:
    """Learned profiles of every model and dataset (mean over seeds), with the profile of one
    random initialisation dashed for contrast."""
    if final.empty:
        return empty_figure("no learned runs with true labels", *paths)
    model = final["dataset"] + " " + final["arch"] + " f" + final["first_width"].astype(str)
    for column in ("optimizer", "augment"):  # present where a run is off the paper's recipe
        if column in final:
            model = model + " " + final[column].astype(str)
    final = final.assign(model=model)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        sns.lineplot(
            data=final,
            x="component",
            y="energy_normalised",
            hue="model",
            errorbar=None,
            ax=ax,
            linewidth=1,
        )
        if not init.empty:
            one = init[init["run"] == init["run"].iloc[0]].sort_values("component")
            ax.plot(
                one["component"],
                one["energy_raw_normalised"],
                "k--",
                linewidth=1,
                label="a random init",
            )
        ax.set_xscale("log")
        ax.set_xlabel("principal component of patches")
        ax.set_ylabel("energy (max = 1)")
        ax.legend(fontsize=6, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
        save(fig, *paths)


def frozen_curves(metrics: pd.DataFrame, *paths) -> None:
    """Train/test loss and accuracy against step, first layer frozen at init vs learned."""
    if metrics.empty:
        return empty_figure("no model has true-label runs both frozen and learned", *paths)
    metrics = metrics.assign(first_layer=np.where(metrics["frozen"], "frozen", "learned"))
    panels = [
        ("train_loss", "train loss"),
        ("test_loss", "test loss"),
        ("train_acc", "train accuracy"),
        ("test_acc", "test accuracy"),
    ]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 2, figsize=(8, 5.5))
        for ax, (column, label) in zip(axes.flat, panels):
            sns.lineplot(
                data=metrics,
                x="step",
                y=column,
                hue="arch",
                style="first_layer",
                errorbar="sd",
                ax=ax,
                legend=ax is axes.flat[0],
            )
            ax.set_ylabel(label)
        save(fig, *paths)


def table_figure(table: pd.DataFrame, title: str, *paths) -> None:
    """A small table (e.g. Tables 1 and 2) rendered as a figure."""
    if table.empty:
        return empty_figure(f"{title}: no rows", *paths)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 0.4 + 0.3 * (len(table) + 1)))
        ax.set_axis_off()
        cells = ax.table(
            cellText=table.values, colLabels=list(table.columns), loc="center", cellLoc="left"
        )
        cells.auto_set_font_size(False)
        cells.set_fontsize(8)
        cells.scale(1, 1.3)
        cells.auto_set_column_width(list(range(len(table.columns))))
        ax.set_title(title)
        save(fig, *paths)


def pretrained_figure(kind: str, table_csv, stats, dataset: str, k, *paths) -> None:
    """The profiles (with the patch spectrum for reference) or the correlation heatmap of one
    kernel-size group of pretrained first layers."""
    table = pd.read_csv(table_csv)
    if kind == "profiles":
        lambdas = pd.Series(stats.lambdas, index=range(1, stats.d + 1))
        title = f"{k}x{k} first layers of pretrained models on {dataset} patches"
        profile_lines(table, title, *paths, reference=lambdas)
    else:
        correlation_heatmap(table, f"Profile correlations, {k}x{k} first layers, {dataset}", *paths)
    print(f"wrote {paths[0]}")
