"""Benchmark: training throughput of the project's trainer against a loop in the style of the
official code, on the same model, batch size and device, in one run.

    python bench/train_speed.py --data resources/datasets/cifar10.h5 [--device cuda]

- baseline: a torchvision-style dataset (uint8 array -> PIL image -> ToTensor -> Normalize per
  sample) through a DataLoader (shuffle, 0 and 2 workers), float32, NCHW;
- project: the dataset resident on the device as one standardised tensor, batches by index
  slicing, channels_last (firstlayer.training.train_epoch), float32 and opt-in bfloat16 autocast.
Also trains the narrow model briefly in float32 and in bfloat16 from the same seed and reports
the correlation of their first-layer profiles. Prints a Markdown table, the device it ran on
and the rate R to give `python -m firstlayer.training.estimate` (full-width VGG11, float32).

On a GPU every timer waits for the device (torch.cuda.synchronize) before it reads the clock, so
the rate is work done, not work queued; float32 runs in the mode FIRSTLAYER_GPU_MODE selects
(fast: TF32, the default; reproducible: IEEE float32, deterministic), named in the output.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from firstlayer.common.grid import RunSpec
from firstlayer.datasets.sources import DatasetFile
from firstlayer.training.devices import configure_precision, cpu_name, gpu_mode
from firstlayer.training.models import build
from firstlayer.training.run import train_epoch


def sync(device):
    """Wait for the device's queued work, so that a clock read after it measures work done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class OfficialStyle(Dataset):
    """What torchvision's CIFAR10 does per item: PIL image, then the transform."""

    def __init__(self, images, labels, mean, std):
        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(mean.tolist(), std.tolist())]
        )

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def model_for(width, channels_last, device):
    torch.manual_seed(0)
    model = build("vgg11", 64, width).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def baseline(images, labels, mean, std, width, workers, steps, batch, device):
    model = model_for(width, channels_last=False, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(
        OfficialStyle(images, labels, mean, std),
        batch_size=batch,
        shuffle=True,
        drop_last=True,  # full batches only, as in the project's measurement
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    done, start = 0, None
    while done < steps + 2:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == 2:  # after warm-up (workers started, kernels chosen)
                sync(device)
                start = time.perf_counter()
            if done == steps + 2:
                break
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def full_batches(n, steps, batch, seed):
    """Indices for exactly `steps` full batches (permutations of the n images, repeated): a
    partial batch would be a new shape, which cuDNN's autotuner (GPU fast mode) times anew
    inside the measured window."""
    generator = torch.Generator().manual_seed(seed)
    rounds = -(-steps * batch // n)
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(rounds)])[
        : steps * batch
    ]


def project(images, labels, mean, std, width, precision, steps, batch, device):
    spec = RunSpec(dataset="bench", width=width, batch_size=batch, precision=precision)
    model = model_for(width, channels_last=True, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div(255)
    x = (x - torch.tensor(mean, device=device).float().view(1, -1, 1, 1)) / torch.tensor(
        std, device=device
    ).float().view(1, -1, 1, 1)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(labels).to(device)
    order = full_batches(len(y), 2, batch, seed=0).to(device)
    train_epoch(model, optimizer, x, y, order, spec, device)  # warm-up
    order = full_batches(len(y), steps, batch, seed=1).to(device)
    sync(device)
    start = time.perf_counter()
    train_epoch(model, optimizer, x, y, order, spec, device)
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def describe(device, mode) -> str:
    """The device as the table's heading names it."""
    if device.type == "cuda":
        return (
            f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}, float32 mode {mode}"
        )
    return f"CPU ({cpu_name()}), {torch.get_num_threads()} threads"


def precision_agreement(data, epochs, n_train, device):
    """Profiles of float32 and bfloat16 runs from the same seed: Pearson correlation."""
    import tempfile
    from pathlib import Path

    from firstlayer.patches.profiles import energy_profile, similarity
    from firstlayer.patches.stats import patch_statistics
    from firstlayer.training.run import read_run, train

    with tempfile.TemporaryDirectory() as tmp, DatasetFile(data) as dataset:
        stats = patch_statistics(
            dataset.images("train"),
            3,
            dataset.mean,
            dataset.std,
            indices=np.arange(0, dataset.count("train"), 5),
        )
        profiles = {}
        for precision in ("float32", "bfloat16"):
            spec = RunSpec(
                dataset="bench", width=0.125, epochs=epochs, n_train=n_train, precision=precision
            )
            out = Path(tmp) / f"{precision}.h5"
            train(spec, data, out, Path(tmp) / f"{precision}.pt", device, lambda m: None)
            run = read_run(out)
            profiles[precision] = energy_profile(run.final, stats.eigenvectors, reference=run.init)
    return similarity(profiles["float32"], profiles["bfloat16"])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="a dataset .h5 of the workflow (CIFAR-10)")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per measurement")
    parser.add_argument("--agreement-epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device; allowed here: cpu")
    mode = gpu_mode()
    configure_precision(device, mode)
    with DatasetFile(args.data) as dataset:
        images = dataset.images("train")[: args.images]
        labels = dataset.labels("train")[: args.images]
        mean, std = dataset.mean, dataset.std
    if len(labels) < args.batch:
        parser.error(f"--images {len(labels)}: fewer than one batch; allowed: >= {args.batch}")
    print(
        f"machine: {describe(device, mode)}, torch {torch.__version__}; VGG11 with 64 "
        f"first-layer filters, batch {args.batch}, {args.steps} timed steps\n"
    )
    print("| hidden width | loop | images/s | vs baseline (0 workers) | vs baseline (2 workers) |")
    print("|---|---|---|---|---|")
    common = (images, labels, mean, std)
    reference = None
    for width in (0.125, 1.0):
        steps = args.steps if width < 1 or device.type == "cuda" else max(4, args.steps // 3)
        rates = {
            "baseline: DataLoader, 0 workers, float32 NCHW": baseline(
                *common, width, 0, steps, args.batch, device
            ),
            "baseline: DataLoader, 2 workers, float32 NCHW": baseline(
                *common, width, 2, steps, args.batch, device
            ),
            "project: device-resident, float32 channels_last": project(
                *common, width, "float32", steps, args.batch, device
            ),
            "project: device-resident, bfloat16 autocast": project(
                *common, width, "bfloat16", steps, args.batch, device
            ),
        }
        reference = rates["project: device-resident, float32 channels_last"]
        base0, base2 = list(rates.values())[:2]
        for name, rate in rates.items():
            print(
                f"| {width:g} | {name} | {rate:.0f} | {rate / base0:.2f}x | {rate / base2:.2f}x |",
                flush=True,
            )
    print(
        f"\nR for the compute estimate (full width, float32, this device): {reference:.0f} "
        f"images/s\n  python -m firstlayer.training.estimate config/paper.yaml "
        f"--images-per-second {reference:.0f}"
    )
    agreement = precision_agreement(
        args.data, args.agreement_epochs, min(args.images, 5000), device
    )
    print(
        f"\nfirst-layer profile correlation, float32 vs bfloat16 (same seed, "
        f"{args.agreement_epochs} epochs, {min(args.images, 5000)} images): {agreement:.4f}"
    )


if __name__ == "__main__":
    main()
