"""Rule `calibrate`: images/s of every network of the grid on this device (real trainer)."""

import torch

from firstlayer.logs import job
from firstlayer.training.calibrate import calibrate

with job(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    calibrate(
        snakemake.params.networks,
        snakemake.output[0],
        log=lambda message: print(message, flush=True),
        resources=dict(snakemake.resources.items()),  # a `gpu` request forbids a CPU fallback
    )
