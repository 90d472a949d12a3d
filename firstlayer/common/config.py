"""Validation of the workflow configuration: JSON schema first, then the checks a schema cannot
express. Every problem becomes one line naming the key, the value and what is allowed."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import yaml

from firstlayer.common.architectures import check_architecture, check_fits, first_layer
from firstlayer.common.facts import CELEBA_ATTRIBUTES, STEM_SIZE, TORCHVISION_DATASETS
from firstlayer.common.grid import MAX_NAME, build_grid
from firstlayer.common.settings import (
    check_labels,
    check_spelling,
    check_transform,
    component_number,
)
from firstlayer.errors import InputError


class ConfigError(InputError):
    """A configuration mistake; str() is the one line shown to the user."""


# The keys each dataset source reads; any other key of that source is a mistake, not a no-op.
SOURCE_KEYS = {
    "torchvision": {"source", "name", "archive", "attribute", "resize"},
    "imagefolder": {"source", "path", "resize", "mode"},
    "npz": {"source", "path", "images", "labels", "test_images", "test_labels", "class_names"},
    "subset": {"source", "of", "classes"},
}


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key written twice in one mapping (plain YAML keeps the last)."""


def _strict_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"config error: key {key!r} appears twice in one mapping of "
                f"{node.start_mark.name} (lines {seen[key] + 1} and "
                f"{key_node.start_mark.line + 1}); allowed: each key once"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def check_duplicate_keys(files) -> None:
    """Raise ConfigError when a config file writes one key twice in a mapping."""
    for path in files:
        with open(path) as handle:
            yaml.load(handle, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def load_schema(path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _coerce(value, schema):
    """A string where the schema wants a number, boolean or null, converted.

    `snakemake --config 'patches={k: [5]}'` parses nested values as strings; this makes such
    overrides behave like the same values in a YAML file.
    """
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, bool) and ("string" in types or "true" in schema.get("enum", [])):
        return "true" if value else "false"  # YAML reads the label setting `true` as a boolean
    if not isinstance(value, str) or "string" in types or not types:
        return value
    if "null" in types and value in ("null", "~", "None", ""):
        return None
    for kind, convert in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return convert(value)
            except ValueError:
                continue  # not a number: the schema check reports it with the value
    if "boolean" in types and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _fill_defaults(instance, schema):
    """Insert schema defaults for missing keys and coerce string overrides, recursively."""
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for position, item in enumerate(instance):
            instance[position] = _coerce(item, schema["items"])
            _fill_defaults(instance[position], schema["items"])
        return
    if not isinstance(instance, dict):
        return
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            instance[key] = _coerce(instance[key], sub)
            _fill_defaults(instance[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in list(instance):
            if key not in properties:
                instance[key] = _coerce(instance[key], extra)
                _fill_defaults(instance[key], extra)


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe(error) -> str:
    """One line for a schema violation (a jsonschema.ValidationError): key, value and what is
    allowed."""
    key, value, schema = _where(error.absolute_path), error.instance, error.schema
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed))
        return (
            f"config error: unknown key {unknown[0]!r} in {key}; allowed keys: {', '.join(allowed)}"
        )
    if "propertyNames" in error.schema_path:  # a bad key in a mapping, e.g. a dataset name
        rule = (
            f"be at most {error.validator_value} characters"
            if kind == "maxLength"
            else f"match {error.validator_value}"
        )
        return f"config error: {key} has key {value!r}; keys must {rule}"
    if kind == "enum":
        allowed = ", ".join("null" if v is None else str(v) for v in error.validator_value)
        return f"config error: {key} = {value!r}; allowed: {allowed}"
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"config error: {key} = {value!r}; expected {expected}"
    limits = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if kind in limits:
        return f"config error: {key} = {value!r}; must be {limits[kind]} {error.validator_value}"
    if kind in ("minItems", "minProperties"):
        return (
            f"config error: {key} = {value!r}; must have at least {error.validator_value} entries"
        )
    if kind == "maxItems":
        return f"config error: {key} = {value!r}; must have at most {error.validator_value} entries"
    if kind == "uniqueItems":
        return f"config error: {key} = {value!r}; entries must be unique"
    if kind == "required":
        return f"config error: {key} is missing a required key: {error.message}"
    if kind == "pattern":
        return f"config error: {key} = {value!r}; must match {error.validator_value}"
    return f"config error: {key} = {value!r}; {error.message}"


def _check_numbers(value, schema, path=()) -> None:
    """Numbers the schema cannot judge: a whole number written as a float (2.0) where an
    integer is wanted, and non-finite numbers (.nan, .inf) anywhere."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"config error: {_where(path)} = {value!r}; must be a finite number")
        if "integer" in types and "number" not in types:
            whole = int(value) if value.is_integer() else "a whole number"
            raise ConfigError(
                f"config error: {_where(path)} = {value!r}; expected integer (write {whole}, "
                f"without a decimal point)"
            )
    if isinstance(value, list):
        items = schema.get("items", {})
        for position, item in enumerate(value):
            _check_numbers(item, items if isinstance(items, dict) else {}, (*path, position))
    elif isinstance(value, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else {})
            _check_numbers(item, sub, (*path, key))


def _source_key_error(config: dict, schema: dict) -> ConfigError | None:
    """A key its dataset's source does not read, unless null or the schema's default (so a
    config validated once validates again: defaults are filled in place), looked for before
    defaults fill in and reported after the schema's own errors."""
    datasets = config.get("datasets")
    if not isinstance(datasets, dict):
        return None
    keys = schema["properties"]["datasets"]["additionalProperties"]["properties"]
    for key, spec in datasets.items():
        if not isinstance(spec, dict) or spec.get("source") not in SOURCE_KEYS:
            continue  # the schema reports it
        allowed = SOURCE_KEYS[spec["source"]]
        for name, value in spec.items():
            default = keys.get(name, {}).get("default")
            if name not in allowed and value is not None and value != default:
                return ConfigError(
                    f"config error: datasets.{key}.{name} does not apply to source "
                    f"{spec['source']!r}; allowed keys: {', '.join(sorted(allowed))}"
                )
    return None


def apply_dataset_overrides(config: dict, layers) -> dict:
    """A dataset that a later layer of the configuration gives a source of its own drops the
    keys of the merged entry that this source does not read. `layers`: what was merged over the
    first config file, in Snakemake's order (every further `--configfile`, read as written, then
    the `--config` values). Snakemake merges nested keys, so pointing the default `cifar10`
    (torchvision, `name`) at an ImageFolder copy, by a site file or on the command line alike,
    would otherwise carry `name` into an imagefolder entry. Keys written by that layer or a
    later one stay, so a mistake there is still reported. Returns `config` (changed in place).
    """
    datasets = config.get("datasets")
    if not isinstance(datasets, dict):
        return config
    given = [layer.get("datasets") if hasattr(layer, "get") else None for layer in layers]
    given = [value if isinstance(value, dict) else {} for value in given]
    for position, layer in enumerate(given):
        for key, spec in layer.items():
            entry = datasets.get(key)
            if not isinstance(spec, dict) or not isinstance(entry, dict):
                continue
            allowed = SOURCE_KEYS.get(spec.get("source"))
            if allowed is None:  # no source given (or an unknown one, which the schema reports)
                continue
            written = {
                name
                for later in given[position:]
                if isinstance(later.get(key), dict)
                for name in later[key]
            }
            for name in [name for name in entry if name not in allowed | written]:
                del entry[name]
    return config


def fill_defaults(config: dict, schema_path) -> dict:
    """The checks that need no jsonschema (imported only by `validate_config`, so that a machine
    with torch but not the workflow's tools can still read a config as the workflow does): the
    schema's defaults filled into `config` (in place), string overrides coerced, and numbers the
    schema cannot judge refused (`epochs: 2.0`, `.nan`). Returns `config`."""
    schema = load_schema(schema_path)
    _fill_defaults(config, schema)
    _check_numbers(config, schema)
    return config


def read_layers(files, command_line) -> list:
    """The layers `apply_dataset_overrides` takes: every config file after the first, read as
    written, then the command line's `--config` values."""
    layers = []
    for path in list(files)[1:]:
        with open(path) as handle:
            layers.append(yaml.safe_load(handle) or {})
    return [*layers, command_line if hasattr(command_line, "get") else {}]


def apply_command_line_datasets(config: dict, command_line) -> dict:
    """`apply_dataset_overrides` with the command line as the only layer."""
    return apply_dataset_overrides(config, [command_line])


def validate_config(config: dict, schema_path, files=()) -> dict:
    """Fill defaults into `config` (in place) and check it; raise ConfigError on the first
    problem. `files`: the config files it was read from (checked for duplicate keys)."""
    import jsonschema

    check_duplicate_keys(files)
    schema = load_schema(schema_path)
    misplaced = _source_key_error(config, schema)
    _fill_defaults(config, schema)
    _check_numbers(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(describe(errors[0]))
    if misplaced is not None:
        raise misplaced
    _check_semantics(config)
    return config


def _check_record_lr_steps(where: str, values) -> None:
    """`record_lr_steps` in increasing order: its one spelling, so that one setting never trains
    twice under two names ([0.6, 0.3] and [0.3, 0.6] record the same steps)."""
    if values is not None and list(values) != sorted(values):
        raise ConfigError(
            f"config error: {where} = {list(values)!r}; allowed: increasing values, "
            f"{sorted(values)!r} (one spelling of one setting)"
        )


def _check_semantics(config: dict) -> None:
    if config["publish"] == "pretrained":
        raise ConfigError(
            "config error: publish = 'pretrained'; allowed: any other name (docs/results/"
            "pretrained/ is the pretrained study's set, written by `snakemake publish_pretrained`)"
        )
    _check_record_lr_steps("training.record_lr_steps", config["training"]["record_lr_steps"])
    for block, spec in config["experiments"].items():
        settings = spec.get("settings") or {}
        where = f"experiments.{block}.settings.record_lr_steps"
        _check_record_lr_steps(where, settings.get("record_lr_steps"))
    datasets = config["datasets"]
    for key, spec in datasets.items():
        source = spec["source"]
        if source == "torchvision" and "name" not in spec:
            raise ConfigError(
                f"config error: datasets.{key}.name is missing; a torchvision "
                f"dataset needs its class name (CIFAR10, CIFAR100, MNIST, ...)"
            )
        if source in ("imagefolder", "npz"):
            if not spec.get("path"):
                raise ConfigError(
                    f"config error: datasets.{key}.path = None; a {source} "
                    f"dataset needs the path of its "
                    f"{'folder or archive' if source == 'imagefolder' else '.npz file'}"
                )
            if not Path(spec["path"]).exists():
                raise ConfigError(
                    f"config error: datasets.{key}.path = {spec['path']!r}; no such file or folder"
                )
        if source == "subset":
            parent = spec.get("of")
            if parent not in datasets or datasets[parent]["source"] == "subset":
                allowed = ", ".join(k for k, v in datasets.items() if v["source"] != "subset")
                raise ConfigError(
                    f"config error: datasets.{key}.of = {parent!r}; allowed: a key "
                    f"of datasets that is not itself a subset ({allowed})"
                )
            if not spec.get("classes"):
                raise ConfigError(
                    f"config error: datasets.{key}.classes = "
                    f"{spec.get('classes')!r}; a subset needs at least two class names"
                )
        if source == "torchvision":
            for option in ("attribute", "resize"):
                if spec.get(option) is not None and spec["name"] != "CelebA":
                    raise ConfigError(
                        f"config error: datasets.{key}.{option} = {spec[option]!r}; it applies "
                        f"only to name CelebA (this dataset is {spec['name']})"
                    )
            if spec.get("attribute") is not None and spec["attribute"] not in CELEBA_ATTRIBUTES:
                raise ConfigError(
                    f"config error: datasets.{key}.attribute = {spec['attribute']!r}; allowed: "
                    f"{', '.join(CELEBA_ATTRIBUTES)}"
                )
        if source == "torchvision" and spec.get("archive") and not Path(spec["archive"]).exists():
            raise ConfigError(
                f"config error: datasets.{key}.archive = {spec['archive']!r}; "
                f"no such file or folder"
            )
    known = ", ".join(datasets)
    if config["patches"]["datasets"] is None:  # sections follow the datasets the user configured
        config["patches"]["datasets"] = list(datasets)
    for position, name in enumerate(config["patches"]["datasets"]):
        if name not in datasets:
            raise ConfigError(
                f"config error: patches.datasets[{position}] = {name!r}; "
                f"allowed: a key of datasets ({known})"
            )
    for block, spec in config["experiments"].items():
        for position, name in enumerate(spec["datasets"]):
            if name not in datasets:
                raise ConfigError(
                    f"config error: experiments.{block}.datasets[{position}] = "
                    f"{name!r}; allowed: a key of datasets ({known})"
                )
        checks = (("archs", check_architecture), ("labels", check_labels))
        for key, check in (*checks, ("inputs", check_transform)):
            for position, name in enumerate(spec.get(key, [])):
                try:
                    check(name)
                    if key == "inputs":
                        check_spelling(name)
                except InputError as error:
                    raise ConfigError(
                        f"config error: experiments.{block}.{key}[{position}] = "
                        f"{name!r}; {str(error).split('; ', 1)[1]}"
                    ) from None
        for name in spec["datasets"]:
            side = _side(datasets, name)
            for position, arch in enumerate(spec["archs"] if side else []):
                try:
                    check_fits(arch, side)
                except InputError as error:
                    raise ConfigError(
                        f"config error: experiments.{block}.archs[{position}] = {arch!r} on "
                        f"{name}; {str(error).split(': ', 1)[1]}"
                    ) from None
        _check_block_against_data(block, spec, datasets, config["training"])
    theory = config["theory"]
    if theory["datasets"] is None:
        theory["datasets"] = list(config["patches"]["datasets"])
    for position, name in enumerate(theory["datasets"]):
        if name not in datasets:
            raise ConfigError(
                f"config error: theory.datasets[{position}] = {name!r}; "
                f"allowed: a key of datasets ({known})"
            )
    low, high = theory["tau_range"]
    if not low < high:
        raise ConfigError(
            f"config error: theory.tau_range = {theory['tau_range']!r}; allowed: "
            f"[low, high] with 0 < low < high"
        )
    if theory["whitening"]["k"] % 2 == 0:
        raise ConfigError(
            f"config error: theory.whitening.k = {theory['whitening']['k']!r}; "
            f"allowed: an odd patch size (the whitening filter is centred)"
        )
    whitening = theory["whitening"]
    for name in theory["datasets"]:
        side = _side(datasets, name)
        # responses of a valid k x k convolution: the bank's k or a 3x3 first layer's
        width = None if side is None else side - max(whitening["k"], 3) + 1
        if width is not None and whitening["max_distance"] >= width:
            raise ConfigError(
                f"config error: theory.whitening.max_distance = {whitening['max_distance']}; the "
                f"responses on the {side}x{side} images of {name} are {width} pixels wide, "
                f"allowed: at most {width - 1}"
            )
    pretrained = config["pretrained"]
    if pretrained["dataset"] is None:  # the study follows the user's first patch dataset
        pretrained["dataset"] = config["patches"]["datasets"][0]
    if pretrained["dataset"] not in datasets:
        raise ConfigError(
            f"config error: pretrained.dataset = {pretrained['dataset']!r}; "
            f"allowed: a key of datasets ({known})"
        )
    groups = sorted(int(group[1:]) for group in pretrained["models"])
    for name, spec in pretrained["weight_files"].items():
        where = f"pretrained.weight_files.{name}"
        if not Path(spec["path"]).is_file():
            raise ConfigError(f"config error: {where}.path = {spec['path']!r}; no such file")
        if (spec["input_mean"] is None) != (spec["input_std"] is None):
            raise ConfigError(
                f"config error: {where} gives only one of input_mean and input_std; "
                f"allowed: both (one value per input channel) or neither"
            )
        if spec["input_mean"] is not None and len(spec["input_mean"]) != len(spec["input_std"]):
            raise ConfigError(
                f"config error: {where}.input_std = {spec['input_std']!r}; allowed: as many "
                f"values as input_mean ({len(spec['input_mean'])})"
            )
        size = _npy_kernel_size(spec["path"])
        if size is not None and size not in groups:
            raise ConfigError(
                f"config error: {where}.path = {spec['path']!r} holds {size}x{size} filters, "
                f"but pretrained.models has no group k{size}; allowed: add k{size}: [] to "
                f"pretrained.models (groups now: {', '.join(f'k{g}' for g in groups) or 'none'})"
            )
    names = [m for group in pretrained["models"].values() for m in group]
    clashes = sorted(set(pretrained["weight_files"]) & set(names))
    duplicates = sorted({m for m in names if names.count(m) > 1})
    if clashes or duplicates:
        raise ConfigError(
            f"config error: pretrained model {(clashes or duplicates)[0]!r} is "
            f"listed twice; allowed: each name once across models and weight_files"
        )
    for group, models in pretrained["models"].items():
        for position, model in enumerate(models):
            size = STEM_SIZE.get(model)
            if size is not None and f"k{size}" != group:
                raise ConfigError(
                    f"config error: pretrained.models.{group}[{position}] = "
                    f"{model!r}; its first conv is {size}x{size}, allowed only in "
                    f"group k{size}"
                )
    try:
        grid = build_grid(config["experiments"], config["training"])
    except InputError as error:
        raise ConfigError(f"config error: {error}") from None
    for name in grid:
        if len(name) > MAX_NAME:
            raise ConfigError(
                f"config error: run name {name!r} is {len(name)} characters; allowed: at most "
                f"{MAX_NAME} (shorter dataset or block values)"
            )
    for position, k in enumerate(config["patches"]["k"]):
        for name in config["patches"]["datasets"]:
            spec = datasets[name]
            facts = TORCHVISION_DATASETS.get(spec.get("name"))
            side = facts.side if spec["source"] == "torchvision" and facts else None
            if side is not None and spec.get("resize"):
                side = min(spec["resize"])
            if side is not None and k > side:
                raise ConfigError(
                    f"config error: patches.k[{position}] = {k}; larger than the "
                    f"{side}x{side} images of {name}, allowed: 1..{side}"
                )
    if set(names) - set(STEM_SIZE):  # only a model the facts table does not know costs an import
        from torchvision.models import list_models

        available = set(list_models())
        for group, models in pretrained["models"].items():
            for position, model in enumerate(models):
                if model not in available:
                    raise ConfigError(
                        f"config error: pretrained.models.{group}[{position}] = "
                        f"{model!r}; allowed: a torchvision model name "
                        f"(torchvision.models.list_models())"
                    )


def _npz_shape(path, key: str) -> tuple[int, ...] | None:
    """The shape of array `key` of an .npz file, read from its header alone; None when it cannot
    be read (the dataset job names the problem)."""
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as handle:
            version = np.lib.format.read_magic(handle)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            return tuple(read(handle)[0])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def data_facts(name: str, datasets: dict) -> tuple[int | None, int | None]:
    """(training images, channels) of a configured dataset where planning can know them cheaply
    (torchvision's facts, an .npz file's header, an ImageFolder's `mode`), else None for each."""
    spec = datasets[name]
    source = spec["source"]
    if source == "torchvision":
        facts = TORCHVISION_DATASETS.get(spec.get("name"))
        return (facts.train_images, facts.channels) if facts else (None, None)
    if source == "subset":
        return None, data_facts(spec["of"], datasets)[1]
    if source == "npz":
        shape = _npz_shape(spec["path"], spec.get("images") or "x")
        if shape is None or len(shape) not in (3, 4):
            return None, None
        return shape[0], shape[3] if len(shape) == 4 else 1
    return None, {"L": 1, "RGB": 3}.get(spec.get("mode"))


def _check_block_against_data(block: str, spec: dict, datasets: dict, training: dict) -> None:
    """Settings of an experiment block its datasets cannot satisfy, where planning knows their
    sizes: a component number beyond the patch dimension C k^2 (scaleNxA, decileN) and an
    n_train larger than the training split (the run's name would state more images than it
    trains on). Where planning cannot know them, the training job checks in its first seconds
    (`firstlayer.training.preflight`)."""
    settings = spec.get("settings") or {}
    n_train = settings.get("n_train", training.get("n_train"))
    where_n = (
        f"experiments.{block}.settings.n_train" if "n_train" in settings else "training.n_train"
    )
    for name in spec["datasets"]:
        images, channels = data_facts(name, datasets)
        if n_train is not None and images is not None and n_train > images:
            raise ConfigError(
                f"config error: {where_n} = {n_train}; the training split of {name} holds "
                f"{images} images, allowed: at most {images}, or null for all of them (a run's "
                f"name states what it trained on)"
            )
        if channels is None:
            continue
        for k in sorted({first_layer(arch).k for arch in spec["archs"]}):
            d = channels * k**2
            for key in ("labels", "inputs"):
                for position, value in enumerate(spec.get(key, [])):
                    number = component_number(value)
                    if number is not None and number > d:
                        raise ConfigError(
                            f"config error: experiments.{block}.{key}[{position}] = {value!r}; "
                            f"allowed: principal components 1..{d} ({k}x{k} patches of the "
                            f"{channels}-channel images of {name})"
                        )


def _side(datasets: dict, name: str) -> int | None:
    """The image side of a configured dataset where known before it is built (torchvision
    datasets and their subsets, after a `resize`), else None."""
    spec = datasets[name]
    if spec["source"] == "subset":
        return _side(datasets, spec["of"]) if spec.get("of") in datasets else None
    if spec.get("resize"):
        return min(spec["resize"])
    facts = TORCHVISION_DATASETS.get(spec.get("name"))
    return facts.side if spec["source"] == "torchvision" and facts else None


def _npy_kernel_size(path) -> int | None:
    """The kernel size of a (K, C, k, k) .npy weight file, read from its header alone; None for
    other files (checked when the job reads them)."""
    if not str(path).endswith(".npy"):
        return None
    import numpy as np

    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape = read(handle)[0]
    except (OSError, ValueError):
        return None  # not an .npy file: the job names the problem
    return int(shape[-1]) if len(shape) == 4 and shape[-1] == shape[-2] else None
