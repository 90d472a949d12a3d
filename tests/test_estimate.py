"""The compute estimate of a grid: image passes times the FLOP ratio over one measured rate."""

import pytest
from conftest import ROOT

from firstlayer.common.config import validate_config
from firstlayer.errors import InputError
from firstlayer.training.estimate import estimate, forward_flops


def config(experiments, datasets=None):
    return validate_config(
        {
            "datasets": datasets or {"c": {"source": "torchvision", "name": "CIFAR10"}},
            "patches": {"datasets": ["c"]},
            "pretrained": {"dataset": "c", "models": {}},
            "training": {"epochs": 2, "n_train": 100, "n_test": 30},
            "experiments": experiments,
        },
        ROOT / "config" / "schema.yaml",
    )


def test_the_reference_network_costs_its_image_passes_at_the_measured_rate():
    rows = estimate(config({"a": {"datasets": ["c"], "seeds": [0, 1]}}), images_per_second=10)
    assert rows == [
        {
            "block": "a",
            "runs": 2,
            "image_passes": 2 * 2 * (100 + 10),
            "seconds": pytest.approx(2 * 2 * (100 + 10) / 10),
        }
    ]


def test_a_costlier_network_takes_longer_by_its_flop_ratio():
    ratio = forward_flops("resnet18", 64, 1.0, 10, 3) / forward_flops("vgg11", 64, 1.0, 10, 3)
    rows = estimate(config({"r": {"datasets": ["c"], "archs": ["resnet18"]}}), 10)
    assert ratio > 1 and rows[0]["seconds"] == pytest.approx(2 * 110 / 10 * ratio)


def test_a_subset_takes_its_share_and_an_unbuilt_dataset_is_refused(tmp_path):
    datasets = {
        "c": {"source": "torchvision", "name": "CIFAR10"},
        "pair": {"source": "subset", "of": "c", "classes": ["cat", "dog"]},
    }
    cfg = config(
        {"p": {"datasets": ["pair"], "settings": {"n_train": None, "n_test": None}}}, datasets
    )
    assert estimate(cfg, 10)[0]["image_passes"] == 2 * (10000 + 2000 / 3)
    (tmp_path / "x.npz").write_bytes(b"")
    cfg = config(
        {"n": {"datasets": ["n"]}},
        {"c": datasets["c"], "n": {"source": "npz", "path": str(tmp_path / "x.npz")}},
    )
    with pytest.raises(InputError, match="its size is known only once built"):
        estimate(cfg, 10)
