"""Equal steps by default (DESIGN.md §1, docs/ddp.md): with several ranks every rank takes
the same number of batches in an epoch and no row is delivered twice, for every sampler;
`drop_last` keeps whole steps; `uneven: allow` and `pad` stay opt-ins; resumes stay exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaderkit.runtime.samplers import make_sampler
from loaderkit.runtime.samplers.dealing import deal
from loaderkit.runtime.samplers.ordering import drop
from loaderkit.runtime.spec import SamplerSpec, SplitSpec
from loaderkit.runtime.universe import Universe
from tests.runtime.support import ROWS, build, ids_of, mixture, write_dataset
from tests.runtime.test_plans import epoch_batches, universe

GLOBAL_KINDS = [
    {"type": "full_scan"},
    {"type": "sharded_batch"},
    {"type": "shuffle", "mode": "block"},
    {"type": "shuffle", "mode": "exact"},
]
KINDS = [*GLOBAL_KINDS, {"type": "sharded_fragment"}]

layouts = st.lists(st.integers(0, 60), min_size=1, max_size=7)


def fragment_ranks(rows: list[int], ws: int) -> list[int]:
    """Rows of each rank under sharded_fragment: fragment i to rank i % ws."""
    return [sum(rows[k::ws]) for k in range(ws)]


def splits_equally(rows: list[int], ws: int, bs: int, kind: dict[str, Any]) -> bool:
    """Whether equal steps without a repeat exist (the rule of docs/ddp.md)."""
    if kind["type"] == "sharded_fragment":
        per_rank = fragment_ranks(rows, ws)
        return min(per_rank) >= -(-max(per_rank) // bs)
    n = sum(rows)
    return n >= ws and (bs >= 2 or n % ws == 0)


def all_ranks(u: Universe, kind: dict[str, Any], ws: int, bs: int, **kw: Any
              ) -> list[list[np.ndarray]]:
    return [epoch_batches(u, kind, ws, r, bs, **kw) for r in range(ws)]


def every_row_once(u: Universe, ranks: list[list[np.ndarray]]) -> bool:
    got = np.concatenate([b for rank in ranks for b in rank] or [np.zeros(0, np.int64)])
    return np.array_equal(np.sort(got), np.arange(u.size))


@settings(max_examples=150, deadline=None)
@given(rows=layouts, ws=st.integers(2, 8), bs=st.integers(1, 9), kind=st.sampled_from(KINDS),
       per_batch=st.booleans())
def test_by_default_every_rank_takes_the_same_number_of_batches_with_every_row_once(
        rows: list[int], ws: int, bs: int, kind: dict[str, Any], per_batch: bool) -> None:
    u = universe(rows)
    ranks = all_ranks(u, kind, ws, bs, per_batch=per_batch)
    assert every_row_once(u, ranks)
    assert all(0 < len(b) <= bs for rank in ranks for b in rank)
    if u.size and splits_equally(rows, ws, bs, kind):
        assert len({len(rank) for rank in ranks}) == 1


@settings(max_examples=100, deadline=None)
@given(rows=layouts, ws=st.integers(2, 8), bs=st.integers(2, 9),
       kind=st.sampled_from(GLOBAL_KINDS))
def test_a_global_sampler_fills_every_step_but_the_last_two(
        rows: list[int], ws: int, bs: int, kind: dict[str, Any]) -> None:
    u = universe(rows)
    ranks = all_ranks(u, kind, ws, bs)
    steps = len(ranks[0])
    assert steps == -(-u.size // (bs * ws))  # as few steps as the rows allow
    for rank in ranks:
        assert all(len(b) == bs for b in rank[:max(0, steps - 2)])
    if u.size >= ws:  # the last step holds every rank's share, none empty, within a row
        last = [len(rank[-1]) for rank in ranks]
        assert max(last) - min(last) <= 1


@settings(max_examples=100, deadline=None)
@given(rows=layouts, ws=st.integers(1, 8), bs=st.integers(1, 9),
       kind=st.sampled_from(GLOBAL_KINDS))
def test_drop_last_keeps_every_whole_step(
        rows: list[int], ws: int, bs: int, kind: dict[str, Any]) -> None:
    u = universe(rows)
    ranks = all_ranks(u, kind, ws, bs, drop_last=True)
    assert {len(rank) for rank in ranks} == {u.size // (bs * ws)}
    got = np.concatenate([b for rank in ranks for b in rank] or [np.zeros(0, np.int64)])
    assert all(len(b) == bs for rank in ranks for b in rank)
    assert len(np.unique(got)) == len(got)


@settings(max_examples=100, deadline=None)
@given(rows=layouts, ws=st.integers(2, 6), bs=st.integers(1, 9),
       kind=st.sampled_from(GLOBAL_KINDS), data=st.data())
def test_a_resume_after_any_step_at_another_world_size_delivers_the_rest_once(
        rows: list[int], ws: int, bs: int, kind: dict[str, Any], data: st.DataObject) -> None:
    u = universe(rows)

    def sampler(rank: int, world: int, size: int) -> Any:  # one order at every world size
        return make_sampler(SamplerSpec(rank=rank, world_size=world, chunk_rows=12,
                                        block_rows=5, **kind), u, size, False)

    first = [sampler(r, ws, bs) for r in range(ws)]
    whole = first[0].epoch_ranges(1)
    ranks = [[s._rows_of(1, whole, range(j, j + 1)) for j in s._mine(whole)] for s in first]
    steps = data.draw(st.integers(0, min(len(r) for r in ranks)))
    taken = [b for rank in ranks for b in rank[:steps]]
    # rank 0's state is enough: every rank took `steps` batches (DESIGN.md §4)
    left = drop(whole, [(0, first[0].consumed(1, whole, steps, bs, ws))])
    other, other_bs = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 9))
    rest = [sampler(r, other, other_bs) for r in range(other)]
    later = [s._rows_of(1, left, s._mine(left)) for s in rest]
    got = np.concatenate([*taken, *later, np.zeros(0, np.int64)])
    assert np.array_equal(np.sort(got), np.arange(u.size))


def test_the_last_rows_split_over_the_ranks() -> None:
    # The case: 500 rows, batch 100, 4 ranks. One whole step of 4 x 100, then the
    # last 100 rows as 4 batches of 25: two steps on every rank.
    dealt = deal(500, 100, 4, False, "split")
    assert [[dealt.start(j + 1) - dealt.start(j) for j in dealt.mine(r)] for r in range(4)] \
        == [[100, 25]] * 4


def test_fewer_rows_left_than_ranks_share_the_last_two_steps() -> None:
    # 402 rows, batch 100, 4 ranks: 2 rows after a whole step cannot give each rank one,
    # so the whole step and the 2 rows make two steps of 4 batches of 50 or 51.
    dealt = deal(402, 100, 4, False, "split")
    sizes = [[dealt.start(j + 1) - dealt.start(j) for j in dealt.mine(r)] for r in range(4)]
    assert sizes == [[51, 50], [51, 50], [50, 50], [50, 50]]


def test_without_an_equal_split_the_rows_are_dealt_in_turn() -> None:
    # 3 rows cannot give 4 ranks a row each: the runtime deals them as `allow` does (the
    # build refuses such a recipe with LK414).
    dealt = deal(3, 2, 4, False, "split")
    assert [len(dealt.mine(r)) for r in range(4)] == [1, 1, 0, 0]


@pytest.mark.parametrize("spec", [
    {"type": "full_scan"}, {"type": "sharded_batch"}, {"type": "sharded_fragment"},
    {"type": "shuffle", "mode": "block", "seed": 1}, {"type": "shuffle", "mode": "exact"},
    {"type": "shuffle", "mode": "cache", "seed": 2}, {"type": "shuffle", "limit": 500},
], ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("world_size", [2, 3, 4, 7])
def test_loaders_of_every_rank_take_equal_steps_with_every_row_once(
        lance_uri: str, spec: dict[str, Any], world_size: int) -> None:
    ranks = [list(build(lance_uri, rank=r, world_size=world_size, batch_size=50, **spec))
             for r in range(world_size)]
    assert len({len(batches) for batches in ranks}) == 1
    loaders = [build(lance_uri, rank=r, world_size=world_size, batch_size=50, **spec)
               for r in range(world_size)]
    assert [len(loader) for loader in loaders] == [len(batches) for batches in ranks]
    got = np.concatenate([ids_of(batches) for batches in ranks])
    whole = ids_of(build(lance_uri, batch_size=50, **spec))  # the epoch of one rank
    assert np.array_equal(np.sort(got), np.sort(whole))
    assert len(got) == spec.get("limit", ROWS) == len(np.unique(got))


@pytest.mark.parametrize("world_size", [2, 4])
def test_a_mixture_gives_every_rank_equal_steps(mixed_uris: dict[str, str],
                                                world_size: int) -> None:
    source = mixture(big=(mixed_uris["big"], 3), small=(mixed_uris["small"], 1))
    whole = ids_of(build(source, type="shuffle", seed=3, batch_size=64))
    ranks = [list(build(source, type="shuffle", seed=3, batch_size=64, rank=r,
                        world_size=world_size)) for r in range(world_size)]
    assert len({len(batches) for batches in ranks}) == 1
    got = np.concatenate([ids_of(batches) for batches in ranks])
    assert sorted(got.tolist()) == sorted(whole.tolist())


def test_a_split_gives_every_rank_equal_steps(lance_uri: str) -> None:
    split = SplitSpec("id", (("train", 0.7), ("val", 0.3)), 0, "val")
    whole = ids_of(build(lance_uri, split=split, batch_size=40))
    ranks = [list(build(lance_uri, split=split, batch_size=40, rank=r, world_size=3,
                        type="shuffle", seed=4)) for r in range(3)]
    assert len({len(batches) for batches in ranks}) == 1
    assert sorted(np.concatenate([ids_of(b) for b in ranks]).tolist()) == whole.tolist()


def test_sharded_fragment_cuts_smaller_ranks_into_smaller_batches(tmp_path: Any) -> None:
    # Fragments of 157 rows (the last 155): over 2 ranks, 4 fragments (626 rows) and 3
    # (471 rows). At batch 100 the larger rank takes 7 batches, so the smaller one does too:
    # as many whole batches as it can, then its last 71 rows in 3.
    uri = write_dataset(tmp_path / "d.lance")
    ranks = [list(build(uri, type="sharded_fragment", rank=r, world_size=2, batch_size=100))
             for r in range(2)]
    sizes = [[len(b["id"]) for b in batches] for batches in ranks]
    assert sizes == [[100] * 6 + [26], [100] * 4 + [24, 24, 23]]


@pytest.mark.parametrize("uneven", ["allow", "pad"])
def test_allow_and_pad_stay_what_they_were(lance_uri: str, uneven: str) -> None:
    ranks = [ids_of(build(lance_uri, rank=r, world_size=3, batch_size=16, uneven=uneven))
             for r in range(3)]
    # 1097 rows: 68 batches of 16 and one of 9, dealt in turn; pad fills the last step.
    expected = [368, 368, 361] if uneven == "allow" else [368, 368, 368]
    assert [len(r) for r in ranks] == expected


@settings(max_examples=100, deadline=None)
@given(rows=layouts, ws=st.integers(2, 6), bs=st.integers(2, 9), kind=st.sampled_from(KINDS),
       limit=st.integers(1, 300))
def test_a_limit_is_dealt_in_equal_steps_with_each_row_once(
        rows: list[int], ws: int, bs: int, kind: dict[str, Any], limit: int) -> None:
    u = universe(rows)
    spec = {**kind, "limit": limit}
    whole = np.concatenate([*epoch_batches(u, spec, 1, 0, bs), np.zeros(0, np.int64)])
    ranks = all_ranks(u, spec, ws, bs)
    got = np.concatenate([b for rank in ranks for b in rank] or [np.zeros(0, np.int64)])
    assert len(whole) == min(limit, u.size) and np.array_equal(np.sort(got), np.sort(whole))
    # The epoch's fragments: the first `limit` rows of dataset order.
    capped = [max(0, min(n, limit - sum(rows[:i]))) for i, n in enumerate(rows)]
    if len(whole) and splits_equally(capped, ws, bs, kind):
        assert len({len(rank) for rank in ranks}) == 1
