"""Fixtures for the safety tests: real data in a session tmp dir, recipes under tmp_path."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loaderkit.compiler import Compiled

from .support import DATABASE, DATASET, Captured, capture_fds, recipe, write_data

os.environ.setdefault("LANCE_LOG", "error")  # not "No existing dataset ... will be created"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The dataset and database; their paths are in LK_TEST_DATASET / LK_TEST_DB, which the
    user-code factories (and every spawn worker, which inherits the environment) read."""
    root = write_data(tmp_path_factory.mktemp("data"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LK_TEST_DATASET", str(root / DATASET))
        patch.setenv("LK_TEST_DB", str(root / DATABASE))
        yield root


@pytest.fixture
def write_recipe(tmp_path: Path, data_dir: Path) -> Callable[[str], Path]:
    """write_recipe(text) -> path of `recipe.yaml`; `{data}` in the text is the data dir."""

    def _write(text: str, name: str = "recipe.yaml") -> Path:
        return recipe(tmp_path, name, text.replace("{data}", str(data_dir)))

    return _write


SECRET = "lk-test-" + os.urandom(12).hex()  # unique, so a hit can only be a leak

SAFE_RECIPE = """\
loaderkit: 1
name: safe
source:
  uri: {data}/items.lance
  storage_options:
    aws_secret_access_key: ${env:LK_TEST_SECRET}
columns: [id, score]
transform: tests.safety.user_code:double_score
loader:
  batch_size: 32
  num_workers: 2
  multiprocessing_context: spawn
"""


@dataclass
class SafeBuild:
    """A safe recipe with a secret storage option, compiled (spawn probe included) and
    read to the end by 2 spawn workers, once for the session."""

    path: Path
    compiled: Compiled
    ids: list[int]
    scores: list[float]
    output: Captured  # fds 1 and 2 during compile and iteration, workers included
    logs: list[str]  # every log record (DEBUG and up) emitted meanwhile


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="session")
def secret(data_dir: Path) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LK_TEST_SECRET", SECRET)
        yield SECRET


@pytest.fixture(scope="session")
def safe_build(tmp_path_factory: pytest.TempPathFactory, data_dir: Path,
               secret: str) -> SafeBuild:
    from loaderkit.compiler import compile_recipe

    path = recipe(tmp_path_factory.mktemp("safe"), "safe.yaml",
                  SAFE_RECIPE.replace("{data}", str(data_dir)))
    handler = _Collect(logging.DEBUG)
    records = handler.records
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with capture_fds() as output:
            compiled = compile_recipe(path)
            ids: list[int] = []
            scores: list[float] = []
            for batch in compiled.loader:
                ids += batch["id"].tolist()
                scores += batch["score"].tolist()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    logs = [f"{r.name} {r.levelname} {r.getMessage()}" for r in records]
    return SafeBuild(path, compiled, ids, scores, output, logs)
