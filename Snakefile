# first-layer: what CNNs learn in their first layer (Chowers & Weiss, ICML 2023).
# Targets: `all` (default: datasets, patch statistics, the training grid and the figures and
# tables it supports), `pretrained` (ImageNet first layers; downloads several GB), and one rule
# per figure (fig_*).
from snakemake.utils import min_version

# 9.20: a profile's `runtime` (profiles/slurm, `default-resources`) is read as minutes again;
# 9.16.3 to 9.19 read it as seconds (snakemake issue #4039, fixed by #4053 in 9.20.0), which
# would cut every job's time limit sixty-fold. pyproject.toml pins the same floor.
min_version("9.20")


# config/config.yaml is the default; config files named with --configfile (complete, like
# config/extended.yaml and config/paper.yaml) replace it instead of merging into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/patches.smk"
include: "rules/pretrained.smk"
include: "rules/training.smk"
include: "rules/theory.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        PLAN.default_targets() + ([rehearsal.CHECK] if REHEARSAL else []),


# On a cluster these run where Snakemake runs: downloads need the internet (often only on the
# login node), and figures and small tables take seconds, less than a scheduler round-trip.
localrules:
    all,
    theory,
    pretrained,
    dataset,
    synthetic_dataset,
    first_layer,
    plot_patch_spectrum,
    plot_patch_components,
    plot_pretrained_profiles,
    plot_pretrained_heatmap,
    plot_true_vs_random,
    plot_consistency,
    plot_frozen,
    plot_heatmap,
    consistency_tables,
    label_stats,
    formula_figure,
    filters_figure,
    manipulations,
