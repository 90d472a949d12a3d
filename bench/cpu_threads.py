"""Benchmark: how to spend a CPU's cores on the workflow's trainings, in one run.

    python bench/cpu_threads.py [--cores 2] [--steps 20]

The default grid trains several small networks (VGG11, 64 first-layer filters, hidden width
0.125, batch 256). On `--cores` cores they can train one at a time with all the cores as torch
threads (the baseline: what rule `train` did with `threads: 2`) or side by side, one thread
each (what it does now). Each setting trains the same model on random inputs of CIFAR-10's
shape for `--steps` timed steps after 3 warm-up steps, in separate processes started together;
the table gives the images per second of the whole machine and the gain over the baseline.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time


def worker(threads: int, steps: int, batch: int, width: float, barrier, results) -> None:
    import torch

    from firstlayer.common.grid import RunSpec
    from firstlayer.training.models import build
    from firstlayer.training.run import train_epoch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build("vgg11", 64, width).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch * 4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch * 4,))
    spec = RunSpec(dataset="bench", width=width, batch_size=batch)
    device = torch.device("cpu")
    order = torch.arange(batch * 3) % len(y)
    train_epoch(model, optimizer, x, y, order, spec, device)  # warm-up
    order = torch.arange(batch * steps) % len(y)
    barrier.wait()
    start = time.perf_counter()
    train_epoch(model, optimizer, x, y, order, spec, device)
    results.put((start, time.perf_counter(), batch * steps))


def measure(processes: int, threads: int, steps: int, batch: int, width: float) -> float:
    """Images per second of `processes` concurrent trainings with `threads` threads each."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    jobs = [
        context.Process(target=worker, args=(threads, steps, batch, width, barrier, results))
        for _ in range(processes)
    ]
    for job in jobs:
        job.start()
    done = [results.get() for _ in jobs]
    for job in jobs:
        job.join()
        if job.exitcode:
            raise SystemExit(f"a benchmark process failed (exit {job.exitcode})")
    first, last = min(s for s, _, _ in done), max(e for _, e, _ in done)
    return sum(images for _, _, images in done) / (last - first)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores to spend")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per training")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.125, help="hidden-layer width")
    args = parser.parse_args()
    if args.cores < 1 or args.steps < 1 or args.batch < 1:
        parser.error(
            f"--cores {args.cores}, --steps {args.steps}, --batch {args.batch}: all must be >= 1"
        )
    from firstlayer.training.devices import cpu_name

    print(
        f"machine: CPU ({cpu_name()}), {args.cores} cores spent; VGG11, 64 first-layer filters, "
        f"hidden width {args.width}, batch {args.batch}, {args.steps} timed steps\n"
    )
    print("| setting | trainings at once | threads each | images/s (machine) | vs baseline |")
    print("|---|---|---|---|---|")
    settings = [
        ("baseline: one at a time, all cores", 1, args.cores),
        ("side by side, one thread each", args.cores, 1),
    ]
    reference = None
    for name, processes, threads in settings:
        rate = measure(processes, threads, args.steps, args.batch, args.width)
        reference = reference or rate
        print(f"| {name} | {processes} | {threads} | {rate:,.0f} | {rate / reference:.2f}x |")


if __name__ == "__main__":
    main()
