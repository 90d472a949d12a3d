"""Rule `formula_fits`: the formula, the null families and the exact linear prediction fitted to
every run at every recorded step; Table 3, the cross-dataset prediction and their figures."""

from firstlayer.logs import job
from firstlayer.report.theory_plots import fitted_t, profile_panels
from firstlayer.theory.fits import fit_study
from firstlayer.training.analysis import read_table

with job(snakemake.log[0]):
    inputs, params, out = snakemake.input, snakemake.params, snakemake.output
    profiles = read_table(inputs.profiles)  # labels stay text
    tables = fit_study(profiles, inputs.stats, inputs.features, params.eta, params.tau_range)
    for name, frame in tables.items():
        frame.to_csv(getattr(out, name), index=False)
    title = "Learned profiles, fitted predictions, best null"
    profile_panels(tables["curves"], title, out.pdf, out.png)
    fitted_t(tables["fits"], out.t_pdf, out.t_png)
