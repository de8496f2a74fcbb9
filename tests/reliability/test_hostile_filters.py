"""Filters the engine would read only in part. Lance parses a filter as one statement's
WHERE clause and runs its first complete expression: `id > 250) OR (1=1` would deliver the
rows of `id > 250`, silently. Every such filter is LK403 where the ignored part begins, for
every source kind (a Lance dataset, a LanceDB table, a live memory:// table), a mixture's
own filters and a recipe with splits; and no valid filter is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lancedb
import pytest

from loaderkit import RecipeError, load_recipe
from loaderkit.compiler import lint
from tests.safety.support import DATABASE, DATASET, TABLE, line_col, recipe, table, write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """items.lance and db/items: ids 0..299."""
    return write_data(tmp_path_factory.mktemp("hostile-filters"))


def memory_table() -> Any:
    return lancedb.connect("memory://").create_table(TABLE, table())


# Each source kind: (the recipe's source section, what load_recipe is given as `source`).
KINDS: dict[str, Callable[[Path], tuple[str, Any]]] = {
    "lance_dataset": lambda root: (f"source: {{uri: '{root / DATASET}'}}\n", None),
    "lancedb_table": lambda root: (f"source: {{uri: '{root / DATABASE}', table: {TABLE}}}\n",
                                   None),
    "memory_table": lambda root: ("", memory_table()),
}

# (filter, the part Lance would ignore). None of these can be told without the engine.
READ_IN_PART = [
    ("id > 250 garbage words", "garbage words"),
    ("id > 250 ORDER BY id", "ORDER BY id"),
    ("id > 250 LIMIT 5", "LIMIT 5"),
    ("id > 250 AND label = 1 AS x", "AS x"),
]
# (filter, the part Lance would ignore), which lint already refuses offline.
READ_IN_PART_OFFLINE = [
    ("id > 250) OR (1=1", ") OR (1=1"),
    ("id > 0; DROP TABLE t", "; DROP TABLE t"),
]
# Filters read whole, with the ids they keep: punctuation inside strings and comments, a
# trailing ';', the engine's own extensions.
VALID = [
    ("id > 290", list(range(291, 300))),
    ("text = 'row 1) OR (1=1' OR id > 297", [298, 299]),
    ("text IN ('row 3', 'row 4;')", [3]),
    ("id > 297 -- ) OR (1=1", [298, 299]),
    ("id > 297 /* ; DROP TABLE t */", [298, 299]),
    ("id > 297;", [298, 299]),
    ("(id > 297)", [298, 299]),
    ("id BETWEEN 3 AND 4", [3, 4]),
    ("id == 5", [5]),
    ("`id` < 2", [0, 1]),
    ("NOT (id >= 2)", [0, 1]),
]


def write(root: Path, tmp_path: Path, kind: str, body: str) -> tuple[Path, Any]:
    source, live = KINDS[kind](root)
    path = recipe(tmp_path, "recipe.yaml",
                  f"loaderkit: 1\n{source}columns: [id]\n{body}loader: {{batch_size: 50}}\n")
    return path, live


def refusal(path: Path, live: Any) -> list[tuple[str, int, int, str]]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path), source=live)
    return [(d.file, d.line, d.column, d.code) for d in caught.value.diagnostics]


def ids_of(path: Path, live: Any) -> list[int]:
    return sorted(int(i) for batch in load_recipe(str(path), source=live) for i in batch["id"])


def inside(path: Path, key: str, offset: int) -> tuple[str, int, int, str]:
    """Where `offset` characters into the quoted value of `key:` is."""
    line, column = line_col(path, key)
    return (str(path), line, column + 1 + offset, "LK403")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("text", "ignored"), READ_IN_PART + READ_IN_PART_OFFLINE)
def test_a_filter_read_in_part_is_lk403_where_the_ignored_part_begins(
        data: Path, tmp_path: Path, kind: str, text: str, ignored: str) -> None:
    path, live = write(data, tmp_path, kind, f'filter: "{text}"\n')
    assert refusal(path, live) == [inside(path, "filter:", text.index(ignored))]


@pytest.mark.parametrize("kind", KINDS)
def test_the_message_says_what_lance_would_read_and_what_it_would_ignore(
        data: Path, tmp_path: Path, kind: str) -> None:
    path, live = write(data, tmp_path, kind, 'filter: "id > 250 garbage words"\n')
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path), source=live)
    [error] = caught.value.diagnostics
    assert "'id > 250'" in error.message and "'garbage words'" in error.message
    assert error.hint is not None and "one SQL expression" in error.hint


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("text", "ids"), VALID)
def test_a_filter_read_whole_is_not_refused(data: Path, tmp_path: Path, kind: str, text: str,
                                            ids: list[int]) -> None:
    path, live = write(data, tmp_path, kind, f'filter: "{text}"\n')
    assert ids_of(path, live) == ids


@pytest.mark.parametrize(("text", "ignored"), READ_IN_PART_OFFLINE)
def test_lint_refuses_what_no_single_expression_holds_without_opening_data(
        tmp_path: Path, text: str, ignored: str) -> None:
    path = recipe(tmp_path, "recipe.yaml", f'loaderkit: 1\nsource: {{uri: nowhere.lance}}\n'
                                           f'filter: "{text}"\n')
    found = [(d.location.file, d.location.line, d.location.column, d.code) for d in lint([path])]
    assert found == [inside(path, "filter:", text.index(ignored))]


@pytest.mark.parametrize(("text", "_"), VALID)
def test_lint_accepts_every_valid_filter(tmp_path: Path, text: str, _: list[int]) -> None:
    path = recipe(tmp_path, "recipe.yaml", f'loaderkit: 1\nsource: {{uri: nowhere.lance}}\n'
                                           f'filter: "{text}"\n')
    assert lint([path]) == []


def test_a_mixture_sources_own_filter_read_in_part_is_lk403_in_that_source(
        data: Path, tmp_path: Path) -> None:
    path = recipe(tmp_path, "recipe.yaml", f"""\
        loaderkit: 1
        sources:
          a: {{uri: '{data / DATASET}', weight: 1}}
          b: {{uri: '{data / DATABASE}', table: {TABLE}, weight: 1, filter: "id < 9 words"}}
        columns: [id]
        """)
    line, _ = line_col(path, "b:")
    column = path.read_text().splitlines()[line - 1].index("words") + 1
    assert refusal(path, None) == [(str(path), line, column, "LK403")]


def test_a_mixtures_shared_filter_read_in_part_is_one_lk403(data: Path, tmp_path: Path) -> None:
    # ANDed into each source's filter in parentheses, `id > 250) OR (1=1` would even become
    # a valid filter that keeps every row.
    path = recipe(tmp_path, "recipe.yaml", f"""\
        loaderkit: 1
        sources:
          a: {{uri: '{data / DATASET}', weight: 1, filter: "label = 1"}}
          b: {{uri: '{data / DATABASE}', table: {TABLE}, weight: 1}}
        columns: [id]
        filter: "id > 250 ORDER BY id"
        """)
    assert refusal(path, None) == [inside(path, 'filter: "id > 250', len("id > 250 "))]


@pytest.mark.parametrize("kind", KINDS)
def test_a_filter_read_in_part_is_refused_with_splits_too(data: Path, tmp_path: Path,
                                                          kind: str) -> None:
    body = ('filter: "id > 250 LIMIT 5"\nsplits: {by: id, fractions: {train: 0.5, val: 0.5}}\n'
            "split: train\n")
    path, live = write(data, tmp_path, kind, body)
    assert refusal(path, live) == [inside(path, "filter:", len("id > 250 "))]
