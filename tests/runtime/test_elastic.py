"""Elastic, reproducible, scale-free: a state resumes at another world size, worker count or
batch size; global step k holds the same rows at every world size; planning an epoch costs
the same for a billion rows as for a thousand."""

from __future__ import annotations

import itertools
import tracemalloc
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaderkit import ResumeError, merge_states
from loaderkit.runtime.samplers import make_sampler, permutation
from loaderkit.runtime.samplers.permutation import Permutation
from loaderkit.runtime.samplers.shuffle import BlockShuffle
from loaderkit.runtime.spec import SamplerSpec
from loaderkit.runtime.universe import Universe
from tests.runtime.support import ROWS, build, ids_of, mixture, through_workers

GLOBAL: dict[str, dict[str, Any]] = {
    "full_scan": {"type": "full_scan"},
    "shuffle_block": {"type": "shuffle", "mode": "block", "seed": 5},
    "shuffle_exact": {"type": "shuffle", "mode": "exact", "seed": 5},
    "shuffle_cache": {"type": "shuffle", "mode": "cache", "seed": 5},
}


def global_steps(uri: Any, spec: dict[str, Any], world: int, global_batch: int,
                 **kw: Any) -> list[set[int]]:
    """The rows of each global step: every rank's k-th batch, together."""
    per_rank = global_batch // world
    ranks = [[set(b["id"].tolist()) for b in build(uri, rank=r, world_size=world,
                                                   batch_size=per_rank, **spec, **kw)]
             for r in range(world)]
    steps = max(len(r) for r in ranks)
    return [set().union(*(r[k] for r in ranks if k < len(r))) for k in range(steps)]


@pytest.mark.parametrize("name", GLOBAL)
def test_global_step_k_holds_the_same_rows_at_world_sizes_1_2_and_3(lance_uri: str,
                                                                    name: str) -> None:
    one = global_steps(lance_uri, GLOBAL[name], 1, 12)
    assert global_steps(lance_uri, GLOBAL[name], 2, 12) == one
    assert global_steps(lance_uri, GLOBAL[name], 3, 12) == one


def test_a_mixtures_global_steps_are_the_same_at_every_world_size(
        mixed_uris: dict[str, str]) -> None:
    source = mixture(big=(mixed_uris["big"], 3), small=(mixed_uris["small"], 1))
    spec = {"type": "shuffle", "seed": 2}
    one = global_steps(source, spec, 1, 12)
    assert global_steps(source, spec, 2, 12) == one == global_steps(source, spec, 3, 12)


def run_from(uri: str, spec: dict[str, Any], state: dict[str, Any] | None, world: int,
             batch_size: int, workers: int = 0) -> list[np.ndarray]:
    """Each rank of a run, resumed from `state`, and the ids it delivers."""
    out = []
    for rank in range(world):
        loader = build(uri, rank=rank, world_size=world, batch_size=batch_size,
                       num_workers=workers, **spec)
        if state is not None:
            loader.load_state_dict(state)
        out.append(ids_of(through_workers(loader) if workers else loader))
    return out


def interrupted(uri: str, spec: dict[str, Any], world: int, batch_size: int,
                steps: int) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Every rank takes `steps` batches; their ids and states."""
    taken, states = [], []
    for rank in range(world):
        loader = build(uri, rank=rank, world_size=world, batch_size=batch_size, **spec)
        it = iter(loader)
        taken.append(ids_of(list(itertools.islice(it, steps))))
        states.append(loader.state_dict())
    return taken, states


@pytest.mark.parametrize(("before", "after", "size_after"), [(2, 1, 16), (2, 3, 16), (4, 2, 8),
                                                             (2, 2, 7)])
@pytest.mark.parametrize("name", ["full_scan", "shuffle_block", "shuffle_exact"])
def test_a_state_resumes_at_another_world_size_with_every_row_once(
        lance_uri: str, name: str, before: int, after: int, size_after: int) -> None:
    head, states = interrupted(lance_uri, GLOBAL[name], before, 16, steps=9)
    tail = run_from(lance_uri, GLOBAL[name], states[0], after, size_after)
    delivered = np.concatenate(head + tail)
    assert sorted(delivered.tolist()) == list(range(ROWS))


def test_a_state_resumes_at_another_world_size_with_workers(lance_uri: str) -> None:
    head, states = interrupted(lance_uri, GLOBAL["shuffle_block"], 2, 16, steps=5)
    tail = run_from(lance_uri, GLOBAL["shuffle_block"], states[0], 3, 16, workers=2)
    assert sorted(np.concatenate(head + tail).tolist()) == list(range(ROWS))


def test_a_resumed_world_delivers_the_rest_in_the_original_global_order(
        lance_uri: str) -> None:
    spec = GLOBAL["shuffle_exact"]
    whole = global_steps(lance_uri, spec, 1, 12)
    _, states = interrupted(lance_uri, spec, 3, 4, steps=10)  # 10 global steps of 12 rows
    tail = run_from(lance_uri, spec, states[2], 2, 6)
    steps = [set(a.tolist()) | set(b.tolist()) for a, b in
             zip(np.array_split(tail[0], range(6, len(tail[0]), 6)),
                 np.array_split(tail[1], range(6, len(tail[1]), 6)), strict=False)]
    assert steps[:5] == whole[10:15]


def test_merged_states_resume_ranks_that_took_different_numbers_of_steps(
        lance_uri: str) -> None:
    spec = GLOBAL["shuffle_block"]
    taken, states = [], []
    for rank, steps in enumerate([7, 5, 6]):
        loader = build(lance_uri, rank=rank, world_size=3, **spec)
        it = iter(loader)
        taken.append(ids_of(list(itertools.islice(it, steps))))
        states.append(loader.state_dict())
    tail = run_from(lance_uri, spec, merge_states(states), 2, 16)
    assert sorted(np.concatenate(taken + tail).tolist()) == list(range(ROWS))


def test_merging_needs_a_state_from_every_rank(lance_uri: str) -> None:
    _, states = interrupted(lance_uri, GLOBAL["full_scan"], 3, 16, steps=2)
    with pytest.raises(ResumeError, match="one state per rank"):
        merge_states(states[:2])


def test_a_mixture_resumes_at_another_world_size(mixed_uris: dict[str, str]) -> None:
    source = mixture(big=(mixed_uris["big"], 3), small=(mixed_uris["small"], 1))
    spec = {"type": "shuffle", "seed": 3}
    whole = ids_of(build(source, **spec))
    head, states = interrupted(source, spec, 2, 16, steps=20)  # type: ignore[arg-type]
    tail = run_from(source, spec, states[0], 3, 8)  # type: ignore[arg-type]
    assert sorted(np.concatenate(head + tail).tolist()) == sorted(whole.tolist())


# --- scale-free planning --------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 5000), seed=st.integers(0, 2**32), epoch=st.integers(0, 50))
def test_the_keyed_permutation_is_a_permutation_for_any_size(n: int, seed: int,
                                                             epoch: int) -> None:
    order = Permutation(n, (seed, epoch))(np.arange(n))
    assert np.array_equal(np.sort(order), np.arange(n))


@pytest.mark.skipif(permutation.compiled_walk is None, reason="built without a C compiler")
@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 2**40), seed=st.integers(0, 2**64 - 1), epoch=st.integers(0, 50),
       data=st.data())
def test_the_compiled_permutation_is_the_numpy_one_both_ways(
        n: int, seed: int, epoch: int, data: st.DataObject) -> None:
    positions = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=300)),
                         dtype=np.int64)
    order = Permutation(n, (seed, epoch))
    compiled = order(positions), order.inverse(positions)
    with patch.object(permutation, "compiled_walk", None):
        numpy_path = order(positions), order.inverse(positions)
    assert compiled[0].tolist() == numpy_path[0].tolist()
    assert compiled[1].tolist() == numpy_path[1].tolist()


@pytest.mark.skipif(permutation.compiled_walk is None, reason="built without a C compiler")
def test_the_compiled_permutation_refuses_a_position_outside_it() -> None:
    with pytest.raises(ValueError, match="outside"):
        Permutation(10, (1, 0))(np.array([3, 10]))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 3000), block=st.integers(1, 70), data=st.data())
def test_the_lazy_block_order_is_a_permutation_and_slices_consistently(
        n: int, block: int, data: st.DataObject) -> None:
    spec = SamplerSpec(type="shuffle", mode="block", block_rows=block, seed=1)
    universe = Universe(np.array([0]), np.array([n]), None)
    sampler = BlockShuffle(spec, universe, 4, False)
    whole = sampler.order_slice(n, (0,), 0, n)
    assert np.array_equal(np.sort(whole), np.arange(n))
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    assert np.array_equal(sampler.order_slice(n, (0,), a, b), whole[a:b])


@pytest.mark.parametrize("mode", ["block", "exact"])
def test_the_first_task_of_a_billion_row_epoch_plans_in_little_memory(mode: str) -> None:
    rows = 10**9
    fragments = np.full(1000, rows // 1000, dtype=np.int64)
    universe = Universe(np.arange(1000, dtype=np.int64), fragments, None)
    spec = SamplerSpec(type="shuffle", mode=mode, seed=1, rank=3, world_size=8)
    tracemalloc.start()
    sampler = make_sampler(spec, universe, 1024, True)
    first = next(iter(sampler.tasks(0)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(first.ids) == 1024  # type: ignore[union-attr]
    assert peak < 64 * 2**20


def test_a_filtered_universe_keeps_under_two_bits_a_row(tmp_path: Any) -> None:
    import lance

    from tests.runtime.support import make_table

    uri = str(tmp_path / "big.lance")
    lance.write_dataset(make_table(0, 40_000), uri, max_rows_per_file=8192)
    loader = build(uri, filter="id % 2 = 0")
    universe = loader.row_sampler.universe
    assert universe.size == 20_000 and universe.nbytes < 40_000 // 4
    assert np.array_equal(ids_of(loader), np.arange(0, 40_000, 2))
