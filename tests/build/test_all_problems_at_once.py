"""All problems at once, each once: one found at build does not hide an independent one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit import RecipeError
from loaderkit.compiler import compile_recipe, lint

Write = Callable[..., Path]

DB_SOURCE = """\
loaderkit: 1
source:
  uri: {data}/db
  table: items
  connection_factory: tests.safety.user_code:lambda_factory
"""


def codes_of(path: Path) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    return sorted(d.code for d in caught.value.diagnostics)


def test_a_column_the_format_cannot_hold_does_not_hide_a_lambda_factory(
        write_recipe: Write) -> None:
    path = write_recipe(DB_SOURCE + "columns: [id, text]\nformat: torch_col\n")
    assert codes_of(path) == ["LK404", "LK501"]


def test_a_missing_column_does_not_hide_an_unpicklable_transform(write_recipe: Write) -> None:
    path = write_recipe("loaderkit: 1\nsource:\n  uri: {data}/items.lance\n"
                        "columns: [id, nope]\ntransform: tests.safety.user_code:lambda_transform\n")
    assert codes_of(path) == ["LK402", "LK501"]


def test_a_missing_dataset_does_not_hide_an_unpicklable_transform(write_recipe: Write) -> None:
    path = write_recipe("loaderkit: 1\nsource:\n  uri: {data}/nope.lance\n"
                        "transform: tests.safety.user_code:closure_transform\n")
    assert codes_of(path) == ["LK401", "LK501"]


def test_each_columns_problem_is_reported_once(write_recipe: Write) -> None:
    path = write_recipe("loaderkit: 1\nsource:\n  uri: {data}/items.lance\n"
                        "columns: [id, text]\nformat: torch_col\n")
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    assert [d.code for d in caught.value.diagnostics] == ["LK404"]
    assert str(caught.value).count("LK404") == 1


def test_lint_of_a_directory_reports_a_shared_bases_problem_once(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("loaderkit: 1\nsource:\n  uri: x.lance\n"
                                        "loader:\n  batch_sise: 4\n")
    for child in ("train", "val", "test"):
        (tmp_path / f"{child}.yaml").write_text("loaderkit: 1\nextends: base.yaml\n")
    assert [d.code for d in lint([tmp_path])] == ["LK201"]


def test_a_base_that_fails_to_load_adds_no_missing_source_on_its_child(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("loaderkit: 1\nsource: [\n")
    (tmp_path / "child.yaml").write_text("loaderkit: 1\nextends: base.yaml\n")
    codes = [d.code for d in lint([tmp_path / "child.yaml"])]
    assert codes == ["LK001"]


def test_a_missing_base_adds_no_missing_source(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text("loaderkit: 1\nextends: bsae.yaml\n")
    assert [d.code for d in lint([tmp_path / "child.yaml"])] == ["LK101"]


def test_a_recipe_without_source_or_base_is_still_missing_source(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("loaderkit: 1\nformat: torch\n")
    assert [(d.code, d.line, d.column) for d in lint([tmp_path / "r.yaml"])] == [
        ("LK203", 1, 1)]
