"""Rule `linear_cnn`: the theory's linear CNN on synthetic independent patches and on the real
images, against the exact prediction, the paper's formula and the best null family."""

from firstlayer.logs import job
from firstlayer.patches.features import read_image_features
from firstlayer.patches.stats import read_patch_stats
from firstlayer.report.theory_plots import profile_panels
from firstlayer.theory.linear_cnn import linear_cnn_study

with job(snakemake.log[0]):
    settings, out = snakemake.params.settings, snakemake.output
    stats = read_patch_stats(snakemake.input.stats)
    features = read_image_features(snakemake.input.features)
    curves, summary = linear_cnn_study(stats, features, settings, snakemake.wildcards.dataset)
    summary.to_csv(out.summary, index=False)
    curves.to_csv(out.curves, index=False)
    title = f"Linear CNN (K={settings['filters']}, {settings['runs']} runs) vs predictions"
    profile_panels(curves, title, out.pdf, out.png, columns=len(settings["steps"]))
