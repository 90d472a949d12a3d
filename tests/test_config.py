"""Configuration mistakes: one line naming the key, the value and what is allowed; no job runs."""

import copy
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from firstlayer.common.config import ConfigError, validate_config

SCHEMA = ROOT / "config" / "schema.yaml"


@pytest.fixture
def config(tmp_path):
    data = tmp_path / "toy.npz"
    data.write_bytes(b"placeholder: only its existence is checked here")
    return {
        "datasets": {"toy": {"source": "npz", "path": str(data)}},
        "patches": {"datasets": ["toy"]},
        "pretrained": {"dataset": "toy"},
    }


def check(config, **changes):
    config = copy.deepcopy(config)
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    message = str(info.value)
    assert "\n" not in message and message.startswith("config error: ")
    return message


def test_defaults_are_filled(config):
    validate_config(config, SCHEMA)
    assert config["patches"]["k"] == [3, 7] and config["patches"]["n_images"] == 10000
    assert "vgg11" in config["pretrained"]["models"]["k3"]
    assert config["datasets"]["toy"]["images"] == "x"


def test_the_shipped_config_is_valid():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate_config(config, SCHEMA)
    assert config["datasets"]["cifar10"]["name"] == "CIFAR10"


def test_yaml_true_is_the_label_setting_true(config):
    config["experiments"] = yaml.safe_load("a: {datasets: [toy], labels: [true, random]}")
    validate_config(config, SCHEMA)
    assert config["experiments"]["a"]["labels"] == ["true", "random"]
    assert config["experiments"]["a"]["archs"] == ["vgg11"]  # axis defaults filled


def test_string_overrides_are_coerced(config):
    """`--config 'patches={k: [5]}'` gives strings; they must act like YAML numbers."""
    config["patches"].update({"k": ["5"], "n_images": "null", "seed": "3"})
    validate_config(config, SCHEMA)
    assert config["patches"]["k"] == [5] and config["patches"]["n_images"] is None


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"patches__k": [0]}, "patches.k[0] = 0; must be >= 1"),
        ({"patches__k": []}, "patches.k = []; must have at least 1 entries"),
        ({"patches__k": "three"}, "patches.k = 'three'; expected array"),
        ({"patches__split": "val"}, "patches.split = 'val'; allowed: train, test"),
        ({"patches__n_images": -5}, "patches.n_images = -5; must be >= 1"),
        ({"patches__chunk_images": 0}, "patches.chunk_images = 0; must be >= 1"),
        (
            {"patches__normalization": "imagenet"},
            "patches.normalization = 'imagenet'; allowed: dataset, unit",
        ),
        ({"patches__strategy": "fast"}, "patches.strategy = 'fast'; allowed: auto, band, unfold"),
        (
            {"patches__colour": 1},
            "unknown key 'colour' in patches; allowed keys: chunk_images, datasets",
        ),
        (
            {"patchez": {}},
            "unknown key 'patchez' in (top level); allowed keys: datasets, experiments, patches, pretrained, publish, rehearsal, theory, training",
        ),
        (
            {"patches__datasets": ["cifar"]},
            "patches.datasets[0] = 'cifar'; allowed: a key of datasets (toy)",
        ),
        (
            {"pretrained__dataset": "imagenet"},
            "pretrained.dataset = 'imagenet'; allowed: a key of datasets",
        ),
        (
            {"pretrained__input_space": "pixels"},
            "pretrained.input_space = 'pixels'; allowed: model, raw",
        ),
        (
            {"pretrained__models": {"k3": ["vgg99"]}},
            "pretrained.models.k3[0] = 'vgg99'; allowed: a torchvision model name",
        ),
        (
            {"pretrained__models": {"three": []}},
            "pretrained.models has key 'three'; keys must match",
        ),
        ({"pretrained__models": {"k3": ["vgg11"], "k7": ["vgg11"]}}, "'vgg11' is listed twice"),
        (
            {"pretrained__weight_files": {"m": {"path": "/no/such/file.npy"}}},
            "pretrained.weight_files.m.path = '/no/such/file.npy'; no such file",
        ),
        (
            {"datasets__toy__source": "hdf5"},
            "datasets.toy.source = 'hdf5'; allowed: torchvision, imagefolder, npz",
        ),
        (
            {"datasets__toy__path": "/no/such.npz"},
            "datasets.toy.path = '/no/such.npz'; no such file or folder",
        ),
        (
            {"datasets__toy__resize": [32]},
            "datasets.toy.resize = [32]; must have at least 2 entries",
        ),
        ({"datasets__bad_name": {"source": "npz"}}, "datasets has key 'bad_name'; keys must match"),
        ({"datasets__tv": {"source": "torchvision"}}, "datasets.tv.name is missing"),
        (
            {"datasets__tv": {"source": "torchvision", "name": "ImageNet"}},
            "datasets.tv.name = 'ImageNet'; allowed: CIFAR10, CIFAR100, MNIST, FashionMNIST, KMNIST, SVHN",
        ),
        ({"training__epochs": 0}, "training.epochs = 0; must be >= 1"),
        ({"training__batch_size": -1}, "training.batch_size = -1; must be >= 2"),
        (
            {"training__precision": "float16"},
            "training.precision = 'float16'; allowed: float32, bfloat16",
        ),
        (
            {"experiments": {"a": {"datasets": ["toy"], "archs": ["alexnet"]}}},
            "experiments.a.archs[0] = 'alexnet'; allowed: vgg11, vgg13, vgg16, vgg19, resnet18, resnet20",
        ),
        (
            {"experiments": {"a": {"datasets": ["toy"], "seeds": []}}},
            "experiments.a.seeds = []; must have at least 1 entries",
        ),
        (
            {"experiments": {"a": {"datasets": ["toy"], "first_widths": [0]}}},
            "experiments.a.first_widths[0] = 0; must be >= 1",
        ),
        (
            {"experiments": {"a": {"datasets": ["toy"], "labels": ["shuffled"]}}},
            "experiments.a.labels[0] = 'shuffled'; allowed: true, random",
        ),
        (
            {"experiments": {"a": {"datasets": ["cifar"]}}},
            "experiments.a.datasets[0] = 'cifar'; allowed: a key of datasets (toy)",
        ),
        (
            {"experiments": {"a": {"datasets": ["toy"], "inputs": ["blur"]}}},
            "experiments.a.inputs[0] = 'blur'; allowed: none, scaleNxA",
        ),
        (
            {"experiments": {"a": {"datasets": ["toy"], "labels": ["decile0"]}}},
            "experiments.a.labels[0] = 'decile0'; allowed: true, random, decileN",
        ),
        (
            {"datasets__pair": {"source": "subset", "of": "nope", "classes": ["a", "b"]}},
            "datasets.pair.of = 'nope'; allowed: a key of datasets that is not itself a subset (toy)",
        ),
        (
            {"datasets__pair": {"source": "subset", "of": "toy", "classes": ["a"]}},
            "datasets.pair.classes = ['a']; must have at least 2 entries",
        ),
        (
            {"theory__datasets": ["cifar"]},
            "theory.datasets[0] = 'cifar'; allowed: a key of datasets (toy)",
        ),
        (
            {"theory__tau_range": [10, 1]},
            "theory.tau_range = [10, 1]; allowed: [low, high] with 0 < low < high",
        ),
        ({"theory__whitening": {"k": 4}}, "theory.whitening.k = 4; allowed: an odd patch size"),
        (
            {
                "datasets__digits": {"source": "torchvision", "name": "MNIST"},
                "theory__datasets": ["digits"],
                "theory__whitening": {"max_distance": 22},
            },
            "theory.whitening.max_distance = 22; the responses on the 28x28 images of digits are "
            "22 pixels wide, allowed: at most 21",
        ),
        ({"theory__linear_cnn": {"steps": [0]}}, "theory.linear_cnn.steps[0] = 0; must be >= 1"),
        (
            {"experiments": {"a": {"datasets": ["toy"], "settings": {"lr": 0}}}},
            "experiments.a.settings.lr = 0; must be > 0",
        ),
    ],
)
def test_bad_values(config, changes, expected):
    assert expected in check(config, **changes)


def run_snakemake(tmp_path, *config_args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(ROOT / "config" / "config.yaml"),
            "--cores",
            "1",
            "--config",
            *config_args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "override,expected",
    [
        ("patches={k: [0]}", "config error: patches.k[0] = 0; must be >= 1"),
        (
            "pretrained={input_space: pixels}",
            "config error: pretrained.input_space = 'pixels'; allowed: model, raw",
        ),
    ],
)
def test_snakemake_stops_with_one_line_before_any_job(tmp_path, override, expected):
    result = run_snakemake(tmp_path, override)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def readme_offline_overrides(tmp_path):
    """The README's offline `--config` values, with their /path/to/... pointing at local files
    (planning checksums them, so an empty file serves)."""
    overrides = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith(".venv/bin/snakemake") and "--config 'datasets=" in line:
            value = line.split("--config '", 1)[1].rstrip("'")
            placeholder = value.split("/path/to/", 1)[1].split("}", 1)[0]
            (tmp_path / placeholder).write_bytes(b"")
            overrides.append(value.replace("/path/to/", f"{tmp_path}/"))
    return overrides


@pytest.mark.parametrize("configfile", ["config.yaml", "extended.yaml", "paper.yaml"])
def test_the_readmes_offline_commands_plan_with_every_shipped_config(tmp_path, configfile):
    # Snakemake merges nested --config keys into the file's: an imagefolder copy given for the
    # torchvision `cifar10` must not inherit the torchvision-only `name`.
    overrides = readme_offline_overrides(tmp_path)
    assert len(overrides) == 2, overrides
    for override in overrides:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")),
                *("--directory", str(tmp_path), "--cores", "1", "-n", "--quiet", "rules"),
                *("--configfile", str(ROOT / "config" / configfile), "--config", override),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{override}: {result.stderr[-2000:]}"
        assert "config error" not in result.stderr


def test_a_command_line_dataset_keeps_the_keys_it_gives_and_those_its_source_reads():
    from firstlayer.common.config import apply_command_line_datasets

    config = {"datasets": {"cifar10": {"source": "imagefolder", "name": "CIFAR10", "path": "x"}}}
    apply_command_line_datasets(config, {"datasets": {"cifar10": {"source": "imagefolder"}}})
    assert config["datasets"]["cifar10"] == {"source": "imagefolder", "path": "x"}
    # a key written on the command line stays, so the check still names the user's mistake
    config = {"datasets": {"cifar10": {"source": "imagefolder", "name": "CIFAR10", "path": "x"}}}
    given = {"datasets": {"cifar10": {"source": "imagefolder", "name": "CIFAR10"}}}
    apply_command_line_datasets(config, given)
    assert config["datasets"]["cifar10"]["name"] == "CIFAR10"
    # without a source on the command line the file's entry is only extended, as Snakemake does
    config = {"datasets": {"cifar10": {"source": "torchvision", "name": "CIFAR10"}}}
    apply_command_line_datasets(config, {"datasets": {"cifar10": {"archive": "a.tar.gz"}}})
    assert config["datasets"]["cifar10"] == {"source": "torchvision", "name": "CIFAR10"}


SHIPPED = sorted(p.name for p in (ROOT / "config").glob("*.yaml") if p.name != "schema.yaml")


@pytest.mark.parametrize("configfile", SHIPPED)
def test_a_site_file_after_a_shipped_config_swaps_a_dataset_source_like_the_command_line(
    tmp_path, configfile
):
    """`--configfile config/X.yaml site.yaml` where site.yaml points a torchvision dataset at a
    local ImageFolder copy ends with the entry the `--config` form gives: the torchvision-only
    `name` is gone, the site's keys are there."""
    from snakemake.utils import update_config

    from firstlayer.common.config import apply_dataset_overrides, read_layers

    base = yaml.safe_load((ROOT / "config" / configfile).read_text())
    key = next(k for k, v in base["datasets"].items() if v["source"] == "torchvision")
    (tmp_path / "copy.zip").write_bytes(b"")
    site = {"datasets": {key: {"source": "imagefolder", "path": str(tmp_path / "copy.zip")}}}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    results = []
    for files, command_line in (
        ([ROOT / "config" / configfile, tmp_path / "site.yaml"], {}),
        ([ROOT / "config" / configfile], site),
    ):
        config = copy.deepcopy(base)
        for layer in [yaml.safe_load(open(f)) for f in files[1:]] + [command_line]:
            update_config(config, layer)  # how Snakemake merges them
        apply_dataset_overrides(config, read_layers(files, command_line))
        results.append(validate_config(config, SCHEMA))
    assert results[0] == results[1]
    entry = results[0]["datasets"][key]
    assert "name" not in entry and entry["source"] == "imagefolder"
    assert entry["path"] == str(tmp_path / "copy.zip")


def test_a_later_layer_keeps_what_it_writes_and_drops_what_its_source_does_not_read():
    from firstlayer.common.config import apply_dataset_overrides

    merged = {"datasets": {"c": {"source": "torchvision", "name": "CIFAR10", "path": "x"}}}
    # a first site file switched c to an imagefolder copy, a second one back to torchvision
    layers = [{"datasets": {"c": {"source": "imagefolder", "path": "x"}}},
              {"datasets": {"c": {"source": "torchvision", "name": "CIFAR10"}}}]  # fmt: skip
    assert apply_dataset_overrides(merged, layers)["datasets"]["c"] == {
        "source": "torchvision",
        "name": "CIFAR10",
    }


def test_snakemake_plans_and_builds_a_dataset_swapped_by_a_site_file_as_by_the_command_line(
    tmp_path,
):
    """A site file that points the shipped paper grid's cifar10 at a local copy plans, and on
    a tiny config both forms build the same dataset file."""
    import numpy as np
    from conftest import smooth_images

    from firstlayer.datasets.sources import DatasetFile

    (tmp_path / "copy.zip").write_bytes(b"")
    (tmp_path / "site.yaml").write_text(
        f"datasets:\n  cifar10: {{source: imagefolder, path: {tmp_path / 'copy.zip'}}}\n"
    )
    dry = subprocess.run(
        [*(sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")),
         *("--directory", str(tmp_path), "--cores", "1", "-n", "--quiet", "rules"),
         "--configfile", str(ROOT / "config" / "paper.yaml"), str(tmp_path / "site.yaml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    images = smooth_images(20, 8, 8, 3)
    np.savez(tmp_path / "toy.npz", x=images, y=np.arange(20) % 2)
    (tmp_path / "base.yaml").write_text(
        "datasets:\n  toy: {source: torchvision, name: CIFAR10}\npatches: {k: [3]}\n"
    )
    swap = "{toy: {source: npz, path: toy.npz}}"
    (tmp_path / "npz.yaml").write_text(f"datasets: {swap}\n")
    built = []
    for form in (["--configfile", "base.yaml", "npz.yaml"],
                 ["--configfile", "base.yaml", "--config", f"datasets={swap}"]):  # fmt: skip
        target = "resources/datasets/toy.h5"
        (tmp_path / target).unlink(missing_ok=True)
        result = subprocess.run(
            [*(sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")),
             *("--directory", str(tmp_path), "--cores", "1", target), *form],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        with DatasetFile(tmp_path / target) as data:
            built.append((data.images("train")[()], data.labels("train"), data.source_sha256))
    assert np.array_equal(built[0][0], built[1][0]) and np.array_equal(built[0][1], built[1][1])
    assert built[0][2] == built[1][2]
