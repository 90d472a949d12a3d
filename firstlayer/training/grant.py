"""Rule `gpu_grant`: before a cluster run trains anything, one small job asks for the GPUs a
training job asks for and checks that torch sees what SLURM granted.

SLURM's executor plugin has had requests that came out differently inside the job (plugin issue
#459: `gpu=2` showed one GPU), and a partition's GPUs may be too old for the installed torch
(CUDA 13 builds carry no kernels for compute capability below 7.5). Either would waste a grid's
GPU-hours or fail it run by run. The check compares:

- the request: the GPUs of rule `train`'s resources (`gpu`, `gpus`, or a `gres` gpu[:type]:N),
  and the model where one is named (`gpu_model`, or the type in `gres`);
- what SLURM granted: SLURM_GPUS_ON_NODE, else the ids in SLURM_JOB_GPUS / SLURM_STEP_GPUS
  (outside SLURM, on a workstation whose jobs each claim one of its GPUs, torch must see at
  least the GPUs a job asks for);
- what torch sees: its CUDA device count, each device's name, compute capability and UUID, and
  whether its build has kernels for that capability (torch.cuda.get_arch_list()).

It writes all of this to results/cluster/gpu_grant/<time>.json and, if the three disagree,
stops with one line saying how. The workflow makes every `train` job wait for it through a
checkpoint that is never an input of `train` (rules/training.smk), so a run's inputs, and with
them Snakemake's `input` rerun trigger, are the same with and without the check.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from firstlayer.errors import InputError

GPU_KEYS = ("gpu", "gpus", "gres", "gpu_model", "gpu_manufacturer")


class GrantError(InputError):
    """The GPUs a job got are not the ones it asked for; str() is the one line."""


def requested(resources: dict) -> tuple[int, str | None, str]:
    """(GPU count, model or None, how it was asked for) from a job's resources."""
    resources = {k: v for k, v in resources.items() if v not in (None, "")}
    model = resources.get("gpu_model")
    for key in ("gpu", "gpus"):
        if key in resources:
            text = str(resources[key])
            if ":" in text:  # gpus="a100:2"
                model, text = text.rsplit(":", 1)
            return int(text), model, f"{key}={resources[key]}"
    match = re.search(r"gpu(?::([A-Za-z0-9_.-]+))?(?::(\d+))?", str(resources.get("gres", "")))
    if match:
        kind, count = match.groups()
        if kind is not None and kind.isdigit() and count is None:
            kind, count = None, kind
        return int(count or 1), model or kind, f"gres={resources['gres']}"
    return 0, model, "no GPU"


def granted(environ) -> tuple[int | None, str]:
    """(GPU count, which variable said so) of what SLURM granted; (None, ...) outside SLURM."""
    if environ.get("SLURM_GPUS_ON_NODE", "") != "":
        return int(
            environ["SLURM_GPUS_ON_NODE"]
        ), f"SLURM_GPUS_ON_NODE={environ['SLURM_GPUS_ON_NODE']}"
    for key in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if environ.get(key, "") != "":
            return len(environ[key].split(",")), f"{key}={environ[key]}"
    return None, "no SLURM GPU variables"


def visible(cuda) -> list[dict]:
    """Every CUDA device torch sees: index, name, compute capability, UUID."""
    if not cuda.is_available():
        return []
    devices = []
    for index in range(cuda.device_count()):
        properties = cuda.get_device_properties(index)
        devices.append(
            {
                "index": index,
                "name": properties.name,
                "capability": [properties.major, properties.minor],
                "uuid": str(properties.uuid),
            }
        )
    return devices


def supported(capability, arch_list) -> bool:
    """Whether a torch build with these kernels (sm_XY) or PTX (compute_XY) runs on a GPU of
    this compute capability: a kernel of the same major version and no higher minor, or PTX
    of a capability no higher than the GPU's."""
    major, minor = capability
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        if not digits.isdigit():
            continue
        built = (int(digits[:-1]), int(digits[-1]))
        if kind == "sm" and built[0] == major and built[1] <= minor:
            return True
        if kind == "compute" and built <= (major, minor):
            return True
    return False


def check_grant(resources: dict, environ, cuda, arch_list, versions: dict) -> dict:
    """The grant record (request, SLURM's grant, the devices torch sees, versions) with
    `problem`: None when they agree, else the one line that says how they differ."""
    count, model, asked = requested(resources)
    given, said = granted(environ)
    devices = visible(cuda)
    names = ", ".join(
        f"{d['name']} (capability {d['capability'][0]}.{d['capability'][1]})" for d in devices
    )
    seen = f"torch sees {len(devices)}{f': {names}' if devices else ''}"
    where = (
        f"(torch {versions.get('torch')}, CUDA build {versions.get('cuda')}, "
        f"CUDA_VISIBLE_DEVICES={environ.get('CUDA_VISIBLE_DEVICES')})"
    )
    problem = None
    if given is not None and given != count:
        problem = f"asked for {count} GPU(s) ({asked}) but SLURM granted {given} ({said})"
    elif given is not None and len(devices) != count:
        problem = (
            f"asked for {count} GPU(s) ({asked}), SLURM granted {given} ({said}), "
            f"but {seen} {where}"
        )
    elif given is None and len(devices) < count:  # a workstation shows all its GPUs
        problem = f"asked for {count} GPU(s) ({asked}) but {seen} {where}"
    elif model and not all(model.lower() in d["name"].lower() for d in devices):
        problem = f"asked for GPU model {model!r} ({asked}) but {seen}"
    else:
        for device in devices:
            if not supported(device["capability"], arch_list):
                problem = (
                    f"GPU {device['index']} ({device['name']}) has compute capability "
                    f"{device['capability'][0]}.{device['capability'][1]}, for which this torch "
                    f"build has no kernels ({', '.join(arch_list) or 'none'}) {where}"
                )
                break
    return {
        "request": {"gpus": count, "model": model, "asked": asked},
        "granted": {"gpus": given, "said": said},
        "devices": devices,
        "arch_list": list(arch_list),
        "versions": versions,
        "cuda_visible_devices": environ.get("CUDA_VISIBLE_DEVICES"),
        "problem": problem,
    }


def run_check(resources: dict, out_path, environ=None, cuda=None) -> dict:
    """Check this job's grant, write the record to `out_path`, and stop with one line (after
    writing) when the GPUs differ from the request."""
    import torch

    environ = os.environ if environ is None else environ
    cuda = torch.cuda if cuda is None else cuda
    arch_list = cuda.get_arch_list()  # the build's kernels, known with or without a GPU
    versions = {"torch": torch.__version__, "cuda": torch.version.cuda}
    record = check_grant(resources, environ, cuda, arch_list, versions)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out_path}: {len(record['devices'])} device(s) for {record['request']['asked']}")
    if record["problem"]:
        raise GrantError(
            f"GPU grant: {record['problem']}; no training started (FIRSTLAYER_CHECK_GRANT=0 "
            f"skips this check)"
        )
    return record
