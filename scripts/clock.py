"""Rule `clock`: tau fitted along runs of several learning rates (and the linear CNN), its
slopes on the step, the learning rate and the normalised clock, and the profiles' collapse."""

from firstlayer.logs import job
from firstlayer.report.theory_plots import clock_figure
from firstlayer.theory.clock import clock_study

with job(snakemake.log[0]):
    inputs, params, out = snakemake.input, snakemake.params, snakemake.output
    tables = clock_study(
        inputs.runs, inputs.stats, inputs.features, params.settings, params.eta, params.tau_range
    )
    for name, frame in tables.items():
        frame.to_csv(getattr(out, name), index=False)
    clock_figure(tables["records"], tables["slopes"], out.pdf, out.png)
