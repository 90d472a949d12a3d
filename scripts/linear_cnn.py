"""Rule `linear_cnn`: the theory's linear CNN on synthetic independent patches and on the real
images, against the exact prediction and the paper's formula."""

import numpy as np
import pandas as pd

from firstlayer.logs import job
from firstlayer.patches.features import average_patches, read_image_features
from firstlayer.patches.stats import read_patch_stats
from firstlayer.report.theory_plots import profile_panels
from firstlayer.theory.linear_cnn import (
    one_vs_rest_labels,
    random_sign_labels,
    seed_study,
    tiled_images,
)

with job(snakemake.log[0]):
    settings, dataset = snakemake.params.settings, snakemake.wildcards.dataset
    stats = read_patch_stats(snakemake.input.stats)
    features = read_image_features(snakemake.input.features)
    common = dict(
        filters=settings["filters"],
        steps=settings["steps"],
        fraction=settings["step_fraction"],
        init_std=settings["init_std"],
        seed=settings["seed"],
    )
    runs, seed, tiles = settings["runs"], settings["seed"], settings["tiles"]
    studies = []

    # Synthetic data satisfying the theorem: independent patches from the dataset's own patch
    # covariance, tiled at stride k and seen by a stride-k network.
    synthetic = tiled_images(
        settings["synthetic_images"], stats.covariance, stats.channels, stats.k, tiles, seed
    )
    average = average_patches(synthetic, stats.k, stride=stats.k)
    print(f"synthetic: {len(average)} images of {tiles}x{tiles} independent patches")
    studies.append(
        seed_study(
            average,
            stats.eigenvectors,
            stats.lambdas,
            tiles * tiles,
            random_sign_labels(runs, len(average), seed + 1),
            True,
            name="synthetic, random labels",
            **common,
        )
    )

    # The real images at stride 1: random labels, and true one-vs-rest labels (every class).
    average, labels = features["average_patches"], features["labels"]
    print(f"{dataset}: {len(average)} images")
    studies.append(
        seed_study(
            average,
            stats.eigenvectors,
            stats.lambdas,
            features["patches_per_image"],
            random_sign_labels(runs, len(average), seed + 2),
            True,
            name=f"{dataset}, random labels",
            **common,
        )
    )
    per_class = max(1, runs // len(features["class_names"]))
    one_vs_rest = np.repeat(
        [one_vs_rest_labels(labels, c) for c in range(len(features["class_names"]))],
        per_class,
        axis=0,
    )
    studies.append(
        seed_study(
            average,
            stats.eigenvectors,
            stats.lambdas,
            features["patches_per_image"],
            one_vs_rest,
            False,
            name=f"{dataset}, one-vs-rest labels",
            **common,
        )
    )

    curves = pd.concat([c for c, _ in studies], ignore_index=True)
    summary = pd.concat([s for _, s in studies], ignore_index=True)
    summary.insert(0, "dataset", dataset)
    summary.to_csv(snakemake.output.summary, index=False)
    curves.to_csv(snakemake.output.curves, index=False)
    print(summary.to_string(index=False))
    profile_panels(
        curves,
        f"Linear CNN (K={settings['filters']}, {runs} runs): seed-averaged profile vs predictions",
        snakemake.output.pdf,
        snakemake.output.png,
        columns=len(settings["steps"]),
    )
