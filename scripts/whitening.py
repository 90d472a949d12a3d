"""Rule `whitening`: response autocorrelation against pixel distance (Fig. 6)."""

from firstlayer.logs import job
from firstlayer.report.theory_plots import whitening_curves
from firstlayer.theory.whitening import whitening_study

with job(snakemake.log[0]):
    table = whitening_study(
        snakemake.input.dataset,
        snakemake.input.stats,
        snakemake.input.runs,
        **snakemake.params.settings,
    )
    table.insert(0, "dataset", snakemake.wildcards.dataset)
    table.to_csv(snakemake.output.table, index=False)
    print(table[table["distance"].isin([1, 2, 5, 10])].to_string(index=False))
    whitening_curves(table, snakemake.output.pdf, snakemake.output.png)
