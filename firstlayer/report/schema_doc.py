"""The configuration reference, generated from config/schema.yaml: the block between
`results:config-reference:begin` and `...:end` of docs/configuration.md, one row per key (dotted
path, allowed values, default, description), written by `firstlayer.report.publish`; a test
checks it is current.
"""

from __future__ import annotations

import json
from pathlib import Path

from firstlayer.common.config import load_schema

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
        "Generated from `config/schema.yaml` by `python -m firstlayer.report.publish`.",
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
