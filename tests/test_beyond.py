"""Beyond the paper's recipe: first-layer geometry per architecture (a ViT's patch embedding, a
patchify stem), the AdamW optimiser and the crop_flip augmentation as grid axes."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, smooth_images, write_toy_dataset

from firstlayer.common.architectures import ARCH_HELP, Geometry, first_layer
from firstlayer.common.config import ConfigError, validate_config
from firstlayer.common.grid import ADAMW_DEFAULTS, RunSpec, build_grid
from firstlayer.common.targets import Plan
from firstlayer.errors import InputError
from firstlayer.patches.profiles import energy_profile
from firstlayer.patches.stats import eigendecompose, patch_statistics
from firstlayer.training.manipulations import PAD, crop_flip, crop_flip_draws
from firstlayer.training.models import build
from firstlayer.training.run import read_run, train

TINY = dict(dataset="toy", first_width=8, width=0.25, epochs=2, n_train=None, n_test=None,
            batch_size=16)  # fmt: skip


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("beyond") / "toy.h5", 96, 24, 16)


def test_each_architecture_declares_its_first_layer_and_builds_it():
    cases = {
        "vgg11": Geometry(3, 1, 1),
        "resnet18": Geometry(3, 1, 1),
        "vit3": Geometry(4, 4, 0),
        "vit2p8": Geometry(8, 8, 0),
        "patchcnn": Geometry(4, 4, 0),
        "patchcnnp2": Geometry(2, 2, 0),
    }
    for arch, geometry in cases.items():
        assert first_layer(arch) == geometry, arch
        conv = build(arch, 8, 0.25, 10, 3, side=32).first_conv
        assert conv.kernel_size == (geometry.k,) * 2 and conv.stride == (geometry.stride,) * 2
        assert conv.padding == (geometry.padding,) * 2 and conv.bias is None, arch
    with pytest.raises(InputError, match="architecture 'vit'; allowed: vgg11, .*vitN"):
        first_layer("vit")


def test_a_patch_embedding_is_a_projection_of_each_stride_k_patch():
    """conv2d(x, w) of a 4x4 stride-4 first layer at output (i, j) equals the (c, kh, kw)
    flattened patch at (4i, 4j) times w.flatten(): the order profiles assume."""
    torch.manual_seed(0)
    model = build("vit2", 6, 0.25, 10, 3, side=16)
    x = torch.randn(2, 3, 16, 16)
    out = model.first_conv(x)
    w = model.first_conv.weight.detach().reshape(6, -1)
    for i, j in [(0, 0), (1, 2), (3, 3)]:
        patch = x[:, :, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].reshape(2, -1)
        assert torch.allclose(out[:, :, i, j], patch @ w.T, atol=1e-5)


def direct_patch_covariance(images, k, stride, mean, std):
    """Every k x k patch (c, kh, kw order) at `stride`, by explicit loops, and its covariance."""
    x = (images / 255.0 - mean) / std  # NHWC
    patches = [
        x[n, i : i + k, j : j + k, :].transpose(2, 0, 1).ravel()
        for n in range(len(x))
        for i in range(0, x.shape[1] - k + 1, stride)
        for j in range(0, x.shape[2] - k + 1, stride)
    ]
    return np.cov(np.asarray(patches), rowvar=False, bias=True), len(patches)


@pytest.mark.parametrize("k,stride", [(4, 1), (4, 4), (2, 2)])
def test_even_k_patch_statistics_equal_a_direct_computation(k, stride):
    images = smooth_images(12, 14, 13, 3, seed=2)
    mean, std = np.array([0.5, 0.4, 0.45]), np.array([0.2, 0.25, 0.22])
    stats = patch_statistics(images, k, mean, std, chunk=5, stride=stride)
    covariance, count = direct_patch_covariance(images, k, stride, mean, std)
    assert stats.d == 3 * k * k and stats.count == count
    assert np.allclose(stats.covariance, covariance, rtol=1e-10, atol=1e-12)
    values, _ = eigendecompose(covariance)
    assert np.allclose(stats.eigenvalues, values, rtol=1e-9, atol=1e-12)


def test_crop_flip_equals_a_per_image_pad_crop_and_flip():
    images = torch.randn(5, 3, 8, 7)
    black = torch.tensor([-1.0, -2.0, -3.0])
    draws = crop_flip_draws(5, seed=11)
    assert np.array_equal(draws, crop_flip_draws(5, seed=11))  # the seed alone decides
    assert not np.array_equal(draws, crop_flip_draws(5, seed=12))
    assert draws[:, :2].min() >= 0 and draws[:, :2].max() <= 2 * PAD and set(draws[:, 2]) <= {0, 1}
    out = crop_flip(images, torch.from_numpy(draws), black)
    for n, (dy, dx, flip) in enumerate(draws):
        padded = np.stack([np.pad(images[n, c].numpy(), PAD, constant_values=black[c].item())
                           for c in range(3)])  # fmt: skip
        expected = padded[:, dy : dy + 8, dx : dx + 7]
        if flip:
            expected = expected[:, :, ::-1]
        assert np.array_equal(out[n].numpy(), expected), n


def test_the_grid_gives_adamw_its_own_learning_rate_and_names_only_new_axes():
    defaults = {"epochs": 10, "n_train": 100, "lr": 0.01, "momentum": 0.0, "weight_decay": 0.0,
                "adamw": {"lr": 3e-4, "weight_decay": 0.1}}  # fmt: skip
    blocks = {"b": {"datasets": ["c"], "optimizers": ["sgd", "adamw"],
                    "augments": ["none", "crop_flip"]}}  # fmt: skip
    grid = build_grid(blocks, defaults)
    names = sorted(grid)
    assert names == [
        "c_vgg11_f64_w1_true_s0_e10_n100",
        "c_vgg11_f64_w1_true_s0_e10_n100_adamw",
        "c_vgg11_f64_w1_true_s0_e10_n100_adamw_crop_flip",
        "c_vgg11_f64_w1_true_s0_e10_n100_crop_flip",
    ]
    adamw = grid["c_vgg11_f64_w1_true_s0_e10_n100_adamw"]["spec"]
    assert (adamw.lr, adamw.weight_decay) == (3e-4, 0.1)  # never SGD's lr 0.01
    sgd = grid["c_vgg11_f64_w1_true_s0_e10_n100"]["spec"]
    assert (sgd.lr, sgd.weight_decay) == (0.01, 0.0)
    assert "optimizer" not in sgd.as_dict() and "augment" not in sgd.as_dict()
    assert adamw.as_dict()["optimizer"] == "adamw"
    # a block's own AdamW lr keeps the defaults' weight decay, and its name says it differs
    blocks["b"]["settings"] = {"adamw": {"lr": 1e-2}}
    changed = [e["spec"] for e in build_grid(blocks, defaults).values()]
    assert {(s.lr, s.weight_decay) for s in changed if s.optimizer == "adamw"} == {(1e-2, 0.1)}
    assert RunSpec(dataset="c").optimizer == "sgd" and ADAMW_DEFAULTS["lr"] == 1e-3
    blocks["b"]["settings"] = {"momentum": 0.9}
    with pytest.raises(InputError, match="optimizer adamw with momentum 0.9; allowed: momentum 0"):
        build_grid(blocks, defaults)


def config(**block):
    experiment = {"datasets": ["c"], **block}
    return {
        "datasets": {"c": {"source": "torchvision", "name": "CIFAR10"}},
        "pretrained": {"models": {}},
        "experiments": {"e": experiment},
    }


@pytest.mark.parametrize(
    "block,message",
    [
        ({"archs": ["vit"]}, f"experiments.e.archs[0] = 'vit'; allowed: {ARCH_HELP}"),
        (
            {"archs": ["vit2p40"]},
            "experiments.e.archs[0] = 'vit2p40' on c; its 40x40 stride 40 first layer does "
            "not fit 32x32 images; allowed: a patch size of at most 32",
        ),
        ({"optimizers": ["adam"]}, "experiments.e.optimizers[0] = 'adam'; allowed: sgd, adamw"),
        ({"augments": ["flip"]}, "experiments.e.augments[0] = 'flip'; allowed: none, crop_flip"),
    ],
)
def test_bad_architectures_optimisers_and_augmentations_are_one_line(block, message):
    with pytest.raises(ConfigError) as error:
        validate_config(config(**block), ROOT / "config" / "schema.yaml")
    assert str(error.value) == f"config error: {message}" and "\n" not in str(error.value)


def test_schema_states_adamw_defaults_of_the_grid():
    checked = validate_config(config(), ROOT / "config" / "schema.yaml")
    assert checked["training"]["adamw"] == ADAMW_DEFAULTS


def test_the_default_and_extended_configs_build_nothing_beyond_the_paper():
    import yaml

    for name in ("config.yaml", "extended.yaml", "paper.yaml"):
        plan = Plan(validate_config(yaml.safe_load((ROOT / "config" / name).read_text()),
                                    ROOT / "config" / "schema.yaml"))  # fmt: skip
        assert not plan.beyond_the_paper() and plan.stride_tables() == [], name
        assert plan.recipe_outputs() == [] and plan.first_layer_stats()[0][1] == 3, name


def test_adamw_and_crop_flip_runs_are_reproducible_from_their_spec(toy, tmp_path):
    torch.set_num_threads(1)
    runs = {}
    for name, change in [("a", {}), ("b", {}), ("plain", {"augment": "none"})]:
        spec = RunSpec(**{**TINY, "arch": "vit2", "optimizer": "adamw", "lr": 1e-3,
                          "weight_decay": 0.05, "augment": "crop_flip", **change})  # fmt: skip
        train(spec, toy, tmp_path / f"{name}.h5", tmp_path / f"{name}.pt", log=lambda m: None)
        runs[name] = read_run(tmp_path / f"{name}.h5")
    assert np.array_equal(runs["a"].weights, runs["b"].weights)
    assert np.array_equal(runs["a"].metrics["train_loss"], runs["b"].metrics["train_loss"])
    assert runs["a"].weights.shape[2:] == (3, 4, 4)
    assert not np.array_equal(runs["a"].final, runs["plain"].final)  # the augmentation acted
    assert json.loads(json.dumps(runs["a"].spec.as_dict()))["augment"] == "crop_flip"


def test_a_stride_k_profile_is_the_projection_on_the_k_x_k_basis(toy, tmp_path):
    """The profile of a 4x4 stride-4 first layer on the PCA of all 4x4 patches, computed by
    `energy_profile`, equals an explicit projection of each filter's change."""
    torch.set_num_threads(1)
    spec = RunSpec(**{**TINY, "arch": "patchcnn"})
    train(spec, toy, tmp_path / "p.h5", tmp_path / "p.pt", log=lambda m: None)
    run = read_run(tmp_path / "p.h5")
    images = smooth_images(96 + 24, 16, 16, 3, seed=5)[:96]
    mean, std = (images / 255).reshape(-1, 3).mean(0), (images / 255).reshape(-1, 3).std(0)
    covariance, _ = direct_patch_covariance(images, 4, 1, mean, std)
    _, basis = eigendecompose(covariance)
    change = (run.final - run.init).reshape(8, 48)
    expected = np.sqrt(np.mean((change @ basis) ** 2, axis=0))
    assert np.allclose(energy_profile(run.final, basis, reference=run.init), expected)
    conv = F.conv2d(torch.from_numpy(images[:1]).permute(0, 3, 1, 2).double(),
                    torch.from_numpy(run.final).double(), stride=4)  # fmt: skip
    assert conv.shape[-2:] == (4, 4)


def test_too_few_patches_for_a_large_kernel_is_one_line_before_any_fit():
    """A 16x16 layer's statistics from a handful of small images have more dimensions than
    patches (20, so rank 19: 749 components of zero variance): the fits stop with one line
    saying so, not a formula error."""
    from firstlayer.theory.fits import check_spectrum

    stats = patch_statistics(smooth_images(5, 17, 17, 3), 16, [0.5] * 3, [0.2] * 3)
    with pytest.raises(InputError) as error:
        check_spectrum(stats, "results/patches/toy/k16.h5")
    assert str(error.value) == (
        "results/patches/toy/k16.h5: 749 of the 768 components of the 16x16x3 patches have zero "
        "variance (20 patches); the formula needs every lambda > 0; allowed: more images "
        "(patches.n_images) or a smaller k"
    )
