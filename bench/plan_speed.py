"""Benchmark: how long Snakemake takes to plan the workflow (parse it, build the job graph) in a
dry run, and how much memory it needs.

    python bench/plan_speed.py [--repeats 3]

Each row runs `snakemake -n --quiet` (or a baseline) in a fresh process from the project folder,
`--repeats` times; the table gives the median wall and CPU time and the largest peak RSS (on a
busy machine wall time grows with the load, CPU time much less). Baselines in
the same run: Snakemake planning a one-rule workflow (its own floor), and `import torch` (what
every plan paid while the grid was built by a module that imported torch). Planning with the
cluster profile adds its settings; the jobs it would submit are the same. Prints a Markdown
table and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TARGETS = {"paper": 2.0, "10,000-run grid": 30.0}


def measure(command, cwd) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one run of `command` in
    its own process."""
    code = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[2:], cwd=sys.argv[1], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - start\n"
        "assert done.returncode == 0, done.stderr[-2000:]\n"
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(cwd), *command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def count_jobs(configfile: str) -> tuple[int, int]:
    """(jobs, trainings) a dry run of the config plans."""
    done = subprocess.run(
        [*SNAKEMAKE, "-n", "--configfile", configfile], cwd=ROOT, capture_output=True, text=True
    )
    total = trainings = 0
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            total = int(parts[1]) if parts[0] == "total" else total
            trainings = int(parts[1]) if parts[0] == "train" else trainings
    return total, trainings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    floor = Path(tempfile.mkdtemp(prefix="firstlayer-plan-"))
    (floor / "Snakefile").write_text('rule a:\n    output: "a"\n    shell: "touch a"\n')
    rows = [
        ("baseline: Snakemake, one-rule workflow", [*SNAKEMAKE, "-n", "--quiet"], floor, None),
        ("baseline: import torch", [sys.executable, "-c", "import torch"], ROOT, None),
        ("default config", [*SNAKEMAKE, "-n", "--quiet"], ROOT, "config/config.yaml"),
        ("paper", [*SNAKEMAKE, "-n", "--quiet", "--configfile", "config/paper.yaml"], ROOT,
         "config/paper.yaml"),
        ("paper, cluster profile", [*SNAKEMAKE, "-n", "--quiet", "--configfile",
         "config/paper.yaml", "--profile", "profiles/slurm"], ROOT, None),
        ("10,000-run grid", [*SNAKEMAKE, "-n", "--quiet", "--configfile", "bench/grid10k.yaml"],
         ROOT, "bench/grid10k.yaml"),
    ]  # fmt: skip
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or '?'}, "
        f"Python {platform.python_version()}; load average before: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n"
    )
    print(
        "| what | jobs (trainings) | wall, median (s) | CPU, median (s) | peak RSS (MB) | target |"
    )
    print("|---|---|---|---|---|---|")
    for name, command, cwd, configfile in rows:
        runs = [measure(command, cwd) for _ in range(args.repeats)]
        jobs = "{} ({})".format(*count_jobs(configfile)) if configfile else ""
        target = f"< {TARGETS[name]:g} s" if name in TARGETS else ""
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        peak = max(r[2] for r in runs)
        print(f"| {name} | {jobs} | {wall:.2f} | {cpu:.2f} | {peak:.0f} | {target} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
