"""Rule `manipulations`: decile labels and scaled components against unmanipulated runs, and the
held-out prediction of the scaled runs."""

import pandas as pd

from firstlayer.logs import job
from firstlayer.report.theory_plots import profile_panels
from firstlayer.theory.manipulations import manipulation_study

with job(snakemake.log[0]):
    inputs, out = snakemake.input, snakemake.output
    profiles = pd.read_csv(inputs.profiles)
    params = snakemake.params
    tables = manipulation_study(profiles, inputs.stats, params.eta, params.tau_range)
    table, overview, heldout, curves = tables
    table.to_csv(out.runs, index=False)
    overview.to_csv(out.summary, index=False)
    heldout.to_csv(out.heldout, index=False)
    title = "Manipulations: learned profiles (mean over seeds)"
    profile_panels(curves, title, out.pdf, out.png)
