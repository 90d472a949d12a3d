"""HDF5 files of the project: atomic writes, provenance, and format checks on read.

Every file carries `format` (what it is), `format_version` and provenance attributes, so that a
truncated, foreign or outdated file is refused with a message naming the rule that rebuilds it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import h5py

from firstlayer.errors import InputError

FORMAT_VERSION = 1

# Which workflow rule writes each format: quoted in errors so a user knows how to rebuild.
PRODUCERS = {
    "firstlayer.dataset": "dataset",
    "firstlayer.patch_stats": "patch_stats",
    "firstlayer.first_layer": "first_layer",
    "firstlayer.run": "train",
    "firstlayer.image_features": "image_features",
}


class FormatError(InputError):
    """An HDF5 file that is not the expected project file (truncated, foreign or outdated)."""


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape numerical results."""
    import numpy
    import torch
    import torchvision

    from . import __version__

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "h5py": h5py.__version__,
        "firstlayer": __version__,
    }


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_h5(
    path: str | os.PathLike, fmt: str, provenance: dict | None = None
) -> Iterator[h5py.File]:
    """Open `path` for writing under a temporary name; rename into place only on success.

    A job killed mid-write leaves at most a `.tmp` file that nothing reads, never a half-written
    output that a later run would trust.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["format"] = fmt
            handle.attrs["format_version"] = FORMAT_VERSION
            handle.attrs["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            handle.attrs["versions"] = json.dumps(package_versions(), sort_keys=True)
            handle.attrs["provenance"] = json.dumps(provenance or {}, sort_keys=True, default=str)
            yield handle
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def open_checked(path: str | os.PathLike, fmt: str) -> h5py.File:
    """Open a project HDF5 file for reading, refusing anything that is not `fmt` at our version."""
    rebuild = f"delete it and rerun the workflow (rule `{PRODUCERS.get(fmt, '?')}` rebuilds it)"
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise FormatError(f"{path}: not a readable HDF5 file ({err}); {rebuild}") from None
    found = handle.attrs.get("format")
    version = handle.attrs.get("format_version")
    if found != fmt or version != FORMAT_VERSION:
        handle.close()
        raise FormatError(
            f"{path}: expected a {fmt} file, format version {FORMAT_VERSION}, "
            f"found format={found!r} version={version!r}; {rebuild}"
        )
    return handle
