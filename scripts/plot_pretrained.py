"""Rules `plot_pretrained_profiles` / `plot_pretrained_heatmap`."""

import pandas as pd

from firstlayer.logs import job
from firstlayer.patches.stats import read_patch_stats
from firstlayer.report import plots

with job(snakemake.log[0]):
    k, dataset = snakemake.wildcards.k, snakemake.wildcards.dataset
    if snakemake.params.kind == "profiles":
        table = pd.read_csv(snakemake.input.profiles)
        stats = read_patch_stats(snakemake.input.stats)
        lambdas = pd.Series(stats.lambdas, index=range(1, stats.d + 1))
        plots.profile_lines(
            table,
            f"{k}x{k} first layers of pretrained models on {dataset} patches",
            snakemake.output.pdf,
            snakemake.output.png,
            reference=lambdas,
        )
    else:
        table = pd.read_csv(snakemake.input.correlations)
        plots.correlation_heatmap(
            table,
            f"Profile correlations, {k}x{k} first layers, {dataset}",
            snakemake.output.pdf,
            snakemake.output.png,
        )
    print(f"wrote {snakemake.output.pdf}")
