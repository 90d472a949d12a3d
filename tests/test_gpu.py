"""CUDA smoke test: the training path on a real GPU (`pytest -m gpu`; skipped without CUDA).

Same seed on the CPU and the GPU, an interrupted GPU run that resumes, bit-identical GPU runs in
the reproducible mode, bfloat16 against float32, host synchronisations per epoch, peak memory of
the full-width network, two jobs on two GPUs. Run it on a cluster node as docs/cluster.md says.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, Interrupted, profile_correlation, stop_at, write_toy_dataset

from firstlayer.common.grid import RunSpec
from firstlayer.datasets.sources import DatasetFile, Splits, write_dataset
from firstlayer.training.models import build
from firstlayer.training.run import evaluate, prepare_data, read_run, train, train_epoch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch"),
]
NARROW = dict(dataset="toy", width=0.125, n_train=None, n_test=None, epochs=1)
QUIET = lambda message: None  # noqa: E731


def cifar_source():
    """4,000 CIFAR-10 training images and labels: from the workflow's dataset file, or the
    lossless copy beside the checkout (FIRSTLAYER_SHARED_DATA); None without either."""
    built = ROOT / "resources" / "datasets" / "cifar10.h5"
    if built.is_file():
        with DatasetFile(built) as data:
            return data.images("train")[:4000], data.labels("train")[:4000]
    shared = Path(os.environ.get("FIRSTLAYER_SHARED_DATA", "/nonexistent"))
    if (shared / "cifar10-train4000-lossless.npz").is_file():
        with np.load(shared / "cifar10-train4000-lossless.npz") as archive:
            return archive["x"][:4000], archive["y"][:4000]
    return None


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """make(n): a dataset file of the first n CIFAR-10 training images (the next 500 test it).
    The profile comparisons need natural images, whose learned profiles stand well above
    rounding noise: on random smooth images with unlearnable labels, float32 and bfloat16 runs
    on the CPU correlate only 0.94-0.97."""
    found = cifar_source()
    if found is None:
        pytest.skip(
            "needs CIFAR-10 images: build resources/datasets/cifar10.h5 with the workflow, or "
            "set FIRSTLAYER_SHARED_DATA to the folder holding cifar10-train4000-lossless.npz"
        )
    images, labels = found
    folder = tmp_path_factory.mktemp("cifar")

    def make(n):
        path = folder / f"cifar{n}.h5"
        if not path.exists():
            train, test = slice(0, n), slice(n, n + 500)
            write_dataset(
                path,
                Splits(
                    {"train": images[train], "test": images[test]},
                    {"train": labels[train], "test": labels[test]},
                    [str(c) for c in range(10)],
                    "test",
                    "0" * 64,
                ),
            )
        return path

    return make


@pytest.fixture(scope="module")
def images2k(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("gpu") / "toy.h5", 2000, 500, 32)


def run(spec, data, tmp_path, name, device, log=QUIET, minutes=0):
    train(
        spec, data, tmp_path / f"{name}.h5", tmp_path / f"{name}.pt", device, log, minutes=minutes
    )
    return read_run(tmp_path / f"{name}.h5")


def test_same_seed_on_cpu_and_cuda_gives_the_same_init_and_profile(cifar, tmp_path):
    data = cifar(2000)
    spec = RunSpec(**NARROW, seed=1)
    cpu, cuda = (run(spec, data, tmp_path, d, d) for d in ("cpu", "cuda"))
    assert np.array_equal(cpu.init, cuda.init)
    assert profile_correlation(cpu, cuda, data) >= 0.99


def test_an_interrupted_cuda_run_resumes(images2k, tmp_path):
    spec = RunSpec(**{**NARROW, "epochs": 3}, seed=2)
    with pytest.raises(Interrupted):
        run(spec, images2k, tmp_path, "run", "cuda", stop_at("epoch 2/"))
    lines = []
    resumed = run(spec, images2k, tmp_path, "run", "cuda", lines.append)
    assert any(line.startswith("resuming from the checkpoint after epoch 1") for line in lines)
    assert resumed.metrics["epoch"].tolist() == [1, 2, 3]


def test_reproducible_mode_gives_bit_identical_runs_and_resumes(images2k, tmp_path, monkeypatch):
    monkeypatch.setenv("FIRSTLAYER_GPU_MODE", "reproducible")
    spec = RunSpec(**{**NARROW, "epochs": 2}, seed=3)
    a, b = (run(spec, images2k, tmp_path, name, "cuda") for name in ("a", "b"))
    with pytest.raises(Interrupted):
        run(spec, images2k, tmp_path, "c", "cuda", stop_at("epoch 2/"))
    c = run(spec, images2k, tmp_path, "c", "cuda")
    monkeypatch.setenv("FIRSTLAYER_GPU_MODE", "fast")
    run(spec, images2k, tmp_path, "d", "cuda")  # the fast mode is restored afterwards
    assert not torch.are_deterministic_algorithms_enabled()
    for other in (b, c):
        assert np.array_equal(a.weights, other.weights)
        assert np.array_equal(a.metrics["train_loss"], other.metrics["train_loss"])


def test_bfloat16_learns_a_profile_close_to_float32(cifar, tmp_path):
    # Same seed, float32 against bfloat16 autocast. On an H200 (torch 2.11, fast mode) three
    # runs gave 0.944, 0.982 and 0.985, while float32 from another seed gave 0.994: bfloat16
    # moves the profile more than a new seed does (on the CPU: 0.993), so float32 stays the
    # default and docs/cluster.md says so. This checks bfloat16 still learns the same kind of
    # profile, not that it is interchangeable with float32.
    data = cifar(3500)
    settings = {**NARROW, "epochs": 3}
    runs = [
        run(RunSpec(**settings, seed=4, precision=p), data, tmp_path, p, "cuda")
        for p in ("float32", "bfloat16")
    ]
    assert runs[1].metrics["train_loss"][-1] < runs[1].metrics["train_loss"][0]
    assert profile_correlation(*runs, data) >= 0.9


def test_an_epoch_synchronises_with_the_host_a_bounded_number_of_times(images2k):
    device = torch.device("cuda")
    spec = RunSpec(**NARROW, batch_size=64)  # 32 steps
    data = prepare_data(spec, images2k, device)
    model = build("vgg11", 64, 0.125).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    order = torch.randperm(len(data["y"]), device=device)
    train_epoch(model, optimizer, data["x"], data["y"], order, spec, device)  # warm-up
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_epoch(model, optimizer, data["x"], data["y"], order, spec, device)
            evaluate(model, data["x_test"], data["y_test"], spec, device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 2, [str(w.message) for w in syncs]  # none per step


def test_full_width_vgg11_on_50k_images_fits_in_6_gb(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (51000, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(51000) % 10
    data = tmp_path / "50k.h5"
    splits = {"train": slice(0, 50000), "test": slice(50000, None)}
    write_dataset(
        data,
        Splits(
            {k: images[v] for k, v in splits.items()},
            {k: labels[v] for k, v in splits.items()},
            [str(c) for c in range(10)],
            "test",
            "0" * 64,
        ),
    )
    torch.cuda.reset_peak_memory_stats()
    spec = RunSpec(dataset="toy", width=1.0, n_train=None, n_test=None, epochs=1)
    train(spec, data, tmp_path / "full.h5", tmp_path / "full.pt", "cuda", QUIET, minutes=0)
    peak = torch.cuda.max_memory_allocated() / 2**30
    assert peak < 6, f"peak {peak:.2f} GiB"


HOLD = """
import sys, time, torch
from pathlib import Path
from firstlayer.training.devices import select_device
device = select_device(log=lambda m: None)
print(torch.cuda.get_device_properties(device).uuid, flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two visible GPUs")
def test_two_jobs_on_a_two_gpu_machine_get_different_gpus(tmp_path, monkeypatch):
    monkeypatch.delenv("FIRSTLAYER_DEVICE")
    monkeypatch.setenv("FIRSTLAYER_LOCK_DIR", str(tmp_path))
    jobs = [
        subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        uuids = {job.stdout.readline().strip() for job in jobs}
        assert len(uuids) == 2 and "" not in uuids
    finally:
        for job in jobs:
            job.kill()
