"""Benchmark: patch PCA of CIFAR-10, the original demo's method against this project's.

    python bench/patch_pca.py --data /path/to/cifar10-jpeg.zip   (or a dataset .h5 of the workflow)

Each measurement runs in its own subprocess; peak RSS is counted from just before the method
starts (after imports and image loading), and 'added' is that peak minus the RSS at that point.
- demo:    materialise every patch in float64, torch.pca_lowrank(q=d) as the original notebook
           (default niter), in a memory-capped subprocess; if it cannot hold all images, the
           largest number that fits (halving) is used and the table says so.
- project: firstlayer.patches.patch_statistics (exact float64 streaming moments + eigh).
- reference: exact float64 covariance by a different exact path (the unfold strategy) + eigh.
Prints a Markdown table: wall time, peak memory, eigenvalue error against the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


def load_images(data: str, n: int, seed: int = 0) -> np.ndarray:
    from firstlayer.datasets.sources import DatasetFile, load_imagefolder, sample_indices

    if data.endswith(".h5"):
        with DatasetFile(data) as dataset:
            images = dataset.images("train")[()]
    else:
        cache = Path(os.environ.get("TMPDIR", "/tmp")) / "firstlayer-bench-train.npy"
        if not cache.exists():
            np.save(cache, load_imagefolder(data).images["train"])
        images = np.load(cache, mmap_mode="r")
    return np.ascontiguousarray(images[sample_indices(len(images), n, seed)])


def worker(method: str, data: str, k: int, n: int) -> dict:
    """Runs in a subprocess: one method on n images; prints JSON."""
    import torch

    from firstlayer.datasets.sources import channel_stats
    from firstlayer.patches.stats import patch_statistics, to_input_space

    images = load_images(data, n)
    mean, std = channel_stats(images)
    reset_peak_rss()
    rss_before_mb = current_rss_mb()
    start = time.perf_counter()
    if method == "demo":
        x = to_input_space(images, mean, std).permute(0, 3, 1, 2)
        patches = torch.nn.functional.unfold(x, k).transpose(1, 2).reshape(-1, 3 * k * k)
        del x
        _, s, _ = torch.pca_lowrank(patches, q=3 * k * k)
        eigenvalues = (s**2 / (patches.shape[0] - 1)).numpy()
    else:
        stats = patch_statistics(
            images, k, mean, std, chunk=1000, strategy="unfold" if method == "reference" else "auto"
        )
        eigenvalues = stats.eigenvalues * stats.count / (stats.count - 1)  # unbiased, as the demo
    seconds = time.perf_counter() - start
    peak_mb = current_rss_mb("VmHWM:")
    return {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "added_mb": peak_mb - rss_before_mb,
        "eigenvalues": eigenvalues.tolist(),
        "n": n,
    }


def reset_peak_rss() -> None:
    """Start the peak-RSS count (VmHWM) afresh, so loading the images is not counted (Linux)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def current_rss_mb(field: str = "VmRSS:") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status: this benchmark measures memory on Linux")


def run(method, data, k, n, cap_gb=None):
    def limit():
        if cap_gb:
            resource.setrlimit(resource.RLIMIT_AS, (int(cap_gb * 2**30),) * 2)

    proc = subprocess.run(
        [
            sys.executable,
            str(HERE),
            "--worker",
            method,
            "--data",
            data,
            "--k",
            str(k),
            "--images",
            str(n),
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
    )
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="cifar10-jpeg.zip or a dataset .h5")
    parser.add_argument("--images", type=int, default=10000, help="images for the comparison")
    parser.add_argument(
        "--all-images", type=int, default=50000, help="images for the full-split run"
    )
    parser.add_argument("--cap-gb", type=float, default=20.0, help="memory cap of the demo method")
    parser.add_argument("--k", type=int, nargs="+", default=[3, 7])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.k[0], args.images)))
        return
    load_images(args.data, 1)  # build the decoded-image cache once, outside the timings
    print(f"machine: {os.cpu_count()} cores; demo capped at {args.cap_gb:g} GB address space\n")
    print(
        "| k | method | images | wall s | peak RSS MB | added by the method MB | "
        "max rel. eigenvalue error | rel. error of smallest |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for k in args.k:
        references = {args.images: run("reference", args.data, k, args.images)}
        rows = [("reference (exact, unfold)", references[args.images])]
        n, demo = args.images, None
        while n >= 250 and demo is None:
            demo = run("demo", args.data, k, n, args.cap_gb)
            if demo is None:
                n //= 2
        if demo is not None and demo["n"] not in references:
            references[demo["n"]] = run("reference", args.data, k, demo["n"])
            rows.append((f"reference (exact, unfold), {demo['n']} images", references[demo["n"]]))
        rows.append(("demo (all patches + pca_lowrank)", demo))
        project = run("project", args.data, k, args.images)
        rows.append(("project (streaming, exact)", project))
        rows.append(
            (f"project, {args.all_images} images", run("project", args.data, k, args.all_images))
        )
        for name, result in rows:
            if result is None:
                print(f"| {k} | {name} | - | failed under the cap | | | | |")
                continue
            values = np.array(result["eigenvalues"])
            note = (
                " (most that fit)" if name.startswith("demo") and result["n"] < args.images else ""
            )
            if result["n"] in references:
                ref = np.array(references[result["n"]]["eigenvalues"])
                error = np.abs(values - ref) / ref
                errors = f"{error.max():.1e} | {error[-1]:.1e}"
            else:
                errors = "- | -"
            print(
                f"| {k} | {name} | {result['n']}{note} | {result['seconds']:.2f} | "
                f"{result['peak_mb']:.0f} | {result['added_mb']:.0f} | {errors} |",
                flush=True,
            )
        if demo is not None:
            same = project if demo["n"] == args.images else run("project", args.data, k, demo["n"])
            print(
                f"| {k} | **project vs demo, {demo['n']} images** | | "
                f"**{demo['seconds'] / same['seconds']:.0f}x faster** | "
                f"**{demo['peak_mb'] / same['peak_mb']:.1f}x less** | "
                f"**{demo['added_mb'] / same['added_mb']:.0f}x less** | | |",
                flush=True,
            )


if __name__ == "__main__":
    main()
