"""Training: determinism, resume after SIGKILL, labels, frozen layers, the recorded init."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import smooth_images

from firstlayer.common.grid import RunSpec, build_grid
from firstlayer.datasets.sources import Splits, write_dataset
from firstlayer.training.manipulations import apply_labels
from firstlayer.training.models import build
from firstlayer.training.run import (
    balanced_subset,
    batch_bounds,
    derive_seed,
    init_seed,
    read_run,
    record_steps,
    train,
)

TINY = dict(
    dataset="toy",
    arch="vgg11",
    first_width=8,
    width=0.0625,
    epochs=3,
    n_train=None,
    n_test=None,
    batch_size=16,
)


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.h5"
    images = smooth_images(200, 12, 12, 3, seed=5)
    labels = np.arange(200) % 4
    write_dataset(
        path,
        Splits(
            {"train": images[:160], "test": images[160:]},
            {"train": labels[:160], "test": labels[160:]},
            ["a", "b", "c", "d"],
            "test",
            "0" * 64,
        ),
    )
    return path


def run_in_process(spec, data, out, checkpoint, threads=1):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firstlayer.training.run",
            "--spec",
            json.dumps(spec.as_dict()),
            "--data",
            str(data),
            "--out",
            str(out),
            "--checkpoint",
            str(checkpoint),
            "--threads",
            str(threads),
            "--checkpoint-minutes",
            "0",  # after every epoch: the kill tests wait for one
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_same_seed_in_two_processes_gives_identical_weights(toy_dataset, tmp_path):
    spec = RunSpec(**TINY, seed=3)
    procs = [
        run_in_process(spec, toy_dataset, tmp_path / f"{i}.h5", tmp_path / f"{i}.pt")
        for i in (0, 1)
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stdout.read()
    a, b = read_run(tmp_path / "0.h5"), read_run(tmp_path / "1.h5")
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.steps, b.steps)
    assert np.array_equal(a.metrics["train_loss"], b.metrics["train_loss"])
    assert not np.array_equal(a.init, a.final)  # it did learn
    assert not (tmp_path / "0.pt").exists()  # the checkpoint is removed once the run is written


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_training_resumes_and_ends_identical(toy_dataset, tmp_path, sig):
    """SIGKILL, or SIGTERM as SLURM sends on preemption or time limit: the rerun resumes from
    the last checkpoint (losing at most the epoch in progress) and ends bit-identical."""
    spec = RunSpec(**{**TINY, "epochs": 8, "width": 0.25, "first_width": 16}, seed=1)
    reference = run_in_process(spec, toy_dataset, tmp_path / "ref.h5", tmp_path / "ref.pt")
    assert reference.wait(timeout=600) == 0
    checkpoint = tmp_path / "run.pt"
    proc = run_in_process(spec, toy_dataset, tmp_path / "run.h5", checkpoint)
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)  # into the next epoch
    os.kill(proc.pid, sig)
    assert proc.wait() == -sig
    assert not (tmp_path / "run.h5").exists()
    saved = torch.load(checkpoint, weights_only=True)["state"]["epoch"]
    assert 1 <= saved < 8
    resumed = run_in_process(spec, toy_dataset, tmp_path / "run.h5", checkpoint)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert f"resuming from the checkpoint after epoch {saved}" in output
    a, b = read_run(tmp_path / "ref.h5"), read_run(tmp_path / "run.h5")
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.steps, b.steps)
    assert np.array_equal(a.metrics["test_loss"], b.metrics["test_loss"])


def test_random_labels_are_a_seeded_permutation():
    labels = np.repeat(np.arange(10), 50)
    a = apply_labels("random", labels, None, 7)
    assert np.array_equal(np.bincount(a), np.bincount(labels))
    assert np.array_equal(a, apply_labels("random", labels, None, 7))
    assert not np.array_equal(a, apply_labels("random", labels, None, 8))
    assert np.mean(a == labels) < 0.3
    assert np.array_equal(apply_labels("true", labels, None, 7), labels)
    # the seed a run uses for its labels depends on its seed alone
    assert derive_seed(0, "labels") == derive_seed(0, "labels") != derive_seed(1, "labels")


def test_frozen_first_layer_does_not_change_and_init_is_recorded(toy_dataset, tmp_path):
    spec = RunSpec(**TINY, seed=2, frozen=True)
    torch.set_num_threads(1)
    train(spec, toy_dataset, tmp_path / "f.h5", tmp_path / "f.pt", log=lambda m: None)
    run = read_run(tmp_path / "f.h5")
    assert all(np.array_equal(w, run.init) for w in run.weights)
    assert run.metrics["train_loss"][-1] != run.metrics["train_loss"][0]  # the rest learned
    torch.manual_seed(init_seed(spec))
    model = build("vgg11", 8, 0.0625, num_classes=4)
    assert np.array_equal(run.init, model.first_conv.weight.detach().numpy())


def test_runs_differing_only_in_labels_start_from_different_first_layers(toy_dataset, tmp_path):
    torch.set_num_threads(1)
    inits = {}
    for labels in ("true", "random"):
        spec = RunSpec(**{**TINY, "epochs": 1}, seed=3, labels=labels)
        train(spec, toy_dataset, tmp_path / f"{labels}.h5", tmp_path / f"{labels}.pt", log=print)
        inits[labels] = read_run(tmp_path / f"{labels}.h5").init
    a, b = inits["true"].ravel(), inits["random"].ravel()
    # independent draws of the same distribution: same scale, uncorrelated
    assert not np.allclose(a, b)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.3
    assert 0.7 < a.std() / b.std() < 1.4
    # every field of the spec enters the seed; the same spec gives the same seed
    base = RunSpec(**TINY)
    assert init_seed(base) == init_seed(RunSpec(**TINY))
    for change in ({"labels": "random"}, {"inputs": "scale1x2"}, {"frozen": True}, {"lr": 0.1}):
        assert init_seed(RunSpec(**{**TINY, **change})) != init_seed(base)


def test_record_schedule_and_balanced_subset():
    assert sorted(record_steps(10, 3)) == [0, 1, 2, 4, 8, 10, 20, 30]
    labels = np.repeat(np.arange(5), 100)
    subset = balanced_subset(labels, 52, seed=0)
    assert len(subset) == 52 and np.all(np.diff(subset) > 0)
    assert sorted(np.bincount(labels[subset])) == [10, 10, 10, 11, 11]
    assert np.array_equal(subset, balanced_subset(labels, 52, seed=0))


def test_only_a_last_batch_of_one_image_changes():
    """A final batch of exactly one image joins the batch before it; every other size keeps
    ceil(n / batch) consecutive batches (10,000 images at 256: 40 steps, the last of 16)."""
    for n, size in [(10000, 256), (48, 16), (50, 16), (160, 16), (2, 16), (16, 16), (1, 16)]:
        bounds = batch_bounds(n, size)
        assert bounds == [(start, min(start + size, n)) for start in range(0, n, size)]
    assert len(batch_bounds(10000, 256)) == 40 and batch_bounds(10000, 256)[-1] == (9984, 10000)
    assert batch_bounds(49, 16) == [(0, 16), (16, 32), (32, 49)]
    assert batch_bounds(17, 16) == [(0, 17)]
    assert batch_bounds(257, 256) == [(0, 257)]


def test_a_run_is_checked_before_it_reads_its_images():
    """What the gate cannot know while planning (an ImageFolder's size and channels), the
    training job refuses in its first seconds, naming the run; and a run that needs more memory
    than the job may use (the cost model's estimate of its data, parameters and activations)."""
    from firstlayer.common.cost import network_cost
    from firstlayer.common.facts import TorchvisionDataset
    from firstlayer.errors import InputError
    from firstlayer.training.preflight import check_run, estimated_mb

    spec = RunSpec(dataset="tree", first_width=8, width=0.0625, n_train=12, n_test=None)
    plenty = (1e9, "this machine's memory")
    check_run("r", spec, (16, 16, 3), 12, 6, 3, plenty)
    refusals = [
        ({"n_train": 20}, (16, 16, 3), "run r: n_train = 20, but the training split of tree "
         "holds 12 images; allowed: n_train <= 12, or null for all of them"),
        ({"inputs": "scale28x2"}, (16, 16, 3), "run r: inputs 'scale28x2' names principal "
         "component 28; allowed: 1..27 for 3x3 patches of the 3-channel images of tree"),
        ({"labels": "decile10"}, (16, 16, 1), "run r: labels 'decile10' names principal "
         "component 10; allowed: 1..9"),
        ({"inputs": "scale5x4.0"}, (16, 16, 3), "run r: input transform 'scale5x4.0'; allowed: "
         "its one spelling 'scale5x4'"),
        ({"n_train": None}, (16, 16, 3), "run r: trains on 1 image; allowed: at least 2"),
    ]  # fmt: skip
    for change, shape, message in refusals:
        count = 1 if change == {"n_train": None} else 12
        with pytest.raises(InputError) as error:
            check_run("r", RunSpec(**{**spec.__dict__, **change}), shape, count, 6, 3, plenty)
        assert str(error.value).startswith(message), str(error.value)
    # memory: 12 + 6 images of 16x16x3 as uint8 and float32, 16 bytes per parameter, one batch
    # of 256 images' activations in float32; the request rounds up to 500 MB after a 1.5 margin
    cost = network_cost("vgg11", 8, 0.0625, 3, 3, 16)
    exact = ((12 + 6) * 16 * 16 * 3 * 5 + 16 * cost.parameters + 4 * 256 * cost.activations) / 2**20
    need = estimated_mb(spec, TorchvisionDataset(16, 3, 12, 6, 3))
    assert exact <= need < exact + 500 / 1.5
    limit = (need - 1, "the job's memory limit (memory.max)")
    with pytest.raises(
        InputError,
        match=rf"^run r: needs about {need:,.0f} MB of memory .* more "
        rf"than the {need - 1:,.0f} MB of the job's memory limit \(memory.max\)",
    ):
        check_run("r", spec, (16, 16, 3), 12, 6, 3, limit)  # fmt: skip


def test_grid_is_the_union_of_blocks():
    defaults = {
        "epochs": 10,
        "n_train": 1000,
        "n_test": 100,
        "subset_seed": 0,
        "batch_size": 256,
        "lr": 0.01,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "precision": "float32",
    }
    experiments = {
        "labels": {"datasets": ["cifar10"], "seeds": [0, 1], "labels": ["true", "random"]},
        "seeds": {"datasets": ["cifar10"], "seeds": [0, 1, 2]},
        "fast": {"datasets": ["cifar10"], "settings": {"lr": 0.1}},
    }
    grid = build_grid(experiments, defaults)
    assert len(grid) == 4 + 1 + 1  # s0/s1 true shared by two blocks
    shared = grid["cifar10_vgg11_f64_w1_true_s0_e10_n1000"]
    assert shared["experiments"] == ["labels", "seeds"]
    fast = [name for name, entry in grid.items() if entry["experiments"] == ["fast"]]
    assert len(fast) == 1 and grid[fast[0]]["spec"].lr == 0.1 and len(fast[0].split("_")[-1]) == 8


def test_with_both_keeps_only_paired_configurations():
    import pandas as pd

    from firstlayer.training.analysis import with_both

    table = pd.DataFrame(
        {
            "dataset": ["c"] * 5,
            "arch": ["vgg11", "vgg11", "vgg13", "resnet18", "resnet18"],
            "first_width": 64,
            "width": 1.0,
            "inputs": "none",
            "frozen": [True, False, True, False, False],
        }
    )
    assert list(with_both(table, "frozen", (True, False))["arch"]) == ["vgg11", "vgg11"]
