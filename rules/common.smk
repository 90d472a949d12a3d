# Configuration check (first, before anything else runs), wildcard constraints and targets.
import sys
from pathlib import Path

from firstlayer.config import ConfigError, validate_config
from firstlayer.grid import build_grid

try:
    validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")
except ConfigError as error:
    # One line for the user, no traceback: a config mistake is not a crash.
    print(error, file=sys.stderr)
    sys.exit(1)


wildcard_constraints:
    dataset=r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*",
    k=r"[1-9][0-9]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    run=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


PATCHES = config["patches"]
PRETRAINED = config["pretrained"]
FIGURE_FORMATS = ["pdf", "png"]
GRID = build_grid(config["experiments"], config["training"])
TRAINING_DATASETS = sorted({entry["spec"].dataset for entry in GRID.values()})


def patch_figures(kind):
    """Every patch figure of one kind ("spectrum" or "components") for the configured datasets."""
    return expand(
        "results/figures/patches/{dataset}/k{k}_{kind}.{ext}",
        dataset=PATCHES["datasets"],
        k=PATCHES["k"],
        kind=kind,
        ext=FIGURE_FORMATS,
    )


def pretrained_groups():
    """{k: [torchvision model names]} from the config groups kN (a group may list no models and
    hold only user weight files of its size)."""
    return {int(group[1:]): models for group, models in PRETRAINED["models"].items()}


def pretrained_outputs(pattern):
    """One path per (pretrained dataset, group size) for a pattern with {dataset} and {k}."""
    sizes = sorted(pretrained_groups())
    return expand(pattern, dataset=PRETRAINED["dataset"], k=sizes, ext=FIGURE_FORMATS)


def training_figure(name):
    return expand("results/figures/training/{name}.{ext}", name=name, ext=FIGURE_FORMATS)


def supported_training_figures():
    """The training figures the configured grid has runs for."""
    specs = [entry["spec"] for entry in GRID.values()]
    learned = [spec for spec in specs if not spec.frozen]
    figures = []
    if specs:
        figures += ["tables", "heatmap"]
    if {spec.labels for spec in learned} >= {"true", "random"}:
        figures.append("true_vs_random")
    if any(spec.labels == "true" for spec in learned):
        figures.append("consistency")
    if any(spec.frozen for spec in specs):
        figures.append("frozen")
    return figures


def default_targets():
    return (
        expand("resources/datasets/{dataset}.h5", dataset=PATCHES["datasets"])
        + expand(
            "results/patches/{dataset}/k{k}.h5", dataset=PATCHES["datasets"], k=PATCHES["k"]
        )
        + patch_figures("spectrum")
        + patch_figures("components")
        + [path for name in supported_training_figures() for path in training_figure(name)]
        + theory_targets()
    )
