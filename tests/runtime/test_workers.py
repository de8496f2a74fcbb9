"""Workers: the main process reads until they are up, then hands them the rest of the pass."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest

from loaderkit.runtime.dataset import ChunkDataset
from loaderkit.runtime.tasks import StandbyTask
from tests.runtime.support import build, ids_of, through_workers

SPEC: dict[str, Any] = {"type": "shuffle", "seed": 4}


@pytest.fixture
def read_here(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The tasks read in this process (spawned workers import the class unpatched)."""
    tasks: list[Any] = []
    original = ChunkDataset.__getitem__

    def recording(self: ChunkDataset, task: Any) -> Any:
        tasks.append(task)
        return original(self, task)

    monkeypatch.setattr(ChunkDataset, "__getitem__", recording)
    return tasks


def test_workers_read_the_rest_of_the_pass_once_they_are_up(
    lance_uri: str, read_here: list[Any]
) -> None:
    expected = ids_of(build(lance_uri, **SPEC))
    loader = build(lance_uri, num_workers=2, **SPEC)
    read_here.clear()
    got = ids_of(through_workers(loader))
    assert np.array_equal(got, expected)
    tasks = len(list(loader.row_sampler.tasks(0)))
    assert 1 <= len(read_here) < tasks  # a prefix here, the rest in the workers
    assert not any(isinstance(t, StandbyTask) for t in read_here)


def test_a_pass_read_before_the_workers_are_up_does_not_wait_for_them(
    lance_uri: str, read_here: list[Any]
) -> None:
    expected = ids_of(build(lance_uri, **SPEC))
    loader = build(lance_uri, num_workers=2, **SPEC)
    read_here.clear()
    got = ids_of(loader)
    assert loader.workers.up < 2  # the pass ended while the workers were still starting
    assert np.array_equal(got, expected)
    assert len(read_here) == len(list(loader.row_sampler.tasks(0)))
    loader.shutdown_workers()


def test_persistent_workers_take_over_from_the_second_pass_on(
    lance_uri: str, read_here: list[Any]
) -> None:
    reference = build(lance_uri, **SPEC)
    reference.set_epoch(1)
    expected = ids_of(reference)
    loader = build(lance_uri, num_workers=2, persistent_workers=True, **SPEC)
    through_workers(loader)
    read_here.clear()
    assert np.array_equal(ids_of(loader), expected)
    assert len(read_here) <= 2  # the workers were up: this process read one chunk ahead
    loader.shutdown_workers()


# --- a gate (the background spawn probe) holds the workers back ------------------------


def test_no_worker_starts_while_the_gate_is_closed(
    lance_uri: str, read_here: list[Any]
) -> None:
    expected = ids_of(build(lance_uri, **SPEC))
    loader = build(lance_uri, num_workers=2, **SPEC)
    loader.start_workers_after(Future())
    read_here.clear()
    assert np.array_equal(ids_of(loader), expected)
    assert not loader.workers.started
    assert len(read_here) == len(list(loader.row_sampler.tasks(0)))


def test_workers_start_between_chunks_once_the_gate_opens(
    lance_uri: str, read_here: list[Any]
) -> None:
    one_batch_chunks = {**SPEC, "chunk_rows": 16}  # batch_size 16
    expected = ids_of(build(lance_uri, **one_batch_chunks))
    loader = build(lance_uri, num_workers=2, **one_batch_chunks)
    gate: Future[None] = Future()
    loader.start_workers_after(gate)
    read_here.clear()
    iterator = iter(loader)
    batches = [next(iterator)]  # the first chunk
    assert not loader.workers.started
    gate.set_result(None)
    batches.append(next(iterator))  # the next chunk boundary starts them
    deadline = time.monotonic() + 120
    while loader.workers.up < 2:
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.05)
    batches += list(iterator)
    assert np.array_equal(ids_of(batches), expected)
    assert 2 <= len(read_here) < len(list(loader.row_sampler.tasks(0)))
