"""The configuration reference, generated from config/schema.yaml.

    python -m firstlayer.schema_doc README.md

rewrites the README block between `results:config-reference:begin` and `...:end` with one row
per key (dotted path, allowed values, default, description); a test checks it is current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from firstlayer.common.config import load_schema
from firstlayer.report.markdown import replace_block

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


def _allowed(node: dict) -> str:
    if "enum" in node:
        return " \\| ".join("null" if v is None else str(v) for v in node["enum"])
    kind = node.get("type", "object" if "properties" in node else "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(str(k) for k in kinds if k)
    if "items" in node:
        text += f" of {_allowed(node['items']) or 'values'}"
    bounds = [
        f"≥ {node['minimum']}" if "minimum" in node else "",
        f"> {node['exclusiveMinimum']}" if "exclusiveMinimum" in node else "",
        f"< {node['exclusiveMaximum']}" if "exclusiveMaximum" in node else "",
    ]
    bounds = ", ".join(b for b in bounds if b)
    return f"{text} ({bounds})" if bounds else text


def rows(node: dict, prefix: str = "") -> list[tuple[str, str, str, str]]:
    out = []
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = json.dumps(child["default"]) if "default" in child else ""
        if len(default) > 40:
            default = "(see schema)"
        description = " ".join(str(child.get("description", "")).split())
        if key == "settings":  # a block's settings are the keys of `training`
            description += " Any key of `training`."
        out.append((path, _allowed(child), default, description))
        if key != "settings":
            out += rows(child, f"{path}.")
        extra = child.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in extra:
            out += rows(extra, f"{path}.<name>.")
    return out


def reference_block(schema_path=SCHEMA) -> str:
    lines = [
        "<!-- results:config-reference:begin -->",
        "",
        "Generated from `config/schema.yaml` by `python -m firstlayer.schema_doc README.md`.",
        "",
        "| key | allowed | default | meaning |",
        "|---|---|---|---|",
    ]
    for path, allowed, default, description in rows(load_schema(schema_path)):
        cells = [
            f"`{path}`",
            allowed.replace("|", "\\|") if "\\|" not in allowed else allowed,
            f"`{default}`" if default else "",
            description.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", "<!-- results:config-reference:end -->"])


def main(argv=None) -> int:
    readme = Path((argv or sys.argv[1:])[0])
    readme.write_text(replace_block(readme.read_text(), reference_block(), "config-reference"))
    print(f"updated {readme} from {SCHEMA.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
