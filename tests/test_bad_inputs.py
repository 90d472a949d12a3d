"""A hostile user's bad inputs and faults, each run through Snakemake on the tiny npz workflow.

Every case in CASES states the fault and what the workflow guarantees; docs/reliability.md's
Guarantees table is generated from this table (a test checks they agree). A failing case must
end non-zero with exactly one error line naming the key or file, no traceback, no partial output
and the user's files untouched; a rebuild case must rerun exactly the listed jobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
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
        timeout=1500,
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
LATE = "refused only after expensive work"

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

CONFIG_CASES += [
    config_case(
        "n_train_beyond_split",
        WRONG,
        "training: {n_train: 5000}",
        "training.n_train = 5000; the training split of toy holds 60 images",
        "`n_train: 5000` on an .npz of 60 training images (the name said n5000)",
    ),
    config_case(
        "scale_spelled_twice",
        WRONG,
        "experiments: {a: {datasets: [toy], inputs: [scale5x4, scale5x04]}}",
        "experiments.a.inputs[1] = 'scale5x04'; allowed: its one spelling 'scale5x4'",
        "two spellings of one transform (`scale5x4`, `scale5x04`: two runs of one setting)",
    ),
    config_case(
        "scale_by_one",
        WRONG,
        "experiments: {a: {datasets: [toy], inputs: [scale5x1]}}",
        "experiments.a.inputs[0] = 'scale5x1'; allowed: none, or a factor other than 1",
        "`scale5x1`, a second spelling of `none`",
    ),
    config_case(
        "component_beyond_d",
        LATE,
        "experiments: {a: {datasets: [toy], inputs: [scale28x2]}}",
        "experiments.a.inputs[0] = 'scale28x2'; allowed: principal components 1..27",
        "`scale28x2` on 3-channel images (d = 27; refused inside `train` before)",
    ),
    config_case(
        "decile_beyond_d",
        LATE,
        "experiments: {a: {datasets: [toy], labels: [decile30]}}",
        "experiments.a.labels[0] = 'decile30'; allowed: principal components 1..27",
        "`decile30` on 3-channel images (d = 27; refused inside `train` before)",
    ),
]

# A fourth hostile pass: settings the clock, publishing and the schema's edges let through.
CONFIG_CASES += [
    config_case(
        "record_order",
        WRONG,
        "experiments: {a: {datasets: [toy], settings: {record_lr_steps: [0.6, 0.3]}}}",
        "experiments.a.settings.record_lr_steps = [0.6, 0.3]; allowed: increasing values, "
        "[0.3, 0.6]",
        "`record_lr_steps: [0.6, 0.3]` beside `[0.3, 0.6]` (two runs of one setting)",
    ),
    config_case(
        "publish_pretrained",
        WRONG,
        "publish: pretrained",
        "publish = 'pretrained'; allowed: any other name",
        "`publish: pretrained` (the grid's set would replace the pretrained study's files)",
    ),
    config_case(
        "class_names_twice",
        WRONG,
        "datasets: {toy: {source: npz, path: toy.npz, class_names: [a, a, b]}}",
        "datasets.toy.class_names = ['a', 'a', 'b']; entries must be unique",
        "an npz's `class_names` naming one class twice (two classes under one name)",
    ),
    config_case(
        "batch_size_one",
        TRACEBACK,
        "training: {batch_size: 1}",
        "training.batch_size = 1; must be >= 2",
        "`batch_size: 1` (batch norm failed on the first step, after the data were built)",
    ),
    config_case(
        "theory_datasets_empty",
        TRACEBACK,
        "theory: {datasets: []}",
        "theory.datasets = []; must have at least 1 entries",
        "`theory: {datasets: []}` (an IndexError while Snakemake planned)",
    ),
]

# Snakemake reads --configfile and --config itself, before the workflow: a mistake there ends in
# its own traceback, which the workflow cannot catch; docs/reliability.md says what it means.
SNAKEMAKE_OWN = "Snakemake's own traceback before the workflow is read; its last line says what is wrong (docs/reliability.md)"


def snakemake_own(id, args, last_line):
    def check(tmp_path, request):
        path = grid_workdir(tmp_path / "w")
        result = snakemake(path, "-n", *args)
        output = result.stdout + result.stderr
        ends = [text.rstrip().splitlines()[-1] for text in (result.stdout, result.stderr) if text]
        assert result.returncode != 0 and last_line in ends, output[-2000:]
        assert not (path / "results").exists() and not (path / "resources").exists()
        docs = (ROOT / "docs" / "reliability.md").read_text()
        assert f"`{last_line}`" in docs  # the docs quote the line a user sees

    return check


CONFIG_CASES += [
    Case(
        "configfile_missing",
        TRACEBACK,
        "`--configfile missing.yaml`",
        SNAKEMAKE_OWN,
        snakemake_own(
            "configfile_missing",
            ["--configfile", "missing.yaml"],
            "FileNotFoundError: [Errno 2] No such file or directory: 'missing.yaml'",
        ),
    ),
    Case(
        "config_dotted_key",
        TRACEBACK,
        "`--config training.epochs=2` (a dotted key)",
        SNAKEMAKE_OWN,
        snakemake_own(
            "config_dotted_key",
            ["--config", "training.epochs=2"],
            "ValueError: Invalid config definition: Config entry must start with a valid "
            "identifier.",
        ),
    ),
]


# ------------------------------------------------------------------ 2. bad files in jobs
# All bad user files sit in one work folder, each its own dataset or weight file, and one
# Snakemake run (--keep-going) builds every one of them: each job must fail on its own, with its
# own single line naming its file.


@dataclass(frozen=True)
class BadFile:
    id: str
    kind: str
    fault: str
    needles: tuple  # in the job's one error line ({file}: the user file's name)
    file: str  # the user file or folder, in the work folder
    write: object = field(repr=False)  # write(path): creates the bad file at path
    entry: dict = field(default_factory=dict)  # its config entry besides the path
    weights: bool = False  # a pretrained weight file (else a dataset)

    @property
    def key(self) -> str:
        return self.id if self.weights else self.id.replace("_", "-")

    @property
    def target(self) -> str:
        if self.weights:
            return f"results/pretrained/weights/{self.key}.h5"
        return f"resources/datasets/{self.key}.h5"


def npz_file(**changes):
    def write(path):
        images = smooth_images(60, 16, 16, 3)
        arrays = {"x": images, "y": np.arange(60) % 3, "xt": images[:10], "yt": np.arange(10) % 3}
        np.savez(path, **{**arrays, **changes})

    return write


def halve(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def halved(write):
    return lambda path: (write(path), halve(path))


def text(path):
    path.write_text("this is not what the extension says\n")


def npy_array(path):
    with open(path, "wb") as handle:
        np.save(handle, smooth_images(4, 16, 16, 3))


def image_tree(root: Path, broken: str | None = None) -> Path:
    from PIL import Image

    for split, count in (("train", 4), ("test", 2)):
        for c, name in enumerate(["ant", "bee", "cat"]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(smooth_images(count, 16, 16, 3, seed=c)):
                Image.fromarray(image).save(folder / f"{i}.png")
    if broken:
        (root / broken).write_bytes(b"not a png")
    return root


def zipped(path):
    root = image_tree(path.with_suffix(".tree"))
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(root.rglob("*.png")):
            archive.write(file, file.relative_to(root).as_posix())
    shutil.rmtree(root)
    halve(path)


def tarred(path):
    root = image_tree(path.parent / "tar.tree")
    with tarfile.open(path, "w:gz") as archive:
        archive.add(root, arcname=".")
    shutil.rmtree(root)
    halve(path)


def symlinked_class(path):
    root = image_tree(path)
    elsewhere = path.parent / "elsewhere-cat"
    shutil.move(root / "train" / "cat", elsewhere)
    (root / "train" / "cat").symlink_to(elsewhere.resolve(), target_is_directory=True)


def empty_class(path):
    image_tree(path)
    (path / "train" / "dog").mkdir()


def one_deeper(path):
    image_tree(path)
    (path / "train" / "cat" / "extra").mkdir()
    shutil.move(path / "train" / "cat" / "0.png", path / "train" / "cat" / "extra" / "0.png")


def array(values):
    return lambda path: np.save(path, values)


def torch_file(values):
    def write(path):
        import torch

        torch.save({"conv1.weight": torch.as_tensor(values)}, path)

    return write


def with_nan():
    values = np.random.default_rng(0).normal(size=(4, 3, 3, 3))
    values[1, 0, 0, 0] = np.nan
    return values


NPZ = {"source": "npz", "test_images": "xt", "test_labels": "yt"}
FOLDER = {"source": "imagefolder"}
TENSOR = {"tensor": "conv1.weight"}
CONV3 = np.ones((4, 3, 3, 3), np.float32)
BAD_FILES = [
    BadFile(
        "npz_float_images",
        TRACEBACK,
        "npz images stored as float32",
        ("'x' has dtype float32; images must be uint8",),
        "float.npz",
        npz_file(x=smooth_images(60, 16, 16, 3).astype(np.float32)),
        NPZ,
    ),
    BadFile(
        "npz_negative_label",
        TRACEBACK,
        "a label of -1 in the npz",
        ("holds label -1",),
        "negative.npz",
        npz_file(y=np.arange(60) % 3 - 1),
        NPZ,
    ),
    BadFile(
        "npz_label_range",
        TRACEBACK,
        "labels beyond the configured class names",
        ("label 2 is outside the 2 class_names",),
        "range.npz",
        npz_file(),
        {**NPZ, "class_names": ["a", "b"]},
    ),
    BadFile(
        "npz_label_count",
        TRACEBACK,
        "fewer labels than images",
        ("expected 60 integer labels",),
        "count.npz",
        npz_file(y=np.arange(50) % 3),
        NPZ,
    ),
    BadFile(
        "npz_truncated",
        TRACEBACK,
        "a truncated .npz",
        ("not a readable .npz file",),
        "truncated.npz",
        halved(npz_file()),
        NPZ,
    ),
    BadFile(
        "npz_is_text",
        TRACEBACK,
        "a text file named .npz",
        ("not a readable .npz file",),
        "text.npz",
        text,
        NPZ,
    ),
    BadFile(
        "npz_is_npy",
        TRACEBACK,
        "a single .npy array named .npz",
        ("a single .npy array, not an .npz archive",),
        "single.npz",
        npy_array,
        NPZ,
    ),
    BadFile(
        "zip_truncated",
        TRACEBACK,
        "a truncated ImageFolder .zip",
        ("truncated or corrupt archive",),
        "images.zip",
        zipped,
        FOLDER,
    ),
    BadFile(
        "tar_truncated",
        TRACEBACK,
        "a truncated ImageFolder .tar.gz",
        ("truncated or corrupt archive",),
        "images.tar.gz",
        tarred,
        FOLDER,
    ),
    BadFile(
        "image_not_decodable",
        TRACEBACK,
        "a file that is not an image under a .png name",
        ("cannot decode image train/bee/bad.png",),
        "broken",
        lambda path: image_tree(path, broken="train/bee/bad.png"),
        FOLDER,
    ),
    BadFile(
        "npz_test_shape",
        WRONG,
        "an .npz whose test images have other channels than its training images",
        ("'xt' holds 16x16x1 images (height x width x channels) but 'x' holds 16x16x3",),
        "gray-test.npz",
        npz_file(xt=smooth_images(10, 16, 16, 1)),
        NPZ,
    ),
    BadFile(
        "npz_single_class",
        TRACEBACK,
        "a dataset of a single class (label statistics failed with a KeyError)",
        ("the training split holds images of one class only",),
        "single-class.npz",
        npz_file(y=np.zeros(60, np.int64), yt=np.zeros(10, np.int64)),
        NPZ,
    ),
    BadFile(
        "npz_huge_label",
        TRACEBACK,
        "a label of 1,000,000 among labels 0-2 (a million-class network)",
        ("labels run up to 1000000, so the network would have 1000001 outputs",),
        "huge-label.npz",
        npz_file(y=np.where(np.arange(60) == 5, 10**6, np.arange(60) % 3)),
        NPZ,
    ),
    BadFile(
        "imagefolder_empty_class",
        WRONG,
        "an ImageFolder with an empty class folder (the class was silently lost)",
        ("class folder train/dog/ holds no images",),
        "empty-class",
        empty_class,
        FOLDER,
    ),
    BadFile(
        "imagefolder_one_deeper",
        WRONG,
        "an ImageFolder image one folder deeper, train/cat/extra/0.png (silently left out)",
        ("image train/cat/extra/0.png is not directly in a class folder",),
        "deeper",
        one_deeper,
        FOLDER,
    ),
    BadFile(
        "imagefolder_symlink",
        WRONG,
        "an ImageFolder class folder that is a symlink",
        (),  # no error: the dataset is built with every class
        "linked",
        symlinked_class,
        FOLDER,
    ),
    BadFile(
        "weights_nan",
        TRACEBACK,
        "a weight file holding NaN",
        ("weight holds 1 NaN or infinite values",),
        "nan.npy",
        array(with_nan()),
        weights=True,
    ),
    BadFile(
        "weights_npy_truncated",
        TRACEBACK,
        "a truncated .npy weight file",
        ("refused, not a readable .npy array",),
        "truncated.npy",
        halved(array(np.ones((4, 3, 3, 3)))),
        weights=True,
    ),
    BadFile(
        "weights_not_conv",
        TRACEBACK,
        "a 2-D array as a first layer",
        ("weight of shape (4, 27); expected a first conv layer",),
        "flat.npy",
        array(np.ones((4, 27))),
        weights=True,
    ),
    BadFile(
        "weights_pt_is_text",
        TRACEBACK,
        "a text file named .pt",
        ("not a safely loadable PyTorch file",),
        "text.pt",
        text,
        TENSOR,
        weights=True,
    ),
    BadFile(
        "weights_pt_group",
        WRONG,
        "a checkpoint whose 5x5 first layer joins no configured group",
        ("5x5 filters, but pretrained.models has no group k5",),
        "k5.pt",
        torch_file(np.ones((4, 3, 5, 5), np.float32)),
        TENSOR,
        weights=True,
    ),
    BadFile(
        "weights_norm_channels",
        TRACEBACK,
        "a normalisation with 2 values for 3 input channels",
        ("input_mean has 2 values; allowed: one per input channel of",),
        "norm.pt",
        torch_file(CONV3),
        {**TENSOR, "input_mean": [0.5, 0.5], "input_std": [0.2, 0.2]},
        weights=True,
    ),
]


@dataclass(frozen=True)
class TrainFault:
    """A run whose training job must refuse in its first seconds, or train where it crashed."""

    id: str
    kind: str
    fault: str
    needles: tuple  # in the job's one error line (empty: the run trains)
    dataset: str  # toy, the tiny npz (60 images)
    block: dict  # its experiment block besides the dataset
    run: str  # the run's name

    @property
    def target(self) -> str:
        return f"results/runs/{self.run}.h5"


ONE_RUN = {"first_widths": [8], "widths": [0.0625], "seeds": [0]}
TRAIN_FAULTS = [
    TrainFault(
        "last_batch_of_one",
        TRACEBACK,
        "49 training images at batch 16: a last batch of one image (batch norm crashed)",
        (),
        "toy",
        {**ONE_RUN, "settings": {"n_train": 49, "epochs": 1}},
        "toy_vgg11_f8_w0.0625_true_s0_e1_n49",
    ),
    TrainFault(
        "weights_diverge",
        TRACEBACK,
        "a learning rate that makes the weights NaN (`lr: 1.0e+8`)",
        ("its loss became non-finite at step", "lr 1e+08", "allowed: a smaller lr"),
        "toy",
        {**ONE_RUN, "settings": {"lr": 1.0e8, "epochs": 1}},
        "toy_vgg11_f8_w0.0625_true_s0_e1_n48_7845a324",
    ),
    TrainFault(
        "memory_beyond_machine",
        TRACEBACK,
        "a first width whose estimated memory exceeds what the job may use (10^8 filters)",
        (
            "needs about",
            "MB of memory for its data, parameters and one batch",
            "allowed: a smaller",
        ),
        "toy",
        {**ONE_RUN, "first_widths": [10**8], "settings": {"epochs": 1}},
        "toy_vgg11_f100000000_w0.0625_true_s0_e1_n48",
    ),
]


@pytest.fixture(scope="module")
def bad_files_run(tmp_path_factory):
    """Every bad file in one work folder, and the training faults beside them, in one Snakemake
    run over all their jobs."""
    config = yaml.safe_load(GRID_CONFIG)
    config["pretrained"] = {"dataset": "toy", "models": {"k3": []}, "weight_files": {}}
    path = grid_workdir(tmp_path_factory.mktemp("bad_files") / "w")
    for bad in BAD_FILES:
        bad.write(path / bad.file)
        section = config["pretrained"]["weight_files"] if bad.weights else config["datasets"]
        section[bad.key] = {**bad.entry, "path": bad.file}
    for fault in TRAIN_FAULTS:
        config["experiments"][fault.id] = {"datasets": [fault.dataset], **fault.block}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    before = user_files(path)
    targets = [bad.target for bad in BAD_FILES] + [fault.target for fault in TRAIN_FAULTS]
    result = snakemake(path, "--cores", "2", "--keep-going", *targets)
    return path, result, before


def bad_file_case(bad: BadFile) -> Case:
    def check(tmp_path, request):
        path, result, before = request.getfixturevalue("bad_files_run")
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in output, output[-3000:]
        assert user_files(path) == before  # nothing of the user's touched
        assert leftovers(path) == []
        mine = [
            line
            for line in result.stderr.splitlines()
            if line.startswith("error:") and bad.file in line
        ]
        if not bad.needles:  # the fault is handled, not refused
            assert mine == [] and (path / bad.target).is_file()
            from firstlayer.datasets.sources import DatasetFile

            with DatasetFile(path / bad.target) as data:
                assert data.class_names == ["ant", "bee", "cat"]
                assert np.bincount(data.labels("train")).tolist() == [4, 4, 4]
            return
        assert len(mine) == 1, output[-3000:]
        for needle in bad.needles:
            assert needle in mine[0], mine[0]
        assert not (path / bad.target).exists()

    guarantee = (
        "read like any other class folder (all classes, all images)"
        if not bad.needles
        else JOB_LINE
    )
    return Case(bad.id, bad.kind, bad.fault, guarantee, check)


def train_fault_case(fault: TrainFault) -> Case:
    def check(tmp_path, request):
        path, result, _ = request.getfixturevalue("bad_files_run")
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output[-3000:]
        mine = [
            line
            for line in result.stderr.splitlines()
            if line.startswith("error:") and f"run {fault.run}:" in line
        ]
        log = (path / "logs" / "train" / f"{fault.run}.log").read_text()
        if not fault.needles:  # trains: the last image joins the batch before it
            assert mine == [], mine
            with h5py.File(path / fault.target) as handle:
                assert handle.attrs["steps_per_epoch"] == 3  # 16 + 16 + 17, not 16 + 16 + 16 + 1
                assert handle["first_layer/steps"][()].tolist() == [0, 1, 2, 3]
                assert len(handle["train_indices"]) == 49
            return
        assert len(mine) == 1, output[-3000:]
        for needle in fault.needles:
            assert needle in mine[0], mine[0]
        assert not (path / fault.target).exists()
        assert "epoch 1/" not in log or "non-finite" in mine[0]  # refused before training

    guarantee = (
        "trains: a last batch of one image joins the batch before it (3 steps, not 4)"
        if not fault.needles
        else "the training job stops in its first seconds with one line naming the run"
        if fault.id != "weights_diverge"
        else "the training job stops with one line naming the run and the step; no run file"
    )
    return Case(fault.id, fault.kind, fault.fault, guarantee, check)


DATA_CASES = [bad_file_case(bad) for bad in BAD_FILES] + [
    train_fault_case(fault) for fault in TRAIN_FAULTS
]


def test_each_bad_file_fails_with_exactly_its_own_line(bad_files_run):
    _, result, _ = bad_files_run
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    expected = sum(1 for bad in BAD_FILES if bad.needles)
    expected += sum(1 for fault in TRAIN_FAULTS if fault.needles)
    assert len(errors) == expected, errors


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


def edit_docs(relative):
    """A comment added and the module docstring reworded; the code stays the same."""

    def change(work, repo):
        path = repo / relative
        source = path.read_text()
        assert source.startswith('"""')
        path.write_text('"""Reworded. ' + source[3:].replace("\n\n", "\n\n# a note\n", 1))

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


def rewrite_same_bytes(work, repo):
    content = (work / "toy.npz").read_bytes()
    (work / "toy.npz").unlink()
    (work / "toy.npz").write_bytes(content)


def replace_images(work, repo):
    with np.load(work / "toy.npz") as archive:
        arrays = dict(archive)
    np.savez(work / "toy.npz", **{**arrays, "x": arrays["x"][::-1].copy()})


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
        edit_docs("firstlayer/training/analysis.py"),
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
        "the .npz written again with the same bytes (a new modification time)",
        rewrite_same_bytes,
        {},
    ),
    rerun_case(
        "npz_changed_in_place",
        "the .npz replaced in place by different images",
        replace_images,
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


def same_size_same_mtime(tmp_path, request):
    """Other images of the same byte size, the modification time restored (as `cp -p`, `rsync
    -a` or a reproducible archive leave it): the checksum cache must not hide the change."""
    work, repo = copy_of(request.getfixturevalue("built"), tmp_path)
    assert job_counts(snakemake(work, "-n", repo=repo)) == {}  # the cache now knows this copy
    npz = work / "toy.npz"
    size, times = npz.stat().st_size, (npz.stat().st_atime_ns, npz.stat().st_mtime_ns)
    replace_images(work, repo)
    os.utime(npz, ns=times)
    assert npz.stat().st_size == size and npz.stat().st_mtime_ns == times[1]
    assert job_counts(snakemake(work, "-n", repo=repo)) == ALL_JOBS


RERUN_CASES.append(
    Case(
        "npz_same_size_and_mtime",
        STALE,
        "the .npz replaced by other images of the same byte size, its modification time restored",
        f"every job reruns ({sum(ALL_JOBS.values()) - 1}): the checksum cache is keyed on inode "
        f"and ctime too",
        same_size_same_mtime,
    )
)


# ------------------------------------------------------------------ 3b. resuming a killed run


def interrupted_checkpoint(work: Path, run: str, code: str) -> Path:
    """The checkpoint a training job of `run` leaves when killed after its first epoch, written
    by the library as the job writes it (`code`: the digest the job's params carry)."""
    import torch
    from conftest import Interrupted, stop_at

    from firstlayer.training.run import read_run, train

    torch.set_num_threads(1)
    spec = read_run(work / "results" / "runs" / f"{run}.h5").spec
    checkpoint = work / "checkpoints" / f"{run}.pt"
    with pytest.raises(Interrupted):
        train(
            spec,
            work / "resources" / "datasets" / "toy.h5",
            work / "unused.h5",
            checkpoint,
            "cpu",
            stop_at("epoch 2/"),
            minutes=0,
            code=code,
        )
    assert checkpoint.is_file()
    (work / "results" / "runs" / f"{run}.h5").unlink()
    return checkpoint


def assert_same_run(a: Path, b: Path) -> None:
    from firstlayer.training.run import read_run

    first, second = read_run(a), read_run(b)
    assert np.array_equal(first.weights, second.weights) and np.array_equal(
        first.steps, second.steps
    )
    for column in ("train_loss", "test_loss", "test_acc"):
        assert np.array_equal(first.metrics[column], second.metrics[column])


def resume_case(id, fault, what, change):
    """A run killed after epoch 1, then `change(work, repo)`, then the workflow again: its
    checkpoint is set aside with a log line naming `what` differs, and the run equals a fresh
    run on what it now depends on."""

    def check(tmp_path, request):
        from firstlayer.common.provenance import code_digest

        work, repo = copy_of(request.getfixturevalue("built"), tmp_path)
        fresh = tmp_path / "fresh.h5"
        shutil.copy2(work / "results" / "runs" / f"{TRUE_RUN}.h5", fresh)
        checkpoint = interrupted_checkpoint(
            work, TRUE_RUN, code_digest(ROOT / "scripts" / "train.py")
        )
        change(work, repo)
        result = snakemake(work, "--cores", "1", f"results/runs/{TRUE_RUN}.h5", repo=repo)
        assert result.returncode == 0, result.stderr[-3000:]
        log = (work / "logs" / "train" / f"{TRUE_RUN}.log").read_text()
        aside = list(checkpoint.parent.glob(f"{checkpoint.name}.stale-*"))
        assert len(aside) == 1 and not checkpoint.exists(), log
        line = f"checkpoint checkpoints/{TRUE_RUN}.pt was written for {what}; set aside as "
        assert line in log and "resuming" not in log, log
        if what.startswith("other data"):  # fresh: trained from scratch on the new data
            import torch

            from firstlayer.training.run import read_run, train

            torch.set_num_threads(1)
            spec = read_run(work / "results" / "runs" / f"{TRUE_RUN}.h5").spec
            dataset = work / "resources" / "datasets" / "toy.h5"
            train(spec, dataset, fresh, tmp_path / "fresh.pt", "cpu", lambda line: None)
        assert_same_run(work / "results" / "runs" / f"{TRUE_RUN}.h5", fresh)

    return Case(
        id,
        WRONG,
        fault,
        f"the checkpoint is set aside with a log line ({what}); the run equals a fresh one",
        check,
    )


RESUME_CASES = [
    resume_case(
        "resume_dataset_changed",
        "a training killed mid-run, then the .npz replaced by other images (resumed on the new data)",
        "other data (the dataset's images or labels changed)",
        replace_images,
    ),
    resume_case(
        "resume_code_changed",
        "a training killed mid-run, then a module of its code digest edited (resumed under the old code)",
        "another version of the training code",
        append_code("firstlayer/training/models.py", "\nEXTRA = 1\n"),
    ),
]


# ------------------------------------------------------------------ 3c. publishing


@pytest.fixture(scope="module")
def published_run(built, tmp_path_factory):
    """`snakemake publish` from a work folder that is not the repository, into a result set
    where an earlier publish (of a grid with frozen runs and two datasets) left two files."""
    work, repo = copy_of(built, tmp_path_factory.mktemp("publish"))
    config = yaml.safe_load((work / "config.yaml").read_text())
    (work / "config.yaml").write_text(yaml.safe_dump({**config, "publish": "toy"}))
    folder = work / "docs" / "results" / "toy"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("how these were made\n")
    for name in ("frozen.png", "cross_dataset.csv"):
        (folder / name).write_bytes(b"from an earlier publish")
    manifest = {
        name: {"source": "results/x", "sha256": "0"} for name in ("frozen.png", "cross_dataset.csv")
    }
    (folder / "published.json").write_text(json.dumps(manifest))
    shutil.copy2(ROOT / "README.md", repo / "README.md")
    shutil.copytree(ROOT / "docs", repo / "docs")
    pages = [repo / "README.md", *sorted(p for p in (repo / "docs").rglob("*") if p.is_file())]
    before = {p: p.read_bytes() for p in pages}
    result = snakemake(work, "--cores", "1", "publish", repo=repo)
    return work, repo, result, before


def publish_removes_stale(tmp_path, request):
    work, _, result, _ = request.getfixturevalue("published_run")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = work / "docs" / "results" / "toy"
    assert not (folder / "frozen.png").exists() and not (folder / "cross_dataset.csv").exists()
    assert (folder / "README.md").read_text() == "how these were made\n"
    manifest = json.loads((folder / "published.json").read_text())
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*manifest, "README.md", "published.json"]
    )
    assert "true_vs_random.png" in manifest
    log = (work / "logs" / "publish.log").read_text()
    for name in ("frozen.png", "cross_dataset.csv"):
        assert f"removed docs/results/toy/{name} (published before, not made by this build)" in log


def publish_stays_in_its_directory(tmp_path, request):
    work, repo, result, before = request.getfixturevalue("published_run")
    assert result.returncode == 0, result.stderr[-3000:]
    after = {p: p.read_bytes() for p in before}
    assert after == before  # the repository's README and docs are untouched
    assert not (work / "README.md").exists()
    assert (
        "no docs pages under docs: no generated blocks to regenerate"
        in (work / "logs" / "publish.log").read_text()
    )


PUBLISH_CASES = [
    Case(
        "publish_stale_files",
        STALE,
        "publish again after dropping what made two files (the earlier manifest is deleted first)",
        "the tables and figures this build no longer makes are removed, each with a log line",
        publish_removes_stale,
    ),
    Case(
        "publish_other_directory",
        WRONG,
        "`snakemake publish --directory` a work folder that is not the repository",
        "writes only inside its working directory: the repository's README and docs untouched",
        publish_stays_in_its_directory,
    ),
]


# ------------------------------------------------------------------ 4. corrupted intermediates
# Three intermediates damaged in one copy of the built work folder, their consumers run together.


def flip_a_bit(path):
    with h5py.File(path, "r") as handle:
        extents = []
        handle.visititems(
            lambda name, obj: (
                extents.append((obj.id.get_offset(), obj.id.get_storage_size()))
                if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None
                else None
            )
        )
    offset, size = max(extents, key=lambda extent: extent[1])
    with open(path, "r+b") as handle:
        handle.seek(offset + size // 2)
        byte = handle.read(1)[0]
        handle.seek(offset + size // 2)
        handle.write(bytes([byte ^ 0x10]))


def drop_an_array(path):
    with h5py.File(path, "a") as handle:
        del handle[sorted(n for n in handle if isinstance(handle[n], h5py.Dataset))[0]]


TRUE_RUN = RUN.format(labels="true", seed=0)
# (id, fault, damaged file, damage, a target that reads it, what its one line says)
DAMAGE = [
    (
        "patch_stats_bit_flip",
        "one bit flipped inside the patch statistics",
        "results/patches/toy/k3.h5",
        flip_a_bit,
        "results/figures/theory/toy/k3_formula.png",
        ("corrupted", "rule `patch_stats` rebuilds it"),
    ),
    (
        "run_missing_array",
        "an array deleted from a run file (still valid HDF5)",
        f"results/runs/{TRUE_RUN}.h5",
        drop_an_array,
        f"results/figures/theory/filters/{TRUE_RUN}.png",
        ("corrupted", "rule `train` rebuilds it"),
    ),
    (
        "features_truncated",
        "the per-image features truncated",
        "results/theory/toy/k3_images.h5",
        halve,
        "results/tables/theory/toy/k3_label_stats.csv",
        ("not a readable HDF5 file", "rule `image_features` rebuilds it"),
    ),
]


@pytest.fixture(scope="module")
def damaged_run(built, tmp_path_factory):
    work, repo = copy_of(built, tmp_path_factory.mktemp("damaged"))
    for _, _, relative, damage, _, _ in DAMAGE:
        damage(work / relative)
    targets = [target for *_, target, _ in DAMAGE]
    return work, snakemake(work, "--cores", "2", "--keep-going", *targets, repo=repo)


def damage_case(id, fault, relative, damage, target, needles) -> Case:
    def check(tmp_path, request):
        work, result = request.getfixturevalue("damaged_run")
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in output, output[-3000:]
        mine = [
            line
            for line in result.stderr.splitlines()
            if line.startswith("error:") and relative in line
        ]
        assert len(mine) == 1, output[-3000:]
        for needle in needles:
            assert needle in mine[0], mine[0]
        assert not (work / target).exists()  # the failed job leaves no output behind
        assert leftovers(work) == []

    return Case(id, WRONG, fault, "refused when read: one line naming the file and its rule", check)


CORRUPT_CASES = [damage_case(*entry) for entry in DAMAGE]


# ------------------------------------------------------------------ 5. lopsided grids


@pytest.fixture(scope="module")
def lopsided_run(built, tmp_path_factory):
    """The default target on a grid with no random-label runs: two seeds of true labels, a
    rescaled component with random labels (no unscaled random-label partner) and decile labels
    (no random-label partner)."""
    work, repo = copy_of(built, tmp_path_factory.mktemp("lopsided"))
    one = "datasets: [toy], first_widths: [8], widths: [0.0625], seeds: [0]"
    set_config(
        "experiments: {labels: {datasets: [toy], first_widths: [8], widths: [0.0625], "
        "seeds: [0, 1], labels: [true]}, "
        f"scaled: {{{one}, labels: [random], inputs: [scale2x4], settings: {{epochs: 1}}}}, "
        f"deciles: {{{one}, labels: [decile2], settings: {{epochs: 1}}}}}}"
    )(work, repo)
    return work, snakemake(work, "--cores", "2", repo=repo)


def true_labels_only(tmp_path, request):
    """Two seeds, true labels only: Table 2 has no pairs, the tables say so, nothing crashes."""
    work, result = request.getfixturevalue("lopsided_run")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / "logs" / "consistency_tables.log").read_text()
    # across first-layer widths, VGG vs ResNet, random labels vs init, true vs random labels
    assert log.count("no pairs in this grid") == 4
    import pandas as pd

    tables = pd.read_csv(work / "results" / "tables" / "training" / "tables.csv")
    assert set(tables["comparison"]) == {"across seeds", "trained vs init"}
    assert tables.set_index("comparison").loc["across seeds", "n"] == 1


def without_baseline(manipulation, run, partner):
    def check(tmp_path, request):
        import pandas as pd

        work, result = request.getfixturevalue("lopsided_run")
        assert result.returncode == 0, result.stderr[-3000:]
        log = (work / "logs" / "theory" / "manipulations.log").read_text()
        assert f"left out: {run} has no {partner}" in log, log
        summary = pd.read_csv(work / "results" / "tables" / "theory" / "manipulations_summary.csv")
        row = summary[summary["comparison"].str.startswith(manipulation)]
        assert len(row) == 1 and row["comparison"].iloc[0].endswith("(no pairs in this grid)")
        assert row["n"].iloc[0] == 0
        assert (work / "results" / "figures" / "theory" / "manipulations.png").is_file()

    return check


GRID_CASES = [
    Case(
        "true_labels_only",
        GRIDS,
        "two seeds, true labels only (no random-label runs)",
        'tables and figures built; comparisons without pairs say "no pairs in this grid"',
        true_labels_only,
    ),
    Case(
        "rescaled_without_baseline",
        GRIDS,
        "a rescaled component with no unscaled run of its labels (`manipulations` KeyError)",
        'the default target builds; the summary says "no pairs in this grid", the log what it left out',
        without_baseline(
            "scale2x4, random labels",
            "toy_vgg11_f8_w0.0625_random_scale2x4_s0_e1_n48",
            "unscaled run of the same recipe and seed",
        ),
    ),
    Case(
        "deciles_without_baseline",
        GRIDS,
        "decile labels with no random-label run (`manipulations` KeyError)",
        'the default target builds; the summary says "no pairs in this grid", the log what it left out',
        without_baseline(
            "decile2 vs random labels",
            "toy_vgg11_f8_w0.0625_decile2_s0_e1_n48",
            "random-label run of the same data, network, lr and seed",
        ),
    ),
]


# ------------------------------------------------------------------ 6. command-line tools


@pytest.fixture(scope="module")
def profile_inputs(built, tmp_path_factory):
    """A weight file and the tiny grid's patch statistics, for firstlayer-profile."""
    folder = tmp_path_factory.mktemp("cli")
    np.save(folder / "w.npy", np.random.default_rng(0).normal(size=(4, 3, 3, 3)))
    return folder, built / "results" / "patches" / "toy" / "k3.h5"


def profile_case(id, args, needle, fault):
    def check(tmp_path, request):
        folder, patches = request.getfixturevalue("profile_inputs")
        command = [sys.executable, "-m", "firstlayer.pretrained.cli", "w.npy", str(patches)]
        result = subprocess.run(
            [*command, *args], cwd=folder, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
        assert result.stderr.splitlines() == [f"firstlayer-profile: error: {needle}"]
        assert sorted(p.name for p in folder.iterdir()) == ["w.npy"]  # nothing written

    guarantee = "one line (exit 2), no warning, checked before anything is read or computed"
    return Case(id, TRACEBACK, fault, guarantee, check)


def compare_flip(tmp_path, request):
    """A rebuild whose Table 3 flipped a verdict: the compare tool lists it and exits 1."""
    committed = ROOT / "docs" / "results" / "default"
    for name, entry in json.loads((committed / "published.json").read_text()).items():
        target = tmp_path / entry["source"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(committed / name, target)
    table3 = tmp_path / "results" / "tables" / "theory" / "table3.csv"
    text = table3.read_text()
    table3.write_text(text.replace("indistinguishable", "formula better", 1))
    command = [sys.executable, "-m", "firstlayer.report.compare", str(committed)]
    result = subprocess.run(
        [*command, "--build", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "Verdicts that flipped: 1\n- table3.csv, cifar10, vgg11, random, none: verdict_r: "
        "indistinguishable -> formula better" in result.stdout
    ), result.stdout
    assert "| table3.csv | 5 | 0 | — | — | — | identical |" in result.stdout


CLI_CASES = [
    profile_case(
        "profile_out_missing_folder",
        ["--out", "missing/x.csv"],
        "--out missing/x.csv: folder missing does not exist",
        "`firstlayer-profile --out missing-dir/x.csv` (an OSError traceback after the work)",
    ),
    profile_case(
        "profile_std_zero",
        ["--input-mean", "0.5", "0.5", "0.5", "--input-std", "0", "0", "0"],
        "--input-std 0 0 0; allowed: values > 0",
        "`firstlayer-profile --input-std 0 0 0` (warnings before the one line)",
    ),
    profile_case(
        "profile_norm_lengths",
        ["--input-mean", "0.5", "0.5", "0.5", "--input-std", "0.2", "0.2"],
        "--input-mean has 3 values and --input-std 2; allowed: one value per input channel in each",
        "`firstlayer-profile` with 3 means and 2 stds (warnings before the one line)",
    ),
    Case(
        "compare_verdict_flipped",
        WRONG,
        "a rebuild (another processor) whose Table 3 flipped a verdict, compared with the published set",
        "`python -m firstlayer.report.compare` lists the flip and exits 1",
        compare_flip,
    ),
]


# The grid without Snakemake and the compare tool, called as their command lines are (in this
# process: each stops before it builds or reads anything expensive).
STANDALONE = "python -m firstlayer.training.standalone"


def standalone_case(id, kind, fault, extra, needle, config=None, code=2):
    """`python -m firstlayer.training.standalone` on the tiny workflow's folder: exit `code`
    with one line on stderr (`needle` in it), nothing built."""

    def check(tmp_path, request):
        from firstlayer.training.standalone import main

        path = grid_workdir(tmp_path / "w", config or GRID_CONFIG)
        capsys = request.getfixturevalue("capsys")
        args = [str(path / "config.yaml"), "--data", f"toy={path / 'toy.npz'}"]
        given = [argument.format(path=path) for argument in extra]  # {path}: the work folder
        assert main([*args, "--out", str(path / "out"), *given]) == code
        printed = capsys.readouterr()
        assert printed.out == "" and len(printed.err.splitlines()) == 1, printed
        prefix = f"{STANDALONE}: error: " if code == 2 else ""
        assert printed.err.startswith(prefix) and needle in printed.err, printed.err
        assert not (path / "out").exists()

    guarantee = (
        "one line (exit 2) before anything is built"
        if code == 2
        else "one line (exit 1) before anything is built: the workflow's own check"
    )
    return Case(id, kind, fault, guarantee, check)


def compare_case(id, kind, fault, damage, needle, code):
    """`python -m firstlayer.report.compare` on a copy of the default set and of the build files
    it was published from, after `damage(set folder, build folder)`."""

    def check(tmp_path, request):
        from firstlayer.report.compare import main

        committed = tmp_path / "set"
        shutil.copytree(ROOT / "docs" / "results" / "default", committed)
        for name, entry in json.loads((committed / "published.json").read_text()).items():
            target = tmp_path / "build" / entry["source"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(committed / name, target)
        build = damage(committed, tmp_path / "build")
        capsys = request.getfixturevalue("capsys")
        assert main([str(committed), "--build", str(build)]) == code
        printed = capsys.readouterr()
        if code == 2:
            assert printed.out == "" and printed.err.startswith("compare: error: "), printed
            assert len(printed.err.splitlines()) == 1 and needle in printed.err, printed.err
        else:
            assert "Traceback" not in printed.err and needle in printed.out, printed.out

    guarantee = (
        "one line (exit 2), nothing compared"
        if code == 2
        else "listed as missing with the reason (exit 1); every other table compared"
    )
    return Case(id, kind, fault, guarantee, check)


def write(relative, content):
    def damage(committed, build):
        path = (committed if relative == "published.json" else build) / relative
        path.write_bytes(content)
        return build

    return damage


CLI_CASES += [
    standalone_case(
        "standalone_time_limit_zero",
        WRONG,
        "standalone `--time-limit 0` (no limit at all; `-5` trained one run, then skipped all)",
        ["--time-limit", "0"],
        "--time-limit 0; allowed: seconds > 0",
    ),
    standalone_case(
        "standalone_archive_missing_folder",
        LATE,
        "standalone `--archive` in a missing folder (a traceback once every run had trained)",
        ["--archive", "missing/core.tar.gz"],
        "folder missing does not exist; allowed: a file in an existing folder",
    ),
    standalone_case(
        "standalone_device_missing",
        LATE,
        "standalone `--device cuda:7` on a machine without it (a traceback after the data)",
        ["--device", "cuda:7"],
        "CUDA device(s); allowed: cpu",
    ),
    standalone_case(
        "standalone_data_not_in_grid",
        WRONG,
        "standalone `--data` for a dataset the grid does not train on (ignored in silence)",
        ["--data", "cifar10={path}/toy.npz"],
        "--data cifar10=...: the grid trains on no dataset 'cifar10'; allowed: toy",
        code=1,
    ),
    standalone_case(
        "standalone_default_n_train",
        WRONG,
        "standalone config leaving `n_train` out (other runs and names than the workflow's)",
        [],
        "config error: training.n_train = 10000; the training split of toy holds 60 images",
        config=GRID_CONFIG.replace("n_train: 48, ", ""),
        code=1,
    ),
    standalone_case(
        "standalone_duplicate_key",
        WRONG,
        "standalone config writing `training` twice (the last one used in silence)",
        [],
        "config error: key 'training' appears twice",
        config=GRID_CONFIG + "training: {epochs: 3}\n",
        code=1,
    ),
    standalone_case(
        "standalone_config_not_yaml",
        TRACEBACK,
        "standalone config that is not YAML (a traceback)",
        [],
        "is not valid YAML at line 2",
        config="training: [\n",
        code=1,
    ),
    compare_case(
        "compare_manifest_not_json",
        TRACEBACK,
        "compare against a set whose published.json is not JSON (a traceback)",
        write("published.json", b"{not json"),
        "published.json cannot be read (Expecting property name",
        2,
    ),
    compare_case(
        "compare_build_missing",
        WRONG,
        "compare with `--build` a folder that does not exist (every table listed missing)",
        lambda committed, build: build.parent / "nowhere",
        "--build",
        2,
    ),
    compare_case(
        "compare_table_empty",
        TRACEBACK,
        "compare with a build table left empty (e.g. a clock grid of one learning rate)",
        write("results/tables/theory/table3.csv", b"\n"),
        "table3.csv (the build's",
        1,
    ),
]

CASES = (
    RERUN_CASES
    + RESUME_CASES
    + PUBLISH_CASES
    + CONFIG_CASES
    + DATA_CASES
    + CORRUPT_CASES
    + GRID_CASES
    + CLI_CASES
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, tmp_path, request):
    case.check(tmp_path, request)


def test_figures_without_data_say_so_and_are_left_out_of_all(tmp_path, capsys):
    """Frozen-only and true-only grids: the default target leaves out the figures they cannot
    support; asked for by name, such a figure and its log say "nothing to plot"."""
    import pandas as pd

    from firstlayer.common.config import validate_config
    from firstlayer.report import plots
    from firstlayer.training.analysis import NO_PAIRS, consistency_tables, format_table

    def plan(block):
        from firstlayer.common.targets import Plan

        config = yaml.safe_load(merged(f"experiments: {{labels: {block}}}"))
        (tmp_path / "toy.npz").touch()
        config["datasets"]["toy"]["path"] = str(tmp_path / "toy.npz")
        return Plan(validate_config(config, ROOT / "config" / "schema.yaml"))

    frozen = plan("{datasets: [toy], frozen: [true], labels: [true, random]}")
    assert frozen.supported_training_figures() == ["tables", "heatmap"]
    lopsided = plan("{datasets: [toy], archs: [vgg11, vgg13], labels: [true]}")
    assert lopsided.supported_training_figures() == ["tables", "heatmap", "consistency"]
    empty = pd.DataFrame(columns=["run", "dataset", "labels", "component", "energy_normalised"])
    out = [tmp_path / "f.pdf", tmp_path / "f.png"]
    plots.true_vs_random(empty, *out)
    plots.consistency(empty, empty, *out)
    plots.frozen_curves(pd.DataFrame(columns=["frozen", "step", "arch"]), *out)
    assert capsys.readouterr().out.count("nothing to plot") == 3
    assert out[1].read_bytes().startswith(b"\x89PNG")
    rows = [
        {"run": f"r{seed}", "step": step, "component": c, "energy": 0.0, "energy_raw": 1.0 / c}
        | {"dataset": "toy", "arch": "vgg11", "first_width": 8, "width": 1.0, "seed": seed}
        | {"labels": "true", "inputs": "none", "frozen": True, "epochs": 1, "lr": 0.01}
        for seed in (0, 1)
        for step in (0, 3)
        for c in (1, 2, 3)
    ]
    table = format_table(consistency_tables(pd.DataFrame(rows)))  # frozen runs only
    assert (table["correlation"] == NO_PAIRS).all() and len(table) == 6


def test_cases_are_distinct_and_cover_every_class():
    assert len(CASES) >= 40 and len({case.id for case in CASES}) == len(CASES)
    assert {case.kind for case in CASES} == {STALE, WRONG, GRIDS, TRACEBACK, LATE}


def test_guarantees_table_in_the_docs_is_generated_from_the_cases():
    text = (ROOT / "docs" / "reliability.md").read_text()
    begin, end = markers("guarantees")
    assert begin in text and end in text
    assert replace_block(text, guarantees_block(CASES), "guarantees") == text


if __name__ == "__main__":  # `python tests/test_bad_inputs.py` rewrites the docs' table
    docs = ROOT / "docs" / "reliability.md"
    docs.write_text(replace_block(docs.read_text(), guarantees_block(CASES), "guarantees"))
    print(f"{docs}: {len(CASES)} cases")
