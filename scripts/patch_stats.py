"""Rule `patch_stats`: exact patch covariance and PCA of one dataset split for one k."""

import time

import numpy as np
from threadpoolctl import threadpool_limits

from firstlayer.logs import job, progress
from firstlayer.patches.stats import build_patch_stats

with job(snakemake.log[0]), threadpool_limits(snakemake.threads):
    settings = dict(snakemake.params.settings)
    k = int(snakemake.wildcards.k)
    start = time.perf_counter()
    bar = None

    def report(done, total):
        global bar
        bar = bar or progress(total, f"patches k={k}")
        bar.update(done - bar.n)

    stats = build_patch_stats(
        snakemake.input[0], snakemake.output[0], k, progress=report, **settings
    )
    bar.close()
    print(
        f"{stats.count} patches of dimension {stats.d} in {time.perf_counter() - start:.1f} s; "
        f"top eigenvalues {np.round(stats.eigenvalues[:5], 5)}"
    )
