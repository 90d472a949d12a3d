"""What a training run costs and what its cluster job asks for; torch-free, so the workflow
computes every `train` job's request while it plans, and `training.estimate` adds up the same
numbers for a whole grid.

- A network's cost is counted from its layer table (`common.architectures`): forward FLOPs per
  image (2 x the multiply-adds of its convolutions and classifier, the count of torch's
  FlopCounterMode; a test checks they agree), parameters, and activations.
- A run makes epochs x (training images + test images / 3) image passes (a training pass is
  about three forward passes: forward and backward). At a throughput of R images per second for
  the reference network (VGG11, 64 first-layer filters, full width, 32x32 RGB, 10 classes) it
  takes passes x (its FLOPs / the reference's) / R seconds.
- Its job asks for that time x SAFETY plus STARTUP_MINUTES, times the attempt (a retried job
  gets longer), capped at CAP_MINUTES; host memory for the dataset, the model and one batch's
  activations, plus the Python/torch/CUDA runtime; one GPU and THREADS CPUs.

R is measured with bench/train_speed.py on the cluster's GPU and given to the workflow as
FIRSTLAYER_IMAGES_PER_SECOND; without it ASSUMED_IMAGES_PER_SECOND, a deliberately low
(unmeasured) GPU rate, so requests err long.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

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
from firstlayer.common.grid import RunSpec
from firstlayer.errors import InputError

REFERENCE = ("vgg11", 64, 1.0)
REFERENCE_INPUT = (10, 3, 32)  # classes, channels, side
ASSUMED_IMAGES_PER_SECOND = 2000.0  # an assumption, not a measurement (docs/cluster.md)
RATE_VARIABLE = "FIRSTLAYER_IMAGES_PER_SECOND"
SAFETY = 2.0  # the runtime request is twice the estimate...
STARTUP_MINUTES = 5  # ...plus Python, torch and CUDA start-up and reading the dataset
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
        return TORCHVISION_DATASETS[spec["name"]]
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


def images_per_second(environ=os.environ) -> float:
    """The reference network's training throughput R the requests assume."""
    text = environ.get(RATE_VARIABLE)
    if text is None:
        return ASSUMED_IMAGES_PER_SECOND
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or math.isinf(value):
        raise InputError(f"{RATE_VARIABLE}={text!r}; allowed: a positive number (images/s)")
    return value


@dataclass(frozen=True)
class TrainingCost:
    image_passes: float
    flop_ratio: float  # forward FLOPs per image relative to the reference network
    train_images: int
    test_images: int
    cost: NetworkCost

    def seconds(self, rate: float) -> float:
        """Estimated training time at a reference throughput of `rate` images per second."""
        return self.image_passes * self.flop_ratio / rate


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
        spec.epochs * (train + test / 3), cost.flops / reference.flops, train, test, cost
    )


@dataclass(frozen=True)
class Request:
    """What one training job asks the cluster for."""

    runtime: int  # minutes
    mem_mb: int  # host memory
    gpu: int = 1
    cpus_per_gpu: int = THREADS


def training_request(
    spec: RunSpec, facts: TorchvisionDataset, rate: float, attempt: int = 1
) -> Request:
    run = training_cost(spec, facts)
    minutes = STARTUP_MINUTES + SAFETY * run.seconds(rate) / 60
    runtime = min(CAP_MINUTES, math.ceil(attempt * minutes))
    image_bytes = facts.side * facts.side * facts.channels
    data = (run.train_images + run.test_images) * image_bytes * (1 + 4)  # uint8 and float32
    model = 16 * run.cost.parameters  # weights, gradients, checkpoint and recorded copies
    batch = 4 * spec.batch_size * run.cost.activations
    need = MEMORY_SAFETY * (RUNTIME_MB + (data + model + batch) / 2**20)
    return Request(runtime, MEMORY_STEP_MB * math.ceil(need / MEMORY_STEP_MB))
