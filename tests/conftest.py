import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# The suite runs on the CPU whatever the host has: its bit-identity tests hold there. Workflow
# jobs started by the tests inherit this; a test that wants an accelerator asks for it (the
# `gpu` tests pass their device explicitly).
os.environ["FIRSTLAYER_DEVICE"] = "cpu"
# Set before any CUDA work starts in this process, for the reproducible-mode GPU tests.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real CIFAR-10 copies beside the checkout (FIRSTLAYER_SHARED_DATA). Tests skip without
    them; with FIRSTLAYER_REQUIRE_SHARED_DATA=1 (set in CI) a missing copy is a failure."""
    location = os.environ.get("FIRSTLAYER_SHARED_DATA")
    path = Path(location) if location else None
    if path is None or not (path / "cifar10-jpeg.zip").is_file():
        message = f"real CIFAR-10 copy not found (FIRSTLAYER_SHARED_DATA={location!r})"
        if os.environ.get("FIRSTLAYER_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def cifar_lossless(shared_data):
    with np.load(shared_data / "cifar10-train4000-lossless.npz") as archive:
        return archive["x"], archive["y"]


def smooth_images(n, height, width, channels, seed=0):
    """uint8 images with spatial correlation (blurred noise), like natural images in miniature."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, height + 2, width + 2, channels))
    x = (x[:, :-2, :-2] + x[:, 1:-1, 1:-1] + x[:, 2:, 2:] + x[:, 1:-1, :-2] + x[:, :-2, 1:-1]) / 5
    x = 128 + 60 * x + rng.normal(scale=10, size=(1, 1, 1, channels))
    return np.clip(x, 0, 255).astype(np.uint8)


# The tiny training grid that the reliability and SLURM tests share (run once per session).
GRID_CONFIG = """
datasets:
  toy: {source: npz, path: toy.npz, test_images: xt, test_labels: yt}
patches: {datasets: [toy], k: [3], n_images: 40, chunk_images: 16}
pretrained: {dataset: toy, models: {}}
theory: {linear_cnn: {runs: 4, steps: [10]}, whitening: {k: 3, images: 10, random_banks: 2, max_distance: 4}}
training: {epochs: 2, n_train: 48, n_test: 9, batch_size: 16}
experiments:
  labels: {datasets: [toy], first_widths: [8], widths: [0.0625], seeds: [0, 1], labels: [true, random]}
"""
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def grid_workdir(path: Path, config: str = GRID_CONFIG) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    images = smooth_images(60, 16, 16, 3)
    np.savez(path / "toy.npz", x=images, y=np.arange(60) % 3, xt=images[:10], yt=np.arange(10) % 3)
    (path / "config.yaml").write_text(config)
    return path


def run_snakemake(path, *args, timeout=1500):
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(path), "--configfile", "config.yaml", *args],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def local_grid_run(tmp_path_factory):
    """The tiny grid run locally on 2 cores, from scratch."""
    path = grid_workdir(tmp_path_factory.mktemp("grid") / "local")
    result = run_snakemake(path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return path


def assert_same_tables(first: Path, second: Path) -> int:
    """Every table of two runs is identical (metrics: all but the wall-clock seconds)."""
    import pandas as pd

    tables = sorted(p.relative_to(first) for p in (first / "results" / "tables").rglob("*.csv"))
    for table in tables:
        if table.name == "metrics.csv":
            a, b = (pd.read_csv(root / table).drop(columns="seconds") for root in (first, second))
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        else:
            assert (second / table).read_bytes() == (first / table).read_bytes(), table
    return len(tables)


# ------------------------------------------------------------------ training helpers shared by
# the CPU device tests and the CUDA smoke test (tests/test_gpu.py)


def write_toy_dataset(path: Path, n_train: int, n_test: int, side: int, seed: int = 5) -> Path:
    """A dataset file of smooth random images with 10 classes."""
    from firstlayer.datasets.sources import Splits, write_dataset

    images = smooth_images(n_train + n_test, side, side, 3, seed=seed)
    labels = np.arange(n_train + n_test) % 10
    write_dataset(
        path,
        Splits(
            {"train": images[:n_train], "test": images[n_train:]},
            {"train": labels[:n_train], "test": labels[n_train:]},
            [str(c) for c in range(10)],
            "test",
            "0" * 64,
        ),
    )
    return path


class Interrupted(Exception):
    """Raised by `stop_at` to cut a training run short, as a kill would."""


def stop_at(message: str, lines: list | None = None):
    """A `log` for train() that records lines and stops the run when one starts with
    `message` (e.g. "epoch 2/": after the checkpoint of epoch 1 is written)."""

    def log(line):
        if lines is not None:
            lines.append(line)
        if line.startswith(message):
            raise Interrupted(line)

    return log


def profile_correlation(run_a, run_b, dataset: Path) -> float:
    """Pearson correlation of two runs' final first-layer change profiles on the dataset's
    3x3 patch PCA."""
    from firstlayer.datasets.sources import DatasetFile
    from firstlayer.patches.profiles import energy_profile, similarity
    from firstlayer.patches.stats import patch_statistics

    with DatasetFile(dataset) as data:
        stats = patch_statistics(data.images("train")[()], 3, data.mean, data.std)
    a, b = (energy_profile(r.final, stats.eigenvectors, reference=r.init) for r in (run_a, run_b))
    return similarity(a, b)


def as_if_saved_on(checkpoint: Path, device: str) -> None:
    """Rewrite a CPU checkpoint so that its tensors say they were saved on `device` (e.g.
    "cuda:0"), as a checkpoint written by a GPU job does: loading it without mapping its
    storages needs that device."""
    import zipfile

    with zipfile.ZipFile(checkpoint) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    tag = b"X\x03\x00\x00\x00cpu"
    pickle = next(name for name in entries if name.endswith("data.pkl"))
    assert tag in entries[pickle]
    entries[pickle] = entries[pickle].replace(
        tag, b"X" + len(device).to_bytes(4, "little") + device.encode()
    )
    with zipfile.ZipFile(checkpoint, "w", zipfile.ZIP_STORED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
