"""The grid without Snakemake (firstlayer.training.standalone), at toy size on the CPU: the
workflow's own run names and files, tables after every run, the time limit, the archive, and
the workflow taking the runs as its own."""

import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, smooth_images

from firstlayer.common.config import validate_config
from firstlayer.common.targets import Plan
from firstlayer.errors import InputError
from firstlayer.training.run import read_run
from firstlayer.training.standalone import archive, main, plan, run_grid

CONFIG = """
publish: toycore
datasets:
  toy: {source: npz, path: toy.npz, test_images: xt, test_labels: yt}
patches: {datasets: [toy], k: [3], n_images: 40, chunk_images: 16}
pretrained: {dataset: toy, models: {}}
theory: {linear_cnn: {runs: 4, steps: [10], synthetic_images: 40, tiles: 3}, whitening: {k: 3, images: 10, random_banks: 2, max_distance: 4}, clock: {seeds: 2, runs: 8, x: [0.6, 3, 12]}}
training: {epochs: 2, n_train: 48, n_test: 9, batch_size: 16, lr: 0.05, record_lr_steps: [0.1, 0.2]}
experiments:
  labels_true: {datasets: [toy], first_widths: [8], widths: [0.0625], seeds: [0, 1]}
  labels_random: {datasets: [toy], first_widths: [8], widths: [0.0625], labels: [random], settings: {epochs: 3}}
"""


def workdir(path):
    path.mkdir(parents=True, exist_ok=True)
    images = smooth_images(60, 16, 16, 3)
    np.savez(path / "toy.npz", x=images, y=np.arange(60) % 3, xt=images[:10], yt=np.arange(10) % 3)
    (path / "config.yaml").write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The toy grid trained once without Snakemake: (work folder, output folder, log lines)."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("standalone")
    work = workdir(root / "work")
    lines = []
    summary = run_grid(
        work / "config.yaml", {"toy": str(work / "toy.npz")}, root / "out", "cpu", log=lines.append
    )
    return work, root / "out", summary, lines


def test_standalone_grid_matches_the_workflow_and_resumes(trained, tmp_path, monkeypatch):
    work, out, summary, lines = trained
    monkeypatch.chdir(work)  # the config names its npz relative to the folder it runs in
    config = yaml.safe_load(CONFIG)
    names = list(plan(config))
    validate_config(config, ROOT / "config" / "schema.yaml")
    assert names == list(Plan(config).grid)  # the workflow's names, in grid order
    assert summary["done"] == names and summary["skipped"] == []
    for name in names:
        run = read_run(out / "results" / "runs" / f"{name}.h5")
        assert run.spec == plan(config)[name] and run.normalised_clock is not None
    tables = out / "results" / "tables" / "training"
    assert pd.read_csv(tables / "profiles.csv")["run"].nunique() == 3
    across = pd.read_csv(tables / "tables.csv").set_index("comparison")
    assert across.loc["true vs random labels", "n"] == 2
    # a second call finds every run done and trains nothing
    again = run_grid(work / "config.yaml", {"toy": str(work / "toy.npz")}, out, "cpu", print)
    assert again["done"] == names and not any(line.startswith("training") for line in lines[-3:])
    packed = archive(out, tmp_path / "core.tar.gz")
    with tarfile.open(packed) as tar:
        members = set(tar.getnames())
    assert {f"results/runs/{name}.h5" for name in names} <= members
    assert "results/tables/training/tables.csv" in members and "standalone.json" in members


def test_runs_of_several_first_layers_are_profiled_on_their_own_patches(tmp_path):
    """A ViT's 4x4 patch embedding beside VGG11's 3x3 first layer: patch statistics of both
    sizes are built and each run is profiled on its own (a grid with a 4x4 run once stopped
    after training it, having statistics of 3x3 patches only)."""
    import torch

    from firstlayer.training.standalone import read_config, validated

    torch.set_num_threads(1)
    work = workdir(tmp_path / "work")
    config = yaml.safe_load(CONFIG)
    config["training"] = {"epochs": 1, "n_train": 48, "n_test": 9, "batch_size": 16, "lr": 0.05}
    block = {"datasets": ["toy"], "first_widths": [8], "widths": [0.0625]}
    config["experiments"] = {"cnn": block, "vit": {**block, "archs": ["vit1"]}}
    (work / "mixed.yaml").write_text(yaml.safe_dump(config))
    data, out = {"toy": str(work / "toy.npz")}, tmp_path / "out"
    assert validated(read_config(work / "mixed.yaml"), data, out)["patches"]["k"] == [3, 4]
    summary = run_grid(work / "mixed.yaml", data, out, "cpu", log=lambda line: None)
    assert len(summary["done"]) == 2 and summary["skipped"] == []
    patches = out / "results" / "patches" / "toy"
    assert sorted(p.name for p in patches.glob("*.h5")) == ["k3.h5", "k4.h5"]
    profiles = pd.read_csv(out / "results" / "tables" / "training" / "profiles.csv")
    components = profiles.groupby("arch")["component"].max().to_dict()
    assert components == {"vgg11": 27, "vit1": 48}  # 3x3x3 and 4x4x3 patches
    tables = pd.read_csv(out / "results" / "tables" / "training" / "tables.csv")
    assert sorted(tables["first_layer"]) == ["3x3 stride 1", "4x4 stride 4"]


def test_time_limit_skips_runs_that_would_pass_it(tmp_path, monkeypatch, capsys):
    work = workdir(tmp_path / "work")
    monkeypatch.chdir(work)
    code = main(
        ["config.yaml", "--data", "toy=toy.npz", "--out", str(tmp_path / "out"), "--device", "cpu",
         "--time-limit", "0.001"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    # the first run has no throughput to judge by and trains; the others would pass the limit
    assert "1 runs done, 2 skipped" in printed and printed.count("skipping") == 2
    assert main(["config.yaml", "--out", str(tmp_path / "o2")]) == 1
    assert (
        capsys.readouterr().err
        == "error: dataset 'toy' of the grid has no --data toy=PATH; given: none\n"
    )


def test_the_workflow_takes_the_runs_as_its_own(trained):
    """Run files made without Snakemake, put in a workflow folder and touched, are not
    trained again: the dry run plans the analyses and no `train` job."""
    work, out, _, _ = trained
    snakemake = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    common = ["--directory", str(work), "--configfile", "config.yaml", "--cores", "1"]
    subprocess.run([*snakemake, *common, "resources/datasets/toy.h5"], check=True, cwd=work)
    shutil.copytree(out / "results" / "runs", work / "results" / "runs")
    runs = sorted(str(p.relative_to(work)) for p in (work / "results" / "runs").glob("*.h5"))
    assert len(runs) == 3
    subprocess.run([*snakemake, *common, "--touch", *runs], check=True, cwd=work)
    plan_text = subprocess.run(
        [*snakemake, *common, "-n"], check=True, cwd=work, capture_output=True, text=True
    ).stdout
    jobs = {
        line.split()[0]
        for line in plan_text.split("Job stats:")[1].splitlines()[3:]
        if line.strip()
    }
    assert "train" not in jobs and {"training_profiles", "formula_fits", "clock"} <= jobs


def copied(trained, tmp_path):
    """A copy of the trained output folder and the work folder's data."""
    work, out, _, _ = trained
    shutil.copytree(out, tmp_path / "out")
    return work, tmp_path / "out"


def test_an_out_holding_another_configs_run_or_data_is_refused(trained, tmp_path):
    """Names alike, contents not: a run of another config under this grid's name, or a dataset
    built from other data, would count as done; each is refused in one line before any work."""
    work, out = copied(trained, tmp_path)
    plain = tmp_path / "plain.yaml"  # no record_lr_steps: names without a hash
    plain.write_text(CONFIG.replace(", record_lr_steps: [0.1, 0.2]", ""))
    runs = out / "results" / "runs"
    name = next(n for n in plan(yaml.safe_load(CONFIG)) if "_true_s0_" in n)
    shutil.copy2(runs / f"{name}.h5", runs / f"{name.rsplit('_', 1)[0]}.h5")  # another config's
    lines = []
    with pytest.raises(InputError) as info:
        run_grid(plain, {"toy": str(work / "toy.npz")}, out, "cpu", log=lines.append)
    assert str(info.value) == (
        f"--out {out} holds run {name.rsplit('_', 1)[0]} trained with another spec "
        f"(record_lr_steps (0.1, 0.2) there, () in this config); allowed: another --out, or that "
        f"run file moved away"
    )
    with np.load(work / "toy.npz") as archive:
        arrays = dict(archive)
    np.savez(tmp_path / "other.npz", **{**arrays, "x": arrays["x"][::-1].copy()})
    with pytest.raises(InputError, match="holds dataset toy built from other data than --data"):
        run_grid(work / "config.yaml", {"toy": str(tmp_path / "other.npz")}, out, "cpu", print)
    assert lines == [] and not list(runs.glob("*.tmp*"))  # nothing built, nothing trained


def test_tables_missing_after_the_last_run_are_written(trained, tmp_path):
    """A call cut off after its last run, before its tables: the next call, with every run
    done, writes them (each written under a temporary name, then renamed). Its dataset, built
    by the first call, needs no --data."""
    work, out = copied(trained, tmp_path)
    tables = out / "results" / "tables" / "training"
    expected = {p.name: pd.read_csv(p) for p in tables.glob("*.csv")}
    for path in tables.glob("*.csv"):
        path.unlink()
    summary = run_grid(work / "config.yaml", {}, out, "cpu", print)
    assert summary["done"] == list(plan(yaml.safe_load(CONFIG)))
    assert sorted(p.name for p in tables.iterdir()) == sorted(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(pd.read_csv(tables / name), frame)


def test_a_config_that_cannot_be_read_or_trains_nothing_is_one_line(tmp_path):
    """A missing config, a YAML list, no experiments, a block on an unconfigured dataset."""
    from firstlayer.training.standalone import read_config, validated

    with pytest.raises(InputError, match=r"config .*missing.yaml cannot be read \(FileNotFound"):
        read_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(InputError, match="holds a list, not a mapping of config keys"):
        read_config(tmp_path / "list.yaml")
    with pytest.raises(InputError, match="the config trains no run"):
        validated({"datasets": {}}, {}, tmp_path)
    config = {"datasets": {}, "experiments": {"a": {"datasets": ["cifar10"]}}}
    with pytest.raises(InputError, match="train on dataset 'cifar10', which the config's datasets"):
        validated(config, {}, tmp_path)
