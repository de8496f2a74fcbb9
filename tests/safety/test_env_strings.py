"""`${env:NAME}` in the text keys an engine reads (a filter, a source's filter, a column
expression, a table, a version): resolved where each is used (bind, the main process, every
spawn worker), never printed, never in what is pickled to a worker.

Each value holds a unique marker (a string literal in a filter), so a hit is a leak.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loaderkit import RecipeError, cli
from loaderkit.compiler import compile_recipe

from .support import Captured, capture_fds, line_col

Write = Callable[[str], Path]

MARKER = "lk-filter-" + os.urandom(8).hex()
# Rows 251..299 (every row's text is "row N", never the marker).
SECRET_FILTER = f"id > 250 AND text != '{MARKER}'"

FILTER_RECIPE = """\
loaderkit: 1
source:
  uri: {data}/items.lance
columns: [id]
filter: ${env:LK_TEST_FILTER}
loader:
  batch_size: 16
  num_workers: WORKERS
"""


@pytest.fixture
def secret_filter(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LK_TEST_FILTER", SECRET_FILTER)
    yield SECRET_FILTER


def _ids(loader: object) -> list[int]:
    return sorted(i for batch in loader for i in batch["id"].tolist())  # type: ignore[attr-defined]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_filter_read_from_the_environment_selects_its_rows(
        write_recipe: Write, secret_filter: str, workers: int) -> None:
    path = write_recipe(FILTER_RECIPE.replace("WORKERS", str(workers)))
    compiled = compile_recipe(path, probe=False)
    assert _ids(compiled.loader) == list(range(251, 300))


def test_a_filter_read_from_the_environment_is_not_in_the_worker_payload(
        write_recipe: Write, secret_filter: str) -> None:
    compiled = compile_recipe(write_recipe(FILTER_RECIPE.replace("WORKERS", "2")),
                              probe=False)
    assert MARKER.encode() not in pickle.dumps(compiled.loader.dataset)
    assert MARKER.encode() not in pickle.dumps(list(compiled.loader.row_sampler.tasks(0)))
    assert ("secrets absent from the payload", "ok (1 secret(s) scanned)") in \
        compiled.safety.checks  # type: ignore[union-attr]


@pytest.mark.parametrize("flags", [["--take", "2"], ["--json"]])
def test_a_filter_read_from_the_environment_is_not_in_the_build_output(
        write_recipe: Write, secret_filter: str, flags: list[str]) -> None:
    path = write_recipe(FILTER_RECIPE.replace("WORKERS", "0"))
    with capture_fds() as output:
        code = cli.main(["build", str(path), *flags])
    assert code == 0
    assert "${env:LK_TEST_FILTER}" in output.out
    assert MARKER not in output.both and "id > 250" not in output.both


def _refused(path: Path) -> tuple[RecipeError, Captured]:
    with capture_fds() as output, pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    return caught.value, output


def test_an_invalid_filter_from_the_environment_is_located_without_its_value(
        write_recipe: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_TEST_FILTER", f"no_such_column_{MARKER[-12:]} > 1")
    path = write_recipe(FILTER_RECIPE.replace("WORKERS", "0"))
    error, output = _refused(path)
    [found] = error.errors
    assert (found.code, found.location.line, found.location.column) == \
        ("LK403", *line_col(path, "filter:"))
    assert "${env:LK_TEST_FILTER}" in found.message
    assert MARKER[-12:] not in str(error) and MARKER[-12:] not in output.both


def test_a_query_parameter_in_a_filter_from_the_environment_is_refused_quietly(
        write_recipe: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lance panics on `$1` (Rust prints the panic on stderr): the engine is never asked.
    monkeypatch.setenv("LK_TEST_FILTER", "id > $1")
    error, output = _refused(write_recipe(FILTER_RECIPE.replace("WORKERS", "0")))
    assert [d.code for d in error.errors] == ["LK403"]
    assert "panicked" not in output.both and "Task was aborted" not in str(error)


def test_a_mixture_sources_filter_read_from_the_environment_selects_its_rows(
        write_recipe: Write, secret_filter: str) -> None:
    path = write_recipe("""\
        loaderkit: 1
        sources:
          a: {uri: "{data}/items.lance", filter: "${env:LK_TEST_FILTER}"}
          b: {uri: "{data}/items.lance", filter: "id < 3"}
        mixture: {stop: all_exhausted}
        columns: [id]
        loader: {batch_size: 8, num_workers: 2}
        """)
    compiled = compile_recipe(path, probe=False)
    # all_exhausted: every row of each source, the smaller one's repeated
    assert set(_ids(compiled.loader)) == {*range(251, 300), 0, 1, 2}
    assert MARKER.encode() not in pickle.dumps(compiled.loader.dataset)
    assert ("secrets absent from the payload", "ok (1 secret(s) scanned)") in \
        compiled.safety.checks  # type: ignore[union-attr]


def test_a_column_expression_read_from_the_environment_is_computed_in_workers(
        write_recipe: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_TEST_EXPR", "id * 3")
    path = write_recipe("""\
        loaderkit: 1
        source: {uri: "{data}/items.lance"}
        columns: {id: id, tripled: "${env:LK_TEST_EXPR}"}
        filter: id < 40
        loader: {batch_size: 8, num_workers: 2}
        """)
    compiled = compile_recipe(path, probe=False)
    pairs = sorted((i, t) for b in compiled.loader
                   for i, t in zip(b["id"].tolist(), b["tripled"].tolist(), strict=True))
    assert pairs == [(i, 3 * i) for i in range(40)]
    assert b"id * 3" not in pickle.dumps(compiled.loader.dataset)


def test_a_table_read_from_the_environment_opens_that_table(
        write_recipe: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_TEST_TABLE", "items")
    path = write_recipe("""\
        loaderkit: 1
        source: {uri: "{data}/db", table: "${env:LK_TEST_TABLE}"}
        columns: [id]
        loader: {batch_size: 50, num_workers: 2}
        """)
    compiled = compile_recipe(path, probe=False)
    assert _ids(compiled.loader) == list(range(300))
    assert b"items" not in pickle.dumps(compiled.loader.dataset.read)  # type: ignore[attr-defined]


def test_a_version_read_from_the_environment_pins_that_version(
        write_recipe: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_TEST_VERSION", "1")  # the first fragment: rows 0..99
    path = write_recipe("""\
        loaderkit: 1
        source: {uri: "{data}/items.lance", version: "${env:LK_TEST_VERSION}"}
        columns: [id]
        loader: {batch_size: 50, num_workers: 2}
        """)
    compiled = compile_recipe(path, probe=False)
    assert _ids(compiled.loader) == list(range(100))


def test_build_json_shows_the_version_reference(
        write_recipe: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_TEST_VERSION", "1")
    path = write_recipe("""\
        loaderkit: 1
        source: {uri: "{data}/items.lance", version: "${env:LK_TEST_VERSION}"}
        """)
    with capture_fds() as output:
        code = cli.main(["build", str(path), "--json", "--no-probe"])
    assert code == 0
    assert json.loads(output.out)["pinned_version"] == "${env:LK_TEST_VERSION}"


def test_an_engine_error_quoting_a_table_or_source_filter_shows_the_references(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from loaderkit.runtime.sources.failures import source_error
    from loaderkit.runtime.spec import MixturePart, SourceSpec
    from loaderkit.vocabulary import EnvValue

    monkeypatch.setenv("LK_TEST_TABLE", f"table-{MARKER}")
    monkeypatch.setenv("LK_TEST_FILTER", SECRET_FILTER)
    part = SourceSpec(uri="db", table=EnvValue("LK_TEST_TABLE"))
    mixture = SourceSpec(uri="mixture of a", parts=(
        MixturePart("a", part, filter=EnvValue("LK_TEST_FILTER")),))
    engine_text = f"no table table-{MARKER} for query WHERE {SECRET_FILTER}"
    message = str(source_error("reading", mixture, ValueError(engine_text)))
    assert MARKER not in message and "id > 250" not in message
    assert "${env:LK_TEST_TABLE}" in message and "${env:LK_TEST_FILTER}" in message
