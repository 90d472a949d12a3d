"""Rule `pretrained_fits`: the formula and the null families fitted to every first layer of a
group (Table 3's pretrained rows)."""

from firstlayer.logs import job
from firstlayer.theory.fits import pretrained_fit_study

with job(snakemake.log[0]):
    inputs, p, out = snakemake.input, snakemake.params, snakemake.output
    settings = (p.input_space, p.eta, p.tau_range, p.trained_on)
    layers, table = pretrained_fit_study(inputs.stats, inputs.dataset, inputs.layers, *settings)
    layers.insert(0, "dataset", snakemake.wildcards.dataset)
    table.insert(0, "dataset", snakemake.wildcards.dataset)
    layers.to_csv(out.fits, index=False)
    table.to_csv(out.table, index=False)
