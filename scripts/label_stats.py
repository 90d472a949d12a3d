"""Rule `label_stats`: class indicators against per-image patch energy (Fig. 5)."""

from firstlayer.logs import job
from firstlayer.patches.features import read_image_features
from firstlayer.report.theory_plots import label_statistics
from firstlayer.theory.label_stats import label_correlations

with job(snakemake.log[0]):
    features = read_image_features(snakemake.input[0])
    table = label_correlations(features["energies"], features["labels"], features["class_names"])
    table.insert(0, "dataset", snakemake.wildcards.dataset)
    table.to_csv(snakemake.output.table, index=False)
    strongest = table.loc[table["correlation"].abs().idxmax()]
    print(
        f"largest |correlation| {abs(strongest.correlation):.3f} ({strongest['class']}, "
        f"component {strongest.component})"
    )
    label_statistics(
        table,
        f"{snakemake.wildcards.dataset}: class vs patch energy (k={snakemake.wildcards.k})",
        snakemake.output.pdf,
        snakemake.output.png,
    )
