"""Rule `rehearsal_check`: the rehearsal built everything the grid promises."""

from firstlayer.logs import job
from firstlayer.report.rehearsal import run_check

with job(snakemake.log[0]):
    run_check(
        snakemake.output[0],
        snakemake.params.files,
        snakemake.params.expected,
        snakemake.params.real,
        snakemake.params.rehearsal,
        snakemake.input.tables,
        snakemake.input.table3,
    )
