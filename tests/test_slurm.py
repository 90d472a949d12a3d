"""The tiny workflow through a real single-node SLURM cluster (Snakemake's SLURM executor plugin
and the project's cluster profile) gives the same numbers as a local run.

Needs the SLURM daemons (Debian: slurmctld slurmd slurm-client munge) and root; skipped with
the reason otherwise, and a failure where FIRSTLAYER_REQUIRE_SLURM=1 (CI installs them).
"""

import os
import subprocess
import time

import numpy as np
import pytest
import slurm_cluster
from conftest import ROOT, assert_same_tables, grid_workdir, run_snakemake

from firstlayer.training.run import read_run

pytestmark = pytest.mark.slurm

# The cluster profile as a user runs it; only the site placeholders and the status polling of
# an accounting-free test cluster are given here.
ON_SLURM = [
    "--profile",
    str(ROOT / "profiles" / "slurm"),
    "--jobs",
    "4",
    "--slurm-no-account",
    "--default-resources",
    "slurm_partition=debug",
    "mem_mb=500",
    "runtime=30",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
]


def run(path, *args, timeout=600):
    try:
        result = run_snakemake(path, *args, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        queue = subprocess.run(["squeue", "-o", "%i %j %T %r"], capture_output=True, text=True)
        raise AssertionError(
            f"snakemake did not finish in {timeout} s; queue:\n{queue.stdout}"
            f"\n{(expired.stderr or b'')[-4000:]}"
        ) from None
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


def test_the_workflow_on_slurm_equals_a_local_run(cluster, local_grid_run, tmp_path):
    local, remote = local_grid_run, grid_workdir(tmp_path / "slurm")
    start = time.monotonic()
    run(remote, *ON_SLURM)
    print(f"workflow on SLURM: {time.monotonic() - start:.0f} s")
    assert assert_same_tables(local, remote) >= 8
    for path in sorted((local / "results" / "runs").glob("*.h5")):
        a, b = read_run(path), read_run(remote / "results" / "runs" / path.name)
        assert np.array_equal(a.weights, b.weights), path.name

    # every training run was a SLURM array task with its GPU request, and SLURM's log of each
    # job is where the README says
    jobs = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True
    ).stdout.splitlines()
    training = [line for line in jobs if "Comment=rule_train_" in line]
    assert len(training) == 4, jobs
    for line in training:
        assert "TresPerJob=gres:gpu:1" in line and "JobState=COMPLETED" in line
    # submitted as job arrays (a batch's single leftover job goes alone)
    assert sum("ArrayTaskId=" in line for line in training) >= 2
    assert (remote / "logs" / "slurm" / "rule_train").is_dir()  # the profile's slurm-logdir
    for log in (remote / "logs" / "train").glob("*.log"):  # each job's own log, as locally
        assert "epoch 2/2" in log.read_text()
    assert len(list((remote / "logs" / "train").glob("*.log"))) == 4
