"""Rule `gpu_grant`: torch sees the GPUs SLURM granted, as a training job asked for them."""

from firstlayer.logs import job
from firstlayer.training.grant import run_check

with job(snakemake.log[0]):
    run_check(dict(snakemake.params.request), snakemake.output[0])
