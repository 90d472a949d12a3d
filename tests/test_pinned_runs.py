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
