"""The conda environment carries exactly the project's dependency pins (conda channels cannot be
reached here, so the file is checked, not solved)."""

import re
import tomllib

import yaml
from conftest import ROOT


def test_conda_env_pins_equal_pyproject():
    env = yaml.safe_load((ROOT / "envs" / "firstlayer.yaml").read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.startswith("python=") for d in conda) and "pip" in conda
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(pip) == sorted(pyproject)


def test_every_rule_that_runs_code_names_the_env():
    total = 0
    for path in (ROOT / "rules").glob("*.smk"):
        text = path.read_text()
        scripts = re.findall(r"^\s+script:$", text, re.M)
        envs = re.findall(r"^\s+conda:\n\s+ENV$", text, re.M)
        assert len(scripts) == len(envs), path.name
        total += len(scripts)
    assert total >= 20
    assert (ROOT / "scripts" / "firstlayer").resolve() == (ROOT / "firstlayer").resolve()


def test_the_snakemake_floor_is_one_in_the_snakefile_and_pyproject():
    """Profiles give `runtime` in minutes, which Snakemake 9.16.3 to 9.19 read as seconds."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floor = next(d for d in pyproject if d.startswith("snakemake[")).split(">=")[1].split(",")[0]
    assert floor == "9.20"
    assert f'min_version("{floor}")' in (ROOT / "Snakefile").read_text()
