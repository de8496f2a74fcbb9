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
