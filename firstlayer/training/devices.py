"""Which device a training job uses, how float32 is computed there, and what a run records.

Choice (`select_device`, once per process):
- FIRSTLAYER_DEVICE (e.g. "cpu", "cuda:1") overrides everything, a GPU request included.
- A job that asked for a GPU (`gpu_request`: its Snakemake resources `gpu`/`gpus`/`gres`, the
  GPU variables SLURM sets when it allocates one, or FIRSTLAYER_REQUIRE_GPU=1) and sees none
  stops with one line; it never trains on the CPU in silence.
- Under SLURM a job sees only the GPUs it was given, so with one visible GPU that one is its own.
- On a machine with several visible GPUs, concurrent jobs would all pick cuda:0 (Snakemake
  counts a `gpu` resource but hands out no device ids). Each process therefore claims a slot:
  an exclusive lock on a file named by the GPU's UUID (fcntl.flock, released by the kernel when
  the process ends, even if it is killed), so jobs with different CUDA_VISIBLE_DEVICES never
  take one physical GPU twice. The choice is made once per process and becomes the current CUDA
  device (torch.cuda.set_device); later calls reuse it, `release_device` gives the slot back.
- Apple's MPS is used when present and CUDA is not; otherwise the CPU.

Float32 on a GPU (FIRSTLAYER_GPU_MODE, applied by `configure_precision`):
- fast (default): TF32 tensor cores for convolutions and matrix products, cuDNN autotuning,
  nondeterministic algorithms allowed. It trades exactness for speed: the products are rounded
  to a 10-bit mantissa (about 3 significant digits, accumulation stays float32), and two runs
  with the same seed differ in the last bits from the first step on and drift apart, so a
  resumed run is not bit-identical to an uninterrupted one. Profiles still agree (checked by
  tests/test_gpu.py).
- reproducible: IEEE float32 (TF32 off), deterministic algorithms only (an operation without
  one raises), no cuDNN autotuning, CUBLAS_WORKSPACE_CONFIG=:4096:8 (set before cuBLAS starts).
  The same seed on the same GPU model and software gives bit-identical runs and resumes.
On the CPU float32 is always IEEE and results are deterministic for a fixed thread count; the
mode changes nothing there. `device_record` is what every run file stores about all of this.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import torch

from firstlayer.errors import InputError

GPU_MODES = ("fast", "reproducible")
CUBLAS_DETERMINISTIC = ":4096:8"
SLURM_GPU_VARIABLES = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")

_chosen: torch.device | None = None  # this process's automatic choice
_slot = None  # the open, locked slot file of that choice


class DeviceError(InputError):
    """The job cannot get the device it needs; str() is the whole message."""


def lock_dir() -> Path:
    path = Path(
        os.environ.get(
            "FIRSTLAYER_LOCK_DIR",
            Path(tempfile.gettempdir()) / f"firstlayer-gpu-slots-{os.getuid()}",
        )
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lock_name(key: str) -> str:
    return "gpu-" + re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock"


def claim_slot(keys, directory: Path | None = None, wait: float = 0.5, log=print):
    """(position in `keys`, open lock file) of the first free slot, one slot per key (a GPU's
    UUID); waits while all are taken (Snakemake's `gpu` resource normally prevents that). The
    slot is held until the file is closed or the process ends."""
    directory = directory or lock_dir()
    announced = False
    while True:
        for position, key in enumerate(keys):
            handle = open(directory / _lock_name(key), "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return position, handle
        if not announced:
            log(f"all {len(keys)} GPU slots in {directory} are taken; waiting for one")
            announced = True
        time.sleep(wait)


def gpu_request(resources=None, environ=None) -> str | None:
    """What says this job must run on a GPU (as text for the error message), or None."""
    resources = resources or {}
    environ = os.environ if environ is None else environ
    for key in ("gpu", "gpus"):
        value = resources.get(key)
        if value not in (None, "", 0, "0"):
            return f"resources {key}={value}"
    for key in ("gres", "slurm_extra"):
        if "gpu" in str(resources.get(key) or ""):
            return f"resources {key}={resources[key]!r}"
    if environ.get("FIRSTLAYER_REQUIRE_GPU") == "1":
        return "FIRSTLAYER_REQUIRE_GPU=1"
    for key in SLURM_GPU_VARIABLES:
        if environ.get(key) not in (None, "", "0"):
            return f"SLURM allocated GPUs ({key}={environ[key]})"
    return None


def select_device(log=print, require: str | None = None, cuda=torch.cuda) -> torch.device:
    """The device this job trains on (see the module docstring). `require`: why a GPU is
    mandatory (from `gpu_request`), or None. `cuda`: torch.cuda, or a stand-in for tests."""
    global _chosen, _slot
    override = os.environ.get("FIRSTLAYER_DEVICE")
    if override:
        try:
            device = torch.device(override)
        except RuntimeError:
            raise DeviceError(
                f"FIRSTLAYER_DEVICE={override!r}; allowed: a torch device such as cpu, cuda, "
                f"cuda:1, mps"
            ) from None
        if device.type == "cuda" and not cuda.is_available():
            raise DeviceError(f"FIRSTLAYER_DEVICE={override!r} but torch sees no CUDA device")
        if device.type == "cuda":
            cuda.set_device(device)
        if require and device.type != "cuda":
            log(f"FIRSTLAYER_DEVICE={override} overrides this job's GPU request ({require})")
        return device
    if _chosen is not None:
        return _chosen
    if cuda.is_available():
        count = cuda.device_count()
        index = 0
        if count > 1:
            uuids = [str(cuda.get_device_properties(i).uuid) for i in range(count)]
            index, _slot = claim_slot(uuids, log=log)
            log(f"using GPU slot {index} of {count} visible GPUs (UUID {uuids[index]})")
        _chosen = torch.device(f"cuda:{index}")
        cuda.set_device(_chosen)
        return _chosen
    if require:
        raise DeviceError(
            f"this job asked for a GPU ({require}) but torch sees none (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}); check the job's partition and GPU "
            f"request, or set FIRSTLAYER_DEVICE=cpu to train on the CPU on purpose"
        )
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        _chosen = torch.device("mps")
    else:
        _chosen = torch.device("cpu")
    return _chosen


def release_device() -> None:
    """Forget this process's choice and give its GPU slot back (the kernel does the latter at
    exit anyway)."""
    global _chosen, _slot
    if _slot is not None:
        _slot.close()
    _chosen, _slot = None, None


def gpu_mode(environ=None) -> str:
    """The float32 mode on GPUs: FIRSTLAYER_GPU_MODE, default fast."""
    environ = os.environ if environ is None else environ
    mode = environ.get("FIRSTLAYER_GPU_MODE") or "fast"
    if mode not in GPU_MODES:
        raise DeviceError(f"FIRSTLAYER_GPU_MODE={mode!r}; allowed: {', '.join(GPU_MODES)}")
    return mode


def configure_precision(device: torch.device, mode: str) -> None:
    """Apply a GPU float32 mode (module docstring) for work on `device`; nothing on the CPU."""
    if mode not in GPU_MODES:
        raise DeviceError(f"GPU mode {mode!r}; allowed: {', '.join(GPU_MODES)}")
    if device.type != "cuda":
        return
    fast = mode == "fast"
    if not fast:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    precision = "tf32" if fast else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cudnn.benchmark = fast
    torch.backends.cudnn.deterministic = not fast
    if torch.are_deterministic_algorithms_enabled() == fast:  # the call costs seconds
        torch.use_deterministic_algorithms(not fast)


def bfloat16_warning(name: str, capability: tuple[int, int]) -> str | None:
    """A warning when bfloat16 autocast runs on a GPU without bfloat16 tensor cores (before
    compute capability 8.0, Ampere): it is emulated there and slower than float32."""
    if capability[0] >= 8:
        return None
    return (
        f"warning: bfloat16 on {name} (compute capability {capability[0]}.{capability[1]} < 8.0) "
        f"is emulated and slower than float32; use precision float32 on this GPU"
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_record(device: torch.device, mode: str) -> dict:
    """What a run file records about the device and its arithmetic."""
    record = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        record.update(
            {
                "device_name": properties.name,
                "device_uuid": str(properties.uuid),
                "compute_capability": f"{properties.major}.{properties.minor}",
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "gpu_mode": mode,
                "conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
                "matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "cudnn_deterministic": torch.backends.cudnn.deterministic,
                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
                "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            }
        )
    else:
        record.update(
            {
                "device_name": cpu_name() if device.type == "cpu" else device.type,
                "gpu_mode": "not applicable",
                "conv_fp32_precision": "ieee",
                "matmul_fp32_precision": "ieee",
                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            }
        )
    return record
