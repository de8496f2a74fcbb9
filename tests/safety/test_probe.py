"""The spawn probe: a fresh interpreter opens the source from the worker payload."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit import RecipeError, load_recipe
from loaderkit.compiler import compile_recipe
from loaderkit.runtime.loader import RecipeLoader

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
        parent_only: Callable[[str], Path]) -> None:
    # The parent can open the table (bind and build succeed); a fresh worker cannot.
    path = parent_only("transform: tests.safety.user_code:double_score\n")
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


# --- load_recipe: the probe runs in the background; workers wait for it ----------------
# (Without a transform these recipes draw LK408, "workers only read": beside the point.)
quiet = pytest.mark.filterwarnings("ignore::loaderkit.compiler.LoaderkitWarning")

PARENT_ONLY = """\
loaderkit: 1
source:
  uri: {data}/db
  table: items
  connection_factory: tests.safety.user_code:parent_only_factory
columns: [id, score]
loader:
  batch_size: 32
  num_workers: 2
"""


@pytest.fixture
def parent_only(write_recipe: Write, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """A recipe whose factory works here but not in a fresh worker (the probe fails)."""
    monkeypatch.setitem(user_code.PARENT_STATE, "db", os.environ["LK_TEST_DB"])
    return lambda extra="": write_recipe(PARENT_ONLY + extra)


def probe_error(loader: RecipeLoader, passes: int = 200) -> RecipeError:
    """Iterate passes until one raises; the probe answers within seconds."""
    for _ in range(passes):
        try:
            list(loader)
        except RecipeError as error:
            return error
        time.sleep(0.05)
    raise AssertionError("no pass raised the probe's error")


@quiet
def test_load_recipe_does_not_wait_for_a_failing_probe(
        parent_only: Callable[[str], Path]) -> None:
    loader = load_recipe(str(parent_only("")))
    assert isinstance(loader, RecipeLoader)


@quiet
def test_failed_background_probe_is_raised_by_iteration_at_the_factory_key(
        parent_only: Callable[[str], Path]) -> None:
    path = parent_only("")
    error = probe_error(load_recipe(str(path)))
    assert [(d.location.line, d.location.column, d.code) for d in error.errors] == [
        (*line_col(path, "connection_factory:"), "LK503")]


@quiet
def test_failed_background_probe_starts_no_worker(parent_only: Callable[[str], Path]) -> None:
    before = set(multiprocessing.active_children())
    loader = load_recipe(str(parent_only("")))
    probe_error(loader)
    assert not loader.workers.started and loader._iterator is None
    assert set(multiprocessing.active_children()) <= before


@quiet
def test_failed_background_probe_fails_every_later_pass(
        parent_only: Callable[[str], Path]) -> None:
    loader = load_recipe(str(parent_only("")))
    probe_error(loader)
    with pytest.raises(RecipeError):
        list(loader)


@quiet
def test_passes_until_the_probe_failed_lose_and_repeat_no_row(
        parent_only: Callable[[str], Path]) -> None:
    loader = load_recipe(str(parent_only("")))
    whole_passes: list[list[int]] = []
    ids: list[int] = []
    with pytest.raises(RecipeError):
        for _ in range(200):
            ids = []
            for batch in loader:
                ids += batch["id"].tolist()
            whole_passes.append(sorted(ids))
            time.sleep(0.05)
    assert all(ids_ == list(range(300)) for ids_ in whole_passes)
    assert len(set(ids)) == len(ids)  # the pass that raised
    assert loader.state_dict()["batches_delivered"] == -(-len(ids) // 32)


def test_with_a_transform_the_first_batch_waits_for_the_probe(
        parent_only: Callable[[str], Path]) -> None:
    # A transform runs only in workers, so no batch can come before the probe's verdict.
    loader = load_recipe(str(parent_only("transform: tests.safety.user_code:double_score\n")))
    with pytest.raises(RecipeError) as caught:
        next(iter(loader))
    assert [d.code for d in caught.value.errors] == ["LK503"]


def test_passing_background_probe_lets_workers_take_over(write_recipe: Write,
                                                        secret: str) -> None:
    loader = load_recipe(str(write_recipe(SAFE_RECIPE)))
    ids = [i for batch in loader for i in batch["id"].tolist()]
    assert sorted(ids) == list(range(300))
    assert loader.workers.up == 2  # the transform's pass ran in the workers
