"""The README's guarantees, each checked with real processes, real signals and real files."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    GRID_CONFIG,
    ROOT,
    SNAKEMAKE,
    assert_same_tables,
    grid_workdir,
    run_snakemake,
    smooth_images,
)

from firstlayer.datasets.sources import Splits, write_dataset
from firstlayer.errors import InputError
from firstlayer.patches.stats import read_patch_stats
from firstlayer.training.run import read_run

pytestmark = pytest.mark.workflow


def workdir(path: Path, config: str = GRID_CONFIG) -> Path:
    return grid_workdir(path, config)


def snakemake(path, *args, timeout=600):
    return run_snakemake(path, *args, timeout=timeout)


# ------------------------------------------------------------------ 1. killed jobs


def toy_dataset(path, n=200, size=12):
    images = smooth_images(n, size, size, 3, seed=5)
    labels = np.arange(n) % 4
    split = int(n * 0.8)
    write_dataset(
        path,
        Splits(
            {"train": images[:split], "test": images[split:]},
            {"train": labels[:split], "test": labels[split:]},
            ["a", "b", "c", "d"],
            "test",
            "0" * 64,
        ),
    )
    return path


def test_a_killed_patch_statistics_job_leaves_no_output(tmp_path):
    data = toy_dataset(tmp_path / "big.h5", n=10000, size=32)
    out = tmp_path / "k7.h5"
    code = (
        "import sys; from firstlayer.patches.stats import build_patch_stats; "
        "build_patch_stats(sys.argv[1], sys.argv[2], 7, chunk_images=200, strategy='unfold', "
        "progress=lambda done, total: print(done, flush=True))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(data), str(out)], stdout=subprocess.PIPE, text=True
    )
    next(line for line in process.stdout if line.strip().isdigit())  # it is streaming
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()  # output appears only complete, by rename
    assert (
        subprocess.run(
            [sys.executable, "-c", code, str(data), str(out)], capture_output=True
        ).returncode
        == 0
    )
    assert read_patch_stats(out).count == 8000 * 26 * 26


def test_a_truncated_intermediate_names_the_rule_that_rebuilds_it(tmp_path):
    from firstlayer.patches.stats import build_patch_stats

    data = toy_dataset(tmp_path / "toy.h5")
    build_patch_stats(data, tmp_path / "k3.h5", 3)
    content = (tmp_path / "k3.h5").read_bytes()
    (tmp_path / "k3.h5").write_bytes(content[: len(content) // 2])
    with pytest.raises(
        InputError, match=r"k3.h5: not a readable HDF5 file .*rule `patch_stats` rebuilds it"
    ):
        read_patch_stats(tmp_path / "k3.h5")


# ------------------------------------------------------------------ 3. bad configuration

BAD_CONFIGS = [
    (
        "experiments: {a: {datasets: [toy], archs: [alexnet]}}",
        "experiments.a.archs[0] = 'alexnet'; allowed: vgg11, vgg13, vgg16, vgg19, resnet18, resnet20",
    ),
    (
        "datasets: {toy: {source: hub}}",
        "datasets.toy.source = 'hub'; allowed: torchvision, imagefolder, npz, subset",
    ),
    (
        "experiments: {a: {datasets: [imagenet]}}",
        "experiments.a.datasets[0] = 'imagenet'; allowed: a key of datasets (toy)",
    ),
    (
        "experiments: {a: {datasets: [toy], labels: [shuffled]}}",
        "experiments.a.labels[0] = 'shuffled'; allowed: true, random, decileN",
    ),
    ("patchez: {k: [3]}", "unknown key 'patchez' in (top level); allowed keys:"),
    ("patches: {k: three}", "patches.k = 'three'; expected array"),
    ("training: {epochs: 0}", "training.epochs = 0; must be >= 1"),
    ("training: {epochs: -3}", "training.epochs = -3; must be >= 1"),
    (
        "experiments: {a: {datasets: [toy], widths: [0]}}",
        "experiments.a.widths[0] = 0; must be > 0",
    ),
    ("training: {batch_size: 0}", "training.batch_size = 0; must be >= 2"),
    (
        "experiments: {a: {datasets: [toy], first_widths: [0]}}",
        "experiments.a.first_widths[0] = 0; must be >= 1",
    ),
    (
        "experiments: {a: {datasets: [toy], seeds: []}}",
        "experiments.a.seeds = []; must have at least 1 entries",
    ),
    (
        "pretrained: {dataset: toy, models: {k3: [resnet18]}}",
        "pretrained.models.k3[0] = 'resnet18'; its first conv is 7x7, allowed only in group k7",
    ),
    (
        "datasets: {toy: {source: npz, path: /no/such.npz}}",
        "datasets.toy.path = '/no/such.npz'; no such file or folder",
    ),
    (
        "{datasets: {c: {source: torchvision, name: CIFAR10}}, patches: {datasets: [c], k: [40]}}",
        "patches.k[0] = 40; larger than the 32x32 images of c, allowed: 1..32",
    ),
    (
        "experiments: {a: {datasets: [toy], inputs: [blur]}}",
        "experiments.a.inputs[0] = 'blur'; allowed: none, scaleNxA",
    ),
    ("training: {lr: fast}", "training.lr = 'fast'"),
    ("theory: {whitening: {k: 4}}", "theory.whitening.k = 4; allowed: an odd patch size"),
]


@pytest.mark.parametrize(
    "override,message", BAD_CONFIGS, ids=[m.split(" =")[0].split(";")[0] for _, m in BAD_CONFIGS]
)
def test_a_bad_config_stops_before_any_job_with_one_line(tmp_path, override, message):
    config = yaml.safe_load(GRID_CONFIG)
    for key, value in yaml.safe_load(override).items():
        config[key] = {**config[key], **value} if isinstance(config.get(key), dict) else value
    path = workdir(tmp_path / "w", yaml.safe_dump(config))
    result = snakemake(path, "--cores", "1")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("config error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (path / "results").exists() and not (path / "resources").exists()


# ------------------------------------------------------------------ 5, 7. concurrency, reproducibility


@pytest.fixture(scope="module")
def two_runs(local_grid_run, tmp_path_factory):
    """The tiny grid twice from scratch: once on 2 cores, once with --cores 8 on this machine
    (more jobs at once than cores)."""
    crowded = workdir(tmp_path_factory.mktemp("repro") / "crowded")
    result = snakemake(crowded, "--cores", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    return local_grid_run, crowded


def test_rerun_from_scratch_gives_identical_tables(two_runs):
    assert assert_same_tables(*two_runs) >= 8


def test_concurrent_jobs_write_only_their_own_files(two_runs):
    _, crowded = two_runs
    runs = sorted((crowded / "results" / "runs").glob("*.h5"))
    assert len(runs) == 4
    for path in runs:
        run = read_run(path)
        assert run.spec.as_dict() == {**run.spec.as_dict()} and path.stem.startswith(
            f"toy_vgg11_f8_w0.0625_{run.spec.labels}_s{run.spec.seed}"
        )
    leftovers = [p for p in crowded.rglob("*") if ".tmp" in p.name]
    assert leftovers == [] and not any((crowded / "checkpoints").glob("*.pt"))


def test_every_result_records_config_versions_and_inputs(two_runs):
    import json

    import h5py

    first, _ = two_runs
    for path in [
        *first.glob("results/runs/*.h5"),
        *first.glob("results/patches/*/*.h5"),
        *first.glob("resources/datasets/*.h5"),
        *first.glob("results/theory/*/*.h5"),
    ]:
        with h5py.File(path) as handle:
            versions = json.loads(handle.attrs["versions"])
            provenance = json.loads(handle.attrs["provenance"])
        assert {"torch", "numpy", "firstlayer"} <= set(versions), path
        assert provenance, path
    with h5py.File(next(first.glob("results/patches/*/*.h5"))) as handle:
        assert len(json.loads(handle.attrs["provenance"])["dataset_sha256"]) == 64


def test_a_second_invocation_is_stopped_by_the_lock(tmp_path):
    path = workdir(tmp_path / "w")
    first = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(path), "--configfile", "config.yaml", "--cores", "2"],
        cwd=path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any((path / ".snakemake" / "locks").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        second = snakemake(path, "--cores", "2")
        assert second.returncode != 0
        assert "Directory cannot be locked" in second.stderr + second.stdout
    finally:
        first.send_signal(signal.SIGINT)  # Snakemake's own clean stop releases its lock
        first.wait(timeout=120)


# ------------------------------------------------------------------ 6. resources


def test_every_rule_that_runs_code_declares_its_memory():
    for path in (ROOT / "rules").glob("*.smk"):
        for block in path.read_text().split("\nrule ")[1:]:
            if "    script:" in block:
                assert "mem_mb=" in block, f"{path.name}: rule {block.split(':')[0]}"


def test_every_rule_that_runs_code_reruns_when_its_code_changes():
    # the digest of its script and the library modules it imports is one of its params
    for path in (ROOT / "rules").glob("*.smk"):
        for block in path.read_text().split("\nrule ")[1:]:
            if "    script:" in block:
                script = block.split('"../scripts/')[1].split('"')[0]
                assert f'code=code("{script}")' in block, f"{path.name}: rule {block.split(':')[0]}"


def peak_rss_mb(code: str, *args) -> float:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nimport resource, sys\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.split()[-1]) / 1024


def test_patch_statistics_memory_is_flat_in_the_number_of_images(tmp_path):
    small = toy_dataset(tmp_path / "small.h5", n=3000, size=32)
    large = toy_dataset(tmp_path / "large.h5", n=24000, size=32)  # 8x the images
    code = (
        "import sys; from firstlayer.patches.stats import build_patch_stats; "
        "build_patch_stats(sys.argv[1], sys.argv[2], 3, n_images=None)"
    )
    one = peak_rss_mb(code, str(small), str(tmp_path / "s.h5"))
    eight = peak_rss_mb(code, str(large), str(tmp_path / "l.h5"))
    # 8x the images is 55 MB more uint8 data, ~440 MB more as float64: none of it may stay
    assert eight <= one * 1.05, (one, eight)
