"""Rule `formula_fits`: the formula, the null families and the exact linear prediction fitted to
every run at every recorded step; Table 3 and its figures."""

import pandas as pd

from firstlayer.logs import job
from firstlayer.report.theory_plots import fitted_t, profile_panels
from firstlayer.theory.fits import fit_study

with job(snakemake.log[0]):
    inputs, params, out = snakemake.input, snakemake.params, snakemake.output
    profiles = pd.read_csv(inputs.profiles)
    fits, table, curves = fit_study(
        profiles, inputs.stats, inputs.features, params.eta, params.tau_range
    )
    fits.to_csv(out.fits, index=False)
    table.to_csv(out.table, index=False)
    curves.to_csv(out.curves, index=False)
    title = "Learned profiles (mean over seeds), the fitted predictions and the best null"
    profile_panels(curves, title, out.pdf, out.png)
    fitted_t(fits, out.t_pdf, out.t_png)
