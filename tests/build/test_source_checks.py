"""Bind asks every source kind about the recipe through its reader's checks: a table read by
offsets (a factory's object with no Lance dataset behind it) gets its columns and filters
checked where the recipe names them, not refused at its first read."""

from __future__ import annotations

from tests.build.test_diagnostics import Write, at, errors_of, where
from tests.safety.support import line_col

OFFSETS_ONLY = """\
loaderkit: 1
source:
  uri: {data}/db
  table: items
  connection_factory: tests.runtime.factories:open_offsets_only
"""


def test_an_unknown_column_in_an_expression_over_a_table_read_by_offset_is_lk402_at_it(
        write_recipe: Write) -> None:
    path = write_recipe(OFFSETS_ONLY + "columns:\n  ident: id\n  rating: scroe + 1\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "rating:", "LK402")
    assert "scroe" in error.message and error.hint == "did you mean 'score'?"


def test_a_filter_on_a_table_without_a_query_api_is_lk403_at_the_filter(
        write_recipe: Write) -> None:
    path = write_recipe(OFFSETS_ONLY + "columns: [id, score]\nfilter: \"score > 1\"\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "filter:", "LK403")
    assert "query API" in error.message


def test_an_unknown_column_in_a_mixture_source_read_by_offset_is_lk402_in_its_entry(
        write_recipe: Write) -> None:
    path = write_recipe("""\
        loaderkit: 1
        sources:
          lance:
            uri: {data}/items.lance
          offsets:
            uri: {data}/db
            table: items
            connection_factory: tests.runtime.factories:open_offsets_only
        columns:
          ident: id
          rating: score + lable
        """)
    # Each source lacks it: each says so at its own entry (the mapping under its name).
    entries = [line_col(path, name, value=False)[0] + 1 for name in ("lance:", "offsets:")]
    assert sorted(where(d)[1:] for d in errors_of(path)) == [(line, 5, "LK402")
                                                             for line in entries]
