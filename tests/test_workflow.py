"""The workflow itself, run through Snakemake on a tiny synthetic dataset."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, smooth_images

from firstlayer.patches.profiles import energy_profile
from firstlayer.patches.stats import patch_statistics, read_patch_stats

pytestmark = pytest.mark.workflow
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]

TINY_CONFIG = """
datasets:
  toy: {source: npz, path: toy.npz, test_images: xt, test_labels: yt}
patches: {datasets: [toy], k: [3, 5], n_images: 40, chunk_images: 16}
pretrained:
  dataset: toy
  models: {k3: [], k5: []}
  weight_files: {a3: {path: w3.npy}, b3: {path: b3.pt, tensor: conv1.weight}, c5: {path: w5.npy}}
theory:
  datasets: [toy]
  linear_cnn: {runs: 6, steps: [10, 50], synthetic_images: 40, tiles: 3}
  whitening: {k: 5, images: 20, random_banks: 3, max_distance: 6}
training: {epochs: 2, n_train: 48, n_test: 9, batch_size: 16}
experiments:
  labels: {datasets: [toy], first_widths: [8], widths: [0.0625], seeds: [0, 1], labels: [true, random]}
  frozen: {datasets: [toy], archs: [vgg11, vgg13], first_widths: [8], widths: [0.0625], frozen: [true, false]}
  scaled: {datasets: [toy], first_widths: [8], widths: [0.0625], seeds: [0, 1], inputs: [scale2x4]}
  patchify: {datasets: [toy], archs: [patchcnn], first_widths: [8], widths: [0.25], optimizers: [sgd, adamw]}
  vit: {datasets: [toy], archs: [vit1], first_widths: [8], widths: [0.25], optimizers: [adamw]}
  augmented: {datasets: [toy], first_widths: [8], widths: [0.0625], optimizers: [adamw], augments: [crop_flip], settings: {epochs: 8}}
"""
# the beyond-the-paper runs (4x4 stride-4 first layers, AdamW, crop_flip) of TINY_CONFIG
PATCHIFY = "toy_patchcnn_f8_w0.25_true_s0_e2_n48_adamw"
AUGMENTED = "toy_vgg11_f8_w0.0625_true_s0_e8_n48_adamw_crop_flip"


def make_workdir(path: Path) -> Path:
    import torch

    path.mkdir(parents=True, exist_ok=True)
    images = smooth_images(60, 16, 16, 3)
    np.savez(path / "toy.npz", x=images, y=np.arange(60) % 3, xt=images[:10], yt=np.arange(10) % 3)
    rng = np.random.default_rng(0)
    np.save(path / "w3.npy", rng.normal(size=(8, 3, 3, 3)))
    torch.save({"conv1.weight": torch.from_numpy(rng.normal(size=(4, 3, 3, 3)))}, path / "b3.pt")
    np.save(path / "w5.npy", rng.normal(size=(8, 3, 5, 5)))
    (path / "config.yaml").write_text(TINY_CONFIG)
    return path


def snakemake(workdir, *args, check=True):
    result = subprocess.run(
        SNAKEMAKE
        + ["--directory", str(workdir), "--configfile", "config.yaml", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("full"))
    snakemake(workdir, "all", "pretrained")
    return workdir


def test_whole_chain_builds_every_output(full_run):
    results = full_run / "results"
    for k in (3, 5):
        for kind in ("spectrum", "components"):
            for ext in ("pdf", "png"):
                figure = results / "figures" / "patches" / "toy" / f"k{k}_{kind}.{ext}"
                assert figure.stat().st_size > 1000, figure
        for kind in ("profiles", "heatmap"):
            assert (
                results / "figures" / "pretrained" / "toy" / f"k{k}_{kind}.png"
            ).stat().st_size > 1000
    png = (results / "figures" / "patches" / "toy" / "k3_spectrum.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert (full_run / "logs" / "patch_stats" / "toy_k3.log").read_text().count("patches") >= 1


def test_training_grid_tables_and_figures(full_run):
    runs = sorted(p.name for p in (full_run / "results" / "runs").iterdir())
    assert len(runs) == 13  # 4 (labels) + 4 (frozen) - 1 shared + 2 (scaled) + 2 + 1 + 1 (beyond)
    assert "toy_vgg11_f8_w0.0625_true_s0_e2_n48.h5" in runs
    assert "toy_vgg13_f8_w0.0625_true_s0_e2_n48_frozen.h5" in runs
    for figure in ("tables", "heatmap", "true_vs_random", "consistency", "frozen"):
        assert (
            full_run / "results" / "figures" / "training" / f"{figure}.png"
        ).stat().st_size > 1000
    tables = pd.read_csv(full_run / "results" / "tables" / "training" / "tables.csv")
    paper = (tables["optimizer"] == "sgd") & (tables["augment"] == "none")
    rows = tables[paper & (tables["first_layer"] == "3x3 stride 1")].set_index("comparison")
    assert rows.loc["across seeds", "n"] == 1 and rows.loc["true vs random labels", "n"] == 4
    assert rows.loc["trained vs init", "n"] == 3 and rows["mean"].between(-1, 1).all()
    profiles = pd.read_csv(full_run / "results" / "tables" / "training" / "profiles.csv")
    assert profiles["run"].nunique() == 13
    assert set(profiles[profiles["arch"].str.startswith("vgg")]["component"]) == set(range(1, 28))
    frozen = profiles[profiles["frozen"] & (profiles["step"] > 0)]
    assert len(frozen) and (frozen["energy"] == 0).all()
    metrics = pd.read_csv(full_run / "results" / "tables" / "training" / "metrics.csv")
    assert len(metrics) == 12 * 2 + 8
    assert (
        "resuming" not in (full_run / "logs" / "train" / runs[0].replace(".h5", ".log")).read_text()
    )


def test_theory_tables_and_figures(full_run):
    results = full_run / "results"
    for name in ("k3_formula", "k3_label_stats", "k3_linear_cnn", "whitening"):
        assert (results / "figures" / "theory" / "toy" / f"{name}.png").stat().st_size > 1000, name
    for name in ("fits", "fitted_t"):
        assert (results / "figures" / "theory" / f"{name}.png").stat().st_size > 1000, name
    filters = sorted(p.name for p in (results / "figures" / "theory" / "filters").glob("*.png"))
    assert "toy_vgg11_f8_w0.0625_true_s0_e2_n48.png" in filters and len(filters) == 3 + 4
    table = pd.read_csv(results / "tables" / "theory" / "table3.csv").set_index("network")
    # every run has its own init, a baseline sample of its first layer's geometry
    assert table.loc["random init, 3x3", "n"] == 10 and table.loc["random init, 4x4", "n"] == 3
    assert table["formula_mean"].between(-1, 1).all() and table["exact_mean"].between(-1, 1).all()
    assert table["best_null"].isin(["lambda_power", "index_exp", "index_power"]).all()
    verdicts = ["formula better", "null better", "indistinguishable", "one value: no verdict"]
    assert table["verdict_r"].isin(verdicts).all()
    assert (table["verdict_r"] == "one value: no verdict").eq(table["n"] == 1).all()
    assert table["paper_mean"].between(-1, 1).all()
    fits = pd.read_csv(results / "tables" / "theory" / "fits.csv")
    assert fits[fits["final"]]["run"].nunique() == 13 - 2  # frozen runs learn nothing to fit
    heldout = pd.read_csv(results / "tables" / "theory" / "heldout_rescaling.csv")
    assert list(heldout["manipulation"]) == ["scale2x4"] and list(heldout["n"]) == [2]
    per_run = pd.read_csv(results / "tables" / "theory" / "manipulations.csv")
    assert heldout["formula_ratio_mean"].iloc[0] == pytest.approx(per_run["formula_ratio"].mean())
    index_nulls = per_run["best_null"].isin(["index_exp", "index_power"])
    assert (per_run.loc[index_nulls, "null_ratio"] == 1).all()  # an index curve sees no change
    summary = pd.read_csv(results / "tables" / "theory" / "toy" / "k3_linear_cnn.csv")
    assert list(summary["steps"]) == [10, 50] * 3
    # one-vs-rest labels are one fixed label vector per class: the exact prediction is exact
    one_vs_rest = summary[summary["data"].str.contains("one-vs-rest")]
    assert (one_vs_rest["mean_vs_exact"] > 0.999).all()
    labels = pd.read_csv(results / "tables" / "theory" / "toy" / "k3_label_stats.csv")
    assert len(labels) == 3 * 27 and labels["correlation"].between(-1, 1).all()
    whitening = pd.read_csv(results / "tables" / "theory" / "toy" / "whitening.csv")
    assert whitening.groupby("input")["distance"].max().eq(6).all()
    # stride-1 first layers only, one curve per recipe: the strided stems' responses are sparse
    inputs = set(whitening["input"])
    assert {"RGB input", "trained first layer (sgd, none)"} <= inputs
    assert "trained first layer (adamw, crop_flip)" in inputs and len(inputs) == 7


def test_patch_statistics_of_the_run_are_exact(full_run):
    """The rule's output equals the library on the same sampled images, standardised by the
    training split's mean/std."""
    stats = read_patch_stats(full_run / "results" / "patches" / "toy" / "k5.h5")
    with h5py.File(full_run / "results" / "patches" / "toy" / "k5.h5") as handle:
        indices = handle["image_indices"][()]
        assert '"n_images": 40' in handle.attrs["provenance"]
        assert "torch" in handle.attrs["versions"]
    images = np.load(full_run / "toy.npz")["x"]
    assert len(indices) == 40 and len(set(indices)) == 40
    mean = (images / 255).reshape(-1, 3).mean(0)
    std = (images / 255).reshape(-1, 3).std(0)
    expected = patch_statistics(images[indices], 5, mean, std)
    assert np.allclose(stats.covariance, expected.covariance, rtol=1e-10, atol=1e-13)
    assert stats.count == 40 * 12 * 12


def test_a_patchify_stem_is_profiled_on_the_pca_of_its_own_4x4_patches(full_run):
    """The workflow's profile of a 4x4 stride-4 stem equals the projection of its change on the
    eigenvectors of a direct covariance of every 4x4 patch of the sampled images."""
    from firstlayer.patches.stats import eigendecompose
    from firstlayer.training.run import read_run

    with h5py.File(full_run / "results" / "patches" / "toy" / "k4.h5") as handle:
        indices = handle["image_indices"][()]
    images = np.load(full_run / "toy.npz")["x"]
    mean = (images / 255).reshape(-1, 3).mean(0)
    std = (images / 255).reshape(-1, 3).std(0)
    x = (images[indices] / 255 - mean) / std
    patches = np.asarray([x[n, i : i + 4, j : j + 4].transpose(2, 0, 1).ravel()
                          for n in range(len(x)) for i in range(13) for j in range(13)])  # fmt: skip
    _, basis = eigendecompose(np.cov(patches, rowvar=False, bias=True))
    run = read_run(full_run / "results" / "runs" / f"{PATCHIFY}.h5")
    expected = np.sqrt(np.mean(((run.final - run.init).reshape(8, 48) @ basis) ** 2, axis=0))
    profiles = pd.read_csv(full_run / "results" / "tables" / "training" / "profiles.csv")
    final = profiles[(profiles["run"] == PATCHIFY) & (profiles["step"] == run.steps[-1])]
    assert np.allclose(final.sort_values("component")["energy"], expected, rtol=1e-6)


def test_recipes_and_geometries_are_never_pooled(full_run):
    """Table 3, Tables 1-2 and the recipe table keep optimisers, augmentations and first-layer
    geometries apart; the stride-4 grid's statistics are measured beside all positions'."""
    tables = full_run / "results" / "tables"
    table3 = pd.read_csv(tables / "theory" / "table3.csv")
    learned = table3[~table3["network"].str.startswith("random init")]
    cells = learned.groupby(["network", "labels", "inputs", "optimizer", "augment"]).size()
    assert (cells == 1).all() and ("patchcnn", "true", "none", "adamw", "none") in cells.index
    consistency = pd.read_csv(tables / "training" / "tables.csv")
    assert set(consistency["first_layer"]) == {"3x3 stride 1", "4x4 stride 4"}
    recipes = pd.read_csv(tables / "theory" / "recipes.csv", dtype={"labels": str})
    # vgg11 true and random, vgg13 (sgd); patchcnn x sgd, adamw; vit1 adamw; vgg11 adamw, e8
    assert len(recipes) == 3 + 3 + 1
    row = recipes[(recipes["arch"] == "patchcnn") & (recipes["optimizer"] == "adamw")].iloc[0]
    assert row["vs_paper_n"] == 1 and row["first_layer"] == "4x4 stride 4"
    assert recipes["relative_change_mean"].gt(0).all()
    strided = pd.read_csv(tables / "patches" / "toy" / "k4_stride4.csv")
    assert len(strided) == 48 and strided["std_ratio"].between(0.5, 2).all()
    assert np.isclose(strided["subspace_overlap"].iloc[-1], 1.0)  # all 48 span the same space


def test_a_killed_augmented_adamw_run_resumes_in_the_workflow(full_run, tmp_path):
    """The workflow's train job of an AdamW run with crop_flip, killed (its whole process
    group, SIGKILL) after a checkpoint, resumes on the next invocation and ends bit-identical
    to the same run trained without interruption."""
    import os
    import shutil
    import signal
    import time

    from firstlayer.training.run import read_run

    workdir = make_workdir(tmp_path / "kill")
    dataset = workdir / "resources" / "datasets" / "toy.h5"  # the same dataset, built once
    dataset.parent.mkdir(parents=True)
    shutil.copy2(full_run / "resources" / "datasets" / "toy.h5", dataset)
    target = f"results/runs/{AUGMENTED}.h5"
    command = SNAKEMAKE + ["--directory", str(workdir), "--configfile", "config.yaml",
                           "--cores", "1", target]  # fmt: skip
    env = {**os.environ, "FIRSTLAYER_CHECKPOINT_MINUTES": "0"}  # a checkpoint every epoch
    proc = subprocess.Popen(command, cwd=workdir, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    checkpoint = workdir / "checkpoints" / f"{AUGMENTED}.pt"
    deadline = time.time() + 600
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (workdir / target).exists()
    snakemake(workdir, target, "--unlock")
    snakemake(workdir, target)
    log = (workdir / "logs" / "train" / f"{AUGMENTED}.log").read_text()
    assert "resuming from the checkpoint after epoch" in log
    resumed, uninterrupted = read_run(workdir / target), read_run(full_run / target)
    assert np.array_equal(resumed.weights, uninterrupted.weights)
    assert np.array_equal(resumed.metrics["train_loss"], uninterrupted.metrics["train_loss"])


def test_pretrained_tables_hold_user_files_by_kernel_size(full_run):
    tables = full_run / "results" / "tables" / "pretrained" / "toy"
    k3 = pd.read_csv(tables / "k3_profiles.csv")
    assert set(k3["name"]) == {"a3", "b3"} and len(k3) == 2 * 27
    assert set(pd.read_csv(tables / "k5_profiles.csv")["name"]) == {"c5"}
    fitted = pd.read_csv(tables / "k3_table3.csv").set_index("network")
    assert (
        fitted.loc["all first layers", "n"] == 2
        and fitted.loc["weight files", "layers"] == "a3, b3"
    )
    corr = pd.read_csv(tables / "k3_correlations.csv").set_index(["a", "b"])["correlation"]
    assert corr["a3", "a3"] == pytest.approx(1.0)
    # a user file without a normalisation is profiled in the dataset's own input space, which is
    # the space of the stored patch statistics
    stats = read_patch_stats(full_run / "results" / "patches" / "toy" / "k3.h5")
    weight = np.load(full_run / "w3.npy")
    a3 = k3[k3["name"] == "a3"].sort_values("component")["energy"].to_numpy()
    assert np.allclose(a3, energy_profile(weight, stats.eigenvectors), rtol=1e-8)


def test_html_report_holds_every_figure_with_its_caption(full_run):
    report = full_run / "report.html"
    snakemake(full_run, "all", "pretrained", "--report", str(report))
    html = report.read_text(errors="replace")
    for figure in (
        "k3_spectrum.png",
        "true_vs_random.png",
        "k3_linear_cnn.png",
        "fits.png",
        "whitening.png",
        "k3_heatmap.png",
    ):
        assert figure in html, figure
    for category in ("Patch statistics", "Training", "Theory", "Filters", "Pretrained"):
        assert category in html, category
    assert "seed-averaged profile" in html  # a caption (report/linear_cnn.rst)


def test_rerun_has_nothing_to_do(full_run):
    result = snakemake(full_run, "all", "pretrained", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_single_figure_by_its_target(tmp_path):
    workdir = make_workdir(tmp_path / "one")
    snakemake(workdir, "fig_patch_spectrum")
    assert not (workdir / "results" / "runs").exists()  # nothing the figure does not need
    figures = workdir / "results" / "figures" / "patches" / "toy"
    assert sorted(p.name for p in figures.iterdir()) == [
        "k3_spectrum.pdf",
        "k3_spectrum.png",
        "k5_spectrum.pdf",
        "k5_spectrum.png",
    ]
    target = "results/figures/patches/toy/k3_components.png"
    dry = snakemake(workdir, target, "-n")
    assert "plot_patch_components" in dry.stdout and "patch_stats " not in dry.stdout
    snakemake(workdir, target)
    assert (workdir / target).is_file()
    assert not (workdir / "results" / "figures" / "patches" / "toy" / "k5_components.png").exists()


def test_a_config_naming_only_your_own_dataset_builds_its_patch_statistics(tmp_path):
    """Sections the user did not write follow the user's datasets: no name they never wrote
    (such as the default's cifar10) can fail validation."""
    images = smooth_images(30, 12, 12, 3)
    np.savez(tmp_path / "mine.npz", x=images, y=np.arange(30) % 2)
    (tmp_path / "config.yaml").write_text("datasets:\n  my-photos: {source: npz, path: mine.npz}\n")
    snakemake(tmp_path, "results/patches/my-photos/k3.h5")
    stats = read_patch_stats(tmp_path / "results/patches/my-photos/k3.h5")
    assert stats.k == 3 and stats.count == 30 * 10 * 10


def test_bad_input_fails_the_job_with_one_line(tmp_path):
    """A corrupt local archive: the dataset job stops with a one-line error (shown by Snakemake,
    no traceback in the log) and leaves no output behind."""
    workdir = make_workdir(tmp_path / "bad")
    (workdir / "cifar.tar.gz").write_bytes(b"not really an archive")
    (workdir / "config.yaml").write_text(
        TINY_CONFIG.replace(
            "{source: npz, path: toy.npz, test_images: xt, test_labels: yt}",
            "{source: torchvision, name: CIFAR10, archive: cifar.tar.gz}",
        )
    )
    result = snakemake(workdir, "resources/datasets/toy.h5", check=False)
    assert result.returncode != 0
    log = (workdir / "logs" / "dataset" / "toy.log").read_text()
    assert "error: cifar.tar.gz is corrupt or not the CIFAR10 file" in log
    assert "Traceback" not in log
    assert "cifar.tar.gz is corrupt" in result.stdout + result.stderr  # the log is shown
    assert not (workdir / "resources" / "datasets" / "toy.h5").exists()


@pytest.mark.parametrize("configfile,runs", [("extended.yaml", 39), ("paper.yaml", 245)])
def test_named_config_files_replace_the_default(tmp_path, configfile, runs):
    """--configfile config/paper.yaml defines the whole grid: the default's blocks do not leak in."""
    result = subprocess.run(
        SNAKEMAKE
        + [
            "--directory",
            str(tmp_path),
            "--configfile",
            str(ROOT / "config" / configfile),
            "-n",
            "--cores",
            "2",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    counts = dict(
        line.split()
        for line in result.stdout.splitlines()
        if line.split()[:1] in (["train"], ["total"]) and len(line.split()) == 2
    )
    assert int(counts["train"]) == runs
    assert "w0.125" not in result.stdout or configfile == "extended.yaml"
    if configfile == "paper.yaml":
        assert int(counts["total"]) >= 300  # the paper-scale grid, planned in seconds
