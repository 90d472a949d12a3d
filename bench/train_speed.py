"""Benchmark: training throughput of the project's trainer against a loop in the style of the
official code, on the same model, batch size and device, in one run.

    python bench/train_speed.py --data resources/datasets/cifar10.h5

- baseline: a torchvision-style dataset (uint8 array -> PIL image -> ToTensor -> Normalize per
  sample) through a DataLoader (shuffle, 0 and 2 workers), float32, NCHW;
- project: the dataset resident on the device as one standardised tensor, batches by index
  slicing, channels_last (firstlayer.training.train_epoch), float32 and opt-in bfloat16 autocast.
Also trains the narrow model briefly in float32 and in bfloat16 from the same seed and reports
the correlation of their first-layer profiles. Prints a Markdown table.
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
from firstlayer.training.models import build
from firstlayer.training.run import train_epoch


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


def model_for(width, channels_last):
    torch.manual_seed(0)
    model = build("vgg11", 64, width)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def baseline(images, labels, mean, std, width, workers, steps, batch):
    model = model_for(width, channels_last=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(
        OfficialStyle(images, labels, mean, std),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    done, start = 0, None
    while done < steps + 2:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == 2:  # after warm-up (workers started, kernels chosen)
                start = time.perf_counter()
            if done == steps + 2:
                break
    return steps * batch / (time.perf_counter() - start)


def project(images, labels, mean, std, width, precision, steps, batch):
    spec = RunSpec(dataset="bench", width=width, batch_size=batch, precision=precision)
    model = model_for(width, channels_last=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    x = (x - torch.tensor(mean).float().view(1, -1, 1, 1)) / torch.tensor(std).float().view(
        1, -1, 1, 1
    )
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(labels)
    order = torch.randperm(len(y))[: 2 * batch]
    device = torch.device("cpu")
    train_epoch(model, optimizer, x, y, order, spec, device)  # warm-up
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))[: steps * batch]
    start = time.perf_counter()
    train_epoch(model, optimizer, x, y, order, spec, device)
    return steps * batch / (time.perf_counter() - start)


def precision_agreement(data, epochs, n_train):
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
            train(spec, data, out, Path(tmp) / f"{precision}.pt", log=lambda m: None)
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
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    with DatasetFile(args.data) as dataset:
        images = dataset.images("train")[: args.images]
        labels = dataset.labels("train")[: args.images]
        mean, std = dataset.mean, dataset.std
    print(
        f"machine: {torch.get_num_threads()} threads, torch {torch.__version__}, CPU; VGG11 "
        f"with 64 first-layer filters, batch {args.batch}, {args.steps} timed steps\n"
    )
    print("| hidden width | loop | images/s | vs baseline (0 workers) | vs baseline (2 workers) |")
    print("|---|---|---|---|---|")
    for width in (0.125, 1.0):
        steps = args.steps if width < 1 else max(4, args.steps // 3)
        rates = {
            "baseline: DataLoader, 0 workers, float32 NCHW": baseline(
                images, labels, mean, std, width, 0, steps, args.batch
            ),
            "baseline: DataLoader, 2 workers, float32 NCHW": baseline(
                images, labels, mean, std, width, 2, steps, args.batch
            ),
            "project: device-resident, float32 channels_last": project(
                images, labels, mean, std, width, "float32", steps, args.batch
            ),
            "project: device-resident, bfloat16 autocast": project(
                images, labels, mean, std, width, "bfloat16", steps, args.batch
            ),
        }
        base0, base2 = list(rates.values())[:2]
        for name, rate in rates.items():
            print(
                f"| {width:g} | {name} | {rate:.0f} | {rate / base0:.2f}x | {rate / base2:.2f}x |",
                flush=True,
            )
    agreement = precision_agreement(args.data, args.agreement_epochs, min(args.images, 5000))
    print(
        f"\nfirst-layer profile correlation, float32 vs bfloat16 (same seed, "
        f"{args.agreement_epochs} epochs, {min(args.images, 5000)} images): {agreement:.4f}"
    )


if __name__ == "__main__":
    main()
