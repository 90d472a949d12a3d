"""Checkpoints of a training run: when they are written, what they record, when one is resumed.

A checkpoint is written by wall-clock interval (FIRSTLAYER_CHECKPOINT_MINUTES, default 5; 0 =
after every epoch), at the end of an epoch when waiting for the next epoch's end would exceed the
interval: a killed run loses at most one interval of work, or one epoch where an epoch takes
longer. It is written under a temporary name and renamed into place. The run file is the record
of the end, after which the checkpoint is deleted.

A checkpoint records what its run depends on (`dependencies`): the run's spec, a checksum of
the data it trains on (every image and label of its dataset file, and the class names:
`DatasetFile.data_sha256`) and the digest of the code that trains it (the `train` rule's `code`
param; outside the workflow, the digest of `firstlayer.training.run` and every module it
imports). A run resumes from a checkpoint only when all three are the same: a checkpoint
written for other data, other code or another configuration, or by an earlier version of this
module, is set aside (renamed `<name>.stale-<time>`; the log says what differs) and the run
starts over, so a resumed run never mixes two datasets or two versions of the code. One that
cannot be read (truncated, foreign) is set aside as `<name>.corrupt-<time>` likewise.

A checkpoint is loaded to the CPU and its state moved to the model's device, so a run
checkpointed on a GPU resumes on the CPU and vice versa. A resumed run ends bit-identical to an
uninterrupted one on the same processor at a fixed thread count, and on a GPU in the
reproducible mode (firstlayer.training.devices).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from firstlayer.errors import InputError

# What a checkpoint must record to be resumed, besides the model and optimizer.
DEPENDS = ("spec", "data_sha256", "code")
# What differs, as the log line says it.
WHAT = {
    "spec": "another configuration of the run",
    "data_sha256": "other data (the dataset's images or labels changed)",
    "code": "another version of the training code",
}


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


def dependencies(spec, data_sha256: str, code: str) -> dict:
    """What a run's result depends on, as its checkpoint records it."""
    return {"spec": spec.as_dict(), "data_sha256": str(data_sha256), "code": str(code)}


def _set_aside(path: Path, tag: str) -> Path:
    aside = path.with_name(f"{path.name}.{tag}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    return aside


def load_checkpoint(path, depends: dict, log=print) -> dict | None:
    """The checkpoint of this run, loaded to the CPU; None when there is none. One that cannot
    be read, or that was written for other dependencies (`dependencies`), is renamed aside with
    a log line, and None is returned: the run starts over."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or not {"model", "optimizer", "state"} <= set(saved):
            raise ValueError("not a training checkpoint of this project")
    except Exception as error:  # a truncated or foreign file must not fail every retry
        aside = _set_aside(path, "corrupt")
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        log(f"checkpoint {path} is unreadable ({reason}); set aside as {aside}, starting over")
        return None
    recorded = saved.get("depends")
    if not isinstance(recorded, dict) or not {"clock", "clocks"} <= set(saved["state"]):
        reason = "by an earlier version of the training code (it records less than a run needs)"
    else:
        differs = [key for key in DEPENDS if recorded.get(key) != depends[key]]
        reason = f"for {WHAT[differs[0]]}" if differs else None
    if reason is not None:
        aside = _set_aside(path, "stale")
        log(f"checkpoint {path} was written {reason}; set aside as {aside}, starting over")
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


def save_checkpoint(path, depends: dict, model, optimizer, state) -> None:
    """Write a checkpoint atomically (a temporary name, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(
        {
            "depends": depends,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": state,
        },
        tmp,
    )
    os.replace(tmp, path)
