"""Rules `plot_{figure}`: one figure of the training analyses each."""

import pandas as pd

from firstlayer.logs import job
from firstlayer.report import plots
from firstlayer.training.analysis import final_profiles, read_table, with_both

with job(snakemake.log[0]):
    figure, out = snakemake.params.figure, (snakemake.output.pdf, snakemake.output.png)
    profiles = read_table(snakemake.input.profiles)
    learned = final_profiles(profiles[~profiles["frozen"] & (profiles["inputs"] == "none")])
    if figure == "true_vs_random":
        plots.true_vs_random(with_both(learned, "labels", ("true", "random")), *out)
    elif figure == "consistency":
        plots.consistency(
            learned[learned["labels"] == "true"], profiles[profiles["step"] == 0], *out
        )
    elif figure == "frozen":
        metrics = read_table(snakemake.input.metrics)
        plots.frozen_curves(
            with_both(metrics[metrics["labels"] == "true"], "frozen", (True, False)), *out
        )
    else:
        plots.correlation_heatmap(
            pd.read_csv(snakemake.input.correlations),
            "Learned-profile correlations of all runs",
            *out,
        )
    print(f"wrote {out[0]}")
