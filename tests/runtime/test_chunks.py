"""Chunk payloads: range reads for long runs, per-batch gathers, worker slicing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from rt_support import build, ids_of

from loaderkit.runtime import sources


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
        monkeypatch.setattr(sources, "MIN_RANGE_ROWS", min_rows)
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
    workers = list(build(lance_uri, format="pandas", type=sampler, seed=1, num_workers=2))
    assert len(inproc) == len(workers)
    for a, b in zip(inproc, workers, strict=True):
        assert a.equals(b)
        assert list(b.index) == list(range(len(b)))


def test_gathered_batches_own_their_memory(lance_uri: str) -> None:
    batches = list(build(lance_uri, type="shuffle", mode="exact", seed=2))
    assert all(isinstance(b["id"], torch.Tensor) for b in batches)
    assert np.array_equal(np.sort(ids_of(batches)), np.arange(len(ids_of(batches))))
