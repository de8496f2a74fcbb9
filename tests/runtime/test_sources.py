"""Sources: LanceDB tables, connection factories and transforms in workers,
version pinning, the offsets fallback, and what crosses into a worker."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import lance
import lancedb
import numpy as np
import pytest
import torch

from loaderkit.runtime import (
    CacheBudgetError,
    SourceError,
    open_source,
    pin_version,
    probe_dataset,
)
from loaderkit.runtime.sources import read_plan
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import EnvValue
from tests.runtime.support import ROWS, build, ids_of, make_table, write_dataset


def test_lancedb_table_delivers_every_row_once(db_uri: str) -> None:
    source = SourceSpec(uri=db_uri, table="items")
    got = ids_of(build(source, type="shuffle", seed=4))
    assert np.array_equal(np.sort(got), np.arange(ROWS))


@pytest.fixture(scope="module")
def worker_run(db_uri: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One epoch through 2 spawn workers using a connection factory and a transform."""
    pid_dir = tmp_path_factory.mktemp("pids")
    os.environ["LK_TEST_PID_DIR"] = str(pid_dir)
    try:
        source = SourceSpec(uri=db_uri, table="items",
                            connection_factory="tests.runtime.factories:open_items")
        loader = build(
            source, type="sharded_batch", transform="tests.runtime.factories:tag_pid", num_workers=2
        )
        batches = list(loader)
    finally:
        del os.environ["LK_TEST_PID_DIR"]
    factory_pids = {int(p.name.split("-")[1]) for p in pid_dir.iterdir()}
    return {"batches": batches, "factory_pids": factory_pids}


def test_connection_factory_runs_inside_each_worker(worker_run: dict) -> None:
    worker_pids = worker_run["factory_pids"] - {os.getpid()}
    assert len(worker_pids) == 2  # one open per worker process, none of them this one


def test_transform_runs_inside_the_workers(worker_run: dict) -> None:
    pids = set(torch.cat([b["pid"] for b in worker_run["batches"]]).tolist())
    assert os.getpid() not in pids
    assert pids <= worker_run["factory_pids"]
    assert np.array_equal(np.sort(ids_of(worker_run["batches"])), np.arange(ROWS))


def test_loader_reads_the_version_pinned_at_build_despite_a_later_append(tmp_path: Path) -> None:
    uri = write_dataset(tmp_path / "grow.lance")
    loader = build(uri, type="full_scan", num_workers=1)
    lance.write_dataset(make_table(ROWS, 500), uri, mode="append")
    assert lance.dataset(uri).count_rows() == ROWS + 500
    assert np.array_equal(ids_of(loader), np.arange(ROWS))


def test_pin_version_records_the_current_version(tmp_path: Path) -> None:
    uri = write_dataset(tmp_path / "v.lance")
    lance.write_dataset(make_table(ROWS, 10), uri, mode="append")
    pinned = pin_version(SourceSpec(uri=uri))
    assert pinned.version == lance.dataset(uri).version == 2
    assert open_source(SourceSpec(uri=uri, version=1)).count_rows() == ROWS


def test_pinned_lancedb_table_reads_its_pinned_version(tmp_path: Path) -> None:
    db = lancedb.connect(str(tmp_path))
    table = db.create_table("t", make_table(0, 100))
    pinned = pin_version(SourceSpec(uri=str(tmp_path), table="t"))
    table.add(make_table(100, 50))
    got = ids_of(build(pinned, type="full_scan"))
    assert np.array_equal(got, np.arange(100))


def test_table_without_to_lance_is_read_by_offsets(db_uri: str) -> None:
    factory = "tests.runtime.factories:open_offsets_only"
    spec = {"type": "shuffle", "mode": "exact", "seed": 9, "rank": 0, "world_size": 2}
    loader = build(SourceSpec(uri=db_uri, table="items", connection_factory=factory), **spec)
    reference = build(SourceSpec(uri=db_uri, table="items"), **spec)
    assert type(loader.dataset.reader).__name__ == "TableReader"
    assert np.array_equal(ids_of(loader), ids_of(reference))


def test_memory_database_with_workers_is_refused() -> None:
    with pytest.raises(SourceError, match="memory://"):
        build(SourceSpec(uri="memory://", table="t"), num_workers=2)


def test_missing_dataset_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        build(str(tmp_path / "absent.lance"))


def test_cache_mode_over_budget_is_refused_before_loading(lance_uri: str) -> None:
    with pytest.raises(CacheBudgetError, match="cache_mb"):
        build(lance_uri, type="shuffle", mode="cache", cache_mb=0)


def test_worker_payload_holds_no_open_dataset_nor_secret(
    lance_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LK_TEST_SECRET", "s3cr3t-value-xyz")
    source = SourceSpec(uri=lance_uri, storage_options={"token": EnvValue("LK_TEST_SECRET")})
    loader = build(source, type="shuffle")
    next(iter(loader))  # the in-process reader is open now
    payload = pickle.dumps(loader.dataset)
    assert b"s3cr3t-value-xyz" not in payload
    assert b"LanceDataset" not in payload and len(payload) < 4096
    assert probe_dataset(pickle.loads(payload)).startswith("read 1 row(s)")


def test_sparse_runs_are_read_in_pieces_of_one_fragment_about_take_piece_rows_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(read_plan, "TAKE_PIECE_ROWS", 100)
    a, b = object(), object()  # two fragments
    keep = np.arange(0, 60, 3)  # 20 of a run's 60 rows
    runs = [read_plan.Range(f, o, 60, keep) for f, o in [(a, 0), (a, 70), (a, 140), (a, 210),
                                                        (b, 0)]]
    pieces = list(read_plan.pieces(runs))
    assert [[r.offset for r in p] for p in pieces] == [[0, 70, 140, 210], [0]]


def test_short_dense_runs_share_one_take_of_their_fragment() -> None:
    a = object()
    runs = [read_plan.Range(a, offset, 128, None) for offset in (0, 1000, 2000)]
    assert [[r.offset for r in p] for p in read_plan.pieces(runs)] == [[0, 1000, 2000]]


def test_a_dense_run_is_read_alone_and_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_plan, "RANGE_READ_ROWS", 60)
    a = object()
    sparse, dense = np.arange(0, 60, 2)[:20], np.arange(0, 60, 2)  # 20 and 30 of 60 rows
    runs = [read_plan.Range(a, 0, 60, sparse), read_plan.Range(a, 70, 60, None),
            read_plan.Range(a, 140, 60, sparse), read_plan.Range(a, 210, 60, dense)]
    assert [[r.offset for r in p] for p in read_plan.pieces(runs)] == [[0], [70], [140], [210]]
