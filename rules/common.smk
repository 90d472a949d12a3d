# Configuration check (first, before anything else runs), wildcard constraints, and the plan:
# the grid and every target list come from firstlayer.common (torch-free), these are one-liners.
import os
import sys
import time
from pathlib import Path

from firstlayer.common import rehearsal
from firstlayer.common.cost import CALIBRATION
from firstlayer.common.config import ConfigError, apply_dataset_overrides, read_layers
from firstlayer.common.config import validate_config
from firstlayer.common.provenance import canonical, code_digest, file_sha256
from firstlayer.common.targets import FIGURE_FORMATS, Plan, figures
from firstlayer.errors import InputError

try:
    # a later config file or --config giving a dataset another source replaces the keys of the
    # earlier entry that this source does not read
    apply_dataset_overrides(
        config, read_layers(workflow.configfiles, workflow.config_settings.config)
    )
    validate_config(
        config, Path(workflow.basedir) / "config" / "schema.yaml", files=workflow.configfiles
    )
    REHEARSAL, REAL_SIGNATURE = config["rehearsal"], None
    if REHEARSAL:  # the same grid at toy size (firstlayer.common.rehearsal)
        REAL_SIGNATURE = rehearsal.plan_signature(Plan(config))
        if workflow.overwrite_workdir is not None and not workflow.remote_exec:
            raise ConfigError(
                f"config error: rehearsal = True works in {rehearsal.FOLDER}/ below the "
                f"working directory, apart from a real grid's files, and --directory "
                f"{workflow.overwrite_workdir} would replace that; allowed: run it from the "
                f"folder it belongs under, without --directory"
            )
        staged = rehearsal.rehearsal_config(config)
        config.clear()
        config.update(staged)
    PLAN = Plan(config)
except InputError as error:
    # One line for the user, no traceback: a config mistake is not a crash.
    print(error, file=sys.stderr)
    sys.exit(1)

if REHEARSAL:

    workdir: rehearsal.FOLDER


wildcard_constraints:
    dataset=r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*",
    k=r"[1-9][0-9]*",
    stride=r"[1-9][0-9]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    run=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    stamp=r"[0-9]{8}T[0-9]{6}",


# Software of every job under --software-deployment-method conda (the pins of pyproject.toml).
ENV = "../envs/firstlayer.yaml"
PUBLISHED = PLAN.published()
PUBLISHED_PRETRAINED = PLAN.published_pretrained()
GRID = PLAN.grid
PATCHES = config["patches"]
PRETRAINED = config["pretrained"]
THEORY = config["theory"]


def dataset_inputs(wildcards):
    """A subset dataset is built from its parent's file; in a rehearsal a torchvision dataset
    from its synthetic copy; other sources need no input."""
    spec = config["datasets"].get(wildcards.dataset, {})
    if spec.get("source") == "subset":
        return {"parent": f"resources/datasets/{spec['of']}.h5"}
    if REHEARSAL and wildcards.dataset in rehearsal.synthetic_datasets(config):
        return {"synthetic": f"resources/synthetic/{wildcards.dataset}"}
    return {}


def group_layers(wildcards):
    return PLAN.pretrained_layers(wildcards.k)


def run_dataset(wildcards):
    if GRANT_STAMP is not None and not os.path.exists(f"results/runs/{wildcards.run}.h5"):
        # a run yet to be trained waits for this invocation's GPU grant check; the check's file
        # is not an input of the job (Snakemake re-evaluates it once the checkpoint is done), so
        # a run's inputs, and the `input` rerun trigger, are the same with and without the check
        checkpoints.gpu_grant.get(stamp=GRANT_STAMP)
    return f"resources/datasets/{PLAN.spec(wildcards.run).dataset}.h5"


# What a train job asks for in GPUs (the profile's set-resources), which the GPU grant check asks
# for too: with its partition and account, so that it lands where the trainings will.
GRANT_RESOURCES = {
    key: getattr(value, "value", value)
    for key, value in workflow.resource_settings.overwrite_resources.get("train", {}).items()
    if key in ("gpu", "gpus", "gres", "gpu_model", "gpu_manufacturer", "cpus_per_gpu")
    or key.startswith("slurm_")
}
# The check runs once per invocation of the Snakemake that starts a run whose trainings ask for
# GPUs (a GPU profile's set-resources), before the first of them; not in a cluster job's own
# Snakemake. FIRSTLAYER_CHECK_GRANT=0 turns it off.
GRANT_STAMP = (
    time.strftime("%Y%m%dT%H%M%S")
    if {"gpu", "gpus", "gres"} & set(GRANT_RESOURCES)
    and not workflow.remote_exec
    and os.environ.get("FIRSTLAYER_CHECK_GRANT", "1") != "0"
    else None
)


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


def rehearsal_expected():
    """The rows Tables 1-3 of this grid must have (imports pandas: only for a rehearsal)."""
    from firstlayer.report.rehearsal import expected_tables

    return expected_tables(PLAN)
