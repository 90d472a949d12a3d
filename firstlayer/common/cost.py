"""What a training run costs and what its cluster job asks for; torch-free, so the workflow
computes every `train` job's request while it plans, and `training.estimate` adds up the same
numbers for a whole grid.

- A network's cost is counted from its layer table (`common.architectures`): forward FLOPs per
  image (2 x the multiply-adds of its convolutions and classifier, the count of torch's
  FlopCounterMode; a test checks they agree), parameters, and activations.
- A run makes epochs x (training images + test images / 3) image passes (a training pass is
  about three forward passes: forward and backward), at its network's training throughput
  (`Throughput`, images per second).
- Its job asks for that time x SAFETY plus RUN_STARTUP_MINUTES (the run's own Python, torch and
  CUDA start and dataset read) plus the job's start-up allowance, JOB_STARTUP_MINUTES, counted
  once per SLURM job: a run alone in its job carries all of it; a short run, which the cluster
  profile batches BATCH_RUNS to a job (Snakemake sums the runtimes of a batch), carries
  1 / BATCH_RUNS of it. All of it times the attempt (a retried job gets longer), capped at
  CAP_MINUTES; host memory for the dataset, the model and one batch's activations, plus the
  Python/torch/CUDA runtime; one GPU and THREADS CPUs.

Throughput, first found of: FIRSTLAYER_IMAGES_PER_SECOND (the reference network's rate, others
scaled by FLOPs); the calibration file CALIBRATION that `snakemake calibrate` writes (every
network of the grid measured with the real trainer on the cluster's GPU); the measured default,
MEASURED_REFERENCE_RATE (docs/benchmarks.md) divided by RATE_SAFETY. Where a network has no
measured rate, the reference's rate is scaled by the FLOP ratio, but never above the reference's
own: on a GPU, networks smaller than the reference are bound by kernel launches, not FLOPs
(narrow VGG11 trained at the rate of full-width VGG11 on an H200, docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from firstlayer.common.architectures import (
    ARCH_HELP,
    PATCH_CNN_LAYERS,
    RESNETS,
    VGG_LAYERS,
    VIT_MLP_RATIO,
    first_layer,
    patch_cnn_patch,
    scaled,
    vgg_depth,
    vit_heads,
    vit_shape,
)
from firstlayer.common.facts import TORCHVISION_DATASETS, TorchvisionDataset
from firstlayer.common.grid import RunSpec, exact
from firstlayer.errors import InputError

REFERENCE = ("vgg11", 64, 1.0)
REFERENCE_INPUT = (10, 3, 32)  # classes, channels, side
# Full-width VGG11, batch 256, IEEE float32 (FIRSTLAYER_GPU_MODE=reproducible) on one NVIDIA
# H200: 20,019 images/s, the slower of the two float32 modes measured (`fast`, TF32: 65,723;
# docs/benchmarks.md). Without a calibration, requests assume half of it (RATE_SAFETY): they
# hold on GPUs down to half an H200's IEEE float32 rate before the runtime's own SAFETY is spent.
MEASURED_REFERENCE_RATE = 20019.0
RATE_SAFETY = 2.0
DEFAULT_IMAGES_PER_SECOND = MEASURED_REFERENCE_RATE / RATE_SAFETY
RATE_VARIABLE = "FIRSTLAYER_IMAGES_PER_SECOND"
CALIBRATION = "resources/calibration.json"  # written by `snakemake calibrate`
CALIBRATION_FORMAT = "firstlayer.calibration"
SAFETY = 2.0  # the runtime request is twice the estimated training time...
RUN_STARTUP_MINUTES = 1  # ...plus the run's Python, torch and CUDA start and dataset read...
JOB_STARTUP_MINUTES = 5  # ...plus, once per SLURM job, its start (Snakemake twice, environment)
BATCH_RUNS = 4  # short runs per SLURM job: the cluster profile's group-components train=4
CAP_MINUTES = 24 * 60  # no request beyond a day (a common partition limit); retries resume
BATCH_MINUTES = 60  # runs asking for at most this long share a cluster job (group `train`)
THREADS = 2  # CPUs per training job: the data lives on the device as one tensor
RUNTIME_MB = 3000  # host memory of Python, torch and the CUDA runtime
MEMORY_SAFETY = 1.5
MEMORY_STEP_MB = 500


@dataclass(frozen=True)
class NetworkCost:
    flops: float  # forward FLOPs per image
    parameters: int
    activations: int  # values stored per image for the backward pass


@functools.cache  # a grid has few distinct networks and many runs
def network_cost(
    arch: str, first_width: int, width: float, classes: int, channels: int, side: int
) -> NetworkCost:
    """FLOPs, parameters and activations of a network as `training.models.build` makes it."""
    flops = activations = parameters = 0

    def conv(cin, cout, size, kernel=3, stride=1, padding=1):
        nonlocal flops, activations, parameters
        out = (size + 2 * padding - kernel) // stride + 1
        flops += 2 * cout * out * out * cin * kernel * kernel
        parameters += cout * cin * kernel * kernel + 2 * cout  # weights, batch norm
        activations += 2 * cout * out * out  # convolution and batch-norm outputs
        return out

    def linear(cin, cout, tokens):
        nonlocal flops, activations, parameters
        flops += 2 * tokens * cin * cout
        parameters += cin * cout + cout
        activations += tokens * cout

    depth, vit, patch = vgg_depth(arch), vit_shape(arch), patch_cnn_patch(arch)
    if vit is not None or patch is not None:
        geometry = first_layer(arch)
        grid = geometry.output_side(side)
        tokens = grid * grid
        flops += 2 * first_width * tokens * channels * geometry.k**2  # the first layer
        parameters += first_width * channels * geometry.k**2  # no bias
        activations += first_width * tokens
    if vit is not None:
        blocks, _ = vit
        dim, hidden = first_width, scaled(VIT_MLP_RATIO * first_width, width)
        parameters += tokens * dim + 2 * dim  # position embedding, final LayerNorm
        for _ in range(blocks):
            parameters += 4 * dim  # two LayerNorms
            activations += 4 * tokens * dim  # their outputs and the residual sums
            linear(dim, 3 * dim, tokens)  # queries, keys, values
            flops += 2 * 2 * tokens * tokens * dim  # scores and their weighted sum
            activations += 2 * vit_heads(dim) * tokens * tokens  # scores, softmax
            linear(dim, dim, tokens)  # attention output
            linear(dim, hidden, tokens)
            activations += tokens * hidden  # GELU
            linear(hidden, dim, tokens)
        cin = dim
    elif patch is not None:
        parameters += 2 * first_width  # the stem's LayerNorm
        activations += first_width * tokens
        size, cin = grid, first_width
        for item in PATCH_CNN_LAYERS:
            if item == "M":
                size = -(-size // 2)
                continue
            cout = scaled(item, width)
            size, cin = conv(cin, cout, size), cout
    elif depth is not None:
        size, cin, first = side, channels, True
        for item in VGG_LAYERS[depth]:
            if item == "M":
                size = -(-size // 2)  # ceil_mode pooling
                continue
            cout = first_width if first else scaled(item, width)
            size, cin, first = conv(cin, cout, size), cout, False
    elif arch in RESNETS:
        blocks, widths = RESNETS[arch]
        size, cin = conv(channels, first_width, side), first_width
        for index, (count, stage_width) in enumerate(zip(blocks, widths)):
            cout = scaled(stage_width, width)
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                out = conv(cin, cout, size, stride=stride)
                if stride != 1 or cin != cout:
                    conv(cin, cout, size, kernel=1, stride=stride, padding=0)
                size, cin = conv(cout, cout, out), cout
    else:
        raise InputError(f"architecture {arch!r}; allowed: {ARCH_HELP}")
    flops += 2 * cin * classes
    parameters += cin * classes + classes
    return NetworkCost(float(flops), parameters, activations)


def dataset_facts(name: str, datasets: dict) -> TorchvisionDataset | None:
    """Sizes of a configured dataset, or None where they are known only once it is built
    (ImageFolder trees, .npz files)."""
    spec = datasets.get(name, {})
    if spec.get("source") == "torchvision":
        facts = TORCHVISION_DATASETS[spec["name"]]
        if spec.get("resize"):  # CelebA at another size: costed at its longer side
            facts = dataclasses.replace(facts, side=max(spec["resize"]))
        return facts
    if spec.get("source") == "subset":
        parent = dataset_facts(spec["of"], datasets)
        if parent is None:
            return None
        share = len(spec["classes"]) / parent.classes
        return TorchvisionDataset(
            parent.side,
            parent.channels,
            round(parent.train_images * share),
            round(parent.test_images * share),
            len(spec["classes"]),
        )
    return None


def images_per_second(environ=os.environ) -> float | None:
    """The reference network's rate R given in FIRSTLAYER_IMAGES_PER_SECOND, else None."""
    text = environ.get(RATE_VARIABLE)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or math.isinf(value):
        raise InputError(f"{RATE_VARIABLE}={text!r}; allowed: a positive number (images/s)")
    return value


def network_key(spec: RunSpec, facts: TorchvisionDataset) -> str:
    """What a throughput is measured for: the network, its input and its recipe's batch and
    precision (e.g. `vgg11 f64 w1 3x32x32 b256 float32`)."""
    return (
        f"{spec.arch} f{spec.first_width} w{exact(spec.width)} "
        f"{facts.channels}x{facts.side}x{facts.side} b{spec.batch_size} {spec.precision}"
    )


REFERENCE_KEY = network_key(
    RunSpec("reference", *REFERENCE),
    TorchvisionDataset(REFERENCE_INPUT[2], REFERENCE_INPUT[1], 0, 0, 10),
)


@dataclass(frozen=True)
class Throughput:
    """Training images per second the requests assume: `rates` measured per network
    (`network_key`), else the reference network's `reference` scaled by FLOPs (never above it).
    `source` says where the numbers come from."""

    reference: float
    rates: dict = field(default_factory=dict)
    source: str = "given"

    def images_per_second(self, network: str, flop_ratio: float) -> float:
        if network in self.rates:
            return self.rates[network]
        return self.reference / max(flop_ratio, 1.0)


def read_calibration(path, environ=os.environ) -> Throughput:
    """The throughput a calibration file (`snakemake calibrate`) measured; one line naming the
    file when it is not one, or when it was measured in another GPU mode than this run's."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        rates = {str(k): float(v) for k, v in data["rates"].items()}
        if data["format"] != CALIBRATION_FORMAT or not all(v > 0 for v in rates.values()):
            raise ValueError("not a calibration of this workflow")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(
            f"{path}: not a readable calibration ({error}); delete it or run `snakemake "
            f"calibrate` again"
        ) from None
    mode = environ.get("FIRSTLAYER_GPU_MODE") or "fast"
    if data.get("device_type") == "cuda" and data.get("gpu_mode") != mode:
        raise InputError(
            f"{path} was measured in GPU mode {data.get('gpu_mode')!r} but FIRSTLAYER_GPU_MODE "
            f"is {mode!r} (its rates differ up to 3x); run `snakemake calibrate` in this mode"
        )
    reference = rates.get(REFERENCE_KEY, DEFAULT_IMAGES_PER_SECOND)
    return Throughput(reference, rates, f"calibration {path} ({data.get('device', '?')})")


def default_throughput() -> Throughput:
    return Throughput(
        DEFAULT_IMAGES_PER_SECOND,
        source=f"measured default: {MEASURED_REFERENCE_RATE:,.0f} images/s (docs/benchmarks.md) "
        f"/ {RATE_SAFETY:g}",
    )


def throughput(environ=os.environ, calibration=CALIBRATION) -> Throughput:
    """FIRSTLAYER_IMAGES_PER_SECOND, else the calibration file, else the measured default."""
    rate = images_per_second(environ)
    if rate is not None:
        return Throughput(rate, source=f"{RATE_VARIABLE}={rate:g}")
    if calibration is not None and Path(calibration).is_file():
        return read_calibration(calibration, environ)
    return default_throughput()


def as_throughput(value) -> Throughput:
    """A Throughput, or a number as the reference rate (scaled by FLOPs for other networks)."""
    return value if isinstance(value, Throughput) else Throughput(float(value))


@dataclass(frozen=True)
class TrainingCost:
    image_passes: float
    flop_ratio: float  # forward FLOPs per image relative to the reference network
    train_images: int
    test_images: int
    cost: NetworkCost
    network: str = ""  # network_key

    def rate(self, throughput) -> float:
        """The network's training images per second under `throughput`."""
        return as_throughput(throughput).images_per_second(self.network, self.flop_ratio)

    def seconds(self, throughput) -> float:
        """Estimated training time under `throughput` (a Throughput, or the reference's rate)."""
        return self.image_passes / self.rate(throughput)


def training_cost(spec: RunSpec, facts: TorchvisionDataset) -> TrainingCost:
    train = min(spec.n_train or facts.train_images, facts.train_images)
    test = min(facts.test_images if spec.n_test is None else spec.n_test, facts.test_images)
    # labels decileN have 10 classes on any dataset
    classes = 10 if spec.labels.startswith("decile") else facts.classes
    cost = network_cost(
        spec.arch, spec.first_width, spec.width, classes, facts.channels, facts.side
    )
    reference = network_cost(*REFERENCE, *REFERENCE_INPUT)
    return TrainingCost(
        spec.epochs * (train + test / 3),
        cost.flops / reference.flops,
        train,
        test,
        cost,
        network_key(spec, facts),
    )


@dataclass(frozen=True)
class Request:
    """What one training job asks the cluster for."""

    runtime: int  # minutes
    mem_mb: int  # host memory
    batched: bool = False  # short: shares a SLURM job with others (group `train`)
    gpu: int = 1
    cpus_per_gpu: int = THREADS


def training_request(
    spec: RunSpec, facts: TorchvisionDataset, throughput, attempt: int = 1
) -> Request:
    """The run's request under `throughput` (a Throughput, or the reference network's rate)."""
    run = training_cost(spec, facts)
    own = RUN_STARTUP_MINUTES + SAFETY * run.seconds(throughput) / 60
    batched = own + JOB_STARTUP_MINUTES <= BATCH_MINUTES
    minutes = own + JOB_STARTUP_MINUTES / (BATCH_RUNS if batched else 1)
    runtime = min(CAP_MINUTES, math.ceil(attempt * minutes))
    image_bytes = facts.side * facts.side * facts.channels
    data = (run.train_images + run.test_images) * image_bytes * (1 + 4)  # uint8 and float32
    model = 16 * run.cost.parameters  # weights, gradients, checkpoint and recorded copies
    batch = 4 * spec.batch_size * run.cost.activations
    need = MEMORY_SAFETY * (RUNTIME_MB + (data + model + batch) / 2**20)
    return Request(runtime, MEMORY_STEP_MB * math.ceil(need / MEMORY_STEP_MB), batched)
