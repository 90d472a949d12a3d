"""The GPU grant check (checkpoint `gpu_grant`): what a training job asked for, what SLURM
granted and what torch sees, compared before a cluster run trains; with the device faked on
the CPU. The check is never an input of `train`: runs already trained stay untouched."""

import shutil
import subprocess
from types import SimpleNamespace

import pytest
from conftest import ROOT, SNAKEMAKE

from firstlayer.training.grant import GrantError, check_grant, requested, run_check, supported

VERSIONS = {"torch": "2.14.1", "cuda": "13.0"}
ARCHES = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


class FakeCuda:
    """torch.cuda on a machine with these GPUs: (name, (major, minor))."""

    def __init__(self, gpus):
        self.gpus = gpus

    def is_available(self):
        return bool(self.gpus)

    def get_arch_list(self):
        return ARCHES

    def device_count(self):
        return len(self.gpus)

    def get_device_properties(self, index):
        name, (major, minor) = self.gpus[index]
        return SimpleNamespace(name=name, major=major, minor=minor, uuid=f"GPU-{index}")


H100 = ("NVIDIA H100 80GB HBM3", (9, 0))


def test_what_a_job_asked_for():
    assert requested({"gpu": 1, "cpus_per_gpu": 2}) == (1, None, "gpu=1")
    assert requested({"gpus": "a100:2"}) == (2, "a100", "gpus=a100:2")
    assert requested({"gres": "gpu:h100:4"}) == (4, "h100", "gres=gpu:h100:4")
    assert requested({"gres": "gpu:2"}) == (2, None, "gres=gpu:2")
    assert requested({"gpu": 1, "gpu_model": "h100"}) == (1, "h100", "gpu=1")


def test_the_grant_that_matches_is_recorded_without_a_problem():
    record = check_grant(
        {"gpu": 1}, {"SLURM_GPUS_ON_NODE": "1"}, FakeCuda([H100]), ARCHES, VERSIONS
    )
    assert record["problem"] is None
    assert record["devices"] == [
        {"index": 0, "name": H100[0], "capability": [9, 0], "uuid": "GPU-0"}
    ]
    assert record["granted"] == {"gpus": 1, "said": "SLURM_GPUS_ON_NODE=1"}


@pytest.mark.parametrize(
    "resources,environ,gpus,arches,problem",
    [
        # the slurm plugin's issue #459: gpu=2 asked for, one GPU inside the job
        ({"gpu": 2}, {"SLURM_GPUS_ON_NODE": "1"}, [H100], ARCHES,
         "asked for 2 GPU(s) (gpu=2) but SLURM granted 1 (SLURM_GPUS_ON_NODE=1)"),
        ({"gpu": 2}, {"SLURM_JOB_GPUS": "0,1", "CUDA_VISIBLE_DEVICES": "0"}, [H100], ARCHES,
         "asked for 2 GPU(s) (gpu=2), SLURM granted 2 (SLURM_JOB_GPUS=0,1), but torch sees 1: "
         "NVIDIA H100 80GB HBM3 (capability 9.0) (torch 2.14.1, CUDA build 13.0, "
         "CUDA_VISIBLE_DEVICES=0)"),
        ({"gpu": 1, "gpu_model": "a100"}, {}, [H100], ARCHES,
         "asked for GPU model 'a100' (gpu=1) but torch sees 1: NVIDIA H100 80GB HBM3 (capability 9.0)"),
        # a CUDA 13 build has no kernels for a V100
        ({"gpu": 1}, {}, [("Tesla V100-SXM2-32GB", (7, 0))], ARCHES,
         "GPU 0 (Tesla V100-SXM2-32GB) has compute capability 7.0, for which this torch build has "
         "no kernels (sm_75, sm_80, sm_86, sm_90, sm_100, sm_120) (torch 2.14.1, CUDA build "
         "13.0, CUDA_VISIBLE_DEVICES=None)"),
    ],
)  # fmt: skip
def test_a_grant_that_differs_from_the_request_is_one_line(
    resources, environ, gpus, arches, problem
):
    assert check_grant(resources, environ, FakeCuda(gpus), arches, VERSIONS)["problem"] == problem


def test_which_capabilities_a_build_runs_on():
    assert supported((8, 6), ["sm_80"]) and supported((9, 0), ["sm_80", "compute_80"])
    assert not supported((9, 0), ["sm_80"]) and not supported((7, 0), ARCHES)


def test_the_record_is_written_before_the_job_stops(tmp_path):
    out = tmp_path / "grant.json"
    with pytest.raises(GrantError) as error:
        run_check({"gpu": 1}, out, environ={"SLURM_GPUS_ON_NODE": "1"}, cuda=FakeCuda([]))
    assert str(error.value) == (
        "GPU grant: asked for 1 GPU(s) (gpu=1), SLURM granted 1 (SLURM_GPUS_ON_NODE=1), but torch "
        f"sees 0 (torch {__import__('torch').__version__}, CUDA build "
        f"{__import__('torch').version.cuda}, CUDA_VISIBLE_DEVICES=None); no training started "
        "(FIRSTLAYER_CHECK_GRANT=0 skips this check)"
    )
    assert '"problem": "asked for 1 GPU(s)' in out.read_text()


# A fake torch.cuda for the check's own process (its script's name), as a GPU node shows one.
FAKE_CUDA = """
import importlib.abc, importlib.machinery, json, os, sys, types
if sys.argv and sys.argv[0].endswith("gpu_grant.py"):
    FAKE = json.loads(os.environ["FAKE_GPUS"])

    class Loader(importlib.abc.Loader):
        def __init__(self, real):
            self.real = real

        def create_module(self, spec):
            return self.real.create_module(spec)

        def exec_module(self, module):
            self.real.exec_module(module)
            module.is_available = lambda: bool(FAKE)
            module.device_count = lambda: len(FAKE)
            module.get_device_properties = lambda i: types.SimpleNamespace(**FAKE[i])
            module.get_arch_list = lambda: ["sm_80", "sm_90"]

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "torch.cuda":
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            spec.loader = Loader(spec.loader)
            return spec

    sys.meta_path.insert(0, Finder())
"""


def grant_run(workdir, *args, fake=None, monkeypatch=None):
    """Snakemake as a run with a GPU per training starts (SLURM's grant of one GPU in the
    environment, as a GPU node's job has it)."""
    env = {"SLURM_GPUS_ON_NODE": "1"}
    if fake is not None:
        (workdir / "fake").mkdir(exist_ok=True)
        (workdir / "fake" / "sitecustomize.py").write_text(FAKE_CUDA)
        pythonpath = f"{workdir / 'fake'}:{__import__('os').environ.get('PYTHONPATH', '')}"
        env |= {"FAKE_GPUS": fake, "PYTHONPATH": pythonpath}
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", "config.yaml", "--cores", "2",
         *args, "--set-resources", "train:gpu=1"],
        cwd=workdir, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, **env},
    )  # fmt: skip


def test_a_mismatch_stops_the_run_before_training_and_a_match_retrains_nothing_else(
    local_grid_run, tmp_path
):
    """On a finished grid with one run file gone: torch seeing no GPU stops the run with one
    line before that run trains; with the GPU faked as granted the check passes, records the
    device, and only that run trains (the check is no input of `train`: nothing else reruns).
    A grid with nothing to train starts no check."""
    workdir = tmp_path / "grid"
    shutil.copytree(local_grid_run, workdir, symlinks=True)
    fake = '[{"name": "NVIDIA H100", "major": 9, "minor": 0, "uuid": "GPU-1"}]'
    nothing = grant_run(workdir, "all", "-n", fake=fake)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
    runs = sorted((workdir / "results" / "runs").glob("*.h5"))
    runs[0].unlink()
    target = f"results/runs/{runs[0].name}"
    failed = grant_run(workdir, target)  # this CPU machine: torch sees no GPU
    assert failed.returncode != 0
    output = failed.stdout.splitlines() + failed.stderr.splitlines()
    line = next(text for text in output if text.startswith("error: GPU grant"))
    assert line.startswith(
        "error: GPU grant: asked for 1 GPU(s) (gpu=1), SLURM granted 1 (SLURM_GPUS_ON_NODE=1), but "
        "torch sees 0 (torch "
    ) and line.endswith("; no training started (FIRSTLAYER_CHECK_GRANT=0 skips this check)")
    assert not runs[0].exists() and "rule train:" not in failed.stdout
    dry = grant_run(workdir, "all", "-n", fake=fake)
    assert dry.returncode == 0, dry.stderr[-3000:]
    stats = dry.stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    planned = dict(row.split() for row in stats)
    assert planned["gpu_grant"] == "1" and planned["train"] == "1"
    for other in runs[1:]:
        assert f"wildcards: run={other.stem}\n" not in dry.stdout
    result = grant_run(workdir, target, fake=fake)
    assert result.returncode == 0, result.stderr[-3000:]
    record = next((workdir / "results" / "cluster" / "gpu_grant").glob("*.json")).read_text()
    assert '"name": "NVIDIA H100"' in record and '"problem": null' in record
    assert runs[0].is_file()


def test_the_cluster_profile_submits_the_check_as_it_submits_a_training(tmp_path):
    """Under the SLURM profile the check asks for what a train job asks for (one GPU, 2 CPUs)."""
    (tmp_path / "config.yaml").write_text(
        "datasets:\n  toy: {source: npz, path: toy.npz}\n"
        "experiments:\n  a: {datasets: [toy], widths: [0.0625], first_widths: [8]}\n"
    )
    (tmp_path / "toy.npz").write_bytes(b"")
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", "config.yaml", "-n",
         "--profile", str(ROOT / "profiles" / "slurm"), "results/tables/training/profiles.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    block = result.stdout.split("checkpoint gpu_grant:")[1].split("\n\n")[0]
    assert "gpu=1" in block and "cpus_per_gpu=2" in block
