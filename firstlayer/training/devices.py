"""Which device a training job uses, and one GPU per job on a machine with several.

- FIRSTLAYER_DEVICE (e.g. "cpu", "cuda:1") overrides everything.
- Under SLURM (or any scheduler that sets CUDA_VISIBLE_DEVICES) a job sees only the GPUs it was
  given, so the first visible one is its own.
- On a workstation with several visible GPUs, concurrent jobs would all pick cuda:0; Snakemake
  counts a `gpu` resource but does not hand out device ids. Each job therefore claims a slot: an
  exclusive lock on one file per GPU (fcntl.flock, released by the kernel when the process ends,
  even if it is killed), and uses that GPU.
- Apple's MPS is used when present and CUDA is not; otherwise the CPU.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

import torch

_held = []  # lock files kept open for the life of the process


def lock_dir() -> Path:
    path = Path(
        os.environ.get(
            "FIRSTLAYER_LOCK_DIR",
            Path(tempfile.gettempdir()) / f"firstlayer-gpu-slots-{os.getuid()}",
        )
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def claim_slot(count: int, directory: Path | None = None, wait: float = 0.5, log=print) -> int:
    """Index of a free slot among `count`, held until this process ends; waits while all are
    taken (Snakemake's `gpu` resource normally prevents that)."""
    directory = directory or lock_dir()
    announced = False
    while True:
        for index in range(count):
            handle = open(directory / f"gpu{index}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _held.append(handle)
            return index
        if not announced:
            log(f"all {count} GPU slots in {directory} are taken; waiting for one")
            announced = True
        time.sleep(wait)


def select_device(log=print) -> torch.device:
    """The device this job should train on (see the module docstring)."""
    chosen = os.environ.get("FIRSTLAYER_DEVICE")
    if chosen:
        return torch.device(chosen)
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        if count == 1:
            return torch.device("cuda:0")
        index = claim_slot(count, log=log)
        log(f"using GPU slot {index} of {count} visible GPUs")
        return torch.device(f"cuda:{index}")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
