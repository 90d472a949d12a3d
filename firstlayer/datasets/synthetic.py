"""Small synthetic copies of torchvision's datasets in torchvision's own file formats, for the
rehearsal (`rehearsal: true`) and the tests: nothing is downloaded, yet the dataset is read
through the real torchvision source path and its checks.

A copy is a folder holding the very files torchvision downloads (CIFAR's pickled batches inside
a .tar.gz, MNIST's gzipped idx files, SVHN's .mat files, CelebA's zip of aligned JPEG faces and
its attribute, identity, box, landmark and partition lists) and `checksums.json`, the md5 of
every file torchvision verifies (archives and extracted members). `sources.load_torchvision`
checks the copy against those md5s exactly as it checks a real download against torchvision's;
without them (a normal config pointing `archive` at a synthetic copy) the copy is refused.

The images are smooth random textures with a faint class-dependent tint (so true labels carry a
little signal); classes are balanced in both splits, so class-balanced samples of up to
`TRAIN` training and `TEST` test images exist for every dataset.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from firstlayer.common.facts import CELEBA_ATTRIBUTES, TORCHVISION_DATASETS
from firstlayer.common.rehearsal import CELEBA_VALID_SHARE, SYNTHETIC_TEST, SYNTHETIC_TRAIN
from firstlayer.datasets.sources import CHECKSUMS, DatasetError, _torchvision_class

TRAIN = SYNTHETIC_TRAIN  # training images of every copy (CelebA: 1,100 train, 100 valid)
TEST = SYNTHETIC_TEST  # test images
CELEBA_SHAPE = (218, 178)  # height, width of CelebA's aligned faces


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def textures(labels: np.ndarray, height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """uint8 images (N, H, W, C): blurred noise (neighbouring pixels correlate, as in natural
    images) plus a tint that depends on the class."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(labels), height + 2, width + 2, channels)).astype(np.float32)
    x = (x[:, :-2, :-2] + x[:, 1:-1, 1:-1] + x[:, 2:, 2:] + x[:, 1:-1, :-2] + x[:, :-2, 1:-1]) / 5
    tint = np.random.default_rng(seed + 1).normal(scale=12, size=(int(labels.max()) + 1, channels))
    x = 128 + 60 * x + tint[labels][:, None, None, :]
    return np.clip(x, 0, 255).astype(np.uint8)


def balanced_labels(count: int, classes: int) -> np.ndarray:
    return np.arange(count) % classes


def _tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz of the members, byte-identical on every build (no dates, fixed order)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            for name, payload in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


# The class names of the real datasets, in label order: configs name classes (subsets do).
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CIFAR100_CLASSES = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach
couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail
snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger
tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()


def _cifar(cls, classes, seed, train, test) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(files of the folder, members whose md5 torchvision checks) for CIFAR-10 or CIFAR-100."""
    labels = {"train": balanced_labels(train, classes), "test": balanced_labels(test, classes)}
    key = "labels" if classes == 10 else "fine_labels"
    members = {}
    for split, names in (("train", cls.train_list), ("test", cls.test_list)):
        images = textures(labels[split], 32, 32, 3, seed + (split == "test"))
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # CIFAR rows: CHW planes
        for part, (name, _) in zip(np.array_split(np.arange(len(rows)), len(names)), names):
            entry = {"data": rows[part], key: [int(v) for v in labels[split][part]]}
            if classes != 10:
                entry["coarse_labels"] = [int(v) % 20 for v in labels[split][part]]
            members[name] = pickle.dumps(entry, protocol=2)
    meta = {cls.meta["key"]: CIFAR10_CLASSES if classes == 10 else CIFAR100_CLASSES}
    if classes != 10:
        meta["coarse_label_names"] = [f"group{c}" for c in range(20)]
    members[cls.meta["filename"]] = pickle.dumps(meta, protocol=2)
    archive = _tar_gz({f"{cls.base_folder}/{name}": data for name, data in members.items()})
    return {cls.filename: archive}, members


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(
        struct.pack(">I", side) for side in array.shape
    )
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped:
        zipped.write(header + array.astype(np.uint8).tobytes())
    return buffer.getvalue()


def _mnist(cls, seed, train, test) -> tuple[dict[str, bytes], dict[str, bytes]]:
    labels = {"train": balanced_labels(train, 10), "t10k": balanced_labels(test, 10)}
    files = {}
    for filename, _ in cls.resources:
        split = "train" if filename.startswith("train") else "t10k"
        if "labels" in filename:
            files[filename] = _idx(labels[split])
        else:
            files[filename] = _idx(
                textures(labels[split], 28, 28, 1, seed + (split == "t10k"))[..., 0]
            )
    return files, {}


def _svhn(cls, seed, train, test) -> tuple[dict[str, bytes], dict[str, bytes]]:
    from scipy.io import savemat

    files = {}
    for split, count in (("train", train), ("test", test)):
        labels = balanced_labels(count, 10)
        images = textures(labels, 32, 32, 3, seed + (split == "test"))
        buffer = io.BytesIO()
        # SVHN's layout: X is H x W x C x N, y holds 1..10 with 10 for the digit 0
        savemat(
            buffer,
            {"X": images.transpose(1, 2, 3, 0), "y": np.where(labels == 0, 10, labels)[:, None]},
        )
        files[cls.split_list[split][1]] = buffer.getvalue()
    return files, {}


def _celeba(cls, seed, train, test) -> tuple[dict[str, bytes], dict[str, bytes]]:
    from PIL import Image

    valid = train // CELEBA_VALID_SHARE
    partition = [0] * (train - valid) + [1] * valid + [2] * test  # train, valid, test
    names = [f"{index + 1:06d}.jpg" for index in range(len(partition))]
    # attribute j of image i is present when i + j is even: every attribute balanced per split
    present = (np.arange(len(names))[:, None] + np.arange(len(CELEBA_ATTRIBUTES))[None]) % 2 == 0
    # textures drawn at half the size and doubled: a quarter of the work, still smooth
    half = textures(present[:, 0].astype(int), CELEBA_SHAPE[0] // 2, CELEBA_SHAPE[1] // 2, 3, seed)
    faces = half.repeat(2, axis=1).repeat(2, axis=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, face in zip(names, faces):
            jpeg = io.BytesIO()
            Image.fromarray(face).save(jpeg, format="JPEG", quality=90)
            info = zipfile.ZipInfo(f"img_align_celeba/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, jpeg.getvalue())
    count = str(len(names))
    height, width = CELEBA_SHAPE
    lists = {
        "list_attr_celeba.txt": [count, " ".join(CELEBA_ATTRIBUTES)]
        + [f"{n} " + " ".join("1" if p else "-1" for p in row) for n, row in zip(names, present)],
        "identity_CelebA.txt": [f"{n} {1 + i % 50}" for i, n in enumerate(names)],
        "list_bbox_celeba.txt": [count, "image_id x_1 y_1 width height"]
        + [f"{n} 0 0 {width} {height}" for n in names],
        "list_landmarks_align_celeba.txt": [
            count,
            "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
            "rightmouth_x rightmouth_y",
        ]
        + [f"{n} 69 109 106 113 77 142 73 152 108 154" for n in names],
        "list_eval_partition.txt": [f"{n} {p}" for n, p in zip(names, partition)],
    }
    files = {"img_align_celeba.zip": buffer.getvalue()}
    files |= {name: ("\n".join(lines) + "\n").encode() for name, lines in lists.items()}
    expected = {filename for _, _, filename in cls.file_list}
    if set(files) != expected:
        raise DatasetError(
            f"synthetic CelebA writes {sorted(files)}; torchvision reads {sorted(expected)}"
        )
    return files, {}


def write_synthetic(
    name: str, folder, seed: int = 0, train: int = TRAIN, test: int = TEST
) -> dict[str, str]:
    """Write the synthetic copy of torchvision dataset `name` into `folder` (its files and
    `checksums.json`), `train` and `test` images (CelebA: `train` split into its train and
    valid partitions, 11 to 1); returns {file name: md5}."""
    if name not in TORCHVISION_DATASETS:
        raise DatasetError(
            f"no synthetic copy of torchvision dataset {name!r}; allowed: "
            f"{', '.join(TORCHVISION_DATASETS)}"
        )
    cls = _torchvision_class(name)
    if name in ("CIFAR10", "CIFAR100"):
        files, members = _cifar(cls, TORCHVISION_DATASETS[name].classes, seed, train, test)
    elif name == "SVHN":
        files, members = _svhn(cls, seed, train, test)
    elif name == "CelebA":
        files, members = _celeba(cls, seed, train, test)
    else:
        files, members = _mnist(cls, seed, train, test)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for filename, data in files.items():
        (folder / filename).write_bytes(data)
    checksums = {filename: md5(data) for filename, data in {**files, **members}.items()}
    (folder / CHECKSUMS).write_text(json.dumps(checksums, indent=1, sort_keys=True) + "\n")
    return checksums
