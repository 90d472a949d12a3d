"""Rule `filters_figure`: a run's first-layer filters at the end of training (Fig. 19)."""

from firstlayer.logs import job
from firstlayer.report.theory_plots import filters
from firstlayer.training.run import read_run

with job(snakemake.log[0]):
    run = read_run(snakemake.input[0])
    filters(
        {f"after {run.spec.epochs} epochs": run.final, "change from init": run.final - run.init},
        snakemake.wildcards.run,
        snakemake.output.pdf,
        snakemake.output.png,
    )
    print(f"wrote {snakemake.output.png}")
