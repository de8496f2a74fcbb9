"""User code that returns the wrong thing or exits, in this process and in spawn workers:
a `TransformError` or `FactoryError` naming it (a `RecipeError` where the build finds it),
never None batches, an AttributeError deep in loaderkit, or a SystemExit."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit import FactoryError, RecipeError, TransformError, load_recipe
from loaderkit.compiler import compile_recipe
from loaderkit.runtime.loader import RecipeLoader

Write = Callable[[str], Path]
CODE = "tests.safety.misbehaving_code"

TRANSFORM_RECIPE = """\
loaderkit: 1
source:
  uri: {data}/items.lance
columns: [id, score]
transform: %s
loader:
  batch_size: 32
  num_workers: %d
"""

FACTORY_RECIPE = """\
loaderkit: 1
source:
  uri: %s
  table: items
  connection_factory: %s
columns: [id, score]
transform: tests.safety.user_code:double_score   # so the workers read every batch
loader:
  batch_size: 32
  num_workers: 2
"""


def quietly_loaded(path: Path) -> RecipeLoader:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LK408 and the like: not what these tests are about
        return load_recipe(str(path))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_transform_returning_none_raises_transform_error_naming_it(
        write_recipe: Write, workers: int) -> None:
    loader = quietly_loaded(write_recipe(TRANSFORM_RECIPE % (f"{CODE}:edits_in_place", workers)))
    with pytest.raises(TransformError) as caught:
        next(iter(loader))
    assert caught.value.summary.startswith(
        f"transform '{CODE}:edits_in_place' returned None, not a batch")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_transform_calling_sys_exit_raises_transform_error(write_recipe: Write,
                                                            workers: int) -> None:
    loader = quietly_loaded(write_recipe(TRANSFORM_RECIPE % (f"{CODE}:exits_on_a_batch",
                                                             workers)))
    with pytest.raises(TransformError) as caught:
        next(iter(loader))
    assert caught.value.summary.startswith(f"transform '{CODE}:exits_on_a_batch' called "
                                           "sys.exit(3)")
    assert "in exits_on_a_batch" in caught.value.frames


def test_load_recipe_of_a_factory_returning_none_raises_recipe_error(write_recipe: Write,
                                                                     data_dir: Path) -> None:
    path = write_recipe(FACTORY_RECIPE % (f"{data_dir}/db", f"{CODE}:returns_none"))
    with pytest.raises(RecipeError) as caught:
        quietly_loaded(path)
    [error] = caught.value.errors
    assert (error.code, error.line, error.column) == ("LK411", 5, 23)
    assert "returned None, not a LanceDB Table or a lance.LanceDataset" in error.message


def test_a_factory_returning_none_only_in_workers_raises_factory_error(
        write_recipe: Write, data_dir: Path) -> None:
    # The building process opens the table; each spawn worker gets None. Without the
    # probe, the workers are the first to find out.
    path = write_recipe(FACTORY_RECIPE % (f"{data_dir}/db", f"{CODE}:returns_none_in_workers"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = compile_recipe(path, probe=False).loader
    with pytest.raises(FactoryError) as caught:
        next(iter(loader))
    assert caught.value.summary.startswith(
        f"connection_factory '{CODE}:returns_none_in_workers' returned None, not a LanceDB "
        "Table or a lance.LanceDataset")
    assert "in DataLoader worker process" in caught.value.summary


def test_a_factory_opens_the_recipes_source_in_each_spawn_worker(write_recipe: Write) -> None:
    # uri: ${env:LK_TEST_DB}: the reference crosses into the worker, which reads the variable.
    path = write_recipe(FACTORY_RECIPE % ("${env:LK_TEST_DB}", f"{CODE}:opens_the_recipes_uri"))
    loader = quietly_loaded(path)
    ids = [i for batch in loader for i in batch["id"].tolist()]
    assert sorted(ids) == list(range(300))
    assert loader.workers.up == 2
