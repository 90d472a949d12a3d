"""Rule `manipulations`: decile labels and scaled components against unmanipulated runs, and the
held-out prediction of the scaled runs."""

from firstlayer.logs import job
from firstlayer.report.theory_plots import profile_panels
from firstlayer.theory.manipulations import manipulation_study
from firstlayer.training.analysis import read_table

with job(snakemake.log[0]):
    inputs, out = snakemake.input, snakemake.output
    profiles = read_table(inputs.profiles)  # labels stay text
    params = snakemake.params
    data = dict(run_paths=inputs.runs, dataset_paths=inputs.datasets)
    tables = manipulation_study(profiles, inputs.stats, params.eta, params.tau_range, **data)
    table, overview, heldout, curves = tables
    table.to_csv(out.runs, index=False)
    overview.to_csv(out.summary, index=False)
    heldout.to_csv(out.heldout, index=False)
    title = "Manipulations: learned profiles (mean over seeds)"
    profile_panels(curves, title, out.pdf, out.png)
