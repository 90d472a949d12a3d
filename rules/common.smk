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


# Software of every job under --software-deployment-method conda (the pins of pyproject.toml).
ENV = "../envs/firstlayer.yaml"
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


def parent_dataset(wildcards):
    """A subset dataset is built from its parent's file; other sources need no input."""
    spec = config["datasets"].get(wildcards.dataset, {})
    if spec.get("source") == "subset":
        return {"parent": f"resources/datasets/{spec['of']}.h5"}
    return {}

def first_layer_input(wildcards):
    spec = PRETRAINED["weight_files"].get(wildcards.model)
    return [spec["path"]] if spec else []

def group_layers(wildcards):
    """First-layer files of group k: its torchvision models and every user weight file (the
    profile step keeps those whose kernel size is k)."""
    models = pretrained_groups().get(int(wildcards.k), []) + list(PRETRAINED["weight_files"])
    return expand("results/pretrained/weights/{model}.h5", model=models)

def run_dataset(wildcards):
    return f"resources/datasets/{GRID[wildcards.run]['spec'].dataset}.h5"

def training_minutes(wildcards):
    """A generous CPU estimate (about 300 images/s): a cluster profile may override it."""
    spec = GRID[wildcards.run]["spec"]
    images = spec.n_train or 50000
    return max(10, int(spec.epochs * images / 300 / 60) + 5)

THEORY = config["theory"]

def theory_figure(name, k=None):
    """results/figures/theory/{dataset}/k{k}_{name}.{ext} for every theory dataset."""
    return expand("results/figures/theory/{dataset}/k{k}_{name}.{ext}",
                  dataset=THEORY["datasets"], k=k or THEORY["k"], name=name, ext=FIGURE_FORMATS)

def learned_runs(dataset=None, labels=None):
    """Runs of the grid whose first layer learns (optionally of one dataset / label setting)."""
    return [name for name, entry in GRID.items()
            if not entry["spec"].frozen and entry["spec"].inputs == "none"
            and (dataset is None or entry["spec"].dataset == dataset)
            and (labels is None or entry["spec"].labels == labels)]

def filter_runs():
    """One run per (dataset, arch, width, labels): the lowest seed."""
    chosen = {}
    for name in learned_runs():
        spec = GRID[name]["spec"]
        key = (spec.dataset, spec.arch, spec.first_width, spec.width, spec.labels)
        if key not in chosen or spec.seed < GRID[chosen[key]]["spec"].seed:
            chosen[key] = name
    return sorted(chosen.values())

def manipulated_runs():
    return [name for name, entry in GRID.items()
            if entry["spec"].labels.startswith("decile") or entry["spec"].inputs != "none"]

def theory_targets():
    targets = theory_figure("formula") + theory_figure("label_stats") + theory_figure("linear_cnn")
    targets += expand("results/figures/theory/{dataset}/whitening.{ext}",
                      dataset=THEORY["datasets"], ext=FIGURE_FORMATS)
    if GRID:
        targets += expand("results/figures/theory/{name}.{ext}", name=["fits", "fitted_t"],
                          ext=FIGURE_FORMATS)
        targets += expand("results/figures/theory/filters/{run}.{ext}", run=filter_runs(),
                          ext=FIGURE_FORMATS)
    if manipulated_runs():
        targets += expand("results/figures/theory/manipulations.{ext}", ext=FIGURE_FORMATS)
    return targets
