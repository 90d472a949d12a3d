"""A hostile user's bad inputs and faults, each run through Snakemake on the tiny npz workflow.

Every case in CASES states the fault and what the workflow guarantees; docs/reliability.md's
Guarantees table is generated from this table (a test checks they agree). A failing case must
end non-zero with exactly one error line naming the key or file, no traceback, no partial output
and the user's files untouched; a rebuild case must rerun exactly the listed jobs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import GRID_CONFIG, ROOT, SNAKEMAKE, grid_workdir, smooth_images

from firstlayer.report.markdown import guarantees_block, markers, replace_block

pytestmark = pytest.mark.workflow

CONFIG_LINE = "stops before any job: one line naming the key, the value and what is allowed"
JOB_LINE = "the job stops with one line naming the file and what to do"
RUN = "toy_vgg11_f8_w0.0625_{labels}_s{seed}_e2_n48"
# Every job of the tiny grid (GRID_CONFIG), as Snakemake counts them.
ALL_JOBS = {
    "dataset": 1,
    "patch_stats": 1,
    "train": 4,
    "filters_figure": 2,
    "formula_figure": 1,
    "image_features": 1,
    "plot_patch_components": 1,
    "plot_patch_spectrum": 1,
    "training_profiles": 1,
    "whitening": 1,
    "consistency_tables": 1,
    "formula_fits": 1,
    "label_stats": 1,
    "linear_cnn": 1,
    "plot_consistency": 1,
    "plot_heatmap": 1,
    "plot_true_vs_random": 1,
    "all": 1,
}
# The jobs downstream of the training profiles table (all of them read it).
PROFILE_JOBS = {
    "training_profiles": 1,
    "consistency_tables": 1,
    "plot_consistency": 1,
    "plot_heatmap": 1,
    "plot_true_vs_random": 1,
    "formula_fits": 1,
    "all": 1,
}


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    fault: str
    guarantee: str
    check: object = field(repr=False, compare=False)


# ------------------------------------------------------------------ running and judging


def snakemake(path, *args, repo: Path = ROOT):
    env = {**os.environ, "PYTHONPATH": str(repo)}
    command = [*SNAKEMAKE[:-1], str(repo / "Snakefile")] if repo != ROOT else SNAKEMAKE
    return subprocess.run(
        [*command, "--directory", str(path), "--configfile", "config.yaml", *args],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def assert_one_line(result, *needles, prefix="error:"):
    """A failure: non-zero exit, exactly one error line, naming every needle, no traceback."""
    output = result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert result.returncode != 0, output[-3000:]
    assert len(lines) == 1, output[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in output, output[-3000:]


def user_files(path: Path) -> dict[str, str]:
    """Checksums of everything the user put in the work folder (not what the workflow made)."""
    made = {"results", "resources", "logs", "benchmarks", "checkpoints", ".snakemake"}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.relative_to(path).parts[0] not in made
    }


def leftovers(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if ".tmp" in p.name and ".snakemake" not in p.parts]


def job_counts(result) -> dict[str, int]:
    """{rule: jobs} of a dry run's job table ({} when nothing is to be done)."""
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    lines = result.stdout.splitlines()
    if "Job stats:" not in lines:
        assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-2000:]
        return {}
    rows = lines[lines.index("Job stats:") + 3 :]
    counts = {}
    for row in rows[: next(i for i, r in enumerate(rows) if r.startswith("total"))]:
        name, count = row.split()
        counts[name] = int(count)
    return counts


def merged(override: str) -> str:
    config = yaml.safe_load(GRID_CONFIG)
    for key, value in yaml.safe_load(override).items():
        config[key] = {**config[key], **value} if isinstance(config.get(key), dict) else value
    return yaml.safe_dump(config)


# ------------------------------------------------------------------ 1. configuration mistakes


def config_case(id, kind, override, needle, fault, raw=None, files=None):
    def check(tmp_path, request):
        path = grid_workdir(tmp_path / "w", raw or merged(override))
        for name, write in (files or {}).items():
            write(path / name)
        result = snakemake(path, "--cores", "1")
        assert_one_line(result, needle, prefix="config error:")
        assert not (path / "results").exists() and not (path / "resources").exists()

    return Case(id, kind, fault, CONFIG_LINE, check)


def npy(shape, value=None):
    def write(path):
        array = np.random.default_rng(0).normal(size=shape)
        if value is not None:
            array.flat[0] = value
        np.save(path, array)

    return write


WRONG = "silently wrong"
TRACEBACK = "traceback instead of one line"
STALE = "stale result reused"
GRIDS = "grid the default config does not cover"

CONFIG_CASES = [
    config_case(
        "nan_lr", WRONG, "training: {lr: .nan}", "training.lr = nan; must be a finite", "`lr: .nan`"
    ),
    config_case(
        "inf_lr", WRONG, "training: {lr: .inf}", "training.lr = inf; must be a finite", "`lr: .inf`"
    ),
    config_case(
        "nan_momentum",
        WRONG,
        "training: {momentum: .nan}",
        "training.momentum = nan",
        "`momentum: .nan`",
    ),
    config_case(
        "nan_tau",
        WRONG,
        "theory: {tau_range: [.nan, 10.0]}",
        "theory.tau_range[0] = nan",
        "`tau_range: [.nan, 10]`",
    ),
    config_case(
        "duplicate_key",
        WRONG,
        None,
        "key 'training' appears twice",
        "a key written twice in the config file",
        raw=GRID_CONFIG + "training: {epochs: 3}\n",
    ),
    config_case(
        "npz_resize",
        WRONG,
        "datasets: {toy: {source: npz, path: toy.npz, resize: [8, 8]}}",
        "datasets.toy.resize does not apply to source 'npz'",
        "`resize` on an npz dataset",
    ),
    config_case(
        "npz_mode",
        WRONG,
        "datasets: {toy: {source: npz, path: toy.npz, mode: RGB}}",
        "datasets.toy.mode does not apply to source 'npz'",
        "`mode` on an npz dataset",
    ),
    config_case(
        "imagefolder_archive",
        WRONG,
        "datasets: {toy: {source: imagefolder, path: toy.npz, archive: x.tar.gz}}",
        "datasets.toy.archive does not apply to source 'imagefolder'",
        "`archive` on an imagefolder dataset",
    ),
    config_case(
        "weight_group_missing",
        WRONG,
        "pretrained: {dataset: toy, models: {k3: []}, weight_files: {w: {path: w5.npy}}}",
        "holds 5x5 filters, but pretrained.models has no group k5",
        "an .npy weight file whose kernel-size group is not listed",
        files={"w5.npy": npy((4, 3, 5, 5))},
    ),
    config_case(
        "float_epochs",
        TRACEBACK,
        "training: {epochs: 2.0}",
        "training.epochs = 2.0; expected integer (write 2",
        "`epochs: 2.0`",
    ),
    config_case("float_k", TRACEBACK, "patches: {k: [3.0]}", "patches.k[0] = 3.0", "`k: [3.0]`"),
    config_case(
        "float_batch",
        TRACEBACK,
        "experiments: {a: {datasets: [toy], settings: {batch_size: 16.0}}}",
        "experiments.a.settings.batch_size = 16.0",
        "`batch_size: 16.0` in a block's settings",
    ),
    config_case(
        "float_steps",
        TRACEBACK,
        "theory: {linear_cnn: {steps: [10.5]}}",
        "theory.linear_cnn.steps[0] = 10.5",
        "`steps: [10.5]`",
    ),
    config_case(
        "inf_width",
        TRACEBACK,
        "experiments: {a: {datasets: [toy], widths: [.inf]}}",
        "experiments.a.widths[0] = inf",
        "`widths: [.inf]`",
    ),
    config_case(
        "mean_without_std",
        TRACEBACK,
        "pretrained: {dataset: toy, models: {k3: []}, weight_files: "
        "{w: {path: w3.npy, input_mean: [0.5, 0.5, 0.5]}}}",
        "pretrained.weight_files.w gives only one of input_mean and input_std",
        "`input_mean` without `input_std`",
        files={"w3.npy": npy((4, 3, 3, 3))},
    ),
    config_case(
        "norm_lengths",
        TRACEBACK,
        "pretrained: {dataset: toy, models: {k3: []}, weight_files: "
        "{w: {path: w3.npy, input_mean: [0.5, 0.5, 0.5], input_std: [0.2, 0.2]}}}",
        "pretrained.weight_files.w.input_std = [0.2, 0.2]",
        "`input_mean` and `input_std` of different lengths",
        files={"w3.npy": npy((4, 3, 3, 3))},
    ),
    config_case(
        "long_name",
        TRACEBACK,
        "experiments: {" + "b" * 70 + ": {datasets: [toy]}}",
        "keys must be at most 64 characters",
        "a 70-character block name (passes the pattern, not the file system)",
    ),
]


def distinct_widths(tmp_path, request):
    """0.0625 and 0.06250001 both print as 0.0625 with `:g`: both runs are planned, apart."""
    block = "{datasets: [toy], first_widths: [8], widths: [0.0625, 0.06250001], seeds: [0]}"
    path = grid_workdir(tmp_path / "w", merged(f"experiments: {{a: {block}}}"))
    result = snakemake(path, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    for width in ("0.0625", "0.06250001"):
        assert f"results/runs/toy_vgg11_f8_w{width}_true_s0_e2_n48.h5" in result.stdout


CONFIG_CASES.append(
    Case(
        "widths_collide",
        WRONG,
        "two widths that print alike (0.0625, 0.06250001)",
        "both runs are planned, under distinct names",
        distinct_widths,
    )
)


# ------------------------------------------------------------------ 2. bad files in jobs


def data_case(id, kind, fault, needles, prepare, config=None, target=(), guarantee=JOB_LINE):
    def check(tmp_path, request):
        path = grid_workdir(tmp_path / "w", config or GRID_CONFIG)
        prepare(path)
        before = user_files(path)
        result = snakemake(path, "--cores", "2", *target)
        assert_one_line(result, *needles)
        assert user_files(path) == before  # nothing of the user's touched
        assert leftovers(path) == [] and not (path / "resources" / "datasets" / "toy.h5").exists()
        assert not (path / "results" / "pretrained" / "weights" / "w.h5").exists()

    return Case(id, kind, fault, guarantee, check)


def rewrite_npz(**changes):
    def prepare(path):
        images = smooth_images(60, 16, 16, 3)
        arrays = {"x": images, "y": np.arange(60) % 3, "xt": images[:10], "yt": np.arange(10) % 3}
        np.savez(path / "toy.npz", **{**arrays, **changes})

    return prepare


def halve(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def truncate(name):
    return lambda path: halve(path / name)


def text_file(name):
    def prepare(path):
        (path / name).write_text("this is not what the extension says\n")

    return prepare


def npy_array_as_npz(path):
    with open(path / "toy.npz", "wb") as handle:
        np.save(handle, smooth_images(4, 16, 16, 3))


def image_tree(path: Path, broken: str | None = None) -> Path:
    from PIL import Image

    root = path / "images"
    for split, count in (("train", 4), ("test", 2)):
        for c, name in enumerate(["ant", "bee", "cat"]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(smooth_images(count, 16, 16, 3, seed=c)):
                Image.fromarray(image).save(folder / f"{i}.png")
    if broken:
        (root / broken).write_bytes(b"not a png")
    return root


def imagefolder_config(path_name: str) -> str:
    return merged(f"datasets: {{toy: {{source: imagefolder, path: {path_name}}}}}")


def zipped(path):
    root = image_tree(path)
    with zipfile.ZipFile(path / "images.zip", "w") as archive:
        for file in sorted(root.rglob("*.png")):
            archive.write(file, file.relative_to(root).as_posix())
    shutil.rmtree(root)
    truncate("images.zip")(path)


def tarred(path):
    root = image_tree(path)
    with tarfile.open(path / "images.tar.gz", "w:gz") as archive:
        archive.add(root, arcname=".")
    shutil.rmtree(root)
    truncate("images.tar.gz")(path)


WEIGHTS = "pretrained: {{dataset: toy, models: {{k3: []}}, weight_files: {{w: {spec}}}}}"
WEIGHT_TARGET = ("results/pretrained/weights/w.h5",)


def weight_case(id, kind, fault, needles, spec, write):
    return data_case(
        id,
        kind,
        fault,
        needles,
        write,
        config=merged(WEIGHTS.format(spec=spec)),
        target=WEIGHT_TARGET,
    )


def torch_file(name, tensor):
    def prepare(path):
        import torch

        torch.save({"conv1.weight": torch.as_tensor(tensor)}, path / name)

    return prepare


def write_npy(name, array):
    def prepare(path):
        np.save(path / name, array)

    return prepare


def nan_weights():
    array = np.random.default_rng(0).normal(size=(4, 3, 3, 3))
    array[1, 0, 0, 0] = np.nan
    return array


DATA_CASES = [
    data_case(
        "npz_float_images",
        TRACEBACK,
        "npz images stored as float32",
        ["toy.npz", "'x' has dtype float32; images must be uint8"],
        rewrite_npz(x=smooth_images(60, 16, 16, 3).astype(np.float32)),
    ),
    data_case(
        "npz_negative_label",
        TRACEBACK,
        "a label of -1 in the npz",
        ["toy.npz", "holds label -1"],
        rewrite_npz(y=np.arange(60) % 3 - 1),
    ),
    data_case(
        "npz_label_range",
        TRACEBACK,
        "labels beyond the configured class names",
        ["toy.npz", "label 2 is outside the 2 class_names"],
        rewrite_npz(),
        config=merged(
            "datasets: {toy: {source: npz, path: toy.npz, test_images: xt, test_labels: yt, "
            "class_names: [a, b]}}"
        ),
    ),
    data_case(
        "npz_label_count",
        TRACEBACK,
        "fewer labels than images",
        ["toy.npz", "expected 60 integer labels"],
        rewrite_npz(y=np.arange(50) % 3),
    ),
    data_case(
        "npz_truncated",
        TRACEBACK,
        "a truncated .npz",
        ["toy.npz"],
        truncate("toy.npz"),
    ),
    data_case(
        "npz_is_text",
        TRACEBACK,
        "a text file named .npz",
        ["toy.npz: not a readable .npz file"],
        text_file("toy.npz"),
    ),
    data_case(
        "npz_is_npy",
        TRACEBACK,
        "a single .npy array named .npz",
        ["toy.npz: a single .npy array"],
        npy_array_as_npz,
    ),
    data_case(
        "zip_truncated",
        TRACEBACK,
        "a truncated ImageFolder .zip",
        ["images.zip: truncated or corrupt archive"],
        zipped,
        config=imagefolder_config("images.zip"),
    ),
    data_case(
        "tar_truncated",
        TRACEBACK,
        "a truncated ImageFolder .tar.gz",
        ["images.tar.gz: truncated or corrupt archive"],
        tarred,
        config=imagefolder_config("images.tar.gz"),
    ),
    data_case(
        "image_not_decodable",
        TRACEBACK,
        "a file that is not an image under a .png name",
        ["images: cannot decode image train/bee/bad.png"],
        lambda path: image_tree(path, broken="train/bee/bad.png"),
        config=imagefolder_config("images"),
    ),
    weight_case(
        "weights_nan",
        TRACEBACK,
        "a weight file holding NaN",
        ["w.npy: weight holds 1 NaN or infinite values"],
        "{path: w.npy}",
        write_npy("w.npy", nan_weights()),
    ),
    weight_case(
        "weights_npy_truncated",
        TRACEBACK,
        "a truncated .npy weight file",
        ["w.npy: not a readable .npy array"],
        "{path: w.npy}",
        lambda path: (
            write_npy("w.npy", np.ones((4, 3, 3, 3)))(path),
            truncate("w.npy")(path),
        ),
    ),
    weight_case(
        "weights_pt_is_text",
        TRACEBACK,
        "a text file named .pt",
        ["w.pt: not a safely loadable PyTorch file"],
        "{path: w.pt, tensor: conv1.weight}",
        text_file("w.pt"),
    ),
    weight_case(
        "weights_pt_group",
        WRONG,
        "a checkpoint whose 5x5 first layer joins no configured group",
        ["w.pt: 5x5 filters, but pretrained.models has no group k5"],
        "{path: w.pt, tensor: conv1.weight}",
        torch_file("w.pt", np.ones((4, 3, 5, 5), np.float32)),
    ),
    weight_case(
        "weights_norm_channels",
        TRACEBACK,
        "a normalisation with 2 values for 3 input channels",
        ["input_mean has 2 values; allowed: one per input channel of w.pt (3)"],
        "{path: w.pt, tensor: conv1.weight, input_mean: [0.5, 0.5], input_std: [0.2, 0.2]}",
        torch_file("w.pt", np.ones((4, 3, 3, 3), np.float32)),
    ),
    weight_case(
        "weights_not_conv",
        TRACEBACK,
        "a 2-D array as a first layer",
        ["w.npy: weight of shape (4, 27)"],
        "{path: w.npy}",
        write_npy("w.npy", np.ones((4, 27))),
    ),
]


def symlinked_class(tmp_path, request):
    """A class folder that is a symlink is read like any other (it used to be skipped)."""
    path = grid_workdir(tmp_path / "w", imagefolder_config("images"))
    root = image_tree(path)
    elsewhere = path / "elsewhere"
    shutil.move(root / "train" / "cat", elsewhere)
    (root / "train" / "cat").symlink_to(elsewhere, target_is_directory=True)
    result = snakemake(path, "--cores", "1", "resources/datasets/toy.h5")
    assert result.returncode == 0, result.stderr[-3000:]
    from firstlayer.datasets.sources import DatasetFile

    with DatasetFile(path / "resources" / "datasets" / "toy.h5") as data:
        assert data.class_names == ["ant", "bee", "cat"]
        assert np.bincount(data.labels("train")).tolist() == [4, 4, 4]


DATA_CASES.append(
    Case(
        "imagefolder_symlink",
        WRONG,
        "an ImageFolder class folder that is a symlink",
        "read like any other class folder (all classes, all images)",
        symlinked_class,
    )
)


# ------------------------------------------------------------------ 3. what reruns after a change


@pytest.fixture(scope="module")
def built(local_grid_run):
    """The tiny grid, built once per session (shared with the reliability tests)."""
    return local_grid_run


def copy_of(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the built work folder and of the workflow's code (so code can be edited)."""
    work = tmp_path / "work"
    shutil.copytree(built, work, symlinks=True)
    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("Snakefile", "rules", "scripts", "config", "profiles", "report", "envs"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, symlinks=True, ignore=ignore)
        else:
            repo.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    shutil.copytree(ROOT / "firstlayer", repo / "firstlayer", ignore=ignore)
    return work, repo


def rerun_case(id, fault, change, expected, kind=STALE):
    def check(tmp_path, request):
        work, repo = copy_of(request.getfixturevalue("built"), tmp_path)
        change(work, repo)
        assert job_counts(snakemake(work, "-n", repo=repo)) == expected

    if not expected:
        guarantee = "nothing reruns"
    elif expected == ALL_JOBS:
        guarantee = f"every job reruns ({sum(ALL_JOBS.values()) - 1})"
    else:
        guarantee = "reruns exactly: " + ", ".join(
            f"{rule} ({count})" if count > 1 else rule
            for rule, count in expected.items()
            if rule != "all"
        )
    return Case(id, kind, fault, guarantee, check)


def append_code(relative, text):
    def change(work, repo):
        path = repo / relative
        path.write_text(path.read_text() + text)

    return change


def touch_everything(work, repo):
    later = 4_000_000_000  # 2096: every source file newer than every result
    for path in repo.rglob("*"):
        if path.is_file():
            os.utime(path, (later, later))


def reorder_config(work, repo):
    def reverse(value):
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        return value

    config = reverse(yaml.safe_load((work / "config.yaml").read_text()))
    config["training"] = {"lr": 1.0e-2, **config["training"]}  # the default, spelled out
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def replace_npz(same: bool):
    def change(work, repo):
        with np.load(work / "toy.npz") as archive:
            arrays = dict(archive)
        if not same:
            arrays["x"] = arrays["x"][::-1].copy()
        np.savez(work / "toy.npz", **arrays)

    return change


def delete(relative):
    return lambda work, repo: (work / relative).unlink()


def set_config(override):
    return lambda work, repo: (work / "config.yaml").write_text(merged(override))


RERUN_CASES = [
    rerun_case(
        "checkout_unchanged",
        "the workflow checked out again: every source file newer, no content changed",
        touch_everything,
        {},
    ),
    rerun_case(
        "comment_edit",
        "a comment and a docstring edited in firstlayer/training/analysis.py",
        append_code("firstlayer/training/analysis.py", '\n\n# a note\ndef _f():\n    """Doc."""\n'),
        {},
    ),
    rerun_case(
        "code_edit_analysis",
        "the code of firstlayer/training/analysis.py changed",
        append_code("firstlayer/training/analysis.py", "\nEXTRA = 1\n"),
        PROFILE_JOBS,
    ),
    rerun_case(
        "code_edit_label_stats",
        "the code of firstlayer/theory/label_stats.py changed",
        append_code("firstlayer/theory/label_stats.py", "\nEXTRA = 1\n"),
        {"label_stats": 1, "all": 1},
    ),
    rerun_case(
        "code_edit_foundation",
        "the code of firstlayer/h5io.py (read and written by every stage) changed",
        append_code("firstlayer/h5io.py", "\nEXTRA = 1\n"),
        ALL_JOBS,
    ),
    rerun_case(
        "config_reordered",
        "config keys reordered and a default written out (`lr: 1.0e-2`)",
        reorder_config,
        {},
    ),
    rerun_case(
        "npz_rewritten_same",
        "the .npz rewritten with the same content (a new modification time)",
        replace_npz(same=True),
        {},
    ),
    rerun_case(
        "npz_changed_in_place",
        "the .npz replaced in place by different images",
        replace_npz(same=False),
        ALL_JOBS,
    ),
    rerun_case(
        "setting_changed",
        "one theory setting changed (`linear_cnn.runs`)",
        set_config("theory: {linear_cnn: {runs: 3, steps: [10]}}"),
        {"linear_cnn": 1, "all": 1},
    ),
    rerun_case(
        "run_deleted",
        "a run file deleted",
        delete(f"results/runs/{RUN.format(labels='random', seed=1)}.h5"),
        {"train": 1, **PROFILE_JOBS},
    ),
    rerun_case(
        "patch_stats_deleted",
        "the patch statistics deleted",
        delete("results/patches/toy/k3.h5"),
        {
            key: value
            for key, value in ALL_JOBS.items()
            if key not in ("dataset", "train", "filters_figure")
        },
    ),
    rerun_case(
        "features_deleted",
        "the per-image features deleted",
        delete("results/theory/toy/k3_images.h5"),
        {"image_features": 1, "label_stats": 1, "linear_cnn": 1, "formula_fits": 1, "all": 1},
    ),
    rerun_case(
        "dataset_deleted",
        "the dataset file deleted",
        delete("resources/datasets/toy.h5"),
        ALL_JOBS,
    ),
]


# ------------------------------------------------------------------ 4. corrupted intermediates


def corrupt_case(id, fault, relative, damage, target, needles):
    def check(tmp_path, request):
        work, repo = copy_of(request.getfixturevalue("built"), tmp_path)
        damage(work / relative)
        result = snakemake(work, "--cores", "1", target, repo=repo)
        assert_one_line(result, relative, *needles)
        assert leftovers(work) == []
        assert not (work / target).exists()  # the failed job's output is not left behind

    return Case(id, WRONG, fault, "refused when read: one line naming the file and its rule", check)


def flip_a_bit(path):
    with h5py.File(path, "r") as handle:
        offsets = []
        handle.visititems(
            lambda name, obj: (
                offsets.append((obj.id.get_offset(), obj.id.get_storage_size()))
                if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None
                else None
            )
        )
    offset, size = max(offsets, key=lambda item: item[1])
    with open(path, "r+b") as handle:
        handle.seek(offset + size // 2)
        byte = handle.read(1)[0]
        handle.seek(offset + size // 2)
        handle.write(bytes([byte ^ 0x10]))


def drop_an_array(path):
    with h5py.File(path, "a") as handle:
        del handle[sorted(n for n in handle if isinstance(handle[n], h5py.Dataset))[0]]


CORRUPT_CASES = [
    corrupt_case(
        "patch_stats_bit_flip",
        "one bit flipped inside the patch statistics",
        "results/patches/toy/k3.h5",
        flip_a_bit,
        "results/figures/theory/toy/k3_formula.png",
        ["corrupted", "rule `patch_stats` rebuilds it"],
    ),
    corrupt_case(
        "run_missing_array",
        "an array deleted from a run file (still valid HDF5)",
        f"results/runs/{RUN.format(labels='true', seed=0)}.h5",
        drop_an_array,
        f"results/figures/theory/filters/{RUN.format(labels='true', seed=0)}.png",
        ["corrupted", "rule `train` rebuilds it"],
    ),
    corrupt_case(
        "features_truncated",
        "the per-image features truncated",
        "results/theory/toy/k3_images.h5",
        halve,
        "results/figures/theory/toy/k3_label_stats.png",
        ["not a readable HDF5 file", "rule `image_features` rebuilds it"],
    ),
]


# ------------------------------------------------------------------ 5. lopsided grids


def true_labels_only(tmp_path, request):
    """Two seeds, true labels only: Table 2 has no pairs, the tables say so, nothing crashes."""
    work, repo = copy_of(request.getfixturevalue("built"), tmp_path)
    set_config(
        "experiments: {labels: {datasets: [toy], first_widths: [8], widths: [0.0625], "
        "seeds: [0, 1], labels: [true]}}"
    )(work, repo)
    result = snakemake(work, "--cores", "2", repo=repo)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / "logs" / "consistency_tables.log").read_text()
    assert log.count("no pairs in this grid") == 2  # random labels vs init, true vs random
    import pandas as pd

    tables = pd.read_csv(work / "results" / "tables" / "training" / "tables.csv")
    assert set(tables["comparison"]) == {"across seeds", "trained vs init"}
    assert tables.set_index("comparison").loc["across seeds", "n"] == 1


GRID_CASES = [
    Case(
        "true_labels_only",
        GRIDS,
        "two seeds, true labels only (no random-label runs)",
        'tables and figures built; comparisons without pairs say "no pairs in this grid"',
        true_labels_only,
    )
]

CASES = RERUN_CASES + CONFIG_CASES + DATA_CASES + CORRUPT_CASES + GRID_CASES


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, tmp_path, request):
    case.check(tmp_path, request)


def test_cases_are_distinct_and_cover_every_class():
    assert len(CASES) >= 40 and len({case.id for case in CASES}) == len(CASES)
    assert {case.kind for case in CASES} == {STALE, WRONG, GRIDS, TRACEBACK}


def test_guarantees_table_in_the_docs_is_generated_from_the_cases():
    text = (ROOT / "docs" / "reliability.md").read_text()
    begin, end = markers("guarantees")
    assert begin in text and end in text
    assert replace_block(text, guarantees_block(CASES), "guarantees") == text


if __name__ == "__main__":  # `python tests/test_bad_inputs.py` rewrites the docs' table
    docs = ROOT / "docs" / "reliability.md"
    docs.write_text(replace_block(docs.read_text(), guarantees_block(CASES), "guarantees"))
    print(f"{docs}: {len(CASES)} cases")
