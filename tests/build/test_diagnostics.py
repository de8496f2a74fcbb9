"""Build-time diagnostics (LK4xx): found against the real data, located in the YAML."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit import RecipeError
from loaderkit.compiler import compile_recipe
from loaderkit.errors import Diagnostic
from tests.safety.support import line_col

Write = Callable[..., Path]
Where = tuple[str, int, int, str]

HEAD = """\
loaderkit: 1
source:
  uri: {data}/items.lance
"""
NUMERIC = "columns: [id, score]\n"  # a tensor format holds these (not the string column)


def where(d: Diagnostic) -> Where:
    return (d.location.file, d.location.line, d.location.column, d.code)


def errors_of(path: Path) -> list[Diagnostic]:
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    return caught.value.errors


def warnings_of(path: Path, code: str) -> list[Diagnostic]:
    compiled = compile_recipe(path, probe=False)
    return [d for d in compiled.diagnostics if d.code == code]


def at(path: Path, needle: str, code: str, *, value: bool = True) -> Where:
    return (str(path), *line_col(path, needle, value=value), code)


def test_missing_dataset_is_lk401_at_the_uri(write_recipe: Write) -> None:
    path = write_recipe(HEAD.replace("items.lance", "itmes.lance"))
    assert [where(d) for d in errors_of(path)] == [at(path, "uri:", "LK401")]


def test_missing_lancedb_table_is_lk401_at_the_table(write_recipe: Write) -> None:
    path = write_recipe("""\
        loaderkit: 1
        source:
          uri: {data}/db
          table: itmes
        """)
    [error] = errors_of(path)
    assert where(error) == at(path, "table:", "LK401")
    assert "itmes" in error.message and "items" in (error.hint or "")


def test_missing_lancedb_database_is_lk401_at_the_uri(write_recipe: Write) -> None:
    path = write_recipe("""\
        loaderkit: 1
        source:
          uri: {data}/no_such_db
          table: items
        """)
    assert [where(d) for d in errors_of(path)] == [at(path, "uri:", "LK401")]


def test_unknown_column_in_a_list_is_lk402_at_the_item(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id, scroe]\n")
    [error] = errors_of(path)
    line, _ = line_col(path, "columns:")
    assert where(error) == (str(path), line, path.read_text().splitlines()[line - 1]
                            .index("scroe") + 1, "LK402")
    assert "scroe" in error.message


def test_unknown_column_in_a_mapping_is_lk402_at_its_expression(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns:\n  ident: id\n  rating: scroe\n")
    assert [where(d) for d in errors_of(path)] == [at(path, "rating:", "LK402")]


def test_every_unknown_column_is_reported_at_once(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [nope, id, nada]\n")
    assert [d.code for d in errors_of(path)] == ["LK402", "LK402"]


def test_unknown_column_of_a_table_known_only_by_its_schema_is_lk402_at_the_item(
        write_recipe: Write) -> None:
    # The factory's object has no Lance dataset and no query API: its schema still says.
    path = write_recipe("""\
        loaderkit: 1
        source:
          uri: {data}/db
          table: items
          connection_factory: tests.runtime.factories:open_offsets_only
        columns: [id, scroe]
        """)
    [error] = errors_of(path)
    line, _ = line_col(path, "columns:")
    assert where(error) == (str(path), line, path.read_text().splitlines()[line - 1]
                            .index("scroe") + 1, "LK402")
    assert error.hint == "did you mean 'score'?"


def column_of(path: Path, needle: str) -> tuple[int, int]:
    """1-based (line, column) of `needle` itself, wherever it is on its line."""
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if needle in text:
            return number, text.index(needle) + 1
    raise AssertionError(needle)


def test_invalid_filter_is_lk403_where_the_filter_ends_early(write_recipe: Write) -> None:
    path = write_recipe(HEAD + 'filter: "score >"\n')
    [error] = errors_of(path)
    line, column = column_of(path, '"score >"')
    assert where(error) == (str(path), line, column + 1 + len("score >"), "LK403")
    assert "SELECT" not in error.message


def test_filter_on_an_unknown_column_is_lk403_at_that_name(write_recipe: Write) -> None:
    path = write_recipe(HEAD + 'filter: "score > 1 AND lable = 3"\n')
    [error] = errors_of(path)
    assert where(error) == (str(path), *column_of(path, "lable"), "LK403")
    assert error.hint == "did you mean 'label'?"


def test_unterminated_string_in_a_filter_is_located_at_its_quote(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "filter: \"text = 'row 1\"\n")
    [error] = errors_of(path)
    assert where(error) == (str(path), *column_of(path, "'row 1"), "LK403")


def test_string_column_with_torch_col_format_is_lk404_at_the_column(
        write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id, text]\nformat: torch_col\n")
    [error] = errors_of(path)
    assert where(error) == (str(path), *column_of(path, "text]"), "LK404")
    assert "'text'" in error.message


def test_lk404_for_a_mapped_column_is_at_its_expression(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns:\n  ident: id\n  words: text\nformat: torch_col\n")
    assert [where(d) for d in errors_of(path)] == [at(path, "words:", "LK404")]


def test_typoed_column_gets_did_you_mean(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id, scroe]\n")
    [error] = errors_of(path)
    assert error.hint == "did you mean 'score'?"
    assert "Schema error" not in error.message


def test_string_column_with_python_col_format_builds(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id, text]\nformat: python_col\n")
    assert not any(d.is_error for d in compile_recipe(path, probe=False).diagnostics)


def test_transform_that_does_not_import_is_lk405(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "transform: tests.safety.user_code:no_such_function\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "transform:", "LK405")
    assert "no_such_function" in error.message


def test_transform_module_that_does_not_exist_is_lk405(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "transform: tests.no_such_module:decode\n")
    assert [where(d) for d in errors_of(path)] == [at(path, "transform:", "LK405")]


def test_transform_that_is_not_callable_is_lk405(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "transform: tests.safety.user_code:PARENT_STATE\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "transform:", "LK405")
    assert "not a function" in error.message


def test_connection_factory_that_does_not_import_is_lk405(write_recipe: Write) -> None:
    path = write_recipe("""\
        loaderkit: 1
        source:
          uri: {data}/db
          table: items
          connection_factory: tests.safety.user_code:opne_table
        """)
    assert [where(d) for d in errors_of(path)] == [at(path, "connection_factory:", "LK405")]


def test_version_not_found_is_lk406_at_the_version(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "  version: 99\n")
    assert [where(d) for d in errors_of(path)] == [at(path, "version:", "LK406")]


def test_existing_version_is_pinned_as_written(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "  version: 2\n" + NUMERIC)
    assert compile_recipe(path, probe=False).plan.read.source.version == 2


def test_unpinned_recipe_is_pinned_to_the_latest_version(write_recipe: Write) -> None:
    compiled = compile_recipe(write_recipe(HEAD + NUMERIC), probe=False)
    assert compiled.plan.read.source.version == 4


def test_uneven_allow_over_unequal_fragments_warns_lk407_at_uneven(
        write_recipe: Write) -> None:
    # Fragments of 100, 100, 60, 40 rows: rank 0 reads 160 rows, rank 1 reads 140.
    path = write_recipe(HEAD + NUMERIC + "sampler:\n  type: sharded_fragment\n  rank: 0\n"
                               "  world_size: 2\n  uneven: allow\n")
    [warning] = warnings_of(path, "LK407")
    assert where(warning) == at(path, "uneven:", "LK407")
    assert "160 rows" in warning.message and "140 rows" in warning.message


def test_rows_that_do_not_divide_under_uneven_allow_warn_lk407(write_recipe: Write) -> None:
    path = write_recipe(HEAD + NUMERIC + "sampler:\n  type: shuffle\n  rank: 0\n"
                                         "  world_size: 7\n  uneven: allow\n"
                                         "loader:\n  batch_size: 8\n")
    [warning] = warnings_of(path, "LK407")
    assert where(warning) == at(path, "uneven:", "LK407")
    assert "uneven: split (the default)" in (warning.hint or "")


def test_rows_that_do_not_divide_across_ranks_take_equal_steps_by_default(
        write_recipe: Write) -> None:
    # 300 rows over 7 ranks at batch 8: 5 whole steps, then 20 rows split over the ranks.
    path = write_recipe(HEAD + NUMERIC + "sampler:\n  type: shuffle\n  rank: 0\n"
                                         "  world_size: 7\nloader:\n  batch_size: 8\n")
    compiled = compile_recipe(path, probe=False)
    assert [d.code for d in compiled.diagnostics if d.code in ("LK407", "LK414")] == []
    assert len(compiled.loader) == 6


def test_build_shows_the_same_batches_on_every_rank(write_recipe: Write,
                                                    tmp_path: Path) -> None:
    # The case: 500 rows over 4 ranks at batch 100 (it gave rank 0 two batches and
    # ranks 1-3 one); now each rank takes a batch of 100 and one of 25.
    import lance
    import pyarrow as pa

    lance.write_dataset(pa.table({"id": list(range(500))}), str(tmp_path / "five.lance"),
                        max_rows_per_file=120)
    shown = []
    for rank in range(4):
        path = write_recipe(f"loaderkit: 1\nsource:\n  uri: {tmp_path / 'five.lance'}\n"
                            f"sampler:\n  rank: {rank}\n  world_size: 4\n"
                            "loader:\n  batch_size: 100\n")
        compiled = compile_recipe(path, probe=False)
        assert compiled.diagnostics == []
        settings = compiled.plan.node("loader").settings
        shown.append((settings["batches_per_epoch_on_this_rank"],
                      settings["rows_per_epoch_on_this_rank"]))
    assert shown == [(2, 125)] * 4


def test_rows_that_divide_across_ranks_do_not_warn_lk407(write_recipe: Write) -> None:
    path = write_recipe(HEAD + NUMERIC + "sampler:\n  type: full_scan\n  rank: 1\n"
                                         "  world_size: 3\n")
    assert warnings_of(path, "LK407") == []


@pytest.mark.parametrize("fix", ["loader:\n  drop_last: true\n", "  uneven: pad\n"])
def test_drop_last_or_pad_silences_lk407(write_recipe: Write, fix: str) -> None:
    sampler = "sampler:\n  type: sharded_fragment\n  rank: 1\n  world_size: 2\n"
    text = HEAD + NUMERIC + sampler + fix  # `  uneven` continues the sampler mapping
    assert warnings_of(write_recipe(text), "LK407") == []


def test_one_fragment_over_eight_ranks_with_drop_last_is_lk414_at_drop_last(
        write_recipe: Write, tmp_path: Path) -> None:
    import lance
    import pyarrow as pa

    lance.write_dataset(pa.table({"id": list(range(50))}), str(tmp_path / "one.lance"))
    path = write_recipe(f"loaderkit: 1\nsource:\n  uri: {tmp_path / 'one.lance'}\n"
                        "sampler:\n  type: sharded_fragment\n  rank: 0\n  world_size: 8\n"
                        "loader:\n  batch_size: 4\n  drop_last: true\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "drop_last:", "LK414")
    assert "every rank with no batch" in error.message
    # Only fixes that give all 8 ranks equal, non-empty steps: not drop_last, not the
    # default (seven ranks have no fragment), not a smaller batch.
    hint = error.hint or ""
    assert "sharded_batch" in hint and "uneven: pad" in hint
    assert "set loader.drop_last: false" not in hint and "batch_size" not in hint


def test_one_fragment_over_eight_ranks_is_lk414_at_the_sampler_type(
        write_recipe: Write, tmp_path: Path) -> None:
    import lance
    import pyarrow as pa

    lance.write_dataset(pa.table({"id": list(range(50))}), str(tmp_path / "one.lance"))
    path = write_recipe(f"loaderkit: 1\nsource:\n  uri: {tmp_path / 'one.lance'}\n"
                        "sampler:\n  type: sharded_fragment\n  rank: 3\n  world_size: 8\n"
                        "loader:\n  batch_size: 4\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "type:", "LK414")
    assert "drop_last: true" not in (error.hint or "")


def test_fewer_rows_than_ranks_is_lk414_at_world_size(write_recipe: Write) -> None:
    path = write_recipe(HEAD + NUMERIC + "limit: 5\nsampler:\n  type: shuffle\n  rank: 0\n"
                                         "  world_size: 8\nloader:\n  batch_size: 4\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "world_size:", "LK414")
    assert "run at most 5 ranks" in (error.hint or "")
    assert "drop_last: true" not in (error.hint or "")


def test_one_row_batches_over_ranks_that_do_not_divide_are_lk414_at_batch_size(
        write_recipe: Write) -> None:
    # 300 rows, one per batch, over 7 ranks: some rank takes one batch more, whatever
    # the order, unless a row comes twice.
    path = write_recipe(HEAD + NUMERIC + "sampler:\n  type: shuffle\n  rank: 0\n"
                                         "  world_size: 7\nloader:\n  batch_size: 1\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "batch_size:", "LK414")
    assert "batch_size: 2 or more" in (error.hint or "")


def test_drop_last_that_keeps_no_step_on_one_rank_is_lk414(write_recipe: Write) -> None:
    path = write_recipe(HEAD + NUMERIC + "loader:\n  batch_size: 400\n  drop_last: true\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "drop_last:", "LK414")
    assert "batch_size: 300 or less" in (error.hint or "")


def test_workers_without_transform_warn_lk408_at_num_workers(write_recipe: Write) -> None:
    path = write_recipe(HEAD + NUMERIC + "loader:\n  num_workers: 2\n")
    assert [where(d) for d in warnings_of(path, "LK408")] == [
        at(path, "num_workers:", "LK408")]


def test_workers_with_a_transform_do_not_warn_lk408(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id, score]\n"
                               "transform: tests.safety.user_code:double_score\n"
                               "loader:\n  num_workers: 2\n")
    assert warnings_of(path, "LK408") == []


def test_uneven_ranks_and_workers_without_transform_both_warn(write_recipe: Write) -> None:
    path = write_recipe(HEAD + NUMERIC + "sampler:\n  type: sharded_fragment\n  rank: 0\n"
                                         "  world_size: 2\n  uneven: allow\n"
                                         "loader:\n  num_workers: 2\n")
    codes = sorted(d.code for d in compile_recipe(path, probe=False).diagnostics)
    assert codes == ["LK407", "LK408"]



def test_cache_over_budget_is_lk409_at_cache_mb(tmp_path: Path) -> None:
    import lance
    import numpy as np
    import pyarrow as pa

    vectors = np.zeros(20_000 * 64, dtype=np.float32)  # 5 MB of vectors: over a 1 MB cache
    lance.write_dataset(pa.table({"v": pa.FixedSizeListArray.from_arrays(vectors, 64)}),
                        tmp_path / "big.lance")
    path = tmp_path / "recipe.yaml"
    path.write_text(f"loaderkit: 1\nsource:\n  uri: {tmp_path / 'big.lance'}\n"
                    "sampler:\n  type: shuffle\n  mode: cache\n  cache_mb: 1\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "cache_mb:", "LK409")
    assert "cache_mb" in error.message


def test_decode_of_a_column_without_bytes_is_lk412_at_the_decode_entry(
        write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id, vec]\ndecode:\n  vec: {type: image}\n")
    [error] = errors_of(path)
    assert where(error) == at(path, "vec: {", "LK412")
    assert "fixed_size_list" in error.message


def test_decode_of_a_string_column_is_lk412(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id, text]\ndecode:\n  text: {type: image}\n")
    assert [d.code for d in errors_of(path)] == ["LK412"]


MIXTURE = """\
loaderkit: 1
sources:
  items:
    uri: {data}/items.lance
    weight: 3
  table:
    uri: {data}/db
    table: items
    weight: 1
"""


def test_a_column_missing_in_one_source_is_lk402_inside_that_sources_entry(
        write_recipe: Write, tmp_path: Path) -> None:
    import lance
    import pyarrow as pa

    lance.write_dataset(pa.table({"id": [1, 2], "other": [3, 4]}), tmp_path / "thin.lance")
    path = write_recipe(MIXTURE + f"  thin:\n    uri: {tmp_path}/thin.lance\n"
                        "columns: [id, score]\n")
    [error] = errors_of(path)
    assert error.code == "LK402" and error.line == 11 and "source 'thin'" in error.message


def test_a_column_of_another_type_in_one_source_is_lk413(write_recipe: Write,
                                                         tmp_path: Path) -> None:
    import lance
    import pyarrow as pa

    lance.write_dataset(pa.table({"id": pa.array([1, 2], pa.int32()),
                                  "score": pa.array([1.0, 2.0], pa.float32())}),
                        tmp_path / "int32.lance")
    path = write_recipe(MIXTURE + f"  narrow:\n    uri: {tmp_path}/int32.lance\n"
                        "columns: [id, score]\n")
    [error] = errors_of(path)
    assert (error.code, error.line) == ("LK413", 11)
    assert "int32" in error.message and "int64" in error.message


def test_a_missing_source_of_a_mixture_is_lk401_at_its_uri(write_recipe: Write) -> None:
    path = write_recipe(MIXTURE.replace("items.lance", "itmes.lance") + "columns: [id]\n")
    [error] = errors_of(path)
    assert (error.code, error.line) == ("LK401", 4)


def test_an_invalid_filter_of_one_source_is_lk403_at_that_filter(write_recipe: Write) -> None:
    path = write_recipe(MIXTURE + "    filter: \"score >\"\ncolumns: [id]\n")
    [error] = errors_of(path)
    assert (error.code, error.line) == ("LK403", 10)


def test_a_mixture_builds_and_shows_each_sources_rows_and_share(write_recipe: Write) -> None:
    path = write_recipe(MIXTURE + "    filter: \"id < 100\"\ncolumns: [id, score]\n")
    compiled = compile_recipe(path, probe=False)
    items, table = compiled.plan.node("sources", "items"), compiled.plan.node("sources", "table")
    assert (items.settings["rows"], items.settings["share"]) == (300, 0.75)
    assert (table.settings["rows"], table.settings["share"]) == (100, 0.25)
    assert items.settings["version"] == 4


def test_an_empty_source_of_a_mixture_warns_lk410_at_its_entry(write_recipe: Write) -> None:
    path = write_recipe(MIXTURE + "    filter: \"id < 0\"\ncolumns: [id]\n")
    [warning] = warnings_of(path, "LK410")
    assert warning.line == 7 and "source 'table'" in warning.message


def test_an_all_exhausted_epoch_past_2_40_rows_is_lk415_at_the_light_sources_weight(
        write_recipe: Write, tmp_path: Path) -> None:
    # Weights a million apart (what lint allows) over 1.2M rows: the epoch would run until
    # the light source delivered them all, 1.2M x (1 + 1e6) rows.
    import lance
    import numpy as np
    import pyarrow as pa

    lance.write_dataset(pa.table({"id": np.arange(1_200_000), "score": np.zeros(1_200_000)}),
                        tmp_path / "many.lance")
    path = write_recipe(MIXTURE.replace("weight: 3", "weight: 1.0e+6")
                        + f"  many:\n    uri: {tmp_path}/many.lance\n    weight: 1\n"
                        "mixture:\n  stop: all_exhausted\ncolumns: [id]\n")
    [error] = errors_of(path)
    assert (error.code, error.line, error.column) == ("LK415", 12, 13)
    assert "'many'" in error.message and "1099511627776" in error.message


def test_weights_a_million_apart_build_where_the_epoch_stays_in_bounds(
        write_recipe: Write) -> None:
    path = write_recipe(MIXTURE.replace("weight: 3", "weight: 1.0e+6")
                        + "mixture:\n  stop: all_exhausted\ncolumns: [id]\n")
    compiled = compile_recipe(path, probe=False)
    # until the light source's 300th row, at a millionth of the epoch: ~300 x (1e6 + 1) rows
    rows = compiled.plan.node("loader").settings["rows_per_epoch_on_this_rank"]
    assert 299 * 1_000_001 <= rows <= 300 * 1_000_001 + 2


SPLITS = "splits:\n  by: id\n  fractions: {train: 0.8, val: 0.1, test: 0.1}\n"


def test_splits_show_each_splits_rows(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id]\n" + SPLITS + "split: val\n")
    compiled = compile_recipe(path, probe=False)
    rows = compiled.plan.node("splits").settings["rows"]
    assert sum(rows.values()) == 300 and rows["val"] == compiled.loader.selected_rows


def test_a_split_column_that_does_not_exist_is_lk402_at_splits_by(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id]\n" + SPLITS.replace("by: id", "by: idd")
                        + "split: val\n")
    [error] = errors_of(path)
    assert (error.code, error.line, error.hint) == ("LK402", 6, "did you mean 'id'?")


def test_an_empty_split_warns_lk410_with_the_counts(write_recipe: Write) -> None:
    path = write_recipe(HEAD + "columns: [id]\nsplits:\n  by: id\n"
                               "  fractions: {train: 0.99999, tiny: 0.00001}\nsplit: tiny\n")
    [warning] = warnings_of(path, "LK410")
    assert warning.line == 8 and "train: 300" in warning.message
