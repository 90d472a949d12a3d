"""Rule `pretrained_profiles`: profiles of a group of first layers and their correlations."""

from firstlayer.datasets.sources import DatasetFile
from firstlayer.logs import job
from firstlayer.patches.stats import read_patch_stats
from firstlayer.pretrained.layers import group_profiles

with job(snakemake.log[0]):
    stats = read_patch_stats(snakemake.input.stats)
    with DatasetFile(snakemake.input.dataset) as data:
        dataset_norm = (data.mean, data.std)
    profiles, correlations = group_profiles(
        snakemake.input.layers, stats, snakemake.params.input_space, dataset_norm
    )
    profiles.insert(0, "dataset", snakemake.wildcards.dataset)
    profiles.to_csv(snakemake.output.profiles, index=False)
    correlations.to_csv(snakemake.output.correlations, index=False)
