"""Splits: disjoint, covering their fractions, stable under appends (by a column),
reproducible from the seed (random), composing with filters, samplers, ranks and mixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lance
import numpy as np
import pytest

from loaderkit.runtime.spec import SplitSpec
from tests.runtime.support import ROWS, build, ids_of, make_table, mixture, write_dataset

FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


def split_ids(uri: Any, name: str | None, by: str = "id", seed: int = 0, **kw: Any) -> set[int]:
    spec = SplitSpec(by, FRACTIONS, seed, name)
    return set(ids_of(build(uri, split=spec, **kw)).tolist())


def test_splits_share_no_row_and_cover_their_fractions(lance_uri: str) -> None:
    parts = {name: split_ids(lance_uri, name) for name, _ in FRACTIONS}
    assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
    assert not parts["val"] & parts["test"]
    assert parts["train"] | parts["val"] | parts["test"] == set(range(ROWS))
    for name, fraction in FRACTIONS:
        assert abs(len(parts[name]) / ROWS - fraction) < 0.04


def test_fractions_below_one_leave_the_rest_out(lance_uri: str) -> None:
    spec = SplitSpec("id", (("a", 0.3), ("b", 0.2)), 0, None)
    chosen = {name: set(ids_of(build(lance_uri, split=SplitSpec(spec.by, spec.fractions, 0,
                                                                   name))).tolist())
              for name in ("a", "b")}
    assert abs(len(chosen["a"] | chosen["b"]) / ROWS - 0.5) < 0.05


def test_no_split_chosen_reads_every_row(lance_uri: str) -> None:
    assert split_ids(lance_uri, None) == set(range(ROWS))


def test_a_hash_split_is_stable_when_rows_are_appended(tmp_path: Path) -> None:
    uri = write_dataset(tmp_path / "grow.lance", 500)
    before = split_ids(uri, "val")
    lance.write_dataset(make_table(500, 300), uri, mode="append")
    after = split_ids(uri, "val")
    assert before <= after and all(i >= 500 for i in after - before)


def test_a_random_split_is_reproducible_from_its_seed(lance_uri: str) -> None:
    assert split_ids(lance_uri, "val", by="random", seed=4) == \
        split_ids(lance_uri, "val", by="random", seed=4)
    assert split_ids(lance_uri, "val", by="random", seed=4) != \
        split_ids(lance_uri, "val", by="random", seed=5)


def test_another_seed_moves_rows_between_hash_splits(lance_uri: str) -> None:
    assert split_ids(lance_uri, "val", seed=1) != split_ids(lance_uri, "val", seed=2)


def test_a_split_on_a_string_column_works(lance_uri: str) -> None:
    parts = [split_ids(lance_uri, name, by="text") for name, _ in FRACTIONS]
    assert sum(len(p) for p in parts) == ROWS and len(set().union(*parts)) == ROWS


@pytest.mark.parametrize("sampler", [{"type": "full_scan"}, {"type": "sharded_fragment"},
                                     {"type": "sharded_batch"},
                                     {"type": "shuffle", "mode": "block"},
                                     {"type": "shuffle", "mode": "exact"},
                                     {"type": "shuffle", "mode": "cache"}])
def test_a_split_composes_with_every_sampler_and_ranks(lance_uri: str,
                                                       sampler: dict[str, Any]) -> None:
    expected = split_ids(lance_uri, "train")
    got = [split_ids(lance_uri, "train", rank=r, world_size=2, **sampler) for r in range(2)]
    assert not got[0] & got[1] and got[0] | got[1] == expected


def test_a_split_composes_with_a_filter(lance_uri: str) -> None:
    both = split_ids(lance_uri, "train", filter="label < 3")
    assert both == {i for i in split_ids(lance_uri, "train") if i % 7 < 3}


def test_a_split_full_scan_keeps_dataset_order(lance_uri: str) -> None:
    ids = ids_of(build(lance_uri, split=SplitSpec("id", FRACTIONS, 0, "train")))
    assert np.all(np.diff(ids) > 0)


def test_a_split_composes_with_workers(lance_uri: str) -> None:
    from tests.runtime.support import through_workers

    spec = SplitSpec("id", FRACTIONS, 0, "train")
    expected = ids_of(build(lance_uri, split=spec, type="shuffle", seed=2))
    loader = build(lance_uri, split=spec, type="shuffle", seed=2, num_workers=2)
    assert np.array_equal(ids_of(through_workers(loader)), expected)


def test_a_split_composes_with_a_mixture(mixed_uris: dict[str, str]) -> None:
    source = mixture(big=(mixed_uris["big"], 1), small=(mixed_uris["small"], 1))
    val = split_ids(source, "val")
    train = split_ids(source, "train")
    assert val and train and not val & train
    assert any(i >= 10_000 for i in val) and any(i < 10_000 for i in val)


def test_limit_caps_the_rows_of_an_epoch_over_all_ranks(lance_uri: str) -> None:
    ranks = [ids_of(build(lance_uri, type="shuffle", seed=1, limit=300, rank=r, world_size=2))
             for r in range(2)]
    assert sum(len(r) for r in ranks) == 300
    assert len(np.unique(np.concatenate(ranks))) == 300


def test_limit_on_a_full_scan_is_the_first_rows(lance_uri: str) -> None:
    assert np.array_equal(ids_of(build(lance_uri, limit=100)), np.arange(100))


def test_limit_on_sharded_fragment_deals_the_first_rows(lance_uri: str) -> None:
    ranks = [ids_of(build(lance_uri, type="sharded_fragment", limit=400, rank=r, world_size=2))
             for r in range(2)]
    assert sorted(np.concatenate(ranks).tolist()) == list(range(400))


def test_limit_on_a_mixture_keeps_its_proportions(mixed_uris: dict[str, str]) -> None:
    source = mixture(big=(mixed_uris["big"], 3), small=(mixed_uris["small"], 1))
    ids = ids_of(build(source, type="shuffle", seed=1, limit=400))
    assert len(ids) == 400 and abs((ids >= 10_000).mean() - 0.25) <= 0.01
