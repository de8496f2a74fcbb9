"""Chunk payloads: range reads for long runs, per-batch gathers, worker slicing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from loaderkit.runtime import cache, chunks, gathering, rowids, universe
from loaderkit.runtime.sources import data_files, read_plan
from loaderkit.runtime.sources.lance_reader import LanceReader
from tests.runtime.support import build, ids_of, through_workers, write_dataset


def _rows(batches: list[Any]) -> list[Any]:
    out = []
    for b in batches:
        if hasattr(b, "to_dict"):  # pandas: vector cells are numpy arrays
            cols = b.to_dict("list")
            out.append({k: [getattr(x, "tolist", lambda x=x: x)() for x in v]
                        for k, v in cols.items()})
        elif isinstance(b, dict):
            out.append({k: v.tolist() if hasattr(v, "tolist") else v for k, v in b.items()})
        else:
            out.append(b)
    return out


@pytest.mark.parametrize("fmt", ["torch", "numpy", "pandas", "arrow"])
def test_range_reads_deliver_what_a_take_does(
    lance_uri: str, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def epoch(min_rows: int) -> list[Any]:
        monkeypatch.setattr(read_plan, "MIN_RANGE_ROWS", min_rows)
        return list(build(lance_uri, format=fmt, type="shuffle", seed=3, block_rows=64,
                          chunk_rows=256))

    ranged, taken = epoch(16), epoch(10**9)
    assert np.array_equal(ids_of(ranged), ids_of(taken))
    if fmt != "arrow":
        assert _rows(ranged) == _rows(taken)
    else:
        assert all(a.equals(b) for a, b in zip(ranged, taken, strict=True))


@pytest.mark.parametrize("sampler", ["full_scan", "shuffle"])
def test_worker_chunks_are_cut_like_in_process_batches(lance_uri: str, sampler: str) -> None:
    inproc = list(build(lance_uri, format="pandas", type=sampler, seed=1))
    loader = build(lance_uri, format="pandas", type=sampler, seed=1, num_workers=2)
    workers = through_workers(loader)
    assert len(inproc) == len(workers)
    for a, b in zip(inproc, workers, strict=True):
        assert a.equals(b)
        assert list(b.index) == list(range(len(b)))


def test_gathered_batches_own_their_memory(lance_uri: str) -> None:
    batches = list(build(lance_uri, type="shuffle", mode="exact", seed=2))
    assert all(isinstance(b["id"], torch.Tensor) for b in batches)
    assert np.array_equal(np.sort(ids_of(batches)), np.arange(len(ids_of(batches))))


def _file_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each read that went straight to a data file (runs from 16 rows):
    "read" for a dense run's range (from 32 rows), "take" for other runs' rows."""
    monkeypatch.setattr(read_plan, "MIN_RANGE_ROWS", 16)
    monkeypatch.setattr(read_plan, "RANGE_READ_ROWS", 32)
    calls: list[str] = []
    for name in ("read", "take"):
        method = getattr(data_files.FileRows, name)

        def recording(self: Any, *args: Any, _name: str = name, _method: Any = method) -> Any:
            calls.append(_name)
            return _method(self, *args)

        monkeypatch.setattr(data_files.FileRows, name, recording)
    return calls


def _epoch_in_small_chunks(uri: str, **kw: Any) -> list[Any]:
    return list(build(uri, type="shuffle", seed=5, block_rows=64, chunk_rows=512, **kw))


@pytest.mark.parametrize(
    ("mode", "piece_rows", "read"),
    [("block", read_plan.TAKE_PIECE_ROWS, "read"), ("exact", read_plan.TAKE_PIECE_ROWS, "take"),
     ("exact", 20, "take")],
)
def test_shuffles_read_rows_from_data_files_like_the_scanner(
    lance_uri: str, mode: str, piece_rows: int, read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_plan, "TAKE_PIECE_ROWS", piece_rows)
    calls = _file_reads(monkeypatch)
    direct = _epoch_in_small_chunks(lance_uri, mode=mode, columns={"v": "emb", "id": "id"})
    assert read in calls  # the fast path was taken
    monkeypatch.setattr(data_files.FileRows, "open", classmethod(lambda *a: None))
    scanned = _epoch_in_small_chunks(lance_uri, mode=mode, columns={"v": "emb", "id": "id"})
    assert _rows(direct) == _rows(scanned)
    assert list(direct[0]) == ["v", "id"]


def test_a_renamed_column_is_read_through_the_scanner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After swapping two names, each data file still calls its columns by the old
    # names: reading the file by name would return the other column.
    uri = write_dataset(tmp_path / "swapped.lance")
    ds = lance.dataset(uri)
    ds.alter_columns({"path": "label", "name": "tmp"})
    ds.alter_columns({"path": "id", "name": "label"}, {"path": "tmp", "name": "id"})
    calls = _file_reads(monkeypatch)
    batches = _epoch_in_small_chunks(uri, columns={"id": "id", "label": "label"})
    assert not calls
    ids, labels = ids_of(batches), np.concatenate([b["label"].numpy() for b in batches])
    assert np.array_equal(labels % 7, ids)  # "id" now holds the old label (id % 7)


def test_sql_expression_columns_are_read_through_the_scanner(
    lance_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _file_reads(monkeypatch)
    batches = _epoch_in_small_chunks(lance_uri, columns={"id": "id", "twice": "id * 2"})
    assert not calls
    assert all(torch.equal(b["twice"], b["id"] * 2) for b in batches)


def test_range_reads_skip_the_rows_between_nearby_wanted_rows(
    lance_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_plan, "MIN_RANGE_ROWS", 16)
    ds = lance.dataset(lance_uri)
    reader = LanceReader(ds)
    offsets = np.array([o for o in range(600) if o % 97 not in (3, 40)])  # holes; spans fragments
    frag_rows = np.cumsum([0] + [f.metadata.physical_rows for f in ds.get_fragments()])
    fragment = np.searchsorted(frag_rows, offsets, side="right") - 1
    addresses = rowids.address(fragment.astype(np.int64), offsets - frag_rows[fragment])
    ranges = read_plan.ranges(addresses, {f.fragment_id: f for f in ds.get_fragments()}, False)
    assert ranges is not None and any(r.keep is not None for r in ranges)
    got = reader.take(addresses, {"id": "id", "emb": "emb"})
    assert got.column("id").to_pylist() == offsets.tolist()
    assert got.column("emb").to_pylist() == ds.take(offsets.tolist(), ["emb"])["emb"].to_pylist()


def _shuffled_epoch(lance_uri: str, fmt: str, mode: str = "cache") -> list[Any]:
    loader = build(lance_uri, type="shuffle", mode=mode, seed=3, format=fmt,
                   columns={"id": "id", "emb": "emb"})
    return _rows([b.tolist() if isinstance(b, torch.Tensor) else b for b in loader])


@pytest.mark.parametrize("fmt", ["torch", "numpy", "torch_col"])
def test_cache_gathers_split_over_two_threads_deliver_the_same_batches(
    lance_uri: str, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _shuffled_epoch(lance_uri, fmt)
    monkeypatch.setattr(cache, "GATHER_SPLIT_ROWS", 2)  # every 64-row chunk splits
    assert _shuffled_epoch(lance_uri, fmt) == whole


@pytest.mark.skipif(gathering.take_rows is None, reason="built without a C compiler")
@pytest.mark.parametrize("mode", ["cache", "block"])
@pytest.mark.parametrize("fmt", ["torch", "numpy", "torch_col"])
def test_shuffled_batches_are_the_same_with_numpys_gather(
    lance_uri: str, fmt: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = _shuffled_epoch(lance_uri, fmt, mode)
    monkeypatch.setattr(gathering, "take_rows", None)
    assert _shuffled_epoch(lance_uri, fmt, mode) == compiled


@given(pieces=st.lists(st.integers(0, 40), max_size=12), batch_size=st.integers(1, 16))
def test_rebatch_cuts_scanner_batches_into_full_batches_in_order(
    pieces: list[int], batch_size: int
) -> None:
    starts = np.cumsum([0, *pieces])
    batches = [
        pa.record_batch({"id": np.arange(a, a + n)})
        for a, n in zip(starts[:-1], pieces, strict=True)
    ]
    out = list(chunks.rebatch(batches, batch_size))
    assert [b.num_rows for b in out[:-1]] == [batch_size] * (len(out) - 1)
    assert not out or 0 < out[-1].num_rows <= batch_size
    got = [i for b in out for i in b.column("id").to_pylist()]
    assert got == list(range(sum(pieces)))


@pytest.mark.parametrize("realign_rows", [universe.REALIGN_ROWS, 16])  # merged runs; cut runs
def test_full_scan_across_fragment_ends_delivers_full_batches(
    lance_uri: str, realign_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 157-row fragments and 16-row batches: every fragment ends mid-batch.
    monkeypatch.setattr(universe, "REALIGN_ROWS", realign_rows)
    batches = list(build(lance_uri, type="full_scan", batch_size=16))
    assert [len(b["id"]) for b in batches[:-1]] == [16] * (len(batches) - 1)
    assert np.array_equal(ids_of(batches), np.arange(len(ids_of(batches))))


def test_full_scan_with_runs_cut_at_fragments_copies_one_batch_per_fragment_end(
    lance_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(universe, "REALIGN_ROWS", 16)  # 157-row fragments count as long
    joined = []
    one_batch = chunks.one_batch
    monkeypatch.setattr(chunks, "one_batch", lambda b: joined.append(b) or one_batch(b))
    batches = list(build(lance_uri, type="full_scan", batch_size=16))
    fragments = len(lance.dataset(lance_uri).get_fragments())
    assert 0 < len(joined) <= fragments  # the batch each fragment end splits, no more
    assert np.array_equal(ids_of(batches), np.arange(len(ids_of(batches))))


@pytest.mark.parametrize(("kind", "world_size"), [("full_scan", 1), ("sharded_fragment", 2)])
@pytest.mark.parametrize("skip", [0, 5])
def test_a_scan_order_streams_the_batches_its_chunk_tasks_hold(
    lance_uri: str, kind: str, world_size: int, skip: int
) -> None:
    # With 0 workers a scan order is read as one stream; workers read it as tasks. (Rank 0
    # holds sharded_fragment's largest share: only its last batch is short, so it streams.)
    from loaderkit.runtime.samplers.ordering import drop

    loader = build(lance_uri, type=kind, world_size=world_size, rank=0)
    dataset, rows = loader.dataset, loader.row_sampler
    remaining = drop(rows.epoch_ranges(0), [(0, skip * 16)])
    from_tasks = [b for t in rows.tasks(0, remaining) for b in dataset[t]]
    streamed = list(dataset.stream(rows.scan_runs(0, remaining)))
    assert _rows(streamed) == _rows(from_tasks)
