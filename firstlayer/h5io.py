"""HDF5 files of the project: atomic writes, provenance, and format checks on read.

Every file carries `format` (what it is), `format_version`, provenance attributes and a checksum
of its whole content (every array and attribute), so that a truncated, foreign, outdated or
corrupted file (a bit flip, a missing array) is refused with a message naming the rule that
rebuilds it, never read.
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
import numpy as np

from firstlayer.errors import InputError

FORMAT_VERSION = 2  # 2: files carry CHECKSUM_ATTR
CHECKSUM_ATTR = "content_sha256"

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
            handle.attrs[CHECKSUM_ATTR] = content_sha256(handle)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _feed(digest, value) -> None:
    array = np.asarray(value)
    if array.dtype.kind == "O":  # variable-length strings
        array = np.asarray([str(v) for v in array.ravel()])
    digest.update(f"{array.dtype.str}{array.shape}".encode() + array.tobytes())


def content_sha256(handle: h5py.File, rows: int = 4096) -> str:
    """Checksum of every array (dtype, shape, bytes) and attribute of an open HDF5 file, except
    the checksum attribute itself; arrays are read `rows` at a time."""
    digest = hashlib.sha256()
    objects = [("/", handle)]
    handle.visititems(lambda name, obj: objects.append((name, obj)))
    for name, obj in sorted(objects, key=lambda item: item[0]):
        digest.update(f"\0{name}".encode())
        for key in sorted(obj.attrs):
            if not (obj is handle and key == CHECKSUM_ATTR):
                digest.update(f"@{key}".encode())
                _feed(digest, obj.attrs[key])
        if isinstance(obj, h5py.Dataset):
            if obj.ndim == 0:
                _feed(digest, obj[()])
            else:
                digest.update(f"{obj.dtype.str}{obj.shape}".encode())
                for start in range(0, obj.shape[0], rows):
                    digest.update(np.ascontiguousarray(obj[start : start + rows]).tobytes())
    return digest.hexdigest()


def open_checked(path: str | os.PathLike, fmt: str) -> h5py.File:
    """Open a project HDF5 file for reading, refusing anything that is not `fmt` at our version
    or whose content no longer matches the checksum written with it."""
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
    try:
        intact = handle.attrs.get(CHECKSUM_ATTR) == content_sha256(handle)
    except (OSError, KeyError, ValueError, RuntimeError) as err:  # unreadable chunks or links
        intact, reason = False, f"unreadable content ({' '.join(str(err).split())[:120]})"
    else:
        reason = "its content differs from the checksum written with it"
    if not intact:
        handle.close()
        raise FormatError(f"{path}: corrupted: {reason}; {rebuild}")
    return handle
