"""The compute estimate of a grid and the cluster request of each run: image passes at each
network's throughput (measured by a calibration, else the reference rate scaled by FLOPs), with
FLOPs counted without torch; the start-up allowance once per SLURM job; `snakemake calibrate`."""

import json
import math
import subprocess

import pytest
import torch
import yaml
from conftest import GRID_CONFIG, ROOT, SNAKEMAKE, grid_workdir
from torch.utils.flop_counter import FlopCounterMode

from firstlayer.common.architectures import ARCHITECTURES
from firstlayer.common.config import validate_config
from firstlayer.common.cost import (
    BATCH_RUNS,
    CAP_MINUTES,
    DEFAULT_IMAGES_PER_SECOND,
    JOB_STARTUP_MINUTES,
    RATE_VARIABLE,
    REFERENCE_KEY,
    RUN_STARTUP_MINUTES,
    Throughput,
    default_throughput,
    images_per_second,
    network_cost,
    network_key,
    throughput,
    training_cost,
    training_request,
)
from firstlayer.common.facts import TORCHVISION_DATASETS
from firstlayer.common.grid import RunSpec
from firstlayer.common.targets import Plan
from firstlayer.errors import InputError
from firstlayer.training.calibrate import calibrate
from firstlayer.training.estimate import estimate, load_config, main, requests_markdown
from firstlayer.training.models import build

CIFAR = TORCHVISION_DATASETS["CIFAR10"]


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
    rows = estimate(config({"a": {"datasets": ["c"], "seeds": [0, 1]}}), 10)
    assert rows == [
        {
            "block": "a",
            "runs": 2,
            "image_passes": 2 * 2 * (100 + 10),
            "seconds": pytest.approx(2 * 2 * (100 + 10) / 10),
            # each run: a minute of its own start-up, twice its 22 s, and (a short run, batched
            # 4 to a job) a quarter of the job's 5 minutes of start-up
            "requested": 2 * math.ceil(1 + 2 * 22 / 60 + 5 / 4),
        }
    ]


def test_a_costlier_network_takes_longer_by_its_flop_ratio_a_cheaper_one_no_shorter():
    ratio = forward_flops("resnet18", 64, 1.0, 10, 3) / forward_flops("vgg11", 64, 1.0, 10, 3)
    rows = estimate(config({"r": {"datasets": ["c"], "archs": ["resnet18"]}}), 10)
    assert ratio > 1 and rows[0]["seconds"] == pytest.approx(2 * 110 / 10 * ratio)
    # a narrower network is costed at the reference's rate: on a GPU small networks are bound
    # by kernel launches (narrow VGG11 trained as fast as full width on an H200)
    rows = estimate(config({"n": {"datasets": ["c"], "widths": [0.125], "first_widths": [16]}}), 10)
    assert rows[0]["seconds"] == pytest.approx(2 * 110 / 10)


def test_a_request_follows_the_run_and_the_attempt_and_stops_at_the_cap():
    small = RunSpec("c", width=0.125, epochs=10, n_train=10000)
    full = RunSpec("c", epochs=30, n_train=None, n_test=None)
    deep = RunSpec("c", arch="vgg19", epochs=30, n_train=None, n_test=None)
    requests = [training_request(spec, CIFAR, 2000) for spec in (small, full, deep)]
    assert [r.runtime for r in requests] == sorted(r.runtime for r in requests)
    assert requests[0].mem_mb < requests[1].mem_mb < requests[2].mem_mb
    # full width: 30 x (50,000 + 10,000/3) passes at 2000/s = 800 s, twice, plus a minute of
    # its own start-up and, batched, a quarter of the job's 5 minutes
    own = RUN_STARTUP_MINUTES + 2 * 800 / 60
    assert requests[1].runtime == math.ceil(own + JOB_STARTUP_MINUTES / BATCH_RUNS) == 29
    assert requests[1].batched
    # a retried job asks for its time times the attempt
    for attempt in (2, 3):
        retried = training_request(full, CIFAR, 2000, attempt=attempt)
        assert retried.runtime == math.ceil(attempt * (own + 5 / 4))
    assert training_request(full, CIFAR, 1).runtime == CAP_MINUTES
    assert all(r.gpu == 1 and r.cpus_per_gpu == 2 for r in requests)


def test_the_start_up_allowance_is_counted_once_per_job():
    """A batch of BATCH_RUNS short runs (Snakemake sums their runtimes) asks for the job's
    start-up once; a run too long to batch carries all of it alone."""
    short = RunSpec("c", epochs=30, n_train=None, n_test=None)
    one = training_request(short, CIFAR, 2000)
    batch = BATCH_RUNS * (RUN_STARTUP_MINUTES + 2 * 800 / 60) + JOB_STARTUP_MINUTES
    assert one.batched and BATCH_RUNS * one.runtime - batch < BATCH_RUNS  # whole minutes
    long = RunSpec("c", epochs=100, n_train=None, n_test=None)
    alone = training_request(long, CIFAR, 2000)
    own = RUN_STARTUP_MINUTES + 2 * 100 * (50000 + 10000 / 3) / 2000 / 60
    assert not alone.batched and alone.runtime == math.ceil(own + JOB_STARTUP_MINUTES)
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert slurm["group-components"] == [f"train={BATCH_RUNS}"]


def test_the_rate_comes_from_the_environment_or_is_refused_in_one_line():
    assert images_per_second({RATE_VARIABLE: "1234.5"}) == 1234.5
    assert images_per_second({}) is None
    for bad in ["0", "-3", "fast", "inf", "nan"]:
        with pytest.raises(InputError, match=f"^{RATE_VARIABLE}='{bad}'; allowed: a positive"):
            images_per_second({RATE_VARIABLE: bad})


def test_without_calibration_the_defaults_are_the_measured_rate_over_the_safety_factor(tmp_path):
    rate = throughput({}, calibration=tmp_path / "none.json")
    assert rate.reference == DEFAULT_IMAGES_PER_SECOND == 20019 / 2
    assert rate.source == "measured default: 20,019 images/s (docs/benchmarks.md) / 2"
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "| 1 | project: device-resident, float32 channels_last | 20019 |" in benchmarks


def calibration_file(path, rates, mode="fast", device_type="cuda"):
    path.write_text(json.dumps({"format": "firstlayer.calibration", "device": "NVIDIA H200",
                                "device_type": device_type, "gpu_mode": mode, "rates": rates}))  # fmt: skip
    return path


def test_a_calibration_file_gives_each_network_its_measured_rate(tmp_path):
    narrow = RunSpec("c", width=0.125, epochs=30, n_train=None, n_test=None)
    deep = RunSpec("c", arch="vgg19", epochs=30, n_train=None, n_test=None)
    key = network_key(narrow, CIFAR)
    assert key == "vgg11 f64 w0.125 3x32x32 b256 float32"
    path = calibration_file(tmp_path / "c.json", {key: 50000.0, REFERENCE_KEY: 40000.0})
    rate = throughput({}, calibration=path)
    assert rate.source == f"calibration {path} (NVIDIA H200)"
    passes = 30 * (50000 + 10000 / 3)
    assert training_cost(narrow, CIFAR).seconds(rate) == pytest.approx(passes / 50000)
    ratio = training_cost(deep, CIFAR).flop_ratio  # not measured: the reference, scaled
    assert training_cost(deep, CIFAR).seconds(rate) == pytest.approx(passes * ratio / 40000)
    own = RUN_STARTUP_MINUTES + 2 * passes / 50000 / 60
    assert training_request(narrow, CIFAR, rate).runtime == math.ceil(own + 5 / 4)
    assert training_request(narrow, CIFAR, rate, attempt=2).runtime == math.ceil(2 * (own + 5 / 4))
    # the environment still overrides the file
    assert throughput({RATE_VARIABLE: "100"}, calibration=path).reference == 100
    with pytest.raises(
        InputError, match="measured in GPU mode 'fast' but FIRSTLAYER_GPU_MODE is 'reproducible'"
    ):
        throughput({"FIRSTLAYER_GPU_MODE": "reproducible"}, calibration=path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match=r"bad.json: not a readable calibration \("):
        throughput({}, calibration=tmp_path / "bad.json")


def test_the_paper_grids_request_table_in_the_docs_is_current():
    """docs/cluster.md shows what `--requests` prints for config/paper.yaml at the measured
    defaults."""
    table = requests_markdown(load_config(ROOT / "config" / "paper.yaml"), default_throughput())
    assert table in (ROOT / "docs" / "cluster.md").read_text()
    assert len(table.splitlines()) > 10


def test_the_command_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv(RATE_VARIABLE, raising=False)
    paper = str(ROOT / "config" / "paper.yaml")
    assert main([paper, "--images-per-second", "2000"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "rates: --images-per-second"
    assert out.splitlines()[-1].startswith("| total | 245 |")
    assert main([paper, "--images-per-second", "-1"]) == 1
    assert capsys.readouterr().err == (
        "error: --images-per-second=-1; allowed: a positive number\n"
    )
    # from a calibration file when there is one, else from the measured defaults
    path = calibration_file(tmp_path / "c.json", {REFERENCE_KEY: 40000.0})
    assert main(["--requests", paper, "--calibration", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"rates: calibration {path} (NVIDIA H200)"
    assert "| 65 | 50000 | vgg11 f64 w1 3x32x32 b256 float32 | 30 | 40,000 |" in out
    assert main(["--requests", paper, "--calibration", str(tmp_path / "none.json")]) == 0
    assert "| 65 | 50000 | vgg11 f64 w1 3x32x32 b256 float32 | 30 | 10,010 |" in (
        capsys.readouterr().out
    )


def test_calibrate_times_every_network_of_the_grid_with_the_real_trainer(tmp_path, monkeypatch):
    """`snakemake calibrate` on the CPU: the grid's network and the reference network timed, the
    file written where the cost model reads it, and the plan's requests then follow it."""
    workdir = grid_workdir(tmp_path / "grid")
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", "config.yaml", "--cores", "2",
         "calibrate"],
        cwd=workdir, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    content = json.loads((workdir / "resources" / "calibration.json").read_text())
    tiny = "vgg11 f8 w0.0625 3x32x32 b16 float32"  # an npz dataset is costed as CIFAR-10
    assert set(content["rates"]) == {REFERENCE_KEY, tiny}
    assert content["device_type"] == "cpu" and content["steps"] == 2
    assert all(rate > 0 for rate in content["rates"].values())
    monkeypatch.chdir(workdir)
    monkeypatch.delenv(RATE_VARIABLE, raising=False)
    settings = yaml.safe_load(GRID_CONFIG)
    settings["datasets"]["toy"]["path"] = str(workdir / "toy.npz")
    plan = Plan(validate_config(settings, ROOT / "config" / "schema.yaml"))
    assert plan.rate.rates == content["rates"]
    run = next(iter(plan.grid))
    passes = 2 * (48 + 9 / 3)
    own = RUN_STARTUP_MINUTES + 2 * passes / content["rates"][tiny] / 60
    assert plan.training_request(run).runtime == math.ceil(own + 5 / 4)


def test_calibrating_one_network_by_hand(tmp_path):
    network = {"arch": "resnet18", "first_width": 4, "width": 0.0625, "channels": 3, "side": 8,
               "classes": 2, "batch_size": 4, "precision": "float32"}  # fmt: skip
    content = calibrate({"tiny": network}, tmp_path / "c.json", device="cpu", steps=2, warmup=1)
    assert content["rates"]["tiny"] > 0 and content["gpu_mode"] == "fast"
    assert (
        Throughput(1.0, content["rates"]).images_per_second("tiny", 1.0) == content["rates"]["tiny"]
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
