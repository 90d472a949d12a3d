"""Rule `recipes`: each cell of the grid against the paper's recipe (table and figure)."""

from firstlayer.logs import job
from firstlayer.report.theory_plots import profile_panels
from firstlayer.theory.recipes import recipe_study
from firstlayer.training.analysis import read_table

with job(snakemake.log[0]):
    inputs, out = snakemake.input, snakemake.output
    tables = [read_table(path) for path in (inputs.profiles, inputs.metrics, inputs.fits)]
    data = dict(run_paths=inputs.runs, strided_paths=inputs.strided)
    table, curves = recipe_study(*tables, inputs.datasets, **data)
    table.to_csv(out.table, index=False)
    title = "Learned profiles by recipe (mean over seeds; black: the paper's SGD recipe)"
    profile_panels(curves, title, out.pdf, out.png)
