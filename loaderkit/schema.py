"""The recipe's JSON Schema, generated from the models; `schema/recipe.schema.json` is its output."""

from __future__ import annotations

import json

from loaderkit.models import json_schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
