"""`load_recipe(path, source=...)`: a live LanceDB Table or lance.LanceDataset in place of the
recipe's source, as a notebook's memory:// table (which no other process can open) needs."""

from __future__ import annotations

import os
from pathlib import Path

import lance
import lancedb
import numpy as np
import pyarrow as pa
import pytest

from loaderkit import RecipeError, load_recipe
from loaderkit.compiler import compile_recipe

RECIPE = "loaderkit: 1\ncolumns: [id, score]\nloader:\n  batch_size: 10\n"


def quickstart_table(uri: str = "memory://") -> object:
    """The LanceDB quickstart's table, made in this process."""
    db = lancedb.connect(uri)
    data = pa.table({"id": np.arange(95), "score": np.arange(95, dtype=np.float32) / 2,
                     "item": [f"item {i}" for i in range(95)]})
    return db.create_table("quickstart", data, mode="overwrite")


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "nb.yaml"
    path.write_text(RECIPE)
    return path


def ids_of(loader: object) -> list[int]:
    return [int(i) for batch in loader for i in batch["id"]]  # type: ignore[attr-defined]


def test_a_memory_table_is_read_through_a_recipe(recipe: Path) -> None:
    loader = load_recipe(str(recipe), source=quickstart_table())
    assert ids_of(loader) == list(range(95))


def test_a_memory_table_with_a_filter_reads_only_matching_rows(recipe: Path) -> None:
    loader = load_recipe(str(recipe), {"filter": "id % 10 = 3"}, source=quickstart_table())
    assert ids_of(loader) == list(range(3, 95, 10))


def test_a_memory_table_shuffles_every_row_once(recipe: Path) -> None:
    overrides = {"sampler.type": "shuffle", "sampler.mode": "exact"}
    ids = ids_of(load_recipe(str(recipe), overrides, source=quickstart_table()))
    assert sorted(ids) == list(range(95)) and ids != list(range(95))


def test_a_memory_table_with_workers_is_refused_at_num_workers(recipe: Path) -> None:
    recipe.write_text(RECIPE + "  num_workers: 2\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(recipe), source=quickstart_table())
    [error] = caught.value.errors
    assert (error.code, error.line) == ("LK210", 5)
    assert "quickstart" in error.message


def test_a_live_table_on_disk_crosses_into_workers_by_uri(recipe: Path, tmp_path: Path) -> None:
    table = quickstart_table(str(tmp_path / "db"))
    compiled = compile_recipe(recipe, {"loader.num_workers": 1,
                                       "transform": "tests.safety.user_code:double_score"},
                              source=table, probe=False)
    assert not compiled.plan.read.source.live
    assert compiled.plan.read.source.uri == table.to_lance().uri  # type: ignore[attr-defined]


def test_a_live_dataset_is_pinned_to_its_own_version(recipe: Path, tmp_path: Path) -> None:
    data = pa.table({"id": np.arange(5), "score": np.zeros(5, dtype=np.float32)})
    ds = lance.write_dataset(data, tmp_path / "d.lance")
    lance.write_dataset(data, tmp_path / "d.lance", mode="append")
    old = lance.dataset(tmp_path / "d.lance", version=1)
    loader = load_recipe(str(recipe), source=old)
    assert ids_of(loader) == list(range(5)) and ds.version == 1


def test_the_recipes_own_source_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("loaderkit: 1\nsource:\n  uri: nowhere.lance\ncolumns: [id]\n")
    assert len(ids_of(load_recipe(str(path), source=quickstart_table()))) == 95


LIVE = "loaderkit: 1\nsource:\n  live: true\ncolumns: [id, score]\nloader:\n  batch_size: 10\n"


def test_a_recipe_whose_source_is_live_lints_clean(tmp_path: Path) -> None:
    from loaderkit.compiler import lint

    (tmp_path / "nb.yaml").write_text(LIVE)
    assert lint([tmp_path / "nb.yaml"]) == []


def test_a_recipe_whose_source_is_live_reads_the_source_given(tmp_path: Path) -> None:
    (tmp_path / "nb.yaml").write_text(LIVE)
    loader = load_recipe(str(tmp_path / "nb.yaml"), source=quickstart_table())
    assert ids_of(loader) == list(range(95))


def test_a_live_recipe_loaded_without_a_source_is_refused_at_live(tmp_path: Path) -> None:
    (tmp_path / "nb.yaml").write_text(LIVE)
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(tmp_path / "nb.yaml"))
    [error] = caught.value.diagnostics
    assert (error.code, error.line, error.column) == ("LK220", 3, 3)
    assert "no source was given" in error.message and "source=" in str(error.hint)


def test_build_of_a_live_recipe_is_refused_at_live(tmp_path: Path) -> None:
    from loaderkit import cli
    from tests.safety.support import capture_fds

    (tmp_path / "nb.yaml").write_text(LIVE)
    with capture_fds() as output:
        code = cli.main(["build", str(tmp_path / "nb.yaml")])
    assert code == 1
    assert output.out.startswith(f"{tmp_path / 'nb.yaml'}:3:3: error LK220")


def test_something_else_as_source_is_a_loaderkit_error(recipe: Path) -> None:
    from loaderkit import SourceError

    with pytest.raises(SourceError, match=r"LanceDB Table or a lance\.LanceDataset"):
        load_recipe(str(recipe), source=os.getcwd())


def test_a_factory_returning_a_memory_table_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("loaderkit: 1\nsource:\n  uri: memory://\n  table: quickstart\n"
                    "  connection_factory: tests.build.test_live_source:memory_factory\n"
                    "columns: [id]\n")
    assert ids_of(load_recipe(str(path))) == list(range(95))


_MEMORY: list[object] = []


def memory_factory(name: str) -> object:
    if not _MEMORY:
        _MEMORY.append(quickstart_table())
    return _MEMORY[0]


def located(path: Path, source: object) -> list[tuple[int, int, str, str | None]]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path), source=source)
    return [(d.line, d.column, d.code, d.hint) for d in caught.value.diagnostics]


@pytest.mark.parametrize("columns", ["[id, scroe]", "{id: id, half: scroe / 2}"])
def test_an_unknown_column_of_a_memory_table_is_lk402_at_it_as_on_disk(
        tmp_path: Path, columns: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(f"loaderkit: 1\ncolumns: {columns}\n")
    on_disk = located(path, quickstart_table(str(tmp_path / "db")))
    column = f"columns: {columns}".index("scroe") + 1
    assert on_disk == [(2, column, "LK402", "did you mean 'score'?")]
    assert located(path, quickstart_table()) == on_disk


def test_a_filter_on_an_unknown_column_of_a_memory_table_is_lk403_at_it_as_on_disk(
        tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text('loaderkit: 1\ncolumns: [id]\nfilter: "scroe > 3"\n')
    on_disk = located(path, quickstart_table(str(tmp_path / "db")))
    assert on_disk == [(3, 10, "LK403", "did you mean 'score'?")]
    assert located(path, quickstart_table()) == on_disk
