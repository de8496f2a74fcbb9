"""Weighted mixtures of sources: proportions at every point of the epoch, no repeat before a
source is exhausted, deterministic, sharded over ranks and workers like one source, resumable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from loaderkit.runtime.samplers import mixing
from loaderkit.runtime.universe import Mixture
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
