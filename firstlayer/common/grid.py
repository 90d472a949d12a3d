"""The training grid: the union of named experiment blocks, each a product of axes.

Torch-free, so planning the workflow stays cheap. Built once from the config (no randomness at
parse time). A run requested by several blocks is
trained once; its row lists every block that wants it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass

from firstlayer.errors import InputError

# Longest run name: file names are at most 255 bytes, and `.h5`, `.pdf` and temporary
# prefixes are added to it.
MAX_NAME = 200


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a training run's result."""

    dataset: str
    arch: str = "vgg11"
    first_width: int = 64
    width: float = 1.0
    seed: int = 0
    labels: str = "true"
    inputs: str = "none"
    frozen: bool = False
    epochs: int = 10
    n_train: int | None = None
    n_test: int | None = 2000
    subset_seed: int = 0
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    precision: str = "float32"
    # Settings added after runs were published: a spec states them only when they differ from
    # their defaults (LATER_DEFAULTS), so every earlier run keeps its name, hash and init seed.
    record_lr_steps: tuple[float, ...] = ()
    optimizer: str = "sgd"
    augment: str = "none"

    def __post_init__(self):
        # a list from JSON or YAML becomes the hashable tuple of floats it stands for
        object.__setattr__(self, "record_lr_steps", tuple(map(float, self.record_lr_steps)))

    def as_dict(self) -> dict:
        spec = dataclasses.asdict(self)
        for key, default in LATER_DEFAULTS.items():
            if spec[key] == default:
                del spec[key]
            elif isinstance(spec[key], tuple):
                spec[key] = list(spec[key])  # as JSON and YAML write it
        return spec


# The fields of RunSpec added later, with the defaults under which a spec leaves them out.
LATER_DEFAULTS = {"record_lr_steps": (), "optimizer": "sgd", "augment": "none"}
# AdamW's own learning rate and decoupled weight decay (config `training.adamw`): a run with
# optimizer adamw takes its lr and weight_decay from there, never SGD's `lr`.
ADAMW_DEFAULTS = {"lr": 1.0e-3, "weight_decay": 0.05}


AXES = {
    "datasets": "dataset",
    "archs": "arch",
    "first_widths": "first_width",
    "widths": "width",
    "seeds": "seed",
    "labels": "labels",
    "inputs": "inputs",
    "frozen": "frozen",
    "optimizers": "optimizer",
    "augments": "augment",
}
SETTINGS = [
    "epochs",
    "n_train",
    "n_test",
    "subset_seed",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "precision",
    "record_lr_steps",
]
# Settings spelled out in run names; any other setting that differs from the defaults adds a
# short hash of the full spec, so two different runs never share a name.
NAMED = {"epochs", "n_train", "precision"}


def exact(value: float) -> str:
    """A number as short as `:g` writes it when that reads back as the same number, else its
    shortest exact form (0.0625 -> 0.0625, but 0.06250001 stays 0.06250001)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def run_name(spec: RunSpec, defaults: dict) -> str:
    parts = [spec.dataset, spec.arch, f"f{spec.first_width}", f"w{exact(spec.width)}", spec.labels]
    if spec.inputs != "none":
        parts.append(spec.inputs)
    parts += [f"s{spec.seed}", f"e{spec.epochs}"]
    if spec.n_train is not None:
        parts.append(f"n{spec.n_train}")
    if spec.frozen:
        parts.append("frozen")
    if spec.precision != "float32":
        parts.append(spec.precision)
    if spec.optimizer != LATER_DEFAULTS["optimizer"]:
        parts.append(spec.optimizer)
    if spec.augment != LATER_DEFAULTS["augment"]:
        parts.append(spec.augment)
    defaults = recipe_defaults(spec.optimizer, defaults)
    other = {key: getattr(spec, key) for key in SETTINGS if key not in NAMED}
    # a later field away from its own default always adds the hash: its runs never share a name
    # with a run of another config that leaves it out
    reference = {**defaults, **LATER_DEFAULTS}
    if any(_normal(other[key]) != _normal(reference.get(key, other[key])) for key in other):
        digest = hashlib.sha256(json.dumps(spec.as_dict(), sort_keys=True).encode()).hexdigest()
        parts.append(digest[:8])
    return "_".join(parts)


def recipe_defaults(optimizer: str, settings: dict) -> dict:
    """`settings` as they apply to a run of `optimizer`: for adamw, its own lr and weight decay
    (`settings["adamw"]`, else ADAMW_DEFAULTS) in place of SGD's."""
    if optimizer != "adamw":
        return settings
    adamw = {**ADAMW_DEFAULTS, **(settings.get("adamw") or {})}
    return {**settings, "lr": adamw["lr"], "weight_decay": adamw["weight_decay"]}


def _normal(value):
    """A setting as RunSpec holds it (a list of numbers as a tuple of floats)."""
    return tuple(map(float, value)) if isinstance(value, (list, tuple)) else value


def build_grid(experiments: dict, defaults: dict) -> dict[str, dict]:
    """{run name: {"spec": RunSpec, "experiments": [block names]}}, one entry per distinct run."""
    rows: dict[str, dict] = {}
    for block_name, block in experiments.items():
        settings = {**defaults, **block.get("settings", {})}
        # a block's adamw settings complete the defaults' (lr alone keeps the weight decay)
        settings["adamw"] = {
            **ADAMW_DEFAULTS,
            **(defaults.get("adamw") or {}),
            **(block.get("settings", {}).get("adamw") or {}),
        }
        axes = {
            field: block.get(key, [RunSpec.__dataclass_fields__[field].default])
            for key, field in AXES.items()
        }
        for values in itertools.product(*axes.values()):
            fields = dict(zip(axes, values))
            recipe = recipe_defaults(fields["optimizer"], settings)
            if fields["optimizer"] == "adamw" and recipe.get("momentum"):
                raise InputError(
                    f"experiments.{block_name}: optimizer adamw with momentum "
                    f"{recipe['momentum']:g}; allowed: momentum 0 (AdamW's betas are 0.9, 0.999)"
                )
            chosen = {k: recipe[k] for k in SETTINGS if k in recipe}
            spec = RunSpec(**fields, **chosen)
            name = run_name(spec, defaults)
            if name in rows and rows[name]["spec"] != spec:
                raise InputError(
                    f"experiments.{block_name} gives run {name!r} the name of a different run "
                    f"of experiments.{rows[name]['experiments'][0]}; allowed: values that stay "
                    f"distinct in run names"
                )
            rows.setdefault(name, {"spec": spec, "experiments": []})["experiments"].append(
                block_name
            )
    return rows
