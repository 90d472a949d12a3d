"""Rules `plot_pretrained_profiles` / `plot_pretrained_heatmap`."""

from firstlayer.logs import job
from firstlayer.patches.stats import read_patch_stats
from firstlayer.report.plots import pretrained_figure

with job(snakemake.log[0]):
    kind, inputs, wildcards = snakemake.params.kind, snakemake.input, snakemake.wildcards
    table = inputs.profiles if kind == "profiles" else inputs.correlations
    stats = read_patch_stats(inputs.stats) if kind == "profiles" else None
    out = (snakemake.output.pdf, snakemake.output.png)
    pretrained_figure(kind, table, stats, wildcards.dataset, wildcards.k, *out)
