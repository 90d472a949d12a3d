"""The Snakemake profiles: what `--profile profiles/slurm` amounts to once Snakemake has layered
the workflow profile (profiles/default, read automatically) over it, and the per-run requests of
the `train` jobs it submits."""

import re
import subprocess
import sys

import yaml
from conftest import GRID_CONFIG, ROOT, SNAKEMAKE

from firstlayer.common.config import validate_config
from firstlayer.common.targets import Plan


def effective(monkeypatch, *argv):
    """Snakemake's parsed command line, as it starts in the project folder."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    return vars(parse_args(["--dry-run", *argv])[1])


def comparable(value):
    """A setting in a form that compares by content (some settings objects lack __eq__)."""
    return repr(vars(value) if hasattr(value, "__dict__") else value)


def test_the_workflow_profile_weakens_no_cluster_setting(monkeypatch):
    """Snakemake lets the workflow profile override any --profile key by key (so a latency-wait
    of 5 there once beat the cluster's 60): with it, every setting is what the cluster profile
    alone gives."""
    layered = effective(monkeypatch, "--profile", "profiles/slurm")
    alone = effective(monkeypatch, "--profile", "profiles/slurm", "--workflow-profile", "none")
    differ = {
        key: (layered[key], alone[key])
        for key in alone
        if key != "workflow_profile" and comparable(layered[key]) != comparable(alone[key])
    }
    assert not differ
    local = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    assert set(local) == {
        "printshellcmds",
        "show-failed-logs",
        "rerun-incomplete",
        "rerun-triggers",
    }


def test_the_cluster_settings_in_effect(monkeypatch):
    args = effective(monkeypatch, "--profile", "profiles/slurm")
    assert args["executor"] == "slurm"
    assert (args["latency_wait"], args["retries"], args["jobs"], args["cores"]) == (60, 2, 200, 2)
    assert args["keep_going"] and args["rerun_incomplete"]
    # no job arrays (they wedge under a jobs limit, plugin issue #473); short runs in batches
    assert "slurm_array_jobs" not in yaml.safe_load(
        (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    )
    assert args["group_components"] == {"train": 4}
    train = {name: resource.value for name, resource in args["set_resources"]["train"].items()}
    # runtime and memory are not set here: they come per run from the rule
    assert train == {"gpu": 1, "cpus_per_gpu": 2}
    # 2 threads (the rule says 1, for CPU runs side by side): a batch trains one run at a time
    assert args["set_threads"]["train"].value == 2
    calibrate = {k: v.value for k, v in args["set_resources"]["calibrate"].items()}
    assert calibrate == train  # calibration times the networks on a training job's GPU
    # preemptible partitions: SLURM requeues a preempted job (the plugin waits for it)
    assert args["slurm_requeue"] is True


def test_each_train_job_asks_for_its_runs_request(tmp_path):
    """The dry run under the cluster profile shows, for each run, the runtime and memory of
    firstlayer.common.cost, and puts short runs in the group `train`."""
    config = GRID_CONFIG + (
        "  long: {datasets: [toy], first_widths: [64], seeds: [3], "
        "settings: {epochs: 400, n_train: null, n_test: null}}\n"
    )
    (tmp_path / "config.yaml").write_text(config)
    (tmp_path / "toy.npz").write_bytes(b"")  # planning only checks that it exists
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", "config.yaml", "-n",
         "--profile", str(ROOT / "profiles" / "slurm"), "results/tables/training/profiles.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    settings = yaml.safe_load(config)
    settings["datasets"]["toy"]["path"] = str(tmp_path / "toy.npz")
    plan = Plan(validate_config(settings, ROOT / "config" / "schema.yaml"))
    jobs = re.findall(
        r"rule train:\n(?:.*\n)*?\s+wildcards: run=(\S+)\n.*\n\s+resources: (.*)\n", result.stdout
    )
    assert len(jobs) == len(plan.grid) == 5
    for run, resources in jobs:
        request = plan.training_request(run)
        assert f"mem_mb={request.mem_mb}," in resources and f"runtime={request.runtime}," in (
            resources
        )
        assert "gpu=1" in resources and "cpus_per_gpu=2" in resources
    long = next(run for run in plan.grid if "s3" in run)
    assert plan.training_request(long).runtime > 60 and plan.training_group(long) is None
    assert {plan.training_group(run) for run in plan.grid if run != long} == {"train"}
    assert result.stdout.count("Group job train") == 1  # the 4 short runs: one batch of 4


def test_a_plan_needs_no_torch(monkeypatch):
    """Planning the workflow under the cluster profile (every dry run, and every job's inner
    Snakemake) imports no torch."""
    monkeypatch.chdir(ROOT)
    code = (
        "import sys; from snakemake.cli import main\n"
        "sys.argv = ['snakemake', '-n', '--quiet', '--profile', 'profiles/slurm']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
