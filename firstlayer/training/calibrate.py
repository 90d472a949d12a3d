"""Rule `calibrate`: the training throughput of every network a grid trains, measured on the
device the job runs on with the real trainer, written to the file the cluster requests read.

    snakemake --profile profiles/slurm --configfile config/paper.yaml calibrate   # a GPU node
    snakemake --cores 2 calibrate                                                 # this machine

For each network (`common.targets.Plan.networks`: architecture, widths, input size, batch size
and precision; the reference network always among them) the trainer's own epoch loop
(`training.run.train_epoch`, the dataset resident on the device, batches by index) runs WARMUP
steps (cuDNN autotuning, allocator), then STEPS timed steps on random images of the network's
input size; a timer waits for the device before it reads the clock. The file
(resources/calibration.json) holds images per second per network key with the device, its GPU
mode and the software it was measured with; `common.cost.throughput` reads it (the environment's
FIRSTLAYER_IMAGES_PER_SECOND still overrides it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from firstlayer.common.cost import CALIBRATION_FORMAT
from firstlayer.common.grid import RunSpec
from firstlayer.training.devices import (
    configure_precision,
    device_record,
    gpu_mode,
    gpu_request,
    select_device,
)
from firstlayer.training.models import build
from firstlayer.training.run import train_epoch

STEPS = 20  # timed steps per network on a GPU
WARMUP = 3  # untimed steps before them (cuDNN autotuning)
CPU_STEPS = 2  # on a CPU, steps are slow and steady: fewer suffice
CPU_WARMUP = 1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(network: dict, device: torch.device, steps: int = STEPS, warmup: int = WARMUP) -> float:
    """Training images per second of one network (a `Plan.networks` entry) on `device`."""
    torch.manual_seed(0)
    spec = RunSpec(
        "calibration",
        arch=network["arch"],
        first_width=network["first_width"],
        width=network["width"],
        batch_size=network["batch_size"],
        precision=network["precision"],
    )
    model = build(
        spec.arch,
        spec.first_width,
        spec.width,
        network["classes"],
        network["channels"],
        side=network["side"],  # a ViT's position embedding is sized by the image
    ).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    count = spec.batch_size * max(steps, warmup)
    side = network["side"]
    x = torch.randn(count, network["channels"], side, side, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, network["classes"], (count,), device=device)
    order = torch.randperm(count, device=device)
    train_epoch(model, optimizer, x, y, order[: spec.batch_size * warmup], spec, device)
    _sync(device)
    start = time.perf_counter()
    train_epoch(model, optimizer, x, y, order[: spec.batch_size * steps], spec, device)
    _sync(device)
    return spec.batch_size * steps / (time.perf_counter() - start)


def calibrate(
    networks: dict[str, dict],
    out_path,
    device=None,
    steps: int | None = None,
    warmup: int | None = None,
    log=print,
    resources=None,
) -> dict:
    """Measure every network of `networks` ({network key: network}) and write the calibration
    file `out_path` (atomically); returns its content. `steps` and `warmup` default to STEPS and
    WARMUP on a GPU, CPU_STEPS and CPU_WARMUP elsewhere."""
    device = torch.device(device) if device else select_device(log, gpu_request(resources))
    gpu = device.type == "cuda"
    steps = steps or (STEPS if gpu else CPU_STEPS)
    warmup = warmup or (WARMUP if gpu else CPU_WARMUP)
    mode = gpu_mode()
    configure_precision(device, mode)
    rates = {}
    for key, network in networks.items():
        rates[key] = measure(network, device, steps, warmup)
        log(f"{key}: {rates[key]:,.0f} images/s")
    hardware = device_record(device, mode)
    content = {
        "format": CALIBRATION_FORMAT,
        "device": hardware.get("device_name", str(device)),
        "device_type": device.type,
        "gpu_mode": mode,
        "hardware": hardware,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "steps": steps,
        "warmup": warmup,
        "rates": rates,
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out_path)
    return content
