"""The cluster profile on a real single-node SLURM cluster (Snakemake's SLURM executor plugin,
`--profile profiles/slurm` as a user runs it): a grid with more trainings than the `jobs` limit
finishes, trainings go in batches, a training killed by SLURM is resubmitted and resumes from its
checkpoint, and every result equals a local run's at the same thread count.

One cluster and one workflow run serve every test here. Needs the SLURM daemons (Debian:
slurmctld slurmd slurm-client munge) and root; skipped with the reason otherwise, and a failure
where FIRSTLAYER_REQUIRE_SLURM=1 (CI installs them).
"""

import json
import os
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest
import slurm_cluster
import yaml
from conftest import GRID_CONFIG, ROOT, grid_workdir, run_snakemake

from firstlayer.common.config import validate_config
from firstlayer.common.targets import Plan
from firstlayer.patches.stats import read_patch_stats
from firstlayer.training.run import read_run

pytestmark = pytest.mark.slurm

JOBS = 2  # the `jobs` limit: fewer than the grid's trainings and than its SLURM jobs
WALL_SECONDS = 900  # the whole SLURM workflow run; a hang fails here instead of never ending
# The shared tiny grid with 4 seeds (8 trainings, the local grid's 4 among them), plus one
# longer run (8 epochs of a half-width network) that SLURM kills while it trains.
EPOCHS = 8
CONFIG = GRID_CONFIG.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]") + (
    f"  long: {{datasets: [toy], first_widths: [16], widths: [0.5], seeds: [7], "
    f"settings: {{epochs: {EPOCHS}}}}}\n"
)
TARGET = "results/tables/training/profiles.csv"
# The cluster profile as a user runs it; only the site placeholders and the status polling of
# an accounting-free test cluster are given here.
ON_SLURM = [
    "--profile",
    str(ROOT / "profiles" / "slurm"),
    "--jobs",
    str(JOBS),
    "--slurm-no-account",
    "--default-resources",
    "slurm_partition=debug",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
]


def plan() -> Plan:
    config = yaml.safe_load(CONFIG)
    config["datasets"]["toy"]["path"] = str(ROOT / "pyproject.toml")  # any file: not read
    return Plan(validate_config(config, ROOT / "config" / "schema.yaml"))


def long_run() -> str:
    return next(name for name, entry in plan().grid.items() if entry["experiments"] == ["long"])


def slurm_jobs() -> list[dict]:
    """Every job the test cluster knows (finished ones stay for MinJobAge), as dicts."""
    text = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True
    ).stdout
    return [
        dict(field.split("=", 1) for field in line.split() if "=" in field)
        for line in text.splitlines()
        if line.startswith("JobId=")
    ]


def is_training(job: dict) -> bool:
    return job.get("Comment", "").startswith("rule_train_")


def preempt_once(workdir, run, deadline, killed, done):
    """Once `run` has written a checkpoint, send SIGTERM (what SLURM sends on preemption and at
    a time limit) to every process of every running training job."""
    checkpoint = workdir / "checkpoints" / f"{run}.pt"
    while not checkpoint.exists():
        if time.monotonic() > deadline or done.is_set():
            return
        time.sleep(0.05)
    for job in slurm_jobs():
        if job.get("JobState") == "RUNNING" and is_training(job):
            subprocess.run(["scancel", "--signal=TERM", "--full", job["JobId"]], check=True)
            killed.append(job["JobId"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_cluster.missing()
    if reason:
        if os.environ.get("FIRSTLAYER_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"), cpus=2).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def on_slurm(cluster, tmp_path_factory):
    """The grid through the cluster profile, with one training killed by SLURM mid-way."""
    workdir = grid_workdir(tmp_path_factory.mktemp("grid") / "slurm", CONFIG)
    start = time.monotonic()
    killed, done = [], threading.Event()
    watcher = threading.Thread(
        target=preempt_once, args=(workdir, long_run(), start + WALL_SECONDS, killed, done)
    )
    # a checkpoint after every epoch, so the long run has one to resume from when it is killed
    # (the default interval of 5 minutes is longer than the whole tiny run)
    saved = os.environ.get("FIRSTLAYER_CHECKPOINT_MINUTES")
    os.environ["FIRSTLAYER_CHECKPOINT_MINUTES"] = "0"
    # the test node's GPUs are declared to SLURM but do not exist: no GPU grant check (it would
    # rightly stop the run; tests/test_grant.py checks it with a faked device)
    os.environ["FIRSTLAYER_CHECK_GRANT"] = "0"
    watcher.start()
    try:
        result = run_snakemake(workdir, *ON_SLURM, TARGET, timeout=WALL_SECONDS)
    except subprocess.TimeoutExpired as expired:
        queue = subprocess.run(["squeue", "-o", "%i %k %T %r"], capture_output=True, text=True)
        raise AssertionError(
            f"snakemake did not finish in {WALL_SECONDS} s; queue:\n{queue.stdout}"
            f"\n{(expired.stderr or b'')[-4000:]}"
        ) from None
    finally:
        done.set()
        watcher.join()
        os.environ.pop("FIRSTLAYER_CHECK_GRANT")
        if saved is None:
            os.environ.pop("FIRSTLAYER_CHECKPOINT_MINUTES")
        else:
            os.environ["FIRSTLAYER_CHECKPOINT_MINUTES"] = saved
    print(f"grid on SLURM: {time.monotonic() - start:.0f} s")
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return workdir, killed, slurm_jobs()


@pytest.fixture(scope="module")
def local_run_with_cluster_threads(tmp_path_factory):
    """The local tiny grid's 4 trainings and patch statistics, made locally with the threads the
    cluster profile gives a training (2; locally a training takes 1): CPU results repeat
    exactly only at one thread count."""
    path = grid_workdir(tmp_path_factory.mktemp("grid") / "local-2-threads")
    grid = plan()
    runs = [run for run in grid.grid if grid.spec(run).seed in (0, 1) and run != long_run()]
    targets = ["results/patches/toy/k3.h5", *(f"results/runs/{run}.h5" for run in runs)]
    # the targets after --cores (one value): --configfile and --set-threads take every word
    result = run_snakemake(path, "--cores", "2", *targets, "--set-threads", "train=2")
    assert result.returncode == 0, result.stderr[-3000:]
    return path


def test_a_grid_with_more_trainings_than_jobs_finishes_in_batches(
    on_slurm, local_run_with_cluster_threads
):
    workdir, _, jobs = on_slurm
    runs = sorted(plan().grid)
    assert len(runs) == 9 > JOBS
    assert all((workdir / "results" / "runs" / f"{run}.h5").is_file() for run in runs)
    training = [job for job in jobs if is_training(job)]
    # batches of up to 4 runs (the profile's group-components): 3 first submissions for 9
    # runs, more than the `jobs` limit, plus the resubmission of the killed batch
    assert len(training) == 4, [(job["JobId"], job["JobState"]) for job in training]
    for job in training:  # each asks for one GPU, 2 CPUs (the profile's threads) and the
        # summed runtimes
        assert job["TresPerJob"] == "gres:gpu:1" and job["NumCPUs"] == "2", job
    assert sum(job["JobState"] == "COMPLETED" for job in training) == 3, training
    # the same numbers as a local run at the same thread count: the patch statistics and every
    # shared run's weights
    local = local_run_with_cluster_threads
    patches = "results/patches/toy/k3.h5"
    a, b = read_patch_stats(local / patches), read_patch_stats(workdir / patches)
    assert np.array_equal(a.covariance, b.covariance)
    shared = sorted((local / "results" / "runs").glob("*.h5"))
    assert len(shared) == 4
    for path in shared:
        a, b = read_run(path), read_run(workdir / "results" / "runs" / path.name)
        assert np.array_equal(a.weights, b.weights), path.name
    for log in (workdir / "logs" / "train").glob("*.log"):  # each run's own log, as locally
        assert "epoch 2/2" in log.read_text() or f"epoch {EPOCHS}/{EPOCHS}" in log.read_text()


def test_a_training_killed_by_slurm_is_resubmitted_and_resumes_identical(
    on_slurm, tmp_path_factory
):
    workdir, killed, jobs = on_slurm
    run = long_run()
    assert len(killed) == 1, "the long run was never caught training"
    states = {job["JobId"]: job["JobState"] for job in jobs}
    assert states[killed[0]] in ("FAILED", "CANCELLED"), states
    log = (workdir / "logs" / "train" / f"{run}.log").read_text()
    assert "resuming from the checkpoint after epoch" in log, log
    path = f"results/runs/{run}.h5"
    with h5py.File(workdir / path) as handle:
        resumed = json.loads(handle.attrs["provenance"])["resumed_from"]
    assert len(resumed) == 1 and 1 <= resumed[0] < EPOCHS, resumed

    # an uninterrupted run of the same spec on the same data, with the cluster profile's 2 threads:
    # equal arrays (the provenance differs: it records the resume; so do wall-clock seconds)
    reference = tmp_path_factory.mktemp("uninterrupted")
    spec = json.dumps(plan().spec(run).as_dict())
    result = subprocess.run(
        [sys.executable, "-m", "firstlayer.training.run", "--spec", spec, "--threads", "2",
         "--data", str(workdir / "resources" / "datasets" / "toy.h5"),
         "--out", str(reference / "run.h5"), "--checkpoint", str(reference / "run.pt")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = read_run(reference / "run.h5"), read_run(workdir / path)
    assert np.array_equal(a.steps, b.steps) and np.array_equal(a.weights, b.weights)
    for name in a.metrics:
        if name != "seconds":
            assert np.array_equal(a.metrics[name], b.metrics[name]), name
