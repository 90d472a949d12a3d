"""Rule `training_profiles`: tidy tables of every run's profiles along training and metrics."""

from firstlayer.logs import job
from firstlayer.training.analysis import profile_runs

with job(snakemake.log[0]):
    profiles, metrics = profile_runs(snakemake.input.runs, snakemake.input.stats)
    profiles.to_csv(snakemake.output.profiles, index=False)
    metrics.to_csv(snakemake.output.metrics, index=False)
