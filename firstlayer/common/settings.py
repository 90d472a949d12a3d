"""The names a run can give its label setting and its input transform, and what they mean for
the analyses. Torch-free: the config is checked against these while planning; the functions
behind the names live in `firstlayer.training.manipulations`.

Label settings: `true`, `random`, `decileN` (labels = decile of each image's patch energy along
principal component N). Input transforms: `none`, `scaleNxA` (component N scaled by A > 0, A != 1).
One setting has one spelling: A is written in its shortest decimal form (`scale5x4`, not
`scale5x04` or `scale5x4.0`; `scale5x0.25`), so that equal settings never make two runs.
Optimisers: `sgd` (the paper's recipe), `adamw`. Augmentations: `none` (the paper's recipe),
`crop_flip` (a random crop of the image padded by 4 pixels, and a random horizontal flip).
"""

from __future__ import annotations

import re
from decimal import Decimal

from firstlayer.errors import InputError

LABELS = ("true", "random")
DECILE_LABELS = r"decile([1-9][0-9]*)"
TRANSFORMS = ("none",)
SCALE_TRANSFORM = r"scale([1-9][0-9]*)x([0-9]+(?:\.[0-9]+)?)"
UNCHANGED = "none"
OPTIMIZERS = ("sgd", "adamw")
AUGMENTS = ("none", "crop_flip")

LABEL_HELP = "true, random, decileN (N a principal component, 1-based)"
TRANSFORM_HELP = "none, scaleNxA (component N scaled by A > 0, e.g. scale1x0.5)"


def parse_deciles(name: str) -> int | None:
    """The component N of a decileN label setting, else None."""
    match = re.fullmatch(DECILE_LABELS, name)
    return int(match.group(1)) if match else None


def parse_scaling(name: str) -> tuple[int, float] | None:
    """(component, factor) of a scaleNxA transform name, else None."""
    match = re.fullmatch(SCALE_TRANSFORM, name)
    return (int(match.group(1)), float(match.group(2))) if match else None


def component_number(name: str) -> int | None:
    """The principal component a label setting or input transform names (decileN, scaleNxA)."""
    scaling = parse_scaling(name)
    return scaling[0] if scaling else parse_deciles(name)


def scale_name(component: int, factor: float) -> str:
    """The one spelling of a scaling: the factor in its shortest decimal form, no exponent."""
    return f"scale{component}x{format(Decimal(repr(float(factor))).normalize(), 'f')}"


def check_labels(name: str) -> None:
    if name not in LABELS and parse_deciles(name) is None:
        raise InputError(f"label setting {name!r}; allowed: {LABEL_HELP}")


def check_transform(name: str) -> None:
    scaling = parse_scaling(name)
    if name not in TRANSFORMS and scaling is None:
        raise InputError(f"input transform {name!r}; allowed: {TRANSFORM_HELP}")
    if scaling is not None and not scaling[1] > 0:
        raise InputError(f"scale factor {scaling[1]:g} in {name!r}; allowed: a positive number")


def check_spelling(name: str) -> None:
    """A run's input transform in its one spelling (after `check_transform`): refuses `scale5x04`
    and `scale5x4.0` (write `scale5x4`) and a factor of 1 (write `none`), so that equal settings
    never make two runs. The library's own functions accept any spelling."""
    scaling = parse_scaling(name)
    if scaling is None:
        return
    if scaling[1] == 1:
        raise InputError(
            f"input transform {name!r}; allowed: none, or a factor other than 1 (scaling by 1 "
            f"leaves the inputs unchanged)"
        )
    if name != scale_name(*scaling):
        raise InputError(
            f"input transform {name!r}; allowed: its one spelling {scale_name(*scaling)!r} "
            f"(the factor in its shortest decimal form, so that one setting makes one run)"
        )


def check_optimizer(name: str) -> None:
    if name not in OPTIMIZERS:
        raise InputError(f"optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def check_augment(name: str) -> None:
    if name not in AUGMENTS:
        raise InputError(f"augmentation {name!r}; allowed: {', '.join(AUGMENTS)}")


def learned_unmanipulated(runs):
    """Runs whose first layer learns (not frozen) from unmanipulated inputs: the runs Tables 1
    and 2 and the training figures compare. A RunSpec gives a bool; a table with `frozen` and
    `inputs` columns gives a boolean mask."""
    if hasattr(runs, "columns"):
        return ~runs["frozen"].astype(bool) & (runs["inputs"] == UNCHANGED)
    return not runs.frozen and runs.inputs == UNCHANGED
