"""Weighted mixtures of sources: proportions at every point of the epoch, no repeat before a
source is exhausted, deterministic, sharded over ranks and workers like one source, resumable."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaderkit.errors import RuntimeFailure
from loaderkit.models import WEIGHT_MAX, WEIGHT_RATIO_MAX
from loaderkit.runtime.rowids import SOURCE_SHIFT
from loaderkit.runtime.samplers import make_sampler, mixing
from loaderkit.runtime.samplers import shuffle as shuffles
from loaderkit.runtime.spec import SamplerSpec
from loaderkit.runtime.tasks import CacheTask, TakeTask
from loaderkit.runtime.universe import Mixture, Universe
from tests.runtime.support import build, ids_of, mixture, through_workers

SAMPLERS: dict[str, dict[str, Any]] = {
    "full_scan": {"type": "full_scan"},
    "sharded_batch": {"type": "sharded_batch"},
    "shuffle_block": {"type": "shuffle", "mode": "block", "seed": 3},
    "shuffle_exact": {"type": "shuffle", "mode": "exact", "seed": 3},
    "shuffle_cache": {"type": "shuffle", "mode": "cache", "seed": 3},
}


def source_of(ids: np.ndarray) -> np.ndarray:
    """Which dataset an id came from: 0 big, 1 small, 2 tiny."""
    return (ids >= 10_000).astype(int) + (ids >= 20_000).astype(int)


def worst_share_deviation(sources: np.ndarray, shares: list[float], after: int = 1000) -> float:
    """The largest |running share - weight share| of any source, from row `after` on."""
    rows = np.arange(1, len(sources) + 1)
    worst = 0.0
    for index, share in enumerate(shares):
        running = np.cumsum(sources == index) / rows
        worst = max(worst, float(np.abs(running[after - 1:] - share).max(initial=0)))
    return worst


def mix3(mixed_uris: dict[str, str], big: float = 3, small: float = 1) -> Any:
    return mixture(big=(mixed_uris["big"], big), small=(mixed_uris["small"], small))


@pytest.mark.parametrize("name", SAMPLERS)
def test_the_running_share_of_each_source_holds_its_weight(mixed_uris: dict[str, str],
                                                           name: str) -> None:
    ids = ids_of(build(mix3(mixed_uris), **SAMPLERS[name]))
    assert worst_share_deviation(source_of(ids), [0.75, 0.25]) <= 0.02


@pytest.mark.parametrize("name", SAMPLERS)
def test_first_exhausted_ends_when_a_source_runs_out_without_a_repeat(
        mixed_uris: dict[str, str], name: str) -> None:
    ids = ids_of(build(mix3(mixed_uris), **SAMPLERS[name]))
    small = ids[source_of(ids) == 1]
    assert len(small) == 600 and len(np.unique(small)) == 600  # the small source, exhausted
    assert len(np.unique(ids)) == len(ids)  # nothing repeats
    assert abs(len(ids) - 2400) <= 2  # 600 rows are a quarter of the epoch


def test_all_exhausted_repeats_the_smaller_source_only_after_it_ran_out(
        mixed_uris: dict[str, str]) -> None:
    source = mixture(big=(mixed_uris["big"], 1), small=(mixed_uris["small"], 1))
    source = type(source)(**{**source.__dict__, "stop": "all_exhausted"})
    ids = ids_of(build(source, type="shuffle", mode="exact", seed=1))
    big, small = ids[source_of(ids) == 0], ids[source_of(ids) == 1]
    assert sorted(big.tolist()) == list(range(3000))
    assert len(small) in (2999, 3000, 3001)
    for cycle in range(len(small) // 600):  # each pass over the small source: every row once
        assert len(np.unique(small[cycle * 600:(cycle + 1) * 600])) == 600


@pytest.mark.parametrize("name", SAMPLERS)
def test_all_exhausted_delivers_every_row_of_a_source_before_its_first_repeat(
        mixed_uris: dict[str, str], name: str) -> None:
    # 3:1 over 3,000 and 600 rows: the small source's second pass starts in the middle of
    # a chunk (64 rows, mixed in block mode) that still ends its first.
    source = mix3(mixed_uris)
    source = type(source)(**{**source.__dict__, "stop": "all_exhausted"})
    ids = ids_of(build(source, **SAMPLERS[name]))
    small = ids[source_of(ids) == 1]
    assert len(small) > 600
    assert sorted(small[:600].tolist()) == list(range(10_000, 10_600))


def test_a_mixture_is_deterministic_from_seed_and_epoch(mixed_uris: dict[str, str]) -> None:
    first = ids_of(build(mix3(mixed_uris), type="shuffle", seed=9))
    again = ids_of(build(mix3(mixed_uris), type="shuffle", seed=9))
    assert np.array_equal(first, again)
    loader = build(mix3(mixed_uris), type="shuffle", seed=9)
    loader.set_epoch(1)
    assert not np.array_equal(ids_of(loader), first)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_a_mixtures_epoch_exactly_once(mixed_uris: dict[str, str],
                                                   world_size: int) -> None:
    whole = ids_of(build(mix3(mixed_uris), type="shuffle", seed=2))
    ranks = [ids_of(build(mix3(mixed_uris), type="shuffle", seed=2, rank=r,
                          world_size=world_size)) for r in range(world_size)]
    assert sorted(np.concatenate(ranks).tolist()) == sorted(whole.tolist())
    for ids in ranks:  # each rank's part of the epoch still holds the mixture
        assert worst_share_deviation(source_of(ids), [0.75, 0.25], after=200) <= 0.02


def test_workers_deliver_a_mixture_in_the_in_process_order(mixed_uris: dict[str, str]) -> None:
    expected = ids_of(build(mix3(mixed_uris), type="shuffle", seed=4))
    loader = build(mix3(mixed_uris), type="shuffle", seed=4, num_workers=2)
    assert np.array_equal(ids_of(through_workers(loader)), expected)


def test_a_mixture_resumes_mid_epoch_exactly(mixed_uris: dict[str, str]) -> None:
    loader = build(mix3(mixed_uris), type="shuffle", seed=6)
    iterator = iter(loader)
    head = ids_of([next(iterator) for _ in range(40)])
    resumed = build(mix3(mixed_uris), type="shuffle", seed=6)
    resumed.load_state_dict(loader.state_dict())
    whole = ids_of(build(mix3(mixed_uris), type="shuffle", seed=6))
    assert np.array_equal(np.concatenate([head, ids_of(resumed)]), whole)


def test_a_state_records_the_mixture_and_refuses_another(mixed_uris: dict[str, str]) -> None:
    from loaderkit import ResumeError

    state = build(mix3(mixed_uris)).state_dict()
    assert state["mixture"]["sources"] == [["big", 3.0], ["small", 1.0]]
    with pytest.raises(ResumeError, match="mixture"):
        build(mix3(mixed_uris, big=1)).load_state_dict(state)


def test_three_sources_mix_by_their_weights(mixed_uris: dict[str, str]) -> None:
    source = mixture(big=(mixed_uris["big"], 5), small=(mixed_uris["small"], 2),
                     tiny=(mixed_uris["tiny"], 1))
    ids = ids_of(build(source, type="shuffle", seed=1, batch_size=8))
    assert worst_share_deviation(source_of(ids), [5 / 8, 2 / 8, 1 / 8], after=300) <= 0.02


def test_the_interleave_holds_each_share_to_a_few_rows_at_every_prefix() -> None:
    # Each source keeps within one row of its share in time; in rows, within one per source.
    m = Mixture(("a", "b", "c"), (10_000, 3_000, 700), (0.6, 0.3, 0.1))
    interleave = mixing.Interleave(m, np.random.default_rng(0).random(3))
    order = interleave.slice(0, interleave.total, lambda source, cycle, lo, hi: np.arange(lo, hi))
    sources = mixing.source_of(m, order)
    counts = np.zeros(3)
    for m_rows, source in enumerate(sources, start=1):
        counts[source] += 1
        assert np.all(np.abs(counts - m_rows * np.array([0.6, 0.3, 0.1])) <= 3)


# --- every sampler, pure numpy: a source's cycles never overlap -------------------------

def mixture_universe(sizes: list[int], weights: list[float], stop: str) -> Universe:
    """A mixture of sources read by offset: a delivered id is source << SOURCE_SHIFT | row."""
    parts = tuple(Universe(np.zeros(1, dtype=np.int64), np.array([n], dtype=np.int64), None,
                           offsets=True) for n in sizes)
    return Universe(np.arange(len(sizes), dtype=np.int64), np.array(sizes, dtype=np.int64),
                    None, scannable=False, mixture=Mixture(
                        tuple(f"s{i}" for i in range(len(sizes))), tuple(sizes),
                        tuple(weights), stop), parts=parts)


def delivered(u: Universe, spec: SamplerSpec, batch_size: int, drop_last: bool,
              per_batch: bool) -> np.ndarray:
    """The epoch's ids in global order: step k is rank 0's batch k, rank 1's, ..."""
    ranks = []
    for rank in range(spec.world_size):
        plan = make_sampler(type(spec)(**{**spec.__dict__, "rank": rank}), u, batch_size,
                            drop_last)
        ids = [u.ids(t.positions) if isinstance(t, CacheTask) else t.ids
               for t in plan.tasks(0, per_batch=per_batch) if isinstance(t, TakeTask | CacheTask)]
        rows = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        ranks.append([rows[i:i + batch_size] for i in range(0, len(rows), batch_size)])
    steps = max(len(batches) for batches in ranks)
    out = [batches[k] for k in range(steps) for batches in ranks if k < len(batches)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), min_size=2, max_size=3),
       weights=st.lists(st.floats(0.25, 8), min_size=3, max_size=3),
       stop=st.sampled_from(["first_exhausted", "all_exhausted"]),
       kind=st.sampled_from(list(SAMPLERS.values())),
       block_rows=st.integers(1, 16), chunk_rows=st.integers(1, 200),
       first_chunk=st.integers(1, 100), world_size=st.integers(1, 4),
       batch_size=st.integers(1, 16), drop_last=st.booleans(), per_batch=st.booleans(),
       seed=st.integers(0, 2**16))
def test_each_cycle_of_a_source_is_all_its_rows_once_before_the_next_begins(
        sizes: list[int], weights: list[float], stop: str, kind: dict[str, Any],
        block_rows: int, chunk_rows: int, first_chunk: int, world_size: int, batch_size: int,
        drop_last: bool, per_batch: bool, seed: int) -> None:
    u = mixture_universe(sizes, weights[:len(sizes)], stop)
    # `uneven: allow` deals batch J to rank J % world_size, so `delivered` can put the
    # global order back together from the ranks' batches; how the last step is split over
    # the ranks by default is tests/runtime/test_equal_steps.py's subject, not this test's.
    spec = SamplerSpec(**{**kind, "seed": seed}, world_size=world_size, block_rows=block_rows,
                       chunk_rows=chunk_rows, uneven="allow")
    with patch.object(shuffles, "FIRST_CHUNK_ROWS", first_chunk):  # the block grid's ramp
        ids = delivered(u, spec, batch_size, drop_last, per_batch)
    for source, size in enumerate(sizes):
        rows = ids[ids >> SOURCE_SHIFT == source] & ((1 << SOURCE_SHIFT) - 1)
        for start in range(0, len(rows), size):
            cycle = np.sort(rows[start:start + size])
            assert np.array_equal(cycle, np.unique(cycle)), f"source {source} repeats a row"
            if len(cycle) == size:
                assert np.array_equal(cycle, np.arange(size))
        if stop == "all_exhausted" and not drop_last:
            assert len(rows) >= size  # every source delivers each of its rows


# --- weights anywhere in their accepted range: (0, 1e15], at most 1e6 apart -------------

def accepted_weights(draw: Any, n: int, ratio: float) -> list[float]:
    """n weights at any magnitude a recipe accepts, at most `ratio` apart."""
    largest = draw(st.floats(-300, 15)) if ratio == 1 else draw(st.floats(-300 + 6, 15))
    spread = np.log10(ratio)
    return [min(WEIGHT_MAX, 10 ** (largest - draw(st.floats(0, spread)))) for _ in range(n)]


@st.composite
def accepted_mixture(draw: Any) -> tuple[list[int], list[float]]:
    sizes = draw(st.lists(st.integers(1, 2**31), min_size=2, max_size=4))
    weights = accepted_weights(draw, len(sizes), WEIGHT_RATIO_MAX)
    return sizes, weights


@settings(max_examples=400, deadline=None)
@given(mixture_=accepted_mixture(), stop=st.sampled_from(["first_exhausted", "all_exhausted"]),
       seed=st.integers(0, 2**32))
def test_the_source_that_ends_an_epoch_delivers_exactly_its_rows_at_any_accepted_weights(
        mixture_: tuple[list[int], list[float]], stop: str, seed: int) -> None:
    # Large sources: a float end * share one ulp low once dropped the ending source's last
    # row (and an epoch past int64 counted a source as 0 rows).
    sizes, weights = mixture_
    m = Mixture(tuple(f"s{i}" for i in range(len(sizes))), tuple(sizes), tuple(weights), stop)
    rows, _ = mixing.epoch_rows(m)
    if rows > mixing.EPOCH_ROWS_MAX:  # the build refuses it (LK415), and so does the runtime
        with pytest.raises(RuntimeFailure):
            mixing.Interleave(m, np.random.default_rng(seed).random(len(sizes)))
        return
    interleave = mixing.Interleave(m, np.random.default_rng(seed).random(len(sizes)))
    counts = interleave.counts
    assert np.any(counts == sizes)  # the source whose last row ends the epoch
    if stop == "all_exhausted":
        assert np.all(counts >= sizes)
    else:
        assert np.all(counts <= sizes)
    assert interleave.total <= rows
    positions = np.random.default_rng(seed).integers(0, interleave.total, 8)
    for position in [*positions.tolist(), interleave.total - 1]:
        taken = interleave.taken(position)
        assert taken.sum() == position and np.all(taken <= counts)


@st.composite
def small_epoch(draw: Any) -> tuple[list[int], list[float]]:
    # Weights at any magnitude; their spread and the rows kept so an epoch is delivered fast.
    sizes = draw(st.lists(st.integers(1, 40), min_size=2, max_size=3))
    return sizes, accepted_weights(draw, len(sizes), draw(st.sampled_from([1, 10, 300])))


@settings(max_examples=150, deadline=None)
@given(mixture_=small_epoch(), kind=st.sampled_from(list(SAMPLERS.values())),
       chunk_rows=st.integers(1, 200), world_size=st.integers(1, 3),
       batch_size=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_all_exhausted_delivers_every_row_of_every_source_at_any_accepted_weights(
        mixture_: tuple[list[int], list[float]], kind: dict[str, Any], chunk_rows: int,
        world_size: int, batch_size: int, seed: int) -> None:
    sizes, weights = mixture_
    u = mixture_universe(sizes, weights, "all_exhausted")
    spec = SamplerSpec(**{**kind, "seed": seed}, world_size=world_size, chunk_rows=chunk_rows,
                       uneven="allow")
    ids = delivered(u, spec, batch_size, False, False)
    for source, size in enumerate(sizes):
        rows = ids[ids >> SOURCE_SHIFT == source] & ((1 << SOURCE_SHIFT) - 1)
        assert set(rows.tolist()) == set(range(size)), f"source {source} lost rows"


def test_weights_a_million_apart_still_deliver_the_light_source() -> None:
    # The extreme the recipe allows: 800 rows at 1, 200 at 1e6 (an epoch of ~8e8 rows).
    m = Mixture(("big", "small"), (800, 200), (1.0, 1e6), "all_exhausted")
    interleave = mixing.Interleave(m, np.random.default_rng(0).random(2))
    assert interleave.counts[0] == 800
    order = interleave.slice(0, 2_000_000, lambda source, cycle, lo, hi: np.arange(lo, hi))
    assert np.count_nonzero(mixing.source_of(m, order) == 0) == 2  # its share, in time
    tail = interleave.slice(interleave.total - 2_000_000, interleave.total,
                            lambda source, cycle, lo, hi: np.arange(lo, hi))
    assert 799 in tail.tolist()  # the big source's last row closes the epoch
