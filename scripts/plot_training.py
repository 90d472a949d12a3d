"""Rules `plot_{figure}`: one figure of the training analyses each."""

from firstlayer.logs import job
from firstlayer.report.training_figures import training_figure

with job(snakemake.log[0]):
    inputs, outputs = snakemake.input, snakemake.output
    training_figure(
        snakemake.params.figure,
        inputs.profiles,
        inputs.metrics,
        inputs.correlations,
        outputs.pdf,
        outputs.png,
    )
