"""First layers from torchvision's weights= API (through a local torch cache) and user files."""

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision.models as tvm
from conftest import smooth_images

from firstlayer.common.facts import MODELS_K3, MODELS_K7
from firstlayer.h5io import atomic_h5
from firstlayer.patches.profiles import energy_profile
from firstlayer.patches.stats import patch_statistics, write_patch_stats
from firstlayer.pretrained.cli import main as cli_main
from firstlayer.pretrained.layers import (
    FirstLayer,
    WeightsError,
    build_model,
    first_conv,
    group_profiles,
    layer_profile,
    load_weight_file,
    read_first_layer,
    torchvision_first_layer,
    write_first_layer,
)

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture
def torch_cache(tmp_path, monkeypatch):
    """An empty torch cache (TORCH_HOME) and no route to the internet (a dead proxy), so that
    only what a test places in the cache can load."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")

    def place(name, state_dict):
        weights = tvm.get_model_weights(name).DEFAULT
        target = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(weights.url)
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state_dict, target)

    return place


def test_model_lists_have_the_stated_kernel_sizes():
    """Every listed model's first conv really is 3x3 / 7x7 (built on the meta device: no memory)."""
    with torch.device("meta"):
        for names, k in ((MODELS_K3, 3), (MODELS_K7, 7)):
            for name in names:
                kwargs = (
                    {"weights_backbone": None}
                    if name.split("_")[0] in ("fcn", "deeplabv3", "lraspp")
                    else {}
                )
                if name in ("googlenet", "inception_v3"):
                    kwargs["init_weights"] = False
                conv = first_conv(tvm.get_model(name, weights=None, **kwargs))
                assert conv.kernel_size == (k, k) and conv.in_channels == 3, name


@pytest.mark.parametrize("name,k", [("mobilenet_v3_small", 3), ("lraspp_mobilenet_v3_large", 3)])
def test_weights_api_loads_from_the_torch_cache(torch_cache, name, k):
    kwargs = {"weights_backbone": None, "num_classes": 21} if name.startswith("lraspp") else {}
    reference = tvm.get_model(name, weights=None, **kwargs)
    torch_cache(name, reference.state_dict())
    layer = torchvision_first_layer(name)
    assert layer.weight.shape[-2:] == (k, k)
    assert np.array_equal(layer.weight, first_conv(reference).weight.detach().numpy())
    assert np.allclose(layer.input_mean, IMAGENET_MEAN) and np.allclose(
        layer.input_std, IMAGENET_STD
    )
    assert "IMAGENET1K" in layer.source or "COCO" in layer.source


def test_googlenet_sees_its_own_transformed_input(torch_cache):
    reference = tvm.googlenet(weights=None, aux_logits=True, init_weights=False)
    torch_cache("googlenet", reference.state_dict())
    layer = torchvision_first_layer("googlenet")
    assert layer.k == 7
    # transform_input maps ImageNet-normalised input to (x - 0.5) / 0.5 before conv1
    assert np.allclose(layer.input_mean, 0.5) and np.allclose(layer.input_std, 0.5)


def test_offline_download_fails_with_a_clear_message(torch_cache):
    with pytest.raises(WeightsError) as info:
        build_model("resnet18")
    message = str(info.value)
    assert "could not load ResNet18_Weights.IMAGENET1K_V1 for resnet18 from https://" in message
    assert os.path.join("hub", "checkpoints", "resnet18-") in message and "\n" not in message


def test_unknown_model():
    with pytest.raises(WeightsError, match="'vgg99' is not a torchvision model"):
        build_model("vgg99")


@pytest.fixture
def stats(tmp_path):
    stats = patch_statistics(
        smooth_images(20, 12, 12, 3), 3, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    )
    path = tmp_path / "k3.h5"
    with atomic_h5(path, "firstlayer.patch_stats") as handle:
        write_patch_stats(handle, stats)
    return stats, path


def test_profile_in_the_models_input_space(stats):
    """The profile equals the one on patches computed directly in the model's input space."""
    stats, _ = stats
    weight = np.random.default_rng(0).normal(size=(8, 3, 3, 3))
    layer = FirstLayer("m", weight, np.array(IMAGENET_MEAN), np.array(IMAGENET_STD), "test")
    direct = patch_statistics(smooth_images(20, 12, 12, 3), 3, IMAGENET_MEAN, IMAGENET_STD)
    assert np.allclose(
        layer_profile(layer, stats), energy_profile(weight, direct.eigenvectors), rtol=1e-8
    )
    raw = patch_statistics(smooth_images(20, 12, 12, 3), 3, [0, 0, 0], [1, 1, 1])
    assert np.allclose(
        layer_profile(layer, stats, "raw"), energy_profile(weight, raw.eigenvectors), rtol=1e-8
    )
    with pytest.raises(WeightsError, match="first layer 3x5x5 does not match patches 3x3x3"):
        layer_profile(
            FirstLayer("big", np.ones((2, 3, 5, 5)), layer.input_mean, layer.input_std, ""), stats
        )


def test_user_weight_files(tmp_path):
    weight = np.random.default_rng(1).normal(size=(4, 3, 3, 3)).astype(np.float32)
    np.save(tmp_path / "w.npy", weight)
    assert np.array_equal(load_weight_file(tmp_path / "w.npy"), weight)
    torch.save(
        {"state_dict": {"conv1.weight": torch.from_numpy(weight), "fc.bias": torch.zeros(2)}},
        tmp_path / "ckpt.pt",
    )
    assert np.array_equal(load_weight_file(tmp_path / "ckpt.pt", "conv1.weight"), weight)
    with pytest.raises(
        WeightsError, match=r"no tensor 'conv0.weight'; 4-D tensors in the file: conv1.weight"
    ):
        load_weight_file(tmp_path / "ckpt.pt", "conv0.weight")
    np.save(tmp_path / "flat.npy", weight.reshape(4, -1))
    with pytest.raises(WeightsError, match=r"shape \(4, 27\); expected a first conv layer"):
        load_weight_file(tmp_path / "flat.npy")
    np.save(tmp_path / "int.npy", weight.astype(np.int32))
    with pytest.raises(WeightsError, match="dtype int32; expected floating point"):
        load_weight_file(tmp_path / "int.npy")
    np.save(tmp_path / "obj.npy", np.array([weight, None], dtype=object))
    with pytest.raises(WeightsError, match="refused"):
        load_weight_file(tmp_path / "obj.npy")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if unpickled


def test_pickle_that_would_execute_code_is_refused(tmp_path):
    marker = tmp_path / "executed"
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"conv1.weight": _Exploit(str(marker))}, handle)
    with pytest.raises(WeightsError, match="not a safely loadable PyTorch file"):
        load_weight_file(tmp_path / "evil.pt", "conv1.weight")
    assert not marker.exists()


def test_first_layer_file_round_trip_and_group(tmp_path, stats):
    stats, _ = stats
    a = FirstLayer(
        "a",
        np.random.default_rng(2).normal(size=(6, 3, 3, 3)),
        np.array(IMAGENET_MEAN),
        np.array(IMAGENET_STD),
        "torchvision:X",
    )
    b = FirstLayer(
        "b",
        np.random.default_rng(3).normal(size=(6, 3, 7, 7)),
        np.array([]),
        np.array([]),
        "file:b.npy",
    )
    write_first_layer(tmp_path / "a.h5", a)
    write_first_layer(tmp_path / "b.h5", b)
    back = read_first_layer(tmp_path / "a.h5")
    assert np.array_equal(back.weight, a.weight) and back.name == "a"
    table, corr = group_profiles(
        [tmp_path / "a.h5", tmp_path / "b.h5"],
        stats,
        "model",
        (np.array([0.5] * 3), np.array([0.25] * 3)),
    )
    assert set(table["name"]) == {"a"} and len(corr) == 1  # b (7x7) belongs to another group
    wrong = FirstLayer("c", b.weight, a.input_mean, a.input_std, "torchvision:Y")
    write_first_layer(tmp_path / "c.h5", wrong)
    with pytest.raises(
        WeightsError, match="c has a 7x7 first layer but is listed under pretrained.models.k3"
    ):
        group_profiles([tmp_path / "c.h5"], stats, "model", (a.input_mean, a.input_std))


def test_command_line(tmp_path, stats, capsys):
    stats, path = stats
    weight = np.random.default_rng(4).normal(size=(5, 3, 3, 3))
    np.save(tmp_path / "w.npy", weight)
    assert cli_main([str(tmp_path / "w.npy"), str(path), "--out", str(tmp_path / "p.csv")]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert np.allclose(table["energy"], energy_profile(weight, stats.eigenvectors))
    assert np.allclose(table["patch_std"], stats.lambdas)
    assert cli_main([str(tmp_path / "w.npy"), str(tmp_path / "missing.h5")]) == 2
    assert "not a readable HDF5 file" in capsys.readouterr().err


def test_command_line_profiles_any_kernel_size_on_a_dataset_file(tmp_path, stats, capsys):
    """Given a dataset file, firstlayer-profile computes the statistics of the layer's own k x k
    patches (here 8x8, as a ViT's patch embedding at toy scale: d = 192); a kernel that does not
    match a statistics file is one line."""
    from conftest import write_toy_dataset

    from firstlayer.datasets.sources import DatasetFile, sample_indices

    data = write_toy_dataset(tmp_path / "toy.h5", 30, 5, 16)
    weight = np.random.default_rng(6).normal(size=(4, 3, 8, 8))
    np.save(tmp_path / "w8.npy", weight)
    out = tmp_path / "p.csv"
    assert cli_main([str(tmp_path / "w8.npy"), str(data), "--images", "20", "--out", str(out)]) == 0
    with DatasetFile(data) as dataset:
        chosen = sample_indices(dataset.count("train"), 20, 0)
        expected = patch_statistics(dataset.images("train")[()][chosen], 8, dataset.mean,
                                    dataset.std)  # fmt: skip
    table = pd.read_csv(out)
    assert len(table) == 192 and np.allclose(table["patch_std"], expected.lambdas)
    assert np.allclose(table["energy"], energy_profile(weight, expected.eigenvectors))
    capsys.readouterr()
    assert cli_main([str(tmp_path / "w8.npy"), str(stats[1])]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "first layer 3x8x8 does not match patches 3x3x3" in error
