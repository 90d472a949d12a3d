"""Device choice: one GPU slot per concurrent job, released when the job dies."""

import signal
import subprocess
import sys

import torch

from firstlayer.training.devices import select_device

HOLD = """
import sys, time
from pathlib import Path
from firstlayer.training.devices import claim_slot
log = lambda message: print(message, file=sys.stderr, flush=True)
print(claim_slot(int(sys.argv[1]), Path(sys.argv[2]), wait=0.05, log=log), flush=True)
time.sleep(60)
"""


def holder(count, directory):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(count), str(directory)], stdout=subprocess.PIPE, text=True
    )
    return process, int(process.stdout.readline())


def test_concurrent_jobs_get_distinct_slots_and_a_killed_job_frees_its_own(tmp_path):
    first, a = holder(3, tmp_path)
    second, b = holder(3, tmp_path)
    third, c = holder(3, tmp_path)
    try:
        assert sorted([a, b, c]) == [0, 1, 2]
        second.send_signal(signal.SIGKILL)  # the kernel releases its lock
        second.wait()
        fourth, d = holder(3, tmp_path)
        assert d == b
        fourth.kill()
    finally:
        for process in (first, second, third):
            process.kill()


def test_a_job_waits_while_every_slot_is_taken(tmp_path):
    first, _ = holder(1, tmp_path)
    waiting = subprocess.Popen(
        [sys.executable, "-c", HOLD, "1", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert "are taken; waiting for one" in waiting.stderr.readline()  # blocks until it says so
    assert waiting.poll() is None  # still waiting, no slot
    first.kill()
    first.wait()
    assert waiting.stdout.readline().strip().endswith("0")
    waiting.kill()


def test_device_override_and_cpu_fallback(monkeypatch):
    monkeypatch.setenv("FIRSTLAYER_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")
    monkeypatch.delenv("FIRSTLAYER_DEVICE")
    if not torch.cuda.is_available():
        assert select_device().type in ("cpu", "mps")
    else:
        assert select_device().type == "cuda"
