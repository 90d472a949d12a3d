"""Rule `consistency_tables`: Tables 1 and 2 (CSV and figure) and all-run correlations."""

import pandas as pd

from firstlayer.logs import job
from firstlayer.report import plots
from firstlayer.training.analysis import consistency_tables, format_table, run_correlations

with job(snakemake.log[0]):
    profiles = pd.read_csv(snakemake.input[0])
    tables = consistency_tables(profiles)
    tables.to_csv(snakemake.output.tables, index=False)
    run_correlations(profiles).to_csv(snakemake.output.correlations, index=False)
    plots.table_figure(
        format_table(tables),
        "Profile correlations (Tables 1 and 2)",
        snakemake.output.pdf,
        snakemake.output.png,
    )
    print(format_table(tables).to_string(index=False))
