"""Training one network and recording its first layer along the way.

The paper's recipe is the default: plain SGD (lr 0.01, no momentum, no weight decay), batch 256,
cross-entropy, no augmentation. A run may instead use AdamW (its own lr and weight decay, betas
0.9 and 0.999) and the crop_flip augmentation (`training.manipulations`). The training set lives
on the device as one tensor and batches are index slices of a per-epoch permutation (no
DataLoader). Random streams are separate and derived from the run's seed: initialisation, data
order (one per epoch), augmentation draws (one per epoch), labels. The
initialisation stream also takes the run's whole specification (`init_seed`), so no two distinct
runs share an initialisation by accident.

Checkpoints are written by wall-clock interval (FIRSTLAYER_CHECKPOINT_MINUTES, default 5; 0 =
after every epoch), at the end of an epoch when waiting for the next epoch's end would exceed
the interval: a killed run loses at most one interval of work, or one epoch where an epoch takes
longer. The run file is the record of the end. A checkpoint is loaded to the CPU and its state
moved to the model's device, so a run checkpointed on a GPU resumes on the CPU and vice versa;
one that cannot be read is set aside (renamed, logged) and the run starts again. A resumed run
ends bit-identical to an uninterrupted one on the CPU (fixed thread count) and on a GPU in the
reproducible mode (firstlayer.training.devices).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from firstlayer.common.architectures import first_layer
from firstlayer.common.grid import RunSpec
from firstlayer.common.settings import (
    check_augment,
    check_labels,
    check_optimizer,
    check_transform,
)
from firstlayer.datasets.sources import DatasetFile, selected_chunks
from firstlayer.errors import InputError
from firstlayer.h5io import atomic_h5, open_checked
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
    steps.update(step for step in (max(1, round(c / lr)) for c in lr_steps) if lr and step <= total)
    return steps


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
    check_labels(spec.labels)
    check_transform(spec.inputs)
    check_optimizer(spec.optimizer)
    check_augment(spec.augment)
    k = first_layer(spec.arch).k
    with DatasetFile(dataset_path) as data:
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


def checkpoint_minutes(environ=None) -> float:
    """Minutes between checkpoints: FIRSTLAYER_CHECKPOINT_MINUTES, default 5 (0: every epoch)."""
    environ = os.environ if environ is None else environ
    text = environ.get("FIRSTLAYER_CHECKPOINT_MINUTES") or "5"
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes >= 0:
        raise InputError(
            f"FIRSTLAYER_CHECKPOINT_MINUTES={text!r}; allowed: a number of minutes >= 0 "
            f"(0: a checkpoint after every epoch)"
        )
    return minutes


def checkpoint_due(since_last: float, epoch_seconds: float, interval: float) -> bool:
    """Whether to checkpoint at the end of an epoch: when waiting for the next epoch's end
    (about `epoch_seconds` more) would leave more than `interval` seconds unsaved."""
    return since_last + epoch_seconds > interval


def load_checkpoint(path: Path, spec: RunSpec, log=print) -> dict | None:
    """The checkpoint of this run, loaded to the CPU; None when there is none, when it belongs
    to another configuration, or when it cannot be read (then it is renamed aside)."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or not {"spec", "model", "optimizer", "state"} <= set(saved):
            raise ValueError("not a training checkpoint of this project")
    except Exception as error:  # a truncated or foreign file must not fail every retry
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        log(f"checkpoint {path} is unreadable ({reason}); set aside as {aside}, starting over")
        return None
    if saved["spec"] != spec.as_dict():
        log(f"ignoring {path}: it belongs to another configuration")
        return None
    if not {"clock", "clocks"} <= set(saved["state"]):
        log(f"ignoring {path}: written by an earlier version (no normalised clock)")
        return None
    return saved


def restore(saved: dict, model, optimizer) -> dict:
    """Load a checkpoint (on the CPU) into a model and optimizer on any device; the training
    state, whose recorded first layers stay on the CPU, is returned."""
    model.load_state_dict(saved["model"])  # copies into the parameters, on their device
    optimizer.load_state_dict(saved["optimizer"])  # casts its state to each parameter's device
    state = saved["state"]
    state["weights"] = [weights.cpu() for weights in state["weights"]]
    state["clocks"] = [clock.cpu() for clock in state["clocks"]]
    state["resumed_from"].append(state["epoch"])
    return state


def train(
    spec: RunSpec,
    dataset_path,
    out_path,
    checkpoint_path,
    device=None,
    log=print,
    resources=None,
    minutes: float | None = None,
) -> dict:
    """Train one network, checkpointing every `minutes` (default: `checkpoint_minutes()`), and
    write its run file (docs/formats.md). `resources`: the job's Snakemake resources, which say
    whether it must get a GPU."""
    device = torch.device(device) if device else select_device(log, gpu_request(resources))
    mode = gpu_mode()
    configure_precision(device, mode)
    interval = 60 * (checkpoint_minutes() if minutes is None else minutes)
    if spec.epochs < 1 or spec.batch_size < 1:
        raise InputError(f"epochs={spec.epochs}, batch_size={spec.batch_size}; both must be >= 1")
    if spec.precision == "bfloat16" and device.type == "cuda":
        warning = bfloat16_warning(
            torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device)
        )
        if warning:
            log(warning)
    data = prepare_data(spec, dataset_path, device)
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
    steps_per_epoch = -(-n // spec.batch_size)
    recorded = record_steps(steps_per_epoch, spec.epochs, spec.lr, spec.record_lr_steps)
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
    saved = load_checkpoint(checkpoint_path, spec, log)
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

    def on_step(state):
        nonlocal norms2
        state["step"] += 1
        state["clock"] += spec.lr / norms2  # on the device: no host synchronisation
        norms2 = filter_norms2(model)
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
            on_step=lambda: on_step(state),
            augment=augment,
            draws=draws,
        )
        test = evaluate(model, data["x_test"], data["y_test"], spec, device)
        total_loss, total_correct, test_loss, test_acc = (v.item() for v in (*sums, *test))
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
            _save_checkpoint(checkpoint_path, spec, model, optimizer, state)
            last_save = time.perf_counter()
    write_run(out_path, spec, state, data, device, steps_per_epoch, mode)
    checkpoint_path.unlink(missing_ok=True)
    return state


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
    transforms each batch with the rows of `draws` that belong to its positions in `order`."""
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    for first in range(0, len(order), spec.batch_size):
        index = order[first : first + spec.batch_size]
        inputs, targets = x[index], y[index]
        if augment is not None:
            inputs = augment(inputs, draws[first : first + spec.batch_size])
        with _autocast(spec, device):
            out = model(inputs).float()
        loss = F.cross_entropy(out, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach() * len(targets)
        total_correct += (out.argmax(1) == targets).sum()
        if on_step is not None:
            on_step()
    return total_loss, total_correct


def _first(model) -> torch.Tensor:
    return model.first_conv.weight.detach().float().cpu().clone()


def _save_checkpoint(path: Path, spec, model, optimizer, state) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(
        {
            "spec": spec.as_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": state,
        },
        tmp,
    )
    os.replace(tmp, path)


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
    train(
        RunSpec(**json.loads(args.spec)),
        args.data,
        args.out,
        args.checkpoint,
        log=lambda message: print(message, flush=True),
        minutes=args.checkpoint_minutes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
