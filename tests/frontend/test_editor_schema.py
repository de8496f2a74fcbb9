"""What editors see: the committed JSON Schema, applied as yaml-language-server applies it.

Editors validate one file at a time, without loaderkit: a child recipe that inherits
`source` through `extends` must not be underlined, nor a number read from `${env:}`.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schema" / "recipe.schema.json").read_text(encoding="utf-8"))
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*") if p.suffix in (".yaml", ".yml"))


def errors_of(data: object) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_example_recipe_is_valid_against_the_committed_schema(recipe: Path) -> None:
    assert errors_of(yaml.safe_load(recipe.read_text(encoding="utf-8"))) == []


def test_a_child_recipe_without_source_is_valid_for_editors() -> None:
    assert errors_of({"loaderkit": 1, "extends": "base.yaml", "loader": {"batch_size": 8}}) == []


def test_numbers_and_booleans_may_be_env_references_for_editors() -> None:
    data = {"loaderkit": 1, "loader": {"batch_size": "${env:BATCH_SIZE,64}",
                                       "pin_memory": "${env:PIN}"}}
    assert errors_of(data) == []


def test_editors_still_underline_a_wrong_type_and_an_unknown_key() -> None:
    assert errors_of({"loaderkit": 1, "loader": {"batch_size": "lots"}})
    assert errors_of({"loaderkit": 1, "loader": {"batch_sise": 4}})


def test_a_live_source_is_valid_for_editors() -> None:
    assert errors_of({"loaderkit": 1, "source": {"live": True}}) == []


def test_editors_underline_a_source_with_neither_uri_nor_live() -> None:
    assert errors_of({"loaderkit": 1, "source": {"table": "t"}})
    assert errors_of({"loaderkit": 1, "sources": {"a": {"uri": "a.lance", "live": True}}})
