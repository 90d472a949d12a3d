"""The rehearsal (`--config rehearsal=true`): every shipped grid plans at toy size with the same
rules and blocks as itself; synthetic torchvision copies are read through the real source path
and its checksum check (and refused without their checksums); CelebA in torchvision's layout;
the check after a rehearsal finds what is missing. The rehearsal of config/paper.yaml itself
runs as its own CI step (.ci/run), not here."""

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import GRID_CONFIG, ROOT, SNAKEMAKE

from firstlayer.common import rehearsal
from firstlayer.common.config import ConfigError, validate_config
from firstlayer.common.targets import Plan
from firstlayer.datasets.sources import DatasetError, build_dataset, load_torchvision
from firstlayer.datasets.synthetic import write_synthetic
from firstlayer.report import rehearsal as rehearsal_check
from firstlayer.report.rehearsal import check_rehearsal, table_problems

SCHEMA = ROOT / "config" / "schema.yaml"
SHIPPED = sorted(p.name for p in (ROOT / "config").glob("*.yaml") if p.name != "schema.yaml")


def shipped(name):
    return validate_config(yaml.safe_load((ROOT / "config" / name).read_text()), SCHEMA)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_grid_rehearses_with_its_own_rules_and_blocks(name):
    config = shipped(name)
    small = rehearsal.rehearsal_config(config)
    real, staged = Plan(config), Plan(small)
    differences = rehearsal.signature_differences(
        rehearsal.plan_signature(real), rehearsal.plan_signature(staged)
    )
    assert differences == []
    assert set(staged.grid) and len(staged.grid) <= len(real.grid)
    for spec in staged.specs:
        assert spec.epochs <= 4 and spec.width <= 1 / 16 and (spec.n_train or 0) <= 1000
        assert spec.seed in (0, 1, 2) and spec.n_test <= 200
    # every block keeps its first two seeds
    for block, settings in config["experiments"].items():
        assert small["experiments"][block]["seeds"] == settings["seeds"][:2]


def test_a_rehearsal_that_drops_a_block_or_a_figure_differs_from_its_grid():
    config = shipped("paper.yaml")
    real = rehearsal.plan_signature(Plan(config))
    small = rehearsal.rehearsal_config(config)
    del small["experiments"]["frozen"]
    lines = rehearsal.signature_differences(real, rehearsal.plan_signature(Plan(small)))
    assert "the grid builds results/figures/training/frozen.png, the rehearsal does not" in lines
    assert any(line.startswith("experiments.frozen: the grid has {") for line in lines)


def test_recipes_stay_distinct_and_user_files_become_absolute(tmp_path):
    config = shipped("regime.yaml")  # epochs 15, 49 and 147: three recipes
    small = rehearsal.rehearsal_config(config)
    assert small["training"]["epochs"] == 1
    epochs = {b["settings"]["epochs"] for b in small["experiments"].values() if "settings" in b}
    assert epochs == {2, 3}
    (tmp_path / "mine.npz").write_bytes(b"")
    config = validate_config(
        {"datasets": {"mine": {"source": "npz", "path": str(tmp_path / "mine.npz")}}}, SCHEMA
    )
    config["datasets"]["mine"]["path"] = "mine.npz"  # as written, relative to the run folder
    small = rehearsal.rehearsal_config(config, base=tmp_path)
    assert small["datasets"]["mine"]["path"] == str(tmp_path / "mine.npz")


def test_the_tables_a_grid_feeds_are_those_the_analysis_writes(local_grid_run):
    """`expected_tables`, counted from the run specs alone, names every row and n of Tables 1-3
    that the workflow's analysis wrote for the shared tiny grid."""
    config = yaml.safe_load(GRID_CONFIG)
    config["datasets"]["toy"]["path"] = str(local_grid_run / "toy.npz")
    expected = rehearsal_check.expected_tables(Plan(validate_config(config, SCHEMA)))
    tables = pd.read_csv(local_grid_run / "results/tables/training/tables.csv")
    table3 = pd.read_csv(local_grid_run / "results/tables/theory/table3.csv", dtype={"labels": str})
    assert table_problems(tables, expected["tables"], "Tables 1-2", "mean") == []
    assert table_problems(table3, expected["table3"], "Table 3", "formula_mean") == []
    assert len(tables) == len(expected["tables"]) and len(table3) == len(expected["table3"])
    wrong = [{**expected["tables"][0], "n": expected["tables"][0]["n"] + 1}]
    assert table_problems(tables, wrong, "Tables 1-2", "mean")[0].endswith(
        f"has n = {wrong[0]['n'] - 1}, the grid gives {wrong[0]['n']}"
    )


def _fake_profiles(plan, seed=0):
    """Profiles as `training.analysis.run_profiles` writes them for every run of `plan`: random
    positive energies at step 0 and step 1, as many components as the run's first layer has."""
    from firstlayer.common.architectures import first_layer
    from firstlayer.training.analysis import LATER_COLUMNS, SPEC_COLUMNS, with_later_defaults

    rng = np.random.default_rng(seed)
    frames = []
    for name, entry in plan.grid.items():
        spec = entry["spec"].as_dict()
        d = 3 * first_layer(spec["arch"]).k ** 2
        for step in (0, 1):
            frame = pd.DataFrame({"component": np.arange(1, d + 1), "step": step, "epoch": step})
            frame["energy"], frame["energy_raw"] = rng.random(d) + 0.1, rng.random(d) + 0.1
            for column in SPEC_COLUMNS + [c for c in LATER_COLUMNS if c in spec]:
                frame[column] = spec[column]
            frame.insert(0, "run", name)
            frames.append(frame)
    return with_later_defaults(pd.concat(frames, ignore_index=True))


def test_beyond_grids_rows_are_split_by_optimizer_augmentation_and_first_layer(tmp_path):
    """config/beyond.yaml trains VGG11 (3x3) under sgd/adamw x none/crop_flip and a ViT and a
    patchify stem (4x4 stride 4) under sgd/adamw: `expected_tables` names one row per comparison
    and (optimizer, augment, first layer), Table 3 rows per recipe and random inits per kernel
    size, exactly the rows and n that the analyses' own code writes from such runs' profiles."""
    from types import SimpleNamespace

    from firstlayer.theory import fits
    from firstlayer.training.analysis import consistency_tables

    plan = Plan(rehearsal.rehearsal_config(shipped("beyond.yaml")))
    expected = rehearsal_check.expected_tables(plan)
    split = {(r["optimizer"], r["augment"], r["first_layer"]) for r in expected["tables"]}
    assert split == {(o, a, "3x3 stride 1") for o in ("sgd", "adamw") for a in ("none", "crop_flip")} | {
        (o, "none", "4x4 stride 4") for o in ("sgd", "adamw")}  # fmt: skip
    seeds = [r for r in expected["tables"] if r["comparison"] == "across seeds"]
    assert {r["first_layer"]: r["n"] for r in seeds} == {"3x3 stride 1": 1, "4x4 stride 4": 2}
    learned = [r for r in expected["table3"] if not r["network"].startswith("random init")]
    assert {(r["network"], r["optimizer"], r["augment"]) for r in learned} == {
        ("vgg11", o, a) for o in ("sgd", "adamw") for a in ("none", "crop_flip")
    } | {(net, o, "none") for net in ("vit3", "patchcnn") for o in ("sgd", "adamw")}
    assert [r for r in expected["table3"] if r not in learned] == [
        {"dataset": "cifar10", "network": "random init, 3x3", "n": 16},
        {"dataset": "cifar10", "network": "random init, 4x4", "n": 16},
    ]
    profiles = _fake_profiles(plan)
    tables = consistency_tables(profiles)
    tables.to_csv(tmp_path / "tables.csv", index=False)
    tables = pd.read_csv(tmp_path / "tables.csv")
    assert table_problems(tables, expected["tables"], "Tables 1-2", "mean") == []
    assert len(tables) == len(expected["tables"])
    assert fits.recipe(profiles) == [*rehearsal_check.RECIPE, "optimizer", "augment"]
    stats = {
        ("cifar10", k): SimpleNamespace(lambdas=np.geomspace(1, 1e-3, 3 * k * k)) for k in (3, 4)
    }
    table3 = fits.table3(fits.fit_profiles(profiles, stats))
    table3.to_csv(tmp_path / "table3.csv", index=False)
    table3 = pd.read_csv(tmp_path / "table3.csv", dtype={"labels": str, "inputs": str})
    assert table_problems(table3, expected["table3"], "Table 3", "formula_mean") == []
    assert len(table3) == len(expected["table3"])


def _expected_before_geometry(plan):
    """`expected_tables` as it was before the optimizer, augmentation and first-layer axes: one
    row of Tables 1-2 per (comparison, dataset), Table 3 rows without those axes."""
    import itertools

    from firstlayer.common.settings import learned_unmanipulated

    specs, rows = plan.specs, []
    for dataset in sorted({spec.dataset for spec in specs}):
        learned = [s for s in specs if s.dataset == dataset and learned_unmanipulated(s)]
        true = [s for s in learned if s.labels == "true"]
        random = [s for s in learned if s.labels == "random"]

        def same(a, b, fields):
            return all(getattr(a, f) == getattr(b, f) for f in fields)

        counts = {
            name: sum(
                1
                for a, b in itertools.combinations(true, 2)
                if same(a, b, equal) and not any(getattr(a, f) == getattr(b, f) for f in differ)
            )
            for name, (equal, differ) in rehearsal_check.PAIRS.items()
        }
        counts["trained vs init"] = len(true)
        counts["VGG vs ResNet"] = sum(
            1
            for a, b in itertools.product(true, true)
            if a.arch.startswith("vgg") and b.arch.startswith("resnet") and a.lr == b.lr
        )
        counts["random labels vs init"] = len(random)
        counts["true vs random labels"] = sum(
            1
            for a, b in itertools.product(true, random)
            if same(a, b, ["arch", "first_width", "width", "inputs", "lr"])
        )
        rows += [{"comparison": c, "dataset": dataset, "n": n} for c, n in counts.items() if n]
    groups = {}
    for spec in specs:
        if not spec.frozen:
            key = (spec.dataset, spec.arch, spec.labels, spec.inputs, spec.lr, spec.epochs)
            groups[key] = groups.get(key, 0) + 1
    table3 = [
        dict(zip(("dataset", "network", "labels", "inputs", "lr", "epochs", "n"), (*key, n)))
        for key, n in sorted(groups.items())
    ]
    for dataset in sorted({spec.dataset for spec in specs}):
        n = sum(spec.dataset == dataset for spec in specs)
        table3.append({"dataset": dataset, "network": "random init", "n": n})
    return {"tables": rows, "table3": table3}


@pytest.mark.parametrize("name", ["paper.yaml", "paper-core.yaml", "extended.yaml"])
def test_grids_of_one_recipe_and_geometry_expect_the_rows_they_did(name):
    """Grids with one optimizer, augmentation and first-layer geometry (the paper's) expect
    exactly the rows and n they did before those axes, their rehearsal and their real grid."""
    config = shipped(name)
    for plan in (Plan(config), Plan(rehearsal.rehearsal_config(config))):
        before, now = _expected_before_geometry(plan), rehearsal_check.expected_tables(plan)
        for table in ("tables", "table3"):
            key = lambda row: sorted(map(str, row.items()))  # noqa: E731
            assert sorted(now[table], key=key) == sorted(before[table], key=key)


def test_the_check_names_a_missing_figure_and_a_row_without_a_value(tmp_path):
    figure, table = tmp_path / "a.png", tmp_path / "tables.csv"
    figure.write_bytes(b"\x89PNG....")
    table.write_text("table,comparison,dataset,mean,n\nTable 1,across seeds,c,,1\n")
    table3 = tmp_path / "table3.csv"
    table3.write_text("dataset,network,labels,inputs,n,formula_mean\nc,vgg11,true,none,2,0.9\n")
    expected = {
        "tables": [{"comparison": "across seeds", "dataset": "c", "n": 1}],
        "table3": [{"dataset": "c", "network": "vgg11", "labels": "true", "n": 2}],
    }
    signature = {"files": [], "published": [], "training_figures": [], "blocks": {}}
    problems, _ = check_rehearsal(
        [figure, tmp_path / "b.pdf"], expected, signature, signature, table, table3
    )
    assert problems == [f"{tmp_path / 'b.pdf'} is missing or empty"]
    problems, _ = check_rehearsal([figure], expected, signature, signature, table, table3)
    assert problems == [
        "Tables 1-2: comparison=across seeds, dataset=c has mean nan (not a finite value)"
    ]


# ------------------------------------------------------------------ synthetic torchvision copies


@pytest.mark.parametrize("name", ["CIFAR10", "CIFAR100", "MNIST", "SVHN"])
def test_a_synthetic_copy_reads_through_torchvisions_own_checks(tmp_path, name):
    checksums = write_synthetic(name, tmp_path / "copy", train=200, test=100)
    out = tmp_path / "data.h5"
    build_dataset(
        "d",
        {"source": "torchvision", "name": name},
        out,
        tmp_path / "dl",
        synthetic=tmp_path / "copy",
    )
    splits = load_torchvision(name, tmp_path / "again", str(tmp_path / "copy"), checksums=checksums)
    assert len(splits.images["train"]) == 200 and len(splits.images["test"]) == 100
    classes = 100 if name == "CIFAR100" else 10
    assert np.bincount(splits.labels["train"]).tolist() == [200 // classes] * classes
    assert out.is_file()


def test_a_normal_config_refuses_a_synthetic_archive(tmp_path):
    write_synthetic("CIFAR10", tmp_path / "copy", train=50, test=10)
    with pytest.raises(
        DatasetError,
        match=r"is corrupt or not the CIFAR10 file: its md5 differs from c58f30108f718f92721af3b95e74349a \(the checksum torchvision expects\)",
    ):
        build_dataset(
            "cifar10",
            {
                "source": "torchvision",
                "name": "CIFAR10",
                "archive": str(tmp_path / "copy" / "cifar-10-python.tar.gz"),
            },
            tmp_path / "out.h5",
            tmp_path / "dl",
        )
    assert not (tmp_path / "out.h5").exists()


def test_celeba_in_torchvisions_layout_with_one_attribute_as_the_label(tmp_path):
    checksums = write_synthetic("CelebA", tmp_path / "copy", train=120, test=40)
    assert set(checksums) == {"img_align_celeba.zip", "list_attr_celeba.txt", "identity_CelebA.txt",
                              "list_bbox_celeba.txt", "list_landmarks_align_celeba.txt", "list_eval_partition.txt"}  # fmt: skip
    splits = load_torchvision(
        "CelebA", tmp_path / "dl", str(tmp_path / "copy"), checksums=checksums
    )
    assert splits.images["train"].shape == (110, 32, 32, 3)  # 10 of 120 are the valid partition
    assert splits.images["test"].shape == (40, 32, 32, 3)
    assert splits.class_names == ["not Smiling", "Smiling"]
    # the synthetic Smiling (attribute 31) is present on images whose index + 31 is even
    assert splits.labels["train"].tolist() == [(i + 31 + 1) % 2 for i in range(110)]
    male = load_torchvision("CelebA", tmp_path / "dl", str(tmp_path / "copy"), checksums=checksums,
                            attribute="Male", resize=(16, 24))  # fmt: skip
    assert male.images["test"].shape == (40, 16, 24, 3)
    assert male.labels["train"].tolist() == [(i + 20 + 1) % 2 for i in range(110)]
    # the central square of a 218 x 178 face, resized
    from PIL import Image

    face = Image.open(tmp_path / "dl" / "celeba" / "img_align_celeba" / "000001.jpg").convert("RGB")
    expected = np.asarray(face.crop((0, 20, 178, 198)).resize((32, 32), Image.BILINEAR))
    assert np.array_equal(splits.images["train"][0], expected)


def test_celeba_options_are_checked_before_any_job():
    base = {"datasets": {"c": {"source": "torchvision", "name": "CelebA", "attribute": "Smiles"}}}
    with pytest.raises(
        ConfigError,
        match="^config error: datasets.c.attribute = 'Smiles'; allowed: 5_o_Clock_Shadow, ",
    ):
        validate_config(base, SCHEMA)
    cifar = {"datasets": {"c": {"source": "torchvision", "name": "CIFAR10", "resize": [16, 16]}}}
    with pytest.raises(ConfigError) as error:
        validate_config(cifar, SCHEMA)
    assert str(error.value) == (
        "config error: datasets.c.resize = [16, 16]; it applies only to name CelebA (this dataset is CIFAR10)"
    )


def test_the_rehearsal_refuses_a_directory_that_would_hold_a_real_grid(tmp_path):
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(ROOT / "config" / "config.yaml"),
         "--config", "rehearsal=true", "-n", "--cores", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"config error: rehearsal = True works in rehearsal/ below the working directory, apart "
        f"from a real grid's files, and --directory {tmp_path} would replace that; allowed: run "
        f"it from the folder it belongs under, without --directory"
    )
    assert not (Path(tmp_path) / "rehearsal").exists()


def test_the_paper_grids_binary_tasks_take_their_classes_from_the_synthetic_cifar10(tmp_path):
    """Subsets name classes: a synthetic copy carries the real class names (the rehearsal of
    config/paper.yaml once stopped at its car/truck, dog/frog, ... subsets without them)."""
    from firstlayer.datasets.sources import DatasetFile

    write_synthetic("CIFAR10", tmp_path / "copy", train=100, test=20)
    parent = tmp_path / "cifar10.h5"
    build_dataset("cifar10", {"source": "torchvision", "name": "CIFAR10"}, parent, tmp_path / "dl",
                  synthetic=tmp_path / "copy")  # fmt: skip
    config = shipped("paper.yaml")
    subsets = {k: v for k, v in config["datasets"].items() if v["source"] == "subset"}
    assert len(subsets) == 5
    for key, spec in subsets.items():
        build_dataset(key, spec, tmp_path / f"{key}.h5", tmp_path / "dl", parent_path=parent)
        with DatasetFile(tmp_path / f"{key}.h5") as data:
            assert data.class_names == spec["classes"] and data.count("train") == 20


@pytest.mark.parametrize("name", SHIPPED)
def test_no_rehearsal_run_asks_for_more_images_than_its_synthetic_copy_holds(tmp_path, name):
    """A subset of a synthetic copy holds its classes' share of the copy (a binary CIFAR-10 task:
    240 images), so the rehearsal caps those runs' n_train there; every run's n_train is at most
    what its dataset's copy holds, as the training job's preflight demands. The share is checked
    against a real synthetic copy."""
    config = rehearsal.rehearsal_config(shipped(name))
    plan = Plan(config)
    for spec in plan.specs:
        held = rehearsal._synthetic_train(config["datasets"], spec.dataset)
        if held is not None:
            assert spec.n_train is None or spec.n_train <= held, (spec.dataset, spec.n_train)
    if name == "paper.yaml":
        write_synthetic("CIFAR10", tmp_path / "copy")
        parent = tmp_path / "cifar10.h5"
        build_dataset("cifar10", {"source": "torchvision", "name": "CIFAR10"}, parent,
                      tmp_path / "dl", synthetic=tmp_path / "copy")  # fmt: skip
        spec = config["datasets"]["cifar10-car-truck"]
        build_dataset("pair", spec, tmp_path / "pair.h5", tmp_path / "dl", parent_path=parent)
        from firstlayer.datasets.sources import DatasetFile

        with DatasetFile(tmp_path / "pair.h5") as data:
            assert data.count("train") == rehearsal._synthetic_train(
                config["datasets"], "cifar10-car-truck"
            )
