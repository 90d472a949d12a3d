"""First layers of pretrained torchvision models and of user weight files, with the input space
each one sees.

A filter's response is w . x for x the *normalised* input patch, so a profile is only meaningful
on the patch PCA of the input space the model was trained in: that weights enum's transforms()
mean/std, and for googlenet/inception_v3 their own `transform_input` re-normalisation to
(x - 0.5) / 0.5.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firstlayer.errors import InputError
from firstlayer.h5io import atomic_h5, open_checked

FORMAT = "firstlayer.first_layer"


class WeightsError(InputError):
    """A weight file or model that cannot give a first layer; the message says why."""


@dataclass
class FirstLayer:
    """A first-layer filter bank (K, C, k, k) and the per-channel input normalisation it sees:
    pixels in [0, 1], then (x - input_mean[c]) / input_std[c]."""

    name: str
    weight: np.ndarray
    input_mean: np.ndarray
    input_std: np.ndarray
    source: str

    @property
    def k(self) -> int:
        return int(self.weight.shape[-1])


def first_conv(model):
    """The first Conv2d of a model in registration order (the stem for torchvision models)."""
    import torch.nn as nn

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise WeightsError(f"{type(model).__name__} has no Conv2d layer")


def _is_segmentation(name: str) -> bool:
    return name.split("_")[0] in ("deeplabv3", "fcn", "lraspp")


def build_model(name: str, pretrained: bool = True):
    """A torchvision model by name with its default weights (via the `weights=` API and torch's
    own cache), or randomly initialised when `pretrained` is False."""
    import torch
    import torchvision.models as tvm

    if name not in tvm.list_models():
        raise WeightsError(
            f"model {name!r} is not a torchvision model; see torchvision.models.list_models()"
        )
    weights = tvm.get_model_weights(name).DEFAULT if pretrained else None
    kwargs = {"weights_backbone": None} if _is_segmentation(name) else {}
    try:
        model = tvm.get_model(name, weights=weights, **kwargs)
    except Exception as err:
        if weights is None:
            raise
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        reason = " ".join(str(err).split())[:300]
        raise WeightsError(
            f"could not load {weights} for {name} from {weights.url}: {reason}. "
            f"Offline? Download it by hand to {cache}"
        ) from None
    return model, weights


def input_space(model, weights) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std of the inputs the first convolution actually sees."""
    if getattr(model, "transform_input", False):
        # googlenet / inception_v3 map ImageNet-normalised input to (x - 0.5) / 0.5 themselves.
        return np.full(3, 0.5), np.full(3, 0.5)
    if weights is None:
        return np.zeros(3), np.ones(3)
    transform = weights.transforms()
    return np.asarray(transform.mean, np.float64), np.asarray(transform.std, np.float64)


def torchvision_first_layer(name: str) -> FirstLayer:
    model, weights = build_model(name, pretrained=True)
    weight = first_conv(model).weight.detach().cpu().numpy().astype(np.float64)
    mean, std = input_space(model, weights)
    return FirstLayer(name, weight, mean, std, source=f"torchvision:{weights}")


def _find_tensor(obj, tensor: str | None, path) -> torch.Tensor:  # noqa: F821 (lazy import)
    import torch

    state = obj
    for key in ("state_dict", "model_state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and tensor not in state and isinstance(state.get(key), dict):
            state = state[key]
    if isinstance(state, torch.Tensor) and tensor is None:
        return state
    if not isinstance(state, dict):
        raise WeightsError(
            f"{path}: holds a {type(state).__name__}; expected a tensor or a state_dict"
        )
    candidates = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.ndim == 4]
    if tensor is None:
        raise WeightsError(
            f"{path}: name the first-layer tensor (tensor:); 4-D tensors in the "
            f"file: {', '.join(candidates[:10]) or 'none'}"
        )
    if tensor not in state:
        raise WeightsError(
            f"{path}: no tensor {tensor!r}; 4-D tensors in the file: "
            f"{', '.join(candidates[:10]) or 'none'}"
        )
    return state[tensor]


def load_weight_file(path, tensor: str | None = None) -> np.ndarray:
    """A (K, C, k, k) float filter bank from an .npy array or a PyTorch checkpoint/state_dict.

    Nothing in the file is executed: .npy without pickle, torch files with weights_only=True.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file {path} does not exist")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as err:  # pickled objects, a truncated or foreign file
            reason = " ".join(str(err).split())[:200]
            raise WeightsError(
                f"{path}: refused, not a readable .npy array ({reason}); save a plain numeric array"
            ) from None
    elif path.suffix in (".h5", ".hdf5"):
        return read_first_layer(path).weight
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            reason = " ".join(str(err).split())[:200]
            raise WeightsError(
                f"{path}: not a safely loadable PyTorch file ({reason}); only "
                f"tensors and state_dicts are accepted"
            ) from None
        array = _find_tensor(obj, tensor, path).detach().cpu().numpy()
    if array.ndim != 4 or array.shape[2] != array.shape[3]:
        raise WeightsError(
            f"{path}: weight of shape {array.shape}; expected a first conv layer "
            f"(K, C, k, k) with square kernels"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise WeightsError(f"{path}: weight of dtype {array.dtype}; expected floating point")
    if not np.isfinite(array).all():
        raise WeightsError(
            f"{path}: weight holds {int((~np.isfinite(array)).sum())} NaN or infinite values; "
            f"expected finite numbers"
        )
    return array.astype(np.float64)


def user_first_layer(name: str, spec: dict, groups) -> FirstLayer:
    """The first layer in a user's weight file (config `pretrained.weight_files.<name>`), checked
    against the configured groups: its kernel size must be one of `groups`, and a given input
    normalisation needs one value per input channel."""
    path = spec["path"]
    weight = load_weight_file(path, spec.get("tensor"))
    k, channels = weight.shape[-1], weight.shape[1]
    if k not in groups:
        raise WeightsError(
            f"{path}: {k}x{k} filters, but pretrained.models has no group k{k}; add k{k}: [] "
            f"(groups now: {', '.join(f'k{g}' for g in sorted(groups)) or 'none'})"
        )
    # An empty normalisation means "the dataset's own": resolved where the dataset is known.
    mean = np.asarray(spec.get("input_mean") or [], np.float64)
    std = np.asarray(spec.get("input_std") or [], np.float64)
    for key, values in (("input_mean", mean), ("input_std", std)):
        if values.size not in (0, channels):
            raise WeightsError(
                f"pretrained.weight_files.{name}.{key} has {values.size} values; allowed: one per "
                f"input channel of {path} ({channels})"
            )
    return FirstLayer(name, weight, mean, std, source=f"file:{path}")


def write_first_layer(path, layer: FirstLayer, provenance: dict | None = None) -> None:
    with atomic_h5(path, FORMAT, provenance) as handle:
        handle.create_dataset("weight", data=layer.weight)
        handle.attrs.update(
            {
                "name": layer.name,
                "input_mean": layer.input_mean,
                "input_std": layer.input_std,
                "source": layer.source,
                "layout": "out,c,kh,kw",
            }
        )


def read_first_layer(path) -> FirstLayer:
    with open_checked(path, FORMAT) as handle:
        return FirstLayer(
            str(handle.attrs["name"]),
            handle["weight"][()],
            np.asarray(handle.attrs["input_mean"]),
            np.asarray(handle.attrs["input_std"]),
            str(handle.attrs["source"]),
        )


def layer_profile(layer: FirstLayer, stats, input_space: str = "model") -> np.ndarray:
    """Raw energy profile of `layer` on the patch PCA of `stats` re-expressed in the layer's
    input space ("model") or in plain [0, 1] pixels as the original demo did ("raw")."""
    from firstlayer.patches.profiles import energy_profile

    if layer.k != stats.k or layer.weight.shape[1] != stats.channels:
        raise WeightsError(
            f"{layer.name}: first layer {layer.weight.shape[1]}x{layer.k}x{layer.k} "
            f"does not match patches {stats.channels}x{stats.k}x{stats.k}"
        )
    if input_space == "model":
        stats = stats.in_input_space(layer.input_mean, layer.input_std)
    elif input_space == "raw":
        stats = stats.in_input_space(np.zeros(stats.channels), np.ones(stats.channels))
    else:
        raise ValueError(f"input_space={input_space!r}; allowed: model, raw")
    return energy_profile(layer.weight, stats.eigenvectors)


def group_profiles(layer_paths, stats, input_space: str, dataset_norm):
    """Profiles (tidy) and their correlation table for the first layers in `layer_paths` whose
    kernel matches `stats`. User files of another size are skipped (they belong to another
    group); a torchvision model of another size is a configuration error."""
    from firstlayer.patches.profiles import correlation_table, profile_table

    profiles = {}
    for path in layer_paths:
        layer = read_first_layer(path)
        if layer.k != stats.k:
            if layer.source.startswith("torchvision:"):
                raise WeightsError(
                    f"{layer.name} has a {layer.k}x{layer.k} first layer but is "
                    f"listed under pretrained.models.k{stats.k}; move it to "
                    f"k{layer.k}"
                )
            continue
        if layer.input_mean.size == 0:  # a user file without its own normalisation
            layer.input_mean, layer.input_std = map(np.asarray, dataset_norm)
        profiles[layer.name] = layer_profile(layer, stats, input_space)
    if not profiles:
        raise WeightsError(f"no first layer of size {stats.k}x{stats.k} to profile")
    table = profile_table(profiles, k=stats.k, input_space=input_space)
    print(f"profiled {len(profiles)} first layers ({input_space} input space)")
    return table, correlation_table(profiles)


def stats_for_layer(path, k: int, n_images: int | None = 10000, seed: int = 0):
    """The patch statistics to profile a k x k first layer on: a patch-statistics file as it is,
    or, for a dataset file (resources/datasets/<name>.h5), the exact PCA of all k x k patches
    (every position, stride 1, whatever the layer's stride) of a seeded sample of `n_images` of
    its training images, standardised by the dataset's own mean and std."""
    import h5py

    from firstlayer.datasets.sources import DatasetFile, sample_indices
    from firstlayer.patches.stats import patch_statistics, read_patch_stats

    if n_images is not None and n_images < 1:
        raise ValueError(f"images={n_images}; allowed: a number of images >= 1")
    try:
        with h5py.File(path, "r") as handle:
            kind = handle.attrs.get("format")
    except OSError:
        kind = None  # read_patch_stats names the problem
    if kind != "firstlayer.dataset":
        return read_patch_stats(path)
    with DatasetFile(path) as data:
        height, width, _ = data.shape
        if not 1 <= k <= min(height, width):
            raise WeightsError(
                f"{path}: a {k}x{k} first layer does not fit its {height}x{width} images; "
                f"allowed: kernels of at most {min(height, width)}"
            )
        indices = sample_indices(data.count("train"), n_images, seed)
        print(f"patch statistics of {len(indices)} training images of {path}, k={k}")
        return patch_statistics(data.images("train"), k, data.mean, data.std, indices=indices)


def profile_weight_file(
    weights_path,
    patches_path,
    tensor: str | None = None,
    input_mean=None,
    input_std=None,
    input_space: str = "model",
    n_images: int | None = 10000,
):
    """Profile any first-layer file against any patch-statistics file, without the workflow;
    given a dataset file instead, the statistics of the layer's own k x k patches are computed
    on it (`stats_for_layer`), for any k (a ViT's 16x16 patch embedding, a 4x4 stem).

    The layer's input space is, in order: the one stored in a first-layer .h5, the given
    input_mean/input_std, else the patch file's own normalisation.
    """
    from firstlayer.patches.profiles import profile_table

    path = Path(weights_path)
    if path.suffix in (".h5", ".hdf5"):
        layer = read_first_layer(path)
        stats = stats_for_layer(patches_path, layer.k, n_images)
    else:
        weight = load_weight_file(path, tensor)
        stats = stats_for_layer(patches_path, int(weight.shape[-1]), n_images)
        layer = FirstLayer(path.stem, weight, stats.norm_mean, stats.norm_std, f"file:{path}")
    if input_mean is not None or input_std is not None:
        if input_mean is None or input_std is None:
            raise ValueError("give both input_mean and input_std, or neither")
        layer.input_mean = np.asarray(input_mean, np.float64)
        layer.input_std = np.asarray(input_std, np.float64)
    profile = layer_profile(layer, stats, input_space)
    table = profile_table({layer.name: profile}, input_space=input_space)
    table.insert(
        2,
        "patch_std",
        stats.in_input_space(layer.input_mean, layer.input_std).lambdas
        if input_space == "model"
        else stats.in_input_space(np.zeros(stats.channels), np.ones(stats.channels)).lambdas,
    )
    return table


def configured_first_layer(model: str, spec: dict | None) -> FirstLayer:
    """The first layer of `model`: from the user's weight file when `spec` (a
    `pretrained.weight_files` entry) is given, else through torchvision's weights= API."""
    if spec:
        weight = load_weight_file(spec["path"], spec.get("tensor"))
        # An empty normalisation means "the dataset's own": resolved where the dataset is known.
        mean = np.asarray(spec.get("input_mean") or [], np.float64)
        std = np.asarray(spec.get("input_std") or [], np.float64)
        layer = FirstLayer(model, weight, mean, std, source=f"file:{spec['path']}")
    else:
        print(f"loading {model} through torchvision's weights= API (torch hub cache)")
        layer = torchvision_first_layer(model)
    print(
        f"{model}: first layer {layer.weight.shape} from {layer.source}; input mean "
        f"{layer.input_mean}, std {layer.input_std}"
    )
    return layer
