"""Every run of the shipped configs keeps its name, spec and initialisation seed: the published
result sets and users' caches are keyed by them (tests/data/pinned_runs.json was written from
the grid before any later RunSpec field existed). New runs may join a config; none may move."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from firstlayer.common.config import validate_config
from firstlayer.common.grid import build_grid
from firstlayer.training.run import init_seed

PINNED = json.loads((Path(__file__).parent / "data" / "pinned_runs.json").read_text())


@pytest.mark.parametrize("config_name", sorted(PINNED))
def test_pinned_runs_keep_name_spec_and_init_seed(config_name):
    config = yaml.safe_load((ROOT / "config" / config_name).read_text())
    validate_config(config, ROOT / "config" / "schema.yaml")
    grid = build_grid(config["experiments"], config["training"])
    for name, (spec_digest, seed) in PINNED[config_name].items():
        assert name in grid, f"{config_name}: run {name} is gone or renamed"
        spec = grid[name]["spec"]
        text = json.dumps(spec.as_dict(), sort_keys=True).encode()
        assert hashlib.sha256(text).hexdigest()[:16] == spec_digest, (config_name, name)
        assert str(init_seed(spec)) == seed, (config_name, name)


# Tiny 3x3 runs of every kind the shipped configs train (true and random labels, a frozen first
# layer, ResNet, a rescaled component, decile labels), trained in this process on one thread.
# tests/data/pinned_weights.npz holds their recorded first layers and training losses as the
# code wrote them before the first-layer geometry became a property of each architecture
# (commit 6b5cd4a, `python tests/test_pinned_runs.py` there); the json, their sha256 and the
# machine they were written on.
OLD_RUNS = {
    "vgg11_true": dict(arch="vgg11", labels="true"),
    "vgg11_random": dict(arch="vgg11", labels="random", seed=1),
    "vgg13_frozen": dict(arch="vgg13", frozen=True),
    "resnet18_true": dict(arch="resnet18"),
    "vgg11_scaled": dict(arch="vgg11", inputs="scale2x4"),
    "vgg11_decile": dict(arch="vgg11", labels="decile2"),
}
OLD_BASE = dict(dataset="toy", first_width=8, width=0.0625, epochs=2, n_train=None, n_test=None,
                batch_size=16)  # fmt: skip
DATA = Path(__file__).parent / "data"


def machine() -> dict:
    import platform

    import torch

    return {
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


def train_old_runs(folder: Path) -> dict:
    """{name: recorded first layers, name_train_loss: per-epoch losses} of OLD_RUNS."""
    import torch
    from conftest import write_toy_dataset

    from firstlayer.common.grid import RunSpec
    from firstlayer.training.run import read_run, train

    torch.set_num_threads(1)
    data = write_toy_dataset(folder / "toy.h5", 96, 24, 12)
    arrays = {}
    for name, case in OLD_RUNS.items():
        spec = RunSpec(**{**OLD_BASE, **case})
        train(spec, data, folder / f"{name}.h5", folder / f"{name}.pt", device="cpu", log=print)
        run = read_run(folder / f"{name}.h5")
        arrays[name], arrays[f"{name}_train_loss"] = run.weights, run.metrics["train_loss"]
    return arrays


def test_old_3x3_runs_record_the_same_first_layers(tmp_path):
    """The geometry change left the 3x3 runs' results alone: byte for byte on the machine (torch
    version and CPU kernels) the pinned runs were written on, to float rounding elsewhere."""
    import numpy as np

    pinned = np.load(DATA / "pinned_weights.npz")
    written = json.loads((DATA / "pinned_weights.json").read_text())
    arrays = train_old_runs(tmp_path)
    same_machine = written["machine"] == machine()
    for name, array in arrays.items():
        if same_machine:
            assert hashlib.sha256(array.tobytes()).hexdigest() == written["sha256"][name], name
        else:
            assert np.allclose(array, pinned[name], rtol=1e-4, atol=1e-6), name


if __name__ == "__main__":  # write the pinned runs with the code on PYTHONPATH
    import sys
    import tempfile

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as folder:
        arrays = train_old_runs(Path(folder))
    np.savez(DATA / "pinned_weights.npz", **arrays)
    digests = {name: hashlib.sha256(a.tobytes()).hexdigest() for name, a in arrays.items()}
    (DATA / "pinned_weights.json").write_text(
        json.dumps({"machine": machine(), "sha256": digests}, indent=1, sort_keys=True) + "\n"
    )
