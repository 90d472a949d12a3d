"""Rule `strided_stats`: patch statistics of a strided grid beside those of every position."""

from firstlayer.logs import job
from firstlayer.patches.strided import strided_study

with job(snakemake.log[0]):
    inputs, output = snakemake.input, snakemake.output
    stride = int(snakemake.wildcards.stride)
    table = strided_study(inputs.dataset, inputs.stats, stride, output.stats)
    table.to_csv(output.table, index=False)
