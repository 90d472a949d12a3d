"""The tiny workflow through a real single-node SLURM cluster (Snakemake's SLURM executor plugin
and the project's cluster profile) gives the same numbers as a local run.

Needs the SLURM daemons (Debian: slurmctld slurmd slurm-client munge) and root; skipped with
the reason otherwise, and a failure where FIRSTLAYER_REQUIRE_SLURM=1 (CI installs them).
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, smooth_images
from firstlayer.training import read_run

import slurm_cluster

pytestmark = pytest.mark.slurm

CONFIG = """
datasets:
  toy: {source: npz, path: toy.npz, test_images: xt, test_labels: yt}
patches: {datasets: [toy], k: [3], n_images: 40, chunk_images: 16}
pretrained: {dataset: toy, models: {}}
theory:
  linear_cnn: {runs: 6, steps: [10, 50], synthetic_images: 40, tiles: 3}
  whitening: {k: 3, images: 20, random_banks: 3, max_distance: 6}
training: {epochs: 2, n_train: 48, n_test: 9, batch_size: 16}
experiments:
  labels: {datasets: [toy], first_widths: [8], widths: [0.0625], seeds: [0, 1], labels: [true, random]}
"""
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
             "--configfile", "config.yaml"]
# The cluster profile as a user runs it; only the site placeholders and the status polling of
# an accounting-free test cluster are given here.
ON_SLURM = ["--profile", str(ROOT / "profiles" / "slurm"), "--jobs", "4", "--slurm-no-account",
            "--default-resources", "slurm_partition=debug", "mem_mb=500", "runtime=30",
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]


def workdir(path: Path) -> Path:
    path.mkdir(parents=True)
    images = smooth_images(60, 16, 16, 3)
    np.savez(path / "toy.npz", x=images, y=np.arange(60) % 3, xt=images[:10], yt=np.arange(10) % 3)
    (path / "config.yaml").write_text(CONFIG)
    return path


def run(path, *args, timeout=600):
    try:
        result = subprocess.run([*SNAKEMAKE, "--directory", str(path), *args], cwd=path,
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        queue = subprocess.run(["squeue", "-o", "%i %j %T %r"], capture_output=True, text=True)
        raise AssertionError(f"snakemake did not finish in {timeout} s; queue:\n{queue.stdout}"
                             f"\n{(expired.stderr or b'')[-4000:]}") from None
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


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


def test_the_workflow_on_slurm_equals_a_local_run(cluster, tmp_path):
    local, remote = workdir(tmp_path / "local"), workdir(tmp_path / "slurm")
    run(local, "--cores", "2")
    start = time.monotonic()
    run(remote, *ON_SLURM)
    print(f"workflow on SLURM: {time.monotonic() - start:.0f} s")
    tables = sorted(p.relative_to(local) for p in (local / "results" / "tables").rglob("*.csv"))
    assert len(tables) >= 8
    for table in tables:
        if table.name == "metrics.csv":  # wall-clock seconds differ; every number else must not
            a, b = (pd.read_csv(root / table).drop(columns="seconds") for root in (local, remote))
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        else:
            assert (remote / table).read_bytes() == (local / table).read_bytes(), table
    for path in sorted((local / "results" / "runs").glob("*.h5")):
        a, b = read_run(path), read_run(remote / "results" / "runs" / path.name)
        assert np.array_equal(a.weights, b.weights), path.name

    # every training run was a SLURM array task with its GPU request, and SLURM's log of each
    # job is where the README says
    jobs = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True,
                          text=True).stdout.splitlines()
    training = [line for line in jobs if "Comment=rule_train_" in line]
    assert len(training) == 4, jobs
    for line in training:
        assert "gres/gpu=1" in line and "ArrayTaskId=" in line and "JobState=COMPLETED" in line
    assert (remote / "logs" / "slurm" / "rule_train").is_dir()  # the profile's slurm-logdir
    for log in (remote / "logs" / "train").glob("*.log"):  # each job's own log, as locally
        assert "epoch 2/2" in log.read_text()
    assert len(list((remote / "logs" / "train").glob("*.log"))) == 4
