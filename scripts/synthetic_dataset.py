"""Rule `synthetic_dataset`: a small copy of a torchvision dataset in its own formats."""

from firstlayer.datasets.synthetic import write_synthetic
from firstlayer.logs import job

with job(snakemake.log[0]):
    checksums = write_synthetic(snakemake.params.name, snakemake.output[0])
    print(f"wrote {len(checksums)} checksummed files of a synthetic {snakemake.params.name}")
