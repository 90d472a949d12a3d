"""Rule `label_stats`: class indicators against per-image patch energy (Fig. 5)."""

from firstlayer.logs import job
from firstlayer.patches.features import read_image_features
from firstlayer.report.theory_plots import label_statistics
from firstlayer.theory.label_stats import label_study

with job(snakemake.log[0]):
    wildcards, out = snakemake.wildcards, snakemake.output
    table = label_study(read_image_features(snakemake.input[0]), wildcards.dataset)
    table.to_csv(out.table, index=False)
    title = f"{wildcards.dataset}: class vs patch energy (k={wildcards.k})"
    label_statistics(table, title, out.pdf, out.png)
