"""Datasets as one HDF5 file each: uint8 NHWC images and int labels per split.

Sources: a torchvision built-in (real download with checksum, or a local archive the user
already has; CelebA with one binary attribute as the label), an ImageFolder tree (directory or
.zip/.tar/.tar.gz) or an .npz file.
Layout of the written file: docs/formats.md.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firstlayer.common.facts import CELEBA_ATTRIBUTE, CELEBA_SIDE
from firstlayer.errors import InputError
from firstlayer.h5io import atomic_h5, open_checked, sha256_file

SPLITS = ("train", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
FORMAT = "firstlayer.dataset"
CHECKSUMS = "checksums.json"  # the md5s of a synthetic copy's files, beside them


class DatasetError(InputError):
    """A dataset source that cannot be read or fetched; the message says what to do."""


@dataclass
class Splits:
    """Images (uint8, N x H x W x C) and labels per split, before they are written."""

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    class_names: list[str]
    source: str
    source_sha256: str
    notes: dict = field(default_factory=dict)


# ---------------------------------------------------------------- torchvision built-ins


def _torchvision_class(name: str):
    import torchvision.datasets as tvd

    if name not in TORCHVISION_BUILTINS:
        raise DatasetError(
            f"torchvision dataset {name!r} is not supported; allowed: "
            f"{', '.join(sorted(TORCHVISION_BUILTINS))}"
        )
    return getattr(tvd, name)


def _cifar_files(cls):
    return [(cls.url, cls.filename, cls.tgz_md5)]


def _mnist_files(cls):
    return [
        (f"{cls.mirrors[0]}{filename}", f"{cls.__name__}/raw/{filename}", md5)
        for filename, md5 in cls.resources
    ]


def _svhn_files(cls):
    return [
        (url, filename, md5)
        for split, (url, filename, md5) in cls.split_list.items()
        if split in SPLITS
    ]


def _celeba_files(cls):
    return [
        (f"https://drive.google.com/uc?id={file_id}", f"{cls.base_folder}/{filename}", md5)
        for file_id, md5, filename in cls.file_list
    ]


# name -> (files it downloads: [(url, path under the download root, md5)], split keyword style)
TORCHVISION_BUILTINS = {
    "CIFAR10": (_cifar_files, "train"),
    "CIFAR100": (_cifar_files, "train"),
    "MNIST": (_mnist_files, "train"),
    "FashionMNIST": (_mnist_files, "train"),
    "KMNIST": (_mnist_files, "train"),
    "SVHN": (_svhn_files, "split"),
    "CelebA": (_celeba_files, "split"),
}


def torchvision_files(name: str, checksums: dict | None = None) -> list[tuple[str, str, str]]:
    """[(url, path under the download root, md5)] of what torchvision fetches for `name`; with
    `checksums` ({file name: md5}), the md5 of each file is taken from there instead of from
    torchvision (a synthetic copy in torchvision's formats, e.g. the rehearsal's)."""
    cls = _torchvision_class(name)
    files = TORCHVISION_BUILTINS[name][0](cls)
    if checksums is None:
        return files
    return [
        (url, relative, _expected(checksums, Path(relative).name)) for url, relative, _ in files
    ]


def _expected(checksums: dict, filename: str) -> str:
    if filename not in checksums:
        raise DatasetError(f"the checksums given for a local copy name no md5 for {filename}")
    return checksums[filename]


def _checked_class(cls, checksums: dict | None):
    """torchvision's dataset class, or, with `checksums`, a subclass whose own integrity checks
    (every archive and extracted file torchvision verifies) expect those md5s instead."""
    if checksums is None:
        return cls
    md5 = functools.partial(_expected, checksums)
    attributes = {}
    if hasattr(cls, "tgz_md5"):  # CIFAR-10/100: the archive, its batches and its meta file
        attributes["tgz_md5"] = md5(cls.filename)
        attributes["train_list"] = [[name, md5(name)] for name, _ in cls.train_list]
        attributes["test_list"] = [[name, md5(name)] for name, _ in cls.test_list]
        attributes["meta"] = {**cls.meta, "md5": md5(cls.meta["filename"])}
    elif hasattr(cls, "split_list"):  # SVHN
        attributes["split_list"] = {
            split: [url, filename, md5(filename)]
            for split, (url, filename, _) in cls.split_list.items()
            if split in SPLITS
        }
    elif hasattr(cls, "file_list"):  # CelebA
        attributes["file_list"] = [(i, md5(filename), filename) for i, _, filename in cls.file_list]
    else:  # the MNIST family
        attributes["resources"] = [(filename, md5(filename)) for filename, _ in cls.resources]
    return type(cls.__name__, (cls,), attributes)


def _place_local_archive(
    name: str, archive: Path, root: Path, checksums: dict | None = None
) -> None:
    """Copy a user's already-downloaded file(s) to where torchvision looks, after an md5 check
    (against torchvision's md5, or `checksums` for a synthetic copy)."""
    from torchvision.datasets.utils import check_integrity

    archive = Path(archive)
    files = torchvision_files(name, checksums)
    if not archive.exists():
        raise DatasetError(f"archive {archive} for {name} does not exist")
    expected = (
        "the checksum given for this copy" if checksums else "the checksum torchvision expects"
    )
    for _url, relative, md5 in files:
        candidate = archive / Path(relative).name if archive.is_dir() else archive
        if archive.is_file() and len(files) > 1:
            raise DatasetError(
                f"{name} needs {len(files)} files "
                f"({', '.join(Path(f[1]).name for f in files)}): point archive at "
                f"the directory holding them, not at {archive}"
            )
        if not candidate.is_file():
            raise DatasetError(f"{candidate} is missing: {name} needs {Path(relative).name}")
        if not check_integrity(str(candidate), md5):
            raise DatasetError(
                f"{candidate} is corrupt or not the {name} file: its md5 differs "
                f"from {md5} ({expected})"
            )
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.exists() and check_integrity(str(target), md5)):
            shutil.copyfile(candidate, target)


def load_torchvision(
    name: str,
    root: str | os.PathLike,
    archive: str | None = None,
    key: str | None = None,
    checksums: dict | None = None,
    attribute: str | None = None,
    resize: tuple[int, int] | None = None,
    progress=None,
) -> Splits:
    """Download (or take from `archive`) a torchvision built-in and return its splits.

    `checksums` ({file name: md5}) replaces torchvision's md5s in every check (ours and
    torchvision's own): the way a synthetic copy in torchvision's formats is read. CelebA takes
    `attribute` (one of its 40 binary attributes, default CELEBA_ATTRIBUTE) as the label and
    `resize` ([height, width], default the networks' 32 x 32) for its images."""
    cls = _checked_class(_torchvision_class(name), checksums)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        _place_local_archive(name, Path(archive), root, checksums)
    files = torchvision_files(name, checksums)
    style = TORCHVISION_BUILTINS[name][1]
    splits_images, splits_labels, classes = {}, {}, None
    for split in SPLITS:
        kwargs = {"train": split == "train"} if style == "train" else {"split": split}
        try:
            if name == "CelebA":
                dataset = _celeba(cls, root, split, archive is not None)
            else:
                dataset = cls(str(root), download=True, **kwargs)
        except Exception as err:  # urllib, OSError, RuntimeError: all mean "could not fetch"
            reason = " ".join(str(err).split())[:300]
            where = ", ".join(f"{url} -> {root / relative}" for url, relative, _ in files)
            raise DatasetError(
                f"could not download dataset {key or name!r} (torchvision {name}): {reason}. "
                f"Offline? Fetch it by hand ({where}) or set datasets.{key or name}.archive to a "
                f"local copy"
            ) from None
        if name == "CelebA":
            images, labels, classes = celeba_split(dataset, attribute, resize, progress)
        else:
            images = np.asarray(dataset.data)
            if name == "SVHN":
                images = images.transpose(0, 2, 3, 1)
            labels = dataset.labels if name == "SVHN" else dataset.targets
            classes = list(getattr(dataset, "classes", None) or [str(i) for i in range(10)])
        if images.ndim == 3:
            images = images[..., None]
        splits_images[split] = np.ascontiguousarray(images, np.uint8)
        splits_labels[split] = np.asarray(labels, dtype=np.int64)
    digest = hashlib.sha256()
    for _, relative, _ in files:
        digest.update(sha256_file(root / relative).encode())
    return Splits(
        splits_images,
        splits_labels,
        [str(c) for c in classes],
        source=f"torchvision:{name}",
        source_sha256=digest.hexdigest(),
        notes={"urls": [url for url, _, _ in files]}
        | ({"attribute": attribute or CELEBA_ATTRIBUTE} if name == "CelebA" else {}),
    )


def _celeba(cls, root: Path, split: str, local: bool):
    """torchvision's CelebA split. Its download fetches from Google Drive and needs `gdown`
    even for files already in place, so a local copy (checked when placed) is only unpacked."""
    from torchvision.datasets.utils import extract_archive

    folder = root / cls.base_folder
    if local and not (folder / "img_align_celeba").is_dir():
        extract_archive(str(folder / "img_align_celeba.zip"))
    return cls(str(root), split=split, target_type="attr", download=not local)


def celeba_split(dataset, attribute: str | None, resize, progress=None):
    """(images, labels, class names) of a torchvision CelebA split: every aligned 178 x 218 face
    cropped to its central square and resized (bilinear) to `resize`, labelled by one binary
    attribute (1: the attribute is present)."""
    from PIL import Image

    attribute = attribute or CELEBA_ATTRIBUTE
    if attribute not in dataset.attr_names:
        raise DatasetError(
            f"CelebA attribute {attribute!r} is not in this copy's list_attr_celeba.txt; "
            f"allowed: {', '.join(a for a in dataset.attr_names if a)}"
        )
    height, width = resize or (CELEBA_SIDE, CELEBA_SIDE)
    folder = Path(dataset.root) / dataset.base_folder / "img_align_celeba"
    images = np.zeros((len(dataset.filename), height, width, 3), np.uint8)
    for index, filename in enumerate(dataset.filename):
        with Image.open(folder / filename) as image:
            image = image.convert("RGB")
            side = min(image.size)
            left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
            image = image.crop((left, top, left + side, top + side))
            images[index] = np.asarray(image.resize((width, height), Image.BILINEAR))
        if progress is not None and (index + 1) % 5000 == 0:
            progress(index + 1)
    labels = dataset.attr[:, dataset.attr_names.index(attribute)].numpy()
    return images, labels, [f"not {attribute}", attribute]


# ---------------------------------------------------------------- ImageFolder trees


ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error)


def _archive_error(path: Path, err: Exception) -> DatasetError:
    reason = " ".join(str(err).split())[:200] or type(err).__name__
    return DatasetError(
        f"{path}: truncated or corrupt archive ({reason}); replace it with a complete copy"
    )


def _files_below(path: Path):
    """Every file below a folder, following symlinked folders (each real folder once)."""
    seen = set()
    for folder, subfolders, files in os.walk(path, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop or a folder linked twice
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        for name in sorted(files):
            file = Path(folder) / name
            if file.is_file():
                yield file


def _folders_below(path: Path):
    """Every folder below a folder, following symlinked folders (each real folder once)."""
    seen = set()
    for folder, subfolders, _ in os.walk(path, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        if Path(folder) != path:
            yield Path(folder)


def _members(path: Path, folders: bool = False):
    """Yield (relative posix path, read() -> bytes) for every file of a directory or archive,
    and with `folders` also (relative posix path, None) for every folder it lists."""
    name = path.name.lower()
    if path.is_dir():
        if folders:
            for folder in sorted(_folders_below(path)):
                yield folder.relative_to(path).as_posix(), None
        for file in sorted(_files_below(path)):
            yield file.relative_to(path).as_posix(), file.read_bytes
    elif name.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(path)
            infos = archive.infolist()
        except ARCHIVE_ERRORS as err:
            raise _archive_error(path, err) from None
        with archive:
            for info in infos:
                if info.is_dir():
                    if folders:
                        yield info.filename.rstrip("/"), None
                else:

                    def read(info=info):
                        try:
                            return archive.read(info)
                        except ARCHIVE_ERRORS as err:
                            raise _archive_error(path, err) from None

                    yield info.filename, read
    elif name.endswith((".tar", ".tar.gz", ".tgz")):
        try:
            archive = tarfile.open(path, "r:*")
        except ARCHIVE_ERRORS as err:
            raise _archive_error(path, err) from None
        with archive:
            members = iter(archive)
            while True:  # sequential: fast for compressed tars
                try:
                    member = next(members, None)
                    if member is None:
                        break
                    if member.isdir() and folders:
                        yield member.name.rstrip("/").removeprefix("./"), None
                    if not member.isfile():
                        continue
                    data = archive.extractfile(member).read()
                except ARCHIVE_ERRORS as err:
                    raise _archive_error(path, err) from None
                yield member.name, (lambda data=data: data)
    else:
        raise DatasetError(
            f"imagefolder path {path} is neither a directory nor a .zip/.tar/.tar.gz/.tgz archive"
        )


def _sha256_tree(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for relative, read in _members(path):
        digest.update(relative.encode() + b"\0" + hashlib.sha256(read()).digest())
    return digest.hexdigest()


def load_imagefolder(
    path: str | os.PathLike,
    resize: tuple[int, int] | None = None,
    mode: str | None = None,
    progress=None,
) -> Splits:
    """Read `train/<class>/*` and `test/<class>/*` images (one leading folder is allowed).

    All images must share one size and one colour mode unless `resize` ([height, width]) or
    `mode` ("RGB" or "L") is given. Class indices follow sorted class names, as ImageFolder.
    """
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"imagefolder path {path} does not exist")
    entries, class_folders, skipped = [], set(), []
    for relative, read in _members(path, folders=True):
        relative = relative.removeprefix("./")
        parts = relative.split("/")
        if read is None:  # a folder: split/<class> is a class folder, even an empty one
            if len(parts) >= 2 and parts[-2] in SPLITS:
                class_folders.add((parts[-2], parts[-1], relative))
            continue
        image = Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES
        if len(parts) < 3 or parts[-3] not in SPLITS:
            if image and any(part in SPLITS for part in parts[:-1]):
                raise DatasetError(
                    f"{path}: image {relative} is not directly in a class folder; allowed: "
                    f"train/<class>/<image> and test/<class>/<image> (images elsewhere would be "
                    f"left out, and their class with them)"
                )
            continue
        class_folders.add((parts[-3], parts[-2], "/".join(parts[:-1])))
        if not image:
            skipped.append(relative)
            continue
        entries.append((parts[-3], parts[-2], relative, read()))
        if progress is not None and len(entries) % 5000 == 0:
            progress(len(entries))
    if not any(split == "train" for split, *_ in entries):
        raise DatasetError(
            f"{path} has no images under train/<class>/: expected an ImageFolder "
            f"tree train/<class>/*.jpg and test/<class>/*.jpg"
        )
    with_images = {(split, cls) for split, cls, *_ in entries}
    for split, cls, folder in sorted(class_folders):
        if split == "train" and (split, cls) not in with_images:
            raise DatasetError(
                f"{path}: class folder {folder}/ holds no images; allowed: at least one image "
                f"(.png, .jpg, ...) directly in every class folder of train/, or remove the "
                f"folder (its class would be left out)"
            )
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    class_names = sorted({cls for split, cls, *_ in entries if split == "train"})
    unknown = sorted({cls for split, cls, *_ in entries if split == "test"} - set(class_names))
    if unknown:
        raise DatasetError(f"{path}: test classes {unknown} do not occur in train/")
    index = {name: i for i, name in enumerate(class_names)}
    images = {s: [] for s in SPLITS}
    labels = {s: [] for s in SPLITS}
    reference = None
    for split, cls, relative, data in entries:
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception as err:
            raise DatasetError(f"{path}: cannot decode image {relative} ({err})") from None
        if mode is not None:
            image = image.convert(mode)
        elif image.mode not in ("L", "RGB"):
            raise DatasetError(
                f"{path}: image {relative} has colour mode {image.mode}; allowed: "
                f"L or RGB (set the dataset's mode to RGB or L to convert)"
            )
        if resize is not None:
            image = image.resize((resize[1], resize[0]), Image.BILINEAR)
        signature = (image.size, image.mode)
        if reference is None:
            reference = (signature, relative)
        elif signature != reference[0]:
            (size, m), first = reference
            raise DatasetError(
                f"{path}: image {relative} is {image.size[1]}x{image.size[0]} {image.mode} but "
                f"{first} is {size[1]}x{size[0]} {m}; images must share size and mode "
                f"(set the dataset's resize: [height, width] and/or mode)"
            )
        array = np.asarray(image, dtype=np.uint8)
        images[split].append(array[..., None] if array.ndim == 2 else array)
        labels[split].append(index[cls])
    (width, height), _ = reference[0]
    channels = images["train"][0].shape[-1]
    print(
        f"read {len(images['train'])} training and {len(images['test'])} test images of "
        f"{len(class_names)} classes from {path}"
        + (
            f"; left out {len(skipped)} files that are not images, e.g. {skipped[0]}"
            if skipped
            else ""
        )
    )
    stacked = {
        s: np.stack(images[s]) if images[s] else np.zeros((0, height, width, channels), np.uint8)
        for s in SPLITS
    }
    return Splits(
        stacked,
        {s: np.asarray(labels[s], np.int64) for s in SPLITS},
        class_names,
        source=f"imagefolder:{path}",
        source_sha256=_sha256_tree(path),
    )


# ---------------------------------------------------------------- .npz arrays


def load_npz(
    path: str | os.PathLike,
    images: str = "x",
    labels: str = "y",
    test_images: str | None = None,
    test_labels: str | None = None,
    class_names: list[str] | None = None,
) -> Splits:
    """Arrays from an .npz (no pickles are ever loaded): uint8 images N x H x W [x C]."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"npz file {path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DatasetError(f"{path}: not a readable .npz file ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path}: a single .npy array, not an .npz archive of named arrays")
    with archive:
        available = sorted(archive.files)

        def take(key):
            if key not in available:
                raise DatasetError(
                    f"{path}: array {key!r} is missing; the file has "
                    f"{', '.join(available) or 'no arrays'}"
                )
            try:
                return archive[key]
            except ValueError as err:  # object arrays need pickle: refused
                raise DatasetError(
                    f"{path}: array {key!r} cannot be read without pickle "
                    f"({err}); store plain numeric arrays"
                ) from None
            except ARCHIVE_ERRORS as err:
                raise _archive_error(path, err) from None

        pairs = {"train": (images, labels)}
        if (test_images is None) != (test_labels is None):
            raise DatasetError("npz datasets need both test_images and test_labels, or neither")
        if test_images is not None:
            pairs["test"] = (test_images, test_labels)
        out_images, out_labels = {}, {}
        for split, (image_key, label_key) in pairs.items():
            x, y = take(image_key), take(label_key)
            if x.dtype != np.uint8:
                raise DatasetError(
                    f"{path}: array {image_key!r} has dtype {x.dtype}; images must be uint8 (0-255)"
                )
            if x.ndim == 3:
                x = x[..., None]
            if x.ndim != 4 or x.shape[-1] not in (1, 3):
                raise DatasetError(
                    f"{path}: array {image_key!r} has shape {x.shape}; expected "
                    f"N x H x W or N x H x W x C with C = 1 or 3"
                )
            if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
                raise DatasetError(
                    f"{path}: array {label_key!r} has shape {y.shape} and dtype "
                    f"{y.dtype}; expected {len(x)} integer labels"
                )
            if len(y) and y.min() < 0:
                raise DatasetError(
                    f"{path}: array {label_key!r} holds label {int(y.min())}; labels must be "
                    f"class indices 0, 1, ..."
                )
            out_images[split], out_labels[split] = np.ascontiguousarray(x), y.astype(np.int64)
    if "test" not in out_images:
        out_images["test"] = out_images["train"][:0]
        out_labels["test"] = out_labels["train"][:0]
    elif out_images["test"].shape[1:] != out_images["train"].shape[1:]:
        shapes = ["x".join(map(str, out_images[split].shape[1:])) for split in ("train", "test")]
        raise DatasetError(
            f"{path}: array {test_images!r} holds {shapes[1]} images (height x width x "
            f"channels) but {images!r} holds {shapes[0]}; allowed: test images of the training "
            f"images' size and channels"
        )
    n_classes = (
        int(max(out_labels["train"].max(initial=-1), out_labels["test"].max(initial=-1))) + 1
    )
    if class_names is None:
        used = np.union1d(out_labels["train"], out_labels["test"])
        if len(used) < n_classes:
            first = next(i for i in range(len(used) + 1) if i == len(used) or used[i] != i)
            raise DatasetError(
                f"{path}: labels run up to {n_classes - 1}, so the network would have "
                f"{n_classes} outputs, but {n_classes - len(used)} of these classes (e.g. "
                f"{first}) have no image; allowed: labels numbered 0..K-1 with every class used, "
                f"or class_names in the config naming every class"
            )
        class_names = [str(i) for i in range(n_classes)]
    elif len(class_names) < n_classes:
        raise DatasetError(
            f"{path}: label {n_classes - 1} is outside the {len(class_names)} class_names of "
            f"the config; allowed: labels 0..{len(class_names) - 1}"
        )
    return Splits(
        out_images,
        out_labels,
        list(class_names),
        source=f"npz:{path}",
        source_sha256=sha256_file(path),
    )


# ---------------------------------------------------------------- the dataset file


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 NHWC images, in [0, 1] units, summed in float64."""
    total = np.zeros(images.shape[-1])
    square = np.zeros(images.shape[-1])
    count = 0
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].astype(np.float64) / 255.0
        total += x.sum(axis=(0, 1, 2))
        square += np.square(x).sum(axis=(0, 1, 2))
        count += x.shape[0] * x.shape[1] * x.shape[2]
    mean = total / count
    return mean, np.sqrt(np.maximum(square / count - mean**2, 0))


def write_dataset(path, splits: Splits, provenance: dict | None = None) -> None:
    train = splits.images["train"]
    if len(train) == 0:
        raise DatasetError("the training split is empty")
    classes = np.unique(splits.labels["train"])
    if len(classes) < 2:
        raise DatasetError(
            f"{splits.source}: the training split holds images of one class only "
            f"({splits.class_names[int(classes[0])] if len(classes) else '?'}); allowed: at least "
            f"two classes (training and the label statistics compare classes)"
        )
    mean, std = channel_stats(train)
    with atomic_h5(path, FORMAT, provenance) as handle:
        for split in SPLITS:
            group = handle.create_group(split)
            x = splits.images[split]
            chunks = (min(len(x), 256),) + x.shape[1:] if len(x) else None
            group.create_dataset("images", data=x, chunks=chunks)
            group.create_dataset("labels", data=splits.labels[split])
            group.attrs["count"] = len(x)
        handle.attrs.update(
            {
                "class_names": json.dumps(splits.class_names),
                "height": train.shape[1],
                "width": train.shape[2],
                "channels": train.shape[3],
                "mean": mean,
                "std": std,
                "source": splits.source,
                "source_sha256": splits.source_sha256,
                "notes": json.dumps(splits.notes),
            }
        )


class DatasetFile:
    """Read access to a dataset HDF5 file; images are read lazily."""

    def __init__(self, path):
        self.path = Path(path)
        self._handle = open_checked(path, FORMAT)
        attrs = self._handle.attrs
        self.class_names = json.loads(attrs["class_names"])
        self.shape = (int(attrs["height"]), int(attrs["width"]), int(attrs["channels"]))
        self.mean, self.std = np.asarray(attrs["mean"]), np.asarray(attrs["std"])
        self.source_sha256 = str(attrs["source_sha256"])

    def images(self, split: str):
        self._check_split(split)
        return self._handle[split]["images"]

    def labels(self, split: str) -> np.ndarray:
        self._check_split(split)
        return self._handle[split]["labels"][()]

    def data_sha256(self, chunk: int = 4096) -> str:
        """A checksum of what a run trains on: every split's images and labels and the class
        names (not the file's creation time or provenance, which change when it is rebuilt)."""
        digest = hashlib.sha256(json.dumps(self.class_names).encode())
        for split in SPLITS:
            images = self.images(split)
            digest.update(f"{split}{images.shape}".encode())
            for start in range(0, images.shape[0], chunk):
                digest.update(np.ascontiguousarray(images[start : start + chunk]).tobytes())
            digest.update(np.ascontiguousarray(self.labels(split), np.int64).tobytes())
        return digest.hexdigest()

    def count(self, split: str) -> int:
        self._check_split(split)
        return int(self._handle[split].attrs["count"])

    def _check_split(self, split):
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; allowed: {', '.join(SPLITS)}")

    def close(self):
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sample_indices(total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded uniform sample of n of `total` items (all when n is None or
    at least total): a random subset, never the first n files of a class-sorted tree."""
    if n is None or n >= total:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=n, replace=False))


def selected_chunks(images, indices, chunk: int):
    """Yield images[indices] (sorted indices) `chunk` at a time, reading each chunk as one
    contiguous slice: much faster than HDF5 point selection, and memory stays bounded."""
    indices = np.asarray(indices)
    for start in range(0, len(indices), chunk):
        part = indices[start : start + chunk]
        block = images[int(part[0]) : int(part[-1]) + 1]
        yield block[part - part[0]]


def load_subset(parent_path, classes: list[str], key: str = "?") -> Splits:
    """The images of some classes of another dataset file, relabelled 0..len(classes)-1 in
    the order given (e.g. CIFAR-10 automobile vs truck)."""
    with DatasetFile(parent_path) as parent:
        missing = [name for name in classes if name not in parent.class_names]
        if missing:
            raise DatasetError(
                f"datasets.{key}.classes: {missing[0]!r} is not a class of "
                f"{parent_path}; allowed: {', '.join(parent.class_names)}"
            )
        wanted = [parent.class_names.index(name) for name in classes]
        images, labels = {}, {}
        for split in SPLITS:
            all_labels = parent.labels(split)
            indices = np.flatnonzero(np.isin(all_labels, wanted))
            data = parent.images(split)
            images[split] = (
                np.concatenate(list(selected_chunks(data, indices, 4096)))
                if len(indices)
                else np.zeros((0, *parent.shape), np.uint8)
            )
            # relabel in the order the classes were listed, not their order in the parent
            relabel = np.full(len(parent.class_names), -1, np.int64)
            relabel[wanted] = np.arange(len(wanted))
            labels[split] = relabel[all_labels[indices]]
        return Splits(
            images,
            labels,
            list(classes),
            source=f"subset:{parent_path}",
            source_sha256=parent.source_sha256,
            notes={"parent": str(parent_path), "classes": list(classes)},
        )


def build_dataset(
    key: str,
    spec: dict,
    out_path,
    download_root,
    progress=None,
    parent_path=None,
    synthetic=None,
) -> None:
    """Build the dataset file for config entry `key` with settings `spec` (see config/schema).
    `synthetic`: a folder of a torchvision dataset's files in torchvision's own formats with a
    `checksums.json` of their md5s (`datasets.synthetic`, the rehearsal's stand-in), read
    through the same source path and checks as the real files."""
    archive = checksums = None
    if synthetic is not None:
        archive = synthetic
        checksums = json.loads((Path(synthetic) / CHECKSUMS).read_text())
    source = spec["source"]
    if source == "torchvision":
        resize = spec.get("resize")
        splits = load_torchvision(
            spec["name"],
            download_root,
            archive or spec.get("archive"),
            key=key,
            checksums=checksums,
            attribute=spec.get("attribute"),
            resize=tuple(resize) if resize else None,
            progress=progress,
        )
    elif source == "imagefolder":
        resize = spec.get("resize")
        splits = load_imagefolder(
            spec["path"], tuple(resize) if resize else None, spec.get("mode"), progress=progress
        )
    elif source == "npz":
        splits = load_npz(
            spec["path"],
            spec.get("images", "x"),
            spec.get("labels", "y"),
            spec.get("test_images"),
            spec.get("test_labels"),
            spec.get("class_names"),
        )
    elif source == "subset":
        splits = load_subset(parent_path, spec["classes"], key)
    else:
        raise DatasetError(
            f"datasets.{key}.source={source!r}; allowed: torchvision, imagefolder, npz, subset"
        )
    write_dataset(out_path, splits, provenance={"dataset": key, "spec": spec, **splits.notes})
