"""Rule `formula_figure`: the formula's profile at several t (Fig. 4)."""

import numpy as np

from firstlayer.logs import job
from firstlayer.patches.stats import read_patch_stats
from firstlayer.report.theory_plots import formula_vs_t

with job(snakemake.log[0]):
    stats = read_patch_stats(snakemake.input[0])
    # tau from "every component still growing linearly" to "all but the last whitened"
    taus = np.logspace(-2, 6, 5) / stats.eigenvalues[0]
    formula_vs_t(
        stats.lambdas,
        taus,
        f"{snakemake.wildcards.dataset}, k={stats.k}: formula vs tau = eta t",
        snakemake.output.pdf,
        snakemake.output.png,
    )
    print(f"wrote {snakemake.output.png}")
