"""Training one network and recording its first layer along the way.

The paper's recipe is the default: plain SGD (lr 0.01, no momentum, no weight decay), batch 256,
cross-entropy, no augmentation. A run may instead use AdamW (its own lr and weight decay, betas
0.9 and 0.999) and the crop_flip augmentation (`training.manipulations`). The training set lives
on the device as one tensor and batches are index slices of a per-epoch permutation (no
DataLoader). Random streams are separate and derived from the run's seed: initialisation, data
order (one per epoch), augmentation draws (one per epoch), labels. The
initialisation stream also takes the run's whole specification (`init_seed`), so no two distinct
runs share an initialisation by accident.

An epoch is cut into consecutive batches of `batch_size` images, except that a final batch of
exactly one image joins the batch before it (`batch_bounds`): batch norm cannot train on one
image, and every other training-set size keeps its batches and steps (10,000 images at batch 256:
40 steps, the last of 16 images).

Before it reads its images a run checks that its data and memory can train it
(`firstlayer.training.preflight`); a run whose loss or first-layer weights become non-finite
(a learning rate too large) stops with one line naming the run and the step, and writes no run
file. Checkpoints: `firstlayer.training.checkpoints` (by wall-clock interval; resumed only for the
same spec, dataset content and code). A resumed run ends bit-identical to an uninterrupted one on
the same processor at a fixed thread count, and on a GPU in the reproducible mode
(firstlayer.training.devices).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from firstlayer.common.architectures import first_layer
from firstlayer.common.grid import RunSpec
from firstlayer.common.provenance import code_digest
from firstlayer.common.settings import (
    check_augment,
    check_labels,
    check_optimizer,
    check_transform,
)
from firstlayer.datasets.sources import DatasetFile, selected_chunks
from firstlayer.errors import InputError
from firstlayer.h5io import atomic_h5, open_checked
from firstlayer.training.checkpoints import (
    checkpoint_due,
    checkpoint_minutes,
    dependencies,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from firstlayer.training.devices import (
    bfloat16_warning,
    configure_precision,
    device_record,
    gpu_mode,
    gpu_request,
    select_device,
)
from firstlayer.training.manipulations import (
    Context,
    apply_labels,
    apply_transform,
    augmenter,
    crop_flip_draws,
)
from firstlayer.training.models import build
from firstlayer.training.preflight import check_run

FORMAT = "firstlayer.run"


def derive_seed(seed: int, stream: str, *extra) -> int:
    """A 63-bit seed for one named random stream of a run (stable across platforms)."""
    text = ":".join(str(part) for part in (seed, stream, *extra))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def init_seed(spec: RunSpec) -> int:
    """The seed of a run's initialisation: derived from its whole specification, so runs that
    differ in anything (labels, inputs, architecture, widths, frozen flag, recipe) start from
    different weights and are independent samples; the same spec always starts identically."""
    return derive_seed(spec.seed, "init", json.dumps(spec.as_dict(), sort_keys=True))


def balanced_subset(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, class-balanced sample of n items (all when n is None)."""
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    quota = np.full(len(classes), n // len(classes))
    quota[: n % len(classes)] += 1
    chosen = []
    for cls, count in zip(classes, quota):
        members = np.flatnonzero(labels == cls)
        if count > len(members):
            raise InputError(
                f"n_train={n} needs {count} images of class {cls}; the split has {len(members)}"
            )
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen))


def record_steps(
    steps_per_epoch: int, epochs: int, lr: float | None = None, lr_steps=()
) -> set[int]:
    """Steps at which the first layer is recorded: 0, log-spaced through the first epoch
    (1, 2, 4, ...), then the end of every epoch; and, for each value c of `lr_steps` (the
    theory's clock lr x step), the step nearest to c / lr (at least 1) within the run."""
    steps = {0}
    step = 1
    while step < steps_per_epoch:
        steps.add(step)
        step *= 2
    steps.update(steps_per_epoch * (epoch + 1) for epoch in range(epochs))
    total = steps_per_epoch * epochs
    if lr:
        steps.update(step for step in (lr_step(c, lr, total) for c in lr_steps) if step)
    return steps


def lr_step(value: float, lr: float, total: int) -> int | None:
    """The step nearest to lr x step = `value` (at least 1), or None when it lies beyond a run of
    `total` steps (the quotient is compared before rounding: a tiny lr gives no infinite step)."""
    quotient = value / lr
    if not quotient <= total + 1:
        return None
    step = max(1, round(quotient))
    return step if step <= total else None


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of an epoch of n images: consecutive slices of `batch_size`,
    except that a final batch of exactly one image joins the batch before it (batch norm cannot
    train on one image). Every other n keeps ceil(n / batch_size) batches, unchanged."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [(start, stops) for start, stops in zip(starts, [*starts[1:], n])]


def filter_norms2(model) -> torch.Tensor:
    """Squared norm of every first-layer filter, (K,) in float64 on the model's device. A
    BatchNorm after the first convolution makes the loss blind to a filter's scale, so SGD turns
    a filter's direction by an effective step of lr / |w_k|^2 (the normalised clock)."""
    weight = model.first_conv.weight.detach()
    return weight.double().pow(2).sum(dim=tuple(range(1, weight.dim())))


def _tensor(images_nhwc: np.ndarray, mean, std, device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc)).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    x = (
        x - torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    ) / torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)


def prepare_data(spec: RunSpec, dataset_path, device):
    """Training and test tensors on the device, standardised by the dataset's own mean/std,
    with the run's label setting and input transform applied."""
    with DatasetFile(dataset_path) as data:
        return _prepare(spec, data, device)


def _prepare(spec: RunSpec, data: DatasetFile, device):
    """`prepare_data` from an open dataset file."""
    check_labels(spec.labels)
    check_transform(spec.inputs)
    check_optimizer(spec.optimizer)
    check_augment(spec.augment)
    k = first_layer(spec.arch).k
    train_labels = data.labels("train")
    subset = balanced_subset(train_labels, spec.n_train, spec.subset_seed)
    train_images = _read(data.images("train"), subset)
    test_labels = data.labels("test")
    test_subset = (
        balanced_subset(test_labels, spec.n_test, spec.subset_seed)
        if len(test_labels)
        else np.arange(0)
    )
    test_images = _read(data.images("test"), test_subset)
    mean, std, classes = data.mean, data.std, len(data.class_names)
    context = Context(train_images, mean, std, k)
    labels = apply_labels(
        spec.labels, train_labels[subset], context, derive_seed(spec.seed, "labels")
    )
    classes = max(classes, int(labels.max()) + 1)  # decile labels: 10 classes on any dataset
    x = apply_transform(
        spec.inputs,
        _tensor(train_images, mean, std, device),
        context,
        derive_seed(spec.seed, "inputs"),
    )
    x_test = apply_transform(
        spec.inputs,
        _tensor(test_images, mean, std, device),
        context,
        derive_seed(spec.seed, "inputs"),
    )
    return {
        "x": x,
        "y": torch.from_numpy(labels).to(device),
        "x_test": x_test,
        "y_test": torch.from_numpy(test_labels[test_subset]).to(device),
        "classes": classes,
        "channels": train_images.shape[-1],
        # a black pixel in the standardised input space (crop_flip pads with it)
        "black": torch.tensor(-np.asarray(mean) / np.asarray(std), dtype=torch.float32).to(device),
        "subset": subset,
        "labels": labels,
    }


def _read(images, indices) -> np.ndarray:
    """images[indices] for sorted indices, read in contiguous spans (fast on HDF5)."""
    if len(indices) == 0:
        return images[:0]
    return np.concatenate(list(selected_chunks(images, indices, 4096)))


def _autocast(spec: RunSpec, device):
    if spec.precision == "float32":
        return contextlib.nullcontext()
    if spec.precision == "bfloat16":
        if not torch.amp.is_autocast_available(device.type):
            raise InputError(
                f"precision=bfloat16 on device {device}: torch has no autocast there; "
                f"allowed: float32 on this device, bfloat16 on cpu or cuda"
            )
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise InputError(f"precision={spec.precision!r}; allowed: float32, bfloat16")


@torch.no_grad()
def evaluate(model, x, y, spec, device, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, accuracy) on (x, y) as 0-d tensors on the device (no host synchronisation);
    NaN without test images."""
    if len(y) == 0:
        nan = torch.full((), float("nan"), device=device)
        return nan, nan
    model.eval()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, len(y), batch):
        with _autocast(spec, device):
            out = model(x[start : start + batch]).float()
        loss += F.cross_entropy(out, y[start : start + batch], reduction="sum")
        correct += (out.argmax(1) == y[start : start + batch]).sum()
    model.train()
    return loss / len(y), correct / len(y)


def train(
    spec: RunSpec,
    dataset_path,
    out_path,
    checkpoint_path,
    device=None,
    log=print,
    resources=None,
    minutes: float | None = None,
    code: str | None = None,
    name: str | None = None,
) -> dict:
    """Train one network, checkpointing every `minutes` (default: `checkpoint_minutes()`), and
    write its run file (docs/formats.md). `resources`: the job's Snakemake resources, which say
    whether it must get a GPU. `code`: the digest of the code that trains it (the `train` rule's
    `code` param; default: this module's), which its checkpoint records. `name`: the run's name
    in messages (default: the run file's stem)."""
    name = name or Path(out_path).stem
    device = torch.device(device) if device else select_device(log, gpu_request(resources))
    mode = gpu_mode()
    configure_precision(device, mode)
    interval = 60 * (checkpoint_minutes() if minutes is None else minutes)
    if spec.epochs < 1 or spec.batch_size < 2:
        raise InputError(
            f"epochs={spec.epochs}, batch_size={spec.batch_size}; allowed: epochs >= 1 and "
            f"batch_size >= 2 (batch norm cannot train on one image)"
        )
    if spec.precision == "bfloat16" and device.type == "cuda":
        warning = bfloat16_warning(
            torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device)
        )
        if warning:
            log(warning)
    with DatasetFile(dataset_path) as dataset:
        classes = len(dataset.class_names)
        counts = (dataset.count("train"), dataset.count("test"))
        check_run(name, spec, dataset.shape, *counts, classes)
        depends = dependencies(spec, dataset.data_sha256(), code or code_digest(__file__))
        data = _prepare(spec, dataset, device)
    torch.manual_seed(init_seed(spec))
    model = build(
        spec.arch,
        spec.first_width,
        spec.width,
        data["classes"],
        data["channels"],
        side=data["x"].shape[-1],
    ).to(device, memory_format=torch.channels_last)
    if spec.frozen:
        model.first_conv.weight.requires_grad_(False)
    optimizer = make_optimizer(spec, [p for p in model.parameters() if p.requires_grad])
    augment = augmenter(spec.augment, data["black"])
    n = len(data["y"])
    steps_per_epoch = len(batch_bounds(n, spec.batch_size))
    recorded = record_steps(steps_per_epoch, spec.epochs, spec.lr, spec.record_lr_steps)
    total = steps_per_epoch * spec.epochs
    beyond = [c for c in spec.record_lr_steps if lr_step(c, spec.lr, total) is None]
    if beyond:  # e.g. a config's shared values, some past this run's end: said, not an error
        log(
            f"record_lr_steps {', '.join(f'{c:g}' for c in beyond)}: beyond this run's "
            f"lr x steps {spec.lr * total:g} ({total} steps at lr {spec.lr:g}), not recorded"
        )
    norms2 = filter_norms2(model)
    state = {
        "epoch": 0,
        "step": 0,
        "steps": [0],
        "weights": [_first(model)],
        # per filter, the sum over steps of lr / |w_k|^2 at the weights each step started from
        "clock": torch.zeros_like(norms2),
        "clocks": [torch.zeros_like(norms2).cpu()],
        "metrics": [],
        "seconds": 0.0,
        "resumed_from": [],
    }
    checkpoint_path = Path(checkpoint_path)
    saved = load_checkpoint(checkpoint_path, depends, log)
    if saved is not None:
        state = restore(saved, model, optimizer)
        state["clock"] = state["clock"].to(device)
        norms2 = filter_norms2(model)
        log(f"resuming from the checkpoint after epoch {state['epoch']} (step {state['step']})")
    log(
        f"training {spec.arch} (first layer {spec.first_width} filters, "
        f"{first_layer(spec.arch)}{', frozen' if spec.frozen else ''}) "
        f"on {n} images, labels {spec.labels}, {spec.epochs} epochs, {spec.optimizer} lr "
        f"{spec.lr:g}, augmentation {spec.augment}, device {device}"
        f"{f' ({mode} mode)' if device.type == 'cuda' else ''}"
    )
    # steps of this epoch whose loss was not finite (on the device: no host synchronisation)
    nonfinite = torch.zeros((), dtype=torch.long, device=device)

    def on_step(state, loss):
        nonlocal norms2, nonfinite
        state["step"] += 1
        state["clock"] += spec.lr / norms2  # on the device: no host synchronisation
        norms2 = filter_norms2(model)
        nonfinite += ~torch.isfinite(loss)
        if state["step"] in recorded:
            state["steps"].append(state["step"])
            state["weights"].append(_first(model))
            state["clocks"].append(state["clock"].cpu().clone())

    last_save = time.perf_counter()
    for epoch in range(state["epoch"], spec.epochs):
        start = time.perf_counter()
        order = torch.from_numpy(
            np.random.default_rng(derive_seed(spec.seed, "order", epoch)).permutation(n)
        ).to(device)
        draws = None
        if augment is not None:
            seed = derive_seed(spec.seed, "augment", epoch)
            draws = torch.from_numpy(crop_flip_draws(n, seed)).to(device)
        sums = train_epoch(
            model,
            optimizer,
            data["x"],
            data["y"],
            order,
            spec,
            device,
            on_step=lambda loss: on_step(state, loss),
            augment=augment,
            draws=draws,
        )
        test = evaluate(model, data["x_test"], data["y_test"], spec, device)
        total_loss, total_correct, test_loss, test_acc = (v.item() for v in (*sums, *test))
        if not (math.isfinite(total_loss) and bool(torch.isfinite(state["weights"][-1]).all())):
            _diverged(name, spec, state, int(nonfinite.item()), epoch + 1)
        state["seconds"] += time.perf_counter() - start
        state["epoch"] = epoch + 1
        state["metrics"].append(
            [
                epoch + 1,
                state["step"],
                total_loss / n,
                total_correct / n,
                test_loss,
                test_acc,
                state["seconds"],
            ]
        )
        now = time.perf_counter()
        log(
            f"epoch {epoch + 1}/{spec.epochs}: train loss {total_loss / n:.4f} acc "
            f"{total_correct / n:.3f}, test loss {test_loss:.4f} acc {test_acc:.3f} "
            f"({now - start:.1f} s)"
        )
        if epoch + 1 < spec.epochs and checkpoint_due(now - last_save, now - start, interval):
            save_checkpoint(checkpoint_path, depends, model, optimizer, state)
            last_save = time.perf_counter()
    write_run(out_path, spec, state, data, device, steps_per_epoch, mode)
    checkpoint_path.unlink(missing_ok=True)
    return state


def _diverged(name: str, spec: RunSpec, state: dict, nonfinite: int, epoch: int):
    """Stop a run whose loss or first-layer weights became non-finite, naming the step. Once the
    weights hold a NaN every later loss does too, so the non-finite losses are the epoch's last
    `nonfinite` steps."""
    if nonfinite:
        what = f"its loss became non-finite at step {state['step'] - nonfinite + 1}"
    else:
        what = f"its first-layer weights became non-finite by step {state['step']}"
    raise InputError(
        f"run {name}: {what} (epoch {epoch}, lr {spec.lr:g}): training diverged, no run file "
        f"written; allowed: a smaller lr (training.lr or the block's settings)"
    )


def make_optimizer(spec: RunSpec, parameters) -> torch.optim.Optimizer:
    """The run's optimiser: SGD (lr, momentum, weight decay: the paper's recipe) or AdamW (its lr
    and decoupled weight decay, betas 0.9 and 0.999, eps 1e-8)."""
    check_optimizer(spec.optimizer)
    if spec.optimizer == "adamw":
        if spec.momentum:
            raise InputError(
                f"optimizer adamw with momentum={spec.momentum:g}; allowed: momentum 0 "
                f"(AdamW's betas are 0.9, 0.999)"
            )
        return torch.optim.AdamW(
            parameters, lr=spec.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=spec.weight_decay
        )
    return torch.optim.SGD(
        parameters, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
    )


def train_epoch(
    model, optimizer, x, y, order, spec: RunSpec, device, on_step=None, augment=None, draws=None
):
    """One pass over `order` in batches of index slices; returns (summed loss, correct) as 0-d
    tensors on the device: no host synchronisation per step. `augment(images, draws)`, given,
    transforms each batch with the rows of `draws` that belong to its positions in `order`.
    `on_step(loss)` is called after every step with the step's loss."""
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    for first, stop in batch_bounds(len(order), spec.batch_size):
        index = order[first:stop]
        inputs, targets = x[index], y[index]
        if augment is not None:
            inputs = augment(inputs, draws[first:stop])
        with _autocast(spec, device):
            out = model(inputs).float()
        loss = F.cross_entropy(out, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach() * len(targets)
        total_correct += (out.argmax(1) == targets).sum()
        if on_step is not None:
            on_step(loss.detach())
    return total_loss, total_correct


def _first(model) -> torch.Tensor:
    return model.first_conv.weight.detach().float().cpu().clone()


def write_run(path, spec: RunSpec, state, data, device, steps_per_epoch, mode="fast") -> None:
    columns = ["epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"]
    metrics = np.asarray(state["metrics"], dtype=np.float64)
    hardware = device_record(torch.device(device), mode)
    provenance = {
        "spec": spec.as_dict(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "resumed_from": state["resumed_from"],
        "hardware": hardware,
    }
    with atomic_h5(path, FORMAT, provenance) as handle:
        group = handle.create_group("first_layer")
        group.create_dataset("steps", data=np.asarray(state["steps"], np.int64))
        group.create_dataset("epochs", data=np.asarray(state["steps"]) / steps_per_epoch)
        group.create_dataset("weights", data=torch.stack(state["weights"]).numpy())
        group.create_dataset("normalised_clock", data=torch.stack(state["clocks"]).numpy())
        table = handle.create_group("metrics")
        for position, column in enumerate(columns):
            table.create_dataset(column, data=metrics[:, position])
        handle.create_dataset("train_indices", data=data["subset"])
        handle.attrs.update(
            {
                "spec": json.dumps(spec.as_dict()),
                "device": str(device),
                "wall_seconds": state["seconds"],
                "steps_per_epoch": steps_per_epoch,
                "label_seed": derive_seed(spec.seed, "labels"),
                "init_seed": init_seed(spec),
                "labels_sha256": hashlib.sha256(np.asarray(data["labels"]).tobytes()).hexdigest(),
            }
        )


@dataclass
class Run:
    """A finished run read back: spec, recorded first layers and per-epoch metrics."""

    spec: RunSpec
    steps: np.ndarray
    epochs: np.ndarray
    weights: np.ndarray
    metrics: dict
    # per recorded step and filter, the sum of lr / |w_k|^2 so far (None in older run files)
    normalised_clock: np.ndarray | None = None

    @property
    def init(self) -> np.ndarray:
        return self.weights[0]

    @property
    def final(self) -> np.ndarray:
        return self.weights[-1]


def read_run(path) -> Run:
    with open_checked(path, FORMAT) as handle:
        spec = RunSpec(**json.loads(handle.attrs["spec"]))
        group = handle["first_layer"]
        metrics = {name: handle["metrics"][name][()] for name in handle["metrics"]}
        clock = group["normalised_clock"][()] if "normalised_clock" in group else None
        return Run(
            spec, group["steps"][()], group["epochs"][()], group["weights"][()], metrics, clock
        )


def main(argv=None) -> int:
    """`python -m firstlayer.training.run`: train one run outside the workflow."""
    parser = argparse.ArgumentParser(description="Train one network and record its first layer.")
    parser.add_argument("--spec", required=True, help="JSON object of RunSpec fields")
    parser.add_argument("--data", required=True, help="dataset .h5")
    parser.add_argument("--out", required=True, help="run .h5 to write")
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (resumed if present)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=None,
        help="minutes between checkpoints (default: FIRSTLAYER_CHECKPOINT_MINUTES or 5; 0: every "
        "epoch)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        train(
            RunSpec(**json.loads(args.spec)),
            args.data,
            args.out,
            args.checkpoint,
            log=lambda message: print(message, flush=True),
            minutes=args.checkpoint_minutes,
        )
    except InputError as error:  # one line, as in the workflow
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
