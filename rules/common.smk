# Configuration check (first, before anything else runs), wildcard constraints, and the plan:
# the grid and every target list come from firstlayer.common (torch-free), these are one-liners.
import sys
from pathlib import Path

from firstlayer.common.config import apply_command_line_datasets, validate_config
from firstlayer.common.provenance import canonical, code_digest, file_sha256
from firstlayer.common.targets import FIGURE_FORMATS, Plan, figures
from firstlayer.errors import InputError

try:
    # --config datasets given with another source replace the file's source-specific keys
    apply_command_line_datasets(config, workflow.config_settings.config)
    validate_config(
        config, Path(workflow.basedir) / "config" / "schema.yaml", files=workflow.configfiles
    )
    PLAN = Plan(config)
except InputError as error:
    # One line for the user, no traceback: a config mistake is not a crash.
    print(error, file=sys.stderr)
    sys.exit(1)


wildcard_constraints:
    dataset=r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*",
    k=r"[1-9][0-9]*",
    stride=r"[1-9][0-9]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    run=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


# Software of every job under --software-deployment-method conda (the pins of pyproject.toml).
ENV = "../envs/firstlayer.yaml"
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


def group_layers(wildcards):
    return PLAN.pretrained_layers(wildcards.k)


def run_dataset(wildcards):
    return f"resources/datasets/{PLAN.spec(wildcards.run).dataset}.h5"


# The train job's cluster request and batch (firstlayer.common.cost; docs/cluster.md).
def training_minutes(wildcards, attempt):
    return PLAN.training_request(wildcards.run, attempt).runtime


def training_mem_mb(wildcards):
    return PLAN.training_request(wildcards.run).mem_mb


def training_group(wildcards):
    return PLAN.training_group(wildcards.run)


def code(script):
    """Digest of a rule's script and the firstlayer modules it imports (a param: editing that
    code reruns the rule's jobs, and only those)."""
    return code_digest(Path(workflow.basedir) / "scripts" / script)


def dataset_spec(wildcards):
    """A dataset's settings with the content checksum of its user file (npz, ImageFolder
    folder or archive, torchvision archive): replacing the file in place rebuilds it."""
    spec = canonical(config["datasets"][wildcards.dataset])
    user_file = spec.get("path") or spec.get("archive")
    return {**spec, "sha256": file_sha256(user_file)} if user_file else spec


def weight_file_spec(wildcards):
    spec = PRETRAINED["weight_files"].get(wildcards.model)
    return {**canonical(spec), "sha256": file_sha256(spec["path"])} if spec else None
