"""Samplers alone (pure numpy): properties over random layouts, no I/O."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from loaderkit.runtime import universe as universes
from loaderkit.runtime.samplers import make_sampler
from loaderkit.runtime.samplers.ordering import drop
from loaderkit.runtime.spec import SamplerSpec
from loaderkit.runtime.tasks import ScanTask, TakeTask, Task
from loaderkit.runtime.universe import ScanRun, Universe

KINDS = [
    {"type": "full_scan"},
    {"type": "sharded_fragment"},
    {"type": "sharded_batch"},
    {"type": "shuffle", "mode": "block"},
    {"type": "shuffle", "mode": "exact"},
]


def universe(rows: list[int]) -> Universe:
    # Fragment ids with gaps, as after deletions of whole fragments.
    return Universe(
        np.arange(len(rows), dtype=np.int64) * 3 + 1, np.array(rows, dtype=np.int64), None
    )


def positions(u: Universe, task: Task) -> np.ndarray:
    """Back from what a worker is told to read to universe positions."""
    if isinstance(task, ScanTask):
        out = []
        for run in task.runs:
            idx = [int(np.flatnonzero(u.fragment_ids == f)[0]) for f in run.fragment_ids]
            span = np.concatenate(
                [np.arange(u.starts[i], u.starts[i] + u.fragment_rows[i]) for i in idx]
            )
            out.append(span[run.offset : run.offset + run.limit])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    assert isinstance(task, TakeTask)
    frag = np.searchsorted(u.fragment_ids, task.ids >> 32)
    return u.starts[frag] + (task.ids & 0xFFFFFFFF)


def epoch_positions(
    u: Universe, spec: dict[str, Any], ws: int, r: int, bs: int, **kw: Any
) -> np.ndarray:
    plan = make_sampler(
        SamplerSpec(rank=r, world_size=ws, chunk_rows=3 * bs, block_rows=5, **spec),
        u,
        bs,
        kw.get("drop_last", False),
    )
    whole = plan.epoch_ranges(1)  # a resume at the same world size, after `skip` steps
    remaining = drop(whole, [(0, plan.consumed(1, whole, kw.get("skip", 0), bs, ws))])
    parts = [positions(u, t) for t in plan.tasks(1, remaining)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def epoch_batches(
    u: Universe, spec: dict[str, Any], ws: int, r: int, bs: int, **kw: Any
) -> list[np.ndarray]:
    """A rank's batches as the dataset cuts them: each task's rows in batches of `bs`."""
    plan = make_sampler(
        SamplerSpec(rank=r, world_size=ws, chunk_rows=3 * bs, block_rows=5, **spec),
        u,
        bs,
        kw.get("drop_last", False),
    )
    whole = plan.epoch_ranges(1)  # a resume at the same world size, after `skip` steps
    remaining = drop(whole, [(0, plan.consumed(1, whole, kw.get("skip", 0), bs, ws))])
    out = []
    for task in plan.tasks(1, remaining, kw.get("per_batch", False)):
        rows = positions(u, task)
        out += [rows[a:a + bs] for a in range(0, len(rows), bs)]
    assert len(out) == plan.batches(1, remaining)  # len(loader) counts what is delivered
    return out


layouts = st.lists(st.integers(0, 40), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(rows=layouts, ws=st.integers(1, 4), bs=st.integers(1, 9), kind=st.sampled_from(KINDS))
def test_plan_covers_every_position_exactly_once_across_ranks(
    rows: list[int], ws: int, bs: int, kind: dict[str, Any]
) -> None:
    u = universe(rows)
    got = np.concatenate([epoch_positions(u, kind, ws, r, bs) for r in range(ws)])
    assert np.array_equal(np.sort(got), np.arange(u.size))


@settings(max_examples=60, deadline=None)
@given(rows=layouts, ws=st.integers(1, 4), bs=st.integers(1, 9), kind=st.sampled_from(KINDS))
def test_plan_with_drop_last_gives_equal_full_batches_without_repeats(
    rows: list[int], ws: int, bs: int, kind: dict[str, Any]
) -> None:
    u = universe(rows)
    ranks = [epoch_positions(u, kind, ws, r, bs, drop_last=True) for r in range(ws)]
    assert len({len(p) for p in ranks}) == 1 and len(ranks[0]) % bs == 0
    allp = np.concatenate(ranks)
    assert len(np.unique(allp)) == len(allp)


@settings(max_examples=60, deadline=None)
@given(rows=layouts, bs=st.integers(1, 9), kind=st.sampled_from(KINDS), data=st.data())
def test_plan_resumed_at_any_batch_is_the_suffix_of_the_epoch(
    rows: list[int], bs: int, kind: dict[str, Any], data: st.DataObject
) -> None:
    u = universe(rows)
    whole = epoch_batches(u, kind, 2, 1, bs)
    skip = data.draw(st.integers(0, len(whole)))
    resumed = epoch_batches(u, kind, 2, 1, bs, skip=skip)
    assert [b.tolist() for b in resumed] == [b.tolist() for b in whole[skip:]]


def test_a_long_fragment_starting_off_the_batch_grid_gets_a_run_of_its_own() -> None:
    u = universe([1500, 20000, 20000])  # fragment ids 1, 4, 7
    assert u.runs([range(u.size)], batch_size=1024) == (
        ScanRun((1,), 0, 1500),
        ScanRun((4,), 0, 20000),
        ScanRun((7,), 0, 20000),
    )


def test_a_fragment_starting_on_the_batch_grid_merges_into_the_run_before() -> None:
    u = universe([2048, 20000])
    assert u.runs([range(u.size)], batch_size=1024) == (ScanRun((1, 4), 0, 22048),)


def test_a_short_fragment_off_the_batch_grid_merges_into_the_run_before() -> None:
    u = universe([1500, 100])
    assert u.runs([range(u.size)], batch_size=1024) == (ScanRun((1, 4), 0, 1600),)


@settings(max_examples=60, deadline=None)
@given(rows=layouts, bs=st.integers(1, 9), data=st.data())
def test_runs_cut_for_the_batch_grid_read_the_same_positions(
    rows: list[int], bs: int, data: st.DataObject
) -> None:
    u = universe(rows)
    a = data.draw(st.integers(0, u.size))
    ranges = [range(a, data.draw(st.integers(a, u.size)))]
    with patch.object(universes, "REALIGN_ROWS", 1):  # every fragment off the grid is cut
        cut = u.runs(ranges, batch_size=bs)
    merged = u.runs(ranges)
    assert np.array_equal(positions(u, ScanTask(cut)), positions(u, ScanTask(merged)))


# --- chunks -----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 5000), first=st.integers(1, 3000), doubling=st.booleans())
def test_a_chunk_grid_starts_with_its_first_chunk_and_grows_to_its_size(
        size: int, first: int, doubling: bool) -> None:
    from loaderkit.runtime.samplers.ordering import ChunkGrid

    grid = ChunkGrid(size, first, doubling)
    starts = np.array([grid.start(k) for k in range(40)])
    sizes = np.diff(starts)
    assert starts[0] == 0 and sizes[0] == min(first, size)
    assert np.all(sizes[1:] >= sizes[:-1]) and sizes.max() <= size and sizes[-1] == size
    rows = np.arange(starts[-1])
    assert np.array_equal(grid.index(rows), np.searchsorted(starts, rows, side="right") - 1)


def test_a_shuffled_epoch_starts_with_small_tasks_that_double() -> None:
    sampler = make_sampler(SamplerSpec(type="shuffle", mode="block", block_rows=16),
                           universe([40_000, 40_000]), 64, False)
    sizes = [len(t.ids) for t in sampler.tasks(0)]  # type: ignore[union-attr]
    assert sizes == [8192, 16384, 32768, 80_000 - 8192 - 16384 - 32768]


def test_a_block_shuffle_task_reads_whole_blocks() -> None:
    u = universe([30_000, 50_000])
    sampler = make_sampler(SamplerSpec(type="shuffle", mode="block", block_rows=100,
                                       chunk_rows=20_000), u, 50, False)
    for task in sampler.tasks(0):
        blocks, counts = np.unique(positions(u, task) // 100, return_counts=True)
        assert np.all(counts[blocks != u.size // 100] == 100)


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 3000), density=st.floats(0.01, 1.0), seed=st.integers(0, 99),
       data=st.data())
def test_a_bitmap_selects_each_kept_row_whether_its_ranks_are_few_or_many(
    rows: int, density: float, seed: int, data: Any
) -> None:
    keep = np.random.default_rng(seed).random(rows) < density
    kept = np.flatnonzero(keep)
    if len(kept) == 0:
        return
    # Ranks from anywhere in the bitmap: few over many words take the per-rank bit
    # search, many over few words the listing of those words.
    lo = data.draw(st.integers(0, len(kept) - 1))
    hi = data.draw(st.integers(lo, len(kept) - 1))
    count = data.draw(st.sampled_from([1, 2, hi - lo + 1]))
    ranks = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=count, max_size=count)),
                     dtype=np.int64)
    assert universes.Bitmap(keep).select(ranks).tolist() == kept[ranks].tolist()


@settings(max_examples=30, deadline=None)
@given(fragments=st.integers(1, 40), seed=st.integers(0, 99))
def test_a_filtered_universe_finds_each_positions_row_over_few_or_many_fragments(
    fragments: int, seed: int
) -> None:
    # Up to 16 fragments a task's rows are grouped by masks, beyond by one sort.
    rng = np.random.default_rng(seed)
    keeps = [rng.random(int(n)) < 0.6 for n in rng.integers(1, 200, fragments)]
    kept = tuple(universes.Bitmap(k) if i % 3 else None for i, k in enumerate(keeps))
    rows = np.array([k.sum() if i % 3 else len(k) for i, k in enumerate(keeps)], dtype=np.int64)
    u = Universe(np.arange(fragments, dtype=np.int64) * 2, rows, None, kept=kept)
    expected = [(2 * f << 32) | int(offset) for f, k in enumerate(keeps)
                for offset in (np.flatnonzero(k) if f % 3 else range(len(k)))]
    order = rng.permutation(int(rows.sum()))
    assert u.ids(order).tolist() == [expected[p] for p in order]
