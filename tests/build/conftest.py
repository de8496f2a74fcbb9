"""Fixtures for the build tests: real data in a session tmp dir, recipes under tmp_path."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.safety.support import DATABASE, DATASET, recipe, write_data

os.environ.setdefault("LANCE_LOG", "error")  # not "No existing dataset ... will be created"


@pytest.fixture(scope="session")
def build_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """items.lance (300 rows; fragments of 100, 100, 60, 40; versions 1-4) and db/items."""
    root = write_data(tmp_path_factory.mktemp("build-data"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LK_TEST_DATASET", str(root / DATASET))
        patch.setenv("LK_TEST_DB", str(root / DATABASE))
        yield root


@pytest.fixture
def write_recipe(tmp_path: Path, build_data: Path) -> Callable[..., Path]:
    """write_recipe(text) -> path of `recipe.yaml`; `{data}` in the text is the data dir."""

    def _write(text: str, name: str = "recipe.yaml") -> Path:
        return recipe(tmp_path, name, text.replace("{data}", str(build_data)))

    return _write
