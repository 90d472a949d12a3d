"""Validation of the workflow configuration: JSON schema first, then the checks a schema cannot
express. Every problem becomes one line naming the key, the value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from firstlayer.common.facts import STEM_SIZE, TORCHVISION_DATASETS
from firstlayer.common.settings import check_labels, check_transform
from firstlayer.errors import InputError


class ConfigError(InputError):
    """A configuration mistake; str() is the one line shown to the user."""


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


def describe(error: jsonschema.ValidationError) -> str:
    """One line for a schema violation: key, value and what is allowed."""
    key, value, schema = _where(error.absolute_path), error.instance, error.schema
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed))
        return (
            f"config error: unknown key {unknown[0]!r} in {key}; allowed keys: {', '.join(allowed)}"
        )
    if "propertyNames" in error.schema_path:  # a bad key in a mapping, e.g. a dataset name
        return f"config error: {key} has key {value!r}; keys must match {error.validator_value}"
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


def validate_config(config: dict, schema_path) -> dict:
    """Fill defaults into `config` (in place) and check it; raise ConfigError on the first
    problem."""
    schema = load_schema(schema_path)
    _fill_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(describe(errors[0]))
    _check_semantics(config)
    return config


def _check_semantics(config: dict) -> None:
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
        for key, check in (("labels", check_labels), ("inputs", check_transform)):
            for position, name in enumerate(spec.get(key, [])):
                try:
                    check(name)
                except InputError as error:
                    raise ConfigError(
                        f"config error: experiments.{block}.{key}[{position}] = "
                        f"{name!r}; {str(error).split('; ', 1)[1]}"
                    ) from None
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
    pretrained = config["pretrained"]
    if pretrained["dataset"] is None:  # the study follows the user's first patch dataset
        pretrained["dataset"] = config["patches"]["datasets"][0]
    if pretrained["dataset"] not in datasets:
        raise ConfigError(
            f"config error: pretrained.dataset = {pretrained['dataset']!r}; "
            f"allowed: a key of datasets ({known})"
        )
    for name, spec in pretrained["weight_files"].items():
        if not Path(spec["path"]).is_file():
            raise ConfigError(
                f"config error: pretrained.weight_files.{name}.path = "
                f"{spec['path']!r}; no such file"
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
    for position, k in enumerate(config["patches"]["k"]):
        for name in config["patches"]["datasets"]:
            spec = datasets[name]
            facts = TORCHVISION_DATASETS.get(spec.get("name"))
            side = facts.side if spec["source"] == "torchvision" and facts else None
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
