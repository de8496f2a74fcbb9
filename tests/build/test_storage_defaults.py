"""I/O settings follow where the data lives, unless the recipe says otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit.compiler import front
from loaderkit.planning import Plan, plan
from loaderkit.runtime import storage

Write = Callable[..., Path]


def planned(path: Path) -> Plan:
    document, recipe, problems = front(path)
    assert recipe is not None and document is not None, problems
    made, _ = plan(recipe, document)
    return made


def shuffle_recipe(uri: str, extra: str = "", loader: str = "") -> str:
    return (f"loaderkit: 1\nsource:\n  uri: {uri}\ncolumns: [id]\n"
            f"sampler:\n  type: shuffle\n{extra}loader:\n  batch_size: 8\n{loader}")


@pytest.mark.parametrize(("uri", "remote"), [
    ("data/items.lance", False), ("/abs/items.lance", False), ("file:///abs/items.lance", False),
    ("s3://bucket/items.lance", True), ("gs://bucket/items.lance", True),
    ("az://container/items.lance", True), ("db://my-project", True),
])
def test_object_stores_are_recognised_by_their_uri_scheme(uri: str, remote: bool) -> None:
    assert storage.on_object_store(uri) is remote


def test_a_block_shuffle_on_local_disk_reads_small_blocks(write_recipe: Write) -> None:
    made = planned(write_recipe(shuffle_recipe("{data}/items.lance")))
    assert made.sampler.block_rows == storage.LOCAL_BLOCK_ROWS


def test_a_block_shuffle_on_an_object_store_reads_large_blocks(write_recipe: Write) -> None:
    made = planned(write_recipe(shuffle_recipe("s3://bucket/items.lance")))
    assert made.sampler.block_rows == storage.OBJECT_STORE_BLOCK_ROWS


def test_a_mixture_with_one_remote_source_reads_large_blocks(write_recipe: Write) -> None:
    text = ("loaderkit: 1\nsources:\n  a: {uri: '{data}/items.lance', weight: 1}\n"
            "  b: {uri: 's3://bucket/items.lance', weight: 1}\ncolumns: [id]\n"
            "sampler:\n  type: shuffle\n")
    assert planned(write_recipe(text)).sampler.block_rows == storage.OBJECT_STORE_BLOCK_ROWS


def test_the_recipes_block_rows_wins_over_the_storage_default(write_recipe: Write) -> None:
    made = planned(write_recipe(shuffle_recipe("s3://bucket/items.lance",
                                               extra="  block_rows: 512\n")))
    assert made.sampler.block_rows == 512


def test_reads_in_flight_defaults_by_storage_and_follows_the_recipe(
        write_recipe: Write, build_data: Path) -> None:
    from loaderkit import load_recipe

    default = load_recipe(write_recipe(shuffle_recipe("{data}/items.lance")))
    assert default.dataset.reader.reads_in_flight == storage.LOCAL_READS_IN_FLIGHT
    assert storage.reads_in_flight("s3://bucket/x.lance") == storage.OBJECT_STORE_READS_IN_FLIGHT
    tuned = load_recipe(write_recipe(shuffle_recipe("{data}/items.lance",
                                                    loader="  reads_in_flight: 7\n")))
    assert tuned.dataset.reader.reads_in_flight == 7
    assert sorted(int(b["id"][i]) for b in tuned for i in range(len(b["id"]))) == \
        sorted(int(b["id"][i]) for b in default for i in range(len(b["id"])))
