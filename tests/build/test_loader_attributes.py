"""The loader is a DataLoader in every attribute users read (DESIGN.md §4): what Lightning,
Accelerate and logging code read of it holds the recipe's values, as a plain
`torch.utils.data.DataLoader` built with the same settings would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loaderkit import load_recipe
from loaderkit.compiler import compile_recipe
from loaderkit.runtime.loader import RecipeLoader
from tests.safety.support import ROWS

Write = Callable[..., Path]

RECIPE = """\
loaderkit: 1
source:
  uri: {data}/items.lance
columns: [id]
loader:
  batch_size: 64
"""
WORKERS = RECIPE + """\
  num_workers: 2
  prefetch_factor: 3
  persistent_workers: true
  multiprocessing_context: forkserver
"""


def built(write_recipe: Write, text: str, **overrides: Any) -> RecipeLoader:
    """The loader `load_recipe` returns, built without starting a process (no probe)."""
    return compile_recipe(write_recipe(text), overrides, probe=False).loader


def rows_of(loader: RecipeLoader) -> list[int]:
    return [len(batch["id"]) for batch in loader]


def test_batch_size_is_the_recipes(write_recipe: Write) -> None:
    loader = load_recipe(str(write_recipe(RECIPE)))
    assert loader.batch_size == 64


def test_batch_size_follows_an_override(write_recipe: Write) -> None:
    assert built(write_recipe, RECIPE, **{"loader.batch_size": 10}).batch_size == 10


def test_batches_hold_batch_size_rows_after_reading_it(write_recipe: Write) -> None:
    loader = load_recipe(str(write_recipe(RECIPE)))
    assert loader.batch_size == 64
    assert rows_of(loader) == [64, 64, 64, 64, ROWS - 4 * 64]


@pytest.mark.parametrize("drop_last", [False, True])
def test_drop_last_is_the_recipes(write_recipe: Write, drop_last: bool) -> None:
    loader = built(write_recipe, RECIPE, **{"loader.drop_last": drop_last})
    assert loader.drop_last is drop_last


def test_len_counts_the_last_partial_batch_without_drop_last(write_recipe: Write) -> None:
    loader = built(write_recipe, RECIPE)
    assert len(loader) == 5 == len(rows_of(loader))


def test_len_leaves_out_the_last_partial_batch_with_drop_last(write_recipe: Write) -> None:
    loader = built(write_recipe, RECIPE, **{"loader.drop_last": True})
    assert len(loader) == 4
    assert rows_of(loader) == [64] * 4


def test_num_workers_is_the_recipes(write_recipe: Write) -> None:
    assert built(write_recipe, WORKERS).num_workers == 2
    assert built(write_recipe, RECIPE).num_workers == 0


def test_prefetch_factor_is_the_recipes(write_recipe: Write) -> None:
    assert built(write_recipe, WORKERS).prefetch_factor == 3


def test_prefetch_factor_defaults_as_a_dataloaders(write_recipe: Write) -> None:
    # torch's DataLoader: 2 with workers, None without.
    assert built(write_recipe, WORKERS, **{"loader.prefetch_factor": None}).prefetch_factor == 2
    assert built(write_recipe, RECIPE).prefetch_factor is None


def test_persistent_workers_is_the_recipes(write_recipe: Write) -> None:
    assert built(write_recipe, WORKERS).persistent_workers is True
    assert built(write_recipe, RECIPE).persistent_workers is False


@pytest.mark.parametrize("pin", [False, True])
def test_pin_memory_is_the_recipes(write_recipe: Write, pin: bool) -> None:
    assert built(write_recipe, RECIPE, **{"loader.pin_memory": pin}).pin_memory is pin


def test_multiprocessing_context_is_the_recipes(write_recipe: Write) -> None:
    # torch holds the context object the name stands for.
    context = built(write_recipe, WORKERS).multiprocessing_context
    assert context.get_start_method() == "forkserver"


def test_multiprocessing_context_defaults_to_spawn_with_workers(write_recipe: Write) -> None:
    loader = built(write_recipe, WORKERS, **{"loader.multiprocessing_context": None})
    assert loader.multiprocessing_context.get_start_method() == "spawn"


def test_multiprocessing_context_is_none_without_workers(write_recipe: Write) -> None:
    assert built(write_recipe, RECIPE).multiprocessing_context is None


def test_timeout_is_the_recipes(write_recipe: Write) -> None:
    assert built(write_recipe, RECIPE, **{"loader.timeout": 30}).timeout == 30


@pytest.mark.parametrize("attribute", ["batch_size", "drop_last"])
def test_setting_a_batching_attribute_is_refused_as_torch_refuses_it(
        write_recipe: Write, attribute: str) -> None:
    loader = built(write_recipe, RECIPE)
    with pytest.raises(ValueError, match=f"{attribute} attribute should not be set"):
        setattr(loader, attribute, 1)
    assert loader.batch_size == 64 and loader.drop_last is False
