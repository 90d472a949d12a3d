# first-layer: what CNNs learn in their first layer (Chowers & Weiss, ICML 2023).
# Targets: `all` (default: datasets, patch statistics, their figures), `pretrained`
# (ImageNet first layers; downloads several GB), and one rule per figure (fig_*).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/patches.smk"
include: "rules/pretrained.smk"


rule all:
    default_target: True
    input:
        default_targets(),
