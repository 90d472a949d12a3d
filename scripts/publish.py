"""Rule `publish`: committed results copied from results/, docs blocks regenerated."""

from pathlib import Path

from firstlayer.logs import job
from firstlayer.report.publish import publish

with job(snakemake.log[0]):
    publish(snakemake.params.files, Path(snakemake.output.manifest).parent)
