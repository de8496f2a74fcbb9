"""Stage 1: bytes and text -> data with positions; safe and bounded."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import pytest

from loaderkit.compiler import lint
from loaderkit.reading import declares_recipe, read_file, read_text

from .support import HEAD

VALID = HEAD + "loader:\n  batch_size: 8\n"


@pytest.mark.parametrize("encoding, bom", [
    ("utf-8", codecs.BOM_UTF8),
    ("utf-16-le", codecs.BOM_UTF16_LE),
    ("utf-16-be", codecs.BOM_UTF16_BE),
], ids=["utf-8-bom", "utf-16-le-bom", "utf-16-be-bom"])
def test_bom_marked_recipe_is_accepted(encoding: str, bom: bytes, write: Any) -> None:
    path = write("r.yaml", bom + VALID.encode(encoding))
    document, problems = read_file(path)
    assert problems == []
    assert document is not None and document.data["loader"] == {"batch_size": 8}
    assert lint([path]) == []


@pytest.mark.parametrize("encoding, bom", [
    ("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE)], ids=["utf-8", "utf-16"])
def test_bom_does_not_shift_columns(encoding: str, bom: bytes, write: Any) -> None:
    path = write("r.yaml", bom + "loaderkit: 2\nsource:\n  uri: x\n".encode(encoding))
    assert [(d.location.line, d.location.column, d.code) for d in lint([path])] == [
        (1, 12, "LK204")]


def test_positions_of_keys_and_values_are_recorded() -> None:
    document, problems = read_text(VALID, "r.yaml")
    assert problems == [] and document is not None
    assert (document.keys[("loader", "batch_size")].line,
            document.keys[("loader", "batch_size")].column) == (5, 3)
    assert (document.values[("loader", "batch_size")].line,
            document.values[("loader", "batch_size")].column) == (5, 15)
    # An absent path falls back to its nearest located ancestor: the section's key or value.
    assert str(document.locate(("loader", "missing"), key=True)) == "r.yaml:4:1"
    assert str(document.locate(("loader", "missing"))) == "r.yaml:5:3"


def test_anchors_and_aliases_within_budget_are_plain_data() -> None:
    text = "defaults: &d {batch_size: 8}\nloader: *d\n"
    document, problems = read_text(text, "r.yaml")
    assert problems == [] and document is not None
    assert document.data["loader"] == {"batch_size": 8}


def test_date_like_value_stays_the_string_written() -> None:
    document, _ = read_text(HEAD + "name: 2024-01-01\n", "r.yaml")
    assert document is not None and document.data["name"] == "2024-01-01"


def test_explicit_core_tags_are_allowed() -> None:
    document, problems = read_text(HEAD + "name: !!str 12\n", "r.yaml")
    assert problems == [] and document is not None and document.data["name"] == "12"


def test_python_tag_never_constructs_anything(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"loaderkit: 1\nsource: !!python/object/apply:os.system ['touch {marker}']\n"
    _, problems = read_text(text, "r.yaml")
    assert "LK006" in {p.code for p in problems}
    assert not marker.exists()


def test_second_document_is_a_syntax_error() -> None:
    _, problems = read_text(VALID + "---\nloaderkit: 1\n", "r.yaml")
    assert [(p.code, p.location.line) for p in problems] == [("LK001", 6)]


def test_undefined_alias_is_a_syntax_error() -> None:
    _, problems = read_text("loaderkit: *nope\n", "r.yaml")
    assert [(p.code, p.location.line, p.location.column) for p in problems] == [("LK001", 1, 12)]


def test_huge_integer_is_a_diagnostic_not_a_crash() -> None:
    _, problems = read_text(HEAD + "loader:\n  batch_size: " + "9" * 5000 + "\n", "r.yaml")
    assert [(p.code, p.location.line, p.location.column) for p in problems] == [("LK001", 5, 15)]


@pytest.mark.parametrize("tagged", ["!!int many", "!!float x", "!!bool maybe", "!!int ''",
                                    "!!int 0x", "!!float _"])
def test_core_tag_with_a_value_of_another_type_is_a_diagnostic(tagged: str) -> None:
    _, problems = read_text(f"name: {tagged}\n", "r.yaml")
    assert [(p.code, p.location.line, p.location.column) for p in problems] == [("LK001", 1, 7)]


def test_unreadable_path_is_a_diagnostic(tmp_path: Path) -> None:
    _, problems = read_file(tmp_path / "a\x00b.yaml")
    assert [p.code for p in problems] == ["LK007"]


def test_directory_given_as_recipe_is_a_diagnostic(tmp_path: Path) -> None:
    _, problems = read_file(tmp_path)
    assert [(p.code, p.location.file) for p in problems] == [("LK007", str(tmp_path))]


@pytest.mark.parametrize("text, is_recipe", [
    (VALID, True),
    ("{loaderkit: 1, source: {uri: x}}\n", True),  # flow style
    ('"loaderkit": 1\n', True),
    ("name: x\nextra: !Ref y\nloaderkit: 1\n", True),  # a tag PyYAML cannot build
    ("loaderkit: 1\nsource:\n\turi: x\n", True),  # a syntax error after the key
    ("name: 'x\nloaderkit: 1\n", True),  # a syntax error before it: the line counts
    ("repos:\n  - {id: loaderkit}\n", False),
    ("source:\n  loaderkit: 1\n", False),  # not at the top level
    ("jobs: [loaderkit]\nrun: loaderkit\n", False),  # a value, not a key
    ("- loaderkit: 1\n", False),  # a list at the top
    ("", False),
    ("# loaderkit: 1\n", False),
    ("a: 1\n---\nloaderkit: 1\n", False),  # only the first document counts
    ("items: [\n", False),
], ids=["block", "flow", "quoted-key", "unknown-tag", "error-after-key", "error-before-key",
        "pre-commit", "nested-key", "value", "top-level-list", "empty", "comment",
        "second-document", "broken-non-recipe"])
def test_a_recipe_is_a_yaml_file_with_a_top_level_loaderkit_key(
        text: str, is_recipe: bool, write: Any) -> None:
    assert declares_recipe(write("f.yaml", text)) is is_recipe
