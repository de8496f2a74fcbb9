"""Committed artifacts match their generators; the catalogue's examples say what they claim."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loaderkit.compiler import front, lint
from loaderkit.resolving import resolve
from loaderkit.rules import RULES, render_catalogue
from loaderkit.schema import schema_text

from .support import HEAD

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*") if p.suffix in (".yaml", ".yml"))
FRONT_END_CODES = {c for c in RULES if c < "LK400"} | {"LK506"}


def is_single_recipe(text: str) -> bool:
    """An example that is one whole recipe file (not prose, a command, or several files)."""
    return (re.search(r"^loaderkit:", text, re.MULTILINE) is not None
            and re.search(r"^# \S+\.(yaml|yml)$", text, re.MULTILINE) is None)


def test_committed_schema_equals_loaderkit_schema_output() -> None:
    committed = (ROOT / "schema" / "recipe.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "regenerate: loaderkit schema > schema/recipe.schema.json"


def test_schema_command_prints_the_committed_schema() -> None:
    result = subprocess.run([sys.executable, "-m", "loaderkit", "schema"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "schema" / "recipe.schema.json").read_text(encoding="utf-8")
    assert json.loads(result.stdout)["title"] == "loaderkit recipe"


def test_committed_rules_page_equals_render_catalogue() -> None:
    committed = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert committed == render_catalogue(), "regenerate: python -m loaderkit.rules > docs/rules.md"


def test_catalogue_documents_every_code_with_all_parts() -> None:
    page = render_catalogue()
    for code, r in RULES.items():
        assert re.fullmatch(r"LK\d{3}", code) and r.code == code
        assert r.name and r.catches and r.why and r.bad and r.good, code
        assert f"\n## {code}\n" in page, code


def test_rule_names_are_unique() -> None:
    names = [r.name for r in RULES.values()]
    assert len(names) == len(set(names))


GOOD = [r for r in RULES.values() if is_single_recipe(r.good)]
BAD = [r for r in RULES.values() if r.code in FRONT_END_CODES and is_single_recipe(r.bad)]


@pytest.mark.parametrize("rule", GOOD, ids=[r.code for r in GOOD])
def test_good_example_lints_clean_of_its_code(rule: Any, tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(HEAD, encoding="utf-8")  # for extends examples
    path = tmp_path / "good.yaml"
    path.write_text(rule.good, encoding="utf-8")
    diagnostics = lint([path])
    assert rule.code not in {d.code for d in diagnostics}
    assert not [d for d in diagnostics if d.is_error], diagnostics


@pytest.mark.parametrize("rule", BAD, ids=[r.code for r in BAD])
def test_bad_example_triggers_its_code(rule: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA_URI", "WORKERS", "AWS_SECRET_ACCESS_KEY", "LANCEDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(rule.bad, encoding="utf-8")
    diagnostics = front(path, require_env=True)[2] if rule.code == "LK103" else lint([path])
    assert rule.code in {d.code for d in diagnostics}, diagnostics


def test_examples_cover_most_front_end_codes() -> None:
    # Guards the filter above: it must not silently skip every example.
    assert len(BAD) >= len(FRONT_END_CODES) - 8
    assert len(GOOD) >= 30


@pytest.mark.parametrize("recipe", RECIPES, ids=[str(p.relative_to(ROOT)) for p in RECIPES])
def test_shipped_recipe_lints_clean_and_declares_its_schema(recipe: Path) -> None:
    text = recipe.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema="), recipe
    assert not [d for d in lint([recipe]) if d.is_error]


@pytest.mark.parametrize("recipe", RECIPES, ids=[str(p.relative_to(ROOT)) for p in RECIPES])
def test_shipped_recipe_validates_against_the_json_schema(recipe: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document, _ = resolve(recipe)  # a recipe that extends another is complete once merged
    assert document is not None
    schema = json.loads((ROOT / "schema" / "recipe.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(document.data, schema)
