"""Rules `plot_patch_spectrum` / `plot_patch_components`: figures of one patch-statistics file."""

from firstlayer.logs import job
from firstlayer.patches.stats import read_patch_stats
from firstlayer.report import plots

with job(snakemake.log[0]):
    stats = read_patch_stats(snakemake.input[0])
    title = f"{snakemake.wildcards.dataset}, {stats.k}x{stats.k} patches"
    draw = {"spectrum": plots.patch_spectrum, "components": plots.patch_components}[
        snakemake.params.kind
    ]
    draw(stats, title, snakemake.output.pdf, snakemake.output.png)
    print(f"wrote {snakemake.output.pdf} and {snakemake.output.png}")
