"""Rule `training_profiles`: tidy tables of every run's profiles along training and metrics."""

from pathlib import Path

import pandas as pd

from firstlayer.logs import job
from firstlayer.patches.stats import read_patch_stats
from firstlayer.training.analysis import run_profiles
from firstlayer.training.run import read_run

with job(snakemake.log[0]):
    stats = {Path(path).parent.name: read_patch_stats(path) for path in snakemake.input.stats}
    profiles, metrics = [], []
    for path in snakemake.input.runs:
        name, run = Path(path).stem, read_run(path)
        profiles.append(run_profiles(name, run, stats[run.spec.dataset]))
        frame = pd.DataFrame(run.metrics)
        for key, value in run.spec.as_dict().items():
            frame[key] = value
        frame.insert(0, "run", name)
        metrics.append(frame)
    pd.concat(profiles).to_csv(snakemake.output.profiles, index=False)
    pd.concat(metrics).to_csv(snakemake.output.metrics, index=False)
    print(f"profiled {len(profiles)} runs")
