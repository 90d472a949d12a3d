"""Devices without the device: GPU slots keyed by UUID and held once per process, a GPU request
that never falls back to the CPU, the float32 policy and its record, no CPU/device mixing (on
the `meta` device), resume across devices, corrupt checkpoints, checkpoints by interval."""

import fcntl
import json
import queue
import signal
import subprocess
import sys
import threading
import warnings
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from conftest import Interrupted, as_if_saved_on, profile_correlation, stop_at, write_toy_dataset

from firstlayer.common.grid import RunSpec
from firstlayer.training import devices
from firstlayer.training.checkpoints import (
    checkpoint_due,
    checkpoint_minutes,
    dependencies,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from firstlayer.training.devices import (
    DeviceError,
    bfloat16_warning,
    claim_slot,
    configure_precision,
    device_record,
    gpu_mode,
    gpu_request,
    release_device,
    select_device,
)
from firstlayer.training.models import build
from firstlayer.training.run import (
    _autocast,
    evaluate,
    prepare_data,
    read_run,
    train,
    train_epoch,
)

# Another job holding a GPU slot: a process with an exclusive lock on the slot's file (plain
# Python, so that it starts in milliseconds; the lock is what claim_slot takes).
HOLD = """
import fcntl, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("holding", flush=True)
time.sleep(60)
"""
TINY = dict(dataset="toy", first_width=8, width=0.0625, n_train=None, n_test=None, batch_size=16)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "toy.h5", 60, 12, 12)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a busy machine: one thread is many times faster than several."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_choice():
    release_device()
    yield
    release_device()


class FakeCuda:
    """torch.cuda as a machine with these GPUs (UUIDs) shows it."""

    def __init__(self, uuids):
        self.uuids, self.current = list(uuids), None

    def is_available(self):
        return bool(self.uuids)

    def device_count(self):
        return len(self.uuids)

    def get_device_properties(self, index):
        return SimpleNamespace(uuid=self.uuids[index], name=f"GPU {index}")

    def set_device(self, device):
        self.current = torch.device(device)


def held(directory):
    """Lock files in `directory` that some open handle holds."""
    taken = []
    for path in sorted(directory.glob("gpu-*.lock")):
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                taken.append(path.name)
    return taken


# ------------------------------------------------------------------ choosing the device


def test_a_killed_job_frees_its_slot_and_a_waiting_job_takes_it(tmp_path):
    slot = tmp_path / devices._lock_name("uuid-a")
    other = subprocess.Popen([sys.executable, "-c", HOLD, slot], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "holding"  # the other job has the only GPU
        said, got = queue.Queue(), queue.Queue()
        waiting = threading.Thread(
            target=lambda: got.put(claim_slot(["uuid-a"], tmp_path, wait=0.02, log=said.put))
        )
        waiting.start()
        assert "are taken; waiting for one" in said.get(timeout=30)
        assert got.empty()
        other.send_signal(signal.SIGKILL)  # the kernel releases its lock
        position, handle = got.get(timeout=30)
        assert position == 0
        handle.close()
    finally:
        other.kill()


def test_slots_are_physical_gpus_whatever_order_a_job_sees_them_in(tmp_path):
    # Two jobs with CUDA_VISIBLE_DEVICES=0,1 and 1,0: by visible index both would take slot
    # 0; by UUID the second gets the other GPU.
    first, a = claim_slot(["uuid-a", "uuid-b"], tmp_path)
    second, b = claim_slot(["uuid-b", "uuid-a"], tmp_path)
    try:
        assert (first, second) == (0, 0)
        assert held(tmp_path) == ["gpu-uuid-a.lock", "gpu-uuid-b.lock"]
    finally:
        a.close()
        b.close()
    assert held(tmp_path) == []


def test_the_device_is_chosen_once_per_process_and_its_slot_given_back(
    tmp_path, monkeypatch, fresh_choice
):
    monkeypatch.delenv("FIRSTLAYER_DEVICE")
    monkeypatch.setenv("FIRSTLAYER_LOCK_DIR", str(tmp_path))
    cuda = FakeCuda(["GPU-1111", "GPU-2222"])
    chosen = [select_device(log=lambda m: None, cuda=cuda) for _ in range(3)]
    # three train() calls in one process: one slot, not three (a third would wait forever)
    assert chosen == [torch.device("cuda:0")] * 3 and cuda.current == chosen[0]
    assert held(tmp_path) == ["gpu-GPU-1111.lock"]
    release_device()
    assert held(tmp_path) == []


def test_a_job_that_asked_for_a_gpu_never_trains_on_the_cpu(monkeypatch, fresh_choice):
    monkeypatch.delenv("FIRSTLAYER_DEVICE")
    request = gpu_request({"gpu": 1, "mem_mb": 100}, environ={})
    with pytest.raises(DeviceError) as error:
        select_device(require=request, cuda=FakeCuda([]))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("this job asked for a GPU (resources gpu=1) but torch sees none")
    assert message.endswith("or set FIRSTLAYER_DEVICE=cpu to train on the CPU on purpose")
    assert select_device(cuda=FakeCuda([])) == torch.device("cpu")  # nobody asked: the CPU
    monkeypatch.setenv("FIRSTLAYER_DEVICE", "cpu")  # a deliberate choice wins, and says so
    lines = []
    assert select_device(lines.append, request, FakeCuda([])) == torch.device("cpu")
    assert lines == ["FIRSTLAYER_DEVICE=cpu overrides this job's GPU request (resources gpu=1)"]
    monkeypatch.setenv("FIRSTLAYER_DEVICE", "cuda:1")
    with pytest.raises(DeviceError, match="FIRSTLAYER_DEVICE='cuda:1' but torch sees no CUDA"):
        select_device(cuda=FakeCuda([]))


def test_what_counts_as_a_gpu_request():
    assert gpu_request({"gpus": "2"}, {}) == "resources gpus=2"
    assert gpu_request({"gres": "gpu:a100:1"}, {}) == "resources gres='gpu:a100:1'"
    assert gpu_request({}, {"SLURM_JOB_GPUS": "3"}) == "SLURM allocated GPUs (SLURM_JOB_GPUS=3)"
    assert gpu_request({}, {"FIRSTLAYER_REQUIRE_GPU": "1"}) == "FIRSTLAYER_REQUIRE_GPU=1"
    assert gpu_request({"gpu": 0, "mem_mb": 10}, {"CUDA_VISIBLE_DEVICES": ""}) is None


# ------------------------------------------------------------------ precision policy


def test_gpu_modes_set_what_they_promise_and_runs_record_them(monkeypatch):
    saved = (
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    switch = {"on": False}  # torch's own switch costs seconds (it loads the compiler's config)
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: switch["on"])
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda on: switch.update(on=on))
    try:
        configure_precision(torch.device("cpu"), "reproducible")  # nothing to do on the CPU
        assert not torch.are_deterministic_algorithms_enabled()
        cuda = torch.device("cuda")  # only flags are set: checkable without a GPU
        configure_precision(cuda, "reproducible")
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        assert devices.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        configure_precision(cuda, "fast")
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    finally:
        torch.backends.cuda.matmul.fp32_precision = saved[0]
        torch.backends.cudnn.conv.fp32_precision = saved[1]
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:4]
    assert gpu_mode({}) == "fast" and gpu_mode({"FIRSTLAYER_GPU_MODE": "reproducible"})
    with pytest.raises(DeviceError, match=r"^FIRSTLAYER_GPU_MODE='exact'; allowed: fast, repro"):
        gpu_mode({"FIRSTLAYER_GPU_MODE": "exact"})
    record = device_record(torch.device("cpu"), "fast")
    assert record["device_name"] and record["threads"] == torch.get_num_threads()
    assert record["conv_fp32_precision"] == "ieee" and record["gpu_mode"] == "not applicable"


def test_autocast_is_a_no_op_in_float32_anywhere_and_bfloat16_warns_before_ampere():
    meta = torch.device("meta")  # no autocast support at all
    with _autocast(RunSpec(dataset="toy"), meta):
        pass
    with pytest.raises(ValueError, match=r"^precision=bfloat16 on device meta: torch has no "):
        _autocast(RunSpec(dataset="toy", precision="bfloat16"), meta)
    assert "emulated and slower" in bfloat16_warning("Tesla V100", (7, 0))
    assert bfloat16_warning("A100", (8, 0)) is None


# ------------------------------------------------------------------ no CPU/device mixing


@pytest.mark.parametrize("labels", ["true", "random", "decile1"])
@pytest.mark.parametrize("inputs", ["none", "scale1x0.5"])
def test_data_and_training_steps_stay_on_the_device(toy, labels, inputs):
    """On `meta`, any CPU tensor meeting a device tensor is an error, as on a GPU."""
    meta = torch.device("meta")
    spec = RunSpec(**TINY, labels=labels, inputs=inputs)
    data = prepare_data(spec, toy, meta)
    assert {data[k].device for k in ("x", "y", "x_test", "y_test")} == {meta}
    model = build("vgg11", 8, 0.0625, data["classes"], 3).to(meta)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    order = torch.arange(32, device=meta)  # two steps
    sums = train_epoch(model, optimizer, data["x"], data["y"], order, spec, meta)
    test = evaluate(model, data["x_test"], data["y_test"], spec, meta)
    assert {t.device for t in (*sums, *test)} == {meta}


def test_a_checkpoint_resumes_on_another_device(toy, tmp_path):
    """Saved from the CPU, restored into a model on `meta` (as onto a GPU): parameters and
    optimizer state follow the model, the recorded first layers stay on the CPU, steps run."""
    spec = RunSpec(**TINY, momentum=0.9)
    model = build("vgg11", 8, 0.0625, 10, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = prepare_data(spec, toy, torch.device("cpu"))
    train_epoch(model, optimizer, data["x"], data["y"], torch.arange(32), spec, "cpu")
    weights = model.first_conv.weight.detach().clone()
    clock = torch.zeros(8, dtype=torch.float64)
    state = {"epoch": 1, "step": 2, "steps": [0], "weights": [weights], "metrics": []}
    state |= {"clock": clock, "clocks": [clock], "resumed_from": []}
    depends = dependencies(spec, "0" * 64, "code")
    save_checkpoint(tmp_path / "run.pt", depends, model, optimizer, state)
    meta = torch.device("meta")
    model = build("vgg11", 8, 0.0625, 10, 3).to(meta)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copying values into meta tensors is a no-op
        state = restore(load_checkpoint(tmp_path / "run.pt", depends), model, optimizer)
    buffers = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    assert buffers and {b.device for b in buffers} == {meta}
    assert {p.device for p in model.parameters()} == {meta}
    assert state["resumed_from"] == [1] and state["weights"][0].device.type == "cpu"
    x, y = data["x"].to(meta), data["y"].to(meta)
    train_epoch(model, optimizer, x, y, torch.arange(32, device=meta), spec, meta)
    torch.stack([*state["weights"], weights])  # later records join the CPU ones


def test_a_run_checkpointed_on_a_gpu_resumes_on_the_cpu_and_ends_identical(toy, tmp_path):
    spec = RunSpec(**TINY, epochs=3, seed=2)
    train(spec, toy, tmp_path / "ref.h5", tmp_path / "ref.pt", "cpu", lambda m: None, minutes=0)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(spec, toy, tmp_path / "run.h5", checkpoint, "cpu", stop_at("epoch 2/"), minutes=0)
    as_if_saved_on(checkpoint, "cuda:0")
    with pytest.raises(RuntimeError):  # loading it unmapped needs CUDA
        torch.load(checkpoint, weights_only=True)
    lines = []
    train(spec, toy, tmp_path / "run.h5", checkpoint, "cpu", lines.append, minutes=0)
    assert "resuming from the checkpoint after epoch 1 (step 4)" in lines
    reference, resumed = read_run(tmp_path / "ref.h5"), read_run(tmp_path / "run.h5")
    assert np.array_equal(reference.weights, resumed.weights)
    assert np.array_equal(reference.metrics["test_loss"], resumed.metrics["test_loss"])
    assert profile_correlation(reference, resumed, toy) == pytest.approx(1.0)
    with h5py.File(tmp_path / "run.h5") as handle:
        provenance = json.loads(handle.attrs["provenance"])
    assert provenance["resumed_from"] == [1]
    assert provenance["hardware"]["device"] == "cpu" and provenance["hardware"]["threads"] >= 1


# ------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_an_unreadable_checkpoint_is_set_aside_and_the_run_starts_over(toy, tmp_path, damage):
    spec = RunSpec(**TINY, epochs=1, seed=4)
    checkpoint = tmp_path / "run.pt"
    torch.save({"spec": spec.as_dict(), "model": {"w": torch.zeros(1000)}}, checkpoint)
    if damage == "truncated":  # e.g. a full disk, or a copy cut short
        checkpoint.write_bytes(checkpoint.read_bytes()[:3000])
    lines = []
    train(spec, toy, tmp_path / "run.h5", checkpoint, "cpu", lines.append, minutes=0)
    aside = list(tmp_path.glob("run.pt.corrupt-*"))
    assert len(aside) == 1 and not checkpoint.exists()
    note = next(line for line in lines if line.startswith("checkpoint "))
    assert note.startswith(f"checkpoint {checkpoint} is unreadable (")
    assert note.endswith(f"set aside as {aside[0]}, starting over")
    assert not any(line.startswith("resuming") for line in lines)
    assert read_run(tmp_path / "run.h5").metrics["epoch"].tolist() == [1]


def test_checkpoints_come_by_interval_not_by_epoch(toy, tmp_path, monkeypatch):
    saves = []
    monkeypatch.setattr(
        "firstlayer.training.run.save_checkpoint", lambda *args: saves.append(args[-1]["epoch"])
    )
    spec = RunSpec(**TINY, epochs=3)
    train(spec, toy, tmp_path / "a.h5", tmp_path / "a.pt", "cpu", lambda m: None, minutes=0)
    assert saves == [1, 2]  # 0: after every epoch but the last (the run file records it)
    saves.clear()
    train(spec, toy, tmp_path / "b.h5", tmp_path / "b.pt", "cpu", lambda m: None, minutes=5)
    assert saves == []  # a short run: its only record is the run file
    # at most one interval unsaved: save when the next epoch would cross it
    assert checkpoint_due(since_last=250, epoch_seconds=60, interval=300)
    assert not checkpoint_due(since_last=200, epoch_seconds=60, interval=300)
    assert checkpoint_due(since_last=400, epoch_seconds=400, interval=300)  # long epochs: each
    assert (
        checkpoint_minutes({}) == 5
        and checkpoint_minutes({"FIRSTLAYER_CHECKPOINT_MINUTES": "0"}) == 0
    )
    with pytest.raises(ValueError, match=r"^FIRSTLAYER_CHECKPOINT_MINUTES='-1'; allowed: a numb"):
        checkpoint_minutes({"FIRSTLAYER_CHECKPOINT_MINUTES": "-1"})
