"""state_dict / load_state_dict: head + resumed tail == the uninterrupted epoch."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from loaderkit.runtime import RecipeLoader, ResumeError
from tests.runtime.support import build, ids_of

SPEC: dict[str, Any] = {"type": "shuffle", "mode": "block", "seed": 11}
BATCHES = 69  # ceil(1097 / 16)


def head(loader: RecipeLoader, k: int, epoch: int = 0) -> tuple[list[Any], dict[str, Any]]:
    loader.set_epoch(epoch)
    it = iter(loader)
    taken = list(itertools.islice(it, k))
    state = loader.state_dict()
    del it
    return taken, state


@pytest.fixture(scope="module")
def reference(lance_uri: str) -> list[np.ndarray]:
    loader = build(lance_uri, **SPEC)
    return [ids_of([b]) for b in loader]


@pytest.fixture(scope="module")
def loaders(lance_uri: str) -> Iterator[dict[int, RecipeLoader]]:
    # Persistent 2-worker loaders are reused across k: spawning is the slow part.
    yield {
        0: build(lance_uri, **SPEC),
        2: build(lance_uri, num_workers=2, persistent_workers=True, **SPEC),
    }


def batch_ids(batches: list[Any]) -> list[np.ndarray]:
    return [ids_of([b]) for b in batches]


@pytest.mark.parametrize("k", [0, 1, 34, BATCHES - 1, BATCHES])
@pytest.mark.parametrize(("head_workers", "tail_workers"), [(0, 0), (2, 2), (0, 2), (2, 0)])
def test_head_plus_resumed_tail_is_the_uninterrupted_epoch(
    lance_uri: str,
    reference: list[np.ndarray],
    loaders: dict[int, RecipeLoader],
    k: int,
    head_workers: int,
    tail_workers: int,
) -> None:
    taken, state = head(loaders[head_workers], k)
    tail_loader = build(lance_uri, **SPEC) if tail_workers == 0 else loaders[2]
    tail_loader.load_state_dict(state)
    tail = list(tail_loader)
    got = batch_ids(taken) + batch_ids(tail)
    assert len(got) == len(reference) == BATCHES
    assert all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True))


def test_fresh_two_worker_loader_resumes_mid_epoch(
    lance_uri: str, reference: list[np.ndarray], loaders: dict[int, RecipeLoader]
) -> None:
    taken, state = head(loaders[0], 40)
    fresh = build(lance_uri, num_workers=2, **SPEC)
    fresh.load_state_dict(state)
    got = batch_ids(taken) + batch_ids(list(fresh))
    assert all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True))


@pytest.mark.parametrize("sampler", ["full_scan", "sharded_fragment", "sharded_batch"])
def test_scan_and_sharded_samplers_resume_exactly(lance_uri: str, sampler: str) -> None:
    spec = {"type": sampler, "rank": 1, "world_size": 2}
    whole = ids_of(build(lance_uri, **spec))
    taken, state = head(build(lance_uri, **spec), 7)
    resumed = build(lance_uri, **spec)
    resumed.load_state_dict(state)
    assert np.array_equal(np.concatenate([ids_of(taken), ids_of(resumed)]), whole)


def test_resume_with_cache_mode_is_exact(lance_uri: str) -> None:
    spec = {"type": "shuffle", "mode": "cache", "seed": 2}
    whole = ids_of(build(lance_uri, **spec))
    taken, state = head(build(lance_uri, **spec), 5)
    resumed = build(lance_uri, **spec)
    resumed.load_state_dict(state)
    assert np.array_equal(np.concatenate([ids_of(taken), ids_of(resumed)]), whole)


def test_pass_after_a_resumed_epoch_is_the_next_epoch(lance_uri: str) -> None:
    second_epoch = build(lance_uri, **SPEC)
    second_epoch.set_epoch(1)
    expected = ids_of(second_epoch)
    _, state = head(build(lance_uri, **SPEC), 10)
    resumed = build(lance_uri, **SPEC)
    resumed.load_state_dict(state)
    list(resumed)
    assert resumed.epoch == 0
    assert np.array_equal(ids_of(resumed), expected)


def test_state_after_a_finished_epoch_points_at_the_next_epoch(lance_uri: str) -> None:
    loader = build(lance_uri, **SPEC)
    list(loader)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_delivered"]) == (1, 0)


def test_state_records_the_position_mid_epoch(lance_uri: str) -> None:
    _, state = head(build(lance_uri, **SPEC), 3, epoch=4)
    assert (state["epoch"], state["batches_delivered"]) == (4, 3)
    assert state["remaining"] == [[0, 1097]]  # what the pass started with
    assert state["seed"] == 11 and state["world_size"] == 1 and state["universe_rows"] == 1097


def test_changed_world_size_on_resume_of_sharded_fragment_raises_resume_error(
        lance_uri: str) -> None:
    # Its order belongs to each rank: it resumes only in the world it was saved in.
    spec = {"type": "sharded_fragment"}
    _, state = head(build(lance_uri, rank=0, world_size=2, **spec), 3)
    other = build(lance_uri, rank=0, world_size=3, **spec)
    with pytest.raises(ResumeError, match="world_size: saved 2, now 3"):
        other.load_state_dict(state)


def test_changed_seed_on_resume_raises_resume_error(lance_uri: str) -> None:
    _, state = head(build(lance_uri, **SPEC), 3)
    other = build(lance_uri, **{**SPEC, "seed": 12})
    with pytest.raises(ResumeError, match="seed"):
        other.load_state_dict(state)


def test_a_state_says_its_version(lance_uri: str) -> None:
    from loaderkit.runtime.state import STATE_VERSION

    assert build(lance_uri).state_dict()["state_version"] == STATE_VERSION


@pytest.mark.parametrize(("change", "says"), [
    ({"state_version": 99}, "state version 99"),
    ({"epoch": -1}, "whole numbers"),
    ({"batches_delivered": "3"}, "whole numbers"),
    ({"remaining": [[5, 2]]}, "invalid range"),
    ({"remaining": "all"}, "list of"),
])
def test_a_state_is_validated_when_it_is_loaded(lance_uri: str, change: dict[str, Any],
                                                says: str) -> None:
    state = {**build(lance_uri).state_dict(), **change}
    with pytest.raises(ResumeError, match=says):
        build(lance_uri).load_state_dict(state)


def test_a_state_that_is_not_a_mapping_is_a_resume_error(lance_uri: str) -> None:
    with pytest.raises(ResumeError, match="mapping"):
        build(lance_uri).load_state_dict([1, 2])  # type: ignore[arg-type]
