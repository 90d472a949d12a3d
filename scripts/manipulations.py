"""Rule `manipulations`: decile labels and scaled components against unmanipulated runs."""

from pathlib import Path

from firstlayer.logs import job
from firstlayer.patches.stats import read_patch_stats
from firstlayer.report.theory_plots import profile_panels
from firstlayer.theory.manipulations import (
    manipulation_curves,
    manipulation_table,
    summary,
    unmanipulated_true_vs_random,
)
from firstlayer.training.analysis import read_table

with job(snakemake.log[0]):
    stats = {Path(path).parent.name: read_patch_stats(path) for path in snakemake.input.stats}
    profiles = read_table(snakemake.input.profiles)  # labels stay text
    table = manipulation_table(profiles, stats, snakemake.params.eta)
    table.to_csv(snakemake.output.runs, index=False)
    overview = summary(table, unmanipulated_true_vs_random(profiles))
    overview.to_csv(snakemake.output.summary, index=False)
    print(overview.to_string(index=False))
    profile_panels(
        manipulation_curves(profiles, table, stats, snakemake.params.eta),
        "Manipulations: learned profiles (mean over seeds)",
        snakemake.output.pdf,
        snakemake.output.png,
    )
