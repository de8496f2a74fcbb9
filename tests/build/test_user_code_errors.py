"""A transform or factory that raises: a located diagnostic (LK411) at the key that named it,
with the user's own frames, never a raw traceback; the graph and report still print."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit import FactoryError, RecipeError, TransformError, load_recipe
from loaderkit.compiler import compile_recipe
from loaderkit.errors import Diagnostic
from tests.safety.misbehaving_code import CONNECTION_STRING
from tests.safety.support import REPO, subprocess_env

Write = Callable[..., Path]

RECIPE = """\
loaderkit: 1
source:
  uri: {data}/items.lance
columns: [id, score]
transform: tests.safety.user_code:failing_transform
loader:
  batch_size: 16
"""


def run_build(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loaderkit", "build", str(path), *args],
                          cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_raising_transform_is_lk411_at_transform_with_the_users_frames(
        write_recipe: Write, workers: str) -> None:
    path = write_recipe(RECIPE)
    result = run_build(path, "--take", "2", "--set", f"loader.num_workers={workers}")
    assert result.returncode == 1
    head, _, diagnostic = result.stdout.partition(f"{path}:5:12: error LK411 ")
    assert "loader: RecipeLoader" in head and "safety:" in head  # graph and report first
    assert diagnostic.startswith("transform 'tests.safety.user_code:failing_transform' raised "
                                 "ValueError: corrupt pixels in this batch")
    assert "in failing_transform" in diagnostic and "in _check_pixels" in diagnostic
    assert "loaderkit/runtime" not in diagnostic and "torch/utils" not in diagnostic
    assert "Traceback" not in result.stdout + result.stderr


def test_iterating_a_raising_transform_raises_transform_error(write_recipe: Write) -> None:
    loader = load_recipe(str(write_recipe(RECIPE)))
    with pytest.raises(TransformError, match="corrupt pixels") as caught:
        next(iter(loader))
    assert "in _check_pixels" in caught.value.frames


def test_a_raising_factory_is_lk411_at_the_factory(write_recipe: Write) -> None:
    path = write_recipe("loaderkit: 1\nsource:\n  uri: {data}/db\n  table: items\n"
                        "  connection_factory: tests.safety.user_code:failing_factory\n")
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    [error] = caught.value.errors
    assert (error.code, error.line, error.column) == ("LK411", 5, 23)
    assert "ConnectionError: cannot reach the server" in error.message
    assert "in failing_factory" in (error.hint or "")
    assert issubclass(FactoryError, RecipeError.__mro__[1])


# --- user code that returns the wrong thing, or exits ------------------------------------

MISBEHAVING = "tests.safety.misbehaving_code"
FACTORY_RECIPE = """\
loaderkit: 1
source:
  uri: {data}/db
  table: items
  connection_factory: %s
columns: [id, score]
loader:
  batch_size: 16
"""
TRANSFORM_RECIPE = RECIPE.replace("tests.safety.user_code:failing_transform", "%s")
EXPECTED_TABLE = "not a LanceDB Table or a lance.LanceDataset"


def factory_error(write_recipe: Write, factory: str) -> Diagnostic:
    path = write_recipe(FACTORY_RECIPE % f"{MISBEHAVING}:{factory}")
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    [error] = caught.value.errors
    assert (error.code, error.line, error.column) == ("LK411", 5, 23)  # at the factory
    return error


@pytest.mark.parametrize(("factory", "returned"), [
    ("returns_none", "returned None"),
    ("returns_number", "returned 42"),
    ("returns_text", f"returned a str of {len(CONNECTION_STRING)} characters"),
])
def test_a_factory_returning_no_table_is_lk411_saying_what_it_returned(
        write_recipe: Write, factory: str, returned: str) -> None:
    error = factory_error(write_recipe, factory)
    assert error.message == f"connection_factory '{MISBEHAVING}:{factory}' {returned}, " \
                            f"{EXPECTED_TABLE}"


def test_text_a_factory_returned_is_never_printed(write_recipe: Write) -> None:
    # What a factory returns in place of a table is often a connection string.
    error = factory_error(write_recipe, "returns_text")
    assert "sk-not-for-printing" not in str(error) and "db://team" not in str(error)


def test_a_factory_returning_its_connection_is_told_to_open_the_table(
        write_recipe: Write) -> None:
    error = factory_error(write_recipe, "returns_the_connection")
    assert "returned a lancedb." in error.message and EXPECTED_TABLE in error.message
    assert "return its .open_table(name)" in error.message


def test_build_of_a_factory_returning_none_exits_1_with_a_located_diagnostic(
        write_recipe: Write) -> None:
    path = write_recipe(FACTORY_RECIPE % f"{MISBEHAVING}:returns_none")
    result = run_build(path)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}:5:23: error LK411 connection_factory "), result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_factory_calling_sys_exit_is_lk411_at_the_factory(write_recipe: Write) -> None:
    error = factory_error(write_recipe, "exits_when_opening")
    assert error.message == f"connection_factory '{MISBEHAVING}:exits_when_opening' " \
                            "called sys.exit(4)"
    assert "in exits_when_opening" in (error.hint or "")


@pytest.mark.parametrize("workers", ["0", "2"])
def test_build_take_of_a_transform_returning_none_is_lk411_at_the_transform(
        write_recipe: Write, workers: str) -> None:
    path = write_recipe(TRANSFORM_RECIPE % f"{MISBEHAVING}:edits_in_place")
    result = run_build(path, "--take", "2", "--set", f"loader.num_workers={workers}")
    assert result.returncode == 1
    assert f"{path}:5:12: error LK411 transform '{MISBEHAVING}:edits_in_place' returned " \
           "None, not a batch; end it with `return batch`" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_build_take_of_a_transform_returning_a_number_takes_the_batches(
        write_recipe: Write) -> None:
    # What a transform returns is the user's choice; only None is refused.
    result = run_build(write_recipe(TRANSFORM_RECIPE % f"{MISBEHAVING}:returns_a_count"),
                       "--take", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "took 2 batches" in result.stdout


@pytest.mark.parametrize("workers", ["0", "2"])
def test_build_take_of_a_transform_calling_sys_exit_is_lk411_and_exit_1(
        write_recipe: Write, workers: str) -> None:
    path = write_recipe(TRANSFORM_RECIPE % f"{MISBEHAVING}:exits_on_a_batch")
    result = run_build(path, "--take", "2", "--set", f"loader.num_workers={workers}")
    assert result.returncode == 1
    assert f"{path}:5:12: error LK411 transform '{MISBEHAVING}:exits_on_a_batch' called " \
           "sys.exit(3)" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(("recipe", "key"), [
    (TRANSFORM_RECIPE % "tests.safety.exits_on_import:transform", (5, 12)),
    (FACTORY_RECIPE % "tests.safety.exits_on_import:open_table", (5, 23)),
], ids=["transform", "connection_factory"])
def test_build_of_a_module_that_exits_on_import_is_lk405_at_its_key_and_exit_1(
        write_recipe: Write, recipe: str, key: tuple[int, int]) -> None:
    path = write_recipe(recipe)
    result = run_build(path)
    assert result.returncode == 1, result.stdout + result.stderr
    line, column = key
    assert f"{path}:{line}:{column}: error LK405 cannot import 'tests.safety.exits_on_import:" \
           in result.stdout, result.stdout
    assert "importing module 'tests.safety.exits_on_import' called sys.exit(7)" in result.stdout
    assert 'if __name__ == "__main__":' in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_load_recipe_of_a_module_that_exits_on_import_raises_recipe_error(
        write_recipe: Write) -> None:
    path = write_recipe(TRANSFORM_RECIPE % "tests.safety.exits_on_import:transform")
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path))
    [error] = caught.value.errors
    assert (error.code, error.line, error.column) == ("LK405", 5, 12)
    assert "exits_on_import.py" in (error.hint or "")  # the line that exits


# --- "in your code": the user's frames, and only those -----------------------------------

def test_the_hint_shows_no_standard_library_frames_of_a_factory(write_recipe: Write) -> None:
    error = factory_error(write_recipe, "reads_an_unset_variable")
    hint = error.hint or ""
    assert "KeyError: 'LK_TEST_NEVER_SET'" in error.message
    assert "in reads_an_unset_variable" in hint
    assert "<frozen" not in hint and "os.py" not in hint


def test_the_hint_shows_no_library_frames_of_a_transform(write_recipe: Write) -> None:
    path = write_recipe(TRANSFORM_RECIPE % f"{MISBEHAVING}:parses_a_bad_caption")
    result = run_build(path, "--take", "1")
    assert result.returncode == 1
    hint = result.stdout.partition("hint: in your code:")[2]
    assert "in parses_a_bad_caption" in hint and "in _parse" in hint
    assert "decoder.py" not in hint  # json's own frames
    assert "loaderkit/" not in hint and "site-packages" not in hint
