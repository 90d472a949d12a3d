"""Rule `train`: one network, recorded along training (resumes from its checkpoint)."""

import torch

from firstlayer.common.grid import RunSpec
from firstlayer.logs import job
from firstlayer.training.run import train

with job(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    train(
        RunSpec(**snakemake.params.spec),
        snakemake.input[0],
        snakemake.output[0],
        snakemake.params.checkpoint,
        log=lambda message: print(message, flush=True),
        resources=dict(snakemake.resources.items()),  # a `gpu` request forbids a CPU fallback
        code=snakemake.params.code,  # its checkpoint resumes only under the same code
        name=snakemake.wildcards.run,
    )
