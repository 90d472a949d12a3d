"""What a training run checks in its first seconds, before it reads its images or builds its
network: that its name states what it trains on, that its data can train it, and that it fits in
the memory the job may use. Each problem is one line naming the run (InputError).

- `n_train` larger than the dataset's training split is refused (the name says `_n5000`; the run
  would train on fewer images); a training set of one image is refused (batch norm needs two).
- A component number (`scaleNxA`, `decileN`) beyond the patch dimension d = C k^2 of the
  dataset's images is refused (the workflow's gate refuses it already where it knows C).
- Memory: what the run itself holds by the cost model (`firstlayer.common.cost`: its data as
  uint8 and float32, 16 bytes per parameter, one batch's activations), from the dataset file's
  real sizes, without the margin and the runtime's share a cluster request adds, against what
  the job may use: the machine's memory, or the job's cgroup limit where smaller (SLURM confines
  a job to its request this way).
"""

from __future__ import annotations

import os
from pathlib import Path

from firstlayer.common.architectures import check_fits, first_layer
from firstlayer.common.cost import MEMORY_SAFETY, RUNTIME_MB, training_request
from firstlayer.common.facts import TorchvisionDataset
from firstlayer.common.grid import RunSpec
from firstlayer.common.settings import (
    check_labels,
    check_spelling,
    check_transform,
    component_number,
)
from firstlayer.errors import InputError

CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def memory_limit_mb(cgroup_files=CGROUP_LIMITS) -> tuple[float, str]:
    """(MB, what limits it): the memory a job may use on this machine."""
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    what = "this machine's memory"
    for path in cgroup_files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) / 2**20 < limit:
            limit, what = int(text) / 2**20, f"the job's memory limit ({path})"
    return limit, what


def estimated_mb(spec: RunSpec, facts: TorchvisionDataset) -> float:
    """What a run holds in memory by the cost model: its request without the margin and the
    Python/torch runtime's share (the request rounds up to 500 MB, so this errs high by less)."""
    return training_request(spec, facts, 1.0).mem_mb / MEMORY_SAFETY - RUNTIME_MB


def check_run(
    name: str, spec: RunSpec, shape, train_images: int, test_images: int, classes: int, limit=None
) -> None:
    """Refuse a run its data or memory cannot train (module docstring); `shape`: the dataset's
    (height, width, channels); `limit`: (MB, what) or None for `memory_limit_mb()`."""
    where = f"run {name}"
    try:
        check_labels(spec.labels)
        check_transform(spec.inputs)
        check_spelling(spec.inputs)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    if spec.n_train is not None and spec.n_train > train_images:
        raise InputError(
            f"{where}: n_train = {spec.n_train}, but the training split of {spec.dataset} holds "
            f"{train_images} images; allowed: n_train <= {train_images}, or null for all of them "
            f"(a run's name states what it trained on)"
        )
    if min(spec.n_train or train_images, train_images) < 2:
        raise InputError(
            f"{where}: trains on 1 image; allowed: at least 2 (batch norm needs two values per "
            f"channel)"
        )
    try:
        check_fits(spec.arch, min(shape[:2]))
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    k = first_layer(spec.arch).k
    d = shape[2] * k**2
    for key, value in (("labels", spec.labels), ("inputs", spec.inputs)):
        number = component_number(value)
        if number is not None and number > d:
            raise InputError(
                f"{where}: {key} {value!r} names principal component {number}; allowed: 1..{d} "
                f"for {k}x{k} patches of the {shape[2]}-channel images of {spec.dataset}"
            )
    n_train = min(spec.n_train or train_images, train_images)
    n_test = test_images if spec.n_test is None else min(spec.n_test, test_images)
    classes = 10 if spec.labels.startswith("decile") else classes
    facts = TorchvisionDataset(max(shape[:2]), shape[2], n_train, n_test, classes)
    need = estimated_mb(spec, facts)
    limit, what = limit or memory_limit_mb()
    if need > limit:
        raise InputError(
            f"{where}: needs about {need:,.0f} MB of memory for its data, parameters and one "
            f"batch's activations (the cost model's estimate for "
            f"{spec.first_width} first-layer filters, width {spec.width:g}, batch "
            f"{spec.batch_size}), more than the {limit:,.0f} MB of {what}; allowed: a smaller "
            f"first_width, width or batch_size, or a machine with more memory"
        )
