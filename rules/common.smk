# Configuration check (first, before anything else runs), wildcard constraints, and the plan:
# the grid and every target list come from firstlayer.common (torch-free), these are one-liners.
import sys
from pathlib import Path

from firstlayer.common.config import ConfigError, validate_config
from firstlayer.common.targets import FIGURE_FORMATS, Plan, figures

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
PLAN = Plan(config)
PUBLISHED = PLAN.published()
PUBLISHED_PRETRAINED = PLAN.published_pretrained()
GRID = PLAN.grid
PATCHES = config["patches"]
PRETRAINED = config["pretrained"]
THEORY = config["theory"]


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
    return PLAN.pretrained_layers(wildcards.k)


def run_dataset(wildcards):
    return f"resources/datasets/{PLAN.spec(wildcards.run).dataset}.h5"


def training_minutes(wildcards):
    return PLAN.training_minutes(wildcards.run)
