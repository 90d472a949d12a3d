import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def run_snakemake(path, *args, timeout=600):
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
