"""Every sampler: each row of an epoch reaches exactly one (rank, worker) once, in a
deterministic order; drop_last / uneven policies; filters, columns and deletions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lance
import numpy as np
import pytest
import torch

from tests.runtime.support import FRAGMENT_ROWS, ROWS, build, ids_of, through_workers, write_dataset

SAMPLERS: dict[str, dict[str, Any]] = {
    "full_scan": {"type": "full_scan"},
    "sharded_fragment": {"type": "sharded_fragment"},
    "sharded_batch": {"type": "sharded_batch"},
    "shuffle_block": {"type": "shuffle", "mode": "block", "seed": 3},
    "shuffle_exact": {"type": "shuffle", "mode": "exact", "seed": 3},
    "shuffle_cache": {"type": "shuffle", "mode": "cache", "seed": 3},
}


def rank_ids(uri: str, sampler: dict[str, Any], world_size: int, **kw: Any) -> list[np.ndarray]:
    return [
        ids_of(build(uri, rank=r, world_size=world_size, **sampler, **kw))
        for r in range(world_size)
    ]


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("name", SAMPLERS)
def test_every_row_reaches_exactly_one_rank_once(
    lance_uri: str, name: str, world_size: int
) -> None:
    got = np.concatenate(rank_ids(lance_uri, SAMPLERS[name], world_size))
    assert np.array_equal(np.sort(got), np.arange(ROWS))


# Spawned workers cost seconds each, so the worker matrix covers each task kind
# (scan, take, cache) once. Exactly-once with workers then follows from the
# in-process matrix above: workers must reproduce the in-process order exactly.
@pytest.mark.parametrize(
    ("name", "world_size", "num_workers"),
    [("sharded_fragment", 2, 2), ("shuffle_block", 3, 1), ("shuffle_cache", 2, 2)],
)
def test_spawn_workers_deliver_a_rank_in_the_in_process_order(
    lance_uri: str, name: str, world_size: int, num_workers: int
) -> None:
    rank = world_size - 1
    spec = {**SAMPLERS[name], "rank": rank, "world_size": world_size}
    in_process = ids_of(build(lance_uri, **spec))
    with_workers = ids_of(through_workers(build(lance_uri, num_workers=num_workers, **spec)))
    assert len(with_workers) > 0
    assert np.array_equal(in_process, with_workers)


def test_full_scan_deals_dataset_batches_to_ranks_in_turn(lance_uri: str) -> None:
    # Global step k (batch_size x world_size rows) is the same at every world size;
    # `allow` deals the last rows as whole batches too (pylance's ShardedBatchSampler).
    ranks = rank_ids(lance_uri, {**SAMPLERS["full_scan"], "uneven": "allow"}, 3, batch_size=16)
    batch = np.arange(ROWS) // 16
    for r, got in enumerate(ranks):
        assert np.array_equal(got, np.arange(ROWS)[batch % 3 == r])


def test_sharded_fragment_gives_rank_whole_fragments_round_robin(lance_uri: str) -> None:
    ranks = rank_ids(lance_uri, SAMPLERS["sharded_fragment"], 3)
    frag = np.arange(ROWS) // FRAGMENT_ROWS
    for r, got in enumerate(ranks):
        assert np.array_equal(got, np.arange(ROWS)[frag % 3 == r])


def test_sharded_batch_deals_dataset_batches_round_robin(lance_uri: str) -> None:
    ranks = rank_ids(lance_uri, {**SAMPLERS["sharded_batch"], "uneven": "allow"}, 3,
                     batch_size=16)
    batch = np.arange(ROWS) // 16
    for r, got in enumerate(ranks):
        assert np.array_equal(got, np.arange(ROWS)[batch % 3 == r])


def test_shuffle_reshuffles_every_epoch(lance_uri: str) -> None:
    loader = build(lance_uri, **SAMPLERS["shuffle_block"])
    first, second = ids_of(loader), ids_of(loader)
    assert not np.array_equal(first, second)
    assert np.array_equal(np.sort(first), np.sort(second))


def test_shuffle_order_is_a_function_of_seed_and_epoch(lance_uri: str) -> None:
    a = build(lance_uri, **SAMPLERS["shuffle_exact"])
    b = build(lance_uri, **SAMPLERS["shuffle_exact"])
    b.set_epoch(1)
    ids_a0, ids_a1 = ids_of(a), ids_of(a)
    assert np.array_equal(ids_a1, ids_of(b))
    assert not np.array_equal(ids_a0, np.arange(ROWS))


def test_shuffle_with_another_seed_gives_another_order(lance_uri: str) -> None:
    a = ids_of(build(lance_uri, type="shuffle", seed=1))
    b = ids_of(build(lance_uri, type="shuffle", seed=2))
    assert not np.array_equal(a, b)


def test_block_shuffle_mixes_rows_inside_each_chunk(lance_uri: str) -> None:
    got = ids_of(build(lance_uri, type="shuffle", seed=5, block_rows=8, chunk_rows=64))
    # Pure block order would keep 7 of every 8 neighbours consecutive.
    consecutive = np.mean(np.diff(got) == 1)
    assert consecutive < 0.3


@pytest.mark.parametrize("name", SAMPLERS)
def test_drop_last_gives_every_rank_the_same_number_of_full_batches(
    lance_uri: str, name: str
) -> None:
    counts = []
    for r in range(3):
        loader = build(lance_uri, rank=r, world_size=3, drop_last=True, **SAMPLERS[name])
        sizes = [len(b["id"]) for b in loader]
        assert set(sizes) <= {16}
        assert len(sizes) == len(loader)
        counts.append(len(sizes))
    assert len(set(counts)) == 1 and counts[0] > 0


@pytest.mark.parametrize("name", SAMPLERS)
def test_uneven_pad_gives_every_rank_the_same_rows_covering_all(lance_uri: str, name: str) -> None:
    ranks = rank_ids(lance_uri, {**SAMPLERS[name], "uneven": "pad"}, 3)
    assert len({len(r) for r in ranks}) == 1
    assert np.array_equal(np.unique(np.concatenate(ranks)), np.arange(ROWS))


def test_uneven_allow_lets_ranks_differ_by_less_than_a_batch(lance_uri: str) -> None:
    # 1097 rows are 68 batches of 16 and one of 9: ranks take 23 batches each.
    ranks = rank_ids(lance_uri, {**SAMPLERS["full_scan"], "uneven": "allow"}, 3)
    assert sorted(len(r) for r in ranks) == [361, 368, 368]


def test_len_is_the_number_of_batches_per_epoch(lance_uri: str) -> None:
    loader = build(lance_uri, type="shuffle", rank=1, world_size=2)
    # 34 whole steps of 2 x 16 rows, then the last 9 rows split 5 + 4: 35 batches each.
    assert len(loader) == len(list(loader)) == 35


@pytest.mark.parametrize("name", SAMPLERS)
def test_filter_delivers_each_matching_row_once(lance_uri: str, name: str) -> None:
    ranks = rank_ids(lance_uri, SAMPLERS[name], 2, filter="label < 3 AND id > 50")
    expected = np.arange(ROWS)[(np.arange(ROWS) % 7 < 3) & (np.arange(ROWS) > 50)]
    assert np.array_equal(np.sort(np.concatenate(ranks)), expected)


@pytest.mark.parametrize("name", ["full_scan", "shuffle_exact"])
def test_columns_map_output_names_to_columns_and_sql_expressions(lance_uri: str, name: str) -> None:
    columns = {"id": "id", "twice": "id * 2", "vec": "emb"}
    for batch in build(lance_uri, columns=columns, **SAMPLERS[name]):
        assert set(batch) == {"id", "twice", "vec"}
        assert torch.equal(batch["twice"], batch["id"] * 2)
        assert torch.equal(batch["vec"][:, 1], (batch["id"] * 10 + 1).float())


@pytest.fixture(scope="module")
def uri_with_deletions(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = write_dataset(tmp_path_factory.mktemp("deleted") / "d.lance")
    lance.dataset(uri).delete("id % 10 = 3 OR (id >= 300 AND id < 480)")
    return uri


@pytest.mark.parametrize("name", SAMPLERS)
def test_deleted_rows_are_never_delivered(uri_with_deletions: str, name: str) -> None:
    got = np.concatenate(rank_ids(uri_with_deletions, SAMPLERS[name], 2))
    ids = np.arange(ROWS)
    expected = ids[(ids % 10 != 3) & ~((ids >= 300) & (ids < 480))]
    assert np.array_equal(np.sort(got), expected)


def test_filter_on_a_fresh_dataset_matches_lance_count(tmp_path: Path) -> None:
    uri = write_dataset(tmp_path / "f.lance")
    got = ids_of(build(uri, type="full_scan", filter="label = 2"))
    assert len(got) == lance.dataset(uri).count_rows("label = 2")
    assert np.all(got % 7 == 2)


def test_exact_shuffle_delivers_the_keyed_permutation_in_order(lance_uri: str) -> None:
    # The take path reads sorted ids then restores the planned order in memory.
    from loaderkit.runtime.samplers.permutation import Permutation

    got = ids_of(build(lance_uri, type="shuffle", mode="exact", seed=21))
    assert np.array_equal(got, Permutation(ROWS, (21, 0))(np.arange(ROWS)))


# --- what pylance's own sampler tests expect of the samplers of the same names -------------

@pytest.fixture(scope="module")
def twenty_files(tmp_path_factory: pytest.TempPathFactory) -> str:
    """2,000 rows in 20 files of 100 (pylance's test_sample_fragments / _batches data)."""
    return write_dataset(tmp_path_factory.mktemp("pylance") / "ids.lance", 2000,
                         fragment_rows=100)


def test_sharded_fragment_reads_the_ranks_fragments_in_order_as_pylance(
        twenty_files: str) -> None:
    got = ids_of(build(twenty_files, type="sharded_fragment", rank=1, world_size=2,
                       batch_size=25))
    assert got.tolist() == [i for i in range(2000) if i // 100 % 2 == 1]


def test_sharded_batch_takes_every_other_batch_as_pylance(twenty_files: str) -> None:
    loader = build(twenty_files, type="sharded_batch", rank=1, world_size=2, batch_size=25)
    batches = [b["id"].tolist() for b in loader]
    assert [i for b in batches for i in b] == [i for i in range(2000) if i // 25 % 2 == 1]
    assert {len(b) for b in batches} == {25} and len(loader) == len(batches) == 40


def test_full_scan_reads_every_row_in_order_as_pylance(twenty_files: str) -> None:
    assert ids_of(build(twenty_files, type="full_scan", batch_size=25)).tolist() == \
        list(range(2000))
