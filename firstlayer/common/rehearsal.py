"""The rehearsal: any configured grid at toy size, end to end, in one command.

    snakemake --cores all --configfile config/paper.yaml --config rehearsal=true

`rehearsal_config` turns a validated config into its rehearsal: every experiment block, rule and
dataset kind of the grid, each made small. Blocks keep their datasets, architectures,
first-layer widths, labels, inputs and frozen flags; they keep their first SEEDS seeds, their
hidden widths scaled by WIDTH, at most N_TRAIN training and N_TEST test images, and their epoch
counts replaced by their rank among the config's (the shortest recipe trains 1 epoch, the next 2,
...: recipes stay distinct, as Table 3 groups runs by them). Every torchvision dataset is read
from a small synthetic copy in torchvision's own formats (`datasets.synthetic`), through the
same source path and checksum checks as a download; npz and ImageFolder datasets stay the
user's own files (paths made absolute: the rehearsal works in its own folder, `rehearsal/`, so
it never touches a real grid's results). Patch statistics, the linear CNN and whitening are
shrunk too.

`plan_signature` is what a rehearsal must share with the grid it stands for: the kinds of files
the default target builds (run names and sizes aside) and, per experiment block, its runs' axes.
The check after a rehearsal (`report.rehearsal`) holds the built tables to the rows Tables 1-3 of
the grid must have (`report.rehearsal.expected_tables`). Torch-free: the workflow plans with it.
"""

from __future__ import annotations

import copy
from pathlib import Path

from firstlayer.common.facts import TORCHVISION_DATASETS

SEEDS = 2  # seeds per block
EPOCHS = 1  # epochs of the shortest recipe; longer recipes get 2, 3, ... by rank
WIDTH = 1 / 16  # hidden widths are scaled by this
N_TRAIN = 1000  # training images per run, at most
N_TEST = 200  # test images per run, at most
PATCH_IMAGES = 1000  # images of the patch statistics, at most
LINEAR_CNN = {"runs": 4, "synthetic_images": 200}  # at most
WHITENING = {"images": 50, "random_banks": 2}  # at most
CHECK = "results/rehearsal/check.txt"  # written when the rehearsal passes its check
FOLDER = "rehearsal"  # the rehearsal's working directory, below the real one
SYNTHETIC_TRAIN = 1200  # training images of every synthetic copy (CelebA: 1,100 train, 100 valid)
CELEBA_VALID_SHARE = 12  # a synthetic CelebA keeps 1 in 12 of its training images as "valid"
SYNTHETIC_TEST = 300  # test images of every synthetic copy


def _at_most(value, limit):
    return limit if value is None else min(value, limit)


def _epochs(config: dict) -> dict[int, int]:
    """{epochs: its rank} over every epoch count the config's recipes use."""
    values = {config["training"]["epochs"]}
    values |= {
        block["settings"]["epochs"]
        for block in config["experiments"].values()
        if "epochs" in block.get("settings", {})
    }
    return {value: EPOCHS + rank for rank, value in enumerate(sorted(values))}


def _small_recipe(settings: dict, epochs: dict[int, int]) -> dict:
    settings = dict(settings)
    if "epochs" in settings:
        settings["epochs"] = epochs[settings["epochs"]]
    if "n_train" in settings:
        settings["n_train"] = _at_most(settings["n_train"], N_TRAIN)
    if "n_test" in settings:
        settings["n_test"] = _at_most(settings["n_test"], N_TEST)
    return settings


def rehearsal_config(config: dict, base=".") -> dict:
    """The rehearsal of a validated config (a new dict; `config` is left alone). `base`: the
    folder relative paths of the user's files are read from."""
    config = copy.deepcopy(config)
    base = Path(base).resolve()
    config["rehearsal"] = True
    for spec in config["datasets"].values():
        if spec["source"] == "torchvision":
            spec["archive"] = None  # read from the synthetic copy instead
        elif spec.get("path"):
            spec["path"] = str(base / spec["path"])
    for spec in config["pretrained"]["weight_files"].values():
        spec["path"] = str(base / spec["path"])
    patches = config["patches"]
    patches["n_images"] = _at_most(patches["n_images"], PATCH_IMAGES)
    theory = config["theory"]
    linear = theory["linear_cnn"]
    for key, limit in LINEAR_CNN.items():
        linear[key] = min(linear[key], limit)
    linear["steps"] = sorted(
        {min(s, 10 ** (i + 1)) for i, s in enumerate(sorted(linear["steps"])[:2])}
    )
    for key, limit in WHITENING.items():
        theory["whitening"][key] = min(theory["whitening"][key], limit)
    epochs = _epochs(config)
    config["training"] = _small_recipe(config["training"], epochs)
    for block in config["experiments"].values():
        block["seeds"] = block.get("seeds", [0])[:SEEDS]
        block["widths"] = [width * WIDTH for width in block.get("widths", [1.0])]
        if "settings" in block:
            block["settings"] = _small_recipe(block["settings"], epochs)
        # a subset of a synthetic copy holds fewer images than a run may ask for
        sizes = [_synthetic_train(config["datasets"], name) for name in block["datasets"]]
        sizes = [size for size in sizes if size is not None]
        n_train = block.get("settings", {}).get("n_train", config["training"]["n_train"])
        if sizes and (n_train is None or n_train > min(sizes)):
            block.setdefault("settings", {})["n_train"] = min(sizes)
    return config


def _synthetic_train(datasets: dict, name: str) -> int | None:
    """Training images of a dataset read from a synthetic copy (a subset: its classes' share of
    the balanced copy), or None for a dataset of the user's own files."""
    spec = datasets[name]
    if spec["source"] == "subset":
        whole = _synthetic_train(datasets, spec["of"])
        facts = TORCHVISION_DATASETS.get(datasets[spec["of"]].get("name"))
        return (
            None
            if whole is None or facts is None
            else whole * len(spec["classes"]) // facts.classes
        )
    if spec["source"] == "torchvision":
        celeba = spec.get("name") == "CelebA"
        return SYNTHETIC_TRAIN - (SYNTHETIC_TRAIN // CELEBA_VALID_SHARE if celeba else 0)
    return None


def synthetic_datasets(config: dict) -> list[str]:
    """The datasets a rehearsal reads from synthetic copies: every torchvision one."""
    return [name for name, spec in config["datasets"].items() if spec["source"] == "torchvision"]


def plan_signature(plan) -> dict:
    """What a rehearsal shares with the grid it stands for: every kind of file the default
    target builds and publishing copies (run names replaced by `{run}`), the training figures
    the grid supports, and per experiment block the axes of its runs (datasets, architectures,
    first-layer widths, labels, inputs, frozen) with how many hidden widths, learning rates and
    recipes it has."""
    runs = set(plan.grid)

    def kind(path: str) -> str:
        path = Path(path)
        return str(path.with_name("{run}" + path.suffix)) if path.stem in runs else str(path)

    blocks: dict[str, dict] = {}
    for entry in plan.grid.values():
        spec = entry["spec"]
        for name in entry["experiments"]:
            block = blocks.setdefault(name, {"runs": set(), "widths": set(), "recipes": set()})
            block["runs"].add(
                (spec.dataset, spec.arch, spec.first_width, spec.labels, spec.inputs, spec.frozen)
            )
            block["widths"].add(spec.width)
            block["recipes"].add((spec.lr, spec.epochs))
    return {
        "files": sorted({kind(path) for path in plan.default_targets()}),
        "published": sorted({kind(path) for path in plan.published()}),
        "training_figures": plan.supported_training_figures(),
        "blocks": {
            name: {
                "runs": sorted(map(list, block["runs"])),
                "widths": len(block["widths"]),
                "recipes": len(block["recipes"]),
            }
            for name, block in sorted(blocks.items())
        },
    }


def signature_differences(real: dict, rehearsal: dict) -> list[str]:
    """One line per way the rehearsal's plan differs from the real one's."""
    lines = []
    for key in ("files", "published"):
        for path in sorted(set(real[key]) - set(rehearsal[key])):
            lines.append(f"the grid builds {path}, the rehearsal does not")
        for path in sorted(set(rehearsal[key]) - set(real[key])):
            lines.append(f"the rehearsal builds {path}, the grid does not")
    if real["training_figures"] != rehearsal["training_figures"]:
        lines.append(
            f"training figures: the grid makes {real['training_figures']}, the rehearsal "
            f"{rehearsal['training_figures']}"
        )
    for name in sorted(set(real["blocks"]) | set(rehearsal["blocks"])):
        ours, theirs = real["blocks"].get(name), rehearsal["blocks"].get(name)
        if ours != theirs:
            lines.append(f"experiments.{name}: the grid has {ours}, the rehearsal {theirs}")
    return lines
