"""The compute estimate of a grid and the cluster request of each run: image passes times the
FLOP ratio over one measured rate, with FLOPs counted without torch."""

import math

import pytest
import torch
from conftest import ROOT
from torch.utils.flop_counter import FlopCounterMode

from firstlayer.common.architectures import ARCHITECTURES
from firstlayer.common.config import validate_config
from firstlayer.common.cost import (
    CAP_MINUTES,
    RATE_VARIABLE,
    images_per_second,
    network_cost,
    training_request,
)
from firstlayer.common.facts import TORCHVISION_DATASETS
from firstlayer.common.grid import RunSpec
from firstlayer.errors import InputError
from firstlayer.training.estimate import estimate, load_config, main, requests_markdown
from firstlayer.training.models import build


def forward_flops(arch, first_width, width, classes, channels):
    return network_cost(arch, first_width, width, classes, channels, 32).flops


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_torch_free_count_is_torchs_count(arch):
    """FLOPs and parameters counted from the layer tables equal what torch counts on the built
    network, for odd widths, channel counts and image sizes too."""
    for first_width, width, classes, channels, side in [
        (64, 1.0, 10, 3, 32),
        (16, 0.125, 100, 1, 28),
        (7, 0.3, 2, 3, 17),
    ]:
        with torch.device("meta"):  # shapes only: no memory, no arithmetic
            # eval: a 1x1 map of one image is no batch for batch norm in training mode
            model = build(arch, first_width, width, classes, channels, side).eval()
            with FlopCounterMode(display=False) as counter:
                model(torch.zeros(1, channels, side, side))
        cost = network_cost(arch, first_width, width, classes, channels, side)
        assert cost.flops == counter.get_total_flops()
        assert cost.parameters == sum(p.numel() for p in model.parameters())


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
            # each job: 5 minutes of start-up plus twice 22 s
            "requested": 2 * math.ceil(5 + 2 * 22 / 60),
        }
    ]


def test_a_costlier_network_takes_longer_by_its_flop_ratio():
    ratio = forward_flops("resnet18", 64, 1.0, 10, 3) / forward_flops("vgg11", 64, 1.0, 10, 3)
    rows = estimate(config({"r": {"datasets": ["c"], "archs": ["resnet18"]}}), 10)
    assert ratio > 1 and rows[0]["seconds"] == pytest.approx(2 * 110 / 10 * ratio)


def test_a_request_follows_the_run_and_the_attempt_and_stops_at_the_cap():
    cifar = TORCHVISION_DATASETS["CIFAR10"]
    small = RunSpec("c", width=0.125, epochs=10, n_train=10000)
    full = RunSpec("c", epochs=30, n_train=None, n_test=None)
    deep = RunSpec("c", arch="vgg19", epochs=30, n_train=None, n_test=None)
    requests = [training_request(spec, cifar, 2000) for spec in (small, full, deep)]
    assert [r.runtime for r in requests] == sorted(r.runtime for r in requests)
    assert requests[0].mem_mb < requests[1].mem_mb < requests[2].mem_mb
    # full width: 30 x (50,000 + 10,000/3) passes at 2000/s = 800 s, twice, plus 5 minutes
    assert requests[1].runtime == math.ceil(5 + 2 * 800 / 60)
    assert training_request(full, cifar, 2000, attempt=2).runtime == math.ceil(2 * (5 + 1600 / 60))
    assert training_request(full, cifar, 1).runtime == CAP_MINUTES
    assert all(r.gpu == 1 and r.cpus_per_gpu == 2 for r in requests)


def test_the_rate_comes_from_the_environment_or_is_refused_in_one_line():
    assert images_per_second({RATE_VARIABLE: "1234.5"}) == 1234.5
    assert images_per_second({}) > 0
    for bad in ["0", "-3", "fast", "inf", "nan"]:
        with pytest.raises(InputError, match=f"^{RATE_VARIABLE}='{bad}'; allowed: a positive"):
            images_per_second({RATE_VARIABLE: bad})


def test_the_paper_grids_request_table_in_the_docs_is_current():
    """docs/cluster.md shows what `--requests` prints for config/paper.yaml at the assumed rate."""
    table = requests_markdown(load_config(ROOT / "config" / "paper.yaml"), images_per_second({}))
    assert table in (ROOT / "docs" / "cluster.md").read_text()
    assert len(table.splitlines()) > 10


def test_the_command_line(capsys):
    assert main([str(ROOT / "config" / "paper.yaml"), "--images-per-second", "2000"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("| total | 230 |")
    assert main([str(ROOT / "config" / "paper.yaml"), "--images-per-second", "-1"]) == 1
    assert capsys.readouterr().err == (
        "error: --images-per-second=-1; allowed: a positive number\n"
    )


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
