"""Rule `patch_stats`: exact patch covariance and PCA of one dataset split for one k."""

from threadpoolctl import threadpool_limits

from firstlayer.logs import ProgressBar, job
from firstlayer.patches.stats import build_patch_stats

with job(snakemake.log[0]), threadpool_limits(snakemake.threads):
    k = int(snakemake.wildcards.k)
    build_patch_stats(
        snakemake.input[0],
        snakemake.output[0],
        k,
        progress=ProgressBar(f"patches k={k}"),
        **snakemake.params.settings,
    )
