"""Rule `consistency_tables`: Tables 1 and 2 (CSV and figure) and all-run correlations."""

from firstlayer.logs import job
from firstlayer.report import plots
from firstlayer.training import analysis

with job(snakemake.log[0]):
    profiles = analysis.read_table(snakemake.input[0])
    tables = analysis.consistency_tables(profiles)
    tables.to_csv(snakemake.output.tables, index=False)
    analysis.run_correlations(profiles).to_csv(snakemake.output.correlations, index=False)
    shown = analysis.format_table(tables)
    plots.table_figure(
        shown, "Profile correlations (Tables 1 and 2)", snakemake.output.pdf, snakemake.output.png
    )
    print(shown.to_string(index=False))
