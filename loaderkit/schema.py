"""The recipe's JSON Schema, generated from the models.

`schema/recipe.schema.json` is the output of `schema_text()`.
"""

from __future__ import annotations

import json
from typing import Any

from loaderkit.models import ENV_SCHEMA, json_schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if prop == ENV_SCHEMA:
        return "`${env:NAME}`"
    if "$ref" in prop:
        return "mapping: " + prop["$ref"].rsplit("/", 1)[-1].lower()
    if "anyOf" in prop:
        return " or ".join(_type_of(p, defs) for p in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if prop.get("type") == "array":
        return f"list of {_type_of(prop.get('items', {}), defs)}"
    if prop.get("type") == "object":
        extra = prop.get("additionalProperties")
        return "mapping" + (f" to {_type_of(extra, defs)}" if isinstance(extra, dict) else "")
    return str(prop.get("type", "any")) + _bounds(prop)


def _bounds(prop: dict[str, Any]) -> str:
    """A number's bounds as an interval: ` in [1, 1024]`, ` in (0, 1]`, ` >= 0`."""
    low, high = prop.get("minimum"), prop.get("maximum")
    open_low, open_high = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
    low, high = low if open_low is None else open_low, high if open_high is None else open_high
    if high is None:
        return "" if low is None else f" {'>' if open_low is not None else '>='} {_number(low)}"
    if low is None:
        return f" {'<' if open_high is not None else '<='} {_number(high)}"
    return (f" in {'(' if open_low is not None else '['}{_number(low)}, {_number(high)}"
            f"{')' if open_high is not None else ']'}")


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e6:
        return f"{value:.0e}".replace("e+", "e")
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _rows(model: dict[str, Any], prefix: str, defs: dict[str, Any]) -> list[str]:
    rows = []
    required = set(model.get("required", []))
    for name, prop in model["properties"].items():
        key = f"{prefix}{name}"
        if name in required:
            default = "required"
        elif "default" in prop:
            default = f"`{json.dumps(prop['default'])}`"
        else:
            default = "see description"
        example = f"`{json.dumps(prop['examples'][0])}`" if prop.get("examples") else ""
        description = prop.get("description", "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_type_of(prop, defs)} | {default} | {description} | "
                    f"{example} |")
        section = _section_ref(prop)
        if section is not None:
            ref, named = section
            rows += _rows(defs[ref], f"{key}.<name>." if named else f"{key}.", defs)
    return rows


def _section_ref(prop: dict[str, Any]) -> tuple[str, bool] | None:
    """The model a key holds, directly or as one of its types (an optional section), and
    whether as the values of a mapping of named entries (`sources.NAME`)."""
    for option in [prop, *prop.get("anyOf", [])]:
        if "$ref" in option:
            return option["$ref"].rsplit("/", 1)[-1], False
        values = option.get("additionalProperties")
        if option.get("type") == "object" and isinstance(values, dict) and "$ref" in values:
            return values["$ref"].rsplit("/", 1)[-1], True
    return None


def reference_text() -> str:
    """The Markdown of `docs/reference.md`: every recipe key, its type, default and example."""
    schema = json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    lines = ["# Recipe reference", "",
             "<!-- Generated from loaderkit/models.py by `python -m loaderkit.schema "
             "--reference > docs/reference.md`; a test fails on drift. -->", "",
             str(schema.get("description", "")), "",
             "| key | type | default | description | example |",
             "| --- | --- | --- | --- | --- |",
             *_rows(schema, "", defs), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.stdout.write(reference_text() if "--reference" in sys.argv else schema_text())
