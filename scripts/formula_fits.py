"""Rule `formula_fits`: the formula and the exact linear prediction fitted to every run."""

from pathlib import Path

from firstlayer.logs import job
from firstlayer.patches.features import read_image_features
from firstlayer.patches.stats import read_patch_stats
from firstlayer.report.theory_plots import fitted_t, profile_panels
from firstlayer.theory.fits import exact_predictors, fit_curves, fit_profiles, table3
from firstlayer.theory.linear_cnn import Moments
from firstlayer.training.analysis import read_table

with job(snakemake.log[0]):
    stats = {Path(path).parent.name: read_patch_stats(path) for path in snakemake.input.stats}
    moments = {
        Path(path).parent.name: Moments.of(read_image_features(path)["average_patches"])
        for path in snakemake.input.features
    }
    exact = exact_predictors(moments, stats)
    profiles = read_table(snakemake.input.profiles)  # labels stay text
    print(f"fitting {profiles['run'].nunique()} runs at every recorded step")
    fits = fit_profiles(
        profiles, stats, exact, snakemake.params.eta, tuple(snakemake.params.tau_range)
    )
    fits.to_csv(snakemake.output.fits, index=False)
    table = table3(fits)
    table.to_csv(snakemake.output.table, index=False)
    print(table.to_string(index=False))
    curves = fit_curves(profiles, fits, stats, exact)
    curves.to_csv(snakemake.output.curves, index=False)
    profile_panels(
        curves,
        "Learned profiles (mean over seeds) and the fitted predictions",
        snakemake.output.pdf,
        snakemake.output.png,
    )
    fitted_t(fits, snakemake.output.t_pdf, snakemake.output.t_png)
