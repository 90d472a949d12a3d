"""The library's rooms mirror the workflow's stages and imports run one way through them."""

import ast
import subprocess
import sys

import yaml
from conftest import ROOT

import firstlayer

# A module may import from its own stage and from earlier ones, never from a later one.
STAGES = ["errors", "logs", "h5io", "intervals", "common", "datasets", "patches", "pretrained", "training",
          "theory", "report"]  # fmt: skip
FOUNDATION = {"errors", "logs", "h5io", "intervals"}


def _stage(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    return STAGES.index(name)


def _library_imports():
    """(importing module, imported firstlayer module) for every import in the package."""
    for path in sorted((ROOT / "firstlayer").rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        module = ".".join(part for part in relative.parts if part != "__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("firstlayer."):
                    yield module, name


def test_imports_never_run_against_the_data_flow():
    backwards = [
        f"{module} imports {target}"
        for module, target in _library_imports()
        if module != "firstlayer" and _stage(target) > _stage(module)
    ]
    assert not backwards, backwards


def test_every_rule_file_has_a_library_room_of_its_name():
    rooms = {path.name for path in (ROOT / "firstlayer").iterdir() if path.is_dir()}
    stages = {path.stem for path in (ROOT / "rules").glob("*.smk")}
    assert stages <= rooms, stages - rooms


def test_planning_the_workflow_imports_no_torch():
    code = (
        "import sys, yaml; from firstlayer.common.config import validate_config; "
        "from firstlayer.common.targets import Plan; "
        f"config = yaml.safe_load(open({str(ROOT / 'config/paper.yaml')!r})); "
        f"validate_config(config, {str(ROOT / 'config/schema.yaml')!r}); "
        "plan = Plan(config); plan.default_targets(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_torchvision_dataset_facts_have_one_home():
    from firstlayer.common.facts import TORCHVISION_DATASETS
    from firstlayer.datasets.sources import TORCHVISION_BUILTINS

    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    spec = schema["properties"]["datasets"]["additionalProperties"]["properties"]["name"]
    assert set(TORCHVISION_BUILTINS) == set(TORCHVISION_DATASETS) == set(spec["enum"])


def test_the_package_docstring_names_every_room_and_module():
    doc = firstlayer.__doc__
    missing = [
        str(path.relative_to(ROOT / "firstlayer").with_suffix(""))
        for path in (ROOT / "firstlayer").rglob("*.py")
        if path.name != "__init__.py" and path.stem not in doc
    ]
    assert not missing, missing
    rooms = [p.name for p in (ROOT / "firstlayer").iterdir() if (p / "__init__.py").is_file()]
    assert all(f"{room}/" in doc for room in rooms), rooms


def test_scripts_are_thin():
    fat = {
        path.name: n
        for path in (ROOT / "scripts").glob("*.py")
        if (n := len(path.read_text().splitlines())) > 20
    }
    assert not fat, fat


def test_ci_fails_on_lint_format_and_workflow_lint():
    ci = (ROOT / ".ci" / "run").read_text()
    for command in (
        "ruff check .",
        "ruff format --check .",
        "snakefmt --check",
        "snakemake --lint",
    ):
        assert command in ci, command
