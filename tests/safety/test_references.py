"""What `transform` and `connection_factory` name must cross into a spawn worker by name.

Each unsafe pattern lives in `tests/safety/user_code.py`, a real module; each must be
refused with one diagnostic at the recipe line and column that names it, before the
loader is built and before any process starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loaderkit import RecipeError
from loaderkit.compiler import compile_recipe
from loaderkit.errors import Diagnostic

from .support import ProcessStarts, line_col

Write = Callable[[str], Path]

TRANSFORM_RECIPE = """\
loaderkit: 1
source:
  uri: {data}/items.lance
columns: [id, score]
transform: tests.safety.user_code:NAME
loader:
  num_workers: 2
"""

FACTORY_RECIPE = """\
loaderkit: 1
source:
  uri: {data}/db
  table: items
  connection_factory: tests.safety.user_code:NAME
columns: [id, score]
transform: tests.safety.user_code:double_score
loader:
  num_workers: 2
"""


def refused(path: Path) -> list[Diagnostic]:
    """The diagnostics of a recipe that must fail, with no process started on the way."""
    starts = ProcessStarts()
    with starts.installed(), pytest.raises(RecipeError) as caught:
        compile_recipe(path)
    assert starts.count == 0, "a process was started for a recipe that was refused"
    return caught.value.diagnostics


def only_error(path: Path) -> Diagnostic:
    errors = [d for d in refused(path) if d.is_error]
    assert len(errors) == 1, errors
    return errors[0]


def at(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    return (diagnostic.location.file, diagnostic.location.line, diagnostic.location.column,
            diagnostic.code)


def test_lambda_transform_is_refused_at_the_transform_value(write_recipe: Write) -> None:
    path = write_recipe(TRANSFORM_RECIPE.replace("NAME", "lambda_transform"))
    error = only_error(path)
    assert at(error) == (str(path), *line_col(path, "transform:"), "LK501")
    assert "lambda" in error.message and error.hint


def test_closure_transform_is_refused_as_a_nested_function(write_recipe: Write) -> None:
    path = write_recipe(TRANSFORM_RECIPE.replace("NAME", "closure_transform"))
    error = only_error(path)
    assert at(error) == (str(path), *line_col(path, "transform:"), "LK501")
    assert "nested function or closure" in error.message


@pytest.mark.parametrize(("name", "what"), [("locked_transform", "lock"),
                                            ("file_transform", "Buffered"),
                                            ("socket_transform", "socket")])
def test_bound_method_of_an_unpicklable_object_is_refused(write_recipe: Write, name: str,
                                                          what: str) -> None:
    path = write_recipe(TRANSFORM_RECIPE.replace("NAME", name))
    error = only_error(path)
    assert at(error) == (str(path), *line_col(path, "transform:"), "LK501")
    assert "bound method" in error.message and what in error.message


def test_lancedb_table_as_connection_factory_is_refused_naming_lancedb(
        write_recipe: Write) -> None:
    path = write_recipe(FACTORY_RECIPE.replace("NAME", "table"))
    error = only_error(path)
    assert at(error) == (str(path), *line_col(path, "connection_factory:"), "LK405")
    assert "LanceDB" in error.message and "def open_table" in (error.hint or "")


def test_lambda_is_refused_before_the_loader_is_built(write_recipe: Write,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import loaderkit.building

    built: list[object] = []
    real_build = loaderkit.building.build

    def spy(plan: Any) -> Any:  # records the call, then builds for real
        built.append(plan)
        return real_build(plan)

    monkeypatch.setattr(loaderkit.building, "build", spy)
    path = write_recipe(TRANSFORM_RECIPE.replace("NAME", "lambda_transform"))
    refused(path)
    assert built == []


def test_memory_database_with_workers_is_refused_at_the_uri(write_recipe: Write) -> None:
    path = write_recipe("""\
        loaderkit: 1
        source:
          uri: memory://
          table: items
        loader:
          num_workers: 2
        """)
    error = only_error(path)
    assert at(error) == (str(path), *line_col(path, "uri:"), "LK210")


def test_fork_with_workers_is_refused_before_any_worker_starts(write_recipe: Write) -> None:
    path = write_recipe(TRANSFORM_RECIPE.replace("NAME", "double_score")
                        + "  multiprocessing_context: fork\n")
    error = only_error(path)
    assert at(error) == (str(path), *line_col(path, "multiprocessing_context:"), "LK207")


def test_fork_opted_in_builds_with_a_warning(write_recipe: Write) -> None:
    path = write_recipe(TRANSFORM_RECIPE.replace("NAME", "double_score")
                        + "  multiprocessing_context: fork\n  allow_fork: true\n")
    # The probe is skipped: it would fork this (threaded) test process, which is the very
    # hazard LK506 warns about. The loader is built, never iterated.
    compiled = compile_recipe(path, probe=False)
    warnings = [at(d) for d in compiled.diagnostics if d.code == "LK506"]
    assert warnings == [(str(path), *line_col(path, "multiprocessing_context:"), "LK506")]
    assert not any(d.is_error for d in compiled.diagnostics)
    assert compiled.loader.multiprocessing_context is not None
