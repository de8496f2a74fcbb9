"""The spawn probe: a fresh interpreter opens the source from the worker payload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit import RecipeError
from loaderkit.compiler import compile_recipe

from . import user_code
from .conftest import SAFE_RECIPE, SafeBuild
from .support import line_col

Write = Callable[[str], Path]


def checks(compiled_safety: object) -> dict[str, str]:
    return dict(compiled_safety.checks)  # type: ignore[attr-defined]


def test_safe_recipe_passes_the_spawn_probe(safe_build: SafeBuild) -> None:
    report = str(safe_build.compiled.safety)
    assert "safety: 2 spawn workers" in report
    assert "check: spawn probe: ok" in report


def test_safe_recipe_has_no_error_diagnostics(safe_build: SafeBuild) -> None:
    assert not any(d.is_error for d in safe_build.compiled.diagnostics)


def test_two_spawn_workers_deliver_every_row_exactly_once(safe_build: SafeBuild) -> None:
    assert sorted(safe_build.ids) == list(range(300))


def test_the_transform_runs_on_every_batch(safe_build: SafeBuild) -> None:
    assert safe_build.scores == [float(2 * (i % 10)) for i in safe_build.ids]


def test_factory_that_needs_parent_state_fails_the_probe(
        write_recipe: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    # The parent can open the table (bind and build succeed); a fresh worker cannot.
    monkeypatch.setitem(user_code.PARENT_STATE, "db", str(Path(
        __import__("os").environ["LK_TEST_DB"])))
    path = write_recipe("""\
        loaderkit: 1
        source:
          uri: {data}/db
          table: items
          connection_factory: tests.safety.user_code:parent_only_factory
        columns: [id, score]
        transform: tests.safety.user_code:double_score
        loader:
          num_workers: 2
        """)
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path)
    errors = [d for d in caught.value.diagnostics if d.is_error]
    assert [(d.location.line, d.location.column, d.code) for d in errors] == [
        (*line_col(path, "connection_factory:"), "LK503")]
    assert "'db'" in errors[0].message and "spawn" in errors[0].message


def test_no_probe_skips_the_probe(write_recipe: Write, secret: str) -> None:
    compiled = compile_recipe(write_recipe(SAFE_RECIPE), probe=False)
    assert checks(compiled.safety)["spawn probe"] == "skipped (--no-probe)"


def test_no_probe_still_runs_the_other_checks(write_recipe: Write, secret: str) -> None:
    compiled = compile_recipe(write_recipe(SAFE_RECIPE), probe=False)
    found = checks(compiled.safety)
    assert found["importable, module-level callables"] == "ok"
    assert found["pickle round trip"] == "ok"
    assert found["secrets absent from the payload"] == "ok (1 secret(s) scanned)"


def test_no_probe_still_refuses_a_lambda(write_recipe: Write) -> None:
    path = write_recipe(SAFE_RECIPE.replace("double_score", "lambda_transform"))
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    assert [d.code for d in caught.value.errors] == ["LK501"]
