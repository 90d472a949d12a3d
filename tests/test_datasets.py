"""Dataset sources: torchvision downloads (from file:// URLs), ImageFolder trees, npz files."""

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading
import zipfile

import h5py
import numpy as np
import pytest
import torchvision.datasets as tvd
from PIL import Image

from firstlayer.datasets.sources import (
    DatasetError,
    DatasetFile,
    Splits,
    build_dataset,
    channel_stats,
    load_imagefolder,
    load_npz,
    load_subset,
    load_torchvision,
    sample_indices,
    write_dataset,
)
from firstlayer.h5io import FormatError


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def serve(tmp_path):
    """Serve a folder over HTTP on loopback: the real download path of torchvision, end to end.
    (torchvision's downloader needs a Content-Length, which file:// responses lack.)"""
    servers = []

    def start(folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------ torchvision, real formats


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch, serve):
    """A CIFAR-10 archive in the real format (pickled batches in cifar-10-batches-py/ inside a
    .tar.gz), served over loopback HTTP with matching checksums."""
    rng = np.random.default_rng(0)
    members, batches = {}, {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=4)]
        batches[name] = (data, labels)
        members[name] = pickle.dumps({"data": data, "labels": labels, "batch_label": name})
    members["batches.meta"] = pickle.dumps({"label_names": [f"class{i}" for i in range(10)]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    served = tmp_path / "served" / "cifar-10-python.tar.gz"
    served.parent.mkdir()
    served.write_bytes(buffer.getvalue())
    monkeypatch.setattr(tvd.CIFAR10, "url", serve(served.parent) + served.name)
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", md5(served.read_bytes()))
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[n, md5(members[n])] for n in names[:5]])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5(members["test_batch"])]])
    monkeypatch.setattr(
        tvd.CIFAR10,
        "meta",
        {"filename": "batches.meta", "key": "label_names", "md5": md5(members["batches.meta"])},
    )
    return served, batches


def test_cifar10_download_from_url(fake_cifar10, tmp_path):
    served, batches = fake_cifar10
    splits = load_torchvision("CIFAR10", tmp_path / "downloads", key="toy")
    assert (tmp_path / "downloads" / "cifar-10-python.tar.gz").is_file()
    assert splits.images["train"].shape == (20, 32, 32, 3)
    assert splits.images["test"].shape == (4, 32, 32, 3)
    data, labels = batches["data_batch_2"]
    expected = data[1].reshape(3, 32, 32).transpose(1, 2, 0)  # CIFAR rows are CHW planes
    assert np.array_equal(splits.images["train"][5], expected)
    assert splits.labels["train"][5] == labels[1]
    assert splits.class_names[3] == "class3"
    assert splits.source == "torchvision:CIFAR10" and len(splits.source_sha256) == 64


def test_local_archive_means_no_download(fake_cifar10, tmp_path, monkeypatch):
    served, _ = fake_cifar10
    monkeypatch.setattr(tvd.CIFAR10, "url", (tmp_path / "nowhere.tar.gz").as_uri())
    splits = load_torchvision("CIFAR10", tmp_path / "downloads", archive=str(served))
    assert splits.images["train"].shape[0] == 20


def test_corrupt_local_archive_is_refused(fake_cifar10, tmp_path):
    served, _ = fake_cifar10
    bad = tmp_path / "truncated.tar.gz"
    bad.write_bytes(served.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"truncated.tar.gz is corrupt .* md5 differs"):
        load_torchvision("CIFAR10", tmp_path / "downloads", archive=str(bad))


def test_failed_download_says_where_to_put_the_file(fake_cifar10, tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/cifar-10-python.tar.gz"  # nothing listens on the discard port
    monkeypatch.setattr(tvd.CIFAR10, "url", url)
    with pytest.raises(DatasetError) as info:
        load_torchvision("CIFAR10", tmp_path / "dl", key="cifar10")
    message = str(info.value)
    assert "\n" not in message
    assert "could not download dataset 'cifar10' (torchvision CIFAR10)" in message
    assert url in message and str(tmp_path / "dl" / "cifar-10-python.tar.gz") in message
    assert "datasets.cifar10.archive" in message


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_mnist_download_from_url_is_grayscale(tmp_path, monkeypatch, serve):
    rng = np.random.default_rng(1)
    served = tmp_path / "mirror"
    served.mkdir()
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 6),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3),
    }
    resources = []
    for name, array in arrays.items():
        (served / name).write_bytes(_idx(array))
        resources.append((name, md5((served / name).read_bytes())))
    monkeypatch.setattr(tvd.MNIST, "mirrors", [serve(served)])
    monkeypatch.setattr(tvd.MNIST, "resources", resources)
    splits = load_torchvision("MNIST", tmp_path / "dl")
    assert splits.images["train"].shape == (6, 28, 28, 1)
    assert np.array_equal(splits.images["test"][2, ..., 0], arrays["t10k-images-idx3-ubyte.gz"][2])
    assert np.array_equal(splits.labels["train"], arrays["train-labels-idx1-ubyte.gz"])


def test_unknown_torchvision_dataset():
    with pytest.raises(
        DatasetError, match="'ImageNet' is not supported; allowed: CIFAR10, CIFAR100"
    ):
        load_torchvision("ImageNet", "/tmp/unused")


# ------------------------------------------------------------------ ImageFolder trees


def _tree(root, sizes=None, modes=None):
    """train/{cat,dog}/*.png and test/{cat,dog}/*.png with known pixels."""
    rng = np.random.default_rng(2)
    expected = {}
    for split, count in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            for i in range(count):
                key = f"{split}/{cls}/{i}.png"
                size = (sizes or {}).get(key, (6, 5))
                mode = (modes or {}).get(key, "RGB")
                shape = size + ((3,) if mode == "RGB" else ())
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                path = root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels, mode=mode).save(path)
                expected[key] = pixels
    return expected


def test_imagefolder_directory_zip_and_tar_agree(tmp_path):
    expected = _tree(tmp_path / "tree")
    with zipfile.ZipFile(tmp_path / "tree.zip", "w") as archive:
        for key in expected:
            archive.write(tmp_path / "tree" / key, f"toy/{key}")  # one leading folder
    with tarfile.open(tmp_path / "tree.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "tree", arcname=".")
    results = [load_imagefolder(tmp_path / name) for name in ("tree", "tree.zip", "tree.tar.gz")]
    for splits in results:
        assert splits.class_names == ["cat", "dog"]
        assert splits.images["train"].shape == (6, 6, 5, 3)
        assert np.array_equal(splits.labels["train"], [0, 0, 0, 1, 1, 1])
        assert np.array_equal(splits.images["test"][3], expected["test/dog/1.png"])
        assert np.array_equal(splits.images["train"], results[0].images["train"])


def test_imagefolder_mixed_sizes_is_an_error_unless_resized(tmp_path):
    _tree(tmp_path, sizes={"train/dog/1.png": (8, 8)})
    with pytest.raises(
        DatasetError,
        match=r"train/dog/1.png is 8x8 RGB but test/cat/0.png is "
        r"6x5 RGB; .*resize",
    ):
        load_imagefolder(tmp_path)
    splits = load_imagefolder(tmp_path, resize=(4, 4))
    assert splits.images["train"].shape == (6, 4, 4, 3)


def test_imagefolder_mixed_modes_is_an_error_unless_converted(tmp_path):
    _tree(tmp_path, modes={"train/dog/2.png": "L"})
    with pytest.raises(
        DatasetError, match=r"train/dog/2.png is 6x5 L but test/cat/0.png is 6x5 RGB"
    ):
        load_imagefolder(tmp_path)
    assert load_imagefolder(tmp_path, mode="L").images["test"].shape == (4, 6, 5, 1)


def test_imagefolder_without_train_folder(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="no images under train/<class>/"):
        load_imagefolder(tmp_path)


# ------------------------------------------------------------------ npz


def test_npz_source(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (10, 7, 7, 3), dtype=np.uint8)
    y = rng.integers(0, 3, 10)
    np.savez(tmp_path / "d.npz", x=x, y=y, xt=x[:2], yt=y[:2])
    splits = load_npz(
        tmp_path / "d.npz", test_images="xt", test_labels="yt", class_names=["a", "b", "c"]
    )
    assert np.array_equal(splits.images["train"], x) and np.array_equal(
        splits.labels["test"], y[:2]
    )
    gray = load_npz(_save(tmp_path / "g.npz", x=x[..., 0], y=y))
    assert gray.images["train"].shape == (10, 7, 7, 1) and gray.images["test"].shape[0] == 0


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_errors(tmp_path):
    x = np.zeros((4, 5, 5, 3), np.uint8)
    with pytest.raises(DatasetError, match=r"array 'y' is missing; the file has images, x"):
        load_npz(_save(tmp_path / "a.npz", x=x, images=x))
    with pytest.raises(DatasetError, match="has dtype float64; images must be uint8"):
        load_npz(_save(tmp_path / "b.npz", x=x.astype(float), y=np.zeros(4, int)))
    with pytest.raises(DatasetError, match="expected 4 integer labels"):
        load_npz(_save(tmp_path / "c.npz", x=x, y=np.zeros(3, int)))
    objects = np.empty(4, dtype=object)
    with pytest.raises(DatasetError, match="cannot be read without pickle"):
        load_npz(_save(tmp_path / "d.npz", x=x, y=objects))


# ------------------------------------------------------------------ the dataset file


def test_dataset_file_round_trip_and_statistics(tmp_path):
    x = np.random.default_rng(5).integers(0, 256, (12, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(12) % 2)
    build_dataset(
        "toy",
        {"source": "npz", "path": str(tmp_path / "d.npz")},
        tmp_path / "toy.h5",
        tmp_path / "dl",
    )
    with DatasetFile(tmp_path / "toy.h5") as data:
        assert data.shape == (4, 4, 3) and data.count("train") == 12 and data.count("test") == 0
        assert np.array_equal(data.images("train")[()], x)
        assert np.allclose(data.mean, (x / 255).reshape(-1, 3).mean(0), atol=1e-14)
        assert np.allclose(data.std, (x / 255).reshape(-1, 3).std(0), atol=1e-12)
        assert data.class_names == ["0", "1"]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary left behind


def test_foreign_hdf5_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = 1
    with pytest.raises(FormatError, match=r"expected a firstlayer.dataset file.*rule `dataset`"):
        DatasetFile(tmp_path / "other.h5")
    (tmp_path / "cut.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    with pytest.raises(FormatError, match="not a readable HDF5 file"):
        DatasetFile(tmp_path / "cut.h5")


def test_sample_indices_is_seeded_uniform_and_sorted():
    a, b = sample_indices(1000, 100, seed=3), sample_indices(1000, 100, seed=3)
    assert np.array_equal(a, b) and np.all(np.diff(a) > 0) and len(np.unique(a)) == 100
    assert a.max() > 500  # not the first 100
    assert np.array_equal(sample_indices(50, None, 0), np.arange(50))


# ------------------------------------------------------------------ real CIFAR-10


def test_real_cifar10_imagefolder_matches_lossless_copy(shared_data, cifar_lossless):
    splits = load_imagefolder(shared_data / "cifar10-jpeg.zip")
    assert splits.images["train"].shape == (50000, 32, 32, 3)
    assert splits.images["test"].shape == (10000, 32, 32, 3)
    assert np.array_equal(np.bincount(splits.labels["train"]), [5000] * 10)
    assert splits.class_names[:3] == ["airplane", "automobile", "bird"]
    # File NNNN of a class is the image's position within its class in batch order: the JPEG
    # of lossless image i must be close to it (quality 75: ~30 dB PSNR).
    x, y = cifar_lossless
    for i in (0, 1, 2, 1234, 3999):
        position = int(np.sum(y[:i] == y[i]))
        jpeg = splits.images["train"][y[i] * 5000 + position].astype(float)
        psnr = 10 * np.log10(255**2 / np.mean((jpeg - x[i]) ** 2))
        assert psnr > 25, (i, psnr)
    mean, std = channel_stats(splits.images["train"])
    assert np.allclose(mean, [0.4914, 0.4822, 0.4465], atol=2e-3)  # CIFAR-10's known means


def test_real_cifar10_npz(shared_data):
    splits = load_npz(shared_data / "cifar10-train4000-lossless.npz")
    assert splits.images["train"].shape == (4000, 32, 32, 3)
    assert splits.labels["train"].max() == 9


def test_a_subset_keeps_the_named_classes_relabelled_in_order(tmp_path):
    images = np.arange(40 * 4 * 4 * 3, dtype=np.uint8).reshape(40, 4, 4, 3)
    labels = np.arange(40) % 4
    write_dataset(
        tmp_path / "parent.h5",
        Splits(
            {"train": images[:32], "test": images[32:]},
            {"train": labels[:32], "test": labels[32:]},
            ["cat", "dog", "frog", "ship"],
            "p",
            "0" * 64,
        ),
    )
    build_dataset(
        "pair",
        {"source": "subset", "of": "parent", "classes": ["frog", "cat"]},
        tmp_path / "pair.h5",
        None,
        parent_path=tmp_path / "parent.h5",
    )
    with DatasetFile(tmp_path / "pair.h5") as pair:
        assert pair.class_names == ["frog", "cat"]
        train = pair.labels("train")
        assert np.array_equal(pair.images("train")[()], images[:32][np.isin(labels[:32], [0, 2])])
        assert np.array_equal(train, np.where(labels[:32][np.isin(labels[:32], [0, 2])] == 2, 0, 1))
        assert pair.count("test") == 4


def test_a_subset_with_an_unknown_class_names_the_allowed_ones(tmp_path):
    images = np.zeros((8, 4, 4, 3), np.uint8)
    write_dataset(
        tmp_path / "parent.h5",
        Splits(
            {"train": images, "test": images[:0]},
            {"train": np.arange(8) % 2, "test": np.arange(0)},
            ["cat", "dog"],
            "p",
            "0" * 64,
        ),
    )
    with pytest.raises(DatasetError, match="'car' is not a class of .*; allowed: cat, dog"):
        load_subset(tmp_path / "parent.h5", ["car", "dog"], "pair")
